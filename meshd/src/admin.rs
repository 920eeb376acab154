//! The admin HTTP endpoint: `/stats`, `/stats/prometheus`, `/clusters`, `/listeners`,
//! `/config_dump`, `/ready`, `POST /reset_counters`. Loopback by default.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Instant;

use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use regex::Regex;
use tokio::net::TcpListener;

use crate::body::ResponseBody;
use crate::render::{self, ServerStats};
use crate::server::Server;

/// What the admin endpoint serves from.
pub struct Admin {
    /// The daemon.
    pub server: Arc<Server>,
    /// Process-wide stats.
    pub stats: Arc<ServerStats>,
    /// When the process started.
    pub started: Instant,
    /// The resources in force, as `/config_dump` shows them.
    pub config_dump: arc_swap::ArcSwap<serde_json::Value>,
}

fn reply(status: StatusCode, content_type: &str, body: String) -> Response<ResponseBody> {
    let mut r = Response::new(ResponseBody::plain(body));
    *r.status_mut() = status;
    if let Ok(v) = http::HeaderValue::from_str(content_type) {
        r.headers_mut().insert(http::header::CONTENT_TYPE, v);
    }
    r
}

fn params(req: &Request<Incoming>) -> HashMap<String, String> {
    req.uri()
        .query()
        .map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
        .unwrap_or_default()
}

const INDEX: &str = "admin commands are:
  /clusters: upstream cluster status (?format=json)
  /config_dump: the resources in force
  /listeners: listener addresses (?format=json)
  /ready: 200 once listeners are bound
  /reset_counters: POST: reset every counter to zero
  /stats: counters and gauges (?filter=REGEX, ?format=json, ?usedonly, ?node=NAME)
  /stats/prometheus: Prometheus exposition format
";

impl Admin {
    async fn handle(
        self: Arc<Self>,
        req: Request<Incoming>,
    ) -> Result<Response<ResponseBody>, Infallible> {
        let path = req.uri().path().to_owned();
        let q = params(&req);
        let view = self.server.view.load_full();
        let text = "text/plain; charset=UTF-8";
        let resp = match (req.method(), path.as_str()) {
            (&Method::GET, "/") => reply(StatusCode::OK, text, INDEX.into()),
            (&Method::GET, "/ready") => reply(StatusCode::OK, text, "LIVE\n".into()),
            (&Method::GET, "/stats") | (&Method::GET, "/stats/prometheus") => {
                let filter = match q.get("filter").map(|f| Regex::new(f)) {
                    Some(Err(e)) => {
                        return Ok(reply(
                            StatusCode::BAD_REQUEST,
                            text,
                            format!("Invalid re2 regex: {e}\n"),
                        ))
                    }
                    Some(Ok(r)) => Some(r),
                    None => None,
                };
                let uptime = self.started.elapsed().as_secs();
                let mut stats = render::collect(
                    &view,
                    &self.stats,
                    uptime,
                    q.get("node").map(String::as_str),
                );
                if let Some(f) = &filter {
                    stats.retain(|s| f.is_match(&s.name));
                }
                if q.contains_key("usedonly") {
                    stats.retain(|s| s.value != 0);
                }
                let prom = path == "/stats/prometheus"
                    || q.get("format").is_some_and(|f| f == "prometheus");
                if prom {
                    reply(
                        StatusCode::OK,
                        "text/plain; version=0.0.4; charset=utf-8",
                        render::prometheus(&stats),
                    )
                } else if q.get("format").is_some_and(|f| f == "json") {
                    reply(StatusCode::OK, "application/json", render::json(&stats))
                } else {
                    reply(StatusCode::OK, text, render::text(&stats))
                }
            }
            (&Method::GET, "/clusters") | (&Method::POST, "/clusters") => {
                if q.get("format").is_some_and(|f| f == "json") {
                    reply(
                        StatusCode::OK,
                        "application/json",
                        render::clusters_json(&view),
                    )
                } else {
                    reply(StatusCode::OK, text, render::clusters_text(&view))
                }
            }
            (&Method::GET, "/listeners") => {
                if q.get("format").is_some_and(|f| f == "json") {
                    let list: Vec<serde_json::Value> = view
                        .listeners
                        .iter()
                        .map(|(node, role, addr, _)| {
                            serde_json::json!({
                                "name": format!("{node}-{}", role.as_str()),
                                "node": node,
                                "role": role.as_str(),
                                "local_address": {"socket_address": {"address": addr.ip().to_string(), "port_value": addr.port()}},
                            })
                        })
                        .collect();
                    reply(
                        StatusCode::OK,
                        "application/json",
                        serde_json::json!({ "listener_statuses": list }).to_string() + "\n",
                    )
                } else {
                    let mut out = String::new();
                    for (node, role, addr, _) in &view.listeners {
                        out.push_str(&format!("{node}-{}::{addr}\n", role.as_str()));
                    }
                    reply(StatusCode::OK, text, out)
                }
            }
            (&Method::GET, "/config_dump") => {
                let mut body = serde_json::to_string_pretty(&**self.config_dump.load())
                    .unwrap_or_else(|_| "{}".into());
                body.push('\n');
                reply(StatusCode::OK, "application/json", body)
            }
            (&Method::POST, "/reset_counters") => {
                for c in &view.clusters {
                    let i = c.info();
                    i.counters.reset();
                    i.codes.reset();
                    i.breakers.reset_counters();
                    i.high.reset_counters();
                    for h in c.hosts() {
                        h.counters.reset();
                    }
                }
                for (_, _, _, s) in &view.listeners {
                    s.reset();
                }
                self.stats.config_reload_success.reset();
                self.stats.config_reload_failure.reset();
                reply(StatusCode::OK, text, "OK\n".into())
            }
            (_, "/reset_counters") => reply(
                StatusCode::METHOD_NOT_ALLOWED,
                text,
                "This endpoint requires POST.\n".into(),
            ),
            _ => reply(
                StatusCode::NOT_FOUND,
                text,
                format!("invalid path. {INDEX}"),
            ),
        };
        Ok(resp)
    }

    /// Serves the admin endpoint on `socket` until the process ends.
    pub async fn serve(self: Arc<Self>, socket: TcpListener) {
        let mut errors = crate::accept::AcceptErrors::new("admin", self.stats.admin_accept.clone());
        loop {
            let tcp = match socket.accept().await {
                Ok((tcp, _)) => tcp,
                Err(e) => {
                    errors.failed(&e).await;
                    continue;
                }
            };
            errors.accepted();
            let admin = self.clone();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |req| admin.clone().handle(req));
                let _ = hyper::server::conn::http1::Builder::new()
                    .timer(TokioTimer::new())
                    .max_buf_size(crate::accept::MAX_CONN_BUF)
                    .serve_connection(TokioIo::new(tcp), svc)
                    .await;
            });
        }
    }
}
