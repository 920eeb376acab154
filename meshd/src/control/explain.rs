//! `meshctl explain HOST` and the live part of `meshctl describe destinationrule`: what a
//! request to a host passes through on this VM, in order — the egress listener of each local
//! workload that routes it, the route it matches (timeout, retry policy, weighted targets),
//! every target cluster's limits with their live occupancy, its retry budget, pool settings,
//! ejection settings and hosts — and the server-side limits the host's own workloads apply,
//! which the shared config directory tells even where they run on other VMs.
//!
//! Everything comes from the compiled config in force (`View::config`) and the live clusters,
//! so it is what meshd does, not a reading of the resources.

use serde_json::{json, Value};

use mesh_core::breaker::Thresholds;
use mesh_core::model::MeshSet;
use mesh_core::runtime::{Cluster, Endpoints, PathMatch, Role, Route, Routing};

use super::live::cluster_state;
use crate::server::View;

fn ms(d: std::time::Duration) -> Value {
    if d == std::time::Duration::MAX {
        Value::Null
    } else {
        json!(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }
}

fn limits_json(t: &Thresholds) -> Value {
    json!({"max_connections": t.max_connections, "max_pending_requests": t.max_pending_requests,
           "max_requests": t.max_requests, "max_retries": t.max_retries})
}

fn route_json(r: &Route) -> Value {
    let retry = r.retry.map(|p| {
        json!({"num_retries": p.num_retries,
               "retry_on": p.retry_on.envoy_names().join(","),
               "per_try_timeout_ms": p.per_try_timeout.map(ms),
               "backoff_base_ms": ms(p.backoff.base),
               "backoff_max_ms": ms(p.backoff.max)})
    });
    json!({
        "name": r.name,
        "match": match &r.matcher.path {
            PathMatch::Prefix(p) => format!("prefix {p}"),
            PathMatch::Exact(e) => format!("path {e}"),
            PathMatch::Regex(re) => format!("regex {}", re.as_str()),
        },
        "method": r.matcher.method.as_ref().map(|m| m.as_str().to_owned()),
        "headers": r.matcher.headers.iter().map(|h| h.name.as_str().to_owned()).collect::<Vec<_>>(),
        "targets": r.targets.iter().map(|t| json!({"cluster": t.cluster, "weight": t.weight})).collect::<Vec<_>>(),
        // None = the listener's; zero = no timeout.
        "timeout_ms": r.timeout.map(ms),
        "retry": retry,
    })
}

/// A cluster's configuration and, when it is live, its `breakers` and `hosts` as
/// [`cluster_state`] gives them.
pub fn cluster_detail(view: &View, c: &Cluster) -> Value {
    let t = &c.thresholds;
    let s = &c.settings;
    let endpoints = match &c.endpoints {
        Endpoints::Static(a) => vec![a.to_string()],
        Endpoints::Dns { hostname, port } => vec![format!("{hostname}:{port} (DNS)")],
        Endpoints::LocalListener { node } => vec![format!("the listener of {node}")],
        Endpoints::Slots => vec![],
        Endpoints::List(l) => l.iter().map(|(h, p)| format!("{h}:{p}")).collect(),
    };
    let side = if c.name.starts_with("inbound|") || c.name.starts_with("cds_ingress_") {
        "server"
    } else {
        "client"
    };
    let mut v = json!({
        "name": c.name,
        "side": side,
        "limits": limits_json(t),
        "retry_budget": {"budget_percent": c.retry_budget.budget_percent,
                         "min_retry_concurrency": c.retry_budget.min_retry_concurrency},
        "pool": {"connect_timeout_ms": ms(s.connect_timeout), "idle_timeout_ms": ms(s.idle_timeout),
                 "max_requests_per_connection": s.max_requests_per_connection,
                 "lb_policy": s.lb_policy.envoy_name()},
        "outlier_detection": c.outlier_detection.map(|o| json!({
            "consecutive_5xx": o.consecutive_5xx, "enforcing_consecutive_5xx": o.enforcing_consecutive_5xx,
            "consecutive_gateway_failure": o.consecutive_gateway_failure,
            "enforcing_consecutive_gateway_failure": o.enforcing_consecutive_gateway_failure,
            "split_external_local_origin_errors": o.split_external_local_origin_errors,
            "consecutive_local_origin_failure": o.consecutive_local_origin_failure,
            "interval_ms": ms(o.interval), "base_ejection_time_ms": ms(o.base_ejection_time),
            "max_ejection_percent": o.max_ejection_percent})),
        "health_check": c.health_check.as_ref().map(|h| json!({
            "interval_ms": ms(h.interval), "timeout_ms": ms(h.timeout),
            "healthy_threshold": h.healthy_threshold, "unhealthy_threshold": h.unhealthy_threshold})),
        "endpoints": endpoints,
    });
    if let Some(live) = view.clusters.iter().find(|l| l.info().name == c.name) {
        let state = cluster_state(live);
        v["breakers"] = state["breakers"].clone();
        v["hosts"] = state["hosts"].clone();
    }
    v
}

/// What a request to `host` (`name` or `name:port`) passes through on this VM.
pub fn explain(view: &View, set: &MeshSet, host: &str) -> Value {
    let mut paths = Vec::new();
    for l in &view.config.listeners {
        if l.role != Role::Egress {
            continue;
        }
        let Routing::Hosts(hosts) = &*l.routing else {
            continue;
        };
        let Some(vh) = hosts.iter().find(|v| v.answers(host)) else {
            continue;
        };
        let bound = view
            .listeners
            .iter()
            .find(|(n, role, ..)| n == &l.node && *role == Role::Egress)
            .map(|(_, _, addr, _)| addr.to_string());
        let mut names: Vec<&str> = vh
            .routes
            .iter()
            .flat_map(|r| r.targets.iter().map(|t| t.cluster.as_str()))
            .collect();
        names.sort();
        names.dedup();
        let clusters: Vec<Value> = names
            .iter()
            .filter_map(|n| view.config.clusters.iter().find(|c| c.name == *n))
            .map(|c| cluster_detail(view, c))
            .collect();
        paths.push(json!({
            "node": l.node,
            "listener": bound,
            "request_timeout_ms": ms(l.request_timeout),
            "stream_idle_timeout_ms": ms(l.stream_idle_timeout),
            "virtual_host": vh.name,
            "routes": vh.routes.iter().map(route_json).collect::<Vec<_>>(),
            "clusters": clusters,
        }));
    }
    let bare = host.rsplit_once(':').map_or(host, |(h, _)| h);
    let server: Vec<Value> = mesh_core::runtime::server_limits(set, bare)
        .into_iter()
        .map(|(port, t, rule)| {
            json!({"port": port, "rule": rule,
                   "limits": limits_json(&t)})
        })
        .collect();
    let here: Vec<Value> = view
        .config
        .clusters
        .iter()
        .filter(|c| c.name.starts_with("inbound|") && c.name.ends_with(&format!("||{bare}")))
        .map(|c| cluster_detail(view, c))
        .collect();
    json!({"host": host, "paths": paths, "server_side": server, "served_here": here})
}

/// The clusters a DestinationRule for `host` shapes on this VM (outbound ones of every local
/// workload, inbound ones of the workloads serving it here), with live occupancy.
pub fn rule_state(view: &View, host: &str) -> Value {
    let suffix = format!("|{host}");
    let clusters: Vec<Value> = view
        .config
        .clusters
        .iter()
        .filter(|c| c.name.ends_with(&suffix) && c.name.matches('|').count() == 3)
        .map(|c| cluster_detail(view, c))
        .collect();
    json!({"clusters": clusters})
}
