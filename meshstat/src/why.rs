//! `meshstat why`: which limit of which cluster on which meshd refused how many requests, in
//! words, from the per-limit refusal counters, `/clusters` limits and peaks, and access logs.

use regex::Regex;
use serde::Serialize;
use serde_json::Value;

use crate::admin::Stat;
use crate::clusters;
use crate::log::Summary;

/// One limit that refused requests.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
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
    /// The flag the refused requests carry in the access log.
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

/// Every refusing limit of the clusters of `source` whose name matches `patterns`.
pub fn findings(
    source: &str,
    stats: &[Stat],
    cluster_list: &[Value],
    patterns: &[Regex],
) -> Vec<Finding> {
    let get = |n: &str| stats.iter().find(|s| s.name == n).map(|s| s.value);
    let mut out = Vec::new();
    for c in cluster_list {
        let name = clusters::name(c);
        if !crate::stats::matches(patterns, name) {
            continue;
        }
        let limits = clusters::limits(c);
        for (limit, counter, envoy) in COUNTERS {
            let refused = get(&format!("cluster.{name}.{counter}"))
                .or_else(|| envoy.and_then(|e| get(&format!("cluster.{name}.{e}"))))
                .unwrap_or(0);
            if refused == 0 {
                continue;
            }
            let l = limits.iter().find(|l| l.limit_name == limit);
            out.push(Finding {
                source: source.to_owned(),
                cluster: name.to_owned(),
                limit: limit.to_owned(),
                refused,
                configured: l.map(|l| l.limit),
                peak: l.and_then(|l| l.peak),
                open: l.is_some_and(|l| l.open),
                flag: if limit == "max_retries" { "URX" } else { "UO" },
            });
        }
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
pub fn sentence(f: &Finding) -> String {
    let n = f.refused;
    let reqs = if n == 1 { "request" } else { "requests" };
    let mut s = format!(
        "{}: cluster {} refused {n} {reqs} at its {} limit: {}",
        f.source,
        f.cluster,
        f.limit,
        what(&f.limit)
    );
    match (f.configured, f.peak) {
        (Some(c), Some(p)) => s.push_str(&format!(" (configured {c}, peak in flight {p})")),
        (Some(c), None) => s.push_str(&format!(" (configured {c})")),
        _ => {}
    }
    if f.flag == "UO" {
        s.push_str(&format!(
            ". They got 503 with flag UO from this meshd (x-mesh-overflow: {} {}).",
            f.limit, f.cluster
        ));
    } else {
        s.push_str(". They got the upstream's error with flag URX from this meshd.");
    }
    if f.open {
        s.push_str(" The limit is at capacity right now.");
    }
    s
}

/// What the access log adds: UO lines are refusals by a limit of the meshd that wrote the log;
/// URX lines are requests whose retries ran out after upstream failures or refusals.
pub fn log_sentences(file: &str, s: &Summary) -> Vec<String> {
    let uo = s.flag_count("UO");
    let urx = s.flag_count("URX");
    let mut out = vec![format!(
        "{file}: {uo} of {} requests have flag UO (refused by a limit of the meshd that wrote this log), {urx} have URX (retries ran out after upstream failures or refusals)",
        s.kept
    )];
    if s.unparsed > 0 {
        out.push(format!("{file}: {} lines not parsed", s.unparsed));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::admin::Kind;
    use serde_json::json;

    #[test]
    fn names_the_limit_with_its_configured_value_and_peak() {
        let stats = vec![Stat {
            name: "cluster.gw.circuit_breakers.default.rq_pending_refused".into(),
            value: 2,
            kind: Kind::Counter,
        }];
        let c = vec![json!({"name": "gw",
            "circuit_breakers": {"thresholds": [{"max_connections": 5, "max_pending_requests": 5, "max_requests": 9, "max_retries": 3}]},
            "mesh_breaker_occupancy": {"max_pending_requests": {"active": 0, "limit": 5, "open": false, "refused": 2, "peak": 5}}})];
        let f = findings("a:1", &stats, &c, &[]);
        assert_eq!(f.len(), 1);
        let s = sentence(&f[0]);
        assert!(
            s.starts_with("a:1: cluster gw refused 2 requests at its max_pending_requests limit"),
            "{s}"
        );
        assert!(s.contains("(configured 5, peak in flight 5)"), "{s}");
        assert!(s.contains("flag UO"), "{s}");
        assert!(findings("a:1", &stats, &c, &[Regex::new("other").expect("re")]).is_empty());
    }
}
