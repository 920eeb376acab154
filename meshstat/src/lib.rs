//! meshstat: stats, clusters and access logs of one or many meshd, made for grep and jq.
//!
//! The binary is a thin shell over [`run`]. Each subcommand lives in its own module:
//! [`stats`] (`meshstat [PATTERN...]`), [`clusters`], [`hosts`], [`watch`], [`log`] (with
//! [`logparse`]), [`why`] and the `flags` table from [`mesh_core::accesslog::ResponseFlag`].
//! All HTTP goes through [`admin::Admin`]; `--fleet` finds the endpoints with [`fleet`].

pub mod admin;
pub mod cli;
pub mod clusters;
pub mod error;
pub mod fleet;
pub mod hosts;
pub mod log;
pub mod logparse;
pub mod output;
pub mod stats;
pub mod watch;
pub mod why;

use std::path::PathBuf;

use mesh_core::accesslog::ResponseFlag;
use regex::Regex;

pub use cli::Cli;
pub use error::{Error, Result};

use admin::Admin;
use cli::{Command, Format};
use output::Out;

/// Runs one meshstat command, writing to `out`. Returns the exit code for a run that completed
/// (0, or 1 when no stat matched); errors carry their own ([`Error::exit_code`]).
pub fn run(cli: Cli, out: &mut Out) -> Result<i32> {
    let reads = !matches!(cli.command, Some(Command::Flags | Command::Log { .. }));
    if cli.fleet.is_empty() || !reads {
        let admins: Vec<Admin> = cli
            .admin
            .iter()
            .filter(|a| !a.trim().is_empty())
            .map(|a| Admin::new(a.trim(), cli.timeout))
            .collect();
        if admins.is_empty() && reads {
            return Err(Error::usage("--admin", "no admin address given"));
        }
        let named = admins.len() > 1;
        return run_on(cli, &admins, named, out);
    }
    // --fleet: every node's stats endpoint; those not located are reported and make it exit 1.
    let located = fleet::locate(&cli.fleet, cli.stats_port)?;
    if cli.targets {
        out.line(fleet::file_sd(&located.endpoints).trim_end())?;
        out.flush()?;
        return finish(located.unlocated, false);
    }
    if located.endpoints.is_empty() {
        return Err(Error::Partial(located.unlocated));
    }
    let admins: Vec<Admin> = located
        .endpoints
        .iter()
        .map(|e| Admin::stats_endpoint(e.label(), e.addr, cli.timeout))
        .collect();
    let code = run_on(cli, &admins, true, out)?;
    finish(located.unlocated, false).map(|c| c.max(code))
}

/// Runs the command against `admins`; `named`: every line names its source.
fn run_on(cli: Cli, admins: &[Admin], named: bool, out: &mut Out) -> Result<i32> {
    let json = cli.output == Format::Json;
    match cli.command {
        None => {
            let mut pats = cli.regexp.clone();
            pats.extend(cli.patterns.iter().cloned());
            let patterns = error::compile(&pats)?;
            let view = stats::View {
                prefix: named,
                sum: cli.sum,
                nonzero: cli.nonzero,
                json,
            };
            let (sources, failed) = gather(admins, Admin::stats)?;
            let rows = stats::rows(&sources, &patterns, &view);
            stats::print(out, &rows, &view)?;
            out.flush()?;
            finish(failed, !patterns.is_empty() && rows.is_empty())
        }
        Some(Command::Clusters { pattern }) => {
            let patterns = error::compile(&pattern.into_iter().collect::<Vec<_>>())?;
            let (sources, failed) = gather(admins, Admin::clusters)?;
            let prefix = named || sources.len() > 1;
            for (src, list) in &sources {
                for c in list
                    .iter()
                    .filter(|c| stats::matches(&patterns, clusters::name(c)))
                {
                    if json {
                        out.line(&clusters::to_json(c, src).to_string())?;
                    } else {
                        for l in clusters::text(c, prefix.then_some(src.as_str())) {
                            out.line(&l)?;
                        }
                    }
                }
            }
            out.flush()?;
            finish(failed, false)
        }
        Some(Command::Hosts {
            pattern,
            out: only_out,
        }) => {
            let patterns = error::compile(&pattern.into_iter().collect::<Vec<_>>())?;
            run_hosts(admins, &patterns, only_out, named, json, out)
        }
        Some(Command::Watch {
            patterns,
            interval,
            count,
        }) => {
            let patterns = error::compile(&patterns)?;
            watch::run(admins, &patterns, interval, count, named, out)?;
            Ok(0)
        }
        Some(Command::Log {
            files,
            flags,
            codes,
            path,
            since,
            lines,
            follow,
        }) => {
            let filter = log::Filter::new(&flags, &codes, path.as_deref(), since.as_deref())?;
            let mode = match (json, lines) {
                (true, _) => log::Mode::Json,
                (false, true) => log::Mode::Lines,
                (false, false) => log::Mode::Summary,
            };
            run_log(files, &filter, mode, follow, out)
        }
        Some(Command::Why { pattern, logs }) => {
            let patterns = error::compile(&pattern.into_iter().collect::<Vec<_>>())?;
            run_why(admins, &patterns, &logs, json, out)
        }
        Some(Command::Flags) => {
            for f in ResponseFlag::ALL {
                if json {
                    let v = serde_json::json!({"short": f.short(), "long": f.long(), "meaning": f.meaning()});
                    out.line(&v.to_string())?;
                } else {
                    out.line(&format!(
                        "{:<4} {:<32} {}",
                        f.short(),
                        f.long(),
                        f.meaning()
                    ))?;
                }
            }
            out.flush()?;
            Ok(0)
        }
    }
}

/// Fetches from every admin at once. With one admin its error is returned as is; with several,
/// each failure is printed as its own `meshstat: <addr> : <why>` line and counted.
fn gather<T: Send>(
    admins: &[Admin],
    f: impl Fn(&Admin) -> Result<T> + Sync,
) -> Result<(Vec<(String, T)>, usize)> {
    let results: Vec<Result<T>> = std::thread::scope(|s| {
        let handles: Vec<_> = admins.iter().map(|a| s.spawn(|| f(a))).collect();
        handles
            .into_iter()
            .zip(admins)
            .map(|(h, a)| {
                h.join().unwrap_or_else(|_| {
                    Err(Error::Admin {
                        addr: a.label.clone(),
                        why: "reader thread failed".into(),
                    })
                })
            })
            .collect()
    });
    if admins.len() == 1 {
        let r = results.into_iter().next().ok_or(Error::Partial(1))??;
        return Ok((vec![(admins[0].label.clone(), r)], 0));
    }
    let mut ok = Vec::new();
    let mut failed = 0;
    for (a, r) in admins.iter().zip(results) {
        match r {
            Ok(v) => ok.push((a.label.clone(), v)),
            Err(e) => {
                eprintln!("meshstat: {e}");
                failed += 1;
            }
        }
    }
    Ok((ok, failed))
}

fn finish(failed: usize, nothing_matched: bool) -> Result<i32> {
    if failed > 0 {
        Err(Error::Partial(failed))
    } else if nothing_matched {
        Ok(1)
    } else {
        Ok(0)
    }
}

fn run_log(
    files: Vec<PathBuf>,
    filter: &log::Filter,
    mode: log::Mode,
    follow: bool,
    out: &mut Out,
) -> Result<i32> {
    let files = if files.is_empty() {
        vec![PathBuf::from("-")]
    } else {
        files
    };
    if follow {
        if files.len() != 1 || files[0].as_os_str() == "-" {
            return Err(Error::usage("--follow", "takes exactly one log file"));
        }
        log::follow(&files[0], filter, mode, false, out, || false)?;
        return Ok(0);
    }
    // Open every file first: a missing one is an error before any output.
    let mut inputs = Vec::new();
    for f in &files {
        let name = f.display().to_string();
        inputs.push((log::open(&name)?, name));
    }
    let mut summary = log::Summary::default();
    for (input, name) in inputs {
        log::scan(&name, input, filter, mode, &mut summary, out)?;
    }
    match mode {
        log::Mode::Summary => {
            for l in summary.text() {
                out.line(&l)?;
            }
        }
        log::Mode::Json | log::Mode::Lines => {}
    }
    out.flush()?;
    if summary.unparsed > 0 && mode != log::Mode::Summary {
        eprintln!(
            "meshstat: {} of {} lines not parsed (first at {})",
            summary.unparsed,
            summary.lines,
            summary.first_unparsed.as_deref().unwrap_or("?")
        );
    } else if let (log::Mode::Summary, Some(first)) = (mode, &summary.first_unparsed) {
        eprintln!(
            "meshstat: {} lines not parsed (first at {first})",
            summary.unparsed
        );
    }
    Ok(0)
}

fn run_hosts(
    admins: &[Admin],
    patterns: &[Regex],
    only_out: bool,
    prefix: bool,
    json: bool,
    out: &mut Out,
) -> Result<i32> {
    let (sources, failed) = gather(admins, Admin::clusters)?;
    // Several --admin (or --fleet): every line names its source, even when one could not be
    // read.
    for (src, list) in &sources {
        for c in list
            .iter()
            .filter(|c| stats::matches(patterns, clusters::name(c)))
        {
            for h in hosts::rows(src, c) {
                if only_out && h.in_rotation {
                    continue;
                }
                if json {
                    out.line(&serde_json::to_string(&h).unwrap_or_default())?;
                } else {
                    out.line(&h.text(prefix))?;
                }
            }
        }
    }
    out.flush()?;
    finish(failed, false)
}

fn run_why(
    admins: &[Admin],
    patterns: &[Regex],
    logs: &[PathBuf],
    json: bool,
    out: &mut Out,
) -> Result<i32> {
    let mut summaries = Vec::new();
    for f in logs {
        let name = f.display().to_string();
        let input = log::open(&name)?;
        let mut s = log::Summary::default();
        let mut sink = Out::to(Box::new(std::io::sink()));
        log::scan(
            &name,
            input,
            &log::Filter::default(),
            log::Mode::Summary,
            &mut s,
            &mut sink,
        )?;
        summaries.push((name, s));
    }
    let (sources, failed) = gather(admins, |a| Ok((a.stats()?, a.clusters()?)))?;
    for (src, (st, cl)) in &sources {
        let found = why::findings(src, st, cl, patterns);
        if found.is_empty() && !json {
            let checked = cl
                .iter()
                .filter(|c| stats::matches(patterns, clusters::name(c)))
                .count();
            out.line(&why::nothing(src, checked))?;
        }
        for f in &found {
            if json {
                out.line(&serde_json::to_string(f).unwrap_or_default())?;
            } else {
                out.line(&why::sentence(f))?;
            }
        }
    }
    for (name, s) in &summaries {
        let counts = why::verdict::LogCounts::of(name, s);
        if json {
            out.line(&serde_json::to_string(&counts).unwrap_or_default())?;
        } else {
            for l in counts.sentences() {
                out.line(&l)?;
            }
        }
    }
    out.flush()?;
    finish(failed, false)
}
