//! meshstat: stats, clusters and access logs of one or many meshd. See `meshstat --help`.

use clap::Parser;

fn main() {
    let cli = meshstat::Cli::parse();
    let mut out = meshstat::output::Out::stdout();
    let code = match meshstat::run(cli, &mut out) {
        Ok(code) => code,
        Err(e) => {
            let code = e.exit_code();
            if code != 0 && !matches!(e, meshstat::Error::Partial(_)) {
                eprintln!("meshstat: {e}");
            }
            code
        }
    };
    std::process::exit(code);
}
