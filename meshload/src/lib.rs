//! meshload: a fortio-compatible HTTP load generator whose latency numbers are right.
//!
//! Same flags and same output as `fortio load` (text on stderr, `-json` result schema), with
//! latency percentiles from HdrHistogram and, in `-qps` mode, latency measured from each
//! request's scheduled send time (coordinated omission corrected, as wrk2), raw numbers next to it.
//!
//! How it works: [`cli`] turns Go-style flags into clap's form, [`config`] validates them,
//! [`plan`] splits the work across connections as fortio does, [`run`] starts one tokio task per
//! connection ([`worker`], using [`client`]: fortio's fast raw HTTP/1.x client in [`fast`], or
//! hyper's HTTP/1.1 or HTTP/2 connection in [`stdclient`] for `-stdclient` and `-h2`),
//! each with its own statistics ([`stats`], [`latency`]) merged at the end, then [`report`],
//! [`json`], [`summary`] and [`plot`] write the results.

pub mod cli;
pub mod client;
pub mod config;
pub mod error;
pub mod fast;
pub mod gofmt;
pub mod json;
pub mod lanes;
pub mod latency;
pub mod pace;
pub mod plan;
pub mod plot;
pub mod progress;
pub mod report;
pub mod request;
pub mod run;
pub mod stats;
pub mod stdclient;
pub mod summary;
pub mod tls;
pub mod worker;

pub use config::Config;
pub use error::{Error, UsageError};

/// Parses `args` (without the program name), runs, and returns the process exit code. Errors are
/// printed as one line `meshload: <what> : <why>`.
pub fn main_with_args(args: &[String]) -> i32 {
    let flags = match cli::parse(args) {
        Ok(cli::Parsed::Run(f)) => f,
        Ok(cli::Parsed::Print(text)) => {
            print!("{text}");
            return 0;
        }
        Err(e) => {
            eprintln!("meshload: {e}");
            return 2;
        }
    };
    let result = Config::from_flags(&flags)
        .map_err(Error::from)
        .and_then(run::run);
    match result {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("meshload: {e}");
            e.exit_code()
        }
    }
}
