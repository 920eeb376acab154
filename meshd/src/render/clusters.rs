//! `/clusters`: Envoy's text and JSON shapes, plus what meshd adds per host (why a host is
//! out of rotation and until when: outlier counters, ejection time left, health check state).

use std::fmt::Write as _;

use mesh_core::breaker::Breakers;
use mesh_core::pool::{HealthFlag, HostInfo};
use serde_json::{json, Value};

use super::occupancy_json;
use crate::resilience::HostState;
use crate::server::{AnyCluster, View};

/// `/clusters` in Envoy's text format.
pub fn clusters_text(view: &View) -> String {
    let mut out = String::new();
    for c in &view.clusters {
        let info = c.info();
        let n = &info.name;
        let _ = writeln!(out, "{n}::observability_name::{n}");
        for (prio, b) in [
            ("default_priority", &info.breakers),
            ("high_priority", &info.high),
        ] {
            let t = b.thresholds();
            let _ = writeln!(out, "{n}::{prio}::max_connections::{}", t.max_connections);
            let _ = writeln!(
                out,
                "{n}::{prio}::max_pending_requests::{}",
                t.max_pending_requests
            );
            let _ = writeln!(out, "{n}::{prio}::max_requests::{}", t.max_requests);
            let _ = writeln!(out, "{n}::{prio}::max_retries::{}", t.max_retries);
        }
        let _ = writeln!(out, "{n}::added_via_api::true");
        let up = match c {
            AnyCluster::Slots(_) => continue, // a self-redirect cluster has no real hosts
            AnyCluster::Tcp(u) => Some(u),
        };
        for h in c.hosts() {
            let a = h.addr;
            let hc = &h.counters;
            for (k, v) in [
                ("cx_active", h.cx_active.get()),
                ("cx_connect_fail", hc.cx_connect_fail.get()),
                ("cx_total", hc.cx_total.get()),
                ("rq_active", h.rq_active.get()),
                ("rq_error", hc.rq_error.get()),
                ("rq_success", hc.rq_success.get()),
                ("rq_timeout", hc.rq_timeout.get()),
                ("rq_total", hc.rq_total.get()),
            ] {
                let _ = writeln!(out, "{n}::{a}::{k}::{v}");
            }
            let _ = writeln!(out, "{n}::{a}::hostname::{}", h.hostname);
            let _ = writeln!(out, "{n}::{a}::health_flags::{}", h.health_flags());
            let _ = writeln!(out, "{n}::{a}::weight::1");
            for k in ["region", "zone", "sub_zone"] {
                let _ = writeln!(out, "{n}::{a}::{k}::");
            }
            let _ = writeln!(out, "{n}::{a}::canary::false");
            let _ = writeln!(out, "{n}::{a}::priority::0");
            let state = up.map(|u| u.host_state(a));
            let rate = state
                .as_ref()
                .and_then(|s| s.outlier.as_ref())
                .and_then(|o| o.success_rate)
                .unwrap_or(-1.0);
            let _ = writeln!(out, "{n}::{a}::success_rate::{rate}");
            let _ = writeln!(out, "{n}::{a}::local_origin_success_rate::-1");
            // meshd's own: why a host is out, and until when.
            if let Some(o) = state.as_ref().and_then(|s| s.outlier.as_ref()) {
                for (k, v) in [
                    ("outlier_ejections", o.num_ejections),
                    ("outlier_consecutive_5xx", o.consecutive_5xx),
                    (
                        "outlier_consecutive_gateway_failure",
                        o.consecutive_gateway_failure,
                    ),
                    (
                        "outlier_consecutive_local_origin_failure",
                        o.consecutive_local_origin_failure,
                    ),
                ] {
                    let _ = writeln!(out, "{n}::{a}::{k}::{v}");
                }
                let kind = o.ejection_type.map_or("-", |t| t.as_str());
                let _ = writeln!(out, "{n}::{a}::outlier_ejection_type::{kind}");
                let left = o.time_left.map_or(0, |d| d.as_millis());
                let _ = writeln!(out, "{n}::{a}::outlier_ejection_time_left_ms::{left}");
            }
            if let Some(h) = state.as_ref().and_then(|s| s.health.as_ref()) {
                let _ = writeln!(out, "{n}::{a}::active_hc::{}", h.state.as_str());
            }
        }
    }
    out
}

/// `/clusters?format=json`, Envoy's `envoy.admin.v3.Clusters` shape (zero values omitted,
/// uint64 as strings, default priority omitted), plus our live breaker occupancy.
pub fn clusters_json(view: &View) -> String {
    let statuses: Vec<Value> = view
        .clusters
        .iter()
        .map(|c| {
            let info = c.info();
            let thresholds = |b: &Breakers, high: bool| {
                let t = b.thresholds();
                let mut v = json!({
                    "max_connections": t.max_connections,
                    "max_pending_requests": t.max_pending_requests,
                    "max_requests": t.max_requests,
                    "max_retries": t.max_retries,
                });
                if high {
                    v["priority"] = json!("HIGH");
                }
                v
            };
            let hosts: Vec<Value> = if matches!(c, AnyCluster::Slots(_)) {
                Vec::new()
            } else {
                c.hosts()
                    .iter()
                    .map(|h| {
                        let mut stats = Vec::new();
                        let hc = &h.counters;
                        for (k, v, gauge) in [
                            ("cx_active", h.cx_active.get(), true),
                            ("cx_connect_fail", hc.cx_connect_fail.get(), false),
                            ("cx_total", hc.cx_total.get(), false),
                            ("rq_active", h.rq_active.get(), true),
                            ("rq_error", hc.rq_error.get(), false),
                            ("rq_success", hc.rq_success.get(), false),
                            ("rq_timeout", hc.rq_timeout.get(), false),
                            ("rq_total", hc.rq_total.get(), false),
                        ] {
                            let mut s = json!({"name": k});
                            if v != 0 {
                                s["value"] = json!(v.to_string());
                            }
                            if gauge {
                                s["type"] = json!("GAUGE");
                            }
                            stats.push(s);
                        }
                        let mut host = json!({
                            "address": {"socket_address": {
                                "address": h.addr.ip().to_string(),
                                "port_value": h.addr.port()}},
                            "stats": stats,
                            "health_status": health_status(h),
                            "weight": 1,
                            "hostname": h.hostname,
                            "locality": {},
                        });
                        if let AnyCluster::Tcp(u) = c {
                            mesh_host_state(&mut host, &u.host_state(h.addr));
                        }
                        host
                    })
                    .collect()
            };
            let b = &info.breakers;
            let occupancy = occupancy_json(b);
            json!({
                "name": info.name,
                "observability_name": info.name,
                "added_via_api": true,
                "circuit_breakers": {"thresholds": [thresholds(b, false), thresholds(&info.high, true)]},
                "host_statuses": hosts,
                "mesh_breaker_occupancy": occupancy,
            })
        })
        .collect();
    let mut out = serde_json::to_string_pretty(&json!({ "cluster_statuses": statuses }))
        .unwrap_or_else(|_| "{}".into());
    out.push('\n');
    out
}

/// Envoy's `health_status` of a host in `/clusters?format=json`: the set flags as `true`
/// (`failed_active_health_check`, `failed_outlier_check`), and `eds_health_status`.
fn health_status(h: &HostInfo) -> Value {
    let mut v = json!({"eds_health_status": "HEALTHY"});
    if h.failed(HealthFlag::FailedActiveHc) {
        v["failed_active_health_check"] = json!(true);
    }
    if h.failed(HealthFlag::FailedOutlierCheck) {
        v["failed_outlier_check"] = json!(true);
    }
    v
}

/// meshd's per-host additions to Envoy's JSON host status (`mesh_outlier`, `mesh_health_check`);
/// `meshctl describe --live` shows the same fields.
pub fn mesh_host_state(host: &mut Value, state: &HostState) {
    if let Some(o) = &state.outlier {
        if let Some(rate) = o.success_rate {
            host["success_rate"] = json!({"value": rate});
        }
        host["mesh_outlier"] = json!({
            "ejected": o.ejected,
            "num_ejections": o.num_ejections,
            "consecutive_5xx": o.consecutive_5xx,
            "consecutive_gateway_failure": o.consecutive_gateway_failure,
            "consecutive_local_origin_failure": o.consecutive_local_origin_failure,
            "ejection_type": o.ejection_type.map(|t| t.as_str()),
            "ejection_time_left_ms": o.time_left.map(|d| d.as_millis() as u64),
        });
    }
    if let Some(h) = &state.health {
        host["mesh_health_check"] = json!({
            "state": h.state.as_str(),
            "consecutive_successes": h.successes,
            "consecutive_failures": h.failures,
            "timed_out": h.timed_out,
        });
    }
}
