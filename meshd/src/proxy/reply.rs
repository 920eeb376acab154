//! Every response meshd makes itself, in one type: [`LocalReply`] maps each reason a request got
//! no upstream response to its status, Envoy's response flag, response code details, body and
//! extra headers. What each one counts stays at the place that decides it ([`super::fail`]).

use std::borrow::Cow;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http::header::HeaderName;
use http::{HeaderMap, HeaderValue, Response, StatusCode};
use mesh_core::accesslog::ResponseFlag;
use mesh_core::breaker::Limit;
use mesh_core::pool::{CheckoutError, ClusterInfo};

use crate::body::{Completion, ResponseBody};

/// Envoy's body for a refusal by a circuit breaker.
pub const OVERFLOW_BODY: &str =
    "upstream connect error or disconnect/reset before headers. reset reason: overflow";

static X_ENVOY_OVERLOADED: HeaderName = HeaderName::from_static("x-envoy-overloaded");
static X_MESH_OVERFLOW: HeaderName = HeaderName::from_static("x-mesh-overflow");

/// Why meshd answers a request itself.
#[derive(Debug)]
pub enum LocalReply {
    /// HTTP/1.1 without exactly one `Host`: 400 `DPE`.
    MissingHost,
    /// No route matches: 404 `NR`, empty body.
    NoRoute,
    /// The route names a cluster meshd does not have: 503, empty body (Envoy's default
    /// `cluster_not_found_response_code`).
    ClusterNotFound,
    /// A breaker refused: 503 `UO` with Envoy's body; `x-envoy-overloaded: true` (not for the
    /// retry limit) and `x-mesh-overflow: <limit> <cluster>`.
    Overflow {
        /// The limit that refused.
        limit: Limit,
        /// The cluster it belongs to (its shared name: a refusal copies no string).
        cluster: Arc<str>,
    },
    /// No usable host: 503 `UH`.
    NoHealthyUpstream,
    /// The cluster has no host at all (an empty endpoint list, a name without address): 503
    /// `UH` as [`LocalReply::NoHealthyUpstream`], the details naming the cluster.
    NoEndpoints {
        /// The cluster.
        cluster: String,
    },
    /// The route's fault injection aborted the request: its status, flag `FI`, body
    /// `fault filter abort` (Envoy's fault filter).
    FaultAbort {
        /// The status to answer.
        status: StatusCode,
    },
    /// Opening the connection failed: 503 `UF`.
    ConnectFailed {
        /// The host.
        addr: SocketAddr,
        /// What the socket said.
        reason: String,
    },
    /// Opening the connection took longer than the connect timeout: 503 `UF`.
    ConnectTimeout {
        /// The host.
        addr: SocketAddr,
    },
    /// The per-request timeout before the response headers: 504 `UT`.
    RequestTimeout,
    /// An attempt's per-try timeout, with no retry left: 504 `UT`.
    PerTryTimeout,
    /// The stream idle timeout before the response headers: 504 `SI`, or 408 (closing the
    /// connection) while the client still owes bytes of its body.
    StreamIdle {
        /// Whether the client's request was complete.
        request_complete: bool,
    },
    /// The client's body broke its framing: 400 `DPE`, closing the connection.
    DownstreamProtocolError,
    /// The client left while its body was being sent: `DC` (nobody reads this 400).
    DownstreamDisconnected,
    /// The upstream's response head was too large or malformed: 502 `UPE`.
    UpstreamProtocolError,
    /// The upstream closed or reset the connection before a response head: 503 `UC`.
    UpstreamReset,
}

impl LocalReply {
    /// The status sent.
    pub fn status(&self) -> StatusCode {
        match self {
            LocalReply::MissingHost
            | LocalReply::DownstreamProtocolError
            | LocalReply::DownstreamDisconnected => StatusCode::BAD_REQUEST,
            LocalReply::NoRoute => StatusCode::NOT_FOUND,
            LocalReply::ClusterNotFound
            | LocalReply::Overflow { .. }
            | LocalReply::NoHealthyUpstream
            | LocalReply::NoEndpoints { .. }
            | LocalReply::ConnectFailed { .. }
            | LocalReply::ConnectTimeout { .. }
            | LocalReply::UpstreamReset => StatusCode::SERVICE_UNAVAILABLE,
            LocalReply::RequestTimeout | LocalReply::PerTryTimeout => StatusCode::GATEWAY_TIMEOUT,
            LocalReply::StreamIdle { request_complete } => {
                if *request_complete {
                    StatusCode::GATEWAY_TIMEOUT
                } else {
                    StatusCode::REQUEST_TIMEOUT
                }
            }
            LocalReply::UpstreamProtocolError => StatusCode::BAD_GATEWAY,
            LocalReply::FaultAbort { status } => *status,
        }
    }

    /// Envoy's response flag, if the reply has one.
    pub fn flag(&self) -> Option<ResponseFlag> {
        Some(match self {
            LocalReply::MissingHost | LocalReply::DownstreamProtocolError => {
                ResponseFlag::DownstreamProtocolError
            }
            LocalReply::NoRoute => ResponseFlag::NoRouteFound,
            LocalReply::ClusterNotFound => return None,
            LocalReply::Overflow { .. } => ResponseFlag::UpstreamOverflow,
            LocalReply::NoHealthyUpstream | LocalReply::NoEndpoints { .. } => {
                ResponseFlag::NoHealthyUpstream
            }
            LocalReply::FaultAbort { .. } => ResponseFlag::FaultInjected,
            LocalReply::ConnectFailed { .. } | LocalReply::ConnectTimeout { .. } => {
                ResponseFlag::UpstreamConnectionFailure
            }
            LocalReply::RequestTimeout | LocalReply::PerTryTimeout => {
                ResponseFlag::UpstreamRequestTimeout
            }
            LocalReply::StreamIdle { .. } => ResponseFlag::StreamIdleTimeout,
            LocalReply::DownstreamDisconnected => ResponseFlag::DownstreamConnectionTermination,
            LocalReply::UpstreamProtocolError => ResponseFlag::UpstreamProtocolError,
            LocalReply::UpstreamReset => ResponseFlag::UpstreamConnectionTermination,
        })
    }

    /// Envoy's `%RESPONSE_CODE_DETAILS%`. A cluster without any host extends Envoy's
    /// `no_healthy_upstream` as Envoy extends its details, with a braced sub-detail:
    /// `no_healthy_upstream{no_endpoints:<cluster>}` (whitespace in the name as `_`, as Envoy
    /// keeps details free of whitespace).
    pub fn details(&self) -> Cow<'static, str> {
        let fixed = match self {
            LocalReply::NoEndpoints { cluster } => {
                let name: String = cluster
                    .chars()
                    .map(|c| if c.is_whitespace() { '_' } else { c })
                    .collect();
                return format!("no_healthy_upstream{{no_endpoints:{name}}}").into();
            }
            LocalReply::FaultAbort { .. } => "fault_filter_abort",
            LocalReply::MissingHost => "missing_host_header",
            LocalReply::NoRoute => "route_not_found",
            LocalReply::ClusterNotFound => "cluster_not_found",
            LocalReply::Overflow { .. } => "upstream_reset_before_response_started{overflow}",
            LocalReply::NoHealthyUpstream => "no_healthy_upstream",
            LocalReply::ConnectFailed { .. } => {
                "upstream_reset_before_response_started{remote_connection_failure}"
            }
            LocalReply::ConnectTimeout { .. } => {
                "upstream_reset_before_response_started{connection_timeout}"
            }
            LocalReply::RequestTimeout => "response_timeout",
            LocalReply::PerTryTimeout => "upstream_per_try_timeout",
            LocalReply::StreamIdle { .. } => "stream_idle_timeout",
            LocalReply::DownstreamProtocolError => "downstream_protocol_error",
            LocalReply::DownstreamDisconnected => "downstream_remote_disconnect",
            LocalReply::UpstreamProtocolError => {
                "upstream_reset_before_response_started{protocol_error}"
            }
            LocalReply::UpstreamReset => {
                "upstream_reset_before_response_started{connection_termination}"
            }
        };
        fixed.into()
    }

    /// The body (Envoy's text; empty for 400s, 404 and a missing cluster). Fixed texts are
    /// borrowed, not allocated.
    pub fn body(&self) -> Cow<'static, str> {
        // Envoy's text for a reset before the response head, with its reason.
        macro_rules! reset {
            ($reason:literal) => {
                concat!(
                    "upstream connect error or disconnect/reset before headers. reset reason: ",
                    $reason
                )
            };
        }
        let fixed = match self {
            LocalReply::MissingHost
            | LocalReply::NoRoute
            | LocalReply::ClusterNotFound
            | LocalReply::DownstreamProtocolError
            | LocalReply::DownstreamDisconnected => "",
            LocalReply::Overflow { .. } => OVERFLOW_BODY,
            LocalReply::NoHealthyUpstream | LocalReply::NoEndpoints { .. } => "no healthy upstream",
            LocalReply::FaultAbort { .. } => "fault filter abort",
            LocalReply::ConnectFailed { reason, .. } => {
                return format!(
                    reset!("remote connection failure, transport failure reason: {}"),
                    reason
                )
                .into();
            }
            LocalReply::ConnectTimeout { .. } => reset!("connection timeout"),
            LocalReply::RequestTimeout | LocalReply::PerTryTimeout => "upstream request timeout",
            LocalReply::StreamIdle { .. } => "stream timeout",
            LocalReply::UpstreamProtocolError => reset!("protocol error"),
            LocalReply::UpstreamReset => reset!("connection termination"),
        };
        fixed.into()
    }

    /// A pool's refusal (503): Envoy's flag and body, plus the limit and cluster that refused.
    pub fn refusal(e: CheckoutError, cluster: &Arc<str>) -> LocalReply {
        match e {
            CheckoutError::Overflow(limit) => LocalReply::Overflow {
                limit,
                cluster: cluster.clone(),
            },
            CheckoutError::NoHealthyUpstream => LocalReply::NoHealthyUpstream,
            CheckoutError::ConnectFailed { addr, source } => LocalReply::ConnectFailed {
                addr,
                reason: source.to_string(),
            },
            CheckoutError::ConnectTimeout { addr } => LocalReply::ConnectTimeout { addr },
        }
    }

    /// The journal's view of a cluster's refusals: one warning (fields `cluster`, `flag`,
    /// `details`, `missed`) for the first refusal and then at most one per 10 s per cluster,
    /// saying how many were not logged since; every refusal is in the stats, the access log and
    /// `meshstat why`.
    pub fn log_refusal(&self, cluster: &ClusterInfo) {
        static START: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
        let now_ms = START
            .get_or_init(std::time::Instant::now)
            .elapsed()
            .as_millis() as u64;
        let Some(missed) = cluster.refusal_log.check(now_ms) else {
            return;
        };
        let flag = self.flag().map_or("-", ResponseFlag::short);
        let why = match self {
            LocalReply::Overflow { limit, .. } => format!(
                "at its {} limit ({})",
                limit.threshold_name(),
                cluster.breakers.get(*limit).max()
            ),
            other => other.details().into_owned(),
        };
        let since = if missed > 0 {
            format!("; {missed} more since the last such line (one per 10 s at most)")
        } else {
            String::new()
        };
        tracing::warn!(
            cluster = %cluster.name, flag, details = %self.details(), missed,
            "cluster {}: refusing requests with 503 {flag}: {why}{since}", cluster.name
        );
    }

    /// Adds the headers besides `content-type` and `content-length` to `h`.
    pub fn add_headers(&self, h: &mut HeaderMap) {
        match self {
            LocalReply::Overflow { limit, cluster } => {
                let name = limit.threshold_name();
                let mut v = String::with_capacity(name.len() + 1 + cluster.len());
                v.push_str(name);
                v.push(' ');
                v.push_str(cluster);
                if let Ok(v) = HeaderValue::try_from(v) {
                    h.insert(X_MESH_OVERFLOW.clone(), v);
                }
                // Envoy: a refusal by the retry limit is not an overload of the upstream.
                if !matches!(limit, Limit::Retries) {
                    h.insert(X_ENVOY_OVERLOADED.clone(), HeaderValue::from_static("true"));
                }
            }
            LocalReply::StreamIdle {
                request_complete: false,
            }
            | LocalReply::DownstreamProtocolError => {
                h.insert(http::header::CONNECTION, HeaderValue::from_static("close"));
            }
            _ => {}
        }
    }

    /// The upstream host the reply concerns, for the access log.
    pub fn upstream_host(&self) -> Option<SocketAddr> {
        match self {
            LocalReply::ConnectFailed { addr, .. } | LocalReply::ConnectTimeout { addr } => {
                Some(*addr)
            }
            _ => None,
        }
    }
}

/// A response made by meshd itself: [`LocalReply`] says its status, flag, details, body and
/// headers; `done` records them for the access log and the listener's stats.
pub fn respond(reply: LocalReply, mut done: Completion) -> Response<ResponseBody> {
    let status = reply.status();
    if let Some(flag) = reply.flag() {
        done.record.flags.insert(flag);
    }
    done.record.details = reply.details();
    if let Some(addr) = reply.upstream_host() {
        done.record.upstream_host = Some(addr);
    }
    let body = match reply.body() {
        Cow::Borrowed(b) => Bytes::from_static(b.as_bytes()),
        Cow::Owned(b) => Bytes::from(b),
    };
    done.listener.stats.codes.record(status.as_u16());
    done.record.code = status.as_u16();
    let len = body.len();
    let mut resp = Response::new(ResponseBody::local(body, done));
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    if len > 0 {
        h.insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain"),
        );
    }
    h.insert(http::header::CONTENT_LENGTH, HeaderValue::from(len));
    reply.add_headers(h);
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_reply_has_envoys_status_flag_and_body() {
        let overflow = LocalReply::Overflow {
            limit: Limit::PendingRequests,
            cluster: "c".into(),
        };
        assert_eq!(overflow.status(), 503);
        assert_eq!(overflow.flag(), Some(ResponseFlag::UpstreamOverflow));
        assert_eq!(overflow.body(), OVERFLOW_BODY);
        let mut h = HeaderMap::new();
        overflow.add_headers(&mut h);
        assert_eq!(h["x-mesh-overflow"], "max_pending_requests c");
        assert_eq!(h["x-envoy-overloaded"], "true");
        let retry = LocalReply::Overflow {
            limit: Limit::Retries,
            cluster: "c".into(),
        };
        let mut h = HeaderMap::new();
        retry.add_headers(&mut h);
        assert!(!h.contains_key("x-envoy-overloaded"));
        assert_eq!(LocalReply::NoRoute.status(), 404);
        assert_eq!(LocalReply::NoRoute.body(), "");
        assert_eq!(
            LocalReply::StreamIdle {
                request_complete: false
            }
            .status(),
            408
        );
        assert_eq!(
            LocalReply::RequestTimeout.flag(),
            Some(ResponseFlag::UpstreamRequestTimeout)
        );
        assert_eq!(LocalReply::ClusterNotFound.flag(), None);
    }

    #[test]
    fn no_endpoints_and_fault_abort_say_why_in_envoys_shapes() {
        let none = LocalReply::NoEndpoints {
            cluster: "outbound|8080|v2|pyserver.demo.svc".into(),
        };
        assert_eq!(none.status(), 503);
        assert_eq!(none.flag(), Some(ResponseFlag::NoHealthyUpstream));
        assert_eq!(none.body(), "no healthy upstream");
        assert_eq!(
            none.details(),
            "no_healthy_upstream{no_endpoints:outbound|8080|v2|pyserver.demo.svc}"
        );
        let spaced = LocalReply::NoEndpoints {
            cluster: "a b\tc".into(),
        };
        assert!(!spaced.details().contains(char::is_whitespace));
        assert_eq!(
            LocalReply::NoHealthyUpstream.details(),
            "no_healthy_upstream"
        );
        let abort = LocalReply::FaultAbort {
            status: StatusCode::IM_A_TEAPOT,
        };
        assert_eq!(abort.status(), 418);
        assert_eq!(abort.flag(), Some(ResponseFlag::FaultInjected));
        assert_eq!(abort.body(), "fault filter abort");
        assert_eq!(abort.details(), "fault_filter_abort");
        let mut h = HeaderMap::new();
        abort.add_headers(&mut h);
        assert!(h.is_empty());
    }
}
