//! The config directory as the control API changes it: the plans behind apply and delete
//! (App Mesh metadata, ARN, uid, version, timestamps: [`super::metadata`]).
//!
//! Every change is computed first as a list of [`FileChange`]s (new content, old content); only a
//! complete, valid plan is put in force and then written, all files at once under the journal
//! ([`super::journal`]), so a crash at any moment leaves the whole old set or the whole new set.
//!
//! meshd never writes to a file on its own: a resource written by hand without metadata gets a
//! deterministic one in memory ([`derive_metadata`]); files are written only by an apply or a
//! delete that changes them.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use super::metadata::has_complete_metadata;
pub use super::metadata::{
    arn, complete_metadata, derive_metadata, derived_uid, now, timestamp, ACCOUNT, REGION,
};
use mesh_core::istio::{to_yaml, yaml_documents};
use mesh_core::model::{
    is_yaml, ConfigError, Kind, MeshSet, Resource, ResourceKey, ResourceStatus, StatusCode,
};

/// What apply did (or would do) to one resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// It did not exist.
    Created,
    /// It existed with a different content.
    Configured,
    /// It existed with the same content.
    Unchanged,
}

impl Action {
    /// `created`, `configured`, `unchanged`.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Created => "created",
            Action::Configured => "configured",
            Action::Unchanged => "unchanged",
        }
    }
}

/// The new content of one file: `None` removes it. `old` is what to restore on rollback.
#[derive(Debug, Clone)]
pub struct FileChange {
    /// The file.
    pub path: PathBuf,
    /// Its new bytes, or `None` to remove it.
    pub new: Option<Vec<u8>>,
    /// Its bytes before the change, or `None` when it did not exist.
    pub old: Option<Vec<u8>>,
}

/// The outcome for one resource of an apply.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// The resource as stored (with metadata).
    pub resource: Resource,
    /// What happened.
    pub action: Action,
    /// The file it lives in.
    pub file: PathBuf,
    /// What does not refuse the apply but the user should know ([`MeshSet::warnings`] of the
    /// resource), files named as the user gave them.
    pub warnings: Vec<ConfigError>,
}

/// Why a control call was refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Invalid input: each error names file, resource, JSON path and what is allowed.
    #[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    Invalid(Vec<ConfigError>),
    /// No such resource.
    #[error("{0}")]
    NotFound(String),
    /// The resource is still referred to.
    #[error("{0}")]
    InUse(String),
    /// The request is ambiguous or malformed.
    #[error("{0}")]
    BadRequest(String),
    /// Reading or writing the config directory failed.
    #[error("{0}")]
    Io(String),
}

/// What `describe` shows of a resource apart from metadata and status: equal values mean an
/// apply would change nothing.
fn content(r: &Resource) -> serde_json::Value {
    let mut copy = r.clone();
    copy.set_metadata(None);
    copy.set_status(None);
    copy.to_describe_json()
}

// === files ===

/// The bytes meshd writes for a `*.yaml`/`*.yml` file holding `resources`: one YAML document
/// each (`---` separated), in the shapes [`render_file`] gives them. A hand-written file's
/// comments and layout are not kept; its resources, order and values are.
pub fn render_yaml_file(resources: &[&Resource], flat: &BTreeSet<ResourceKey>) -> Vec<u8> {
    let values: Vec<serde_json::Value> = resources
        .iter()
        .map(|r| {
            if flat.contains(&r.key()) {
                r.to_json()
            } else {
                r.to_describe_json()
            }
        })
        .collect();
    to_yaml(&values).into_bytes()
}

/// The bytes meshd writes for a file holding `resources`: one object, or an array. Each
/// resource keeps the shape it had in the file (`flat` holds the keys written as CLI input, with
/// `metadata` and `status` next to `spec`); others, and new ones, are describe output.
pub fn render_file(resources: &[&Resource], flat: &BTreeSet<ResourceKey>) -> Vec<u8> {
    let one = |r: &Resource| {
        if flat.contains(&r.key()) {
            r.to_json()
        } else {
            r.to_describe_json()
        }
    };
    let value = match resources {
        [r] => one(r),
        many => serde_json::Value::Array(many.iter().map(|r| one(r)).collect()),
    };
    let mut text = serde_json::to_string_pretty(&value).unwrap_or_default();
    text.push('\n');
    text.into_bytes()
}

/// A file's resources in file order, and the keys written flat (CLI input, not a describe
/// wrapper). Empty when the file is missing or does not parse.
fn read_file(file: &Path, bytes: &[u8]) -> (Vec<Resource>, BTreeSet<ResourceKey>) {
    let Ok(text) = std::str::from_utf8(bytes) else {
        return Default::default();
    };
    let Ok(resources) = mesh_core::model::parse_document(file, text) else {
        return Default::default();
    };
    let items = if is_yaml(file) {
        yaml_documents(text)
            .unwrap_or_default()
            .into_iter()
            .flat_map(|v| match v {
                serde_json::Value::Array(items) => items,
                other => vec![other],
            })
            .collect()
    } else {
        match serde_json::from_str(text).unwrap_or_default() {
            serde_json::Value::Array(items) => items,
            other => vec![other],
        }
    };
    let flat = resources
        .iter()
        .zip(items.iter())
        .filter(|(_, v)| {
            let wrapped = v.as_object().is_some_and(|o| {
                o.len() == 1 && o.keys().all(|k| Kind::from_wrapper_key(k).is_some())
            });
            !wrapped
        })
        .map(|(r, _)| r.key())
        .collect();
    (resources, flat)
}

/// Whether a directory entry exists at `path` (a dangling symlink counts: it is the user's).
fn occupied(path: &Path) -> bool {
    std::fs::symlink_metadata(path).is_ok()
}

/// The file a new resource goes to: `<kind>-<name>.json` (`route-<router>-<name>.json`;
/// `<istio kind>-<name>.yaml` for an Istio object), or with the mesh (namespace) in the name
/// when that file already exists.
fn new_file_for(dir: &Path, r: &Resource, taken: &BTreeSet<PathBuf>) -> PathBuf {
    let clean = |s: &str| -> String {
        s.chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') {
                    c
                } else {
                    '_'
                }
            })
            .collect()
    };
    let qualified = clean(&r.key().qualified_name().replace('/', "-"));
    // Istio objects go to YAML files named by Istio's kind (`destinationrule-reviews.yaml`).
    let (kind, ext) = match r {
        Resource::Istio(i) => (i.kind_name().to_ascii_lowercase(), "yaml"),
        _ => (r.kind().as_str().to_string(), "json"),
    };
    let candidates = [
        format!("{kind}-{qualified}.{ext}"),
        format!("{kind}-{}-{qualified}.{ext}", clean(r.mesh())),
    ];
    for name in candidates.iter() {
        let path = dir.join(name.trim_start_matches('.'));
        if !occupied(&path) && !taken.contains(&path) {
            return path;
        }
    }
    for i in 2.. {
        let path = dir.join(format!("{kind}-{}-{qualified}-{i}.{ext}", clean(r.mesh())));
        if !occupied(&path) && !taken.contains(&path) {
            return path;
        }
    }
    unreachable!("an unbounded range always finds a free name")
}

/// The resources of the documents of an apply, each with the file the user gave it in; every
/// document's errors together.
pub fn parse_documents(
    docs: Vec<(PathBuf, serde_json::Value)>,
) -> Result<Vec<(PathBuf, Resource)>, StoreError> {
    let mut incoming = Vec::new();
    let mut errors = Vec::new();
    for (file, value) in docs {
        match mesh_core::model::parse_value(&file, &value) {
            Ok(list) => incoming.extend(list.into_iter().map(|r| (file.clone(), r))),
            Err(e) => errors.extend(e),
        }
    }
    if errors.is_empty() {
        Ok(incoming)
    } else {
        Err(StoreError::Invalid(errors))
    }
}

/// Plans an apply of `incoming` (each with the file the user gave it in) onto `current`:
/// metadata, target files and the whole-mesh validation of the result. Errors name the user's
/// file for the resources being applied.
pub fn plan_apply(
    dir: &Path,
    current: &MeshSet,
    incoming: Vec<(PathBuf, Resource)>,
) -> Result<(Vec<Outcome>, Vec<FileChange>), StoreError> {
    // Each resource on its own first, named by the user's file.
    MeshSet::from_resources(incoming.clone()).map_err(StoreError::Invalid)?;
    let mut seen: BTreeMap<ResourceKey, &Path> = BTreeMap::new();
    let mut errors = Vec::new();
    for (file, r) in &incoming {
        if let Some(first) = seen.insert(r.key(), file) {
            errors.push(ConfigError::new(
                file,
                Some(r.label()),
                r.kind().name_key(),
                format!(
                    "applied twice in one call (also in {}); give each resource once",
                    first.display()
                ),
            ));
        }
    }
    if !errors.is_empty() {
        return Err(StoreError::Invalid(errors));
    }

    let now = now();
    let mut entries = current.to_entries();
    let mut dirty: BTreeSet<PathBuf> = BTreeSet::new();
    let mut outcomes = Vec::new();
    let mut user_file: BTreeMap<String, PathBuf> = BTreeMap::new();
    for (src, mut r) in incoming {
        let key = r.key();
        if let Some(i) = entries.iter().position(|(_, e)| e.key() == key) {
            let (file, existing) = &entries[i];
            let file = file.clone();
            if content(existing) == content(&r) && has_complete_metadata(existing) {
                outcomes.push(Outcome {
                    resource: existing.clone(),
                    action: Action::Unchanged,
                    file,
                    warnings: Vec::new(),
                });
                continue;
            }
            let mut meta = existing.metadata().cloned();
            if let Some(m) = meta.as_mut() {
                if content(existing) != content(&r) {
                    m.version = Some(m.version.unwrap_or(1) + 1);
                    m.last_updated_at = Some(now.clone());
                }
            }
            let action = if content(existing) == content(&r) {
                Action::Unchanged
            } else {
                Action::Configured
            };
            r.set_metadata(meta);
            r.set_status(existing.status().cloned());
            complete_metadata(&mut r, &now);
            user_file.insert(r.label(), src);
            entries[i].1 = r.clone();
            dirty.insert(file.clone());
            outcomes.push(Outcome {
                resource: r,
                action,
                file,
                warnings: Vec::new(),
            });
        } else {
            r.set_metadata(None);
            r.set_status(None);
            complete_metadata(&mut r, &now);
            let file = new_file_for(dir, &r, &dirty);
            user_file.insert(r.label(), src);
            entries.push((file.clone(), r.clone()));
            dirty.insert(file.clone());
            outcomes.push(Outcome {
                resource: r,
                action: Action::Created,
                file,
                warnings: Vec::new(),
            });
        }
    }

    let set = MeshSet::from_resources(entries).map_err(StoreError::Invalid)?;
    let to_user_file = |mut e: ConfigError| {
        if let Some(src) = e.resource.as_ref().and_then(|l| user_file.get(l)) {
            e.file = src.clone();
        }
        e
    };
    let errors: Vec<ConfigError> = set.validate().into_iter().map(to_user_file).collect();
    if !errors.is_empty() {
        return Err(StoreError::Invalid(errors));
    }
    let warnings: Vec<ConfigError> = set.warnings().into_iter().map(to_user_file).collect();
    for o in &mut outcomes {
        let label = o.resource.label();
        o.warnings = warnings
            .iter()
            .filter(|w| w.resource.as_deref() == Some(label.as_str()))
            .cloned()
            .collect();
    }
    Ok((outcomes, file_changes(&set, &dirty)))
}

/// The new content of every `dirty` file according to `set`, in the file's order and shapes.
fn file_changes(set: &MeshSet, dirty: &BTreeSet<PathBuf>) -> Vec<FileChange> {
    dirty
        .iter()
        .map(|path| {
            let old = std::fs::read(path).ok();
            let (before, flat) = old
                .as_deref()
                .map(|b| read_file(path, b))
                .unwrap_or_default();
            let mut resources: Vec<&Resource> = set
                .entries()
                .filter(|(f, _)| *f == path.as_path())
                .map(|(_, r)| r)
                .collect();
            resources.sort_by_key(|r| {
                before
                    .iter()
                    .position(|b| b.key() == r.key())
                    .unwrap_or(usize::MAX)
            });
            FileChange {
                path: path.clone(),
                new: (!resources.is_empty()).then(|| {
                    if is_yaml(path) {
                        render_yaml_file(&resources, &flat)
                    } else {
                        render_file(&resources, &flat)
                    }
                }),
                old,
            }
        })
        .collect()
}

/// Finds the resource a user names: `mesh` when given, else the only mesh that has it.
pub fn resolve<'a>(
    set: &'a MeshSet,
    kind: Kind,
    name: &str,
    mesh: Option<&str>,
) -> Result<&'a Resource, StoreError> {
    let words = kind.as_str();
    if let Some(mesh) = mesh {
        return set.get(kind, mesh, name).ok_or_else(|| {
            StoreError::NotFound(format!("{words}/{name} not found in mesh \"{mesh}\""))
        });
    }
    let meshes: BTreeSet<&str> = set
        .resources()
        .filter(|r| r.kind() == kind && (r.name() == name || r.key().qualified_name() == name))
        .map(Resource::mesh)
        .collect();
    match meshes.len() {
        0 => Err(StoreError::NotFound(format!(
            "{words}/{name} not found in any mesh; `meshctl get {words}` lists them"
        ))),
        1 => {
            let mesh = meshes.into_iter().next().unwrap_or_default();
            set.get(kind, mesh, name).ok_or_else(|| {
                StoreError::BadRequest(format!(
                    "{words}/{name} is ambiguous in mesh \"{mesh}\": give it as <parent>/{name}"
                ))
            })
        }
        _ if kind.is_istio() => Err(StoreError::BadRequest(format!(
            "{words}/{name} exists in several namespaces ({}): pass --namespace NAME",
            meshes.into_iter().collect::<Vec<_>>().join(", ")
        ))),
        _ => Err(StoreError::BadRequest(format!(
            "{words}/{name} exists in several meshes ({}): pass --mesh NAME",
            meshes.into_iter().collect::<Vec<_>>().join(", ")
        ))),
    }
}

/// Plans the delete of a resource: refused while others refer to it. Returns the resource as
/// App Mesh's delete returns it (status `DELETED`, version bumped) and the file changes.
pub fn plan_delete(
    set: &MeshSet,
    kind: Kind,
    name: &str,
    mesh: Option<&str>,
) -> Result<(Resource, Vec<FileChange>), StoreError> {
    let target = resolve(set, kind, name, mesh)?.clone();
    let key = target.key();
    let refs = set.references_to(kind, target.mesh(), &key.qualified_name());
    let refs: Vec<String> = refs
        .into_iter()
        .filter(|(k, n)| !(*k == key.kind && *n == key.qualified_name()))
        .map(|(k, n)| format!("{k}/{n}"))
        .collect();
    if !refs.is_empty() {
        return Err(StoreError::InUse(format!(
            "{key} in mesh \"{}\" is still referred to by {}; delete or change those first",
            key.mesh,
            refs.join(", ")
        )));
    }
    let mut entries = set.to_entries();
    let Some(i) = entries.iter().position(|(_, r)| r.key() == key) else {
        return Err(StoreError::NotFound(format!("{key} not found")));
    };
    let (file, _) = entries.remove(i);
    let rest = MeshSet::from_resources(entries).map_err(StoreError::Invalid)?;
    if key.kind.is_istio() {
        // Istio objects refer to each other by host and subset: refused while the rest would
        // not be valid without it (a route to a subset of this DestinationRule).
        let broken: Vec<String> = rest.validate().iter().map(ToString::to_string).collect();
        if !broken.is_empty() {
            return Err(StoreError::InUse(format!(
                "{key} in namespace \"{}\" is still needed: without it, {}; delete or change \
                 those first",
                key.mesh,
                broken.join("; ")
            )));
        }
    }
    let changes = file_changes(&rest, &BTreeSet::from([file]));

    let mut deleted = target;
    let now = now();
    complete_metadata(&mut deleted, &now);
    let mut meta = deleted.metadata().cloned();
    if let Some(m) = meta.as_mut() {
        m.version = Some(m.version.unwrap_or(1) + 1);
        m.last_updated_at = Some(now);
    }
    deleted.set_metadata(meta);
    deleted.set_status(Some(ResourceStatus {
        status: StatusCode::Deleted,
    }));
    Ok((deleted, changes))
}

#[cfg(test)]
#[path = "store_tests.rs"]
mod tests;
