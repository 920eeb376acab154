//! `meshstat why`: is it overload or dead hosts? Per cluster of each meshd, in words or as JSON
//! objects with a `kind`:
//! * `limit` ([`limits`]): which limit refused how many requests (UO);
//! * `no_healthy_host`, `connect_fail`, `ejections`, `health_check` ([`hosts`]): requests that
//!   found no usable host (UH), connections that failed (UF), ejections and failed health
//!   checks, naming the hosts out of rotation now with reason and time left;
//! * `timeouts`, `retries` ([`retries`]): requests that timed out (UT); retries as a share of
//!   the requests sent upstream, those that ran out (URX) and those held back (UO);
//! * `verdict` ([`verdict`]): `overload`, `dead hosts`, `overload and dead hosts` or
//!   `failing upstream`, with the numbers that decided it;
//! * `log`: the same flags counted in access logs, with their verdict.
//!
//! Read from `/stats` (zero-valued stats are listed; a missing one means the feature is off and
//! reads 0) and `/clusters?format=json` (see [`crate::hosts`]).

pub mod hosts;
pub mod limits;
pub mod retries;
pub mod verdict;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::ops::Bound;

use regex::Regex;
use serde::Serialize;
use serde_json::Value;

use crate::admin::Stat;
use crate::clusters;
use crate::hosts::HostRow;

/// One thing `why` found about one cluster, tagged with its `kind` in JSON.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Finding {
    /// A limit refused requests.
    Limit(limits::Limit),
    /// Requests found no usable host.
    NoHealthyHost(hosts::NoHealthyHost),
    /// Connections failed to open.
    ConnectFail(hosts::ConnectFail),
    /// Hosts were ejected.
    Ejections(hosts::Ejections),
    /// Health checks failed.
    HealthCheck(hosts::HealthCheck),
    /// Requests timed out.
    Timeouts(retries::Timeouts),
    /// Retries were sent, ran out, or were held back.
    Retries(retries::Retries),
    /// Overload, dead hosts, or both.
    Verdict(verdict::Verdict),
}

/// One cluster of one meshd, with what `why` reads of it.
pub(crate) struct Cluster<'a> {
    source: &'a str,
    name: &'a str,
    json: &'a Value,
    stats: &'a BTreeMap<&'a str, u64>,
    hosts: Vec<HostRow>,
}

impl<'a> Cluster<'a> {
    /// `cluster.<name>.<suffix>`, if meshd has it.
    fn stat(&self, suffix: &str) -> Option<u64> {
        self.stats
            .get(format!("cluster.{}.{suffix}", self.name).as_str())
            .copied()
    }

    /// `cluster.<name>.<suffix>`, 0 when absent.
    fn n(&self, suffix: &str) -> u64 {
        self.stat(suffix).unwrap_or(0)
    }

    /// The cluster's stats whose name continues `prefix`, as (rest of the name, value).
    fn with_prefix(&self, prefix: &str) -> Vec<(&'a str, u64)> {
        let full = format!("cluster.{}.{prefix}", self.name);
        self.stats
            .range::<str, _>((Bound::Included(full.as_str()), Bound::Unbounded))
            .map_while(|(k, v)| k.strip_prefix(full.as_str()).map(|rest| (rest, *v)))
            .collect()
    }
}

/// `one` when `n` is 1, else `many`.
pub(crate) fn plural<'a>(n: u64, one: &'a str, many: &'a str) -> &'a str {
    if n == 1 {
        one
    } else {
        many
    }
}

/// Everything found about the clusters of `source` whose name matches `patterns`: per cluster,
/// its limits, dead hosts, timeouts and retries, then its verdict.
pub fn findings(
    source: &str,
    stats: &[Stat],
    cluster_list: &[Value],
    patterns: &[Regex],
) -> Vec<Finding> {
    let map: BTreeMap<&str, u64> = stats.iter().map(|s| (s.name.as_str(), s.value)).collect();
    let mut out = Vec::new();
    for c in cluster_list {
        let name = clusters::name(c);
        if !crate::stats::matches(patterns, name) {
            continue;
        }
        let cluster = Cluster {
            source,
            name,
            json: c,
            stats: &map,
            hosts: crate::hosts::rows(source, c),
        };
        let mut found: Vec<Finding> = limits::findings(&cluster)
            .into_iter()
            .map(Finding::Limit)
            .collect();
        found.extend(hosts::findings(&cluster));
        found.extend(retries::findings(&cluster));
        if let Some(v) = verdict::of(source, name, &found) {
            found.push(Finding::Verdict(v));
        }
        out.extend(found);
    }
    out
}

/// The finding in words: one sentence.
pub fn sentence(f: &Finding) -> String {
    match f {
        Finding::Limit(l) => limits::sentence(l),
        Finding::NoHealthyHost(h) => hosts::no_healthy_host(h),
        Finding::ConnectFail(c) => hosts::connect_fail(c),
        Finding::Ejections(e) => hosts::ejections(e),
        Finding::HealthCheck(h) => hosts::health_check(h),
        Finding::Timeouts(t) => retries::timeouts(t),
        Finding::Retries(r) => retries::retries(r),
        Finding::Verdict(v) => verdict::sentence(v),
    }
}

/// The line for a meshd where nothing was refused or failed.
pub fn nothing(source: &str, clusters_checked: usize) -> String {
    format!("{source}: no limit refused a request and no host failed (clusters checked: {clusters_checked})")
}
