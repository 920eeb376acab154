//! VirtualGateway (reference §4) and GatewayRoute (reference §5).

use serde::{Deserialize, Serialize};

use super::common::{
    BackendDefaults, HealthCheckPolicy, HttpMethod, HttpPathMatch, HttpQueryParameter,
    HttpRouteHeader, ListenerTls, Logging, PortMapping, ResourceMetadata, ResourceStatus, TagRef,
};
use super::macros::{str_enum, union};
use super::node::{GrpcConnectionPool, Http2ConnectionPool, HttpConnectionPool};

/// A virtual gateway: `create-virtual-gateway` input or the `virtualGateway` member of describe
/// output.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct VirtualGateway {
    /// Idempotency token.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_token: Option<String>,
    /// Mesh the gateway belongs to.
    pub mesh_name: String,
    /// Account owning the mesh when shared.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mesh_owner: Option<String>,
    /// Describe-output metadata.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metadata: Option<ResourceMetadata>,
    /// The gateway's specification.
    pub spec: VirtualGatewaySpec,
    /// Describe-output status.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<ResourceStatus>,
    /// Tags (create only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tags: Option<Vec<TagRef>>,
    /// Name, 1–255 characters.
    pub virtual_gateway_name: String,
}

/// `VirtualGatewaySpec`: at least one listener.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct VirtualGatewaySpec {
    /// Client policy applied to every target.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backend_defaults: Option<BackendDefaults>,
    /// Listeners (protocols `http`, `http2`, `grpc`).
    pub listeners: Vec<VirtualGatewayListener>,
    /// Access logging.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub logging: Option<Logging>,
}

/// A virtual gateway listener: no `outlierDetection`, no `timeout`, no `tcp`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct VirtualGatewayListener {
    /// Limits protecting the gateway; the key equals `portMapping.protocol`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub connection_pool: Option<VirtualGatewayConnectionPool>,
    /// Health check of the gateway itself.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub health_check: Option<HealthCheckPolicy>,
    /// Port and protocol (`http`, `http2` or `grpc`).
    pub port_mapping: PortMapping,
    /// TLS termination.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls: Option<ListenerTls>,
}

union! {
    /// A virtual gateway listener's `connectionPool`: `http` | `http2` | `grpc`.
    pub enum VirtualGatewayConnectionPool {
        /// HTTP/1.1 limits.
        Http(HttpConnectionPool) = "http",
        /// HTTP/2 limits.
        Http2(Http2ConnectionPool) = "http2",
        /// gRPC limits.
        Grpc(GrpcConnectionPool) = "grpc",
    }
}

/// A gateway route: `create-gateway-route` input or the `gatewayRoute` member of describe output.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GatewayRoute {
    /// Idempotency token.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_token: Option<String>,
    /// Name, 1–255 characters, unique within the gateway.
    pub gateway_route_name: String,
    /// Mesh the route belongs to.
    pub mesh_name: String,
    /// Account owning the mesh when shared.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mesh_owner: Option<String>,
    /// Describe-output metadata.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metadata: Option<ResourceMetadata>,
    /// The route's specification.
    pub spec: GatewayRouteSpec,
    /// Describe-output status.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<ResourceStatus>,
    /// Tags (create only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tags: Option<Vec<TagRef>>,
    /// The virtual gateway the route belongs to.
    pub virtual_gateway_name: String,
}

/// `GatewayRouteSpec`: exactly one of `grpcRoute`, `http2Route`, `httpRoute`, each boxed (see
/// `RouteSpec`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GatewayRouteSpec {
    /// gRPC route.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub grpc_route: Option<Box<GrpcGatewayRoute>>,
    /// HTTP/2 route.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub http2_route: Option<Box<HttpGatewayRoute>>,
    /// HTTP route.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub http_route: Option<Box<HttpGatewayRoute>>,
    /// 0–1000, 0 is the highest priority.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub priority: Option<i64>,
}

/// `httpRoute` / `http2Route` of a gateway route.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HttpGatewayRoute {
    /// Where matching requests go.
    pub action: HttpGatewayRouteAction,
    /// What requests match.
    pub r#match: HttpGatewayRouteMatch,
}

/// `httpRoute.match` of a gateway route: at most one of `prefix`/`path`, and at least one of
/// `prefix`, `path`, `hostname`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HttpGatewayRouteMatch {
    /// Header criteria, 1–10.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub headers: Option<Vec<HttpRouteHeader>>,
    /// Host criteria.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hostname: Option<GatewayRouteHostnameMatch>,
    /// Method criterion.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub method: Option<HttpMethod>,
    /// Path criterion.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<HttpPathMatch>,
    /// Listener port, required when the gateway has several listeners.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub port: Option<i64>,
    /// Path prefix; starts with `/`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
    /// Query parameter criteria, 1–10.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub query_parameters: Option<Vec<HttpQueryParameter>>,
}

union! {
    /// `match.hostname`: `exact` | `suffix`, 1–253 characters.
    pub enum GatewayRouteHostnameMatch {
        /// The host equals this.
        Exact(String) = "exact",
        /// The host ends with this.
        Suffix(String) = "suffix",
    }
}

/// `action` of an HTTP gateway route.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HttpGatewayRouteAction {
    /// Rewrites applied before forwarding.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rewrite: Option<HttpGatewayRouteRewrite>,
    /// The virtual service requests go to.
    pub target: GatewayRouteTarget,
}

/// `action.target`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GatewayRouteTarget {
    /// Port of the target's listener, when it has several.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub port: Option<i64>,
    /// The target virtual service.
    pub virtual_service: GatewayRouteVirtualService,
}

/// `target.virtualService`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GatewayRouteVirtualService {
    /// Name of the virtual service; must exist in the mesh.
    pub virtual_service_name: String,
}

str_enum! {
    /// `defaultPrefix` / `defaultTargetHostname`.
    pub enum DefaultGatewayRouteRewrite {
        /// The default rewrite happens.
        Enabled = "ENABLED",
        /// No rewrite.
        Disabled = "DISABLED",
    }
}

/// `rewrite.hostname`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GatewayRouteHostnameRewrite {
    /// `ENABLED` (default): the Host becomes the target virtual service name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub default_target_hostname: Option<DefaultGatewayRouteRewrite>,
}

/// `rewrite.path` (for `match.path`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HttpGatewayRoutePathRewrite {
    /// The new path, 1–255 characters.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exact: Option<String>,
}

/// `rewrite.prefix` (for `match.prefix`): at most one of `defaultPrefix`, `value`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HttpGatewayRoutePrefixRewrite {
    /// `ENABLED` (default): the matched prefix becomes `/`; `DISABLED`: left as is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub default_prefix: Option<DefaultGatewayRouteRewrite>,
    /// Replacement for the matched prefix, 1–255 characters.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
}

/// `action.rewrite` of an HTTP gateway route.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HttpGatewayRouteRewrite {
    /// Host rewrite.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hostname: Option<GatewayRouteHostnameRewrite>,
    /// Whole-path rewrite.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<HttpGatewayRoutePathRewrite>,
    /// Prefix rewrite.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prefix: Option<HttpGatewayRoutePrefixRewrite>,
}

/// `grpcRoute` of a gateway route.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GrpcGatewayRoute {
    /// Where matching requests go.
    pub action: GrpcGatewayRouteAction,
    /// What requests match.
    pub r#match: GrpcGatewayRouteMatch,
}

/// `grpcRoute.match` of a gateway route.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GrpcGatewayRouteMatch {
    /// Host criteria.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hostname: Option<GatewayRouteHostnameMatch>,
    /// Metadata criteria, 1–10.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Vec<HttpRouteHeader>>,
    /// Listener port.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub port: Option<i64>,
    /// Fully qualified gRPC service name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service_name: Option<String>,
}

/// `grpcRoute.action` of a gateway route.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GrpcGatewayRouteAction {
    /// Rewrites applied before forwarding.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rewrite: Option<GrpcGatewayRouteRewrite>,
    /// The virtual service requests go to.
    pub target: GatewayRouteTarget,
}

/// `grpcRoute.action.rewrite`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GrpcGatewayRouteRewrite {
    /// Host rewrite.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hostname: Option<GatewayRouteHostnameRewrite>,
}

// === impl VirtualGatewayConnectionPool ===

impl VirtualGatewayConnectionPool {
    /// The same limits as a virtual node pool (for code shared by nodes and gateways).
    pub fn to_node_pool(&self) -> super::node::VirtualNodeConnectionPool {
        use super::node::VirtualNodeConnectionPool as P;
        match *self {
            VirtualGatewayConnectionPool::Http(p) => P::Http(p),
            VirtualGatewayConnectionPool::Http2(p) => P::Http2(p),
            VirtualGatewayConnectionPool::Grpc(p) => P::Grpc(p),
        }
    }
}

// === impl GatewayRoute ===

impl GatewayRoute {
    /// The target virtual service name (of whichever route kind is set).
    pub fn target_virtual_service(&self) -> Option<&str> {
        self.target()
            .map(|t| t.virtual_service.virtual_service_name.as_str())
    }

    /// The target of whichever route kind is set (`httpRoute`, `http2Route`, then `grpcRoute`).
    pub fn target(&self) -> Option<&GatewayRouteTarget> {
        let spec = &self.spec;
        if let Some(r) = spec.http_route.as_ref().or(spec.http2_route.as_ref()) {
            return Some(&r.action.target);
        }
        spec.grpc_route.as_ref().map(|r| &r.action.target)
    }
}
