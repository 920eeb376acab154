//! The compiled runtime config: what meshd serves, with every reference resolved.
//!
//! [`compile`](crate::runtime::compile) turns a validated [`MeshSet`](crate::model::MeshSet)
//! into a [`RuntimeConfig`]: listeners with their routing tables, and the clusters they send to.
//! Matching a request against a routing table ([`Routing::route`]) is pure and allocation-free.

mod compile;
mod istio;
mod resilience;
mod routing;

use std::net::SocketAddr;

pub use compile::{compile, Overrides};
pub use istio::{
    default_retry_policy as istio_default_retry_policy, inbound_name, outbound_name, server_limits,
};
pub use routing::{
    pick_usable, GatewayRoute, HeaderMatch, HeaderMatchKind, HostMatch, HttpMatch, PathMatch,
    PathRewrite, Route, RouteAction, Routing, VirtualHost, WeightedCluster,
};

use crate::accesslog::Format;
use crate::breaker::Thresholds;
use crate::health::HealthCheckConfig;
use crate::outlier::OutlierConfig;
use crate::pool::PoolSettings;
use crate::retry::RetryBudget;

/// What a listener does with a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// A virtual node's listener: forwards to its local app.
    Ingress,
    /// A virtual node's egress listener: its app's outbound calls, routed by Host.
    Egress,
    /// A virtual gateway's listener: gateway routes to virtual services.
    Gateway,
}

impl Role {
    /// `ingress`, `egress` or `gateway`.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Ingress => "ingress",
            Role::Egress => "egress",
            Role::Gateway => "gateway",
        }
    }

    /// `ingress`, `egress` or `ingress` (a gateway's listener is an ingress listener, as in
    /// App Mesh's Envoy: `http.ingress.*`).
    pub fn stat_word(self) -> &'static str {
        match self {
            Role::Ingress | Role::Gateway => "ingress",
            Role::Egress => "egress",
        }
    }
}

/// Where a listener binds.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Bind {
    /// A socket address (port 0 picks a free port).
    Addr(SocketAddr),
    /// A DNS name and port, resolved when the listener is bound.
    Host(String, u16),
}

/// One listener of one local node.
#[derive(Debug, Clone)]
pub struct Listener {
    /// The local node (virtual node or gateway) it belongs to.
    pub node: String,
    /// The node's mesh.
    pub mesh: String,
    /// What it does.
    pub role: Role,
    /// Where it binds.
    pub bind: Bind,
    /// Where requests go.
    pub routing: std::sync::Arc<Routing>,
    /// For a gateway: the self-redirect cluster whose limits admit every request first.
    pub admission_cluster: Option<String>,
    /// The node's access log, if it has one.
    pub access_log: Option<AccessLog>,
    /// Per-request timeout (App Mesh `timeout.http.perRequest`, default 15 s; zero = none): a
    /// route's `timeout`, it runs from the request's start until the response is complete.
    pub request_timeout: std::time::Duration,
    /// Stream idle timeout (App Mesh `timeout.http.idle`, default 300 s as Envoy's
    /// `stream_idle_timeout`; zero = none): how long a request may see no byte move either way,
    /// before or after the response headers.
    pub stream_idle_timeout: std::time::Duration,
}

impl Listener {
    /// A stable key: a reload keeps the bound socket of a listener whose key is unchanged.
    pub fn key(&self) -> (String, Role, Bind) {
        (self.node.clone(), self.role, self.bind.clone())
    }
}

/// An access log file and its format.
#[derive(Debug, Clone)]
pub struct AccessLog {
    /// The file (`/dev/stdout` allowed).
    pub path: std::path::PathBuf,
    /// How lines are rendered.
    pub format: Format,
}

/// Where a cluster's hosts come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoints {
    /// One fixed address (a node's local app).
    Static(SocketAddr),
    /// A DNS name: every address it resolves to is a host; re-resolved periodically.
    Dns {
        /// The name (a literal IP works too).
        hostname: String,
        /// The port.
        port: u16,
    },
    /// Several endpoints, each a host (an IP literal, or a DNS name re-resolved as
    /// [`Endpoints::Dns`] is) and a port: the cluster's hosts are the union of every entry's
    /// addresses (Envoy's STRICT_DNS cluster with several endpoints; a literal is used without
    /// any lookup). A failed lookup keeps that entry's last addresses. An empty list is a
    /// cluster with no hosts: requests get 503 `UH` saying the cluster has no endpoints.
    List(Vec<(String, u16)>),
    /// The listener of a node this meshd serves itself (its bound address, even with port 0).
    LocalListener {
        /// The node.
        node: String,
    },
    /// No hosts: the cluster only counts slots (a gateway's self-redirect cluster).
    Slots,
}

/// One upstream cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cluster {
    /// Its name (`cds_ingress_…`, `cds_egress_…`).
    pub name: String,
    /// Its hosts.
    pub endpoints: Endpoints,
    /// Breaker limits.
    pub thresholds: Thresholds,
    /// Pool settings.
    pub settings: PoolSettings,
    /// Passive ejection of failing hosts: the target node listener's `outlierDetection`, on a
    /// caller's egress cluster; `None` = never eject.
    pub outlier_detection: Option<OutlierConfig>,
    /// Active health checks of the hosts: the target node listener's `healthCheck` (`http`
    /// or `tcp`), on a caller's egress cluster; `None` = no checks.
    pub health_check: Option<HealthCheckConfig>,
    /// What bounds the retries of requests to this cluster (App Mesh has no setting: Envoy's
    /// default budget, on every cluster).
    pub retry_budget: RetryBudget,
}

/// Everything one meshd serves.
#[derive(Debug, Clone, Default)]
pub struct RuntimeConfig {
    /// Listeners of every local node.
    pub listeners: Vec<Listener>,
    /// Every cluster a listener refers to, sorted by name.
    pub clusters: Vec<Cluster>,
}
