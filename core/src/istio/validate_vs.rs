//! `VirtualService` rules: hosts, routes, destinations, weights, retries, timeouts and faults,
//! and the HTTP features meshd does not serve yet (refused, never ignored).

use super::validate::Problems;
use super::virtual_service::{
    HttpFaultInjection, HttpMatchRequest, HttpRetry, HttpRoute, StringMatch, VirtualServiceSpec,
};

/// Envoy's `retry_on` conditions Istio accepts (besides status codes).
const RETRY_ON: [&str; 16] = [
    "5xx",
    "gateway-error",
    "reset",
    "reset-before-request",
    "connect-failure",
    "envoy-ratelimited",
    "retriable-4xx",
    "refused-stream",
    "retriable-status-codes",
    "retriable-headers",
    "http3-post-connect-failure",
    "cancelled",
    "deadline-exceeded",
    "internal",
    "resource-exhausted",
    "unavailable",
];

pub(super) fn virtual_service(p: &mut Problems, s: &VirtualServiceSpec) {
    if s.hosts.is_empty() {
        p.push(
            "spec.hosts",
            "missing: a VirtualService needs at least one host",
        );
    }
    for (i, h) in s.hosts.iter().enumerate() {
        p.host(&format!("spec.hosts[{i}]"), h);
    }
    if let Some(gw) = &s.gateways {
        if gw.iter().any(|g| g != "mesh") {
            p.push(
                "spec.gateways",
                "gateways other than [mesh] are not supported yet: meshd is the sidecar \
                 (mesh) only; remove gateways or set [mesh]",
            );
        }
    }
    if s.tcp.is_some() {
        p.unsupported("spec.tcp", "TCP routing");
    }
    if s.tls.is_some() {
        p.unsupported("spec.tls", "TLS (SNI) routing");
    }
    for (i, route) in s.http.iter().flatten().enumerate() {
        http_route(p, &format!("spec.http[{i}]"), route);
    }
}

fn http_route(p: &mut Problems, path: &str, r: &HttpRoute) {
    let at = |f: &str| format!("{path}.{f}");
    let refused = [
        (r.redirect.is_some(), "redirect", "redirects"),
        (
            r.direct_response.is_some(),
            "directResponse",
            "direct responses",
        ),
        (r.delegate.is_some(), "delegate", "delegation"),
        (r.rewrite.is_some(), "rewrite", "rewriting"),
        (r.mirror.is_some(), "mirror", "mirroring"),
        (r.mirrors.is_some(), "mirrors", "mirroring"),
        (
            r.mirror_percentage.is_some(),
            "mirrorPercentage",
            "mirroring",
        ),
        (r.cors_policy.is_some(), "corsPolicy", "CORS"),
        (r.headers.is_some(), "headers", "header manipulation"),
    ];
    for (set, field, what) in refused {
        if set {
            p.unsupported(at(field), what);
        }
    }
    for (j, m) in r.r#match.iter().flatten().enumerate() {
        http_match(p, &at(&format!("match[{j}]")), m);
    }
    let routes = r.route.as_deref().unwrap_or_default();
    if routes.is_empty() {
        p.push(
            at("route"),
            "missing: an HTTP route needs at least one route destination",
        );
    }
    let mut total = 0i64;
    for (k, d) in routes.iter().enumerate() {
        let dp = at(&format!("route[{k}]"));
        p.host(&format!("{dp}.destination.host"), &d.destination.host);
        if let Some(subset) = &d.destination.subset {
            p.label(
                &format!("{dp}.destination.subset"),
                "the subset name",
                subset,
            );
        }
        if let Some(port) = d.destination.port {
            p.port(&format!("{dp}.destination.port.number"), Some(port.number));
        }
        if let Some(w) = d.weight {
            if w < 0 {
                p.push(
                    format!("{dp}.weight"),
                    format!("must not be negative, got {w}"),
                );
            } else if w > i64::from(i32::MAX) {
                p.push(
                    format!("{dp}.weight"),
                    format!("must be at most {}, got {w}", i32::MAX),
                );
            } else {
                total += w;
            }
        }
        if d.headers.is_some() {
            p.unsupported(format!("{dp}.headers"), "header manipulation");
        }
    }
    if routes.len() > 1 && total == 0 {
        p.push(
            at("route"),
            "with several destinations, at least one weight must be above 0 (weights are \
             relative; an unset weight is 0)",
        );
    }
    p.duration(&at("timeout"), &r.timeout);
    if let Some(retry) = &r.retries {
        retries(p, &at("retries"), retry);
    }
    if let Some(fault) = &r.fault {
        fault_injection(p, &at("fault"), fault);
    }
}

fn http_match(p: &mut Problems, path: &str, m: &HttpMatchRequest) {
    let at = |f: &str| format!("{path}.{f}");
    let refused = [
        (
            m.query_params.is_some(),
            "queryParams",
            "matching on query parameters",
        ),
        (m.scheme.is_some(), "scheme", "matching on the scheme"),
        (
            m.authority.is_some(),
            "authority",
            "matching on the authority",
        ),
        (
            m.without_headers.is_some(),
            "withoutHeaders",
            "withoutHeaders",
        ),
        (m.port.is_some(), "port", "matching on the port"),
        (
            m.source_labels.is_some(),
            "sourceLabels",
            "matching on source labels",
        ),
        (m.gateways.is_some(), "gateways", "matching on gateways"),
        (
            m.ignore_uri_case.is_some(),
            "ignoreUriCase",
            "ignoreUriCase",
        ),
        (
            m.source_namespace.is_some(),
            "sourceNamespace",
            "matching on the source namespace",
        ),
    ];
    for (set, field, what) in refused {
        if set {
            p.unsupported(at(field), what);
        }
    }
    if let Some(uri) = &m.uri {
        string_match(p, &at("uri"), uri);
    }
    if let Some(method) = &m.method {
        match method {
            StringMatch::Exact(_) => {}
            _ => p.push(
                at("method"),
                "only method.exact is supported yet (prefix and regex are not)",
            ),
        }
    }
    for (name, v) in m.headers.iter().flatten() {
        let hp = at(&format!("headers.{name}"));
        if name.is_empty() || name.bytes().any(|c| c.is_ascii_uppercase()) {
            p.push(
                hp.clone(),
                format!("header name \"{name}\" must be non-empty and lower case"),
            );
        }
        string_match(p, &hp, v);
    }
}

fn string_match(p: &mut Problems, path: &str, m: &StringMatch) {
    if let StringMatch::Regex(re) = m {
        if let Err(e) = regex::Regex::new(re) {
            p.push(
                format!("{path}.regex"),
                format!("invalid regular expression: {e}"),
            );
        }
    }
}

fn retries(p: &mut Problems, path: &str, r: &HttpRetry) {
    p.count(&format!("{path}.attempts"), r.attempts);
    p.duration(&format!("{path}.perTryTimeout"), &r.per_try_timeout);
    p.duration(&format!("{path}.backoff"), &r.backoff);
    let Some(on) = &r.retry_on else { return };
    for cond in on.split(',').map(str::trim) {
        let ok =
            RETRY_ON.contains(&cond) || cond.parse::<u16>().is_ok_and(|c| (100..=599).contains(&c));
        if !ok {
            p.push(
                format!("{path}.retryOn"),
                format!(
                    "unknown retry condition \"{cond}\": expected HTTP status codes or {}",
                    RETRY_ON.join(", ")
                ),
            );
        }
    }
}

fn fault_injection(p: &mut Problems, path: &str, f: &HttpFaultInjection) {
    if f.delay.is_none() && f.abort.is_none() {
        p.push(path, "a fault needs delay or abort");
    }
    if let Some(d) = &f.delay {
        let at = |x: &str| format!("{path}.delay.{x}");
        if d.exponential_delay.is_some() {
            p.unsupported(at("exponentialDelay"), "exponentialDelay");
        }
        if d.fixed_delay.is_none() && d.exponential_delay.is_none() {
            p.push(at("fixedDelay"), "missing: a delay needs fixedDelay");
        }
        p.duration(&at("fixedDelay"), &d.fixed_delay);
        if let Some(pc) = d.percentage {
            percent(p, &at("percentage.value"), pc.value);
        }
        p.range(&at("percent"), d.percent, 0, 100);
    }
    if let Some(a) = &f.abort {
        let at = |x: &str| format!("{path}.abort.{x}");
        if a.grpc_status.is_some() {
            p.unsupported(at("grpcStatus"), "grpcStatus");
        } else if a.http_status.is_none() {
            p.push(at("httpStatus"), "missing: an abort needs httpStatus");
        }
        p.range(&at("httpStatus"), a.http_status, 200, 599);
        if let Some(pc) = a.percentage {
            percent(p, &at("percentage.value"), pc.value);
        }
    }
}

fn percent(p: &mut Problems, path: &str, v: f64) {
    if !(0.0..=100.0).contains(&v) {
        p.push(path, format!("must be between 0 and 100, got {v}"));
    }
}
