//! Unit tests of the control API's store: metadata, apply plans, delete plans, file shapes.

use std::path::{Path, PathBuf};

use mesh_core::model::{parse_document, Kind, MeshSet, Resource};

use super::*;
use crate::config::files::{remove_durable, write_atomic};

fn res(text: &str) -> Resource {
    parse_document(Path::new("t.json"), text)
        .expect("parses")
        .remove(0)
}

fn mesh() -> Resource {
    res(r#"{"meshName": "m", "spec": {}}"#)
}

fn vn(name: &str, max: u32) -> Resource {
    res(&format!(
        r#"{{"meshName": "m", "virtualNodeName": "{name}", "spec": {{"listeners": [{{
            "portMapping": {{"port": 8080, "protocol": "http"}},
            "connectionPool": {{"http": {{"maxConnections": {max}}}}}}}],
            "serviceDiscovery": {{"dns": {{"hostname": "{name}.local"}}}}}}}}"#
    ))
}

fn set_in(dir: &Path, resources: Vec<Resource>) -> MeshSet {
    let entries: Vec<(PathBuf, Resource)> = resources
        .into_iter()
        .map(|r| (dir.join(format!("{}.json", r.name())), r))
        .collect();
    MeshSet::from_resources(entries).expect("valid")
}

#[test]
fn complete_metadata_fills_once() {
    let mut r = vn("green", 1);
    let now = now();
    assert!(complete_metadata(&mut r, &now));
    let m = r.metadata().cloned().expect("metadata");
    assert_eq!(m.version, Some(1));
    assert_eq!(
        m.arn.as_deref(),
        Some("arn:aws:appmesh:local:000000000000:mesh/m/virtualNode/green")
    );
    assert!(
        !complete_metadata(&mut r, &now),
        "second pass changes nothing"
    );
    assert_eq!(r.metadata(), Some(&m));
}

#[test]
fn apply_creates_configures_and_keeps_unchanged() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut green = vn("green", 1);
    complete_metadata(&mut green, &now());
    let current = set_in(dir.path(), vec![mesh(), green.clone()]);
    let user = PathBuf::from("in.json");
    let (outcomes, changes) = plan_apply(
        dir.path(),
        &current,
        vec![(user.clone(), green.clone()), (user.clone(), vn("blue", 1))],
    )
    .expect("valid");
    assert_eq!(outcomes[0].action, Action::Unchanged);
    assert_eq!(outcomes[1].action, Action::Created);
    assert_eq!(changes.len(), 1);
    assert_eq!(changes[0].path, dir.path().join("virtualnode-blue.json"));

    let (outcomes, _) =
        plan_apply(dir.path(), &current, vec![(user, vn("green", 2))]).expect("valid");
    assert_eq!(outcomes[0].action, Action::Configured);
    let m = outcomes[0].resource.metadata().expect("metadata");
    assert_eq!(m.version, Some(2));
    assert_eq!(m.uid, green.metadata().and_then(|g| g.uid.clone()));
}

#[test]
fn apply_errors_name_the_users_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let current = set_in(dir.path(), vec![mesh()]);
    let orphan = res(r#"{"meshName": "other", "virtualNodeName": "x", "spec": {}}"#);
    let Err(StoreError::Invalid(errors)) = plan_apply(
        dir.path(),
        &current,
        vec![(PathBuf::from("mine.json"), orphan)],
    ) else {
        panic!("a missing mesh is refused");
    };
    assert_eq!(errors[0].file, PathBuf::from("mine.json"));
}

#[test]
fn delete_is_refused_while_referred_to() {
    let dir = tempfile::tempdir().expect("tempdir");
    let set = set_in(dir.path(), vec![mesh(), vn("green", 1)]);
    let Err(StoreError::InUse(msg)) = plan_delete(&set, Kind::Mesh, "m", None) else {
        panic!("a mesh with nodes is in use");
    };
    assert!(msg.contains("virtualnode/green"), "{msg}");
    let (deleted, changes) = plan_delete(&set, Kind::VirtualNode, "green", None).expect("ok");
    assert_eq!(
        deleted.status().map(|s| s.status),
        Some(mesh_core::model::StatusCode::Deleted)
    );
    assert!(changes[0].new.is_none(), "its own file is removed");
}

#[test]
fn files_keep_their_shape() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("vn.json");
    let flat = br#"{"meshName": "m", "virtualNodeName": "a", "spec": {}}"#;
    let (resources, flat_keys) = read_file(&file, flat);
    assert!(flat_keys.contains(&resources[0].key()));
    let out = render_file(&[&resources[0]], &flat_keys);
    assert!(String::from_utf8_lossy(&out).starts_with("{\n  \"meshName\""));
    let wrapped = render_file(&[&resources[0]], &Default::default());
    assert!(String::from_utf8_lossy(&wrapped).starts_with("{\n  \"virtualNode\""));
}

#[test]
fn atomic_writes_leave_no_temp_files() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("a.json");
    write_atomic(&file, b"{}").expect("write");
    write_atomic(&file, b"[]").expect("write");
    assert_eq!(std::fs::read(&file).expect("read"), b"[]");
    assert_eq!(std::fs::read_dir(dir.path()).expect("dir").count(), 1);
    remove_durable(&file).expect("remove");
    assert!(!file.exists());
}
