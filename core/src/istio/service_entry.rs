//! `ServiceEntry` and `WorkloadEntry` (`networking.istio.io`): Istio's vocabulary for services
//! and workloads outside Kubernetes (reference istio-vm.md §1–§2).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::destination_rule::WorkloadSelector;
use crate::model::macros::str_enum;

str_enum! {
    /// `ServiceEntry.spec.resolution`.
    pub enum Resolution {
        /// Original destination (not served).
        None = "NONE",
        /// Endpoints are IP addresses.
        Static = "STATIC",
        /// Endpoints (or the host itself) are resolved by DNS, every address a host.
        Dns = "DNS",
        /// DNS, first address only (served like DNS).
        DnsRoundRobin = "DNS_ROUND_ROBIN",
        /// Per-request resolution (not served).
        DynamicDns = "DYNAMIC_DNS",
    }
}

str_enum! {
    /// `ServiceEntry.spec.location`.
    pub enum Location {
        /// Outside the mesh.
        MeshExternal = "MESH_EXTERNAL",
        /// Part of the mesh.
        MeshInternal = "MESH_INTERNAL",
    }
}

/// `ServiceEntry.spec`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ServiceEntrySpec {
    /// The service's host names (as clients write them in `Host`).
    #[serde(default)]
    pub hosts: Vec<String>,
    /// Virtual IPs (accepted; not in force).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub addresses: Option<Vec<String>>,
    /// The service's ports.
    #[serde(default)]
    pub ports: Vec<ServicePort>,
    /// Inside or outside the mesh.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<Location>,
    /// How endpoints are found; default NONE.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolution: Option<Resolution>,
    /// Inline endpoints.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoints: Option<Vec<WorkloadEntrySpec>>,
    /// WorkloadEntries selected by labels (instead of `endpoints`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workload_selector: Option<WorkloadSelector>,
    /// Namespaces the entry is visible in (accepted; every meshd sees every resource).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub export_to: Option<Vec<String>>,
    /// SANs (accepted; no TLS yet).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject_alt_names: Option<Vec<String>>,
}

/// `ports[]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ServicePort {
    /// The port clients call, 1–65535.
    pub number: i64,
    /// `HTTP`, `HTTP2`, `GRPC`, `TCP`, … (only HTTP is served).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<String>,
    /// Its name (a DNS-1123 label); WorkloadEntry `ports` keys refer to it.
    pub name: String,
    /// The port endpoints listen on; default `number`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_port: Option<i64>,
}

/// `WorkloadEntry.spec`, also the shape of a ServiceEntry's inline `endpoints[]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WorkloadEntrySpec {
    /// The workload's IP address or DNS name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    /// Service port name → the port the workload listens on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ports: Option<BTreeMap<String, i64>>,
    /// Labels (subsets and workload selectors match on them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<BTreeMap<String, String>>,
    /// Network (accepted; not in force).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<String>,
    /// Locality (accepted; not in force).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub locality: Option<String>,
    /// Load-balancing weight (accepted; not in force).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight: Option<i64>,
    /// Service account (accepted; no identity yet).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_account: Option<String>,
}
