//! The App Mesh resource model: resources, document shapes, validation.
//!
//! # What is here
//!
//! * Resource types with App Mesh's exact JSON names ([`VirtualNode`], [`VirtualGateway`],
//!   [`GatewayRoute`], [`VirtualRouter`], [`Route`], [`VirtualService`], [`Mesh`]), unions as
//!   one-key enums, enums with the exact strings. Unknown fields are errors.
//! * [`parse_document`]: CLI-input JSON, describe-output wrappers (`{"virtualNode": {...}}`) or
//!   an array of either; the kind comes from the name key, no `kind` field is needed.
//! * [`validate_resource`]: the ranges and rules of one resource (reference §3–§8).
//! * [`MeshSet`]: all resources of a config directory, whole-mesh rules (duplicates, references)
//!   and the lookups the daemon compiles its config from.
//! * Settings meshd does not implement yet: security settings (listener TLS `STRICT` or
//!   `PERMISSIVE`, a client policy that enforces TLS) are refused by [`validate_resource`] with
//!   "not supported yet"; every other one is accepted and named by [`not_in_force`].
//!
//! # How it works
//!
//! Parsing goes text → `serde_json::Value` → typed resource with `serde_path_to_error`, so every
//! type or unknown-field error carries its JSON path (relative to the resource). Validation then
//! walks the typed resource and reports *all* violations, each with a message that says what is
//! allowed. Serializing a resource back writes keys in App Mesh's order (alphabetical): struct
//! fields are declared in that order.
//!
//! Defaults are not written into resources; they are applied where the data plane reads them
//! (`HttpConnectionPool::max_pending_requests_or_default`, `HttpTimeout::per_request_or_default`,
//! `DnsServiceDiscovery::response_type_or_default`, …), so `describe` shows what the user wrote.
//!
//! This module does no I/O except [`read_config_dir`] and [`MeshSet::load_dir`], which read the
//! directory's files.

mod common;
mod document;
mod error;
mod gateway;
pub(crate) mod macros;
mod node;
mod not_in_force;
mod references;
mod resource;
mod router;
mod service;
mod set;
mod source;
mod unsupported;
mod validate;
mod validate_listener;
mod validate_route;

pub use common::*;
pub use document::{is_yaml, parse_document, parse_value, parse_yaml_document};
pub(crate) use error::polish_serde_message;
pub use error::{ConfigError, InvalidValue};
pub use gateway::*;
pub use node::*;
pub use not_in_force::{not_in_force, resource_not_in_force, NotInForce};
pub use resource::{Kind, Resource, ResourceKey};
pub use router::*;
pub use service::*;
pub use set::{is_resource_file_name, MeshSet};
pub use source::{
    parse_files, read_config_dir, Listing, Skipped, SourceFile, MAX_DIR_BYTES, MAX_FILE_BYTES,
};
pub use validate::validate_resource;

#[cfg(test)]
mod tests;
