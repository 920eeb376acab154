//! Istio's validation rules for one object (as Istio's admission webhook states them), and the
//! settings meshd refuses because it does not do them yet. Every problem is `(path, message)`,
//! the path inside the object (`spec.trafficPolicy.connectionPool.tcp.maxConnections`) and a
//! message saying what is allowed.
//!
//! Whole-set rules (subsets, one rule per host, App Mesh/Istio conflicts, warnings) are in
//! `references.rs`; accepted-but-not-in-force settings in `not_in_force.rs`.

use std::collections::BTreeSet;
use std::net::IpAddr;

use super::destination_rule::{
    ConnectionPoolSettings, DestinationRuleSpec, OutlierDetection, SimpleLb, TlsMode, TrafficPolicy,
};
use super::document::{IstioResource, IstioSpec};
use super::duration::IstioDuration;

pub(crate) use super::not_in_force::not_in_force;
pub(crate) use super::references::check_references;

/// The most a count or limit may be: Envoy's thresholds are `uint32`.
pub(super) const MAX_COUNT: i64 = u32::MAX as i64;

/// Problems found in one object, each `(path, message)`.
#[derive(Default)]
pub(super) struct Problems(pub(super) Vec<(String, String)>);

impl Problems {
    pub(super) fn push(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.0.push((path.into(), message.into()));
    }

    /// A setting meshd would have to honour to route or secure as written, and does not.
    pub(super) fn unsupported(&mut self, path: impl Into<String>, what: &str) {
        self.push(
            path,
            format!("{what} is not supported yet; remove it (meshd refuses rather than ignore it)"),
        );
    }

    /// An integer in `min..=max`.
    pub(super) fn range(&mut self, path: &str, value: Option<i64>, min: i64, max: i64) {
        if let Some(v) = value {
            if v < min || v > max {
                self.push(path, format!("must be between {min} and {max}, got {v}"));
            }
        }
    }

    /// A count or limit: 0 up to 2³²−1.
    pub(super) fn count(&mut self, path: &str, value: Option<i64>) {
        if let Some(v) = value {
            if v < 0 {
                self.push(
                    path,
                    format!("must not be negative (0 to {MAX_COUNT}), got {v}"),
                );
            } else if v > MAX_COUNT {
                self.push(path, format!("must be at most {MAX_COUNT}, got {v}"));
            }
        }
    }

    /// A port number, 1–65535.
    pub(super) fn port(&mut self, path: &str, value: Option<i64>) {
        self.range(path, value, 1, 65535);
    }

    /// A duration of at least 1 ms (Istio's `ValidateDuration`).
    pub(super) fn duration(&mut self, path: &str, value: &Option<IstioDuration>) {
        if let Some(d) = value {
            if d.get() < std::time::Duration::from_millis(1) {
                self.push(
                    path,
                    format!("must be at least 1ms, got \"{}\"", d.as_str()),
                );
            }
        }
    }

    /// An idle timeout: `0s` (never close an idle connection, as Istio documents for
    /// `tcp.idleTimeout`) or at least 1 ms.
    pub(super) fn idle_timeout(&mut self, path: &str, value: &Option<IstioDuration>) {
        if value.as_ref().is_some_and(|d| !d.get().is_zero()) {
            self.duration(path, value);
        }
    }

    /// A DNS-1123 label (`[a-z0-9]([-a-z0-9]*[a-z0-9])?`, at most 63 characters).
    pub(super) fn label(&mut self, path: &str, what: &str, value: &str) {
        if !is_dns1123_label(value) {
            self.push(
                path,
                format!(
                    "{what} \"{value}\" must be a DNS-1123 label: 1 to 63 lower-case letters, \
                     digits and '-', starting and ending with a letter or digit"
                ),
            );
        }
    }

    /// A host name as Istio accepts it: DNS-1123 labels, only the first of which may be `*`.
    pub(super) fn host(&mut self, path: &str, value: &str) {
        if value.is_empty() {
            self.push(path, "missing: a host name is required");
        } else if value == "*" {
            self.push(
                path,
                "the host \"*\" is not allowed: name the service's host",
            );
        } else if !is_wildcard_domain(value) {
            self.push(
                path,
                format!(
                    "invalid host \"{value}\": expected DNS-1123 labels separated by '.', \
                     the first of which may be '*' (such as reviews.default.svc or *.example.com)"
                ),
            );
        }
    }
}

/// Whether `s` is a DNS-1123 label.
pub(super) fn is_dns1123_label(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && b[0] != b'-'
        && b[b.len() - 1] != b'-'
}

/// Whether `s` is a DNS-1123 subdomain (labels separated by '.', at most 253 characters).
pub(super) fn is_dns1123_subdomain(s: &str) -> bool {
    s.len() <= 253 && s.split('.').all(is_dns1123_label)
}

/// Whether `s` is a domain whose first label may be `*` (host names are case-insensitive).
fn is_wildcard_domain(s: &str) -> bool {
    let lower = s.to_ascii_lowercase();
    let rest = lower.strip_prefix("*.").unwrap_or(&lower);
    lower.len() <= 255 && rest.split('.').all(is_dns1123_label)
}

/// Whether `s` is an IP address.
pub(super) fn is_ip(s: &str) -> bool {
    s.parse::<IpAddr>().is_ok()
}

/// The problems of one object on its own, as `(path, message)`.
pub(crate) fn check_resource(r: &IstioResource) -> Vec<(String, String)> {
    let mut p = Problems::default();
    if !is_dns1123_subdomain(&r.metadata.name) {
        p.push(
            "metadata.name",
            format!(
                "\"{}\" must be a DNS-1123 subdomain: lower-case letters, digits, '-' and '.', \
                 at most 253 characters, each part starting and ending with a letter or digit",
                r.metadata.name
            ),
        );
    }
    if let Some(ns) = &r.metadata.namespace {
        p.label("metadata.namespace", "the namespace", ns);
    }
    match &r.spec {
        IstioSpec::DestinationRule(s) => destination_rule(&mut p, s),
        IstioSpec::VirtualService(s) => super::validate_vs::virtual_service(&mut p, s),
        IstioSpec::ServiceEntry(s) => super::validate_se::service_entry(&mut p, s),
        IstioSpec::WorkloadEntry(s) => {
            super::validate_se::workload_entry(&mut p, "spec", s, None, true)
        }
    }
    p.0
}

fn destination_rule(p: &mut Problems, s: &DestinationRuleSpec) {
    p.host("spec.host", &s.host);
    if let Some(tp) = &s.traffic_policy {
        traffic_policy(p, "spec.trafficPolicy", tp);
    }
    let mut names = BTreeSet::new();
    for (i, subset) in s.subsets.iter().flatten().enumerate() {
        let path = format!("spec.subsets[{i}]");
        p.label(&format!("{path}.name"), "the subset name", &subset.name);
        if !names.insert(subset.name.as_str()) {
            p.push(
                format!("{path}.name"),
                format!(
                    "subset \"{}\" is defined twice; subset names are unique per rule",
                    subset.name
                ),
            );
        }
        if let Some(tp) = &subset.traffic_policy {
            traffic_policy(p, &format!("{path}.trafficPolicy"), tp);
        }
    }
}

fn traffic_policy(p: &mut Problems, path: &str, tp: &TrafficPolicy) {
    policy_blocks(
        p,
        path,
        &tp.load_balancer,
        &tp.connection_pool,
        &tp.outlier_detection,
        &tp.tls,
    );
    let mut ports = BTreeSet::new();
    for (i, pl) in tp.port_level_settings.iter().flatten().enumerate() {
        let at = format!("{path}.portLevelSettings[{i}]");
        match pl.port {
            None => p.push(
                format!("{at}.port"),
                "missing: a port-level policy needs port.number",
            ),
            Some(port) => {
                p.port(&format!("{at}.port.number"), Some(port.number));
                if !ports.insert(port.number) {
                    p.push(
                        format!("{at}.port.number"),
                        format!("port {} has two port-level policies", port.number),
                    );
                }
            }
        }
        policy_blocks(
            p,
            &at,
            &pl.load_balancer,
            &pl.connection_pool,
            &pl.outlier_detection,
            &pl.tls,
        );
    }
}

fn policy_blocks(
    p: &mut Problems,
    path: &str,
    lb: &Option<super::destination_rule::LoadBalancerSettings>,
    pool: &Option<ConnectionPoolSettings>,
    od: &Option<OutlierDetection>,
    tls: &Option<super::destination_rule::ClientTlsSettings>,
) {
    if let Some(lb) = lb {
        if lb.simple == Some(SimpleLb::Passthrough) {
            p.unsupported(
                format!("{path}.loadBalancer.simple"),
                "PASSTHROUGH (original destination)",
            );
        }
        if lb.consistent_hash.is_some() {
            p.unsupported(
                format!("{path}.loadBalancer.consistentHash"),
                "consistent hashing",
            );
        }
        if lb.simple.is_some() && lb.consistent_hash.is_some() {
            p.push(
                format!("{path}.loadBalancer"),
                "set one of simple and consistentHash",
            );
        }
    }
    if let Some(pool) = pool {
        connection_pool(p, &format!("{path}.connectionPool"), pool);
    }
    if let Some(od) = od {
        outlier_detection(p, &format!("{path}.outlierDetection"), od);
    }
    if let Some(tls) = tls {
        let mode = tls.mode.unwrap_or(TlsMode::Disable);
        if mode != TlsMode::Disable {
            p.push(
                format!("{path}.tls.mode"),
                format!(
                    "TLS mode {} is not supported yet; only DISABLE (plain text) is: remove tls \
                     or set mode: DISABLE",
                    mode.as_str()
                ),
            );
        }
    }
}

fn connection_pool(p: &mut Problems, path: &str, pool: &ConnectionPoolSettings) {
    if let Some(tcp) = &pool.tcp {
        p.count(&format!("{path}.tcp.maxConnections"), tcp.max_connections);
        p.duration(&format!("{path}.tcp.connectTimeout"), &tcp.connect_timeout);
        p.idle_timeout(&format!("{path}.tcp.idleTimeout"), &tcp.idle_timeout);
        p.duration(
            &format!("{path}.tcp.maxConnectionDuration"),
            &tcp.max_connection_duration,
        );
        if let Some(k) = &tcp.tcp_keepalive {
            p.count(&format!("{path}.tcp.tcpKeepalive.probes"), k.probes);
            p.duration(&format!("{path}.tcp.tcpKeepalive.time"), &k.time);
            p.duration(&format!("{path}.tcp.tcpKeepalive.interval"), &k.interval);
        }
    }
    if let Some(http) = &pool.http {
        let at = |f: &str| format!("{path}.http.{f}");
        p.count(
            &at("http1MaxPendingRequests"),
            http.http1_max_pending_requests,
        );
        p.count(&at("http2MaxRequests"), http.http2_max_requests);
        p.count(
            &at("maxRequestsPerConnection"),
            http.max_requests_per_connection,
        );
        p.count(&at("maxRetries"), http.max_retries);
        p.count(&at("maxConcurrentStreams"), http.max_concurrent_streams);
        p.idle_timeout(&at("idleTimeout"), &http.idle_timeout);
    }
}

fn outlier_detection(p: &mut Problems, path: &str, od: &OutlierDetection) {
    let at = |f: &str| format!("{path}.{f}");
    p.count(&at("consecutive5xxErrors"), od.consecutive_5xx_errors);
    p.count(
        &at("consecutiveGatewayErrors"),
        od.consecutive_gateway_errors,
    );
    p.count(
        &at("consecutiveLocalOriginFailures"),
        od.consecutive_local_origin_failures,
    );
    p.duration(&at("interval"), &od.interval);
    p.duration(&at("baseEjectionTime"), &od.base_ejection_time);
    p.range(&at("maxEjectionPercent"), od.max_ejection_percent, 0, 100);
    p.range(&at("minHealthPercent"), od.min_health_percent, 0, 100);
}
