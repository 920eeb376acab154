//! Compiles a validated [`MeshSet`] into the [`RuntimeConfig`] of one meshd, the way App Mesh
//! configures each node's Envoy:
//! - a virtual node's listener forwards to its local app through the ingress cluster
//!   `cds_ingress_<mesh>_<node>_<protocol>_<port>`, whose breakers are the listener's
//!   `connectionPool` (App Mesh's server-side limits; 2147483647 when none is set);
//! - its egress listener routes its app's calls by Host to the virtual services it declares as
//!   backends, through `cds_egress_<mesh>_<target>_<protocol>_<port>` clusters (client-side
//!   limits are unlimited, as App Mesh sets them);
//! - a virtual gateway's listener admits every request through the self-redirect cluster
//!   `cds_ingress_<mesh>_<gateway>_self_redirect_<protocol>_<port>` (its `connectionPool`),
//!   then matches gateway routes and hands the request to the target virtual service;
//! - retries, outlier detection and health checks as `resilience.rs` says.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use regex::Regex;

use super::routing::{
    GatewayRoute, HeaderMatch, HeaderMatchKind, HostMatch, HttpMatch, PathMatch, PathRewrite,
    Route, Routing, VirtualHost, WeightedCluster,
};
use super::{resilience, AccessLog, Bind, Cluster, Endpoints, Listener, Role, RuntimeConfig};
use crate::accesslog::Format;
use crate::breaker::Thresholds;
use crate::model::{self, MeshSet, PortProtocol, VirtualNodeConnectionPool};
use crate::pool::PoolSettings;

/// Per-process choices that are not part of the mesh: which nodes this meshd serves and where
/// their sockets are (the `--node`, `--listen`, `--app` and `--egress` flags, and meshd's
/// choice of its local nodes).
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// The nodes (virtual nodes or gateways) to serve; `None` = every one in the set. Every
    /// other node is remote: its listeners are never bound, and callers reach it through DNS.
    pub nodes: Option<BTreeSet<String>>,
    /// Where a served virtual node's listener binds (with its port from the config) instead of
    /// resolving its DNS hostname when it is bound (which takes the hostname's first address,
    /// possibly another machine's when the name has several): meshd's choice among the
    /// hostname's local addresses, or `0.0.0.0` for a node named with `--node` whose hostname is
    /// not an address of this machine. A `listen` entry still wins.
    pub bind_ip: HashMap<String, IpAddr>,
    /// A node's listener address instead of its DNS hostname (or `0.0.0.0`) and port.
    pub listen: HashMap<String, SocketAddr>,
    /// A node's local app instead of `127.0.0.1:<port>`.
    pub app: HashMap<String, SocketAddr>,
    /// A node's egress listener instead of `127.0.0.1:15001`.
    pub egress: HashMap<String, SocketAddr>,
    /// The access log of Istio workloads (Istio's `meshConfig.accessLogFile` and
    /// `accessLogEncoding`; App Mesh nodes set theirs in `logging`); `None` = no log.
    pub istio_access_log: Option<AccessLog>,
}

impl Overrides {
    /// Whether this meshd serves (binds the listeners of) `node`: it is in [`Overrides::nodes`],
    /// or that is `None`.
    pub fn serves(&self, node: &str) -> bool {
        self.nodes.as_ref().is_none_or(|n| n.contains(node))
    }
}

/// App Mesh's default per-request timeout.
const DEFAULT_PER_REQUEST: Duration = Duration::from_secs(15);
/// App Mesh's default idle timeout.
const DEFAULT_IDLE: Duration = Duration::from_secs(300);
/// App Mesh's egress listener port.
const EGRESS_PORT: u16 = 15001;

fn port(p: i64) -> u16 {
    u16::try_from(p).unwrap_or(0)
}

fn limit(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

fn thresholds(pool: Option<&VirtualNodeConnectionPool>) -> Thresholds {
    let mut t = Thresholds::APP_MESH_DEFAULT;
    match pool {
        Some(VirtualNodeConnectionPool::Http(p)) => {
            t.max_connections = limit(p.max_connections);
            t.max_pending_requests = limit(p.max_pending_requests_or_default());
        }
        Some(VirtualNodeConnectionPool::Http2(p)) | Some(VirtualNodeConnectionPool::Grpc(p)) => {
            t.max_requests = limit(p.max_requests);
        }
        Some(VirtualNodeConnectionPool::Tcp(p)) => t.max_connections = limit(p.max_connections),
        None => {}
    }
    t
}

fn access_log(logging: Option<&model::Logging>) -> Option<AccessLog> {
    let model::AccessLog::File(f) = logging?.access_log.as_ref()?;
    let format = match &f.format {
        None => Format::Default,
        Some(model::LoggingFormat::Text(t)) => Format::Text(t.clone()),
        Some(model::LoggingFormat::Json(pairs)) => Format::Json(
            pairs
                .iter()
                .map(|p| (p.key.clone(), p.value.clone()))
                .collect(),
        ),
    };
    Some(AccessLog {
        path: PathBuf::from(&f.path),
        format,
    })
}

fn header_matches(headers: Option<&Vec<model::HttpRouteHeader>>) -> Vec<HeaderMatch> {
    headers
        .map(|hs| {
            hs.iter()
                .filter_map(|h| {
                    let name = http::HeaderName::from_bytes(h.name.to_ascii_lowercase().as_bytes())
                        .ok()?;
                    let kind = match &h.r#match {
                        None => HeaderMatchKind::Present,
                        Some(model::HeaderMatchMethod::Exact(v)) => {
                            HeaderMatchKind::Exact(v.clone())
                        }
                        Some(model::HeaderMatchMethod::Prefix(v)) => {
                            HeaderMatchKind::Prefix(v.clone())
                        }
                        Some(model::HeaderMatchMethod::Suffix(v)) => {
                            HeaderMatchKind::Suffix(v.clone())
                        }
                        Some(model::HeaderMatchMethod::Regex(v)) => {
                            HeaderMatchKind::Regex(Regex::new(&format!("^(?:{v})$")).ok()?)
                        }
                        Some(model::HeaderMatchMethod::Range(r)) => HeaderMatchKind::Range {
                            start: r.start,
                            end: r.end,
                        },
                    };
                    Some(HeaderMatch {
                        name,
                        invert: h.invert.unwrap_or(false),
                        kind,
                    })
                })
                .collect()
        })
        .unwrap_or_default()
}

fn path_match(prefix: Option<&String>, path: Option<&model::HttpPathMatch>) -> PathMatch {
    match (prefix, path) {
        (Some(p), _) => PathMatch::Prefix(p.clone()),
        (None, Some(model::HttpPathMatch::Exact(e))) => PathMatch::Exact(e.clone()),
        (None, Some(model::HttpPathMatch::Regex(r))) => Regex::new(&format!("^(?:{r})$"))
            .map(PathMatch::Regex)
            .unwrap_or_else(|_| PathMatch::Exact(String::new())),
        (None, None) => PathMatch::Prefix("/".into()),
    }
}

fn method(m: Option<model::HttpMethod>) -> Option<http::Method> {
    m.and_then(|m| http::Method::from_bytes(m.as_str().as_bytes()).ok())
}

fn query(q: Option<&Vec<model::HttpQueryParameter>>) -> Vec<(String, Option<String>)> {
    q.map(|qs| {
        qs.iter()
            .map(|q| {
                (
                    q.name.clone(),
                    q.r#match.as_ref().and_then(|m| m.exact.clone()),
                )
            })
            .collect()
    })
    .unwrap_or_default()
}

/// Sort key: App Mesh priority (0 first, none last), then longer prefixes first.
fn order(priority: Option<i64>, m: &PathMatch) -> (i64, std::cmp::Reverse<usize>) {
    let len = match m {
        PathMatch::Prefix(p) => p.len(),
        PathMatch::Exact(e) => e.len() + 10_000,
        PathMatch::Regex(_) => 0,
    };
    (priority.unwrap_or(1001), std::cmp::Reverse(len))
}

struct Compiler<'a> {
    set: &'a MeshSet,
    o: &'a Overrides,
    clusters: BTreeMap<String, Cluster>,
    /// Each virtual service's routing table, built once and shared by every listener and
    /// gateway route that targets it (a router of 20 000 routes is held once, not per use).
    hosts: BTreeMap<(String, String), Option<Arc<VirtualHost>>>,
}

impl Compiler<'_> {
    /// The egress cluster to a virtual node (creating it on first use).
    fn egress_cluster(&mut self, mesh: &str, node: &str, port_hint: Option<i64>) -> Option<String> {
        let vn = self.set.virtual_node(mesh, node)?;
        let l = vn
            .listeners()
            .iter()
            .find(|l| port_hint.is_none_or(|p| l.port_mapping.port == p))
            .or_else(|| vn.listeners().first())?;
        let p = port(l.port_mapping.port);
        let name = format!(
            "cds_egress_{mesh}_{node}_{}_{p}",
            l.port_mapping.protocol.as_str()
        );
        let endpoints = if self.o.listen.contains_key(node) && self.serves(node) {
            Endpoints::LocalListener {
                node: node.to_owned(),
            }
        } else {
            match vn.dns() {
                Some(d) => Endpoints::Dns {
                    hostname: d.hostname.clone(),
                    port: p,
                },
                None => return None,
            }
        };
        self.clusters
            .entry(name.clone())
            .or_insert_with(|| Cluster {
                name: name.clone(),
                endpoints,
                thresholds: Thresholds::APP_MESH_DEFAULT,
                settings: PoolSettings {
                    idle_timeout: DEFAULT_IDLE,
                    ..PoolSettings::default()
                },
                outlier_detection: l
                    .outlier_detection
                    .as_ref()
                    .map(resilience::outlier_detection),
                health_check: l.health_check.as_ref().and_then(resilience::health_check),
                retry_budget: resilience::retry_budget(),
            });
        Some(name)
    }

    fn serves(&self, node: &str) -> bool {
        self.o.serves(node)
    }

    /// A virtual service as a routing table, shared.
    fn virtual_host(&mut self, mesh: &str, service: &str) -> Option<Arc<VirtualHost>> {
        let key = (mesh.to_owned(), service.to_owned());
        if let Some(built) = self.hosts.get(&key) {
            return built.clone();
        }
        let built = self.build_virtual_host(mesh, service).map(Arc::new);
        self.hosts.insert(key, built.clone());
        built
    }

    fn build_virtual_host(&mut self, mesh: &str, service: &str) -> Option<VirtualHost> {
        let vs = self.set.virtual_service(mesh, service)?;
        let mut domains = vec![service.to_owned()];
        let mut routes = Vec::new();
        match vs.spec.provider.as_ref()? {
            model::VirtualServiceProvider::VirtualNode(p) => {
                let cluster = self.egress_cluster(mesh, &p.virtual_node_name, None)?;
                if let Some(vn) = self.set.virtual_node(mesh, &p.virtual_node_name) {
                    domains.extend(
                        vn.listeners()
                            .iter()
                            .map(|l| format!("{service}:{}", l.port_mapping.port)),
                    );
                }
                routes.push(Route {
                    name: format!("virtualnode/{}", p.virtual_node_name),
                    matcher: HttpMatch {
                        path: PathMatch::Prefix("/".into()),
                        method: None,
                        headers: vec![],
                        hostname: None,
                        query: vec![],
                    },
                    targets: vec![WeightedCluster { cluster, weight: 1 }],
                    timeout: None,
                    idle_timeout: None,
                    retry: Some(resilience::retry_policy(None)),
                    fault: None,
                });
            }
            model::VirtualServiceProvider::VirtualRouter(p) => {
                let router = self.set.virtual_router(mesh, &p.virtual_router_name)?;
                domains.extend(
                    router
                        .listeners()
                        .iter()
                        .map(|l| format!("{service}:{}", l.port_mapping.port)),
                );
                let mut ordered: Vec<_> = Vec::new();
                for r in self.set.routes(mesh, &p.virtual_router_name) {
                    let Some(h) = r.spec.http_route.as_ref().or(r.spec.http2_route.as_ref()) else {
                        continue; // gRPC and TCP routes arrive with those protocols
                    };
                    let m = &h.r#match;
                    let matcher = HttpMatch {
                        path: path_match(m.prefix.as_ref(), m.path.as_ref()),
                        method: method(m.method),
                        headers: header_matches(m.headers.as_ref()),
                        hostname: None,
                        query: query(m.query_parameters.as_ref()),
                    };
                    let mut targets = Vec::new();
                    for t in &h.action.weighted_targets {
                        if let Some(cluster) = self.egress_cluster(mesh, &t.virtual_node, t.port) {
                            targets.push(WeightedCluster {
                                cluster,
                                weight: u32::try_from(t.weight).unwrap_or(0),
                            });
                        }
                    }
                    let timeout = h
                        .timeout
                        .as_ref()
                        .and_then(|t| t.per_request.as_ref())
                        .map(|d| d.to_std());
                    let idle_timeout = h
                        .timeout
                        .as_ref()
                        .and_then(|t| t.idle.as_ref())
                        .map(|d| d.to_std());
                    let key = order(r.spec.priority, &matcher.path);
                    ordered.push((
                        key,
                        r.route_name.clone(),
                        Route {
                            name: format!("route/{}", r.route_name),
                            matcher,
                            targets,
                            timeout,
                            idle_timeout,
                            retry: Some(resilience::retry_policy(h.retry_policy.as_ref())),
                            fault: None,
                        },
                    ));
                }
                ordered.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
                routes.extend(ordered.into_iter().map(|(_, _, r)| r));
            }
        }
        Some(VirtualHost {
            name: service.to_owned(),
            domains,
            routes,
        })
    }

    fn node(&mut self, vn: &model::VirtualNode, out: &mut Vec<Listener>) {
        let (mesh, name) = (vn.mesh_name.as_str(), vn.virtual_node_name.as_str());
        let log = access_log(vn.spec.logging.as_ref());
        for l in vn.listeners() {
            if l.port_mapping.protocol != PortProtocol::Http {
                tracing::warn!(node = name, protocol = %l.port_mapping.protocol, "only http listeners are served yet; skipping");
                continue;
            }
            let p = port(l.port_mapping.port);
            let cluster = format!("cds_ingress_{mesh}_{name}_http_{p}");
            let app = self
                .o
                .app
                .get(name)
                .copied()
                .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], p)));
            let idle = l
                .timeout
                .as_ref()
                .map_or(DEFAULT_IDLE, |t| t.idle_or_default());
            self.clusters.insert(
                cluster.clone(),
                Cluster {
                    name: cluster.clone(),
                    endpoints: Endpoints::Static(app),
                    thresholds: thresholds(l.connection_pool.as_ref()),
                    settings: PoolSettings {
                        idle_timeout: if idle.is_zero() { Duration::MAX } else { idle },
                        ..PoolSettings::default()
                    },
                    outlier_detection: None,
                    health_check: None,
                    retry_budget: resilience::retry_budget(),
                },
            );
            let bind = match (self.o.listen.get(name), self.o.bind_ip.get(name), vn.dns()) {
                (Some(a), _, _) => Bind::Addr(*a),
                (None, Some(ip), _) => Bind::Addr(SocketAddr::new(*ip, p)),
                (None, None, Some(d)) => Bind::Host(d.hostname.clone(), p),
                (None, None, None) => Bind::Addr(SocketAddr::from(([0, 0, 0, 0], p))),
            };
            out.push(Listener {
                node: name.to_owned(),
                mesh: mesh.to_owned(),
                role: Role::Ingress,
                bind,
                routing: Arc::new(Routing::Cluster(cluster)),
                admission_cluster: None,
                access_log: log.clone(),
                request_timeout: l
                    .timeout
                    .as_ref()
                    .and_then(|t| t.per_request_or_default())
                    .unwrap_or(DEFAULT_PER_REQUEST),
                stream_idle_timeout: idle,
            });
        }
        let backends: Vec<String> = vn.backend_names().map(str::to_owned).collect();
        if !backends.is_empty() {
            let hosts = backends
                .iter()
                .filter_map(|b| self.virtual_host(mesh, b))
                .collect();
            let bind = self
                .o
                .egress
                .get(name)
                .copied()
                .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], EGRESS_PORT)));
            out.push(Listener {
                node: name.to_owned(),
                mesh: mesh.to_owned(),
                role: Role::Egress,
                bind: Bind::Addr(bind),
                routing: Arc::new(Routing::Hosts(hosts)),
                admission_cluster: None,
                access_log: log,
                request_timeout: DEFAULT_PER_REQUEST,
                stream_idle_timeout: DEFAULT_IDLE,
            });
        }
    }

    fn gateway(&mut self, vg: &model::VirtualGateway, out: &mut Vec<Listener>) {
        let (mesh, name) = (vg.mesh_name.as_str(), vg.virtual_gateway_name.as_str());
        let log = access_log(vg.spec.logging.as_ref());
        let mut routes = Vec::new();
        for gr in self.set.gateway_routes(mesh, name) {
            let Some(h) = gr.spec.http_route.as_ref().or(gr.spec.http2_route.as_ref()) else {
                continue;
            };
            let m = &h.r#match;
            let service = &h.action.target.virtual_service.virtual_service_name;
            let Some(target) = self.virtual_host(mesh, service) else {
                continue;
            };
            let rw = h.action.rewrite.as_ref();
            let rewrite_path = match (
                rw.and_then(|r| r.path.as_ref())
                    .and_then(|p| p.exact.clone()),
                rw.and_then(|r| r.prefix.as_ref()),
                m.prefix.as_ref(),
            ) {
                (Some(e), _, _) => PathRewrite::Exact(e),
                (None, _, None) => PathRewrite::Keep,
                (None, Some(p), Some(matched)) => match (&p.value, p.default_prefix) {
                    (Some(v), _) => PathRewrite::Prefix {
                        matched: matched.clone(),
                        with: v.clone(),
                    },
                    (None, Some(model::DefaultGatewayRouteRewrite::Disabled)) => PathRewrite::Keep,
                    (None, _) => PathRewrite::Prefix {
                        matched: matched.clone(),
                        with: "/".into(),
                    },
                },
                (None, None, Some(matched)) => PathRewrite::Prefix {
                    matched: matched.clone(),
                    with: "/".into(),
                },
            };
            let host_default = rw
                .and_then(|r| r.hostname.as_ref())
                .and_then(|h| h.default_target_hostname);
            let rewrite_host = match host_default {
                Some(model::DefaultGatewayRouteRewrite::Disabled) => None,
                _ => Some(service.clone()),
            };
            let matcher = HttpMatch {
                path: path_match(m.prefix.as_ref(), m.path.as_ref()),
                method: method(m.method),
                headers: header_matches(m.headers.as_ref()),
                hostname: m.hostname.as_ref().map(|h| match h {
                    model::GatewayRouteHostnameMatch::Exact(e) => HostMatch::Exact(e.clone()),
                    model::GatewayRouteHostnameMatch::Suffix(s) => HostMatch::Suffix(s.clone()),
                }),
                query: query(m.query_parameters.as_ref()),
            };
            let key = order(gr.spec.priority, &matcher.path);
            routes.push((
                key,
                gr.gateway_route_name.clone(),
                GatewayRoute {
                    name: format!("gatewayroute/{}", gr.gateway_route_name),
                    matcher,
                    target,
                    rewrite_path,
                    rewrite_host,
                },
            ));
        }
        routes.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
        let routes: Vec<GatewayRoute> = routes.into_iter().map(|(_, _, r)| r).collect();
        for l in &vg.spec.listeners {
            if l.port_mapping.protocol != PortProtocol::Http {
                tracing::warn!(gateway = name, protocol = %l.port_mapping.protocol, "only http listeners are served yet; skipping");
                continue;
            }
            let p = port(l.port_mapping.port);
            let admission = format!("cds_ingress_{mesh}_{name}_self_redirect_http_{p}");
            let pool = l.connection_pool.as_ref().map(|c| c.to_node_pool());
            self.clusters.insert(
                admission.clone(),
                Cluster {
                    name: admission.clone(),
                    endpoints: Endpoints::Slots,
                    thresholds: thresholds(pool.as_ref()),
                    settings: PoolSettings {
                        idle_timeout: DEFAULT_IDLE,
                        ..PoolSettings::default()
                    },
                    outlier_detection: None,
                    health_check: None,
                    retry_budget: resilience::retry_budget(),
                },
            );
            let bind = self
                .o
                .listen
                .get(name)
                .copied()
                .unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], p)));
            out.push(Listener {
                node: name.to_owned(),
                mesh: mesh.to_owned(),
                role: Role::Gateway,
                bind: Bind::Addr(bind),
                routing: Arc::new(Routing::Gateway(routes.clone())),
                admission_cluster: Some(admission),
                access_log: log.clone(),
                request_timeout: DEFAULT_PER_REQUEST,
                stream_idle_timeout: DEFAULT_IDLE,
            });
        }
    }
}

/// Compiles the nodes this meshd serves. The set must have passed validation; references
/// that do not resolve are skipped rather than failing.
pub fn compile(set: &MeshSet, o: &Overrides) -> RuntimeConfig {
    let mut c = Compiler {
        set,
        o,
        clusters: BTreeMap::new(),
        hosts: BTreeMap::new(),
    };
    let mut listeners = Vec::new();
    for vn in set.virtual_nodes() {
        if c.serves(&vn.virtual_node_name) {
            c.node(vn, &mut listeners);
        }
    }
    for vg in set.virtual_gateways() {
        if c.serves(&vg.virtual_gateway_name) {
            c.gateway(vg, &mut listeners);
        }
    }
    super::istio::compile(set, o, &mut c.clusters, &mut listeners);
    RuntimeConfig {
        listeners,
        clusters: c.clusters.into_values().collect(),
    }
}

#[cfg(test)]
#[path = "compile_tests.rs"]
mod tests;
