//! Istio's traffic resources for machines without Kubernetes: `DestinationRule`,
//! `VirtualService`, `ServiceEntry` and `WorkloadEntry` (`networking.istio.io` v1, v1beta1,
//! v1alpha3), read from YAML or JSON with Istio's field names, defaults and duration strings.
//!
//! # What is here
//!
//! * [`IstioResource`]: one object (`apiVersion`, `kind`, `metadata`, `spec`) with its spec typed
//!   by kind ([`IstioSpec`]). Unknown fields are errors naming their path, as for App Mesh.
//! * [`parse_object`]: a JSON value → an [`IstioResource`], with the path of any error.
//! * [`yaml_documents`]: a YAML file's documents (`---` separated) as JSON values; a syntax
//!   error, a tab in an indent or a duplicate key is an error with line and column.
//!
//! An [`IstioResource`] is a [`Resource`](crate::model::Resource) like the App Mesh kinds: it
//! lives in the config directory, goes through `meshctl apply/get/describe/delete`, and the
//! compiled runtime maps it onto the same clusters, breakers, retries and ejection (see
//! `runtime::istio`). Its namespace (default `default`) takes the place of the App Mesh mesh
//! name in its [`ResourceKey`](crate::model::ResourceKey).

mod destination_rule;
mod document;
mod duration;
mod not_in_force;
mod references;
mod service_entry;
mod validate;
mod validate_se;
mod validate_vs;
mod virtual_service;

pub use destination_rule::*;
pub use document::{
    parse_object, to_yaml, yaml_documents, IstioResource, IstioSpec, ObjectMeta, API_GROUP,
};
pub use duration::IstioDuration;
pub(crate) use references::warnings;
pub use service_entry::*;
pub(crate) use validate::{check_references, check_resource, not_in_force};
pub use virtual_service::*;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod validate_tests;
