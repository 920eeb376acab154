//! The admin HTTP endpoint: `/stats`, `/stats/prometheus`, `/clusters`, `/listeners`,
//! `/config_dump`, `/ready`, `POST /reset_counters`. Loopback by default. The same handler
//! serves the read-only stats listener for a fleet ([`stats_listener`], `--stats-listen`),
//! which answers only the reading calls.
//!
//! It has no authentication: whoever can connect to it can read every stat and reset counters.
//! What it refuses, with 403 and a body saying why ([`refusal`]): a request from a browser page
//! (one carrying `Origin`), a request whose `Host` is a DNS name other than `localhost` (DNS
//! rebinding), and a mutating request that carries a body (a browser's "simple" cross-origin
//! POST). `POST /reset_counters` never resets the counters that record faults and refusals
//! ([`mesh_core::stats::kept_on_reset`]).

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use http::{Method, Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use regex::Regex;
use tokio::net::TcpListener;

use crate::body::ResponseBody;
use crate::render::{self, ServerStats};
use crate::server::Server;

pub mod stats_listener;

/// Which endpoint a request came in on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Surface {
    /// The admin endpoint (`--admin`): every call.
    Admin,
    /// The read-only stats listener (`--stats-listen`): [`stats_listener::PATHS`], GET only.
    Stats,
}

/// What the admin endpoint serves from.
pub struct Admin {
    /// The daemon.
    pub server: Arc<Server>,
    /// Process-wide stats.
    pub stats: Arc<ServerStats>,
    /// When the process started.
    pub started: Instant,
    /// The config in force (shared with the config path), rendered by `/config_dump` on demand.
    pub in_force: Arc<arc_swap::ArcSwap<crate::config::InForce>>,
    /// Host names accepted in `Host` besides IP addresses and `localhost`
    /// (`--admin-allow-host`), on the admin and the stats listener.
    pub allow_hosts: Vec<String>,
    /// The stats listener's bound address, once it is listening (shown in `/listeners`).
    pub stats_addr: OnceLock<SocketAddr>,
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
  /reset_counters: POST with no body: reset counters to zero, except those that record faults and refusals
  /stats: counters and gauges (?filter=REGEX, ?format=json, ?usedonly, ?node=NAME)
  /stats/prometheus: Prometheus exposition format
";

/// Whether `host` (a `Host` header or a request target's authority, port optional) names this
/// machine in a way no other web origin can: an IP literal or `localhost`. DNS rebinding needs a
/// DNS name the attacker controls, so any other name is refused. Any IP literal is accepted, not
/// only loopback and the bound address: a browser sends an IP literal only to that IP's own
/// origin (a cross-origin request carries `Origin` and is refused anyway), and the address a
/// client dials may differ from the one the admin sees (NAT, a `0.0.0.0` bind, port forwards).
fn host_allowed(host: &str, allow: &[String]) -> bool {
    let Ok(auth) = host.parse::<http::uri::Authority>() else {
        return false;
    };
    if auth.as_str().contains('@') {
        return false; // `user@host` is not a Host value
    }
    let name = auth.host();
    let port = auth.as_str().get(name.len()..).unwrap_or_default();
    if !(port.is_empty()
        || port
            .strip_prefix(':')
            .is_some_and(|p| p.parse::<u16>().is_ok()))
    {
        return false;
    }
    let bare = name
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(name);
    let bare = bare.strip_suffix('.').unwrap_or(bare);
    bare.eq_ignore_ascii_case("localhost")
        || bare.parse::<IpAddr>().is_ok()
        || allow.iter().any(|a| bare.eq_ignore_ascii_case(a))
}

/// Why the admin refuses `req`, or `None` when it may be served. Every request: no `Origin`
/// (browsers send it on every cross-origin fetch and every POST; `curl`, Prometheus and meshstat
/// never do), and a `Host` (and absolute request target) naming this machine ([`host_allowed`]).
/// A mutating request (`mutating`): no body, so neither `Transfer-Encoding` nor a
/// `Content-Length` other than 0; a browser's cross-origin "simple" POST (`text/plain`, no
/// preflight) always has one.
fn refusal<B>(req: &Request<B>, mutating: bool, allow: &[String]) -> Option<&'static str> {
    let h = req.headers();
    if h.contains_key(http::header::ORIGIN) {
        return Some(
            "the admin endpoint refuses requests from web pages (this one carries an Origin header): \
             it has no authentication, so a page must not reach it through a browser",
        );
    }
    let hosts = h.get_all(http::header::HOST);
    if hosts.iter().count() > 1 {
        return Some("the admin endpoint refuses a request with more than one Host header");
    }
    let named = hosts
        .iter()
        .map(|v| v.to_str().ok())
        .chain(req.uri().authority().map(|a| Some(a.as_str())));
    for host in named {
        if !host.is_some_and(|h| host_allowed(h, allow)) {
            return Some(
                "the admin endpoint refuses a Host that is not an IP address, localhost or a name \
                 given with --admin-allow-host (DNS rebinding): address it by IP, e.g. \
                 http://127.0.0.1:9901/",
            );
        }
    }
    if mutating {
        let chunked = h.contains_key(http::header::TRANSFER_ENCODING);
        let length = h
            .get_all(http::header::CONTENT_LENGTH)
            .iter()
            .any(|v| v.as_bytes() != b"0");
        if chunked || length {
            return Some(
                "a mutating admin request must be a POST with no body \
                 (what a browser sends cross-origin without asking first always has one)",
            );
        }
    }
    None
}

impl Admin {
    async fn handle(
        self: Arc<Self>,
        req: Request<Incoming>,
        surface: Surface,
    ) -> Result<Response<ResponseBody>, Infallible> {
        let path = req.uri().path().to_owned();
        let mutating = path == "/reset_counters" && req.method() == Method::POST;
        if let Some(why) = refusal(&req, mutating, &self.allow_hosts) {
            static WARNED: AtomicBool = AtomicBool::new(false);
            static WARNED_STATS: AtomicBool = AtomicBool::new(false);
            let (counter, warned, what) = match surface {
                Surface::Admin => (&self.stats.admin_rq_refused, &WARNED, "admin"),
                Surface::Stats => (&self.stats.stats_rq_refused, &WARNED_STATS, "stats"),
            };
            counter.inc();
            if !warned.swap(true, Ordering::Relaxed) {
                tracing::warn!(
                    reason = why,
                    "{what} request refused (counted in server.{what}_rq_refused; logged once)"
                );
            } else {
                tracing::debug!(reason = why, "{what} request refused");
            }
            // Read what the client sends (bounded) before answering and closing: closing on
            // unread bytes resets the connection, and the client would lose the answer.
            let body = http_body_util::Limited::new(req.into_body(), 64 * 1024);
            let _ = tokio::time::timeout(Duration::from_secs(1), body.collect()).await;
            let mut r = reply(
                StatusCode::FORBIDDEN,
                "text/plain; charset=UTF-8",
                format!("{why}\n"),
            );
            r.headers_mut().insert(
                http::header::CONNECTION,
                http::HeaderValue::from_static("close"),
            );
            return Ok(r);
        }
        if surface == Surface::Stats {
            if let Some(r) = stats_listener::gate(req.method(), &path) {
                self.stats.stats_rq_refused.inc();
                return Ok(r);
            }
        }
        let q = params(&req);
        let view = self.server.view.load_full();
        let text = "text/plain; charset=UTF-8";
        let resp = match (req.method(), path.as_str()) {
            (&Method::GET, "/") => reply(StatusCode::OK, text, INDEX.into()),
            (&Method::GET, "/ready") if self.server.stopping() => {
                reply(StatusCode::SERVICE_UNAVAILABLE, text, "DRAINING\n".into())
            }
            (&Method::GET, "/ready") => {
                let nodes = self.in_force.load().selection.ready_lines();
                reply(StatusCode::OK, text, format!("LIVE\n{nodes}"))
            }
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
                    let mut list: Vec<serde_json::Value> = view
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
                    if let Some(addr) = self.stats_addr.get() {
                        list.push(serde_json::json!({
                            "name": "stats",
                            "role": "stats",
                            "local_address": {"socket_address": {"address": addr.ip().to_string(), "port_value": addr.port()}},
                        }));
                    }
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
                    if let Some(addr) = self.stats_addr.get() {
                        out.push_str(&format!("stats::{addr}\n"));
                    }
                    reply(StatusCode::OK, text, out)
                }
            }
            (&Method::GET, "/config_dump") => {
                // Rendered when asked (a large mesh's dump is tens of MB: not kept in memory),
                // off the proxy's threads.
                let in_force = self.in_force.load_full();
                let body = tokio::task::spawn_blocking(move || {
                    let mut body = serde_json::to_string_pretty(&crate::config::load::config_dump(
                        &in_force.set,
                    ))
                    .unwrap_or_else(|_| "{}".into());
                    body.push('\n');
                    body
                })
                .await
                .unwrap_or_else(|_| "{}\n".into());
                reply(StatusCode::OK, "application/json", body)
            }
            (&Method::POST, "/reset_counters") => {
                // Each `reset` keeps the counters that record faults and refusals
                // (`mesh_core::stats::kept_on_reset`).
                for c in &view.clusters {
                    let i = c.info();
                    i.counters.reset();
                    i.codes.reset();
                    i.breakers.reset_counters();
                    i.high.reset_counters();
                    for h in c.hosts() {
                        h.counters.reset();
                    }
                    if let crate::server::AnyCluster::Tcp(u) = c {
                        u.retry_stats.reset();
                        if let Some(d) = u.outlier() {
                            d.stats().reset();
                        }
                        if let Some(h) = u.health() {
                            h.stats().reset();
                        }
                    }
                }
                for (_, _, _, s) in &view.listeners {
                    s.reset();
                }
                for w in &view.logs {
                    w.stats.reset();
                }
                self.stats.reset();
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
        let accept = self.stats.admin_accept.clone();
        self.serve_on(socket, Surface::Admin, accept).await;
    }

    /// Serves `surface` on `socket` until the process ends; accept failures are paused on and
    /// counted in `accept` ([`crate::accept`]).
    async fn serve_on(
        self: Arc<Self>,
        socket: TcpListener,
        surface: Surface,
        accept: Arc<crate::accept::AcceptStats>,
    ) {
        let name = match surface {
            Surface::Admin => "admin",
            Surface::Stats => "stats",
        };
        let mut errors = crate::accept::AcceptErrors::new(name, accept);
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
                let svc = hyper::service::service_fn(move |req| admin.clone().handle(req, surface));
                let _ = hyper::server::conn::http1::Builder::new()
                    .timer(TokioTimer::new())
                    .max_buf_size(crate::accept::MAX_CONN_BUF)
                    .serve_connection(TokioIo::new(tcp), svc)
                    .await;
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(method: &str, uri: &str, headers: &[(&str, &str)]) -> Request<()> {
        let mut b = Request::builder().method(method).uri(uri);
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        b.body(()).expect("request")
    }

    #[test]
    fn hosts_that_name_this_machine_pass_and_dns_names_do_not() {
        for ok in [
            "127.0.0.1:9901",
            "127.0.0.1",
            "localhost:9901",
            "LOCALHOST.",
            "[::1]:9901",
            "10.0.0.1:9901",
            "0.0.0.0:9901",
        ] {
            assert!(host_allowed(ok, &[]), "{ok}");
        }
        for bad in [
            "evil.example",
            "evil.example:9901",
            "127.0.0.1.nip.io",
            "localhost.evil.example",
            "user@127.0.0.1",
            "2130706433",
            "10.0.0.1:port",
            "",
        ] {
            assert!(!host_allowed(bad, &[]), "{bad}");
        }
        // Names the operator allows (a Prometheus target by name).
        let allow = [String::from("vm1.mesh.internal")];
        assert!(host_allowed("VM1.mesh.internal:9901", &allow));
        for bad in ["evil.example", "vm1.mesh.internal.evil.example"] {
            assert!(!host_allowed(bad, &allow), "{bad}");
        }
    }

    #[test]
    fn refusals_name_their_reason() {
        let host = ("host", "127.0.0.1:9901");
        assert_eq!(refusal(&req("GET", "/stats", &[host]), false, &[]), None);
        assert_eq!(
            refusal(&req("GET", "/stats", &[]), false, &[]),
            None,
            "HTTP/1.0"
        );
        let page = req("GET", "/stats", &[host, ("origin", "null")]);
        assert!(refusal(&page, false, &[]).is_some_and(|w| w.contains("Origin")));
        let absolute = req("GET", "http://evil.example/stats", &[host]);
        assert!(refusal(&absolute, false, &[]).is_some_and(|w| w.contains("Host")));
        let two = req("GET", "/stats", &[host, ("host", "localhost")]);
        assert!(refusal(&two, false, &[]).is_some());
        for body in [("content-length", "3"), ("transfer-encoding", "chunked")] {
            let r = req("POST", "/reset_counters", &[host, body]);
            assert!(refusal(&r, true, &[]).is_some_and(|w| w.contains("no body")));
            assert_eq!(
                refusal(&r, false, &[]),
                None,
                "only mutating calls need no body"
            );
        }
        let empty = req("POST", "/reset_counters", &[host, ("content-length", "0")]);
        assert_eq!(refusal(&empty, true, &[]), None);
    }
}
