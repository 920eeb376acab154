//! References between resources: which must resolve (`check`) and who refers to whom
//! (`refers_to`).

use super::common::PortProtocol;
use super::gateway::GatewayRoute;
use super::node::VirtualNode;
use super::resource::{Kind, Resource};
use super::router::Route;
use super::service::VirtualServiceProvider;
use super::set::{kind_words, provider_is, MeshSet};
use super::validate::{at, idx};

type Found = Vec<(String, String)>;

/// Whether `r` (in the same mesh) refers to the resource `kind`/`name`.
pub(crate) fn refers_to(r: &Resource, kind: Kind, name: &str) -> bool {
    match (kind, r) {
        // An Istio namespace is not an App Mesh mesh, even when the names are equal.
        (Kind::Mesh, r) => !r.kind().is_istio(),
        (Kind::VirtualNode, Resource::Route(route)) => route
            .weighted_targets()
            .iter()
            .any(|t| t.virtual_node == name),
        (Kind::VirtualRouter, Resource::Route(route)) => route.virtual_router_name == name,
        (Kind::VirtualGateway, Resource::GatewayRoute(gr)) => gr.virtual_gateway_name == name,
        (Kind::VirtualService, Resource::GatewayRoute(gr)) => {
            gr.target_virtual_service() == Some(name)
        }
        (Kind::VirtualService, Resource::VirtualNode(vn)) => vn.backend_names().any(|b| b == name),
        (Kind::VirtualNode | Kind::VirtualRouter, Resource::VirtualService(vs)) => vs
            .spec
            .provider
            .as_ref()
            .is_some_and(|p| provider_is(p, kind, name)),
        _ => false,
    }
}

/// Every reference of `r` that does not resolve in `set`, as `(path, message)`.
pub(crate) fn check(set: &MeshSet, r: &Resource, found: &mut Found) {
    if let Resource::Istio(i) = r {
        return crate::istio::check_references(set, i, found);
    }
    let mesh = r.mesh();
    if r.kind() != Kind::Mesh && set.mesh(mesh).is_none() {
        found.push((
            "meshName".to_string(),
            format!(
                "mesh \"{mesh}\" does not exist; {}",
                known(set, Kind::Mesh, mesh)
            ),
        ));
    }
    match r {
        Resource::Istio(_) => {}
        Resource::Route(route) => check_route(set, route, found),
        Resource::GatewayRoute(gr) => check_gateway_route(set, gr, found),
        Resource::VirtualService(vs) => match &vs.spec.provider {
            Some(VirtualServiceProvider::VirtualNode(n)) => exists(
                set,
                Kind::VirtualNode,
                mesh,
                &n.virtual_node_name,
                "spec.provider.virtualNode.virtualNodeName",
                found,
            ),
            Some(VirtualServiceProvider::VirtualRouter(p)) => exists(
                set,
                Kind::VirtualRouter,
                mesh,
                &p.virtual_router_name,
                "spec.provider.virtualRouter.virtualRouterName",
                found,
            ),
            None => {}
        },
        Resource::VirtualNode(vn) => check_backends(set, vn, found),
        Resource::Mesh(_) | Resource::VirtualGateway(_) | Resource::VirtualRouter(_) => {}
    }
}

fn check_backends(set: &MeshSet, vn: &VirtualNode, found: &mut Found) {
    for (i, name) in vn.backend_names().enumerate() {
        let path = at(
            &idx("spec.backends", i),
            "virtualService.virtualServiceName",
        );
        exists(set, Kind::VirtualService, &vn.mesh_name, name, &path, found);
    }
}

fn check_route(set: &MeshSet, route: &Route, found: &mut Found) {
    let mesh = &route.mesh_name;
    let Some(key) = route.route_key() else { return };
    let base = at("spec", key);
    match set.virtual_router(mesh, &route.virtual_router_name) {
        None => exists(
            set,
            Kind::VirtualRouter,
            mesh,
            &route.virtual_router_name,
            "virtualRouterName",
            found,
        ),
        Some(router) => {
            let listeners: Vec<(i64, PortProtocol)> = router
                .listeners()
                .iter()
                .map(|l| (l.port_mapping.port, l.port_mapping.protocol))
                .collect();
            let name = &route.virtual_router_name;
            check_listener_fit(
                &base,
                route.protocol(),
                match_port_of_route(route),
                &listeners,
                &format!("virtual router \"{name}\""),
                found,
            );
        }
    }
    let targets = at(&base, "action.weightedTargets");
    for (i, t) in route.weighted_targets().iter().enumerate() {
        let tp = idx(&targets, i);
        let Some(node) = set.virtual_node(mesh, &t.virtual_node) else {
            exists(
                set,
                Kind::VirtualNode,
                mesh,
                &t.virtual_node,
                &at(&tp, "virtualNode"),
                found,
            );
            continue;
        };
        if let Some(port) = t.port {
            let ports: Vec<i64> = node
                .listeners()
                .iter()
                .map(|l| l.port_mapping.port)
                .collect();
            if !ports.contains(&port) {
                found.push((
                    at(&tp, "port"),
                    format!(
                        "virtual node \"{}\" has no listener on port {port}; its listener ports: {}",
                        t.virtual_node,
                        list_ports(&ports)
                    ),
                ));
            }
        }
    }
}

fn match_port_of_route(route: &Route) -> Option<i64> {
    let spec = &route.spec;
    if let Some(r) = spec.http_route.as_ref().or(spec.http2_route.as_ref()) {
        return r.r#match.port;
    }
    if let Some(r) = &spec.grpc_route {
        return r.r#match.port;
    }
    spec.tcp_route
        .as_ref()
        .and_then(|r| r.r#match)
        .and_then(|m| m.port)
}

fn check_gateway_route(set: &MeshSet, gr: &GatewayRoute, found: &mut Found) {
    let mesh = &gr.mesh_name;
    let spec = &gr.spec;
    let (key, protocol, port) = if let Some(r) = &spec.http_route {
        ("httpRoute", PortProtocol::Http, r.r#match.port)
    } else if let Some(r) = &spec.http2_route {
        ("http2Route", PortProtocol::Http2, r.r#match.port)
    } else if let Some(r) = &spec.grpc_route {
        ("grpcRoute", PortProtocol::Grpc, r.r#match.port)
    } else {
        return;
    };
    let base = at("spec", key);
    match set.virtual_gateway(mesh, &gr.virtual_gateway_name) {
        None => exists(
            set,
            Kind::VirtualGateway,
            mesh,
            &gr.virtual_gateway_name,
            "virtualGatewayName",
            found,
        ),
        Some(gateway) => {
            let listeners: Vec<(i64, PortProtocol)> = gateway
                .spec
                .listeners
                .iter()
                .map(|l| (l.port_mapping.port, l.port_mapping.protocol))
                .collect();
            let name = &gr.virtual_gateway_name;
            check_listener_fit(
                &base,
                Some(protocol),
                port,
                &listeners,
                &format!("virtual gateway \"{name}\""),
                found,
            );
        }
    }
    if let Some(target) = gr.target_virtual_service() {
        let path = at(&base, "action.target.virtualService.virtualServiceName");
        exists(set, Kind::VirtualService, mesh, target, &path, found);
    }
}

/// A route's protocol must be one of its parent's listener protocols, and `match.port` one of
/// its ports (required when the parent has several listeners).
fn check_listener_fit(
    base: &str,
    protocol: Option<PortProtocol>,
    port: Option<i64>,
    listeners: &[(i64, PortProtocol)],
    parent: &str,
    found: &mut Found,
) {
    if listeners.is_empty() {
        return;
    }
    let described: Vec<String> = listeners
        .iter()
        .map(|(port, protocol)| format!("{port} ({protocol})"))
        .collect();
    if let Some(protocol) = protocol {
        if !listeners.iter().any(|(_, p)| *p == protocol) {
            found.push((
                base.to_string(),
                format!(
                    "needs a listener with protocol \"{protocol}\" but {parent} listens on {}",
                    described.join(", ")
                ),
            ));
        }
    }
    match port {
        Some(port) if !listeners.iter().any(|(p, _)| *p == port) => found.push((
            at(base, "match.port"),
            format!(
                "{parent} has no listener on port {port}; it listens on {}",
                described.join(", ")
            ),
        )),
        None if listeners.len() > 1 => found.push((
            at(base, "match.port"),
            format!(
                "required because {parent} has several listeners: {}",
                described.join(", ")
            ),
        )),
        _ => {}
    }
}

/// Pushes an error unless `kind`/`name` exists in `mesh`.
fn exists(set: &MeshSet, kind: Kind, mesh: &str, name: &str, path: &str, found: &mut Found) {
    if set.get(kind, mesh, name).is_some() {
        return;
    }
    found.push((
        path.to_string(),
        format!(
            "{} \"{name}\" does not exist in mesh \"{mesh}\"; {}",
            kind_words(kind),
            known(set, kind, mesh)
        ),
    ));
}

/// "known: a, b, c" (at most 10) or "none is defined".
fn known(set: &MeshSet, kind: Kind, mesh: &str) -> String {
    let mut names: Vec<&str> = set
        .resources()
        .filter(|r| r.kind() == kind && (kind == Kind::Mesh || r.mesh() == mesh))
        .map(Resource::name)
        .collect();
    names.dedup();
    let plural = match kind {
        Kind::Mesh => "meshes".to_string(),
        other => format!("{}s", kind_words(other)),
    };
    if names.is_empty() {
        return match kind {
            Kind::Mesh => "no mesh is defined".to_string(),
            other => format!("no {} is defined in this mesh", kind_words(other)),
        };
    }
    let more = names.len().saturating_sub(10);
    names.truncate(10);
    let tail = if more > 0 {
        format!(" and {more} more")
    } else {
        String::new()
    };
    format!("known {plural}: {}{tail}", names.join(", "))
}

fn list_ports(ports: &[i64]) -> String {
    if ports.is_empty() {
        return "none".to_string();
    }
    ports
        .iter()
        .map(i64::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}
