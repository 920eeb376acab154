//! meshd: parses flags and runs the daemon (see the library for everything else).

use clap::Parser;

fn main() -> std::process::ExitCode {
    let args = meshd::cli::Args::parse();
    meshd::run(args)
}
