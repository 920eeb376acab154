//! Which limit of a cluster refused how many requests, from the per-limit refusal counters and
//! `/clusters` limits and peaks.

use serde::Serialize;

use super::Cluster;
use crate::clusters;

/// One limit that refused requests (`kind: "limit"`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Limit {
    /// The meshd (admin address).
    pub source: String,
    /// The cluster.
    pub cluster: String,
    /// The limit (`max_pending_requests`, …).
    pub limit: String,
    /// Requests refused by it.
    pub refused: u64,
    /// The configured value.
    pub configured: Option<u64>,
    /// Highest occupancy seen.
    pub peak: Option<u64>,
    /// At capacity right now.
    pub open: bool,
    /// The flag the refused requests carry in the access log (`UO`).
    pub flag: &'static str,
}

/// `(limit, refusal counter, Envoy overflow counter used when the first is absent)`.
const COUNTERS: [(&str, &str, Option<&str>); 4] = [
    (
        "max_connections",
        "circuit_breakers.default.cx_refused",
        None,
    ),
    (
        "max_pending_requests",
        "circuit_breakers.default.rq_pending_refused",
        Some("upstream_rq_pending_overflow"),
    ),
    ("max_requests", "circuit_breakers.default.rq_refused", None),
    (
        "max_retries",
        "circuit_breakers.default.rq_retry_refused",
        Some("upstream_rq_retry_overflow"),
    ),
];

/// Every limit of the cluster that refused requests.
pub(super) fn findings(c: &Cluster<'_>) -> Vec<Limit> {
    let limits = clusters::limits(c.json);
    let mut out = Vec::new();
    for (limit, counter, envoy) in COUNTERS {
        let refused = c
            .stat(counter)
            .or_else(|| envoy.and_then(|e| c.stat(e)))
            .unwrap_or(0);
        if refused == 0 {
            continue;
        }
        let l = limits.iter().find(|l| l.limit_name == limit);
        out.push(Limit {
            source: c.source.to_owned(),
            cluster: c.name.to_owned(),
            limit: limit.to_owned(),
            refused,
            configured: l.map(|l| l.limit),
            peak: l.and_then(|l| l.peak),
            open: l.is_some_and(|l| l.open),
            flag: "UO",
        });
    }
    out
}

fn what(limit: &str) -> &'static str {
    match limit {
        "max_connections" => "every allowed upstream connection was in use",
        "max_pending_requests" => "the queue of requests waiting for a connection was full",
        "max_requests" => "the requests in flight to the cluster were at their limit",
        _ => "the retries in flight were at their limit, so failed requests were not retried",
    }
}

/// The finding in words.
pub fn sentence(f: &Limit) -> String {
    let n = f.refused;
    let mut s = format!(
        "{}: cluster {} refused {n} {} at its {} limit: {}",
        f.source,
        f.cluster,
        super::plural(n, "request", "requests"),
        f.limit,
        what(&f.limit)
    );
    match (f.configured, f.peak) {
        (Some(c), Some(p)) => s.push_str(&format!(" (configured {c}, peak in flight {p})")),
        (Some(c), None) => s.push_str(&format!(" (configured {c})")),
        _ => {}
    }
    if f.limit == "max_retries" {
        s.push_str(". They got the failed attempt's response, with flag UO from this meshd.");
    } else {
        s.push_str(&format!(
            ". They got 503 with flag UO from this meshd (x-mesh-overflow: {} {}).",
            f.limit, f.cluster
        ));
    }
    if f.open {
        s.push_str(" The limit is at capacity right now.");
    }
    s
}
