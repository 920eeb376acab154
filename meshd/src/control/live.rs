//! The live state `describe` adds for a node or gateway this meshd serves: its listeners, and
//! per cluster the breaker occupancy and the hosts (the data of `/clusters?format=json`): each
//! host's health flags, and with outlier detection or health checks its ejection state (type,
//! times ejected, time left) and health-check state.

use serde_json::{json, Value};

use crate::render::{mesh_host_state, routing_clusters};
use crate::server::{AnyCluster, View};

/// The live state of local node `node` of `mesh`, or `None` when this meshd does not serve it.
pub fn node_state(view: &View, mesh: &str, node: &str) -> Option<Value> {
    let listeners: Vec<&mesh_core::runtime::Listener> = view
        .config
        .listeners
        .iter()
        .filter(|l| l.node == node && l.mesh == mesh)
        .collect();
    if listeners.is_empty() {
        return None;
    }
    let mut names: Vec<String> = Vec::new();
    for l in &listeners {
        names.extend(l.admission_cluster.iter().cloned());
        names.extend(routing_clusters(&l.routing));
    }
    names.sort();
    names.dedup();
    let bound: Vec<Value> = view
        .listeners
        .iter()
        .filter(|(n, ..)| n == node)
        .map(|(_, role, addr, stats)| {
            json!({"role": format!("{role:?}").to_lowercase(), "address": addr.to_string(),
                   "downstream_cx_active": stats.downstream_cx_active.get(),
                   "downstream_rq_active": stats.downstream_rq_active.get()})
        })
        .collect();
    let clusters: Vec<Value> = view
        .clusters
        .iter()
        .filter(|c| names.contains(&c.info().name))
        .map(cluster_state)
        .collect();
    Some(json!({"listeners": bound, "clusters": clusters}))
}

/// A cluster's live state: `name`, `breakers` (occupancy per limit) and `hosts`.
pub fn cluster_state(c: &AnyCluster) -> Value {
    let info = c.info();
    let limits = crate::render::occupancy_json(&info.breakers);
    let hosts: Vec<Value> = if matches!(c, AnyCluster::Slots(_)) {
        Vec::new()
    } else {
        c.hosts()
            .iter()
            .map(|h| {
                let mut host = json!({"address": h.addr.to_string(), "hostname": h.hostname,
                       "health_flags": h.health_flags(),
                       "cx_active": h.cx_active.get(), "rq_active": h.rq_active.get(),
                       "rq_total": h.counters.rq_total.get(),
                       "rq_error": h.counters.rq_error.get()});
                if let AnyCluster::Tcp(u) = c {
                    mesh_host_state(&mut host, &u.host_state(h.addr));
                }
                host
            })
            .collect()
    };
    json!({"name": info.name, "breakers": limits, "hosts": hosts})
}
