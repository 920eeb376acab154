//! Rules across the set for Istio objects: a route's subset is defined by a DestinationRule of
//! its host; one DestinationRule per host; a host is configured by App Mesh or by Istio, not
//! both. And the warnings: a rule for a host that no ServiceEntry or App Mesh node provides.

use std::path::Path;

use super::document::{IstioResource, IstioSpec};
use crate::model::{ConfigError, MeshSet, Resource};

/// Every `(path, host)` a resource configures: a DestinationRule's host, a VirtualService's
/// and a ServiceEntry's hosts.
fn configured_hosts(r: &IstioResource) -> Vec<(String, &str)> {
    match &r.spec {
        IstioSpec::DestinationRule(s) => vec![("spec.host".into(), s.host.as_str())],
        IstioSpec::VirtualService(s) => host_list(&s.hosts),
        IstioSpec::ServiceEntry(s) => host_list(&s.hosts),
        IstioSpec::WorkloadEntry(_) => Vec::new(),
    }
}

fn host_list(hosts: &[String]) -> Vec<(String, &str)> {
    hosts
        .iter()
        .enumerate()
        .map(|(i, h)| (format!("spec.hosts[{i}]"), h.as_str()))
        .collect()
}

fn istio_objects(set: &MeshSet) -> impl Iterator<Item = (&Path, &IstioResource)> {
    set.entries().filter_map(|(f, r)| match r {
        Resource::Istio(i) => Some((f, i.as_ref())),
        _ => None,
    })
}

/// Whether `pattern` (a host, maybe `*.suffix`) covers `host`; host names ignore case.
fn host_matches(pattern: &str, host: &str) -> bool {
    match pattern.strip_prefix('*') {
        Some(suffix) => {
            host.len() > suffix.len()
                && host
                    .to_ascii_lowercase()
                    .ends_with(&suffix.to_ascii_lowercase())
        }
        None => pattern.eq_ignore_ascii_case(host),
    }
}

/// References of `r` that do not resolve in `set`, pushed as `(path, message)`.
pub(crate) fn check_references(
    set: &MeshSet,
    r: &IstioResource,
    found: &mut Vec<(String, String)>,
) {
    let label = format!("{}/{}", r.kind(), r.metadata.name);
    // A host configured by App Mesh and Istio.
    for (path, host) in configured_hosts(r) {
        for (file, other) in set.entries() {
            if let Resource::VirtualService(vs) = other {
                if vs.virtual_service_name.eq_ignore_ascii_case(host) {
                    found.push((
                        path.clone(),
                        format!(
                            "host \"{host}\" is configured by both Istio ({label}) and App Mesh \
                             (virtual service \"{}\" in mesh \"{}\", {}); configure a host with \
                             one of them",
                            vs.virtual_service_name,
                            vs.mesh_name,
                            file.display()
                        ),
                    ));
                }
            }
        }
    }
    match &r.spec {
        IstioSpec::DestinationRule(s) => {
            let key = (r.namespace(), r.metadata.name.as_str());
            for (file, other) in istio_objects(set) {
                let IstioSpec::DestinationRule(o) = &other.spec else {
                    continue;
                };
                let other_key = (other.namespace(), other.metadata.name.as_str());
                if other_key < key && o.host.eq_ignore_ascii_case(&s.host) {
                    found.push((
                        "spec.host".into(),
                        format!(
                            "host \"{}\" already has a DestinationRule, {}/{} in {}; keep one \
                             rule per host (meshd does not merge rules)",
                            s.host,
                            other.namespace(),
                            other.metadata.name,
                            file.display()
                        ),
                    ));
                }
            }
        }
        IstioSpec::VirtualService(s) => {
            for (i, route) in s.http.iter().flatten().enumerate() {
                for (k, d) in route.route.iter().flatten().enumerate() {
                    let Some(subset) = &d.destination.subset else {
                        continue;
                    };
                    let host = &d.destination.host;
                    let mut defined: Vec<String> = Vec::new();
                    let mut rules: Vec<String> = Vec::new();
                    for (file, other) in istio_objects(set) {
                        if let IstioSpec::DestinationRule(o) = &other.spec {
                            if o.host.eq_ignore_ascii_case(host) {
                                rules.push(format!(
                                    "destinationrule/{} ({})",
                                    other.metadata.name,
                                    file.display()
                                ));
                                defined.extend(o.subsets.iter().flatten().map(|x| x.name.clone()));
                            }
                        }
                    }
                    if defined.contains(subset) {
                        continue;
                    }
                    let have = if rules.is_empty() {
                        format!("no DestinationRule has host \"{host}\"")
                    } else if defined.is_empty() {
                        format!("{} defines no subsets", rules.join(", "))
                    } else {
                        format!("{} defines {}", rules.join(", "), defined.join(", "))
                    };
                    found.push((
                        format!("spec.http[{i}].route[{k}].destination.subset"),
                        format!(
                            "subset \"{subset}\" of host \"{host}\" is not defined by any \
                             DestinationRule: {have}"
                        ),
                    ));
                }
            }
        }
        _ => {}
    }
}

/// Warnings for the Istio objects of `set`: a DestinationRule or VirtualService for a host that
/// no ServiceEntry (and no App Mesh virtual node's DNS name) provides. Such a rule is kept and
/// has no effect until something provides the host.
pub(crate) fn warnings(set: &MeshSet) -> Vec<ConfigError> {
    let provided = |host: &str| {
        istio_objects(set).any(|(_, o)| match &o.spec {
            IstioSpec::ServiceEntry(se) => se.hosts.iter().any(|h| host_matches(h, host)),
            _ => false,
        }) || set.virtual_nodes().any(|vn| {
            vn.dns()
                .is_some_and(|d| d.hostname.eq_ignore_ascii_case(host))
        })
    };
    let mut out = Vec::new();
    for (file, r) in istio_objects(set) {
        let mut hosts: Vec<(String, &str)> = match &r.spec {
            IstioSpec::DestinationRule(_) | IstioSpec::VirtualService(_) => configured_hosts(r),
            _ => continue,
        };
        if let IstioSpec::VirtualService(s) = &r.spec {
            for (i, route) in s.http.iter().flatten().enumerate() {
                for (k, d) in route.route.iter().flatten().enumerate() {
                    hosts.push((
                        format!("spec.http[{i}].route[{k}].destination.host"),
                        d.destination.host.as_str(),
                    ));
                }
            }
        }
        let mut seen = Vec::new();
        for (path, host) in hosts {
            if host.starts_with('*') || seen.contains(&host) || provided(host) {
                continue;
            }
            seen.push(host);
            out.push(ConfigError::new(
                file,
                Some(format!("{}/{}", r.kind(), r.metadata.name)),
                path,
                format!(
                    "no ServiceEntry or virtual node provides host \"{host}\"; this \
                     {} has no effect until one does",
                    r.kind_name()
                ),
            ));
        }
    }
    out
}
