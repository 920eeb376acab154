//! meshd: parses flags and runs the daemon (see the library for everything else).

use clap::Parser;

// The allocator is chosen by a cargo feature; `bench/idle-rss.sh` measures each.
#[cfg(all(feature = "jemalloc", feature = "mimalloc"))]
compile_error!("choose one allocator feature: jemalloc or mimalloc");

#[cfg(feature = "jemalloc")]
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[cfg(feature = "mimalloc")]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    let args = match meshd::cli::Args::try_parse() {
        Ok(a) => a,
        Err(e) => {
            let from_env = meshd::cli::env_source(&e);
            let _ = e.print();
            if let Some(var) = from_env {
                eprintln!("meshd: {var} : the refused value comes from this variable");
            }
            return std::process::ExitCode::from(u8::try_from(e.exit_code()).unwrap_or(2));
        }
    };
    meshd::run(args)
}
