//! App Mesh metadata of a resource: its ARN, uid, version and timestamps, derived
//! deterministically for a resource written by hand (the same files give the same metadata on
//! every VM) and completed for an applied one.

use std::time::SystemTime;

use mesh_core::model::{
    Kind, Resource, ResourceKey, ResourceMetadata, ResourceStatus, StatusCode, Timestamp,
};

/// The account shown as `meshOwner` and `resourceOwner` and used in ARNs.
pub const ACCOUNT: &str = "000000000000";
/// The region used in ARNs.
pub const REGION: &str = "local";

/// The App Mesh ARN of a resource.
pub fn arn(key: &ResourceKey) -> String {
    let base = format!("arn:aws:appmesh:{REGION}:{ACCOUNT}:mesh/{}", key.mesh);
    let parent = key.parent.as_deref().unwrap_or("");
    match key.kind {
        Kind::Mesh => base,
        Kind::VirtualNode => format!("{base}/virtualNode/{}", key.name),
        Kind::VirtualGateway => format!("{base}/virtualGateway/{}", key.name),
        Kind::GatewayRoute => format!("{base}/virtualGateway/{parent}/gatewayRoute/{}", key.name),
        Kind::VirtualRouter => format!("{base}/virtualRouter/{}", key.name),
        Kind::Route => format!("{base}/virtualRouter/{parent}/route/{}", key.name),
        Kind::VirtualService => format!("{base}/virtualService/{}", key.name),
        // Istio objects have no ARN: their API path stands in.
        k @ (Kind::DestinationRule
        | Kind::IstioVirtualService
        | Kind::ServiceEntry
        | Kind::WorkloadEntry) => format!(
            "networking.istio.io/namespaces/{}/{}/{}",
            key.mesh,
            k.wrapper_key().to_ascii_lowercase(),
            key.name
        ),
    }
}

/// The time an apply stamps, as App Mesh's CLI v2 prints it (ISO 8601, milliseconds, UTC): now,
/// or `SOURCE_DATE_EPOCH` (whole seconds since the epoch) when that is set, so that generated
/// files are reproducible (see [`super::offline`]).
pub fn now() -> Timestamp {
    timestamp(source_date_epoch().unwrap_or_else(SystemTime::now))
}

/// `SOURCE_DATE_EPOCH` as a time, when it is set to a whole number of seconds.
fn source_date_epoch() -> Option<SystemTime> {
    let secs: u64 = std::env::var("SOURCE_DATE_EPOCH")
        .ok()?
        .trim()
        .parse()
        .ok()?;
    SystemTime::UNIX_EPOCH.checked_add(std::time::Duration::from_secs(secs))
}

/// The namespace of derived uids: a fixed UUID, so that every meshd derives the same uid for the
/// same resource.
const UID_NAMESPACE: uuid::Uuid = uuid::Uuid::from_u128(0x6d657368_2d75_6964_8000_00000000c0de);

/// The uid of a resource: derived from its kind, mesh and name (UUID v5), the same on every
/// machine.
pub fn derived_uid(key: &ResourceKey) -> String {
    let name = format!(
        "{}/{}/{}",
        key.kind.as_str(),
        key.mesh,
        key.qualified_name()
    );
    uuid::Uuid::new_v5(&UID_NAMESPACE, name.as_bytes()).to_string()
}

/// A time as App Mesh's CLI v2 prints it.
pub fn timestamp(t: SystemTime) -> Timestamp {
    Timestamp::Text(humantime::format_rfc3339_millis(t).to_string())
}

/// Gives a resource read from a file the metadata meshd derives for what the file leaves out:
/// uid from kind, mesh and name, version 1, and `createdAt`/`lastUpdatedAt` of
/// 1970-01-01T00:00:00.000Z (the epoch: "not known"; a file's modification time differs from
/// machine to machine, so it is not used). Deterministic: the same file gives the same metadata
/// on every machine, and nothing is written back. An apply that changes the resource keeps
/// these, stamping only `lastUpdatedAt`.
pub fn derive_metadata(r: &mut Resource) {
    complete_metadata(r, &timestamp(SystemTime::UNIX_EPOCH));
}

/// Fills every missing metadata member (version 1, created `now`, the derived uid) and an
/// `ACTIVE` status. Members already present are kept, so a second call changes nothing. Returns
/// whether anything changed.
pub fn complete_metadata(r: &mut Resource, now: &Timestamp) -> bool {
    let before = (r.metadata().cloned(), r.status().cloned());
    let mut m = before.0.clone().unwrap_or(ResourceMetadata {
        arn: None,
        created_at: None,
        last_updated_at: None,
        mesh_owner: None,
        resource_owner: None,
        uid: None,
        version: None,
    });
    m.arn.get_or_insert_with(|| arn(&r.key()));
    let created = m.created_at.get_or_insert_with(|| now.clone()).clone();
    m.last_updated_at.get_or_insert(created);
    m.mesh_owner.get_or_insert_with(|| ACCOUNT.to_string());
    m.resource_owner.get_or_insert_with(|| ACCOUNT.to_string());
    m.uid.get_or_insert_with(|| derived_uid(&r.key()));
    m.version.get_or_insert(1);
    let status = before.1.clone().unwrap_or(ResourceStatus {
        status: StatusCode::Active,
    });
    let changed = before.0.as_ref() != Some(&m) || before.1.as_ref() != Some(&status);
    r.set_metadata(Some(m));
    r.set_status(Some(status));
    changed
}

/// Whether a resource carries complete metadata and a status.
pub(super) fn has_complete_metadata(r: &Resource) -> bool {
    if r.kind().is_istio() {
        // Istio objects carry no App Mesh metadata: nothing is ever stamped into them.
        return true;
    }
    let mut copy = r.clone();
    !complete_metadata(&mut copy, &Timestamp::Text(String::new()))
}
