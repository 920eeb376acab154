//! VirtualNode (reference §3) and the connection pools shared with virtual gateways.

use serde::{Deserialize, Serialize};

use super::common::{
    BackendDefaults, ClientPolicy, Duration, GrpcTimeout, HealthCheckPolicy, HttpTimeout,
    ListenerTls, Logging, PortMapping, ResourceMetadata, ResourceStatus, TagRef, TcpTimeout,
    DEFAULT_MAX_PENDING_REQUESTS,
};
use super::macros::{str_enum, union};

/// A virtual node: `create-virtual-node` input or the `virtualNode` member of describe output.
/// `metadata`/`status` are kept when present; `clientToken`, `meshOwner` and `tags` are accepted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct VirtualNode {
    /// Idempotency token (≤ 36 letters, digits, `-`, `_`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_token: Option<String>,
    /// Mesh the node belongs to.
    pub mesh_name: String,
    /// Account owning the mesh (12 characters) when shared.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mesh_owner: Option<String>,
    /// Describe-output metadata.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metadata: Option<ResourceMetadata>,
    /// The node's specification.
    pub spec: VirtualNodeSpec,
    /// Describe-output status.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<ResourceStatus>,
    /// Tags (create only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tags: Option<Vec<TagRef>>,
    /// Name, 1–255 characters.
    pub virtual_node_name: String,
}

/// `VirtualNodeSpec`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct VirtualNodeSpec {
    /// Client policy applied to every backend unless the backend overrides it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backend_defaults: Option<BackendDefaults>,
    /// Virtual services this node calls.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backends: Option<Vec<Backend>>,
    /// Inbound listeners; when non-empty, `serviceDiscovery` is required.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listeners: Option<Vec<Listener>>,
    /// Access logging.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub logging: Option<Logging>,
    /// How callers find this node.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service_discovery: Option<ServiceDiscovery>,
}

/// A virtual node listener.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Listener {
    /// Server-side circuit breaker limits; the key equals `portMapping.protocol`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub connection_pool: Option<VirtualNodeConnectionPool>,
    /// Active health check run by callers.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub health_check: Option<HealthCheckPolicy>,
    /// Passive ejection of failing hosts, applied by callers.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub outlier_detection: Option<OutlierDetection>,
    /// Port and protocol.
    pub port_mapping: PortMapping,
    /// Timeouts; the key equals `portMapping.protocol`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeout: Option<ListenerTimeout>,
    /// TLS termination.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls: Option<ListenerTls>,
}

/// `connectionPool.http`: `maxConnections` ≥ 1, `maxPendingRequests` ≥ 1 (default 2147483647).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HttpConnectionPool {
    /// Maximum concurrent upstream connections.
    pub max_connections: i64,
    /// Maximum requests queued while all connections are busy.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_pending_requests: Option<i64>,
}

/// `connectionPool.http2` / `connectionPool.grpc`: `maxRequests` ≥ 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Http2ConnectionPool {
    /// Maximum concurrent requests.
    pub max_requests: i64,
}

/// gRPC pools have the same members as HTTP/2 ones.
pub type GrpcConnectionPool = Http2ConnectionPool;

/// `connectionPool.tcp`: `maxConnections` ≥ 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TcpConnectionPool {
    /// Maximum concurrent upstream connections.
    pub max_connections: i64,
}

union! {
    /// A virtual node listener's `connectionPool`: `http` | `http2` | `grpc` | `tcp`.
    pub enum VirtualNodeConnectionPool {
        /// HTTP/1.1 limits.
        Http(HttpConnectionPool) = "http",
        /// HTTP/2 limits.
        Http2(Http2ConnectionPool) = "http2",
        /// gRPC limits.
        Grpc(GrpcConnectionPool) = "grpc",
        /// TCP limits.
        Tcp(TcpConnectionPool) = "tcp",
    }
}

/// `outlierDetection`: all four members required.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OutlierDetection {
    /// Base ejection time; real time is base × times ejected.
    pub base_ejection_duration: Duration,
    /// Time between ejection sweeps.
    pub interval: Duration,
    /// Maximum share of hosts ejected, 0–100 (at least one host is always ejectable).
    pub max_ejection_percent: i64,
    /// Consecutive 5xx responses that eject a host, ≥ 1.
    pub max_server_errors: i64,
}

union! {
    /// A listener's `timeout`: `http` | `http2` | `grpc` | `tcp`, equal to the listener protocol.
    pub enum ListenerTimeout {
        /// HTTP/1.1 timeouts.
        Http(HttpTimeout) = "http",
        /// HTTP/2 timeouts.
        Http2(HttpTimeout) = "http2",
        /// gRPC timeouts.
        Grpc(GrpcTimeout) = "grpc",
        /// TCP idle timeout.
        Tcp(TcpTimeout) = "tcp",
    }
}

str_enum! {
    /// `dns.responseType`.
    pub enum DnsResponseType {
        /// One address (Envoy LOGICAL_DNS); the default.
        Loadbalancer = "LOADBALANCER",
        /// Every address is a host (Envoy STRICT_DNS).
        Endpoints = "ENDPOINTS",
    }
}

str_enum! {
    /// `ipPreference` of service discovery and of a mesh.
    pub enum IpPreference {
        /// Prefer IPv6, fall back to IPv4.
        Ipv6Preferred = "IPv6_PREFERRED",
        /// Prefer IPv4, fall back to IPv6.
        Ipv4Preferred = "IPv4_PREFERRED",
        /// IPv4 only.
        Ipv4Only = "IPv4_ONLY",
        /// IPv6 only.
        Ipv6Only = "IPv6_ONLY",
    }
}

/// `serviceDiscovery.dns`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DnsServiceDiscovery {
    /// Host name callers resolve.
    pub hostname: String,
    /// Address family preference; overrides the mesh's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ip_preference: Option<IpPreference>,
    /// `LOADBALANCER` (default) or `ENDPOINTS`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub response_type: Option<DnsResponseType>,
}

/// `awsCloudMap.attributes[]`: key 1–255, value 1–1024 characters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AwsCloudMapInstanceAttribute {
    /// Attribute key.
    pub key: String,
    /// Attribute value.
    pub value: String,
}

/// `serviceDiscovery.awsCloudMap`: names 1–1024 characters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AwsCloudMapServiceDiscovery {
    /// Instance attributes to filter on.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attributes: Option<Vec<AwsCloudMapInstanceAttribute>>,
    /// Address family preference.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ip_preference: Option<IpPreference>,
    /// Cloud Map namespace.
    pub namespace_name: String,
    /// Cloud Map service.
    pub service_name: String,
}

union! {
    /// `serviceDiscovery`: `awsCloudMap` | `dns`.
    pub enum ServiceDiscovery {
        /// AWS Cloud Map (kept for compatibility; meshd resolves only DNS).
        AwsCloudMap(AwsCloudMapServiceDiscovery) = "awsCloudMap",
        /// DNS.
        Dns(DnsServiceDiscovery) = "dns",
    }
}

/// `backends[].virtualService`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct VirtualServiceBackend {
    /// Overrides `backendDefaults.clientPolicy` for this backend.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_policy: Option<ClientPolicy>,
    /// The virtual service called; must exist in the mesh.
    pub virtual_service_name: String,
}

union! {
    /// `backends[]`: only `virtualService`.
    pub enum Backend {
        /// A virtual service backend.
        VirtualService(VirtualServiceBackend) = "virtualService",
    }
}

// === impl VirtualNode ===

impl VirtualNode {
    /// The listeners (empty when absent).
    pub fn listeners(&self) -> &[Listener] {
        self.spec.listeners.as_deref().unwrap_or(&[])
    }

    /// The virtual service names of all backends, in document order.
    pub fn backend_names(&self) -> impl Iterator<Item = &str> {
        self.spec
            .backends
            .as_deref()
            .unwrap_or(&[])
            .iter()
            .map(|b| match b {
                Backend::VirtualService(vs) => vs.virtual_service_name.as_str(),
            })
    }

    /// The DNS service discovery, when that is the kind configured.
    pub fn dns(&self) -> Option<&DnsServiceDiscovery> {
        match &self.spec.service_discovery {
            Some(ServiceDiscovery::Dns(dns)) => Some(dns),
            _ => None,
        }
    }
}

// === impl HttpConnectionPool ===

impl HttpConnectionPool {
    /// `maxPendingRequests`, or 2147483647 when absent (reference §3.3).
    pub fn max_pending_requests_or_default(&self) -> i64 {
        self.max_pending_requests
            .unwrap_or(DEFAULT_MAX_PENDING_REQUESTS)
    }
}

// === impl DnsServiceDiscovery ===

impl DnsServiceDiscovery {
    /// `responseType`, or `LOADBALANCER` when absent.
    pub fn response_type_or_default(&self) -> DnsResponseType {
        self.response_type.unwrap_or(DnsResponseType::Loadbalancer)
    }
}

// === impl ListenerTimeout ===

impl ListenerTimeout {
    /// Per-request timeout (15 s when absent); `None` for TCP, which has none.
    pub fn per_request_or_default(&self) -> Option<std::time::Duration> {
        match self {
            ListenerTimeout::Http(t) | ListenerTimeout::Http2(t) | ListenerTimeout::Grpc(t) => {
                Some(t.per_request_or_default())
            }
            ListenerTimeout::Tcp(_) => None,
        }
    }

    /// Idle timeout (300 s when absent).
    pub fn idle_or_default(&self) -> std::time::Duration {
        match self {
            ListenerTimeout::Http(t) | ListenerTimeout::Http2(t) | ListenerTimeout::Grpc(t) => {
                t.idle_or_default()
            }
            ListenerTimeout::Tcp(t) => t.idle_or_default(),
        }
    }
}
