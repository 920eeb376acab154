//! Istio's traffic policies and HTTP routes translated into the runtime's terms: which
//! DestinationRule blocks are in force for a port and subset, the limits, pool settings and
//! outlier detection they give, and a VirtualService route's retries, fault and match.

use super::*;

/// The blocks of a traffic policy in force for one port.
#[derive(Clone, Copy, Default)]
pub(super) struct Blocks<'a> {
    pub(super) lb: Option<&'a LoadBalancerSettings>,
    pub(super) pool: Option<&'a ConnectionPoolSettings>,
    pub(super) outlier: Option<&'a OutlierDetection>,
}

/// `tp` for port `p`: a `portLevelSettings` entry for `p` replaces the blocks it sets (no
/// inheritance inside a block).
pub(super) fn at_port(tp: Option<&TrafficPolicy>, p: u16) -> Blocks<'_> {
    let Some(tp) = tp else {
        return Blocks::default();
    };
    let mut out = Blocks {
        lb: tp.load_balancer.as_ref(),
        pool: tp.connection_pool.as_ref(),
        outlier: tp.outlier_detection.as_ref(),
    };
    let port_level = tp
        .port_level_settings
        .iter()
        .flatten()
        .find(|s| s.port.is_some_and(|n| port(n.number) == p));
    if let Some(s) = port_level {
        out.lb = s.load_balancer.as_ref().or(out.lb);
        out.pool = s.connection_pool.as_ref().or(out.pool);
        out.outlier = s.outlier_detection.as_ref().or(out.outlier);
    }
    out
}

/// The policy of `rule`'s subset `subset` (empty = none) at port `p`: the subset's blocks
/// override the rule's.
pub(super) fn effective<'a>(
    rule: Option<&'a DestinationRuleSpec>,
    subset: &str,
    p: u16,
) -> Blocks<'a> {
    let Some(rule) = rule else {
        return Blocks::default();
    };
    let mut out = at_port(rule.traffic_policy.as_ref(), p);
    if let Some(s) = rule.subsets.iter().flatten().find(|s| s.name == subset) {
        let sp = at_port(s.traffic_policy.as_ref(), p);
        out.lb = sp.lb.or(out.lb);
        out.pool = sp.pool.or(out.pool);
        out.outlier = sp.outlier.or(out.outlier);
    }
    out
}

/// `connectionPool` as breaker limits.
pub(crate) fn thresholds(pool: Option<&ConnectionPoolSettings>) -> Thresholds {
    let tcp = pool.and_then(|p| p.tcp.as_ref());
    let http = pool.and_then(|p| p.http.as_ref());
    Thresholds {
        max_connections: limit(tcp.and_then(|t| t.max_connections)),
        max_pending_requests: limit(http.and_then(|h| h.http1_max_pending_requests)),
        max_requests: limit(http.and_then(|h| h.http2_max_requests)),
        max_retries: limit(http.and_then(|h| h.max_retries)),
    }
}

/// `connectionPool` and `loadBalancer` as pool settings.
pub(super) fn settings(
    pool: Option<&ConnectionPoolSettings>,
    lb: Option<&LoadBalancerSettings>,
) -> PoolSettings {
    let tcp = pool.and_then(|p| p.tcp.as_ref());
    let http = pool.and_then(|p| p.http.as_ref());
    let idle = http
        .and_then(|h| h.idle_timeout.as_ref())
        .or(tcp.and_then(|t| t.idle_timeout.as_ref()))
        .map_or(IDLE_TIMEOUT, |d| d.get());
    PoolSettings {
        connect_timeout: tcp
            .and_then(|t| t.connect_timeout.as_ref())
            .map_or(CONNECT_TIMEOUT, |d| d.get()),
        // `0s` disables the idle timeout, as in Istio.
        idle_timeout: if idle.is_zero() { Duration::MAX } else { idle },
        max_requests_per_connection: http
            .and_then(|h| h.max_requests_per_connection)
            .map_or(0, count),
        lb_policy: match lb.and_then(|l| l.simple) {
            Some(SimpleLb::RoundRobin) => Policy::RoundRobin,
            Some(SimpleLb::Random) => Policy::Random,
            // LEAST_CONN, UNSPECIFIED and unset: least request, Istio's default.
            _ => Policy::LeastRequest,
        },
    }
}

/// `outlierDetection` as Istio lowers it (appmesh-istio.md §12.2).
pub(crate) fn outlier(od: &OutlierDetection) -> OutlierConfig {
    let c5xx = od.consecutive_5xx_errors.map_or(5, count);
    let gateway = od.consecutive_gateway_errors.map_or(0, count);
    let split = od.split_external_local_origin_errors.unwrap_or(false);
    let base = OutlierConfig::ENVOY_DEFAULT;
    OutlierConfig {
        consecutive_5xx: c5xx,
        enforcing_consecutive_5xx: c5xx > 0,
        consecutive_gateway_failure: if gateway > 0 {
            gateway
        } else {
            base.consecutive_gateway_failure
        },
        enforcing_consecutive_gateway_failure: gateway > 0,
        split_external_local_origin_errors: split,
        consecutive_local_origin_failure: od.consecutive_local_origin_failures.map_or(5, count),
        enforcing_consecutive_local_origin_failure: split,
        interval: od.interval.as_ref().map_or(base.interval, |d| d.get()),
        base_ejection_time: od
            .base_ejection_time
            .as_ref()
            .map_or(base.base_ejection_time, |d| d.get()),
        max_ejection_percent: od.max_ejection_percent.map_or(10, count).min(100),
        ..base
    }
}

/// A VirtualService route's retry policy: none when `attempts` ≤ 0, Istio's default when the
/// route sets no `retries`.
pub(super) fn retry_policy(route: &HttpRoute) -> Option<RetryPolicy> {
    let Some(r) = &route.retries else {
        return Some(default_retry_policy());
    };
    let attempts = r.attempts.unwrap_or(0);
    if attempts <= 0 {
        return None;
    }
    let retry_on = match &r.retry_on {
        Some(list) => parse_retry_on(list),
        None => default_retry_policy().retry_on,
    };
    Some(RetryPolicy {
        retry_on,
        num_retries: count(attempts),
        per_try_timeout: r.per_try_timeout.as_ref().map(|d| d.get()),
        backoff: match &r.backoff {
            Some(b) => Backoff {
                base: b.get(),
                max: b.get() * 10,
            },
            None => Backoff::ENVOY_DEFAULT,
        },
    })
}

/// Envoy's `retry_on` list (validation refuses what does not parse).
pub(super) fn parse_retry_on(list: &str) -> RetryOn {
    RetryOn::parse_envoy(list).unwrap_or_default()
}

/// A share in percent: `percentage.value`, else the deprecated integer `percent`, else none
/// ("if left unspecified, no request will be delayed/aborted").
pub(super) fn share(percentage: Option<&crate::istio::Percent>, percent: Option<i64>) -> f64 {
    percentage
        .map(|p| p.value)
        .or(percent.map(|p| p as f64))
        .unwrap_or(0.0)
        .clamp(0.0, 100.0)
}

/// A route's `fault` as Envoy's fault filter takes it.
pub(super) fn fault(route: &HttpRoute) -> Option<FaultPolicy> {
    let f = route.fault.as_ref()?;
    let delay = f.delay.as_ref().and_then(|d| {
        let fixed = d.fixed_delay.as_ref()?;
        Some((fixed.get(), share(d.percentage.as_ref(), d.percent)))
    });
    let abort = f.abort.as_ref().and_then(|a| {
        let status = u16::try_from(a.http_status?).ok()?;
        Some((status, share(a.percentage.as_ref(), None)))
    });
    (delay.is_some() || abort.is_some()).then_some(FaultPolicy { delay, abort })
}

pub(super) fn string_match_path(m: Option<&StringMatch>) -> PathMatch {
    match m {
        None => PathMatch::Prefix("/".into()),
        Some(StringMatch::Exact(e)) => PathMatch::Exact(e.clone()),
        Some(StringMatch::Prefix(p)) => PathMatch::Prefix(p.clone()),
        Some(StringMatch::Regex(r)) => Regex::new(&format!("^(?:{r})$"))
            .map(PathMatch::Regex)
            .unwrap_or_else(|_| PathMatch::Exact(String::new())),
    }
}

pub(super) fn matcher(m: Option<&HttpMatchRequest>) -> HttpMatch {
    let headers = m
        .and_then(|m| m.headers.as_ref())
        .map(|hs| {
            hs.iter()
                .filter_map(|(name, sm)| {
                    let name =
                        http::HeaderName::from_bytes(name.to_ascii_lowercase().as_bytes()).ok()?;
                    let kind = match sm {
                        StringMatch::Exact(v) => HeaderMatchKind::Exact(v.clone()),
                        StringMatch::Prefix(v) => HeaderMatchKind::Prefix(v.clone()),
                        StringMatch::Regex(v) => {
                            HeaderMatchKind::Regex(Regex::new(&format!("^(?:{v})$")).ok()?)
                        }
                    };
                    Some(HeaderMatch {
                        name,
                        invert: false,
                        kind,
                    })
                })
                .collect()
        })
        .unwrap_or_default();
    HttpMatch {
        path: string_match_path(m.and_then(|m| m.uri.as_ref())),
        method: match m.and_then(|m| m.method.as_ref()) {
            Some(StringMatch::Exact(v)) => http::Method::from_bytes(v.as_bytes()).ok(),
            _ => None,
        },
        headers,
        hostname: None,
        query: vec![],
    }
}
