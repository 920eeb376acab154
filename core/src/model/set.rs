//! `MeshSet`: every resource of a config directory with the file it came from, whole-mesh
//! validation (duplicates, references) and the lookups the daemon compiles config from.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::error::ConfigError;
use super::gateway::{GatewayRoute, VirtualGateway};
use super::node::VirtualNode;
use super::resource::{Kind, Resource, ResourceKey};
use super::router::{Route, VirtualRouter};
use super::service::{Mesh, VirtualService, VirtualServiceProvider};
use super::validate::validate_resource;

/// A set of resources, each with the file it came from.
///
/// Construction (`load_dir`, `from_resources`) guarantees every document parsed and every
/// resource passed its own rules (`validate_resource`). Rules between resources (duplicates,
/// references) are reported by [`MeshSet::validate`]; a set is ready for the data plane when that
/// is empty — [`MeshSet::load_dir_validated`] does both steps.
///
/// Iteration order is deterministic: by kind (`Kind` order), mesh, parent, name, then file.
#[derive(Debug, Clone, Default)]
pub struct MeshSet {
    entries: Vec<(PathBuf, Resource)>,
    /// First entry of every key.
    index: BTreeMap<ResourceKey, usize>,
}

/// Whether a directory entry name is a resource file: `*.json`, `*.yaml` or `*.yml`, not
/// hidden, not an editor temp/backup file.
pub fn is_resource_file_name(name: &str) -> bool {
    (name.ends_with(".json") || name.ends_with(".yaml") || name.ends_with(".yml"))
        && !name.starts_with('.')
        && !name.starts_with('#')
        && !name.ends_with('~')
        && !name.ends_with(".swp")
        && !name.ends_with(".tmp")
}

// === impl MeshSet ===

impl MeshSet {
    /// Reads every resource file of `dir` ([`read_config_dir`](super::read_config_dir): see it
    /// for names, size limits and what is skipped) and builds the set. A missing or unreadable
    /// directory, or one without resource files, is an error naming the directory. All read,
    /// parse and per-resource errors of all files are returned together.
    pub fn load_dir(dir: &Path) -> Result<MeshSet, Vec<ConfigError>> {
        let dir_error = |message: String| vec![ConfigError::new(dir, None, "", message)];
        let listing = super::source::read_config_dir(dir)
            .map_err(|e| dir_error(format!("cannot read config directory: {e}")))?;
        if !listing.errors.is_empty() {
            return Err(listing.errors);
        }
        if listing.files.is_empty() {
            return Err(dir_error(
                "no resource files (*.json, *.yaml, *.yml) in the config directory".to_string(),
            ));
        }
        MeshSet::from_resources(super::source::parse_files(&listing.files)?)
    }

    /// [`MeshSet::load_dir`] followed by [`MeshSet::validate`]: `Ok` only for a set with no
    /// problem at all.
    pub fn load_dir_validated(dir: &Path) -> Result<MeshSet, Vec<ConfigError>> {
        let set = MeshSet::load_dir(dir)?;
        let errors = set.validate();
        if errors.is_empty() {
            Ok(set)
        } else {
            Err(errors)
        }
    }

    /// Builds a set from resources and their files, checking each resource on its own. Duplicate
    /// keys are kept (the first in iteration order wins lookups) and reported by `validate`.
    pub fn from_resources(
        resources: Vec<(PathBuf, Resource)>,
    ) -> Result<MeshSet, Vec<ConfigError>> {
        let errors: Vec<ConfigError> = resources
            .iter()
            .flat_map(|(file, r)| validate_resource(file, r))
            .collect();
        if !errors.is_empty() {
            return Err(errors);
        }
        let mut entries = resources;
        entries.sort_by(|(fa, a), (fb, b)| a.key().cmp(&b.key()).then_with(|| fa.cmp(fb)));
        let mut index = BTreeMap::new();
        for (i, (_, r)) in entries.iter().enumerate() {
            index.entry(r.key()).or_insert(i);
        }
        Ok(MeshSet { entries, index })
    }

    /// [`MeshSet::from_resources`] followed by [`MeshSet::validate`].
    pub fn from_resources_validated(
        resources: Vec<(PathBuf, Resource)>,
    ) -> Result<MeshSet, Vec<ConfigError>> {
        let set = MeshSet::from_resources(resources)?;
        let errors = set.validate();
        if errors.is_empty() {
            Ok(set)
        } else {
            Err(errors)
        }
    }

    /// Whole-mesh rules: no resource defined twice; every reference resolves (the resource's
    /// mesh, a route's virtual router and weighted-target virtual nodes, a virtual service's
    /// provider, a gateway route's gateway and target virtual service, a node's backends);
    /// ports and protocols named in routes exist on the listeners they refer to. Each error names
    /// the referring file, resource and JSON path.
    pub fn validate(&self) -> Vec<ConfigError> {
        let mut errors = Vec::new();
        self.check_duplicates(&mut errors);
        for (file, resource) in &self.entries {
            let mut found = Vec::new();
            super::references::check(self, resource, &mut found);
            let label = resource.label();
            errors.extend(
                found
                    .into_iter()
                    .map(|(path, msg)| ConfigError::new(file, Some(label.clone()), path, msg)),
            );
        }
        errors
    }

    /// Problems that do not stop the set from loading, for meshd's log and meshctl's stderr:
    /// an Istio DestinationRule or VirtualService for a host that no ServiceEntry (and no App
    /// Mesh virtual node's DNS name) provides. Callers show them as warnings (exit 0).
    pub fn warnings(&self) -> Vec<ConfigError> {
        crate::istio::warnings(self)
    }

    fn check_duplicates(&self, errors: &mut Vec<ConfigError>) {
        for (i, (file, resource)) in self.entries.iter().enumerate() {
            let key = resource.key();
            let Some(&first) = self.index.get(&key) else {
                continue;
            };
            if first == i {
                continue;
            }
            let first_file = &self.entries[first].0;
            let where_ = if first_file == file {
                "earlier in this file".to_string()
            } else {
                format!("in {}", first_file.display())
            };
            errors.push(ConfigError::new(
                file,
                Some(resource.label()),
                resource.kind().name_key(),
                format!(
                    "{} \"{}\" in mesh \"{}\" is defined twice; it is also defined {where_}",
                    kind_words(key.kind),
                    key.qualified_name(),
                    key.mesh
                ),
            ));
        }
    }

    /// Every resource (duplicates included), in iteration order.
    pub fn resources(&self) -> impl Iterator<Item = &Resource> {
        self.entries.iter().map(|(_, r)| r)
    }

    /// Every resource with its file, in iteration order.
    pub fn entries(&self) -> impl Iterator<Item = (&Path, &Resource)> {
        self.entries.iter().map(|(f, r)| (f.as_path(), r))
    }

    /// The resources and files, e.g. to build a changed set with `from_resources`.
    pub fn to_entries(&self) -> Vec<(PathBuf, Resource)> {
        self.entries.clone()
    }

    /// Number of resources.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the set has no resources.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The resource with exactly this key.
    pub fn get_key(&self, key: &ResourceKey) -> Option<&Resource> {
        self.index.get(key).map(|&i| &self.entries[i].1)
    }

    /// The resource of `kind` named `name` in `mesh`. For routes and gateway routes `name` is
    /// `<parent>/<name>`, or a bare name when exactly one route of the mesh has it.
    pub fn get(&self, kind: Kind, mesh: &str, name: &str) -> Option<&Resource> {
        self.find(kind, mesh, name).map(|i| &self.entries[i].1)
    }

    /// The file the resource named like in [`MeshSet::get`] came from.
    pub fn file_of(&self, kind: Kind, mesh: &str, name: &str) -> Option<&Path> {
        self.find(kind, mesh, name)
            .map(|i| self.entries[i].0.as_path())
    }

    fn find(&self, kind: Kind, mesh: &str, name: &str) -> Option<usize> {
        if kind.parent_kind().is_none() {
            return self
                .index
                .get(&ResourceKey::new(kind, mesh, None, name))
                .copied();
        }
        if let Some((parent, child)) = name.split_once('/') {
            return self
                .index
                .get(&ResourceKey::new(kind, mesh, Some(parent), child))
                .copied();
        }
        let mut matches = self
            .index
            .iter()
            .filter(|(k, _)| k.kind == kind && k.mesh == mesh && k.name == name)
            .map(|(_, &i)| i);
        match (matches.next(), matches.next()) {
            (Some(i), None) => Some(i),
            _ => None,
        }
    }

    /// Every mesh.
    pub fn meshes(&self) -> impl Iterator<Item = &Mesh> {
        self.resources().filter_map(|r| match r {
            Resource::Mesh(m) => Some(m),
            _ => None,
        })
    }

    /// Every virtual node, of every mesh.
    pub fn virtual_nodes(&self) -> impl Iterator<Item = &VirtualNode> {
        self.resources().filter_map(|r| match r {
            Resource::VirtualNode(v) => Some(v),
            _ => None,
        })
    }

    /// Every virtual gateway, of every mesh.
    pub fn virtual_gateways(&self) -> impl Iterator<Item = &VirtualGateway> {
        self.resources().filter_map(|r| match r {
            Resource::VirtualGateway(v) => Some(v),
            _ => None,
        })
    }

    /// Every virtual router, of every mesh.
    pub fn virtual_routers(&self) -> impl Iterator<Item = &VirtualRouter> {
        self.resources().filter_map(|r| match r {
            Resource::VirtualRouter(v) => Some(v),
            _ => None,
        })
    }

    /// Every virtual service, of every mesh.
    pub fn virtual_services(&self) -> impl Iterator<Item = &VirtualService> {
        self.resources().filter_map(|r| match r {
            Resource::VirtualService(v) => Some(v),
            _ => None,
        })
    }

    /// The mesh named `name`.
    pub fn mesh(&self, name: &str) -> Option<&Mesh> {
        match self.get(Kind::Mesh, name, name) {
            Some(Resource::Mesh(m)) => Some(m),
            _ => None,
        }
    }

    /// The virtual node `name` of `mesh`.
    pub fn virtual_node(&self, mesh: &str, name: &str) -> Option<&VirtualNode> {
        match self.get(Kind::VirtualNode, mesh, name) {
            Some(Resource::VirtualNode(v)) => Some(v),
            _ => None,
        }
    }

    /// The virtual gateway `name` of `mesh`.
    pub fn virtual_gateway(&self, mesh: &str, name: &str) -> Option<&VirtualGateway> {
        match self.get(Kind::VirtualGateway, mesh, name) {
            Some(Resource::VirtualGateway(v)) => Some(v),
            _ => None,
        }
    }

    /// The virtual router `name` of `mesh`.
    pub fn virtual_router(&self, mesh: &str, name: &str) -> Option<&VirtualRouter> {
        match self.get(Kind::VirtualRouter, mesh, name) {
            Some(Resource::VirtualRouter(v)) => Some(v),
            _ => None,
        }
    }

    /// The virtual service `name` of `mesh`.
    pub fn virtual_service(&self, mesh: &str, name: &str) -> Option<&VirtualService> {
        match self.get(Kind::VirtualService, mesh, name) {
            Some(Resource::VirtualService(v)) => Some(v),
            _ => None,
        }
    }

    /// The routes of virtual router `router` in `mesh`, sorted by name (first of duplicates).
    pub fn routes(&self, mesh: &str, router: &str) -> Vec<&Route> {
        self.index
            .iter()
            .filter(|(k, _)| {
                k.kind == Kind::Route && k.mesh == mesh && k.parent.as_deref() == Some(router)
            })
            .filter_map(|(_, &i)| match &self.entries[i].1 {
                Resource::Route(r) => Some(r),
                _ => None,
            })
            .collect()
    }

    /// The gateway routes of virtual gateway `gateway` in `mesh`, sorted by name.
    pub fn gateway_routes(&self, mesh: &str, gateway: &str) -> Vec<&GatewayRoute> {
        self.index
            .iter()
            .filter(|(k, _)| {
                k.kind == Kind::GatewayRoute
                    && k.mesh == mesh
                    && k.parent.as_deref() == Some(gateway)
            })
            .filter_map(|(_, &i)| match &self.entries[i].1 {
                Resource::GatewayRoute(r) => Some(r),
                _ => None,
            })
            .collect()
    }

    /// Who refers to the resource (named like in [`MeshSet::get`]): `(kind, qualified name)`
    /// pairs, sorted, for refusing a delete (App Mesh `ResourceInUseException`). A mesh is
    /// referred to by everything in it; a virtual router and a virtual gateway by their routes;
    /// a virtual node by routes targeting it and services it provides; a virtual service by
    /// nodes using it as a backend and gateway routes targeting it.
    pub fn references_to(&self, kind: Kind, mesh: &str, name: &str) -> Vec<(Kind, String)> {
        let name = match self.get(kind, mesh, name) {
            Some(r) => r.name().to_string(),
            None => name.to_string(),
        };
        let mut refs: Vec<(Kind, String)> = self
            .resources()
            .filter(|r| r.mesh() == mesh && r.kind() != Kind::Mesh)
            .filter(|r| super::references::refers_to(r, kind, &name))
            .map(|r| (r.kind(), r.key().qualified_name()))
            .collect();
        refs.sort();
        refs.dedup();
        refs
    }
}

/// "virtual node", "gateway route", … for messages.
pub(crate) fn kind_words(kind: Kind) -> &'static str {
    match kind {
        Kind::Mesh => "mesh",
        Kind::VirtualNode => "virtual node",
        Kind::VirtualGateway => "virtual gateway",
        Kind::GatewayRoute => "gateway route",
        Kind::VirtualRouter => "virtual router",
        Kind::Route => "route",
        Kind::VirtualService => "virtual service",
        Kind::DestinationRule => "DestinationRule",
        Kind::IstioVirtualService => "Istio VirtualService",
        Kind::ServiceEntry => "ServiceEntry",
        Kind::WorkloadEntry => "WorkloadEntry",
    }
}

/// Whether a virtual service provider names `kind`/`name`.
pub(crate) fn provider_is(provider: &VirtualServiceProvider, kind: Kind, name: &str) -> bool {
    match provider {
        VirtualServiceProvider::VirtualNode(n) => {
            kind == Kind::VirtualNode && n.virtual_node_name == name
        }
        VirtualServiceProvider::VirtualRouter(r) => {
            kind == Kind::VirtualRouter && r.virtual_router_name == name
        }
    }
}
