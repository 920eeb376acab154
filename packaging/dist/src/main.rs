//! `mesh-dist OUT`: writes the man pages and completions of the installed tools under OUT
//! (`OUT/man/man8/meshd.8`, `OUT/completions/bash-completion/completions/meshctl`, ...).

use std::process::ExitCode;

fn main() -> ExitCode {
    let mut args = std::env::args_os().skip(1);
    let (Some(out), None) = (args.next(), args.next()) else {
        eprintln!("usage: mesh-dist OUT_DIR");
        return ExitCode::from(2);
    };
    match mesh_dist::write_all(std::path::Path::new(&out)) {
        Ok(written) => {
            for rel in written {
                println!("{rel}");
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("mesh-dist: {e:#}");
            ExitCode::FAILURE
        }
    }
}
