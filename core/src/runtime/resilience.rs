//! App Mesh's resilience settings compiled into the vocabulary-free `core` types:
//! a route's `retryPolicy` → [`RetryPolicy`], a listener's `outlierDetection` →
//! [`OutlierConfig`] and `healthCheck` → [`HealthCheckConfig`].
//!
//! Where they apply, as App Mesh configures Envoy (appmesh-istio.md §10.2, §10.3):
//! * a node listener's `outlierDetection` and `healthCheck` go on every **caller's egress
//!   cluster** to that node (`cds_egress_<mesh>_<node>_<protocol>_<port>`): callers eject and
//!   probe the node's hosts. The node's own ingress cluster (its local app) gets neither: App
//!   Mesh's health check passes through the node's proxy to the app, which is what a caller's
//!   probe through meshd's ingress listener does;
//! * a route's `retryPolicy` goes on the route; a route without one, and the implicit route to
//!   a virtual-node provider, get [`RetryPolicy::UNSET_ROUTE_DEFAULT`] (connect failures and
//!   refused requests, twice). A node's ingress listener does not retry;
//! * every cluster gets the default [`RetryBudget`] (App Mesh has no setting for it).

use std::time::Duration;

use crate::health::{HealthCheckConfig, ProbeKind};
use crate::model::{self, HttpRetryEvent, PortProtocol, TcpRetryEvent};
use crate::outlier::OutlierConfig;
use crate::retry::{Backoff, RetryBudget, RetryOn, RetryPolicy};

fn count(v: i64) -> u32 {
    u32::try_from(v.max(0)).unwrap_or(u32::MAX)
}

/// A route's retry policy: App Mesh's events as Envoy's `retry_on` (see [`crate::retry`] for
/// the table), `maxRetries` as `num_retries`, `perRetryTimeout` as the per-try timeout (zero =
/// none), Envoy's default backoff. No policy → [`RetryPolicy::UNSET_ROUTE_DEFAULT`].
pub(crate) fn retry_policy(rp: Option<&model::HttpRetryPolicy>) -> RetryPolicy {
    let Some(rp) = rp else {
        return RetryPolicy::UNSET_ROUTE_DEFAULT;
    };
    let mut on = RetryOn::default();
    for e in rp.http_retry_events.iter().flatten() {
        match e {
            HttpRetryEvent::ServerError => on.five_xx = true,
            HttpRetryEvent::GatewayError => on.gateway_error = true,
            HttpRetryEvent::ClientError => on.retriable_4xx = true,
            HttpRetryEvent::StreamError => on.refused_stream = true,
        }
    }
    for e in rp.tcp_retry_events.iter().flatten() {
        match e {
            TcpRetryEvent::ConnectionError => on.connect_failure = true,
        }
    }
    let per_try = rp.per_retry_timeout.to_std();
    RetryPolicy {
        retry_on: on,
        num_retries: count(rp.max_retries),
        per_try_timeout: (!per_try.is_zero()).then_some(per_try),
        backoff: Backoff::ENVOY_DEFAULT,
    }
}

/// A listener's `outlierDetection` for its callers' egress clusters
/// ([`OutlierConfig::app_mesh`]).
pub(crate) fn outlier_detection(od: &model::OutlierDetection) -> OutlierConfig {
    OutlierConfig::app_mesh(
        count(od.max_server_errors),
        od.interval.to_std(),
        od.base_ejection_duration.to_std(),
        count(od.max_ejection_percent),
    )
}

/// A listener's `healthCheck` for its callers' egress clusters. `http` probes `GET path`
/// (validation requires a path; `/` if absent), `tcp` connects. `http2` and `grpc` checks are
/// not run yet (`None`): meshd's probes speak HTTP/1.1 only.
pub(crate) fn health_check(hc: &model::HealthCheckPolicy) -> Option<HealthCheckConfig> {
    let kind = match hc.protocol {
        PortProtocol::Http => ProbeKind::Http {
            path: hc
                .path
                .clone()
                .filter(|p| !p.is_empty())
                .unwrap_or_else(|| "/".into()),
        },
        PortProtocol::Tcp => ProbeKind::Tcp,
        PortProtocol::Http2 | PortProtocol::Grpc => return None,
    };
    let millis = |v: i64| Duration::from_millis(u64::try_from(v).unwrap_or(0));
    Some(HealthCheckConfig::app_mesh(
        kind,
        millis(hc.interval_millis),
        millis(hc.timeout_millis),
        count(hc.healthy_threshold),
        count(hc.unhealthy_threshold),
    ))
}

/// The retry budget of every cluster.
pub(crate) fn retry_budget() -> RetryBudget {
    RetryBudget::DEFAULT
}

#[cfg(test)]
#[path = "resilience_tests.rs"]
mod tests;
