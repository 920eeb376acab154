//! The control API on the Unix socket (meshctl ⇄ meshd): HTTP/1.1 with JSON bodies, usable
//! with `curl --unix-socket`.
//!
//! | call | what |
//! |---|---|
//! | `GET /v1/ping` | meshd's version and config directory |
//! | `GET /v1/resources[?kind=K&mesh=M&name=N]` | resources in describe form, with their files (nodes: `served` = `here`\|`elsewhere`) |
//! | `GET /v1/resource?kind=K&name=N[&mesh=M]` | one resource, plus the live state of a served node |
//! | `POST /v1/apply[?dryRun=true]` | body: a resource, an array, or `{"documents": [{"file", "content"}]}`; a node another meshd serves has `servedElsewhere` |
//! | `DELETE /v1/resource?kind=K&name=N[&mesh=M]` | refused while referred to |
//!
//! Errors are `{"code": "<App Mesh exception>", "message": ..., "errors": [{file, resource,
//! path, message}]}` with App Mesh's status codes (400, 403, 404, 409, 500).
//!
//! Mutating calls check the caller with SO_PEERCRED ([`auth`]) and go through the config path's
//! [`Applier::change`]: planned ([`store`]), put in force, then written to every file at once
//! under the journal; a refused change changes nothing. Each runs to its end in its own task,
//! so a client that hangs up cannot interrupt it half-way. Reads answer from the config in
//! force. A connection that sends no complete request head within `--control-timeout` is
//! closed.

pub mod auth;
pub mod explain;
pub mod live;

use std::convert::Infallible;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use mesh_core::model::{ConfigError, Kind, Resource};
use serde_json::{json, Value};

use crate::cli::Args;
use crate::config::nodes::Selection;
use crate::config::store::{self, StoreError};
use crate::config::{Applier, ChangeError};
use auth::{Caller, Policy};

/// Largest request body accepted.
const MAX_BODY: usize = 32 << 20;

struct Ctx {
    applier: Arc<Applier>,
    policy: Policy,
}

/// Starts serving the control API on `args.socket`: creates its folder, replaces a stale socket
/// (refuses to steal one a live meshd answers on), sets mode and group.
pub async fn start(applier: Arc<Applier>, args: &Args) -> std::io::Result<()> {
    let listener = bind(&args.socket)?;
    std::fs::set_permissions(
        &args.socket,
        std::fs::Permissions::from_mode(args.socket_mode),
    )?;
    let group = match &args.socket_group {
        Some(g) => {
            let gid = resolve_group(g)?;
            nix::unistd::chown(&args.socket, None, Some(nix::unistd::Gid::from_raw(gid)))
                .map_err(|e| std::io::Error::other(format!("cannot give it group {g}: {e}")))?;
            gid
        }
        None => nix::unistd::getegid().as_raw(),
    };
    let policy = Policy {
        own_uid: nix::unistd::geteuid().as_raw(),
        group,
        socket: args.socket.clone(),
    };

    tracing::info!(socket = %args.socket.display(), mode = format!("{:o}", args.socket_mode), gid = group, "control API ready on {}", args.socket.display());
    let ctx = Arc::new(Ctx { applier, policy });
    let head_timeout = args.control_timeout;
    let mut errors = crate::accept::AcceptErrors::new(
        "control socket",
        ctx.applier.admin().stats.control_accept.clone(),
    );
    tokio::spawn(async move {
        loop {
            let stream = match listener.accept().await {
                Ok((s, _)) => s,
                Err(e) => {
                    errors.failed(&e).await;
                    continue;
                }
            };
            errors.accepted();
            let caller = auth::caller(&stream).ok();
            let ctx = ctx.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |req| {
                    let ctx = ctx.clone();
                    async move { Ok::<_, Infallible>(handle(&ctx, caller, req).await) }
                });
                if let Err(e) = hyper::server::conn::http1::Builder::new()
                    .timer(hyper_util::rt::TokioTimer::new())
                    .header_read_timeout(head_timeout)
                    .serve_connection(TokioIo::new(stream), service)
                    .await
                {
                    tracing::debug!(error = %e, "control connection ended");
                }
            });
        }
    });
    Ok(())
}

/// Binds the socket, creating its folder and replacing a stale socket file.
fn bind(path: &Path) -> std::io::Result<tokio::net::UnixListener> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_socket() => match std::os::unix::net::UnixStream::connect(path) {
            Ok(_) => {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::AddrInUse,
                    "another meshd is answering on this socket; stop it or give this one \
                         another --socket",
                ))
            }
            Err(_) => {
                tracing::info!(socket = %path.display(), "replacing a stale socket {}", path.display());
                std::fs::remove_file(path)?;
            }
        },
        Ok(_) => {
            return Err(std::io::Error::new(
                std::io::ErrorKind::AlreadyExists,
                "exists and is not a socket; remove it or choose another --socket",
            ))
        }
        Err(_) => {}
    }
    tokio::net::UnixListener::bind(path)
}

fn resolve_group(name: &str) -> std::io::Result<u32> {
    if let Ok(gid) = name.parse::<u32>() {
        return Ok(gid);
    }
    match nix::unistd::Group::from_name(name) {
        Ok(Some(g)) => Ok(g.gid.as_raw()),
        _ => Err(std::io::Error::other(format!("no group named {name:?}"))),
    }
}

// === requests ===

type Reply = Response<Full<Bytes>>;

fn reply(status: StatusCode, body: &Value) -> Reply {
    let mut text = serde_json::to_string_pretty(body).unwrap_or_default();
    text.push('\n');
    let mut resp = Response::new(Full::new(Bytes::from(text)));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    resp
}

fn error(status: StatusCode, code: &str, message: &str, errors: &[ConfigError]) -> Reply {
    let errors: Vec<Value> = errors
        .iter()
        .map(|e| {
            json!({"file": e.file.display().to_string(), "resource": e.resource,
                   "path": e.path, "message": e.message, "line": e.to_string()})
        })
        .collect();
    reply(
        status,
        &json!({"code": code, "message": message, "errors": errors}),
    )
}

fn store_error(e: StoreError) -> Reply {
    match &e {
        StoreError::Invalid(errors) => error(
            StatusCode::BAD_REQUEST,
            "BadRequestException",
            "invalid resources; nothing was changed",
            errors,
        ),
        StoreError::NotFound(m) => error(StatusCode::NOT_FOUND, "NotFoundException", m, &[]),
        StoreError::InUse(m) => error(StatusCode::CONFLICT, "ResourceInUseException", m, &[]),
        StoreError::BadRequest(m) => error(StatusCode::BAD_REQUEST, "BadRequestException", m, &[]),
        StoreError::Io(m) => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "InternalServerErrorException",
            m,
            &[],
        ),
    }
}

fn dir_error(errors: Vec<ConfigError>) -> Reply {
    error(
        StatusCode::INTERNAL_SERVER_ERROR,
        "InternalServerErrorException",
        "the config directory has errors; fix them first (meshd's log and `meshctl validate -f DIR` show them)",
        &errors,
    )
}

async fn handle(ctx: &Ctx, caller: Option<Caller>, req: Request<Incoming>) -> Reply {
    let query: Vec<(String, String)> = req
        .uri()
        .query()
        .map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
        .unwrap_or_default();
    let q = |k: &str| {
        query
            .iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.clone())
    };
    let flag = |k: &str| q(k).is_some_and(|v| v != "false" && v != "0");
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    if method != Method::GET {
        let checked = match &caller {
            Some(c) => ctx.policy.check(c),
            None => Err("cannot read the caller's credentials (SO_PEERCRED)".to_string()),
        };
        if let Err(why) = checked {
            tracing::warn!(uid = caller.map(|c| c.uid), pid = caller.map(|c| c.pid), %path, "control call refused: {why}");
            return error(StatusCode::FORBIDDEN, "ForbiddenException", &why, &[]);
        }
    }
    let kind = match q("kind").map(|k| k.parse::<Kind>()).transpose() {
        Ok(k) => k,
        Err(e) => return error(StatusCode::BAD_REQUEST, "BadRequestException", &e.0, &[]),
    };
    let (name, mesh) = (q("name"), q("mesh"));
    match (method, path.as_str()) {
        (Method::GET, "/v1/ping") => reply(
            StatusCode::OK,
            &json!({"meshd": env!("CARGO_PKG_VERSION"),
                    "configDir": ctx.applier.dir().display().to_string()}),
        ),
        (Method::GET, "/v1/resources") => list(ctx, kind, mesh, name).await,
        (Method::GET, "/v1/explain") => match q("host") {
            Some(host) => {
                let in_force = ctx.applier.in_force();
                let view = ctx.applier.server().view.load();
                reply(
                    StatusCode::OK,
                    &explain::explain(&view, &in_force.set, &host),
                )
            }
            None => error(
                StatusCode::BAD_REQUEST,
                "BadRequestException",
                "query parameter host is required",
                &[],
            ),
        },
        (Method::GET, "/v1/resource") => match (kind, name) {
            (Some(kind), Some(name)) => describe(ctx, kind, &name, mesh.as_deref()).await,
            _ => missing_kind_name(),
        },
        (Method::DELETE, "/v1/resource") => match (kind, name) {
            (Some(kind), Some(name)) => {
                delete(ctx, caller, kind, &name, mesh.as_deref(), flag("dryRun")).await
            }
            _ => missing_kind_name(),
        },
        (Method::POST, "/v1/apply") => {
            let body = match Limited::new(req.into_body(), MAX_BODY).collect().await {
                Ok(b) => b.to_bytes(),
                Err(e) => {
                    return error(
                        StatusCode::BAD_REQUEST,
                        "BadRequestException",
                        &format!("cannot read the request body: {e}"),
                        &[],
                    )
                }
            };
            apply(ctx, caller, &body, flag("dryRun")).await
        }
        (_, p) => error(
            StatusCode::NOT_FOUND,
            "NotFoundException",
            &format!("no such call {p}; see meshd's control API in `meshctl --help`"),
            &[],
        ),
    }
}

fn missing_kind_name() -> Reply {
    error(
        StatusCode::BAD_REQUEST,
        "BadRequestException",
        "query parameters kind and name are required",
        &[],
    )
}

/// A resource with its file; for a virtual node, gateway or Istio WorkloadEntry also `served`:
/// `here` when this meshd serves it, `elsewhere` when another does, and `servedWhy`.
fn entry_json(file: &Path, r: &Resource, selection: &Selection) -> Value {
    let mut v = json!({"file": file.display().to_string(), "resource": r.to_describe_json()});
    if matches!(
        r.kind(),
        Kind::VirtualNode | Kind::VirtualGateway | Kind::WorkloadEntry
    ) {
        v["served"] = json!(selection.served_word(r.name()));
        v["servedWhy"] = json!(selection.choice(r.name()).map(|c| c.why.as_str()));
    }
    v
}

async fn list(ctx: &Ctx, kind: Option<Kind>, mesh: Option<String>, name: Option<String>) -> Reply {
    let in_force = ctx.applier.in_force();
    let items: Vec<Value> = in_force
        .set
        .entries()
        .filter(|(_, r)| kind.is_none_or(|k| r.kind() == k))
        .filter(|(_, r)| mesh.as_deref().is_none_or(|m| r.mesh() == m))
        .filter(|(_, r)| {
            name.as_deref()
                .is_none_or(|n| r.name() == n || r.key().qualified_name() == n)
        })
        .map(|(f, r)| entry_json(f, r, &in_force.selection))
        .collect();
    reply(StatusCode::OK, &json!({"resources": items}))
}

async fn describe(ctx: &Ctx, kind: Kind, name: &str, mesh: Option<&str>) -> Reply {
    let in_force = ctx.applier.in_force();
    let set = &in_force.set;
    let r = match store::resolve(set, kind, name, mesh) {
        Ok(r) => r,
        Err(e) => return store_error(e),
    };
    let file = set
        .file_of(kind, r.mesh(), &r.key().qualified_name())
        .map(Path::to_path_buf)
        .unwrap_or_default();
    let live = match kind {
        Kind::VirtualNode | Kind::VirtualGateway | Kind::WorkloadEntry => {
            live::node_state(&ctx.applier.server().view.load(), r.mesh(), r.name())
        }
        Kind::DestinationRule => match r {
            Resource::Istio(i) => match &i.spec {
                mesh_core::istio::IstioSpec::DestinationRule(d) => Some(explain::rule_state(
                    &ctx.applier.server().view.load(),
                    &d.host,
                )),
                _ => None,
            },
            _ => None,
        },
        _ => None,
    };
    let mut body = entry_json(&file, r, &in_force.selection);
    body["live"] = live.unwrap_or(Value::Null);
    reply(StatusCode::OK, &body)
}

/// The documents of an apply body, each with the file name to use in errors.
fn documents(body: &[u8]) -> Result<Vec<(PathBuf, Value)>, String> {
    let value: Value =
        serde_json::from_slice(body).map_err(|e| format!("the request body is not JSON: {e}"))?;
    if let Some(Value::Array(docs)) = value.get("documents") {
        return docs
            .iter()
            .enumerate()
            .map(|(i, d)| {
                let file = d
                    .get("file")
                    .and_then(Value::as_str)
                    .map(PathBuf::from)
                    .unwrap_or_else(|| PathBuf::from(format!("<document {i}>")));
                let content = d
                    .get("content")
                    .cloned()
                    .ok_or_else(|| format!("documents[{i}]: missing \"content\""))?;
                Ok((file, content))
            })
            .collect();
    }
    Ok(vec![(PathBuf::from("<request>"), value)])
}

async fn apply(ctx: &Ctx, caller: Option<Caller>, body: &[u8], dry_run: bool) -> Reply {
    let docs = match documents(body) {
        Ok(d) => d,
        Err(m) => return error(StatusCode::BAD_REQUEST, "BadRequestException", &m, &[]),
    };
    let incoming = match store::parse_documents(docs) {
        Ok(i) => i,
        Err(e) => return store_error(e),
    };
    // In its own task: a client hanging up cannot stop a change half-way.
    let applier = ctx.applier.clone();
    let done = tokio::spawn(async move {
        applier
            .change(dry_run, move |dir, current| {
                store::plan_apply(dir, current, incoming)
            })
            .await
    })
    .await;
    let outcomes = match done {
        Ok(Ok(o)) => o,
        Ok(Err(e)) => return change_error(e),
        Err(e) => return internal(&format!("the apply failed: {e}")),
    };
    let selection = ctx.applier.in_force().selection.clone();
    let results: Vec<Value> = outcomes
        .iter()
        .map(|o| {
            let kind = o.resource.kind();
            let elsewhere = matches!(kind, Kind::VirtualNode | Kind::VirtualGateway)
                .then(|| selection.elsewhere(o.resource.name()))
                .flatten();
            if !dry_run && o.action != store::Action::Unchanged {
                tracing::info!(uid = caller.map(|c| c.uid), resource = %o.resource.label(), action = o.action.as_str(), file = %o.file.display(), "{} {} ({})", o.resource.label(), o.action.as_str(), o.file.display());
            }
            let warnings: Vec<String> = o.warnings.iter().map(ToString::to_string).collect();
            json!({"resource": o.resource.label(), "action": o.action.as_str(),
                   "file": o.file.display().to_string(), "warnings": warnings,
                   "version": o.resource.metadata().and_then(|m| m.version),
                   "servedElsewhere": elsewhere})
        })
        .collect();
    reply(
        StatusCode::OK,
        &json!({"dryRun": dry_run, "results": results}),
    )
}

fn internal(message: &str) -> Reply {
    error(
        StatusCode::INTERNAL_SERVER_ERROR,
        "InternalServerErrorException",
        message,
        &[],
    )
}

/// A refused or failed change: nothing was changed.
fn change_error(e: ChangeError) -> Reply {
    match e {
        ChangeError::Store(e) => store_error(e),
        ChangeError::DirInvalid(errors) => dir_error(errors),
        ChangeError::Apply(e) => internal(&format!(
            "cannot put the change in force: {e}; nothing was changed"
        )),
        ChangeError::Write(e) => internal(&format!(
            "cannot write the config directory: {e}; the previous config is still in force"
        )),
    }
}

async fn delete(
    ctx: &Ctx,
    caller: Option<Caller>,
    kind: Kind,
    name: &str,
    mesh: Option<&str>,
    dry_run: bool,
) -> Reply {
    let applier = ctx.applier.clone();
    let (name, mesh) = (name.to_owned(), mesh.map(str::to_owned));
    let done = tokio::spawn(async move {
        applier
            .change(dry_run, move |_dir, set| {
                store::plan_delete(set, kind, &name, mesh.as_deref())
            })
            .await
    })
    .await;
    let deleted = match done {
        Ok(Ok(d)) => d,
        Ok(Err(e)) => return change_error(e),
        Err(e) => return internal(&format!("the delete failed: {e}")),
    };
    if !dry_run {
        tracing::info!(uid = caller.map(|c| c.uid), resource = %deleted.label(), "{} deleted", deleted.label());
    }
    reply(
        StatusCode::OK,
        &json!({"dryRun": dry_run, "resource": deleted.to_describe_json()}),
    )
}
