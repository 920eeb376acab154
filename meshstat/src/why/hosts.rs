//! Dead hosts: requests that found no usable host (503 UH), connections that failed to open
//! (UF), outlier ejections and failed health checks, each with the hosts out of rotation now.

use std::collections::BTreeMap;

use serde::Serialize;

use super::{plural, Cluster, Finding};
use crate::hosts::HostRow;

/// A host out of rotation now, as `meshstat hosts` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OutHost {
    /// `ip:port`.
    pub host: String,
    /// `ejected`, `failed_hc`, or both.
    pub state: String,
    /// The ejection type, `hc_failed`, `hc_timeout`.
    pub reason: Option<String>,
    /// Time left in its ejection.
    pub ejection_time_left_ms: Option<u64>,
    #[serde(skip)]
    brief: String,
}

impl OutHost {
    fn of(h: &HostRow) -> OutHost {
        OutHost {
            host: h.host.clone(),
            state: h.state.clone(),
            reason: h.reason.clone(),
            ejection_time_left_ms: h.ejection_time_left_ms,
            brief: h.brief(),
        }
    }
}

/// Requests that found no usable host (`kind: "no_healthy_host"`, `upstream_cx_none_healthy`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NoHealthyHost {
    /// The meshd.
    pub source: String,
    /// The cluster.
    pub cluster: String,
    /// Requests answered 503 UH.
    pub requests: u64,
    /// Hosts the cluster has now.
    pub hosts: usize,
    /// Hosts out of rotation now.
    pub out: Vec<OutHost>,
}

/// Connections that failed to open (`kind: "connect_fail"`, `upstream_cx_connect_fail`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ConnectFail {
    /// The meshd.
    pub source: String,
    /// The cluster.
    pub cluster: String,
    /// Failed connection attempts (UF).
    pub connect_fail: u64,
    /// Of which timed out (`upstream_cx_connect_timeout`).
    pub connect_timeout: u64,
    /// Failures per host (`/clusters` `cx_connect_fail`; hosts with none left out).
    pub by_host: BTreeMap<String, u64>,
}

/// Outlier ejections (`kind: "ejections"`, `outlier_detection.*`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Ejections {
    /// The meshd.
    pub source: String,
    /// The cluster.
    pub cluster: String,
    /// `ejections_enforced_total`.
    pub enforced: u64,
    /// `ejections_enforced_<type>`, the types with any.
    pub by_type: BTreeMap<String, u64>,
    /// `ejections_active` (gauge).
    pub active: u64,
    /// `ejections_overflow`: detections that ejected nothing (max ejection percent).
    pub overflow: u64,
    /// The hosts ejected now.
    pub ejected: Vec<OutHost>,
}

/// Failed active health checks (`kind: "health_check"`, `health_check.*`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HealthCheck {
    /// The meshd.
    pub source: String,
    /// The cluster.
    pub cluster: String,
    /// `health_check.attempt`.
    pub attempts: u64,
    /// `health_check.failure`.
    pub failures: u64,
    /// `health_check.network_failure`: could not connect, broke, or timed out.
    pub network_failures: u64,
    /// The hosts failing their check now.
    pub failing: Vec<OutHost>,
}

/// The dead-host findings of one cluster, in the order above.
pub(super) fn findings(c: &Cluster<'_>) -> Vec<Finding> {
    let mut out = Vec::new();
    let gone: Vec<OutHost> = c
        .hosts
        .iter()
        .filter(|h| !h.in_rotation)
        .map(OutHost::of)
        .collect();
    let uh = c.n("upstream_cx_none_healthy");
    if uh > 0 {
        out.push(Finding::NoHealthyHost(NoHealthyHost {
            source: c.source.to_owned(),
            cluster: c.name.to_owned(),
            requests: uh,
            hosts: c.hosts.len(),
            out: gone.clone(),
        }));
    }
    let uf = c.n("upstream_cx_connect_fail");
    if uf > 0 {
        out.push(Finding::ConnectFail(ConnectFail {
            source: c.source.to_owned(),
            cluster: c.name.to_owned(),
            connect_fail: uf,
            connect_timeout: c.n("upstream_cx_connect_timeout"),
            by_host: c
                .hosts
                .iter()
                .filter(|h| h.cx_connect_fail > 0)
                .map(|h| (h.host.clone(), h.cx_connect_fail))
                .collect(),
        }));
    }
    let e = Ejections {
        source: c.source.to_owned(),
        cluster: c.name.to_owned(),
        enforced: c.n("outlier_detection.ejections_enforced_total"),
        by_type: c
            .with_prefix("outlier_detection.ejections_enforced_")
            .into_iter()
            .filter(|(t, n)| *t != "total" && *n > 0)
            .map(|(t, n)| (t.to_owned(), n))
            .collect(),
        active: c.n("outlier_detection.ejections_active"),
        overflow: c.n("outlier_detection.ejections_overflow"),
        ejected: gone
            .iter()
            .filter(|h| h.state.split(',').any(|s| s == "ejected"))
            .cloned()
            .collect(),
    };
    if e.enforced > 0 || e.active > 0 || e.overflow > 0 || !e.ejected.is_empty() {
        out.push(Finding::Ejections(e));
    }
    let hc = HealthCheck {
        source: c.source.to_owned(),
        cluster: c.name.to_owned(),
        attempts: c.n("health_check.attempt"),
        failures: c.n("health_check.failure"),
        network_failures: c.n("health_check.network_failure"),
        failing: gone
            .iter()
            .filter(|h| h.state.split(',').any(|s| s == "failed_hc"))
            .cloned()
            .collect(),
    };
    if hc.failures > 0 || !hc.failing.is_empty() {
        out.push(Finding::HealthCheck(hc));
    }
    out
}

fn briefs(hosts: &[OutHost]) -> String {
    hosts
        .iter()
        .map(|h| h.brief.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// [`NoHealthyHost`] in words.
pub fn no_healthy_host(f: &NoHealthyHost) -> String {
    let n = f.requests;
    let mut s = format!(
        "{}: cluster {}: {n} {} found no usable host (503 UH)",
        f.source,
        f.cluster,
        plural(n, "request", "requests")
    );
    if f.hosts == 0 {
        s.push_str("; the cluster has no endpoints now (no host to send to).");
    } else if f.out.is_empty() {
        s.push_str(&format!(
            "; all {} {} in rotation again now.",
            f.hosts,
            plural(f.hosts as u64, "host is", "hosts are")
        ));
    } else {
        s.push_str(&format!(
            "; {} of {} {} out of rotation now: {}.",
            f.out.len(),
            f.hosts,
            plural(f.hosts as u64, "host is", "hosts are"),
            briefs(&f.out)
        ));
    }
    s
}

/// [`ConnectFail`] in words.
pub fn connect_fail(f: &ConnectFail) -> String {
    let n = f.connect_fail;
    let mut s = format!(
        "{}: cluster {}: {n} {} to its hosts failed to open (UF: refused, unreachable or timed out",
        f.source,
        f.cluster,
        plural(n, "connection", "connections")
    );
    if f.connect_timeout > 0 {
        s.push_str(&format!("; {} timed out", f.connect_timeout));
    }
    s.push(')');
    let mut hosts: Vec<(&String, &u64)> = f.by_host.iter().collect();
    hosts.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
    if !hosts.is_empty() {
        let list: Vec<String> = hosts.iter().map(|(h, n)| format!("{n} to {h}")).collect();
        s.push_str(&format!(": {}", list.join(", ")));
    }
    s.push('.');
    s
}

/// [`Ejections`] in words.
pub fn ejections(f: &Ejections) -> String {
    let n = f.enforced;
    let mut s = format!(
        "{}: cluster {}: outlier detection ejected hosts {n} {}",
        f.source,
        f.cluster,
        plural(n, "time", "times")
    );
    if !f.by_type.is_empty() {
        let types: Vec<String> = f.by_type.iter().map(|(t, n)| format!("{t} {n}")).collect();
        s.push_str(&format!(" ({})", types.join(", ")));
    }
    if f.ejected.is_empty() {
        s.push_str("; none is ejected now");
    } else {
        s.push_str(&format!(
            "; {} ejected now: {}",
            f.ejected.len(),
            briefs(&f.ejected)
        ));
    }
    if f.overflow > 0 {
        s.push_str(&format!(
            "; {} more {} ejected nothing, held back by the max ejection percent",
            f.overflow,
            plural(f.overflow, "detection", "detections")
        ));
    }
    s.push('.');
    s
}

/// [`HealthCheck`] in words.
pub fn health_check(f: &HealthCheck) -> String {
    let mut s = format!(
        "{}: cluster {}: {} of {} health checks failed ({} could not connect or timed out)",
        f.source, f.cluster, f.failures, f.attempts, f.network_failures
    );
    if f.failing.is_empty() {
        s.push_str("; every checked host passes now.");
    } else {
        s.push_str(&format!(
            "; {} {} now: {}.",
            f.failing.len(),
            plural(f.failing.len() as u64, "host fails", "hosts fail"),
            briefs(&f.failing)
        ));
    }
    s
}
