//! Retries and timeouts: did retries multiply the load, and were some held back.

use serde::Serialize;

use super::{plural, Cluster, Finding};

/// What the cluster's retries did (`kind: "retries"`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Retries {
    /// The meshd.
    pub source: String,
    /// The cluster.
    pub cluster: String,
    /// Requests sent upstream, every attempt counted (`upstream_rq_total`).
    pub requests: u64,
    /// Retries sent (`upstream_rq_retry`).
    pub retries: u64,
    /// Retries as a share of the requests sent upstream, in percent.
    pub retry_percent: f64,
    /// Requests whose retry succeeded (`upstream_rq_retry_success`).
    pub retry_success: u64,
    /// Retries refused by the retry budget or `max_retries` (`upstream_rq_retry_overflow`, UO).
    pub overflow: u64,
    /// Of which the budget refused (`upstream_rq_retry_budget_overflow`, meshd's).
    pub budget_overflow: Option<u64>,
    /// Requests that ran out of retries (`upstream_rq_retry_limit_exceeded`, URX).
    pub limit_exceeded: u64,
    /// Attempts cut by the per-try timeout (`upstream_rq_per_try_timeout`).
    pub per_try_timeout: u64,
    /// Most retries in flight at once (`circuit_breakers.default.rq_retry_peak`).
    pub peak: Option<u64>,
}

/// Requests that timed out (`kind: "timeouts"`, `upstream_rq_timeout`: 504 UT).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Timeouts {
    /// The meshd.
    pub source: String,
    /// The cluster.
    pub cluster: String,
    /// Requests answered 504 UT.
    pub requests: u64,
}

/// The retry and timeout findings of one cluster.
pub(super) fn findings(c: &Cluster<'_>) -> Vec<Finding> {
    let mut out = Vec::new();
    let ut = c.n("upstream_rq_timeout");
    if ut > 0 {
        out.push(Finding::Timeouts(Timeouts {
            source: c.source.to_owned(),
            cluster: c.name.to_owned(),
            requests: ut,
        }));
    }
    let requests = c.n("upstream_rq_total");
    let retries = c.n("upstream_rq_retry");
    let r = Retries {
        source: c.source.to_owned(),
        cluster: c.name.to_owned(),
        requests,
        retries,
        retry_percent: if requests == 0 {
            0.0
        } else {
            retries as f64 * 100.0 / requests as f64
        },
        retry_success: c.n("upstream_rq_retry_success"),
        overflow: c.n("upstream_rq_retry_overflow"),
        budget_overflow: c.stat("upstream_rq_retry_budget_overflow"),
        limit_exceeded: c.n("upstream_rq_retry_limit_exceeded"),
        per_try_timeout: c.n("upstream_rq_per_try_timeout"),
        peak: c.stat("circuit_breakers.default.rq_retry_peak"),
    };
    if r.retries > 0 || r.overflow > 0 || r.limit_exceeded > 0 || r.per_try_timeout > 0 {
        out.push(Finding::Retries(r));
    }
    out
}

/// [`Retries`] in words.
pub fn retries(f: &Retries) -> String {
    let mut s = format!(
        "{}: cluster {}: {} of the {} requests sent upstream were retries ({:.1}%",
        f.source, f.cluster, f.retries, f.requests, f.retry_percent
    );
    if let Some(p) = f.peak {
        s.push_str(&format!(
            ", at most {p} {} in flight at once",
            plural(p, "retry", "retries")
        ));
    }
    s.push_str(&format!(
        "): {} succeeded, {} {} out of retries (URX)",
        f.retry_success,
        f.limit_exceeded,
        plural(f.limit_exceeded, "request ran", "requests ran")
    ));
    if f.overflow == 0 {
        s.push_str(", none was held back by the retry budget or max_retries");
    } else {
        let by = match f.budget_overflow {
            Some(b) => format!(
                " ({b} by the retry budget, {} by max_retries)",
                f.overflow.saturating_sub(b)
            ),
            None => String::new(),
        };
        s.push_str(&format!(
            ", {} {} held back{by} so they did not multiply the load (UO)",
            f.overflow,
            plural(f.overflow, "retry was", "retries were")
        ));
    }
    if f.per_try_timeout > 0 {
        s.push_str(&format!(
            "; {} {} the per-try timeout",
            f.per_try_timeout,
            plural(f.per_try_timeout, "attempt hit", "attempts hit")
        ));
    }
    s.push('.');
    s
}

/// [`Timeouts`] in words.
pub fn timeouts(f: &Timeouts) -> String {
    format!(
        "{}: cluster {}: {} {} out (504 UT): no complete answer within the request timeout.",
        f.source,
        f.cluster,
        f.requests,
        plural(f.requests, "request timed", "requests timed")
    )
}
