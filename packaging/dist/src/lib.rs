//! The man pages and shell completions of the four installed tools, written from the same clap
//! definitions their binaries parse with, so a page can never describe a flag the binary lacks.

use std::path::Path;

use anyhow::{Context, Result};
use clap::CommandFactory;
use clap_complete::Shell;

/// One installed tool: its clap command and its man section (8 for the daemon, 1 for the CLIs).
pub struct Tool {
    /// The command, as its binary parses it.
    pub command: clap::Command,
    /// The man section of its page.
    pub section: &'static str,
}

/// The four tools the package installs (demo-app is a test upstream, not installed).
pub fn tools() -> Vec<Tool> {
    vec![
        Tool {
            command: meshd::cli::Args::command(),
            section: "8",
        },
        Tool {
            command: meshctl::cli::Cli::command(),
            section: "1",
        },
        Tool {
            command: meshload::cli::Flags::command(),
            section: "1",
        },
        Tool {
            command: meshstat::cli::Cli::command(),
            section: "1",
        },
    ]
}

/// Where each shell looks for vendor completions, relative to the data directory
/// (`/usr/share`), and the file name it expects for `bin`.
pub fn completion_path(shell: Shell, bin: &str) -> String {
    match shell {
        Shell::Bash => format!("bash-completion/completions/{bin}"),
        Shell::Zsh => format!("zsh/vendor-completions/_{bin}"),
        Shell::Fish => format!("fish/vendor_completions.d/{bin}.fish"),
        other => format!("{other}/{bin}"),
    }
}

/// The shells completions are written for.
pub const SHELLS: [Shell; 3] = [Shell::Bash, Shell::Zsh, Shell::Fish];

/// Writes `out/man/man<S>/<page>.<S>` for every tool and each of its visible subcommands
/// (`meshctl-apply.1`, ...), and `out/completions/<shell path>` for every tool and shell.
/// Returns the paths written, relative to `out`.
pub fn write_all(out: &Path) -> Result<Vec<String>> {
    let mut written = Vec::new();
    for tool in tools() {
        let mut cmd = tool.command;
        cmd.build();
        write_pages(out, &cmd, tool.section, &mut written)?;
        let bin = cmd.get_name().to_owned();
        for shell in SHELLS {
            let rel = format!("completions/{}", completion_path(shell, &bin));
            let mut buf = Vec::new();
            clap_complete::generate(shell, &mut cmd, &bin, &mut buf);
            write(out, &rel, &buf)?;
            written.push(rel);
        }
    }
    Ok(written)
}

/// The page of `cmd`, then those of its subcommands, named as clap_mangen refers to them.
fn write_pages(
    out: &Path,
    cmd: &clap::Command,
    section: &str,
    written: &mut Vec<String>,
) -> Result<()> {
    let name = cmd
        .get_display_name()
        .unwrap_or_else(|| cmd.get_name())
        .to_owned();
    let mut buf = Vec::new();
    clap_mangen::Man::new(cmd.clone())
        .section(section)
        .render(&mut buf)
        .with_context(|| format!("rendering the man page of {name}"))?;
    let rel = format!("man/man{section}/{name}.{section}");
    write(out, &rel, &buf)?;
    written.push(rel);
    for sub in cmd.get_subcommands() {
        if sub.is_hide_set() || sub.get_name() == "help" {
            continue;
        }
        write_pages(out, sub, section, written)?;
    }
    Ok(())
}

fn write(out: &Path, rel: &str, bytes: &[u8]) -> Result<()> {
    let path = out.join(rel);
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    std::fs::write(&path, bytes).with_context(|| format!("writing {}", path.display()))
}
