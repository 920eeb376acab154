//! Compiles Istio objects into the runtime config of one meshd, the way istiod configures each
//! sidecar's Envoy (appmesh-istio.md part B, istio-vm.md §1–§3):
//!
//! * a **ServiceEntry** host and port is a service; its endpoints are the entry's `endpoints`,
//!   the WorkloadEntries its `workloadSelector` picks (same namespace, labels ⊇ selector;
//!   metadata labels win over spec labels), or, with neither, the host itself (DNS). An
//!   endpoint's port is its `ports[<port name>]`, else the port's `targetPort`, else its number;
//! * every local workload (a **WorkloadEntry** this meshd serves) gets an egress listener that
//!   routes its app's calls by Host (`<host>:<port>`, or a bare `<host>` for the host's first
//!   port) to the **outbound clusters** `outbound|<port>|<subset>|<host>`, one per service port
//!   and DestinationRule subset (subset endpoints: labels ⊇ the subset's labels);
//! * a **DestinationRule**'s `connectionPool` sets the outbound clusters' limits (client side)
//!   and the **inbound cluster** `inbound|<port>||<host>` of the workload that serves the host
//!   (server side); `outlierDetection` and `loadBalancer` only the outbound clusters. Subset
//!   policies override the rule's block by block; a `portLevelSettings` block replaces the rule's
//!   block for its port. Istio's defaults: every limit 2³²−1 (a value of 0 means unset, as in
//!   Istio), connect timeout 10 s, idle timeout 1 h, least request (`ROUND_ROBIN` and
//!   `RANDOM` as named);
//! * a **VirtualService** for a host replaces the default route (everything to
//!   `outbound|<port>||<host>`): its `http` routes in order, one runtime route per `match`
//!   entry, weighted destinations, `timeout` (default none), `retries` (default: Istio's, 2
//!   retries on connect failure and refused stream; `retryOn` as Envoy's `retry_on`, status
//!   codes included), `fault` (delay and abort with their percentages; none when unset);
//! * a local workload's inbound listener binds `<address>:<workload port>` for every service
//!   port it serves and forwards to its app at `127.0.0.1:<workload port>` through the inbound
//!   cluster. It neither retries nor times out a request (Istio's inbound defaults).

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use regex::Regex;

use super::compile::Overrides;
use super::routing::{
    HeaderMatch, HeaderMatchKind, HttpMatch, PathMatch, Route, Routing, VirtualHost,
    WeightedCluster,
};
use super::{Bind, Cluster, Endpoints, Listener, Role};
use crate::balance::Policy;
use crate::breaker::Thresholds;
use crate::fault::FaultPolicy;
use crate::istio::{
    ConnectionPoolSettings, DestinationRuleSpec, HttpMatchRequest, HttpRoute, IstioResource,
    IstioSpec, LoadBalancerSettings, OutlierDetection, ServiceEntrySpec, ServicePort, SimpleLb,
    StringMatch, TrafficPolicy, VirtualServiceSpec, WorkloadEntrySpec,
};
use crate::model::{MeshSet, Resource};
use crate::outlier::OutlierConfig;
use crate::pool::PoolSettings;
use crate::retry::{Backoff, RetryBudget, RetryOn, RetryPolicy};

#[path = "istio_policy.rs"]
mod policy;
use policy::{at_port, effective, fault, matcher, retry_policy, settings};
pub(crate) use policy::{outlier, thresholds};

/// Istio's "unset" limit: 2³²−1.
const UNLIMITED: u64 = 4_294_967_295;
/// Istio's (mesh) connect timeout.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Istio's connection idle timeout.
const IDLE_TIMEOUT: Duration = Duration::from_secs(3600);
/// Envoy's stream idle timeout, which Istio keeps.
const STREAM_IDLE: Duration = Duration::from_secs(300);
/// The egress listener's port (Istio's outbound capture port).
const EGRESS_PORT: u16 = 15001;

/// Istio's retry policy for a route whose VirtualService sets none (current Istio, istio-vm.md
/// §3.4): 2 retries on `connect-failure,refused-stream,unavailable,cancelled,
/// retriable-status-codes` with no status codes (the gRPC conditions have no HTTP/1 meaning).
pub fn default_retry_policy() -> RetryPolicy {
    RetryPolicy {
        retry_on: RetryOn {
            connect_failure: true,
            refused_stream: true,
            ..RetryOn::default()
        },
        num_retries: 2,
        per_try_timeout: None,
        backoff: Backoff::ENVOY_DEFAULT,
    }
}

/// The outbound cluster name: `outbound|<port>|<subset>|<host>`.
pub fn outbound_name(port: u16, subset: &str, host: &str) -> String {
    format!("outbound|{port}|{subset}|{host}")
}

/// The inbound cluster name: `inbound|<port>||<host>`.
pub fn inbound_name(port: u16, host: &str) -> String {
    format!("inbound|{port}||{host}")
}

/// One endpoint of a service port: an address (IP or DNS name), a port and labels.
#[derive(Debug, Clone)]
struct Ep {
    address: String,
    port: u16,
    labels: BTreeMap<String, String>,
}

fn port(v: i64) -> u16 {
    u16::try_from(v).unwrap_or(0)
}

fn limit(v: Option<i64>) -> u64 {
    v.filter(|v| *v > 0)
        .and_then(|v| u64::try_from(v).ok())
        .unwrap_or(UNLIMITED)
}

fn count(v: i64) -> u32 {
    u32::try_from(v.max(0)).unwrap_or(u32::MAX)
}

/// The Istio objects of a set, typed.
struct Objects<'a> {
    se: Vec<(&'a IstioResource, &'a ServiceEntrySpec)>,
    we: Vec<(&'a IstioResource, &'a WorkloadEntrySpec)>,
    dr: Vec<(&'a IstioResource, &'a DestinationRuleSpec)>,
    vs: Vec<(&'a IstioResource, &'a VirtualServiceSpec)>,
}

impl<'a> Objects<'a> {
    fn of(set: &'a MeshSet) -> Self {
        let mut o = Objects {
            se: vec![],
            we: vec![],
            dr: vec![],
            vs: vec![],
        };
        for r in set.resources() {
            let Resource::Istio(i) = r else { continue };
            match &i.spec {
                IstioSpec::ServiceEntry(s) => o.se.push((i, s)),
                IstioSpec::WorkloadEntry(s) => o.we.push((i, s)),
                IstioSpec::DestinationRule(s) => o.dr.push((i, s)),
                IstioSpec::VirtualService(s) => o.vs.push((i, s)),
            }
        }
        o
    }

    /// The ServiceEntry providing `host` (the first, in set order).
    fn service(&self, host: &str) -> Option<(&'a IstioResource, &'a ServiceEntrySpec)> {
        self.se
            .iter()
            .find(|(_, s)| s.hosts.iter().any(|h| h == host))
            .copied()
    }

    fn rule(&self, host: &str) -> Option<&'a DestinationRuleSpec> {
        self.dr
            .iter()
            .find(|(_, d)| d.host == host)
            .map(|(_, d)| *d)
    }

    /// Every endpoint of `host`'s port `p` (service port number).
    fn endpoints(&self, host: &str, p: &ServicePort) -> Vec<Ep> {
        let Some((obj, se)) = self.service(host) else {
            return vec![];
        };
        let pick = |ports: Option<&BTreeMap<String, i64>>| workload_port(ports, p);
        if let Some(eps) = &se.endpoints {
            return eps
                .iter()
                .filter_map(|e| {
                    Some(Ep {
                        address: e.address.clone()?,
                        port: pick(e.ports.as_ref()),
                        labels: e.labels.clone().unwrap_or_default(),
                    })
                })
                .collect();
        }
        if let Some(sel) = &se.workload_selector {
            return self
                .we
                .iter()
                .filter(|(w, _)| w.namespace() == obj.namespace())
                .filter_map(|(w, spec)| {
                    let labels = workload_labels(w, spec);
                    let selected = selects(&sel.labels, &labels);
                    selected.then(|| {
                        Some(Ep {
                            address: spec.address.clone()?,
                            port: pick(spec.ports.as_ref()),
                            labels,
                        })
                    })?
                })
                .collect();
        }
        vec![Ep {
            address: host.to_owned(),
            port: pick(None),
            labels: BTreeMap::new(),
        }]
    }
}

/// The port a workload (or inline endpoint) with `ports` listens on for service port `sp`: its
/// `ports[<port name>]`, else the port's `targetPort`, else its number (Istio's precedence).
fn workload_port(ports: Option<&BTreeMap<String, i64>>, sp: &ServicePort) -> u16 {
    ports
        .and_then(|m| m.get(&sp.name))
        .or(sp.target_port.as_ref())
        .map_or(port(sp.number), |v| port(*v))
}

/// Whether `labels` carry every label of `selector` (Istio's workload selectors and subsets).
fn selects(selector: &BTreeMap<String, String>, labels: &BTreeMap<String, String>) -> bool {
    selector.iter().all(|(k, v)| labels.get(k) == Some(v))
}

/// A WorkloadEntry's labels: its spec labels, then its metadata labels over them (Istio's
/// `ConvertWorkloadEntry`: metadata wins).
fn workload_labels(w: &IstioResource, spec: &WorkloadEntrySpec) -> BTreeMap<String, String> {
    let mut labels = spec.labels.clone().unwrap_or_default();
    labels.extend(w.metadata.labels.clone().unwrap_or_default());
    labels
}

struct IstioCompiler<'a, 's> {
    objects: &'s Objects<'a>,
    clusters: &'s mut BTreeMap<String, Cluster>,
}

impl IstioCompiler<'_, '_> {
    /// The outbound cluster for `host`'s port `p` and `subset` ("" = all endpoints), created on
    /// first use. A host no ServiceEntry provides is resolved by DNS as it is.
    fn outbound(&mut self, host: &str, p: u16, subset: &str) -> String {
        let name = outbound_name(p, subset, host);
        if self.clusters.contains_key(&name) {
            return name;
        }
        let rule = self.objects.rule(host);
        let service_port = self
            .objects
            .service(host)
            .and_then(|(_, se)| se.ports.iter().find(|sp| port(sp.number) == p));
        let endpoints = match service_port {
            Some(sp) => {
                let wanted = rule
                    .and_then(|r| r.subsets.iter().flatten().find(|s| s.name == subset))
                    .and_then(|s| s.labels.clone())
                    .unwrap_or_default();
                let list = self
                    .objects
                    .endpoints(host, sp)
                    .into_iter()
                    .filter(|e| selects(&wanted, &e.labels))
                    .map(|e| (e.address, e.port))
                    .collect();
                Endpoints::List(list)
            }
            None => Endpoints::Dns {
                hostname: host.to_owned(),
                port: p,
            },
        };
        let policy = effective(rule, subset, p);
        self.clusters.insert(
            name.clone(),
            Cluster {
                name: name.clone(),
                endpoints,
                thresholds: thresholds(policy.pool),
                settings: settings(policy.pool, policy.lb),
                outlier_detection: policy.outlier.map(outlier),
                health_check: None,
                retry_budget: RetryBudget::DEFAULT,
            },
        );
        name
    }

    /// Routes of `host` at port `p`: the VirtualService's, or the default route.
    fn routes(&mut self, host: &str, p: u16) -> Vec<Route> {
        let vs = self
            .objects
            .vs
            .iter()
            .find(|(_, v)| v.hosts.iter().any(|h| h == host))
            .copied();
        let Some((obj, vs)) = vs else {
            let cluster = self.outbound(host, p, "");
            return vec![Route {
                name: format!("{host}:{p}"),
                matcher: matcher(None),
                targets: vec![WeightedCluster { cluster, weight: 1 }],
                timeout: None,
                idle_timeout: None,
                retry: Some(default_retry_policy()),
                fault: None,
            }];
        };
        let mut routes = Vec::new();
        for (i, h) in vs.http.iter().flatten().enumerate() {
            let name = match &h.name {
                Some(n) => format!("{}.{}/{n}", obj.metadata.name, obj.namespace()),
                None => format!("{}.{}/{i}", obj.metadata.name, obj.namespace()),
            };
            let dests = h.route.iter().flatten();
            let mut targets: Vec<WeightedCluster> = dests
                .map(|d| {
                    let dp = d
                        .destination
                        .port
                        .map(|n| port(n.number))
                        .or_else(|| self.only_port(&d.destination.host, p))
                        .unwrap_or(p);
                    let subset = d.destination.subset.as_deref().unwrap_or("");
                    WeightedCluster {
                        cluster: self.outbound(&d.destination.host, dp, subset),
                        weight: d.weight.map_or(1, |w| u32::try_from(w.max(0)).unwrap_or(0)),
                    }
                })
                .collect();
            // Istio drops 0-weight destinations; all 0 keeps them (never picked unequally).
            if targets.iter().any(|t| t.weight > 0) {
                targets.retain(|t| t.weight > 0);
            }
            let conditions: Vec<Option<&HttpMatchRequest>> = match &h.r#match {
                Some(ms) if !ms.is_empty() => ms.iter().map(Some).collect(),
                _ => vec![None],
            };
            for m in conditions {
                routes.push(Route {
                    name: name.clone(),
                    matcher: matcher(m),
                    targets: targets.clone(),
                    timeout: Some(h.timeout.as_ref().map_or(Duration::ZERO, |d| d.get())),
                    idle_timeout: None,
                    retry: retry_policy(h),
                    fault: fault(h),
                });
            }
        }
        routes
    }

    /// The port of `host` when the call names none: `p` when the host has it, else the host's
    /// only (first) port.
    fn only_port(&self, host: &str, p: u16) -> Option<u16> {
        let (_, se) = self.objects.service(host)?;
        if se.ports.iter().any(|sp| port(sp.number) == p) {
            return Some(p);
        }
        se.ports.first().map(|sp| port(sp.number))
    }

    /// Every host a local app may call, as Host-routed virtual hosts: `<host>:<port>` for every
    /// service port, then a bare `<host>` for each host's first port (last, so that a port
    /// named in Host always finds its own).
    fn egress_hosts(&mut self) -> Vec<Arc<VirtualHost>> {
        let mut pairs: BTreeSet<(String, u16)> = BTreeSet::new();
        let mut first_port: BTreeMap<String, u16> = BTreeMap::new();
        for (_, se) in &self.objects.se {
            for h in &se.hosts {
                for sp in &se.ports {
                    pairs.insert((h.clone(), port(sp.number)));
                }
                if let Some(sp) = se.ports.first() {
                    first_port.entry(h.clone()).or_insert(port(sp.number));
                }
            }
        }
        // VirtualService hosts that are no ServiceEntry host (a short name, say) take the
        // ports of their first destination.
        let vs_hosts: Vec<(String, Option<String>)> = self
            .objects
            .vs
            .iter()
            .flat_map(|(_, v)| {
                let dest = v
                    .http
                    .iter()
                    .flatten()
                    .flat_map(|h| h.route.iter().flatten())
                    .next()
                    .map(|d| d.destination.host.clone());
                v.hosts.iter().map(move |h| (h.clone(), dest.clone()))
            })
            .collect();
        for (h, dest) in vs_hosts {
            if first_port.contains_key(&h) {
                continue;
            }
            let ports: Vec<u16> = dest
                .and_then(|d| self.objects.service(&d))
                .map(|(_, se)| se.ports.iter().map(|sp| port(sp.number)).collect())
                .unwrap_or_default();
            for p in &ports {
                pairs.insert((h.clone(), *p));
            }
            if let Some(p) = ports.first() {
                first_port.insert(h.clone(), *p);
            }
        }
        let mut out = Vec::new();
        let mut bare = Vec::new();
        for (h, p) in pairs {
            // Every subset has its cluster, routed to or not, as in Istio.
            let subsets: Vec<String> = self
                .objects
                .rule(&h)
                .into_iter()
                .flat_map(|r| r.subsets.iter().flatten().map(|s| s.name.clone()))
                .collect();
            for s in subsets {
                self.outbound(&h, p, &s);
            }
            let routes = self.routes(&h, p);
            if first_port.get(&h) == Some(&p) {
                bare.push(Arc::new(VirtualHost {
                    name: h.clone(),
                    domains: vec![h.clone()],
                    routes: routes.clone(),
                }));
            }
            out.push(Arc::new(VirtualHost {
                name: format!("{h}:{p}"),
                domains: vec![format!("{h}:{p}")],
                routes,
            }));
        }
        out.extend(bare);
        out
    }
}

/// The server-side limits of `host` on every VM that serves it (its WorkloadEntries), for
/// views: per service port, the inbound limits the host's DestinationRule gives (its
/// `connectionPool` at that port; 2³²−1 each without one), and the rule's name.
pub fn server_limits(set: &MeshSet, host: &str) -> Vec<(u16, Thresholds, Option<String>)> {
    let objects = Objects::of(set);
    let Some((_, se)) = objects.service(host) else {
        return vec![];
    };
    let rule = objects.dr.iter().find(|(_, d)| d.host == host);
    se.ports
        .iter()
        .map(|sp| {
            let p = port(sp.number);
            let pool = at_port(rule.and_then(|(_, d)| d.traffic_policy.as_ref()), p).pool;
            (
                p,
                thresholds(pool),
                rule.map(|(r, _)| r.metadata.name.clone()),
            )
        })
        .collect()
}

/// Compiles the Istio objects of `set` for the WorkloadEntries this meshd serves: their
/// inbound and egress listeners into `listeners`, every cluster those use into `clusters`.
pub(super) fn compile(
    set: &MeshSet,
    o: &Overrides,
    clusters: &mut BTreeMap<String, Cluster>,
    listeners: &mut Vec<Listener>,
) {
    let objects = Objects::of(set);
    let mut c = IstioCompiler {
        objects: &objects,
        clusters,
    };
    let mut egress_hosts: Option<Vec<Arc<VirtualHost>>> = None;
    for (w, spec) in &objects.we {
        let name = w.metadata.name.as_str();
        if !o.serves(name) {
            continue;
        }
        let labels = workload_labels(w, spec);
        // The services this workload serves: ServiceEntries selecting it.
        let mut inbound: BTreeMap<u16, String> = BTreeMap::new();
        for (se_obj, se) in &objects.se {
            let Some(sel) = &se.workload_selector else {
                continue;
            };
            if se_obj.namespace() != w.namespace() || !selects(&sel.labels, &labels) {
                continue;
            }
            for sp in &se.ports {
                let wp = workload_port(spec.ports.as_ref(), sp);
                if let Some(h) = se.hosts.first() {
                    inbound.entry(wp).or_insert_with(|| h.clone());
                }
            }
        }
        let first = inbound.keys().next().copied();
        for (wp, host) in &inbound {
            let cluster = inbound_name(*wp, host);
            let policy = at_port(
                objects.rule(host).and_then(|r| r.traffic_policy.as_ref()),
                *wp,
            );
            // `--listen`/`--app` name one address per node: they apply to its first port.
            let overridden = first == Some(*wp);
            let app = o
                .app
                .get(name)
                .filter(|_| overridden)
                .copied()
                .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], *wp)));
            c.clusters.insert(
                cluster.clone(),
                Cluster {
                    name: cluster.clone(),
                    endpoints: Endpoints::Static(app),
                    thresholds: thresholds(policy.pool),
                    settings: settings(policy.pool, None),
                    outlier_detection: None,
                    health_check: None,
                    retry_budget: RetryBudget::DEFAULT,
                },
            );
            let address = spec.address.clone().unwrap_or_default();
            let bind = match (
                o.listen.get(name).filter(|_| overridden),
                o.bind_ip.get(name),
                address.parse::<IpAddr>(),
            ) {
                (Some(a), _, _) => Bind::Addr(*a),
                (None, Some(ip), _) => Bind::Addr(SocketAddr::new(*ip, *wp)),
                (None, None, Ok(ip)) => Bind::Addr(SocketAddr::new(ip, *wp)),
                (None, None, Err(_)) => Bind::Host(address, *wp),
            };
            listeners.push(Listener {
                node: name.to_owned(),
                mesh: w.namespace().to_owned(),
                role: Role::Ingress,
                bind,
                routing: Arc::new(Routing::Cluster(cluster)),
                admission_cluster: None,
                access_log: o.istio_access_log.clone(),
                request_timeout: Duration::ZERO,
                stream_idle_timeout: STREAM_IDLE,
            });
        }
        let hosts = egress_hosts.get_or_insert_with(|| c.egress_hosts()).clone();
        if hosts.is_empty() {
            continue;
        }
        let bind = o
            .egress
            .get(name)
            .copied()
            .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], EGRESS_PORT)));
        listeners.push(Listener {
            node: name.to_owned(),
            mesh: w.namespace().to_owned(),
            role: Role::Egress,
            bind: Bind::Addr(bind),
            routing: Arc::new(Routing::Hosts(hosts)),
            admission_cluster: None,
            access_log: o.istio_access_log.clone(),
            request_timeout: Duration::ZERO,
            stream_idle_timeout: STREAM_IDLE,
        });
    }
}

#[cfg(test)]
#[path = "istio_tests.rs"]
mod tests;
