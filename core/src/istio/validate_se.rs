//! `ServiceEntry` and `WorkloadEntry` rules (istio-vm.md §1.1, §2.1): hosts, ports, resolution
//! against endpoints, and the resolutions and protocols meshd does not serve yet.

use std::collections::BTreeSet;

use super::service_entry::{Resolution, ServiceEntrySpec, ServicePort, WorkloadEntrySpec};
use super::validate::{is_ip, Problems};

pub(super) fn service_entry(p: &mut Problems, s: &ServiceEntrySpec) {
    if s.hosts.is_empty() {
        p.push(
            "spec.hosts",
            "missing: a ServiceEntry needs at least one host",
        );
    }
    for (i, h) in s.hosts.iter().enumerate() {
        p.host(&format!("spec.hosts[{i}]"), h);
    }
    if s.ports.is_empty() {
        p.push(
            "spec.ports",
            "missing: a ServiceEntry needs at least one port (number, name, protocol: HTTP)",
        );
    }
    let mut names = BTreeSet::new();
    let mut numbers = BTreeSet::new();
    for (i, port) in s.ports.iter().enumerate() {
        let at = |f: &str| format!("spec.ports[{i}].{f}");
        p.label(&at("name"), "the port name", &port.name);
        if !names.insert(port.name.as_str()) {
            p.push(
                at("name"),
                format!("port name \"{}\" is already defined", port.name),
            );
        }
        p.port(&at("number"), Some(port.number));
        if !numbers.insert(port.number) {
            p.push(
                at("number"),
                format!("port {} is already defined", port.number),
            );
        }
        p.port(&at("targetPort"), port.target_port);
        match port.protocol.as_deref() {
            None => {}
            Some(proto) if proto.eq_ignore_ascii_case("http") => {}
            Some(proto) => p.push(
                at("protocol"),
                format!(
                    "protocol {proto} is not supported yet; meshd serves HTTP/1.1 only: set \
                     protocol: HTTP (an unset protocol means HTTP here, where Istio would sniff)"
                ),
            ),
        }
    }
    let resolution = s.resolution.unwrap_or(Resolution::None);
    match resolution {
        Resolution::None => p.push(
            "spec.resolution",
            format!(
                "resolution NONE{} (original destination) is not supported yet: set STATIC \
                 (endpoints are IP addresses) or DNS",
                if s.resolution.is_none() {
                    ", Istio's default when unset,"
                } else {
                    ""
                }
            ),
        ),
        Resolution::DynamicDns => p.unsupported("spec.resolution", "resolution DYNAMIC_DNS"),
        _ => {}
    }
    if s.endpoints.is_some() && s.workload_selector.is_some() {
        p.push(
            "spec.workloadSelector",
            "set only one of endpoints and workloadSelector",
        );
    }
    let endpoints = s.endpoints.as_deref().unwrap_or_default();
    if resolution == Resolution::DnsRoundRobin && endpoints.len() > 1 {
        p.push(
            "spec.endpoints",
            format!(
                "resolution DNS_ROUND_ROBIN takes at most one endpoint, got {}",
                endpoints.len()
            ),
        );
    }
    let dns = matches!(resolution, Resolution::Dns | Resolution::DnsRoundRobin);
    if dns && endpoints.is_empty() && s.workload_selector.is_none() {
        for (i, h) in s.hosts.iter().enumerate() {
            if h.starts_with('*') {
                p.push(
                    format!("spec.hosts[{i}]"),
                    format!(
                        "resolution DNS without endpoints resolves the host itself, so \"{h}\" \
                         must not be a wildcard"
                    ),
                );
            }
        }
    }
    for (i, ep) in endpoints.iter().enumerate() {
        let path = format!("spec.endpoints[{i}]");
        workload_entry(p, &path, ep, Some(&s.ports), false);
        if let Some(addr) = &ep.address {
            if resolution == Resolution::Static && !is_ip(addr) {
                p.push(
                    format!("{path}.address"),
                    format!(
                        "resolution STATIC needs IP addresses, got \"{addr}\" (use resolution \
                         DNS for host names)"
                    ),
                );
            }
        }
    }
}

/// A WorkloadEntry, or a ServiceEntry's inline endpoint at `path` (then `ports` are the
/// entry's, which the endpoint's `ports` keys must name).
pub(super) fn workload_entry(
    p: &mut Problems,
    path: &str,
    w: &WorkloadEntrySpec,
    ports: Option<&[ServicePort]>,
    standalone: bool,
) {
    let at = |f: &str| format!("{path}.{f}");
    match w.address.as_deref() {
        None | Some("") => p.push(
            at("address"),
            "missing: the workload's IP address or DNS name is required",
        ),
        Some(a) if a.starts_with("unix://") => p.unsupported(at("address"), "a unix:// address"),
        Some(a) if !is_ip(a) && !super::validate::is_dns1123_subdomain(&a.to_ascii_lowercase()) => {
            p.push(
                at("address"),
                format!("\"{a}\" is neither an IP address nor a DNS name"),
            )
        }
        _ => {}
    }
    for (name, port) in w.ports.iter().flatten() {
        let pp = at(&format!("ports.{name}"));
        p.port(&pp, Some(*port));
        if let Some(ports) = ports {
            if !ports.iter().any(|sp| &sp.name == name) {
                let known: Vec<&str> = ports.iter().map(|sp| sp.name.as_str()).collect();
                p.push(
                    pp,
                    format!(
                        "port \"{name}\" is not defined by the ServiceEntry, which has {}",
                        known.join(", ")
                    ),
                );
            }
        } else if standalone && !super::validate::is_dns1123_label(name) {
            p.label(&pp, "the port name", name);
        }
    }
    p.count(&at("weight"), w.weight);
}
