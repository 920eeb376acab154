//! Per-resource rules: ranges, lengths, "exactly one of", and consistency inside one resource
//! (reference §3–§8, §15.3). Rules that need other resources live in `set.rs`.
//!
//! Every rule reports `(path, message)` with the path relative to the resource and a message that
//! says what is allowed; all violations are reported, not just the first.

use std::path::Path;

use super::common::{Duration, DurationUnit, PortMapping, PortProtocol, TagRef};
use super::error::ConfigError;
use super::gateway::{VirtualGateway, VirtualGatewayConnectionPool};
use super::node::{
    Backend, Listener, ListenerTimeout, ServiceDiscovery, VirtualNode, VirtualNodeConnectionPool,
};
use super::resource::{Kind, Resource};
use super::router::VirtualRouter;
use super::service::VirtualService;
use super::validate_listener::{
    check_backend_defaults, check_client_policy, check_health, check_http_timeout,
    check_listener_tls, check_logging, check_tcp_timeout,
};

/// Checks one resource on its own (no references to other resources) and returns every
/// violation as a `ConfigError` naming `file`, the resource and the JSON path.
pub fn validate_resource(file: &Path, resource: &Resource) -> Vec<ConfigError> {
    let label = resource.label();
    check_resource(resource)
        .into_iter()
        .map(|(path, message)| ConfigError::new(file, Some(label.clone()), path, message))
        .collect()
}

/// The largest limit App Mesh accepts for connection-pool and other counting limits: Envoy reads
/// them into `UInt32Value` fields (`max_connections`, `max_pending_requests`, `max_requests`,
/// `consecutive_5xx`, `num_retries`), so App Mesh refuses anything above 2³²−1.
pub(crate) const LIMIT_MAX: i64 = 4_294_967_295;

/// The allowed range of an integer field, by its JSON name (the last path segment, without an
/// array index). One table for both layers: validation of parsed values ([`Checker::bounded`])
/// and the parse error of a number that does not even fit in an `i64` (`document.rs`), so that
/// 2³², 2⁶³ and 2⁶⁴ are refused with the same message. Fields not listed take any `i64`.
pub(crate) fn integer_bounds(field: &str) -> (i64, i64) {
    let name = field.split('[').next().unwrap_or(field);
    match name {
        "port" | "ports" => (1, 65535),
        "maxConnections" | "maxPendingRequests" | "maxRequests" | "maxServerErrors" => {
            (1, LIMIT_MAX)
        }
        "maxRetries" => (0, LIMIT_MAX),
        "maxEjectionPercent" | "weight" => (0, 100),
        "priority" => (0, 1000),
        "intervalMillis" => (5000, 300_000),
        "timeoutMillis" => (2000, 60_000),
        "healthyThreshold" | "unhealthyThreshold" => (2, 10),
        // Duration.value
        "value" => (0, i64::MAX),
        _ => (i64::MIN, i64::MAX),
    }
}

/// The longest duration accepted, in seconds: the maximum of protobuf's `Duration` (10 000
/// years), which is what Envoy holds; a timer this long still fits the clock, where App Mesh's
/// unbounded `value` (up to 2⁶³ − 1 seconds) would overflow it.
pub(crate) const MAX_DURATION_SECS: i64 = 315_576_000_000;

/// The last segment of a JSON path: `maxConnections` of `spec.listeners[0].connectionPool.http.maxConnections`.
pub(crate) fn last_segment(path: &str) -> &str {
    path.rsplit('.').next().unwrap_or(path)
}

/// Collects `(path, message)` pairs.
#[derive(Default)]
pub(crate) struct Checker {
    pub(crate) errors: Vec<(String, String)>,
}

/// `base.seg`, or `seg` when `base` is empty.
pub(crate) fn at(base: &str, seg: &str) -> String {
    if base.is_empty() {
        seg.to_string()
    } else {
        format!("{base}.{seg}")
    }
}

/// `base[i]`.
pub(crate) fn idx(base: &str, i: usize) -> String {
    format!("{base}[{i}]")
}

// === impl Checker ===

impl Checker {
    pub(crate) fn push(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.errors.push((path.into(), message.into()));
    }

    pub(crate) fn range(&mut self, path: &str, value: i64, lo: i64, hi: i64) {
        if value < lo || value > hi {
            self.push(path, format!("must be between {lo} and {hi}, got {value}"));
        }
    }

    /// The range of [`integer_bounds`] for the path's last segment.
    pub(crate) fn bounded(&mut self, path: &str, value: i64) {
        let (lo, hi) = integer_bounds(last_segment(path));
        self.range(path, value, lo, hi);
    }

    pub(crate) fn port(&mut self, path: &str, port: i64) {
        self.range(path, port, 1, 65535);
    }

    pub(crate) fn len(&mut self, path: &str, text: &str, lo: usize, hi: usize) {
        let n = text.chars().count();
        if n == 0 && lo > 0 {
            self.push(path, format!("must not be empty (1 to {hi} characters)"));
        } else if n < lo || n > hi {
            self.push(
                path,
                format!("must be {lo} to {hi} characters long, got {n}"),
            );
        }
    }

    pub(crate) fn items<T>(&mut self, path: &str, list: &[T], lo: usize, hi: usize) {
        let n = list.len();
        if n < lo || n > hi {
            self.push(path, format!("must have {lo} to {hi} items, got {n}"));
        }
    }

    pub(crate) fn regex(&mut self, path: &str, pattern: &str) {
        if let Err(e) = regex::Regex::new(pattern) {
            // regex errors are multi-line with a caret diagram; keep the last line.
            let text = e.to_string();
            let why = text
                .lines()
                .rev()
                .find(|l| !l.trim().is_empty())
                .unwrap_or("invalid")
                .trim()
                .trim_start_matches("error: ")
                .to_string();
            self.push(
                path,
                format!("invalid regular expression \"{pattern}\": {why}"),
            );
        }
    }

    /// A duration of 0 or more, at most [`MAX_DURATION_SECS`].
    pub(crate) fn duration(&mut self, path: &str, d: &Duration) {
        self.duration_from(path, d, 0);
    }

    /// A duration above zero (an interval or an ejection time), at most [`MAX_DURATION_SECS`].
    pub(crate) fn positive_duration(&mut self, path: &str, d: &Duration) {
        self.duration_from(path, d, 1);
    }

    fn duration_from(&mut self, path: &str, d: &Duration, lo: i64) {
        let hi = match d.unit {
            DurationUnit::S => MAX_DURATION_SECS,
            DurationUnit::Ms => MAX_DURATION_SECS * 1000,
        };
        if d.value < lo || d.value > hi {
            self.push(
                at(path, "value"),
                format!(
                    "must be between {lo} and {hi} for unit \"{}\", got {}",
                    d.unit.as_str(),
                    d.value
                ),
            );
        }
    }

    pub(crate) fn name(&mut self, path: &str, name: &str) {
        self.len(path, name, 1, 255);
    }
}

// --- resources ---------------------------------------------------------------------------------

pub(crate) fn check_resource(resource: &Resource) -> Vec<(String, String)> {
    if let Resource::Istio(r) = resource {
        return crate::istio::check_resource(r);
    }
    let mut c = Checker::default();
    c.name("meshName", resource.mesh());
    if resource.kind() != Kind::Mesh {
        c.name(resource.kind().name_key(), resource.name());
    }
    if let (Some(parent), Some(kind)) = (resource.parent(), resource.kind().parent_kind()) {
        c.name(kind.name_key(), parent);
    }
    match resource {
        Resource::Istio(_) => {}
        Resource::Mesh(r) => input_fields(&mut c, &r.client_token, &None, &r.tags),
        Resource::VirtualNode(r) => {
            input_fields(&mut c, &r.client_token, &r.mesh_owner, &r.tags);
            check_virtual_node(&mut c, r);
        }
        Resource::VirtualGateway(r) => {
            input_fields(&mut c, &r.client_token, &r.mesh_owner, &r.tags);
            check_virtual_gateway(&mut c, r);
        }
        Resource::GatewayRoute(r) => {
            input_fields(&mut c, &r.client_token, &r.mesh_owner, &r.tags);
            super::validate_route::check_gateway_route(&mut c, r);
        }
        Resource::VirtualRouter(r) => {
            input_fields(&mut c, &r.client_token, &r.mesh_owner, &r.tags);
            check_virtual_router(&mut c, r);
        }
        Resource::Route(r) => {
            input_fields(&mut c, &r.client_token, &r.mesh_owner, &r.tags);
            super::validate_route::check_route(&mut c, r);
        }
        Resource::VirtualService(r) => {
            input_fields(&mut c, &r.client_token, &r.mesh_owner, &r.tags);
            check_virtual_service(&mut c, r);
        }
    }
    super::unsupported::check(&mut c, resource);
    c.errors
}

/// `clientToken`, `meshOwner`, `tags`.
fn input_fields(
    c: &mut Checker,
    client_token: &Option<String>,
    mesh_owner: &Option<String>,
    tags: &Option<Vec<TagRef>>,
) {
    if let Some(token) = client_token {
        let ok_chars = token
            .chars()
            .all(|ch| ch.is_ascii_alphanumeric() || ch == '-' || ch == '_');
        if token.is_empty() || token.chars().count() > 36 || !ok_chars {
            c.push("clientToken", "must be 1 to 36 letters, digits, '-' or '_'");
        }
    }
    if let Some(owner) = mesh_owner {
        if owner.chars().count() != 12 {
            c.push(
                "meshOwner",
                format!(
                    "must be a 12-character account id, got {} characters",
                    owner.chars().count()
                ),
            );
        }
    }
    if let Some(tags) = tags {
        c.items("tags", tags, 0, 50);
        for (i, tag) in tags.iter().enumerate() {
            let p = idx("tags", i);
            c.len(&at(&p, "key"), &tag.key, 1, 128);
            if let Some(value) = &tag.value {
                c.len(&at(&p, "value"), value, 0, 256);
            }
        }
    }
}

fn check_virtual_node(c: &mut Checker, vn: &VirtualNode) {
    let spec = &vn.spec;
    let listeners = vn.listeners();
    let mut ports = Vec::new();
    for (i, l) in listeners.iter().enumerate() {
        let p = idx("spec.listeners", i);
        check_node_listener(c, &p, l);
        unique_port(c, &p, &mut ports, l.port_mapping.port);
    }
    match &spec.service_discovery {
        None if !listeners.is_empty() => c.push(
            "spec.serviceDiscovery",
            "required when listeners are set: one of dns, awsCloudMap (callers must find the node)",
        ),
        None => {}
        Some(ServiceDiscovery::Dns(dns)) => {
            c.len("spec.serviceDiscovery.dns.hostname", &dns.hostname, 1, 253);
        }
        Some(ServiceDiscovery::AwsCloudMap(cm)) => {
            let p = "spec.serviceDiscovery.awsCloudMap";
            c.len(&at(p, "namespaceName"), &cm.namespace_name, 1, 1024);
            c.len(&at(p, "serviceName"), &cm.service_name, 1, 1024);
            for (i, a) in cm.attributes.as_deref().unwrap_or(&[]).iter().enumerate() {
                let ap = idx(&at(p, "attributes"), i);
                c.len(&at(&ap, "key"), &a.key, 1, 255);
                c.len(&at(&ap, "value"), &a.value, 1, 1024);
            }
        }
    }
    let mut seen: Vec<&str> = Vec::new();
    for (i, backend) in spec.backends.as_deref().unwrap_or(&[]).iter().enumerate() {
        let Backend::VirtualService(b) = backend;
        let p = at(&idx("spec.backends", i), "virtualService");
        let name_path = at(&p, "virtualServiceName");
        c.name(&name_path, &b.virtual_service_name);
        if seen.contains(&b.virtual_service_name.as_str()) {
            c.push(
                name_path,
                format!("backend \"{}\" is listed twice", b.virtual_service_name),
            );
        }
        seen.push(&b.virtual_service_name);
        if let Some(cp) = &b.client_policy {
            check_client_policy(c, &at(&p, "clientPolicy"), cp);
        }
    }
    if let Some(bd) = &spec.backend_defaults {
        check_backend_defaults(c, "spec.backendDefaults", bd);
    }
    if let Some(logging) = &spec.logging {
        check_logging(c, "spec.logging", logging);
    }
}

fn unique_port(c: &mut Checker, path: &str, ports: &mut Vec<i64>, port: i64) {
    if ports.contains(&port) {
        c.push(
            at(path, "portMapping.port"),
            format!("port {port} is used by another listener; listener ports must be unique"),
        );
    }
    ports.push(port);
}

fn check_port_mapping(c: &mut Checker, path: &str, pm: &PortMapping, allowed: &[PortProtocol]) {
    c.port(&at(path, "port"), pm.port);
    if !allowed.contains(&pm.protocol) {
        c.push(
            at(path, "protocol"),
            format!(
                "must be one of {}, got \"{}\"",
                join_protocols(allowed),
                pm.protocol
            ),
        );
    }
}

pub(crate) fn join_protocols(list: &[PortProtocol]) -> String {
    list.iter()
        .map(|p| p.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

fn key_matches_protocol(c: &mut Checker, path: &str, key: &str, protocol: PortProtocol) {
    if key != protocol.as_str() {
        c.push(
            path,
            format!(
                "must be keyed by the listener protocol \"{protocol}\" (portMapping.protocol), found \"{key}\""
            ),
        );
    }
}

fn check_node_listener(c: &mut Checker, p: &str, l: &Listener) {
    check_port_mapping(c, &at(p, "portMapping"), &l.port_mapping, PortProtocol::ALL);
    let protocol = l.port_mapping.protocol;
    if let Some(pool) = &l.connection_pool {
        let pp = at(p, "connectionPool");
        key_matches_protocol(c, &pp, pool.key(), protocol);
        let kp = at(&pp, pool.key());
        match pool {
            VirtualNodeConnectionPool::Http(h) => {
                c.bounded(&at(&kp, "maxConnections"), h.max_connections);
                if let Some(n) = h.max_pending_requests {
                    c.bounded(&at(&kp, "maxPendingRequests"), n);
                }
            }
            VirtualNodeConnectionPool::Http2(h) | VirtualNodeConnectionPool::Grpc(h) => {
                c.bounded(&at(&kp, "maxRequests"), h.max_requests);
            }
            VirtualNodeConnectionPool::Tcp(t) => {
                c.bounded(&at(&kp, "maxConnections"), t.max_connections);
            }
        }
    }
    if let Some(hc) = &l.health_check {
        check_health(
            c,
            &at(p, "healthCheck"),
            hc,
            l.port_mapping.port,
            PortProtocol::ALL,
        );
    }
    if let Some(od) = &l.outlier_detection {
        let op = at(p, "outlierDetection");
        c.bounded(&at(&op, "maxServerErrors"), od.max_server_errors);
        c.range(
            &at(&op, "maxEjectionPercent"),
            od.max_ejection_percent,
            0,
            100,
        );
        c.positive_duration(&at(&op, "interval"), &od.interval);
        c.positive_duration(&at(&op, "baseEjectionDuration"), &od.base_ejection_duration);
    }
    if let Some(timeout) = &l.timeout {
        let tp = at(p, "timeout");
        key_matches_protocol(c, &tp, timeout.key(), protocol);
        let kp = at(&tp, timeout.key());
        match timeout {
            ListenerTimeout::Http(t) | ListenerTimeout::Http2(t) | ListenerTimeout::Grpc(t) => {
                check_http_timeout(c, &kp, t);
            }
            ListenerTimeout::Tcp(t) => check_tcp_timeout(c, &kp, t),
        }
    }
    if let Some(tls) = &l.tls {
        check_listener_tls(c, &at(p, "tls"), tls);
    }
}

fn check_virtual_gateway(c: &mut Checker, vg: &VirtualGateway) {
    const GATEWAY_PROTOCOLS: &[PortProtocol] =
        &[PortProtocol::Http, PortProtocol::Http2, PortProtocol::Grpc];
    let spec = &vg.spec;
    if spec.listeners.is_empty() {
        c.push("spec.listeners", "must have at least one listener, got 0");
    }
    let mut ports = Vec::new();
    for (i, l) in spec.listeners.iter().enumerate() {
        let p = idx("spec.listeners", i);
        check_port_mapping(
            c,
            &at(&p, "portMapping"),
            &l.port_mapping,
            GATEWAY_PROTOCOLS,
        );
        unique_port(c, &p, &mut ports, l.port_mapping.port);
        if let Some(pool) = &l.connection_pool {
            let pp = at(&p, "connectionPool");
            key_matches_protocol(c, &pp, pool.key(), l.port_mapping.protocol);
            let kp = at(&pp, pool.key());
            match pool {
                VirtualGatewayConnectionPool::Http(h) => {
                    c.bounded(&at(&kp, "maxConnections"), h.max_connections);
                    if let Some(n) = h.max_pending_requests {
                        c.bounded(&at(&kp, "maxPendingRequests"), n);
                    }
                }
                VirtualGatewayConnectionPool::Http2(h) | VirtualGatewayConnectionPool::Grpc(h) => {
                    c.bounded(&at(&kp, "maxRequests"), h.max_requests);
                }
            }
        }
        if let Some(hc) = &l.health_check {
            check_health(
                c,
                &at(&p, "healthCheck"),
                hc,
                l.port_mapping.port,
                GATEWAY_PROTOCOLS,
            );
        }
        if let Some(tls) = &l.tls {
            check_listener_tls(c, &at(&p, "tls"), tls);
        }
    }
    if let Some(bd) = &spec.backend_defaults {
        check_backend_defaults(c, "spec.backendDefaults", bd);
    }
    if let Some(logging) = &spec.logging {
        check_logging(c, "spec.logging", logging);
    }
}

fn check_virtual_router(c: &mut Checker, vr: &VirtualRouter) {
    let mut ports = Vec::new();
    for (i, l) in vr.listeners().iter().enumerate() {
        let p = idx("spec.listeners", i);
        check_port_mapping(
            c,
            &at(&p, "portMapping"),
            &l.port_mapping,
            PortProtocol::ALL,
        );
        unique_port(c, &p, &mut ports, l.port_mapping.port);
    }
}

fn check_virtual_service(c: &mut Checker, vs: &VirtualService) {
    use super::service::VirtualServiceProvider as P;
    match &vs.spec.provider {
        Some(P::VirtualNode(n)) => c.name(
            "spec.provider.virtualNode.virtualNodeName",
            &n.virtual_node_name,
        ),
        Some(P::VirtualRouter(r)) => {
            c.name(
                "spec.provider.virtualRouter.virtualRouterName",
                &r.virtual_router_name,
            );
        }
        None => {}
    }
}
