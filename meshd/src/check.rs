//! `meshd --check-config`: reads, validates and compiles the config directory exactly as the
//! daemon would with the same flags, prints which nodes this machine would serve and why, and
//! exits (0 valid, 2 invalid or unusable). Binds nothing, writes nothing, reads no snapshot: for
//! `ExecStartPre=` and CI.

use std::process::ExitCode;

use crate::cli::Args;
use crate::config::load::{self, DirState};

/// Checks `args.config_dir` (see the module docs). Output: stdout for what would be served,
/// stderr (`meshd: <what> : <why>`) for what is wrong.
pub fn check_config(args: &Args) -> ExitCode {
    let dir = &args.config_dir;
    let overrides = crate::overrides(args);
    let compiled = match load::read_dir(dir, &overrides) {
        DirState::Valid(c, _skipped) => c,
        DirState::Missing(e) => {
            eprintln!("meshd: config directory {} : {e}", dir.display());
            return ExitCode::from(2);
        }
        DirState::Empty(_) => {
            eprintln!(
                "meshd: config directory {} : no resource files (*.json, *.yaml, *.yml)",
                dir.display()
            );
            return ExitCode::from(2);
        }
        DirState::Invalid(errors, _) => {
            for e in &errors {
                eprintln!("meshd: invalid config : {e}");
            }
            eprintln!(
                "meshd: config directory {} : {} error(s)",
                dir.display(),
                errors.len()
            );
            return ExitCode::from(2);
        }
    };
    let selection = &compiled.selection;
    println!(
        "config directory {} : valid, {} resource(s)",
        dir.display(),
        compiled.loaded.set.len()
    );
    for (name, choice) in &selection.nodes {
        let word = if choice.here { "serve " } else { "remote" };
        println!("{word} {name} ({})", choice.why);
    }
    let served = selection.served();
    if served.is_empty() {
        println!("serving no node here");
    } else {
        println!(
            "serving {}",
            served.into_iter().collect::<Vec<_>>().join(", ")
        );
    }
    if !selection.missing.is_empty() {
        eprintln!(
            "meshd: --node {} : no such virtual node or gateway in {}; the nodes there: {}",
            selection.missing.join(", "),
            dir.display(),
            selection.known()
        );
        return ExitCode::from(2);
    }
    ExitCode::SUCCESS
}
