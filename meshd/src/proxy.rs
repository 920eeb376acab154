//! The request path: where every request is admitted or refused, and why.
//!
//! In order, for each request on a listener:
//! 1. a gateway's listener first takes a slot of its self-redirect cluster (App Mesh's
//!    accounting of the gateway's `connectionPool`): refused → 503 `UO`;
//! 2. routing picks a cluster: no route → 404 `NR`;
//! 3. the cluster's pool hands out a connection ([`mesh_core::pool`] documents the order of
//!    limits): `max_pending_requests` or `max_requests` reached → 503 `UO` with
//!    `x-envoy-overloaded: true` and `x-mesh-overflow: <limit> <cluster>`; no host → 503 `UH`;
//!    connect failure → 503 `UF`;
//! 4. the request is sent; a reused keep-alive connection that the upstream had closed is
//!    retried once on another connection (nothing was sent), any other failure → 503 `UC`;
//! 5. no response headers within the timeout → 504 `UT`.
//!
//! The response body streams back through [`ResponseBody`], whose completion releases the
//! connection and writes the access-log line.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use arc_swap::ArcSwap;
use bytes::Bytes;
use http::header::{HeaderName, HeaderValue};
use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use mesh_core::accesslog::{Flags, Record, ResponseFlag, Writer};
use mesh_core::breaker::Limit;
use mesh_core::pool::{CheckoutError, Cluster, ClusterInfo, SlotConnector};
use mesh_core::runtime::Routing;
use mesh_core::stats::HttpStats;

use crate::body::{Completion, RequestBody, ResponseBody};
use crate::upstream::TcpCluster;

/// A gateway's self-redirect cluster: slots only.
pub type SlotCluster = Cluster<SlotConnector>;

/// What a listener needs per request; swapped whole on reload.
pub struct ListenerTable {
    /// Where requests go.
    pub routing: Routing,
    /// The clusters routing may name.
    pub clusters: std::collections::HashMap<String, Arc<TcpCluster>>,
    /// A gateway's admission cluster.
    pub admission: Option<Arc<SlotCluster>>,
    /// The node's access log.
    pub log: Option<Writer>,
    /// Default per-request timeout (zero = none).
    pub timeout: Duration,
}

/// One listener's state shared by its connections.
pub struct ListenerState {
    /// `http.<prefix>.*`
    pub stats: Arc<HttpStats>,
    /// The routing table now.
    pub table: ArcSwap<ListenerTable>,
}

/// Envoy's default `max_request_headers_kb` (60 KiB); larger gets 431.
const MAX_REQUEST_HEADERS: usize = 60 * 1024;

const OVERFLOW_BODY: &str =
    "upstream connect error or disconnect/reset before headers. reset reason: overflow";

static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
static X_ENVOY_OVERLOADED: HeaderName = HeaderName::from_static("x-envoy-overloaded");
static X_MESH_OVERFLOW: HeaderName = HeaderName::from_static("x-mesh-overflow");
static X_ENVOY_UPSTREAM_SERVICE_TIME: HeaderName =
    HeaderName::from_static("x-envoy-upstream-service-time");

/// Headers that belong to one connection and are never forwarded.
static HOP_BY_HOP: [HeaderName; 6] = [
    http::header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    http::header::TE,
    http::header::TRAILER,
    http::header::UPGRADE,
];

/// Removes hop-by-hop headers. Most messages carry none: one pass over the (few) names present
/// decides, instead of six hashed lookups on every message.
fn strip_hop_by_hop(headers: &mut http::HeaderMap) {
    if headers.keys().any(|k| HOP_BY_HOP.contains(k)) {
        for h in &HOP_BY_HOP {
            headers.remove(h);
        }
    }
}

/// A header's value for the access log, bytes that are not UTF-8 as U+FFFD (the log escapes
/// what it writes).
fn header_string(parts: &http::request::Parts, name: &HeaderName) -> Option<String> {
    parts
        .headers
        .get(name)
        .map(|v| match std::str::from_utf8(v.as_bytes()) {
            Ok(s) => s.to_owned(),
            Err(_) => String::from_utf8_lossy(v.as_bytes()).into_owned(),
        })
}

/// Handles one request from a client. Never fails: every problem is a response.
pub async fn handle(
    req: Request<Incoming>,
    peer: SocketAddr,
    listener: Arc<ListenerState>,
) -> Result<Response<ResponseBody>, Infallible> {
    let stats = listener.stats.clone();
    stats.counters.downstream_rq_total.inc();
    stats.counters.downstream_rq_http1_total.inc();
    let table = listener.table.load_full();
    let (mut parts, body) = req.into_parts();
    let head: usize = parts
        .headers
        .iter()
        .map(|(k, v)| k.as_str().len() + v.len() + 4)
        .sum::<usize>()
        + parts.uri.path_and_query().map_or(0, |p| p.as_str().len());
    if head > MAX_REQUEST_HEADERS {
        stats.counters.downstream_rq_too_large.inc();
        stats.codes.record(431);
        let mut resp = Response::new(ResponseBody::plain("request headers too large"));
        *resp.status_mut() = StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE;
        resp.headers_mut()
            .insert(http::header::CONNECTION, HeaderValue::from_static("close"));
        return Ok(resp);
    }

    if !parts.headers.contains_key(&X_REQUEST_ID) {
        let mut buf = uuid::Uuid::encode_buffer();
        let id = uuid::Uuid::new_v4().hyphenated().encode_lower(&mut buf);
        if let Ok(v) = HeaderValue::from_str(id) {
            parts.headers.insert(X_REQUEST_ID.clone(), v);
        }
    }
    let peer_ip = peer.ip().to_string();
    let xff = match parts
        .headers
        .get(&X_FORWARDED_FOR)
        .and_then(|v| v.to_str().ok())
    {
        Some(prev) => format!("{prev}, {peer_ip}"),
        None => peer_ip,
    };
    if let Ok(v) = HeaderValue::from_str(&xff) {
        parts.headers.insert(X_FORWARDED_FOR.clone(), v);
    }
    strip_hop_by_hop(&mut parts.headers);

    // The strings a log line needs are copied only for a listener that logs.
    let logging = table.log.is_some();
    let record = Record {
        start_time: SystemTime::now(),
        method: parts.method.clone(),
        path: if logging {
            parts
                .uri
                .path_and_query()
                .map_or_else(|| "/".to_owned(), |p| p.as_str().to_owned())
        } else {
            String::new()
        },
        version: parts.version,
        code: 0,
        flags: Flags::default(),
        bytes_received: 0,
        bytes_sent: 0,
        duration_ms: 0,
        upstream_service_time: None,
        x_forwarded_for: logging.then_some(xff),
        user_agent: logging
            .then(|| header_string(&parts, &http::header::USER_AGENT))
            .flatten(),
        request_id: logging
            .then(|| header_string(&parts, &X_REQUEST_ID))
            .flatten(),
        authority: logging
            .then(|| {
                header_string(&parts, &http::header::HOST)
                    .or_else(|| parts.uri.authority().map(|a| a.to_string()))
            })
            .flatten(),
        upstream_host: None,
        upstream_cluster: None,
        details: "via_upstream",
    };
    let mut done = Completion::new(stats.clone(), table.log.clone(), record);

    // 1. A gateway's listener connection pool.
    if let Some(gw) = &table.admission {
        match gw.checkout().await {
            Ok(slot) => done.admission = Some(slot),
            Err(e) => return Ok(refuse(e, gw.info(), done)),
        }
    }

    // 2. Routing.
    let Some(action) = table.routing.route(&parts) else {
        stats.counters.no_route.inc();
        done.record.flags.insert(ResponseFlag::NoRouteFound);
        done.record.details = "route_not_found";
        return Ok(local_reply(StatusCode::NOT_FOUND, "", &[], done));
    };
    let Some(cluster) = table.clusters.get(action.cluster).cloned() else {
        done.record.details = "cluster_not_found";
        return Ok(local_reply(StatusCode::SERVICE_UNAVAILABLE, "", &[], done));
    };
    done.record.upstream_cluster = Some(cluster.info().shared_name.clone());
    if let Some(p) = &action.path {
        let pq = match parts.uri.query() {
            Some(q) => format!("{p}?{q}"),
            None => p.clone(),
        };
        if let Ok(uri) = http::Uri::builder().path_and_query(pq).build() {
            parts.uri = uri;
        }
    } else if parts.uri.authority().is_some() {
        // An absolute-form request (the app uses meshd as its HTTP proxy): send origin-form.
        if let Some(pq) = parts.uri.path_and_query().cloned() {
            parts.uri = http::Uri::from(pq);
        }
    }
    if let Some(h) = action.host {
        if let Ok(v) = HeaderValue::from_str(h) {
            parts.headers.insert(http::header::HOST, v);
        }
    }
    let timeout = action.timeout.unwrap_or(table.timeout);

    let received = Arc::new(AtomicU64::new(0));
    done.received = Some(received.clone());
    let req = Request::from_parts(parts, RequestBody::new(body, received));

    // 3–5. Connection, send, response headers.
    let attempt = send(&cluster, req);
    let outcome = if timeout.is_zero() {
        attempt.await
    } else {
        match tokio::time::timeout(timeout, attempt).await {
            Ok(o) => o,
            Err(_) => Err(Failure::Timeout),
        }
    };
    match outcome {
        Ok((checkout, resp, service_time)) => {
            let (mut rparts, rbody) = resp.into_parts();
            let code = rparts.status.as_u16();
            let info = checkout.cluster();
            info.codes.record(code);
            info.counters.upstream_rq_completed.inc();
            let host = checkout.host();
            if code >= 500 {
                host.counters.rq_error.inc();
            } else {
                host.counters.rq_success.inc();
            }
            strip_hop_by_hop(&mut rparts.headers);
            let ms = service_time.as_millis() as u64;
            rparts
                .headers
                .insert(X_ENVOY_UPSTREAM_SERVICE_TIME.clone(), HeaderValue::from(ms));
            stats.codes.record(code);
            done.record.code = code;
            done.record.upstream_service_time = Some(ms);
            done.record.upstream_host = Some(host.addr);
            done.upstream = Some(checkout);
            Ok(Response::from_parts(
                rparts,
                ResponseBody::upstream(rbody, done),
            ))
        }
        Err(Failure::Checkout(e)) => Ok(refuse(e, cluster.info(), done)),
        Err(Failure::Timeout) => {
            cluster.info().counters.upstream_rq_timeout.inc();
            cluster.info().codes.record(504);
            done.record
                .flags
                .insert(ResponseFlag::UpstreamRequestTimeout);
            done.record.details = "response_timeout";
            Ok(local_reply(
                StatusCode::GATEWAY_TIMEOUT,
                "upstream request timeout",
                &[],
                done,
            ))
        }
        Err(Failure::Reset(addr, e)) => {
            cluster.info().counters.upstream_rq_rx_reset.inc();
            cluster.info().codes.record(503);
            done.record
                .flags
                .insert(ResponseFlag::UpstreamConnectionTermination);
            done.record.upstream_host = Some(addr);
            done.record.details = "upstream_reset_before_response_started{connection_termination}";
            tracing::debug!(cluster = %cluster.info().name, %addr, error = %e, "upstream reset");
            Ok(local_reply(
                StatusCode::SERVICE_UNAVAILABLE,
                "upstream connect error or disconnect/reset before headers. reset reason: connection termination",
                &[],
                done,
            ))
        }
    }
}

enum Failure {
    Checkout(CheckoutError),
    Timeout,
    Reset(SocketAddr, hyper::Error),
}

type Sent = (crate::upstream::TcpCheckout, Response<Incoming>, Duration);

/// Gets a connection and sends the request; a reused connection found closed before anything
/// was sent is replaced (that loop is where retries will live).
async fn send(cluster: &Arc<TcpCluster>, mut req: Request<RequestBody>) -> Result<Sent, Failure> {
    loop {
        let mut checkout = cluster.checkout().await.map_err(Failure::Checkout)?;
        let addr = checkout.host().addr;
        let reused = checkout.reused();
        let conn = &mut checkout.conn().0;
        if let Err(e) = conn.ready().await {
            if reused {
                continue; // dropping the checkout closes the dead connection
            }
            return Err(Failure::Reset(addr, e));
        }
        let sent_at = Instant::now();
        match conn.try_send_request(req).await {
            Ok(resp) => return Ok((checkout, resp, sent_at.elapsed())),
            Err(mut e) => match e.take_message() {
                Some(r) if reused => req = r,
                _ => return Err(Failure::Reset(addr, e.into_error())),
            },
        }
    }
}

/// A refusal by a pool: 503 with Envoy's flag and body, plus the limit and cluster that refused.
fn refuse(e: CheckoutError, cluster: &ClusterInfo, mut done: Completion) -> Response<ResponseBody> {
    cluster.codes.record(503);
    cluster.counters.upstream_rq_completed.inc();
    if done.record.upstream_cluster.is_none() {
        done.record.upstream_cluster = Some(cluster.shared_name.clone());
    }
    match e {
        CheckoutError::Overflow(limit) => {
            done.record.flags.insert(ResponseFlag::UpstreamOverflow);
            done.record.details = "upstream_reset_before_response_started{overflow}";
            let why = format!("{} {}", limit.threshold_name(), cluster.name);
            tracing::debug!(cluster = %cluster.name, limit = limit.threshold_name(), "overflow");
            let retries = matches!(limit, Limit::Retries);
            let mut headers = vec![(X_MESH_OVERFLOW.clone(), why)];
            if !retries {
                headers.push((X_ENVOY_OVERLOADED.clone(), "true".to_owned()));
            }
            local_reply(
                StatusCode::SERVICE_UNAVAILABLE,
                OVERFLOW_BODY,
                &headers,
                done,
            )
        }
        CheckoutError::NoHealthyUpstream => {
            done.record.flags.insert(ResponseFlag::NoHealthyUpstream);
            done.record.details = "no_healthy_upstream";
            local_reply(
                StatusCode::SERVICE_UNAVAILABLE,
                "no healthy upstream",
                &[],
                done,
            )
        }
        CheckoutError::ConnectFailed { addr, source } => {
            done.record
                .flags
                .insert(ResponseFlag::UpstreamConnectionFailure);
            done.record.upstream_host = Some(addr);
            done.record.details =
                "upstream_reset_before_response_started{remote_connection_failure}";
            let body = format!(
                "upstream connect error or disconnect/reset before headers. reset reason: remote connection failure, transport failure reason: {source}"
            );
            local_reply(StatusCode::SERVICE_UNAVAILABLE, &body, &[], done)
        }
        CheckoutError::ConnectTimeout { addr } => {
            done.record
                .flags
                .insert(ResponseFlag::UpstreamConnectionFailure);
            done.record.upstream_host = Some(addr);
            done.record.details = "upstream_reset_before_response_started{connection_timeout}";
            local_reply(
                StatusCode::SERVICE_UNAVAILABLE,
                "upstream connect error or disconnect/reset before headers. reset reason: connection timeout",
                &[],
                done,
            )
        }
    }
}

/// A response made by meshd itself.
fn local_reply(
    status: StatusCode,
    body: &str,
    headers: &[(HeaderName, String)],
    mut done: Completion,
) -> Response<ResponseBody> {
    done.stats.codes.record(status.as_u16());
    done.record.code = status.as_u16();
    let mut resp = Response::new(ResponseBody::local(Bytes::from(body.to_owned()), done));
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    if !body.is_empty() {
        h.insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain"),
        );
    }
    h.insert(http::header::CONTENT_LENGTH, HeaderValue::from(body.len()));
    for (k, v) in headers {
        if let Ok(v) = HeaderValue::from_str(v) {
            h.insert(k.clone(), v);
        }
    }
    resp
}
