//! `VirtualService` (`networking.istio.io`), HTTP part: matches, weighted destinations,
//! retries, timeout, fault injection (reference appmesh-istio.md §13).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::destination_rule::PortSelector;
use super::duration::IstioDuration;
use crate::model::macros::union;

/// `VirtualService.spec`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct VirtualServiceSpec {
    /// The hosts whose requests these routes take (as the client writes them in `Host`).
    #[serde(default)]
    pub hosts: Vec<String>,
    /// Gateways the routes apply to (only the sidecar's `mesh` is served).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateways: Option<Vec<String>>,
    /// HTTP routes, first match wins.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http: Option<Vec<HttpRoute>>,
    /// TCP routes (not served yet).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tcp: Option<Vec<serde_json::Value>>,
    /// TLS routes (not served yet).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<Vec<serde_json::Value>>,
    /// Namespaces the service is visible in (accepted; every meshd sees every resource).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub export_to: Option<Vec<String>>,
}

/// `http[]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HttpRoute {
    /// A name for logs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Conditions, any of which selects the route; none = every request.
    #[serde(default, rename = "match", skip_serializing_if = "Option::is_none")]
    pub r#match: Option<Vec<HttpMatchRequest>>,
    /// Weighted destinations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub route: Option<Vec<HttpRouteDestination>>,
    /// The request's timeout; default none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<IstioDuration>,
    /// Retries; when absent, Istio's default policy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retries: Option<HttpRetry>,
    /// Injected delays and aborts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fault: Option<HttpFaultInjection>,
    /// Redirect (not served yet).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redirect: Option<serde_json::Value>,
    /// Direct response (not served yet).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub direct_response: Option<serde_json::Value>,
    /// Delegation (not served yet).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delegate: Option<serde_json::Value>,
    /// Rewrite (not served yet).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rewrite: Option<serde_json::Value>,
    /// Mirroring (not served yet).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mirror: Option<serde_json::Value>,
    /// Mirroring (not served yet).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mirrors: Option<serde_json::Value>,
    /// Mirroring share (not served yet).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mirror_percentage: Option<serde_json::Value>,
    /// CORS (not served yet).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cors_policy: Option<serde_json::Value>,
    /// Header manipulation (not served yet).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub headers: Option<serde_json::Value>,
}

union! {
    /// `StringMatch`: `exact` | `prefix` | `regex` (RE2 syntax, whole value).
    pub enum StringMatch {
        /// The whole value.
        Exact(String) = "exact",
        /// A prefix of the value.
        Prefix(String) = "prefix",
        /// A regular expression matching the whole value.
        Regex(String) = "regex",
    }
}

/// `http[].match[]`: every condition set must hold.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HttpMatchRequest {
    /// A name for logs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uri: Option<StringMatch>,
    /// The method (exact only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<StringMatch>,
    /// Request headers (lower-case names).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub headers: Option<BTreeMap<String, StringMatch>>,
    /// Query parameters (not served yet).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query_params: Option<serde_json::Value>,
    /// Scheme (not served yet).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheme: Option<serde_json::Value>,
    /// Authority (not served yet).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authority: Option<serde_json::Value>,
    /// Headers that must be absent (not served yet).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub without_headers: Option<serde_json::Value>,
    /// The port the request came to (not served yet).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<i64>,
    /// Labels of the calling workload (not served yet).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_labels: Option<BTreeMap<String, String>>,
    /// Gateways (not served yet).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateways: Option<Vec<String>>,
    /// Case-insensitive `uri` (not served yet).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ignore_uri_case: Option<bool>,
    /// Namespace of the caller (not served yet).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_namespace: Option<String>,
}

/// `http[].route[]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HttpRouteDestination {
    /// Where requests go.
    pub destination: Destination,
    /// Relative weight; 0 sends nothing. When every weight is unset, the single destination
    /// takes all.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight: Option<i64>,
    /// Header manipulation (not served yet).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub headers: Option<serde_json::Value>,
}

/// `destination`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Destination {
    /// A ServiceEntry host (or a node's DNS name).
    pub host: String,
    /// A subset a DestinationRule for `host` defines.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subset: Option<String>,
    /// The port; may be left out when the host has one port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<PortSelector>,
}

/// `retries`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HttpRetry {
    /// Retries per request (attempts = 1 + this); 0 disables.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attempts: Option<i64>,
    /// Timeout of each attempt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub per_try_timeout: Option<IstioDuration>,
    /// Envoy `retry_on` conditions, comma separated; status codes allowed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_on: Option<String>,
    /// Retry in other localities (accepted; not in force).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_remote_localities: Option<bool>,
    /// Pick another host on retry (meshd always does when there is one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_ignore_previous_hosts: Option<bool>,
    /// Base backoff interval; default 25 ms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backoff: Option<IstioDuration>,
}

/// `fault`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HttpFaultInjection {
    /// Delay some requests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delay: Option<FaultDelay>,
    /// Abort some requests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub abort: Option<FaultAbort>,
}

/// `fault.delay`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FaultDelay {
    /// The delay.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fixed_delay: Option<IstioDuration>,
    /// Exponential delay (not supported, as in Istio).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exponential_delay: Option<IstioDuration>,
    /// Share of requests delayed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub percentage: Option<Percent>,
    /// Deprecated integer share.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub percent: Option<i64>,
}

/// `fault.abort`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FaultAbort {
    /// The status returned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_status: Option<i64>,
    /// A gRPC status (not served yet).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grpc_status: Option<String>,
    /// Share of requests aborted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub percentage: Option<Percent>,
}

/// `{value: 0.0–100.0}`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Percent {
    /// Percent, 0–100.
    pub value: f64,
}
