//! Mesh (reference §2) and VirtualService (reference §8).

use serde::{Deserialize, Serialize};

use super::common::{ResourceMetadata, ResourceStatus, TagRef};
use super::macros::{str_enum, union};
use super::node::IpPreference;

/// A mesh: `create-mesh` input or the `mesh` member of describe output.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Mesh {
    /// Idempotency token.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_token: Option<String>,
    /// Name, 1–255 characters.
    pub mesh_name: String,
    /// Describe-output metadata.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metadata: Option<ResourceMetadata>,
    /// The mesh's specification; `{}` when absent.
    #[serde(default)]
    pub spec: MeshSpec,
    /// Describe-output status.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<ResourceStatus>,
    /// Tags (create only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tags: Option<Vec<TagRef>>,
}

/// `MeshSpec`; may be `{}`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MeshSpec {
    /// Egress policy; `DROP_ALL` when absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub egress_filter: Option<EgressFilter>,
    /// Mesh-wide service discovery preferences.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service_discovery: Option<MeshServiceDiscovery>,
}

str_enum! {
    /// `egressFilter.type`.
    pub enum EgressFilterType {
        /// Egress to any destination.
        AllowAll = "ALLOW_ALL",
        /// Egress only to mesh resources (and `*.amazonaws.com`); the default.
        DropAll = "DROP_ALL",
    }
}

/// `spec.egressFilter`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EgressFilter {
    /// `ALLOW_ALL` or `DROP_ALL`.
    pub r#type: EgressFilterType,
}

/// `spec.serviceDiscovery` of a mesh.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MeshServiceDiscovery {
    /// Address family preference for every node that does not set its own.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ip_preference: Option<IpPreference>,
}

/// A virtual service: `create-virtual-service` input or the `virtualService` member of describe
/// output.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct VirtualService {
    /// Idempotency token.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_token: Option<String>,
    /// Mesh the service belongs to.
    pub mesh_name: String,
    /// Account owning the mesh when shared.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mesh_owner: Option<String>,
    /// Describe-output metadata.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metadata: Option<ResourceMetadata>,
    /// The service's specification.
    pub spec: VirtualServiceSpec,
    /// Describe-output status.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<ResourceStatus>,
    /// Tags (create only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tags: Option<Vec<TagRef>>,
    /// Name, normally a DNS name, e.g. `color.demo.svc.cluster.local`.
    pub virtual_service_name: String,
}

/// `VirtualServiceSpec`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct VirtualServiceSpec {
    /// Who serves the service; a service without provider has nowhere to send traffic.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub provider: Option<VirtualServiceProvider>,
}

/// `provider.virtualNode`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct VirtualNodeServiceProvider {
    /// The providing virtual node; must exist in the mesh.
    pub virtual_node_name: String,
}

/// `provider.virtualRouter`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct VirtualRouterServiceProvider {
    /// The providing virtual router; must exist in the mesh.
    pub virtual_router_name: String,
}

union! {
    /// `spec.provider`: `virtualNode` | `virtualRouter`.
    pub enum VirtualServiceProvider {
        /// Served directly by one virtual node.
        VirtualNode(VirtualNodeServiceProvider) = "virtualNode",
        /// Served through a virtual router's routes.
        VirtualRouter(VirtualRouterServiceProvider) = "virtualRouter",
    }
}

// === impl Mesh ===

impl Mesh {
    /// `egressFilter.type`, or `DROP_ALL` when absent.
    pub fn egress_filter_or_default(&self) -> EgressFilterType {
        self.spec
            .egress_filter
            .map_or(EgressFilterType::DropAll, |f| f.r#type)
    }
}
