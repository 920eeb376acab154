//! The request path: where every request is admitted or refused, and why.
//!
//! In order, for each request on a listener:
//! 1. the request head is checked: larger than 60 KiB → 431; HTTP/1.1 without exactly one Host
//!    → 400 `DPE`. Hop-by-hop headers (the fixed list and those its `Connection` names) are
//!    dropped, both ways;
//! 2. a gateway's listener first takes a slot of its self-redirect cluster (App Mesh's
//!    accounting of the gateway's `connectionPool`): refused → 503 `UO`;
//! 3. routing picks a cluster by Host (an egress listener's connection captured by
//!    `meshctl capture` whose Host names no backend: by its original destination, when it is a
//!    host of exactly one backend): no route → 404 `NR`. The route's fault injection
//!    ([`fault`]) then delays the request (`DI`; the route's timeout starts after the delay)
//!    and/or aborts it with the route's status (`FI`, never sent upstream, never retried);
//! 4. [`attempts`] loops, one attempt per pass (the route's retry policy decides how many):
//!    - the balancer picks a usable host (not ejected, not failing its health check; one not
//!      tried yet by this request when there is one) and the cluster's pool hands out a
//!      connection to it ([`mesh_core::pool`] documents the order of limits):
//!      `max_pending_requests` or `max_requests` reached → 503 `UO` with
//!      `x-envoy-overloaded: true` and `x-mesh-overflow: <limit> <cluster>`; no usable host →
//!      503 `UH` (details `no_healthy_upstream{no_endpoints:<cluster>}` when the cluster has
//!      no host at all); connect failure or timeout → 503 `UF`;
//!    - the request is sent ([`send`]) under the per-try timeout. It is sent again, once, on a
//!      newly opened connection when a reused keep-alive connection turns out closed by the
//!      upstream, if either nothing of it was written, or it has no body and an idempotent
//!      method and the connection closed before a response head (counted in
//!      `upstream_rq_resent_on_new_cx`). Otherwise: a response head above 60 KiB, malformed, or
//!      with both Content-Length and Transfer-Encoding → 502 `UPE`; the client's body broke
//!      its framing → 400 `DPE`; any other failure → 503 `UC`; the per-try timeout → 504 `UT`;
//!    - the attempt's [`Outcome`](mesh_core::retry::Outcome) is recorded against its host (outlier detection) and
//!      [`RetryState`] decides: retry after a jittered backoff (the body, kept up to 64 KiB, is
//!      sent again), or answer with this attempt's result, flagged `URX` when the retries ran
//!      out and `UO` when the retry budget or `max_retries` refused one. A local overflow and a
//!      response with `x-envoy-overloaded` are never retried;
//! 5. the timers ([`timeout`]) run from the start until the response's last byte, over every
//!    attempt and backoff: the
//!    per-request timeout → 504 `UT` before the response headers, the response cut after them;
//!    the stream idle timeout (no byte moved) → 504 `SI` (408 while the client's body is still
//!    missing bytes) before the headers, the response cut after them.
//!
//! The response body streams back through [`ResponseBody`], whose completion releases the
//! connection and writes the access-log line; [`crate::body`] says how a cut response is
//! logged.

mod attempt;
mod fault;
mod headers;
mod outgoing;
pub mod reply;
mod send;
pub mod timeout;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwap;
use http::header::{HeaderName, HeaderValue};
use http::{Request, Response, StatusCode};
use http_body::Body as _;
use mesh_core::accesslog::{Record, ResponseFlag, Writer};
use mesh_core::pool::{CheckoutError, Cluster, ClusterInfo, HostInfo, SlotConnector};
use mesh_core::runtime::{pick_usable, Routing};
use mesh_core::stats::HttpStats;

use crate::body::{Completion, RequestBody, ResponseBody};
use crate::resilience::Upstream;
use attempt::{count_host, discard, failed_host, outcome_of, within};
use mesh_core::retry::{Decision, RetryContext, RetryPolicy, RetryState};
use outgoing::{BodyFailed, Outgoing};
use reply::LocalReply;
use timeout::{Expired, Progress, RequestBodyError, Timers};

/// A gateway's self-redirect cluster: slots only.
pub type SlotCluster = Cluster<SlotConnector>;

/// What a listener needs per request; swapped whole on reload.
pub struct ListenerTable {
    /// Where requests go.
    pub routing: Arc<Routing>,
    /// The clusters routing may name.
    pub clusters: std::collections::HashMap<String, Arc<crate::resilience::Upstream>>,
    /// A gateway's admission cluster.
    pub admission: Option<Arc<SlotCluster>>,
    /// The node's access log.
    pub log: Option<Writer>,
    /// Default per-request timeout (zero = none).
    pub timeout: Duration,
    /// Default stream idle timeout (zero = none).
    pub idle_timeout: Duration,
}

/// One listener's state shared by its connections.
pub struct ListenerState {
    /// `http.<prefix>.*`
    pub stats: Arc<HttpStats>,
    /// The routing table now.
    pub table: ArcSwap<ListenerTable>,
    /// Set once the drain deadline passed: requests still running are being cut by meshd
    /// (logged `LR`, never `DC`). Shared by every listener of the server.
    pub cutting: Arc<AtomicBool>,
    /// How long a client may take to send a complete request head.
    pub headers_timeout: Duration,
    /// An egress listener: connections may have been captured (see [`crate::server::original_dst`]).
    pub egress: bool,
}

/// Envoy's default `max_request_headers_kb` (60 KiB); larger gets 431.
const MAX_REQUEST_HEADERS: usize = 60 * 1024;

static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
static X_ENVOY_UPSTREAM_SERVICE_TIME: HeaderName =
    HeaderName::from_static("x-envoy-upstream-service-time");

/// The one backend virtual service of an egress listener whose clusters have `dst` among
/// their hosts now, as the Host its routes answer (`None` when none or several have).
fn service_with_host(table: &ListenerTable, dst: SocketAddr) -> Option<String> {
    let mut found = table.routing.virtual_hosts().iter().filter(|vh| {
        Routing::clusters_of(vh).any(|c| {
            table
                .clusters
                .get(c)
                .is_some_and(|u| u.pool.hosts().iter().any(|h| h.addr == dst))
        })
    });
    match (found.next(), found.next()) {
        (Some(vh), None) => Some(vh.name.clone()),
        _ => None,
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
    req: Request<crate::downstream::ClientBody>,
    peer: SocketAddr,
    captured: Option<SocketAddr>,
    listener: Arc<ListenerState>,
) -> Result<Response<ResponseBody>, Infallible> {
    let counters = &listener.stats.counters;
    counters.downstream_rq_total.inc();
    counters.downstream_rq_http1_total.inc();
    let table = listener.table.load_full();
    let (mut parts, body) = req.into_parts();
    let head: usize = parts
        .headers
        .iter()
        .map(|(k, v)| k.as_str().len() + v.len() + 4)
        .sum::<usize>()
        + parts.uri.path_and_query().map_or(0, |p| p.as_str().len());
    if head > MAX_REQUEST_HEADERS {
        counters.downstream_rq_too_large.inc();
        listener.stats.codes.record(431);
        let mut resp = Response::new(ResponseBody::plain("request headers too large"));
        *resp.status_mut() = StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE;
        resp.headers_mut()
            .insert(http::header::CONNECTION, HeaderValue::from_static("close"));
        return Ok(resp);
    }

    // 1. Hop-by-hop headers go first, so none of meshd's own headers can be named away.
    headers::strip_hop_by_hop(&mut parts.headers);
    if !parts.headers.contains_key(&X_REQUEST_ID) {
        let mut buf = uuid::Uuid::encode_buffer();
        let id = uuid::Uuid::new_v4().hyphenated().encode_lower(&mut buf);
        if let Ok(v) = HeaderValue::from_str(id) {
            parts.headers.insert(X_REQUEST_ID.clone(), v);
        }
    }
    let mut xff = String::with_capacity(48);
    if let Some(prev) = parts
        .headers
        .get(&X_FORWARDED_FOR)
        .and_then(|v| v.to_str().ok())
    {
        xff.push_str(prev);
        xff.push_str(", ");
    }
    mesh_core::text::push_ip(&mut xff, peer.ip());
    if let Ok(v) = HeaderValue::from_str(&xff) {
        parts.headers.insert(X_FORWARDED_FOR.clone(), v);
    }

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
        details: "via_upstream".into(),
        ..Record::default()
    };
    let progress = Arc::new(Progress::new(body.is_end_stream()));
    let mut done = Completion::new(listener, table.log.clone(), record);
    done.progress = Some(progress.clone());
    if !headers::host_ok(parts.version, &parts.headers) {
        return Ok(reply::respond(LocalReply::MissingHost, done));
    }
    let mut timers = Timers::new(progress.clone(), table.timeout, table.idle_timeout);

    // 2. A gateway's listener connection pool.
    if let Some(gw) = &table.admission {
        let admitted = tokio::select! {
            biased;
            slot = gw.checkout() => slot.map_err(Failure::Checkout),
            e = timers.expired() => Err(Failure::Expired(e)),
        };
        match admitted {
            Ok(slot) => done.admission = Some(slot),
            Err(f) => return Ok(fail(f, gw.info(), None, done)),
        }
    }

    // 3. Routing. A captured connection whose Host names no backend (the app called an
    // address) goes to the one virtual service with that address among its hosts, if one has.
    if let Some(dst) = captured {
        if table.routing.route(&parts).is_none() {
            if let Some(name) = service_with_host(&table, dst) {
                if let Ok(v) = HeaderValue::from_str(&name) {
                    parts.headers.insert(http::header::HOST, v);
                }
            }
        }
    }
    let Some(action) = table.routing.route(&parts) else {
        done.listener.stats.counters.no_route.inc();
        return Ok(reply::respond(LocalReply::NoRoute, done));
    };
    // A weighted split does not send to a target without a usable host while another has one.
    let usable = |c: &str| {
        table
            .clusters
            .get(c)
            .is_some_and(|u| u.pool.has_usable_host())
    };
    let cluster = if action.targets.len() > 1 && !usable(action.cluster) {
        pick_usable(action.targets, usable).map_or(action.cluster, |t| t.cluster.as_str())
    } else {
        action.cluster
    };
    let Some(upstream) = table.clusters.get(cluster).cloned() else {
        return Ok(reply::respond(LocalReply::ClusterNotFound, done));
    };
    done.record.upstream_cluster = Some(upstream.pool.info().shared_name.clone());
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
    let (timeout, idle_timeout) = (
        action.timeout.unwrap_or(table.timeout),
        action.idle_timeout.unwrap_or(table.idle_timeout),
    );
    match action.fault {
        None => timers.set(timeout, idle_timeout),
        Some(policy) => {
            let stats = done.listener.stats.clone();
            if let Some(abort) = fault::inject(policy, &stats, &mut done.record.flags).await {
                return Ok(reply::respond(abort, done));
            }
            timers.restart(timeout, idle_timeout);
        }
    }

    // 4. A request that may be retried keeps its body (up to 64 KiB) to send it again.
    let policy = action.retry.unwrap_or_default();
    let body = RequestBody::new(body, progress);
    let outgoing = if policy.num_retries > 0 && !policy.retry_on.is_empty() {
        tokio::select! {
            biased;
            o = Outgoing::buffered(parts, body) => match o {
                Ok(o) => o,
                Err(BodyFailed) => {
                    let reply = client_failure(&mut done).unwrap_or(LocalReply::DownstreamDisconnected);
                    return Ok(reply::respond(reply, done));
                }
            },
            e = timers.expired() => return Ok(fail(Failure::Expired(e), upstream.pool.info(), None, done)),
        }
    } else {
        Outgoing::streaming(parts, body)
    };

    // 5–7. Attempts: connection, send, response headers, under the timers; retried as the
    // route's policy and the cluster's budget allow.
    Ok(attempts(&upstream, outgoing, policy, timers, done).await)
}

/// Sends the request until an attempt's outcome is final (see the module docs, 5–7).
async fn attempts(
    upstream: &Arc<Upstream>,
    mut out: Outgoing,
    policy: RetryPolicy,
    mut timers: Timers,
    mut done: Completion,
) -> Response<ResponseBody> {
    let info = upstream.pool.info().clone();
    let mut retry = RetryState::new(policy);
    if !out.replayable() {
        retry.abandon(&upstream.retry_stats);
    }
    let mut avoid: Vec<SocketAddr> = Vec::new();
    let mut rng = fastrand::Rng::new();
    loop {
        let Some(body) = out.body() else {
            // Unreachable: a body that cannot be sent again is never retried.
            return reply::respond(LocalReply::UpstreamReset, done);
        };
        done.record.attempts += 1;
        let mut tried = None;
        let per_try = retry.per_try_timeout().filter(|d| !d.is_zero());
        // Boxed: the attempt's future is large, and a box moves as a pointer through the
        // per-try timeout and the select below (0.8k fewer instructions per request).
        let attempt = Box::pin(send::send(
            &upstream.pool,
            &mut out,
            body,
            &mut tried,
            &avoid,
        ));
        let result = tokio::select! {
            biased;
            r = within(per_try, attempt) => r,
            e = timers.expired() => Err(Failure::Expired(e)),
        };
        let host = tried
            .as_ref()
            .map(|h| h.addr)
            .or_else(|| failed_host(&result));
        let Some(outcome) = outcome_of(&result, &done) else {
            let result = match result {
                Err(Failure::Checkout(CheckoutError::NoHealthyUpstream))
                    if upstream.pool.hosts().is_empty() =>
                {
                    Err(Failure::NoEndpoints)
                }
                r => r,
            };
            return finish(result, &info, tried, timers, done);
        };
        if let Some(h) = host {
            upstream.record(h, &outcome);
        }
        let ctx = RetryContext {
            active_requests: info.breakers.requests.current(),
            budget: upstream.budget(),
            max_retries: &info.breakers.retries,
            stats: &upstream.retry_stats,
        };
        match retry.record(&outcome, &ctx, rng.u64(..)) {
            Decision::Retry { after } if out.replayable() => {
                discard(result, &info);
                if let Some(h) = host {
                    avoid.push(h);
                }
                tracing::debug!(cluster = %info.name, ?outcome, after_ms = after.as_millis() as u64, "retrying");
                tokio::select! {
                    biased;
                    () = tokio::time::sleep(after) => {}
                    e = timers.expired() => return fail(Failure::Expired(e), &info, None, done),
                }
            }
            Decision::LimitExceeded => {
                done.record
                    .flags
                    .insert(ResponseFlag::UpstreamRetryLimitExceeded);
                return finish(result, &info, tried, timers, done);
            }
            Decision::Overflow(_) => {
                done.record.flags.insert(ResponseFlag::UpstreamOverflow);
                return finish(result, &info, tried, timers, done);
            }
            _ => return finish(result, &info, tried, timers, done),
        }
    }
}

/// The client gets the last attempt's answer.
fn finish(
    result: Result<Sent, Failure>,
    info: &ClusterInfo,
    tried: Option<Arc<HostInfo>>,
    timers: Timers,
    done: Completion,
) -> Response<ResponseBody> {
    match result {
        Ok(sent) => forward(sent, done, timers),
        Err(f) => fail(f, info, tried, done),
    }
}

/// Why an attempt got no upstream response head.
enum Failure {
    /// The pool refused or could not connect.
    Checkout(CheckoutError),
    /// The cluster has no host at all (503 `UH`, naming the cluster).
    NoEndpoints,
    /// The request's own timers.
    Expired(Expired),
    /// The attempt's per-try timeout.
    PerTryTimeout,
    /// The connection closed or broke; `true` when request bytes had been written.
    Reset(SocketAddr, crate::upstream::Error, bool),
}

type Sent = (
    crate::upstream::TcpCheckout,
    Response<crate::upstream::Reader>,
    Duration,
);

/// The upstream's response head goes to the client; its body streams through [`ResponseBody`]
/// with the timers still running.
fn forward(sent: Sent, mut done: Completion, timers: Timers) -> Response<ResponseBody> {
    let (checkout, resp, service_time) = sent;
    if !headers::framing_ok(resp.headers()) {
        // Both Content-Length and Transfer-Encoding: a protocol error (502 `UPE`); the unread
        // body is dropped with the checkout, which closes the connection.
        let info = checkout.cluster();
        info.counters.upstream_cx_protocol_error.inc();
        info.codes.record(502);
        done.record.upstream_host = Some(checkout.host().addr);
        tracing::debug!(cluster = %info.name, "upstream response with content-length and transfer-encoding");
        return reply::respond(LocalReply::UpstreamProtocolError, done);
    }
    let (mut rparts, rbody) = resp.into_parts();
    let code = rparts.status.as_u16();
    let info = checkout.cluster();
    info.codes.record(code);
    info.counters.upstream_rq_completed.inc();
    let host = checkout.host();
    count_host(host, code);
    headers::strip_hop_by_hop(&mut rparts.headers);
    let ms = service_time.as_millis() as u64;
    rparts
        .headers
        .insert(X_ENVOY_UPSTREAM_SERVICE_TIME.clone(), HeaderValue::from(ms));
    done.listener.stats.codes.record(code);
    done.record.code = code;
    done.record.upstream_service_time = Some(ms);
    done.record.upstream_host = Some(host.addr);
    done.upstream = Some(checkout);
    Response::from_parts(rparts, ResponseBody::upstream(rbody, done, timers))
}

/// The local reply for a request that got no upstream response head, and what it counts.
/// `host` is where the request was in flight when a timer fired (its upstream request is
/// reset).
fn fail(
    f: Failure,
    cluster: &ClusterInfo,
    host: Option<Arc<HostInfo>>,
    mut done: Completion,
) -> Response<ResponseBody> {
    if matches!(f, Failure::Expired(_) | Failure::PerTryTimeout) && host.is_some() {
        cluster.counters.upstream_rq_tx_reset.inc();
    }
    let reply = match f {
        Failure::Checkout(e) => return refuse(e, cluster, done),
        Failure::NoEndpoints => {
            let cluster_name = cluster.name.clone();
            return refused(
                LocalReply::NoEndpoints {
                    cluster: cluster_name,
                },
                cluster,
                done,
            );
        }
        Failure::Expired(Expired::Request) => {
            cluster.counters.upstream_rq_timeout.inc();
            if let Some(h) = &host {
                h.counters.rq_timeout.inc();
            }
            cluster.codes.record(504);
            LocalReply::RequestTimeout
        }
        Failure::Expired(Expired::Idle) => {
            done.listener
                .stats
                .counters
                .downstream_rq_idle_timeout
                .inc();
            let request_complete = done.progress.as_ref().is_none_or(|p| p.request_complete());
            LocalReply::StreamIdle { request_complete }
        }
        Failure::PerTryTimeout => {
            cluster.counters.upstream_rq_timeout.inc();
            if let Some(h) = &host {
                h.counters.rq_timeout.inc();
            }
            cluster.codes.record(504);
            LocalReply::PerTryTimeout
        }
        Failure::Reset(addr, e, _) => {
            done.record.upstream_host = Some(addr);
            match client_failure(&mut done) {
                Some(reply) => reply,
                None if e.is_parse() => {
                    cluster.counters.upstream_cx_protocol_error.inc();
                    cluster.codes.record(502);
                    tracing::debug!(cluster = %cluster.name, %addr, error = %e, "upstream protocol error");
                    LocalReply::UpstreamProtocolError
                }
                None => {
                    cluster.counters.upstream_rq_rx_reset.inc();
                    cluster.codes.record(503);
                    tracing::debug!(cluster = %cluster.name, %addr, error = %e, "upstream reset");
                    LocalReply::UpstreamReset
                }
            }
        }
    };
    reply::respond(reply, done)
}

/// When the client's request body failed (its framing, or the client leaving): the reply that
/// says so.
fn client_failure(done: &mut Completion) -> Option<LocalReply> {
    match done.progress.as_ref().and_then(|p| p.request_error())? {
        RequestBodyError::Protocol => Some(LocalReply::DownstreamProtocolError),
        RequestBodyError::Disconnected => {
            done.listener.stats.counters.downstream_rq_rx_reset.inc();
            Some(LocalReply::DownstreamDisconnected)
        }
    }
}

/// A refusal by a pool: 503 with Envoy's flag and body, plus the limit and cluster that refused.
fn refuse(e: CheckoutError, cluster: &ClusterInfo, done: Completion) -> Response<ResponseBody> {
    refused(LocalReply::refusal(e, &cluster.shared_name), cluster, done)
}

/// A 503 for `cluster`, counted as its response.
fn refused(
    reply: LocalReply,
    cluster: &ClusterInfo,
    mut done: Completion,
) -> Response<ResponseBody> {
    cluster.codes.record(503);
    cluster.counters.upstream_rq_completed.inc();
    reply.log_refusal(cluster);
    if done.record.upstream_cluster.is_none() {
        done.record.upstream_cluster = Some(cluster.shared_name.clone());
    }
    reply::respond(reply, done)
}
