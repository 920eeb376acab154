//! meshctl: applies, lists, describes and deletes mesh resources through meshd's control socket
//! (HTTP/1.1 with JSON over a Unix socket; see `meshd::control` for the calls), and validates
//! resource files offline.
//!
//! - [`cli`]: the command line (also the source of completions and the man page);
//! - [`client`]: HTTP over the Unix socket;
//! - [`input`]: reading `-f FILE|DIR|-` and offline validation;
//! - [`output`]: tables and the live state.

pub mod capture;
pub mod cli;
pub mod client;
pub mod explain;
pub mod input;
pub mod istio;
pub mod offline;
pub mod output;

use std::io::{IsTerminal as _, Write as _};

use clap::CommandFactory as _;
#[cfg(test)]
use clap::Parser as _;
use http::{Method, StatusCode};
use mesh_core::model::{parse_value, resource_not_in_force, ConfigError, Kind};
use serde_json::{json, Value};

use crate::cli::{Cli, Command, Format, GetFormat};
use crate::client::{query, Client, Reply};

/// Why meshctl failed; [`Error::exit_code`] maps it to 1 or 2.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Bad usage or unreadable input (exit 2).
    #[error("{0}")]
    Usage(String),
    /// Invalid resources found locally (exit 2), one line each.
    #[error("{}", .0.iter().map(|e| format!("invalid resource : {e}")).collect::<Vec<_>>().join("\n"))]
    Invalid(Vec<ConfigError>),
    /// meshd refused the input as invalid (exit 2): its message lines.
    #[error("{}", .0.join("\n"))]
    Refused(Vec<String>),
    /// A runtime failure: no daemon, permission, not found, in use (exit 1).
    #[error("{0}")]
    Runtime(String),
}

impl Error {
    /// 2 for invalid input or usage, 1 otherwise.
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Usage(_) | Error::Invalid(_) | Error::Refused(_) => 2,
            Error::Runtime(_) => 1,
        }
    }

    /// One line per problem, without the `meshctl: ` prefix.
    pub fn lines(&self) -> Vec<String> {
        self.to_string().lines().map(str::to_string).collect()
    }
}

/// Runs one command, printing its output on stdout.
pub fn run(cli: Cli) -> Result<(), Error> {
    match cli.command {
        Command::Completions { shell } => {
            let mut cmd = Cli::command();
            clap_complete::generate(shell, &mut cmd, "meshctl", &mut std::io::stdout());
            Ok(())
        }
        Command::Man => {
            let mut out = Vec::new();
            clap_mangen::Man::new(Cli::command())
                .render(&mut out)
                .map_err(|e| Error::Runtime(format!("cannot render the man page : {e}")))?;
            print(&String::from_utf8_lossy(&out))
        }
        Command::Validate {
            files,
            no_references,
            output,
        } => validate(&files, no_references, output),
        Command::Apply {
            files,
            dry_run,
            config_dir: Some(dir),
            output,
        } => offline::apply(&dir, &files, dry_run, output),
        Command::Diff { files, config_dir } => offline::diff(&config_dir, &files),
        Command::Capture {
            action,
            egress_port,
            ignore_uids,
            ignore_ips,
            ignore_ports,
        } => print(&match action {
            cli::CaptureAction::Enable => capture::enable(&capture::Rules {
                egress_port,
                ignore_uids: ignore_uids
                    .iter()
                    .map(|u| capture::uid_of(u))
                    .collect::<Result<_, _>>()?,
                ignore_ips,
                ignore_ports,
            })?,
            cli::CaptureAction::Disable => capture::disable()?,
            cli::CaptureAction::Status => capture::status()?,
        }),
        command => {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| Error::Runtime(format!("cannot start the runtime : {e}")))?;
            let client = Client::new(&cli.socket);
            runtime.block_on(remote(&client, cli.mesh.as_deref(), command))
        }
    }
}

/// `meshctl validate`: the `ok` line and one `not in force:` line per accepted setting not in
/// force; with `-o json` the same as data, and the errors as data when invalid (exit 2 either
/// way).
fn validate(
    files: &[std::path::PathBuf],
    no_references: bool,
    output: Format,
) -> Result<(), Error> {
    let result = input::read_inputs(files)
        .and_then(|docs| input::validate(&docs, no_references).map(|v| (docs, v)));
    let (docs, valid) = match (result, output) {
        (Ok(ok), _) => ok,
        (Err(Error::Invalid(errors)), Format::Json) => {
            print(&pretty(&json!({
                "valid": false,
                "errors": errors.iter().map(output::config_error_json).collect::<Vec<_>>(),
                "notInForce": [],
            })))?;
            return Err(Error::Invalid(errors));
        }
        (Err(e), _) => return Err(e),
    };
    let files = input::file_count(&docs);
    for w in &valid.warnings {
        eprintln!("warning: {w}");
    }
    if output == Format::Json {
        return print(&pretty(&json!({
            "valid": true,
            "resources": valid.count,
            "files": files,
            "referencesChecked": !no_references,
            "errors": [],
            "notInForce": valid.not_in_force,
            "warnings": valid.warnings.iter().map(output::config_error_json).collect::<Vec<_>>(),
        })));
    }
    let refs = if no_references {
        " (reference checks skipped)"
    } else {
        ""
    };
    let mut text = format!(
        "ok: {} resources in {files} files are valid{refs}\n",
        valid.count
    );
    for item in &valid.not_in_force {
        text.push_str(&format!("not in force: {item}\n"));
    }
    print(&text)
}

/// The settings of a described resource that are accepted but not in force, one line each for
/// stderr (stdout stays the describe JSON, which round-trips through apply).
fn not_in_force_notes(body: &Value) -> Vec<String> {
    let file = body.get("file").and_then(Value::as_str).unwrap_or("");
    let Some(resource) = body.get("resource") else {
        return Vec::new();
    };
    let Ok(resources) = parse_value(std::path::Path::new(file), resource) else {
        return Vec::new();
    };
    resources
        .iter()
        .flat_map(|r| resource_not_in_force(std::path::Path::new(file), r))
        .map(|n| format!("not in force : {n}"))
        .collect()
}

fn print(text: &str) -> Result<(), Error> {
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Ok(()) => Ok(()),
        // A closed pipe (`| head`) is not an error.
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        Err(e) => Err(Error::Runtime(format!("cannot write output : {e}"))),
    }
}

fn pretty(v: &Value) -> String {
    let mut s = serde_json::to_string_pretty(v).unwrap_or_default();
    s.push('\n');
    s
}

fn kind(s: &str) -> Result<Kind, Error> {
    s.parse::<Kind>()
        .map_err(|e| Error::Usage(format!("kind \"{s}\" : {e}")))
}

/// Turns a non-2xx reply into an error: 400 is invalid input (exit 2), the rest exit 1.
fn check(reply: Reply, what: &str) -> Result<Value, Error> {
    if reply.status.is_success() {
        return Ok(reply.body);
    }
    let message = reply
        .body
        .get("message")
        .and_then(Value::as_str)
        .unwrap_or("no message")
        .to_string();
    let errors: Vec<String> = reply
        .body
        .get("errors")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|e| e.get("line").and_then(Value::as_str))
        .map(|l| format!("invalid resource : {l}"))
        .collect();
    match reply.status {
        StatusCode::BAD_REQUEST if !errors.is_empty() => Err(Error::Refused(errors)),
        StatusCode::BAD_REQUEST => Err(Error::Refused(vec![format!("{what} : {message}")])),
        StatusCode::FORBIDDEN => Err(Error::Runtime(format!(
            "{what} refused by meshd (403 Forbidden) : {message}"
        ))),
        _ if !errors.is_empty() => {
            let mut lines = vec![format!("{what} : {message}")];
            lines.extend(errors);
            Err(Error::Runtime(lines.join("\n")))
        }
        _ => Err(Error::Runtime(format!("{what} : {message}"))),
    }
}

async fn remote(client: &Client, mesh: Option<&str>, command: Command) -> Result<(), Error> {
    match command {
        Command::Apply {
            files,
            dry_run,
            output,
            ..
        } => {
            let docs = input::read_inputs(&files)?;
            let documents: Vec<Value> = docs
                .iter()
                .map(|d| json!({"file": d.file.display().to_string(), "content": d.value}))
                .collect();
            let body = serde_json::to_vec(&json!({ "documents": documents }))
                .map_err(|e| Error::Usage(format!("cannot encode the request : {e}")))?;
            let path = if dry_run {
                "/v1/apply?dryRun=true"
            } else {
                "/v1/apply"
            };
            let reply = client.call(Method::POST, path, Some(body)).await?;
            let body = check(reply, "apply")?;
            if output == Format::Json {
                return print(&pretty(&body));
            }
            let suffix = if dry_run { " (dry run)" } else { "" };
            let mut out = String::new();
            for r in body
                .get("results")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let name = r.get("resource").and_then(Value::as_str).unwrap_or("?");
                let action = r.get("action").and_then(Value::as_str).unwrap_or("?");
                let elsewhere = match r.get("servedElsewhere").and_then(Value::as_str) {
                    Some(w) => format!(" (served elsewhere: {w})"),
                    None => String::new(),
                };
                out.push_str(&format!("{name} {action}{elsewhere}{suffix}\n"));
                for w in r
                    .get("warnings")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_str)
                {
                    eprintln!("warning: {w}");
                }
            }
            print(&out)
        }
        Command::Get {
            kind: k,
            name,
            output,
        } => {
            let kinds = k.as_deref().map(istio::kinds_for).transpose()?;
            let mut entries: Vec<Value> = Vec::new();
            for k in kinds
                .clone()
                .map_or(vec![None], |ks| ks.into_iter().map(Some).collect())
            {
                let q = query(&[
                    ("kind", k.map(Kind::as_str)),
                    ("name", name.as_deref()),
                    ("mesh", mesh),
                ]);
                let reply = client
                    .call(Method::GET, &format!("/v1/resources?{q}"), None)
                    .await?;
                let body = check(reply, "get")?;
                entries.extend(
                    body.get("resources")
                        .and_then(Value::as_array)
                        .cloned()
                        .unwrap_or_default(),
                );
            }
            if let (Some(n), true) = (&name, entries.is_empty()) {
                let what = k.as_deref().unwrap_or("resource");
                return Err(Error::Runtime(format!(
                    "get : {what}/{n} not found; `meshctl get` lists every resource"
                )));
            }
            let (istio_entries, app_mesh): (Vec<Value>, Vec<Value>) =
                entries.iter().cloned().partition(istio::is_istio_entry);
            match output {
                GetFormat::Json => {
                    let list: Vec<Value> = entries.iter().filter_map(output::get_json).collect();
                    print(&pretty(&Value::Array(list)))
                }
                GetFormat::Yaml => {
                    let list: Vec<Value> = entries.iter().filter_map(output::get_json).collect();
                    print(&mesh_core::istio::to_yaml(&list))
                }
                GetFormat::Table | GetFormat::Wide if entries.is_empty() => {
                    eprintln!("meshctl: get : no resources found");
                    Ok(())
                }
                GetFormat::Table | GetFormat::Wide => {
                    let wide = output == GetFormat::Wide;
                    let mut text = String::new();
                    if !app_mesh.is_empty() {
                        text.push_str(&output::table(&app_mesh, wide));
                    }
                    let istio_text = istio::tables(&istio_entries, wide);
                    if !text.is_empty() && !istio_text.is_empty() {
                        text.push('\n');
                    }
                    text.push_str(&istio_text);
                    print(&text)
                }
            }
        }
        Command::Describe {
            kind: k,
            name,
            live,
            no_live,
            output,
        } => {
            let kinds = istio::kinds_for(&k)?;
            let (k, body) = istio::find_one(client, &kinds, &name, mesh, "describe").await?;
            for note in not_in_force_notes(&body) {
                eprintln!("meshctl: {note}");
            }
            // A node another meshd serves: say where (its live state is there, not here).
            if body.get("served").and_then(Value::as_str) == Some("elsewhere") {
                let why = body.get("servedWhy").and_then(Value::as_str).unwrap_or("");
                eprintln!("meshctl: {k}/{name} is served elsewhere, not by this meshd ({why})");
            }
            let resource = body.get("resource").cloned().unwrap_or(Value::Null);
            let state = body.get("live").filter(|v| !v.is_null());
            let show_live = !no_live && (live || std::io::stdout().is_terminal());
            if output == Format::Yaml {
                return print(&mesh_core::istio::to_yaml(&[resource]));
            }
            if output == Format::Json {
                let mut out = output::get_json(&body).unwrap_or(Value::Null);
                if let (true, Some(s), Some(obj)) = (show_live, state, out.as_object_mut()) {
                    obj.insert("live".to_string(), s.clone());
                }
                return print(&pretty(&out));
            }
            // Istio users read and write YAML.
            let mut text = if k.is_istio() {
                mesh_core::istio::to_yaml(&[resource])
            } else {
                pretty(&resource)
            };
            if show_live {
                match state {
                    // A DestinationRule: the clusters it shapes here, client and server side.
                    Some(s) if k == Kind::DestinationRule => {
                        text.push_str("Resulting clusters on this meshd:\n");
                        for c in s["clusters"].as_array().into_iter().flatten() {
                            text.push_str(&explain::cluster_text(c));
                        }
                    }
                    Some(s) => text.push_str(&output::live_text(s)),
                    None if live => {
                        text.push_str("Live state: not served by this meshd\n");
                    }
                    None => {}
                }
            }
            print(&text)
        }
        Command::Explain { host, output } => {
            let q = query(&[("host", Some(&host))]);
            let reply = client
                .call(Method::GET, &format!("/v1/explain?{q}"), None)
                .await?;
            let body = check(reply, &format!("explain {host}"))?;
            if output == Format::Json {
                return print(&pretty(&body));
            }
            print(&explain::text(&body))
        }
        Command::Delete {
            kind: k,
            name,
            dry_run,
        } => {
            let kinds = istio::kinds_for(&k)?;
            let k = match kinds.as_slice() {
                [one] => *one,
                _ => {
                    istio::find_one(client, &kinds, &name, mesh, "delete")
                        .await?
                        .0
                }
            };
            let dry = dry_run.then_some("true");
            let q = query(&[
                ("kind", Some(k.as_str())),
                ("name", Some(&name)),
                ("mesh", mesh),
                ("dryRun", dry),
            ]);
            let reply = client
                .call(Method::DELETE, &format!("/v1/resource?{q}"), None)
                .await?;
            let body = check(reply, &format!("delete {k}/{name}"))?;
            let suffix = if dry_run { " (dry run)" } else { "" };
            let label = body
                .get("resource")
                .filter(|_| !k.is_istio())
                .and_then(|w| w.as_object())
                .and_then(|w| w.iter().next())
                .map(|(_, inner)| {
                    let s = |key: &str| inner.get(key).and_then(Value::as_str).unwrap_or("");
                    match k.parent_kind() {
                        Some(p) => format!("{k}/{}/{}", s(p.name_key()), s(k.name_key())),
                        None => format!("{k}/{}", s(k.name_key())),
                    }
                })
                .unwrap_or_else(|| format!("{k}/{name}"));
            print(&format!("{label} deleted{suffix}\n"))
        }
        Command::Completions { .. }
        | Command::Man
        | Command::Validate { .. }
        | Command::Diff { .. }
        | Command::Capture { .. } => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn invalid_input_exits_2_and_runtime_failures_1() {
        assert_eq!(Error::Usage("x".into()).exit_code(), 2);
        assert_eq!(Error::Refused(vec!["x".into()]).exit_code(), 2);
        assert_eq!(Error::Runtime("x".into()).exit_code(), 1);
    }

    #[test]
    fn offline_validation_needs_no_daemon() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("mesh.json");
        std::fs::write(&file, r#"{"meshName": "m", "spec": {}}"#).expect("write");
        let cli = Cli::try_parse_from([
            "meshctl",
            "--socket",
            "/nonexistent.sock",
            "validate",
            "-f",
            file.to_str().expect("path"),
        ])
        .expect("parse");
        assert!(run(cli).is_ok());
    }
}
