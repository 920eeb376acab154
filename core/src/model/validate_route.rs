//! Per-resource rules for routes and gateway routes: match criteria, targets, retry policies.

use super::common::{HeaderMatchMethod, HttpPathMatch, HttpQueryParameter, HttpRouteHeader};
use super::gateway::{
    GatewayRoute, GatewayRouteHostnameMatch, GatewayRouteTarget, HttpGatewayRoute,
    HttpGatewayRouteRewrite,
};
use super::router::{
    GrpcRetryPolicy, GrpcRoute, HttpRetryPolicy, HttpRoute, Route, RouteAction, TcpRoute,
};
use super::validate::{at, idx, Checker};
use super::validate_listener::{check_http_timeout, check_tcp_timeout};

/// Prefixes App Mesh reserves for itself on gateway routes.
const RESERVED_PREFIXES: [&str; 2] = ["/aws-appmesh", "/aws-app-mesh"];

/// Reports which of `names` are set when exactly one must be.
fn exactly_one(c: &mut Checker, path: &str, names: &[(&str, bool)]) {
    let set: Vec<&str> = names.iter().filter(|(_, s)| *s).map(|(n, _)| *n).collect();
    if set.len() != 1 {
        let all: Vec<&str> = names.iter().map(|(n, _)| *n).collect();
        let found = if set.is_empty() {
            "none".to_string()
        } else {
            set.join(", ")
        };
        c.push(
            path,
            format!(
                "exactly one of {} must be set, found {found}",
                all.join(", ")
            ),
        );
    }
}

pub(crate) fn check_gateway_route(c: &mut Checker, gr: &GatewayRoute) {
    let spec = &gr.spec;
    exactly_one(
        c,
        "spec",
        &[
            ("grpcRoute", spec.grpc_route.is_some()),
            ("http2Route", spec.http2_route.is_some()),
            ("httpRoute", spec.http_route.is_some()),
        ],
    );
    if let Some(priority) = spec.priority {
        c.range("spec.priority", priority, 0, 1000);
    }
    if let Some(r) = &spec.http_route {
        check_http_gateway_route(c, "spec.httpRoute", r);
    }
    if let Some(r) = &spec.http2_route {
        check_http_gateway_route(c, "spec.http2Route", r);
    }
    if let Some(r) = &spec.grpc_route {
        let p = "spec.grpcRoute";
        let m = &r.r#match;
        let mp = at(p, "match");
        if let Some(h) = &m.hostname {
            check_hostname_match(c, &at(&mp, "hostname"), h);
        }
        if let Some(md) = &m.metadata {
            check_headers(c, &at(&mp, "metadata"), md);
        }
        if let Some(port) = m.port {
            c.port(&at(&mp, "port"), port);
        }
        if let Some(service) = &m.service_name {
            c.len(&at(&mp, "serviceName"), service, 1, 255);
        }
        check_gateway_target(c, &at(p, "action.target"), &r.action.target);
    }
}

fn check_http_gateway_route(c: &mut Checker, p: &str, r: &HttpGatewayRoute) {
    let m = &r.r#match;
    let mp = at(p, "match");
    if m.prefix.is_some() && m.path.is_some() {
        c.push(
            &mp,
            "only one of prefix, path may be set, found prefix, path",
        );
    }
    if m.prefix.is_none() && m.path.is_none() && m.hostname.is_none() {
        c.push(&mp, "one of prefix, path, hostname must be set, found none");
    }
    if let Some(prefix) = &m.prefix {
        let pp = at(&mp, "prefix");
        check_prefix(c, &pp, prefix);
        if let Some(reserved) = RESERVED_PREFIXES.iter().find(|r| prefix.starts_with(**r)) {
            c.push(
                pp,
                format!("prefixes starting with \"{reserved}\" are reserved by App Mesh"),
            );
        }
    }
    if let Some(path) = &m.path {
        check_path_match(c, &at(&mp, "path"), path);
    }
    if let Some(h) = &m.hostname {
        check_hostname_match(c, &at(&mp, "hostname"), h);
    }
    if let Some(headers) = &m.headers {
        check_headers(c, &at(&mp, "headers"), headers);
    }
    if let Some(qp) = &m.query_parameters {
        check_query(c, &at(&mp, "queryParameters"), qp);
    }
    if let Some(port) = m.port {
        c.port(&at(&mp, "port"), port);
    }
    let ap = at(p, "action");
    check_gateway_target(c, &at(&ap, "target"), &r.action.target);
    if let Some(rw) = &r.action.rewrite {
        check_rewrite(
            c,
            &at(&ap, "rewrite"),
            rw,
            m.prefix.is_some(),
            m.path.is_some(),
        );
    }
}

fn check_rewrite(
    c: &mut Checker,
    p: &str,
    rw: &HttpGatewayRouteRewrite,
    has_prefix: bool,
    has_path: bool,
) {
    if let Some(prefix) = &rw.prefix {
        let pp = at(p, "prefix");
        if !has_prefix {
            c.push(&pp, "a prefix rewrite needs match.prefix");
        }
        exactly_one(
            c,
            &pp,
            &[
                ("defaultPrefix", prefix.default_prefix.is_some()),
                ("value", prefix.value.is_some()),
            ],
        );
        if let Some(value) = &prefix.value {
            let vp = at(&pp, "value");
            c.len(&vp, value, 1, 255);
            if !value.starts_with('/') {
                c.push(vp, format!("must start with \"/\", got \"{value}\""));
            }
        }
    }
    if let Some(path) = &rw.path {
        let pp = at(p, "path");
        if !has_path {
            c.push(&pp, "a path rewrite needs match.path");
        }
        match &path.exact {
            Some(exact) => {
                let ep = at(&pp, "exact");
                c.len(&ep, exact, 1, 255);
                if !exact.starts_with('/') {
                    c.push(ep, format!("must start with \"/\", got \"{exact}\""));
                }
            }
            None => c.push(&pp, "exact must be set"),
        }
    }
}

fn check_gateway_target(c: &mut Checker, p: &str, t: &GatewayRouteTarget) {
    c.name(
        &at(p, "virtualService.virtualServiceName"),
        &t.virtual_service.virtual_service_name,
    );
    if let Some(port) = t.port {
        c.port(&at(p, "port"), port);
    }
}

fn check_hostname_match(c: &mut Checker, p: &str, h: &GatewayRouteHostnameMatch) {
    let p = at(p, h.key());
    match h {
        GatewayRouteHostnameMatch::Exact(s) | GatewayRouteHostnameMatch::Suffix(s) => {
            c.len(&p, s, 1, 253);
        }
    }
}

fn check_prefix(c: &mut Checker, p: &str, prefix: &str) {
    if !prefix.starts_with('/') {
        c.push(p, format!("must start with \"/\", got \"{prefix}\""));
    }
}

fn check_path_match(c: &mut Checker, p: &str, path: &HttpPathMatch) {
    let kp = at(p, path.key());
    match path {
        HttpPathMatch::Exact(s) => {
            c.len(&kp, s, 1, 255);
            if !s.is_empty() && !s.starts_with('/') {
                c.push(kp, format!("must start with \"/\", got \"{s}\""));
            }
        }
        HttpPathMatch::Regex(s) => {
            c.len(&kp, s, 1, 255);
            c.regex(&kp, s);
        }
    }
}

fn check_headers(c: &mut Checker, p: &str, headers: &[HttpRouteHeader]) {
    c.items(p, headers, 1, 10);
    for (i, h) in headers.iter().enumerate() {
        let hp = idx(p, i);
        c.len(&at(&hp, "name"), &h.name, 1, 50);
        if !h.name.is_empty() && http::HeaderName::from_bytes(h.name.as_bytes()).is_err() {
            // The data plane could not match such a header: refuse rather than drop the criterion.
            c.push(
                at(&hp, "name"),
                format!(
                    "must be an HTTP header name (letters, digits and !#$%&'*+-.^_`|~), got \"{}\"",
                    h.name
                ),
            );
        }
        let Some(m) = &h.r#match else { continue };
        let mp = at(&at(&hp, "match"), m.key());
        match m {
            HeaderMatchMethod::Exact(s)
            | HeaderMatchMethod::Prefix(s)
            | HeaderMatchMethod::Suffix(s) => {
                c.len(&mp, s, 1, 255);
            }
            HeaderMatchMethod::Regex(s) => {
                c.len(&mp, s, 1, 255);
                c.regex(&mp, s);
            }
            HeaderMatchMethod::Range(r) => {
                if r.end <= r.start {
                    c.push(
                        mp,
                        format!(
                            "end must be greater than start (the range is [start, end)), got start {} end {}",
                            r.start, r.end
                        ),
                    );
                }
            }
        }
    }
}

fn check_query(c: &mut Checker, p: &str, params: &[HttpQueryParameter]) {
    c.items(p, params, 1, 10);
    for (i, q) in params.iter().enumerate() {
        c.len(&at(&idx(p, i), "name"), &q.name, 1, 255);
    }
}

pub(crate) fn check_route(c: &mut Checker, route: &Route) {
    let spec = &route.spec;
    exactly_one(
        c,
        "spec",
        &[
            ("grpcRoute", spec.grpc_route.is_some()),
            ("http2Route", spec.http2_route.is_some()),
            ("httpRoute", spec.http_route.is_some()),
            ("tcpRoute", spec.tcp_route.is_some()),
        ],
    );
    if let Some(priority) = spec.priority {
        c.range("spec.priority", priority, 0, 1000);
    }
    if let Some(r) = &spec.http_route {
        check_http_route(c, "spec.httpRoute", r, false);
    }
    if let Some(r) = &spec.http2_route {
        check_http_route(c, "spec.http2Route", r, true);
    }
    if let Some(r) = &spec.grpc_route {
        check_grpc_route(c, "spec.grpcRoute", r);
    }
    if let Some(r) = &spec.tcp_route {
        check_tcp_route(c, "spec.tcpRoute", r);
    }
}

fn check_http_route(c: &mut Checker, p: &str, r: &HttpRoute, http2: bool) {
    let m = &r.r#match;
    let mp = at(p, "match");
    exactly_one(
        c,
        &mp,
        &[("prefix", m.prefix.is_some()), ("path", m.path.is_some())],
    );
    if let Some(prefix) = &m.prefix {
        check_prefix(c, &at(&mp, "prefix"), prefix);
    }
    if let Some(path) = &m.path {
        check_path_match(c, &at(&mp, "path"), path);
    }
    if let Some(headers) = &m.headers {
        check_headers(c, &at(&mp, "headers"), headers);
    }
    if let Some(qp) = &m.query_parameters {
        check_query(c, &at(&mp, "queryParameters"), qp);
    }
    if let Some(port) = m.port {
        c.port(&at(&mp, "port"), port);
    }
    if m.scheme.is_some() && !http2 {
        c.push(at(&mp, "scheme"), "is allowed only in an http2Route");
    }
    check_action(c, &at(p, "action"), &r.action);
    if let Some(rp) = &r.retry_policy {
        check_http_retry(c, &at(p, "retryPolicy"), rp);
    }
    if let Some(t) = &r.timeout {
        check_http_timeout(c, &at(p, "timeout"), t);
    }
}

fn check_grpc_route(c: &mut Checker, p: &str, r: &GrpcRoute) {
    let m = &r.r#match;
    let mp = at(p, "match");
    if let Some(method) = &m.method_name {
        c.len(&at(&mp, "methodName"), method, 1, 50);
        if m.service_name.is_none() {
            c.push(at(&mp, "methodName"), "requires match.serviceName");
        }
    }
    if let Some(service) = &m.service_name {
        c.len(&at(&mp, "serviceName"), service, 1, 255);
    }
    if let Some(md) = &m.metadata {
        check_headers(c, &at(&mp, "metadata"), md);
    }
    if let Some(port) = m.port {
        c.port(&at(&mp, "port"), port);
    }
    check_action(c, &at(p, "action"), &r.action);
    if let Some(rp) = &r.retry_policy {
        check_grpc_retry(c, &at(p, "retryPolicy"), rp);
    }
    if let Some(t) = &r.timeout {
        check_http_timeout(c, &at(p, "timeout"), t);
    }
}

fn check_tcp_route(c: &mut Checker, p: &str, r: &TcpRoute) {
    if let Some(port) = r.r#match.and_then(|m| m.port) {
        c.port(&at(p, "match.port"), port);
    }
    check_action(c, &at(p, "action"), &r.action);
    if let Some(t) = &r.timeout {
        check_tcp_timeout(c, &at(p, "timeout"), t);
    }
}

fn check_action(c: &mut Checker, p: &str, action: &RouteAction) {
    let wp = at(p, "weightedTargets");
    c.items(&wp, &action.weighted_targets, 1, 10);
    let total: i64 = action
        .weighted_targets
        .iter()
        .map(|t| t.weight.max(0))
        .sum();
    if !action.weighted_targets.is_empty() && total == 0 {
        c.push(
            &wp,
            "the weights add up to 0, so no target can receive traffic; give at least one target \
             a weight between 1 and 100",
        );
    }
    for (i, t) in action.weighted_targets.iter().enumerate() {
        let tp = idx(&wp, i);
        c.name(&at(&tp, "virtualNode"), &t.virtual_node);
        c.range(&at(&tp, "weight"), t.weight, 0, 100);
        if let Some(port) = t.port {
            c.port(&at(&tp, "port"), port);
        }
    }
}

/// The members every retry policy shares.
fn check_retry_common(c: &mut Checker, p: &str, max_retries: i64, tcp_events: Option<usize>) {
    c.bounded(&at(p, "maxRetries"), max_retries);
    if let Some(n) = tcp_events {
        if n != 1 {
            c.push(
                at(p, "tcpRetryEvents"),
                format!("must be exactly [\"connection-error\"], got {n} items"),
            );
        }
    }
}

fn check_http_retry(c: &mut Checker, p: &str, rp: &HttpRetryPolicy) {
    c.duration(&at(p, "perRetryTimeout"), &rp.per_retry_timeout);
    check_retry_common(
        c,
        p,
        rp.max_retries,
        rp.tcp_retry_events.as_ref().map(Vec::len),
    );
    if let Some(events) = &rp.http_retry_events {
        c.items(&at(p, "httpRetryEvents"), events, 1, 25);
    }
    let any = rp.http_retry_events.as_ref().is_some_and(|e| !e.is_empty())
        || rp.tcp_retry_events.as_ref().is_some_and(|e| !e.is_empty());
    if !any {
        c.push(
            p,
            "at least one retry event must be set: httpRetryEvents (server-error, gateway-error, \
             client-error, stream-error) or tcpRetryEvents (connection-error)",
        );
    }
}

fn check_grpc_retry(c: &mut Checker, p: &str, rp: &GrpcRetryPolicy) {
    c.duration(&at(p, "perRetryTimeout"), &rp.per_retry_timeout);
    check_retry_common(
        c,
        p,
        rp.max_retries,
        rp.tcp_retry_events.as_ref().map(Vec::len),
    );
    if let Some(events) = &rp.http_retry_events {
        c.items(&at(p, "httpRetryEvents"), events, 1, 25);
    }
    if let Some(events) = &rp.grpc_retry_events {
        c.items(&at(p, "grpcRetryEvents"), events, 1, 5);
    }
    let any = rp.grpc_retry_events.as_ref().is_some_and(|e| !e.is_empty())
        || rp.http_retry_events.as_ref().is_some_and(|e| !e.is_empty())
        || rp.tcp_retry_events.as_ref().is_some_and(|e| !e.is_empty());
    if !any {
        c.push(
            p,
            "at least one retry event must be set: grpcRetryEvents (cancelled, deadline-exceeded, \
             internal, resource-exhausted, unavailable), httpRetryEvents or tcpRetryEvents",
        );
    }
}
