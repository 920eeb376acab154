//! Settings that are accepted (valid App Mesh) but not in force: the running config does not use
//! them. Each is named with file, resource, JSON path and what meshd does instead, so that
//! `meshctl validate`, `meshctl describe` and meshd's reload log can say so rather than ignore
//! them in silence.
//!
//! The list follows what [`crate::runtime::compile`] actually compiles (and meshd serves): only
//! `http` listeners are bound; listener `connectionPool.http`, `timeout.http.perRequest` and
//! `timeout.http.idle`, DNS hostnames, backends, access-log paths and formats, HTTP route matches
//! (prefix, path, method, headers, query parameters, gateway hostname), priorities, weighted
//! targets (with their port), route `timeout.perRequest` and `timeout.idle`, and gateway
//! rewrites are in force; every other setting that a user can write is listed here when set.
//! Security settings that would be ignored are not listed: validation refuses them
//! (`unsupported.rs`). A listener `tls` with mode `DISABLED` and a client policy with
//! `"enforce": false` are in force as written (plain text), so they are not listed either.
//! Defaults are never listed: only what the resource sets.

use std::fmt;
use std::path::{Path, PathBuf};

use super::common::{AccessLog, Logging, LoggingFormat, PortProtocol};
use super::gateway::{GatewayRoute, HttpGatewayRoute, VirtualGateway};
use super::node::{DnsResponseType, ServiceDiscovery, VirtualNode};
use super::resource::Resource;
use super::router::{HttpRoute, Route};
use super::service::{EgressFilterType, Mesh};
use super::set::MeshSet;
use super::validate::{at, idx};
use crate::accesslog::Template;

/// One accepted setting that the running config does not use.
///
/// Displays as one line, `<file>: <resource>: <path>: <reason>`, the shape of
/// [`ConfigError`](super::ConfigError).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct NotInForce {
    /// The file the resource came from.
    pub file: PathBuf,
    /// The resource as `<kind>/<name>` (`route/<router>/<name>`, …), as in `ConfigError`.
    pub resource: String,
    /// JSON path of the setting inside the resource, e.g. `spec.listeners[0].healthCheck`.
    pub path: String,
    /// What meshd does instead, e.g. `health checks are not implemented yet; …`.
    pub reason: String,
}

impl fmt::Display for NotInForce {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: {}: {}: {}",
            self.file.display(),
            self.resource,
            self.path,
            self.reason
        )
    }
}

/// Every setting of every resource of `set` that is accepted but not in force, in the set's
/// iteration order (so the items of one resource are adjacent) and, within a resource, in
/// document order.
///
/// Deterministic (the same set gives the same list) and cheap: one walk of each resource, no
/// I/O, no compile; meshd may call it on every reload.
pub fn not_in_force(set: &MeshSet) -> Vec<NotInForce> {
    set.entries()
        .flat_map(|(file, r)| resource_not_in_force(file, r))
        .collect()
}

/// The settings of one resource (read from `file`) that are accepted but not in force; see
/// [`not_in_force`].
pub fn resource_not_in_force(file: &Path, resource: &Resource) -> Vec<NotInForce> {
    let mut out = Vec::new();
    match resource {
        Resource::Istio(r) => crate::istio::not_in_force(&mut out, r),
        Resource::Mesh(m) => mesh(&mut out, m),
        Resource::VirtualNode(vn) => virtual_node(&mut out, vn),
        Resource::VirtualGateway(vg) => virtual_gateway(&mut out, vg),
        Resource::GatewayRoute(gr) => gateway_route(&mut out, gr),
        Resource::Route(r) => route(&mut out, r),
        Resource::VirtualRouter(_) | Resource::VirtualService(_) => {}
    }
    let label = resource.label();
    out.into_iter()
        .map(|(path, reason)| NotInForce {
            file: file.to_path_buf(),
            resource: label.clone(),
            path,
            reason,
        })
        .collect()
}

/// `(path, reason)` pairs of one resource.
type Found = Vec<(String, String)>;

fn push(out: &mut Found, path: impl Into<String>, reason: impl Into<String>) {
    out.push((path.into(), reason.into()));
}

const HEALTH_CHECK_PROTOCOL: &str = "health checks over http2 or grpc are not implemented yet \
                                     (meshd probes with HTTP/1.1 or TCP); every host is used \
                                     without being checked";
const GATEWAY_HEALTH_CHECK: &str = "a virtual gateway's health check is not used by meshd (no \
                                    caller routes to a gateway through meshd); the gateway serves \
                                    without it";
const IP_PREFERENCE: &str = "an address family preference is not implemented yet; meshd uses \
                             every address the resolver returns, IPv4 and IPv6";

fn mesh(out: &mut Found, m: &Mesh) {
    if let Some(f) = &m.spec.egress_filter {
        if f.r#type == EgressFilterType::AllowAll {
            push(
                out,
                "spec.egressFilter.type",
                "ALLOW_ALL is not implemented yet; as with DROP_ALL, an egress listener sends \
                 only to the virtual services its node lists as backends (other hosts get 404 NR)",
            );
        }
    }
    if let Some(sd) = &m.spec.service_discovery {
        if sd.ip_preference.is_some() {
            push(out, "spec.serviceDiscovery.ipPreference", IP_PREFERENCE);
        }
    }
}

fn virtual_node(out: &mut Found, vn: &VirtualNode) {
    for (i, l) in vn.listeners().iter().enumerate() {
        let p = idx("spec.listeners", i);
        if l.port_mapping.protocol != PortProtocol::Http {
            not_served_listener(out, &p, l.port_mapping.protocol);
            continue;
        }
        // HTTP and TCP health checks run on every caller's egress cluster to this node; outlier
        // detection too.
        if let Some(hc) = &l.health_check {
            if !matches!(hc.protocol, PortProtocol::Http | PortProtocol::Tcp) {
                push(out, at(&p, "healthCheck.protocol"), HEALTH_CHECK_PROTOCOL);
            }
        }
    }
    match &vn.spec.service_discovery {
        Some(ServiceDiscovery::Dns(dns)) => {
            let dp = "spec.serviceDiscovery.dns";
            if dns.response_type == Some(DnsResponseType::Loadbalancer) {
                push(
                    out,
                    at(dp, "responseType"),
                    "LOADBALANCER (one address) is not implemented yet; meshd uses every \
                     address the hostname resolves to as a host, as ENDPOINTS does",
                );
            }
            if dns.ip_preference.is_some() {
                push(out, at(dp, "ipPreference"), IP_PREFERENCE);
            }
        }
        Some(ServiceDiscovery::AwsCloudMap(_)) => push(
            out,
            "spec.serviceDiscovery.awsCloudMap",
            "Cloud Map discovery is not implemented (meshd discovers hosts by DNS only): \
             callers find no host for this node, and its listeners bind 0.0.0.0",
        ),
        None => {}
    }
    if let Some(l) = &vn.spec.logging {
        logging(out, l);
    }
}

fn virtual_gateway(out: &mut Found, vg: &VirtualGateway) {
    for (i, l) in vg.spec.listeners.iter().enumerate() {
        let p = idx("spec.listeners", i);
        if l.port_mapping.protocol != PortProtocol::Http {
            not_served_listener(out, &p, l.port_mapping.protocol);
            continue;
        }
        if l.health_check.is_some() {
            push(out, at(&p, "healthCheck"), GATEWAY_HEALTH_CHECK);
        }
    }
    if let Some(l) = &vg.spec.logging {
        logging(out, l);
    }
}

/// Only `http` listeners are bound; the listener's other settings go with it.
fn not_served_listener(out: &mut Found, p: &str, protocol: PortProtocol) {
    push(
        out,
        at(p, "portMapping.protocol"),
        format!(
            "{protocol} listeners are not served yet (only http): meshd does not bind this \
             listener, and callers speak HTTP/1.1 to it"
        ),
    );
}

fn logging(out: &mut Found, logging: &Logging) {
    let Some(AccessLog::File(file)) = &logging.access_log else {
        return;
    };
    let fp = "spec.logging.accessLog.file.format";
    let mut unsupported = |path: String, format: &str| {
        let ops = Template::unsupported_operators(format);
        if !ops.is_empty() {
            push(
                out,
                path,
                format!(
                    "{} not supported yet and logged as \"-\"",
                    match ops.as_slice() {
                        [one] => format!("operator {one} is"),
                        many => format!("operators {} are", many.join(" ")),
                    }
                ),
            );
        }
    };
    match &file.format {
        Some(LoggingFormat::Text(text)) => unsupported(at(fp, "text"), text),
        Some(LoggingFormat::Json(pairs)) => {
            for (i, pair) in pairs.iter().enumerate() {
                unsupported(at(&idx(&at(fp, "json"), i), "value"), &pair.value);
            }
        }
        None => {}
    }
}

fn gateway_route(out: &mut Found, gr: &GatewayRoute) {
    let spec = &gr.spec;
    if spec.grpc_route.is_some() {
        push(
            out,
            "spec.grpcRoute",
            "gRPC gateway routes are not served yet: the route is left out of the gateway's \
             routing table",
        );
    }
    if let Some(r) = &spec.http_route {
        http_gateway_route(out, "spec.httpRoute", r);
    }
    if let Some(r) = &spec.http2_route {
        push(
            out,
            "spec.http2Route",
            "HTTP/2 is not spoken yet: the route is applied to HTTP/1.1 requests, as an httpRoute",
        );
        http_gateway_route(out, "spec.http2Route", r);
    }
}

fn http_gateway_route(out: &mut Found, p: &str, r: &HttpGatewayRoute) {
    if r.r#match.port.is_some() {
        push(
            out,
            at(p, "match.port"),
            "matching by listener port is not implemented yet; the route matches on every \
             listener of the gateway",
        );
    }
    if r.action.target.port.is_some() {
        push(
            out,
            at(p, "action.target.port"),
            "the target port is not used yet; the virtual service's own routes pick the port",
        );
    }
}

fn route(out: &mut Found, r: &Route) {
    let spec = &r.spec;
    if spec.grpc_route.is_some() {
        push(
            out,
            "spec.grpcRoute",
            "gRPC routes are not served yet: the route is left out of the virtual router's \
             routing table",
        );
    }
    if spec.tcp_route.is_some() {
        push(
            out,
            "spec.tcpRoute",
            "TCP routes are not served yet: the route is left out of the virtual router's \
             routing table",
        );
    }
    if let Some(h) = &spec.http_route {
        http_route(out, "spec.httpRoute", h);
    }
    if let Some(h) = &spec.http2_route {
        push(
            out,
            "spec.http2Route",
            "HTTP/2 is not spoken yet: the route is applied to HTTP/1.1 requests, as an httpRoute",
        );
        http_route(out, "spec.http2Route", h);
    }
}

fn http_route(out: &mut Found, p: &str, r: &HttpRoute) {
    let m = &r.r#match;
    if m.port.is_some() {
        push(
            out,
            at(p, "match.port"),
            "matching by listener port is not implemented yet; the route matches requests to \
             every port of the virtual router",
        );
    }
    if m.scheme.is_some() {
        push(
            out,
            at(p, "match.scheme"),
            "matching by scheme is not implemented yet; the route matches either scheme",
        );
    }
}
