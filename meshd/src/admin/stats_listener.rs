//! The read-only stats listener for a fleet (`--stats-listen IP:PORT`, off by default; the
//! fleet's port is 9902 by convention, as `meshstat --fleet` assumes): what Prometheus and
//! `meshstat --fleet` read from another machine, on an address they reach, while the admin
//! endpoint with its mutating calls stays on loopback.
//!
//! It serves GET [`PATHS`] only, with the admin's own handler (every query option of `/stats`):
//! any other method gets 405 (`Allow: GET`), any other path 404. Before that, the admin's
//! refusals apply as they are (`refusal` in the admin module): a request carrying `Origin`
//! (a browser page) and a `Host` that is a DNS name other than `localhost` or an
//! `--admin-allow-host` name (DNS rebinding) get 403. Prometheus and meshstat send the target
//! they dialled as `Host`: an IP literal always passes, so a scrape by IP (what
//! `meshstat --fleet DIR --targets` writes) works as is; a scrape by host name needs that name
//! in `--admin-allow-host`. Every refusal (403, 404, 405) counts in `server.stats_rq_refused`
//! (kept by `/reset_counters`); accept failures pause as the admin's do ([`crate::accept`]),
//! counted in `listener.stats.downstream_cx_overflow`.

use std::net::SocketAddr;
use std::sync::Arc;

use http::{Method, Response, StatusCode};
use tokio::net::TcpListener;

use super::{reply, Admin, Surface};
use crate::body::ResponseBody;

/// The paths the stats listener serves, GET only.
pub const PATHS: [&str; 4] = ["/stats", "/stats/prometheus", "/clusters", "/ready"];

const INDEX: &str = "the stats listener is read-only; it serves GET:
  /clusters: upstream cluster status (?format=json)
  /ready: 200 once listeners are bound
  /stats: counters and gauges (?filter=REGEX, ?format=json, ?usedonly, ?node=NAME)
  /stats/prometheus: Prometheus exposition format
every other admin call is on the admin endpoint (--admin, loopback)
";

/// The answer to a request the stats listener does not serve (405 for a method other than
/// GET, 404 for another path), or `None` when the admin's handler may answer it.
pub(super) fn gate(method: &Method, path: &str) -> Option<Response<ResponseBody>> {
    let text = "text/plain; charset=UTF-8";
    if method != Method::GET {
        let mut r = reply(
            StatusCode::METHOD_NOT_ALLOWED,
            text,
            format!(
                "the stats listener is read-only (GET only): {} is on the admin endpoint \
                 (--admin, loopback)\n",
                if path == "/reset_counters" {
                    "POST /reset_counters"
                } else {
                    "every other call"
                }
            ),
        );
        r.headers_mut()
            .insert(http::header::ALLOW, http::HeaderValue::from_static("GET"));
        return Some(r);
    }
    if !PATHS.contains(&path) {
        return Some(reply(
            StatusCode::NOT_FOUND,
            text,
            format!("invalid path. {INDEX}"),
        ));
    }
    None
}

/// Binds the stats listener at `addr` and serves it until the process ends. Returns the bound
/// address (also in `admin.stats_addr`, which `/listeners` shows as `stats::<addr>`).
pub async fn start(admin: Arc<Admin>, addr: SocketAddr) -> std::io::Result<SocketAddr> {
    let socket = TcpListener::bind(addr).await?;
    let bound = socket.local_addr()?;
    let _ = admin.stats_addr.set(bound);
    let accept = admin.stats.stats_accept.clone();
    tokio::spawn(admin.serve_on(socket, Surface::Stats, accept));
    Ok(bound)
}
