//! meshctl: see the library crate.

use std::process::ExitCode;

use clap::Parser as _;

fn main() -> ExitCode {
    let cli = meshctl::cli::Cli::parse();
    match meshctl::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            for line in e.lines() {
                eprintln!("meshctl: {line}");
            }
            ExitCode::from(e.exit_code())
        }
    }
}
