//! `Resource` (any of the seven kinds), `Kind` and `ResourceKey`.

use std::fmt;
use std::str::FromStr;

use serde_json::Value;

use super::common::{ResourceMetadata, ResourceStatus};
use super::error::InvalidValue;
use super::gateway::{GatewayRoute, VirtualGateway};
use super::node::VirtualNode;
use super::router::{Route, VirtualRouter};
use super::service::{Mesh, VirtualService};
use crate::istio::IstioResource;

/// The kind of an App Mesh resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    /// A mesh.
    Mesh,
    /// A virtual node.
    VirtualNode,
    /// A virtual gateway.
    VirtualGateway,
    /// A gateway route (child of a virtual gateway).
    GatewayRoute,
    /// A virtual router.
    VirtualRouter,
    /// A route (child of a virtual router).
    Route,
    /// A virtual service.
    VirtualService,
    /// An Istio DestinationRule.
    DestinationRule,
    /// An Istio VirtualService.
    IstioVirtualService,
    /// An Istio ServiceEntry.
    ServiceEntry,
    /// An Istio WorkloadEntry.
    WorkloadEntry,
}

/// Any App Mesh resource.
#[derive(Debug, Clone, PartialEq)]
pub enum Resource {
    /// A mesh.
    Mesh(Mesh),
    /// A virtual node.
    VirtualNode(VirtualNode),
    /// A virtual gateway.
    VirtualGateway(VirtualGateway),
    /// A gateway route.
    GatewayRoute(GatewayRoute),
    /// A virtual router.
    VirtualRouter(VirtualRouter),
    /// A route.
    Route(Route),
    /// A virtual service.
    VirtualService(VirtualService),
    /// An Istio object (DestinationRule, VirtualService, ServiceEntry, WorkloadEntry).
    Istio(Box<IstioResource>),
}

/// What identifies a resource: kind, mesh, parent (router of a route, gateway of a gateway
/// route) and name. Two resources with the same key are the same resource.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ResourceKey {
    /// The kind.
    pub kind: Kind,
    /// The mesh (a mesh's own name for a mesh).
    pub mesh: String,
    /// Virtual router of a route, virtual gateway of a gateway route; `None` otherwise.
    pub parent: Option<String>,
    /// The resource's own name.
    pub name: String,
}

/// Runs `$body` on an App Mesh resource; `$istio` for an Istio object.
macro_rules! each {
    ($value:expr, $r:ident => $body:expr, istio $i:ident => $istio:expr) => {
        match $value {
            Resource::Istio($i) => $istio,
            Resource::Mesh($r) => $body,
            Resource::VirtualNode($r) => $body,
            Resource::VirtualGateway($r) => $body,
            Resource::GatewayRoute($r) => $body,
            Resource::VirtualRouter($r) => $body,
            Resource::Route($r) => $body,
            Resource::VirtualService($r) => $body,
        }
    };
}

// === impl Kind ===

impl Kind {
    /// All kinds, parents before children where it matters for display; App Mesh's first.
    pub const ALL: [Kind; 11] = [
        Kind::Mesh,
        Kind::VirtualNode,
        Kind::VirtualGateway,
        Kind::GatewayRoute,
        Kind::VirtualRouter,
        Kind::Route,
        Kind::VirtualService,
        Kind::DestinationRule,
        Kind::IstioVirtualService,
        Kind::ServiceEntry,
        Kind::WorkloadEntry,
    ];

    /// The App Mesh kinds.
    pub const APP_MESH: [Kind; 7] = [
        Kind::Mesh,
        Kind::VirtualNode,
        Kind::VirtualGateway,
        Kind::GatewayRoute,
        Kind::VirtualRouter,
        Kind::Route,
        Kind::VirtualService,
    ];

    /// Whether this is one of Istio's kinds.
    pub fn is_istio(self) -> bool {
        !Kind::APP_MESH.contains(&self)
    }

    /// Lower-case name: `mesh`, `virtualnode`, `virtualgateway`, `gatewayroute`,
    /// `virtualrouter`, `route`, `virtualservice`; Istio's `destinationrule`,
    /// `virtualservice.networking.istio.io` (kubectl's name, apart from App Mesh's),
    /// `serviceentry`, `workloadentry`.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::DestinationRule => "destinationrule",
            Kind::IstioVirtualService => "virtualservice.networking.istio.io",
            Kind::ServiceEntry => "serviceentry",
            Kind::WorkloadEntry => "workloadentry",
            Kind::Mesh => "mesh",
            Kind::VirtualNode => "virtualnode",
            Kind::VirtualGateway => "virtualgateway",
            Kind::GatewayRoute => "gatewayroute",
            Kind::VirtualRouter => "virtualrouter",
            Kind::Route => "route",
            Kind::VirtualService => "virtualservice",
        }
    }

    /// Short form users may type: `mesh`, `vn`, `vg`, `gr`, `vr`, `rt`, `vs`; Istio's `dr`,
    /// `vs`, `se`, `we` (`vs` names both virtual service kinds).
    pub fn short(self) -> &'static str {
        match self {
            Kind::DestinationRule => "dr",
            Kind::IstioVirtualService => "vs",
            Kind::ServiceEntry => "se",
            Kind::WorkloadEntry => "we",
            Kind::Mesh => "mesh",
            Kind::VirtualNode => "vn",
            Kind::VirtualGateway => "vg",
            Kind::GatewayRoute => "gr",
            Kind::VirtualRouter => "vr",
            Kind::Route => "rt",
            Kind::VirtualService => "vs",
        }
    }

    /// Key of the describe-output wrapper: `mesh`, `virtualNode`, … ; Istio's kind name
    /// (`DestinationRule`, …) for Istio kinds, which have no wrapper.
    pub fn wrapper_key(self) -> &'static str {
        match self {
            Kind::DestinationRule => "DestinationRule",
            Kind::IstioVirtualService => "VirtualService",
            Kind::ServiceEntry => "ServiceEntry",
            Kind::WorkloadEntry => "WorkloadEntry",
            Kind::Mesh => "mesh",
            Kind::VirtualNode => "virtualNode",
            Kind::VirtualGateway => "virtualGateway",
            Kind::GatewayRoute => "gatewayRoute",
            Kind::VirtualRouter => "virtualRouter",
            Kind::Route => "route",
            Kind::VirtualService => "virtualService",
        }
    }

    /// JSON key holding the resource's own name: `meshName`, `virtualNodeName`, … ;
    /// `metadata.name` for Istio kinds.
    pub fn name_key(self) -> &'static str {
        match self {
            Kind::DestinationRule
            | Kind::IstioVirtualService
            | Kind::ServiceEntry
            | Kind::WorkloadEntry => "metadata.name",
            Kind::Mesh => "meshName",
            Kind::VirtualNode => "virtualNodeName",
            Kind::VirtualGateway => "virtualGatewayName",
            Kind::GatewayRoute => "gatewayRouteName",
            Kind::VirtualRouter => "virtualRouterName",
            Kind::Route => "routeName",
            Kind::VirtualService => "virtualServiceName",
        }
    }

    /// The parent kind: `VirtualRouter` for routes, `VirtualGateway` for gateway routes.
    pub fn parent_kind(self) -> Option<Kind> {
        match self {
            Kind::Route => Some(Kind::VirtualRouter),
            Kind::GatewayRoute => Some(Kind::VirtualGateway),
            _ => None,
        }
    }

    /// The kind whose describe wrapper key is `key` (exact spelling).
    pub fn from_wrapper_key(key: &str) -> Option<Kind> {
        Kind::APP_MESH.into_iter().find(|k| k.wrapper_key() == key)
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Kind {
    type Err = InvalidValue;

    /// Accepts `virtualnode`, `virtual-node`, `virtual_node`, `VirtualNode`, `virtualnodes`,
    /// `vn` and the like for every kind; `rt` and `route(s)` for routes; `mesh(es)`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let norm: String = s
            .chars()
            .filter(|c| !matches!(c, '-' | '_' | ' '))
            .flat_map(char::to_lowercase)
            .collect();
        let kind = match norm.as_str() {
            "mesh" | "meshes" => Kind::Mesh,
            "virtualnode" | "virtualnodes" | "vn" | "vns" => Kind::VirtualNode,
            "virtualgateway" | "virtualgateways" | "vg" | "vgs" => Kind::VirtualGateway,
            "gatewayroute" | "gatewayroutes" | "gr" | "grs" => Kind::GatewayRoute,
            "virtualrouter" | "virtualrouters" | "vr" | "vrs" => Kind::VirtualRouter,
            "route" | "routes" | "rt" | "rts" => Kind::Route,
            "virtualservice"
            | "virtualservices"
            | "vs"
            | "virtualservice.appmesh.k8s.aws"
            | "virtualservices.appmesh.k8s.aws" => Kind::VirtualService,
            "destinationrule" | "destinationrules" | "dr" | "drs" => Kind::DestinationRule,
            "virtualservice.networking.istio.io"
            | "virtualservices.networking.istio.io"
            | "istiovirtualservice"
            | "istiovirtualservices" => Kind::IstioVirtualService,
            "serviceentry" | "serviceentries" | "se" => Kind::ServiceEntry,
            "workloadentry" | "workloadentries" | "we" => Kind::WorkloadEntry,
            _ => {
                let allowed: Vec<String> = Kind::ALL
                    .iter()
                    .map(|k| match k {
                        Kind::Mesh | Kind::IstioVirtualService => k.as_str().to_string(),
                        _ => format!("{} ({})", k.as_str(), k.short()),
                    })
                    .collect();
                return Err(InvalidValue(format!(
                    "unknown kind \"{s}\", expected one of {}",
                    allowed.join(", ")
                )));
            }
        };
        Ok(kind)
    }
}

// === impl ResourceKey ===

impl ResourceKey {
    /// Builds a key.
    pub fn new(kind: Kind, mesh: &str, parent: Option<&str>, name: &str) -> Self {
        ResourceKey {
            kind,
            mesh: mesh.to_string(),
            parent: parent.map(str::to_string),
            name: name.to_string(),
        }
    }

    /// `parent/name` for routes and gateway routes, `name` otherwise.
    pub fn qualified_name(&self) -> String {
        match &self.parent {
            Some(parent) => format!("{parent}/{}", self.name),
            None => self.name.clone(),
        }
    }
}

impl fmt::Display for ResourceKey {
    /// `<kind>/<qualified name>`, e.g. `virtualnode/green`, `route/color-paths/red`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.kind, self.qualified_name())
    }
}

// === impl Resource ===

impl Resource {
    /// The kind.
    pub fn kind(&self) -> Kind {
        match self {
            Resource::Mesh(_) => Kind::Mesh,
            Resource::VirtualNode(_) => Kind::VirtualNode,
            Resource::VirtualGateway(_) => Kind::VirtualGateway,
            Resource::GatewayRoute(_) => Kind::GatewayRoute,
            Resource::VirtualRouter(_) => Kind::VirtualRouter,
            Resource::Route(_) => Kind::Route,
            Resource::VirtualService(_) => Kind::VirtualService,
            Resource::Istio(r) => r.kind(),
        }
    }

    /// The mesh the resource belongs to (its own name for a mesh).
    /// For an Istio object: its namespace (`default` when unset).
    pub fn mesh(&self) -> &str {
        each!(self, r => &r.mesh_name, istio i => i.namespace())
    }

    /// The resource's own name.
    pub fn name(&self) -> &str {
        match self {
            Resource::Mesh(r) => &r.mesh_name,
            Resource::VirtualNode(r) => &r.virtual_node_name,
            Resource::VirtualGateway(r) => &r.virtual_gateway_name,
            Resource::GatewayRoute(r) => &r.gateway_route_name,
            Resource::VirtualRouter(r) => &r.virtual_router_name,
            Resource::Route(r) => &r.route_name,
            Resource::VirtualService(r) => &r.virtual_service_name,
            Resource::Istio(r) => &r.metadata.name,
        }
    }

    /// The virtual router of a route or the virtual gateway of a gateway route.
    pub fn parent(&self) -> Option<&str> {
        match self {
            Resource::Route(r) => Some(&r.virtual_router_name),
            Resource::GatewayRoute(r) => Some(&r.virtual_gateway_name),
            _ => None,
        }
    }

    /// The identifying key.
    pub fn key(&self) -> ResourceKey {
        ResourceKey::new(self.kind(), self.mesh(), self.parent(), self.name())
    }

    /// `<kind>/<qualified name>`, as used in `ConfigError::resource`.
    pub fn label(&self) -> String {
        self.key().to_string()
    }

    /// Describe-output metadata, when present.
    pub fn metadata(&self) -> Option<&ResourceMetadata> {
        each!(self, r => r.metadata.as_ref(), istio _i => None)
    }

    /// Replaces the describe-output metadata (the daemon fills it in).
    pub fn set_metadata(&mut self, metadata: Option<ResourceMetadata>) {
        each!(self, r => r.metadata = metadata, istio _i => { let _ = metadata; })
    }

    /// Describe-output status, when present.
    pub fn status(&self) -> Option<&ResourceStatus> {
        each!(self, r => r.status.as_ref(), istio _i => None)
    }

    /// Replaces the describe-output status.
    pub fn set_status(&mut self, status: Option<ResourceStatus>) {
        each!(self, r => r.status = status, istio _i => { let _ = status; })
    }

    /// Describe-output form, `{"virtualNode": {"meshName", "metadata"?, "spec", "status"?,
    /// "virtualNodeName"}}`, keys in App Mesh's (alphabetical) order. `clientToken`, `tags` and
    /// the top-level `meshOwner` are input-only and left out, as App Mesh does.
    /// An Istio object is its `{apiVersion, kind, metadata, spec}` form.
    pub fn to_describe_json(&self) -> Value {
        let mut copy = self.clone();
        match &mut copy {
            Resource::Istio(r) => return r.to_json(),
            Resource::Mesh(r) => {
                r.client_token = None;
                r.tags = None;
            }
            Resource::VirtualNode(r) => {
                strip_input(&mut r.client_token, &mut r.tags, &mut r.mesh_owner)
            }
            Resource::VirtualGateway(r) => {
                strip_input(&mut r.client_token, &mut r.tags, &mut r.mesh_owner)
            }
            Resource::GatewayRoute(r) => {
                strip_input(&mut r.client_token, &mut r.tags, &mut r.mesh_owner)
            }
            Resource::VirtualRouter(r) => {
                strip_input(&mut r.client_token, &mut r.tags, &mut r.mesh_owner)
            }
            Resource::Route(r) => strip_input(&mut r.client_token, &mut r.tags, &mut r.mesh_owner),
            Resource::VirtualService(r) => {
                strip_input(&mut r.client_token, &mut r.tags, &mut r.mesh_owner)
            }
        }
        let inner = copy.to_json();
        let mut wrapper = serde_json::Map::new();
        wrapper.insert(self.kind().wrapper_key().to_string(), inner);
        Value::Object(wrapper)
    }

    /// CLI-input form (`--cli-input-json`): every field except `metadata` and `status`, keys in
    /// alphabetical order, absent optionals left out.
    pub fn to_input_json(&self) -> Value {
        let mut copy = self.clone();
        copy.set_metadata(None);
        copy.set_status(None);
        copy.to_json()
    }

    /// Every field that is set, unwrapped, keys in alphabetical order.
    pub fn to_json(&self) -> Value {
        // Serializing these plain structs cannot fail (string keys only).
        each!(self, r => serde_json::to_value(r).unwrap_or(Value::Null), istio i => i.to_json())
    }
}

fn strip_input<T>(
    client_token: &mut Option<String>,
    tags: &mut Option<T>,
    mesh_owner: &mut Option<String>,
) {
    *client_token = None;
    *tags = None;
    *mesh_owner = None;
}

impl From<IstioResource> for Resource {
    fn from(r: IstioResource) -> Self {
        Resource::Istio(Box::new(r))
    }
}

impl From<Mesh> for Resource {
    fn from(r: Mesh) -> Self {
        Resource::Mesh(r)
    }
}

impl From<VirtualNode> for Resource {
    fn from(r: VirtualNode) -> Self {
        Resource::VirtualNode(r)
    }
}

impl From<VirtualGateway> for Resource {
    fn from(r: VirtualGateway) -> Self {
        Resource::VirtualGateway(r)
    }
}

impl From<GatewayRoute> for Resource {
    fn from(r: GatewayRoute) -> Self {
        Resource::GatewayRoute(r)
    }
}

impl From<VirtualRouter> for Resource {
    fn from(r: VirtualRouter) -> Self {
        Resource::VirtualRouter(r)
    }
}

impl From<Route> for Resource {
    fn from(r: Route) -> Self {
        Resource::Route(r)
    }
}

impl From<VirtualService> for Resource {
    fn from(r: VirtualService) -> Self {
        Resource::VirtualService(r)
    }
}
