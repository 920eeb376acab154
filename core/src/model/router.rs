//! VirtualRouter (reference §6) and Route (reference §7).

use serde::{Deserialize, Serialize};

use super::common::{
    Duration, GrpcRouteMetadata, GrpcTimeout, HttpMethod, HttpPathMatch, HttpQueryParameter,
    HttpRouteHeader, HttpTimeout, PortMapping, PortProtocol, ResourceMetadata, ResourceStatus,
    TagRef, TcpTimeout,
};
use super::macros::str_enum;

/// A virtual router: `create-virtual-router` input or the `virtualRouter` member of describe
/// output.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct VirtualRouter {
    /// Idempotency token.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_token: Option<String>,
    /// Mesh the router belongs to.
    pub mesh_name: String,
    /// Account owning the mesh when shared.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mesh_owner: Option<String>,
    /// Describe-output metadata.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metadata: Option<ResourceMetadata>,
    /// The router's specification.
    pub spec: VirtualRouterSpec,
    /// Describe-output status.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<ResourceStatus>,
    /// Tags (create only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tags: Option<Vec<TagRef>>,
    /// Name, 1–255 characters.
    pub virtual_router_name: String,
}

/// `VirtualRouterSpec`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct VirtualRouterSpec {
    /// Listeners; a route's protocol must be one of theirs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listeners: Option<Vec<VirtualRouterListener>>,
}

/// A virtual router listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct VirtualRouterListener {
    /// Port and protocol.
    pub port_mapping: PortMapping,
}

/// A route: `create-route` input or the `route` member of describe output.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Route {
    /// Idempotency token.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_token: Option<String>,
    /// Mesh the route belongs to.
    pub mesh_name: String,
    /// Account owning the mesh when shared.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mesh_owner: Option<String>,
    /// Describe-output metadata.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metadata: Option<ResourceMetadata>,
    /// Name, 1–255 characters, unique within the router.
    pub route_name: String,
    /// The route's specification.
    pub spec: RouteSpec,
    /// Describe-output status.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<ResourceStatus>,
    /// Tags (create only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tags: Option<Vec<TagRef>>,
    /// The virtual router the route belongs to.
    pub virtual_router_name: String,
}

/// `RouteSpec`: exactly one of `grpcRoute`, `http2Route`, `httpRoute`, `tcpRoute`. Each is boxed:
/// a route holds one of four large shapes, and a mesh may hold tens of thousands of routes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RouteSpec {
    /// gRPC route.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub grpc_route: Option<Box<GrpcRoute>>,
    /// HTTP/2 route.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub http2_route: Option<Box<HttpRoute>>,
    /// HTTP route.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub http_route: Option<Box<HttpRoute>>,
    /// 0–1000, 0 is the highest priority.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub priority: Option<i64>,
    /// TCP route.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tcp_route: Option<Box<TcpRoute>>,
}

/// `weightedTargets[]`: virtual node 1–255 characters, weight 0–100 (relative).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WeightedTarget {
    /// Listener port of the target node, when it has several.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub port: Option<i64>,
    /// The target virtual node; must exist in the mesh.
    pub virtual_node: String,
    /// Relative weight, 0–100.
    pub weight: i64,
}

/// `action` of every route kind: 1–10 weighted targets.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RouteAction {
    /// Targets with relative weights.
    pub weighted_targets: Vec<WeightedTarget>,
}

str_enum! {
    /// `match.scheme` (HTTP/2 routes only).
    pub enum HttpScheme {
        /// http
        Http = "http",
        /// https
        Https = "https",
    }
}

/// `httpRoute.match` / `http2Route.match`: exactly one of `prefix`, `path`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HttpRouteMatch {
    /// Header criteria, 1–10.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub headers: Option<Vec<HttpRouteHeader>>,
    /// Method criterion.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub method: Option<HttpMethod>,
    /// Path criterion.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<HttpPathMatch>,
    /// Router listener port.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub port: Option<i64>,
    /// Path prefix; starts with `/`; `/` matches everything.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
    /// Query parameter criteria, 1–10.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub query_parameters: Option<Vec<HttpQueryParameter>>,
    /// Scheme criterion (HTTP/2 routes only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scheme: Option<HttpScheme>,
}

str_enum! {
    /// `httpRetryEvents[]`.
    pub enum HttpRetryEvent {
        /// 500, 501, 502, 503, 504, 505, 506, 507, 508, 510, 511 (and resets).
        ServerError = "server-error",
        /// 502, 503, 504 (and resets).
        GatewayError = "gateway-error",
        /// 409.
        ClientError = "client-error",
        /// Refused stream.
        StreamError = "stream-error",
    }
}

str_enum! {
    /// `tcpRetryEvents[]`.
    pub enum TcpRetryEvent {
        /// Connection failure.
        ConnectionError = "connection-error",
    }
}

str_enum! {
    /// `grpcRetryEvents[]`.
    pub enum GrpcRetryEvent {
        /// CANCELLED
        Cancelled = "cancelled",
        /// DEADLINE_EXCEEDED
        DeadlineExceeded = "deadline-exceeded",
        /// INTERNAL
        Internal = "internal",
        /// RESOURCE_EXHAUSTED
        ResourceExhausted = "resource-exhausted",
        /// UNAVAILABLE
        Unavailable = "unavailable",
    }
}

/// `retryPolicy` of an HTTP route: `maxRetries`, `perRetryTimeout` and at least one event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HttpRetryPolicy {
    /// HTTP events that trigger a retry, 1–25.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub http_retry_events: Option<Vec<HttpRetryEvent>>,
    /// Maximum retries, ≥ 0.
    pub max_retries: i64,
    /// Timeout of each attempt.
    pub per_retry_timeout: Duration,
    /// Exactly `["connection-error"]` when present.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tcp_retry_events: Option<Vec<TcpRetryEvent>>,
}

/// `httpRoute` / `http2Route` of a route.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HttpRoute {
    /// Where matching requests go.
    pub action: RouteAction,
    /// What requests match.
    pub r#match: HttpRouteMatch,
    /// Retries.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_policy: Option<HttpRetryPolicy>,
    /// Timeouts (default per request 15 s, idle 300 s).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeout: Option<HttpTimeout>,
}

/// `grpcRoute.match`: `methodName` requires `serviceName`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GrpcRouteMatch {
    /// Metadata criteria, 1–10.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Vec<GrpcRouteMetadata>>,
    /// Method name, 1–50 characters.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub method_name: Option<String>,
    /// Router listener port.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub port: Option<i64>,
    /// Fully qualified service name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service_name: Option<String>,
}

/// `retryPolicy` of a gRPC route.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GrpcRetryPolicy {
    /// gRPC status events, 1–5.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub grpc_retry_events: Option<Vec<GrpcRetryEvent>>,
    /// HTTP events, 1–25.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub http_retry_events: Option<Vec<HttpRetryEvent>>,
    /// Maximum retries, ≥ 0.
    pub max_retries: i64,
    /// Timeout of each attempt.
    pub per_retry_timeout: Duration,
    /// Exactly `["connection-error"]` when present.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tcp_retry_events: Option<Vec<TcpRetryEvent>>,
}

/// `grpcRoute` of a route.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GrpcRoute {
    /// Where matching requests go.
    pub action: RouteAction,
    /// What requests match.
    pub r#match: GrpcRouteMatch,
    /// Retries.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_policy: Option<GrpcRetryPolicy>,
    /// Timeouts.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeout: Option<GrpcTimeout>,
}

/// `tcpRoute.match`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TcpRouteMatch {
    /// Router listener port.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub port: Option<i64>,
}

/// `tcpRoute` of a route.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TcpRoute {
    /// Where connections go.
    pub action: RouteAction,
    /// What connections match.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub r#match: Option<TcpRouteMatch>,
    /// Idle timeout.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeout: Option<TcpTimeout>,
}

// === impl VirtualRouter ===

impl VirtualRouter {
    /// The listeners (empty when absent).
    pub fn listeners(&self) -> &[VirtualRouterListener] {
        self.spec.listeners.as_deref().unwrap_or(&[])
    }
}

// === impl Route ===

impl Route {
    /// The protocol of whichever route kind is set (`None` when none is, which validation
    /// rejects).
    pub fn protocol(&self) -> Option<PortProtocol> {
        let spec = &self.spec;
        if spec.http_route.is_some() {
            Some(PortProtocol::Http)
        } else if spec.http2_route.is_some() {
            Some(PortProtocol::Http2)
        } else if spec.grpc_route.is_some() {
            Some(PortProtocol::Grpc)
        } else if spec.tcp_route.is_some() {
            Some(PortProtocol::Tcp)
        } else {
            None
        }
    }

    /// The action of whichever route kind is set.
    pub fn action(&self) -> Option<&RouteAction> {
        let spec = &self.spec;
        if let Some(r) = spec.http_route.as_ref().or(spec.http2_route.as_ref()) {
            return Some(&r.action);
        }
        if let Some(r) = &spec.grpc_route {
            return Some(&r.action);
        }
        spec.tcp_route.as_ref().map(|r| &r.action)
    }

    /// The weighted targets of whichever route kind is set (empty when none is).
    pub fn weighted_targets(&self) -> &[WeightedTarget] {
        self.action().map_or(&[], |a| a.weighted_targets.as_slice())
    }

    /// The JSON key of the route kind that is set, e.g. `httpRoute`.
    pub fn route_key(&self) -> Option<&'static str> {
        self.protocol().map(|p| match p {
            PortProtocol::Http => "httpRoute",
            PortProtocol::Http2 => "http2Route",
            PortProtocol::Grpc => "grpcRoute",
            PortProtocol::Tcp => "tcpRoute",
        })
    }
}
