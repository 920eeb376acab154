//! Istio settings meshd accepts but does not apply, each with the reason, so that `meshctl
//! validate`/`describe` and meshd's log say so instead of ignoring them in silence. Settings
//! that would change where a request goes or how it is secured are refused instead
//! (`validate.rs`).

use super::destination_rule::{ConnectionPoolSettings, LoadBalancerSettings, TrafficPolicy};
use super::document::{IstioResource, IstioSpec};
use super::service_entry::WorkloadEntrySpec;

const EXPORT_TO: &str =
    "exportTo is not in force: every meshd reads every resource of its config directory";

/// The settings of `r` that meshd accepts but does not apply, pushed as `(path, reason)`.
pub(crate) fn not_in_force(out: &mut Vec<(String, String)>, r: &IstioResource) {
    let mut push = |path: String, reason: &str| out.push((path, reason.to_string()));
    match &r.spec {
        IstioSpec::DestinationRule(s) => {
            if s.export_to.is_some() {
                push("spec.exportTo".into(), EXPORT_TO);
            }
            if s.workload_selector.is_some() {
                push(
                    "spec.workloadSelector".into(),
                    "workloadSelector is not in force: the rule applies to every local workload \
                     that calls the host",
                );
            }
            if let Some(tp) = &s.traffic_policy {
                policy(&mut push, "spec.trafficPolicy", tp);
            }
            for (i, subset) in s.subsets.iter().flatten().enumerate() {
                if let Some(tp) = &subset.traffic_policy {
                    policy(&mut push, &format!("spec.subsets[{i}].trafficPolicy"), tp);
                }
            }
        }
        IstioSpec::VirtualService(s) => {
            if s.export_to.is_some() {
                push("spec.exportTo".into(), EXPORT_TO);
            }
            for (i, route) in s.http.iter().flatten().enumerate() {
                if route
                    .retries
                    .as_ref()
                    .is_some_and(|r| r.retry_remote_localities.is_some())
                {
                    push(
                        format!("spec.http[{i}].retries.retryRemoteLocalities"),
                        "retryRemoteLocalities is not in force: meshd has no localities",
                    );
                }
            }
        }
        IstioSpec::ServiceEntry(s) => {
            if s.export_to.is_some() {
                push("spec.exportTo".into(), EXPORT_TO);
            }
            if s.addresses.is_some() {
                push(
                    "spec.addresses".into(),
                    "addresses are not in force: meshd routes by Host header and port, not by \
                     destination IP",
                );
            }
            if s.subject_alt_names.is_some() {
                push(
                    "spec.subjectAltNames".into(),
                    "subjectAltNames are not in force: meshd does not originate TLS yet",
                );
            }
            for (i, ep) in s.endpoints.iter().flatten().enumerate() {
                endpoint(&mut push, &format!("spec.endpoints[{i}]"), ep);
            }
        }
        IstioSpec::WorkloadEntry(w) => endpoint(&mut push, "spec", w),
    }
}

fn endpoint(push: &mut impl FnMut(String, &str), path: &str, w: &WorkloadEntrySpec) {
    let fields = [
        (
            w.locality.is_some(),
            "locality",
            "locality is not in force: meshd does no locality-aware balancing",
        ),
        (
            w.network.is_some(),
            "network",
            "network is not in force: every endpoint is reached directly",
        ),
        (
            w.weight.is_some(),
            "weight",
            "weight is not in force: endpoints of a host are balanced equally",
        ),
        (
            w.service_account.is_some(),
            "serviceAccount",
            "serviceAccount is not in force: meshd has no workload identity (mTLS) yet",
        ),
    ];
    for (set, field, reason) in fields {
        if set {
            push(format!("{path}.{field}"), reason);
        }
    }
}

fn policy(push: &mut impl FnMut(String, &str), path: &str, tp: &TrafficPolicy) {
    blocks(push, path, &tp.load_balancer, &tp.connection_pool);
    panic_threshold(push, path, &tp.outlier_detection);
    for (i, pl) in tp.port_level_settings.iter().flatten().enumerate() {
        let at = format!("{path}.portLevelSettings[{i}]");
        blocks(push, &at, &pl.load_balancer, &pl.connection_pool);
        panic_threshold(push, &at, &pl.outlier_detection);
    }
}

/// `minHealthPercent` above 0 asks for Envoy's panic mode (all hosts used when too few are
/// healthy), which meshd does not have; 0, Istio's default, is what meshd does.
fn panic_threshold(
    push: &mut impl FnMut(String, &str),
    path: &str,
    od: &Option<super::destination_rule::OutlierDetection>,
) {
    if od
        .as_ref()
        .and_then(|o| o.min_health_percent)
        .is_some_and(|p| p > 0)
    {
        push(
            format!("{path}.outlierDetection.minHealthPercent"),
            "minHealthPercent above 0 is not in force: meshd has no panic mode, ejected and \
             unhealthy hosts get no request however few are left (as with Istio's default 0)",
        );
    }
}

fn blocks(
    push: &mut impl FnMut(String, &str),
    path: &str,
    lb: &Option<LoadBalancerSettings>,
    pool: &Option<ConnectionPoolSettings>,
) {
    if let Some(lb) = lb {
        if lb.locality_lb_setting.is_some() {
            push(
                format!("{path}.loadBalancer.localityLbSetting"),
                "localityLbSetting is not in force: meshd has no localities",
            );
        }
        if lb.warmup_duration_secs.is_some() {
            push(
                format!("{path}.loadBalancer.warmupDurationSecs"),
                "warmupDurationSecs is not in force: new endpoints get their full share at once",
            );
        }
    }
    let Some(pool) = pool else { return };
    if let Some(tcp) = &pool.tcp {
        if tcp.tcp_keepalive.is_some() {
            push(
                format!("{path}.connectionPool.tcp.tcpKeepalive"),
                "tcpKeepalive is not in force: upstream sockets use the system's keepalive \
                 settings",
            );
        }
        if tcp.max_connection_duration.is_some() {
            push(
                format!("{path}.connectionPool.tcp.maxConnectionDuration"),
                "maxConnectionDuration is not in force: connections live until idle or closed",
            );
        }
    }
    if let Some(http) = &pool.http {
        let fields = [
            (
                http.h2_upgrade_policy.is_some(),
                "h2UpgradePolicy",
                "h2UpgradePolicy is not in force: meshd speaks HTTP/1.1 upstream",
            ),
            (
                http.use_client_protocol.is_some(),
                "useClientProtocol",
                "useClientProtocol is not in force: meshd speaks HTTP/1.1 upstream",
            ),
            (
                http.max_concurrent_streams.is_some(),
                "maxConcurrentStreams",
                "maxConcurrentStreams is not in force: meshd speaks HTTP/1.1 upstream (one \
                 request per connection at a time)",
            ),
        ];
        for (set, field, reason) in fields {
            if set {
                push(format!("{path}.connectionPool.http.{field}"), reason);
            }
        }
    }
}
