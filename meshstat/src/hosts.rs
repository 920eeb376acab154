//! `meshstat hosts [PATTERN]`: one line (or JSON object) per host of every matching cluster,
//! saying whether it is in rotation, and if not why and until when, from `/clusters?format=json`
//! (Envoy's `health_status` flags and host stats, meshd's `mesh_outlier` and
//! `mesh_health_check`).
//!
//! States (several joined by `,`): `healthy`; `ejected` (outlier detection took it out);
//! `failed_hc` (it fails its active health check); `unchecked` (a health check exists but has
//! not answered yet: meshd sends it traffic meanwhile). Reasons: the ejection type in lower case
//! (`consecutive_5xx`, `consecutive_gateway_failure`, `consecutive_local_origin_failure`, as the
//! `ejections_enforced_*` stats), `hc_failed` or `hc_timeout` (its last check timed out).

use serde::Serialize;
use serde_json::Value;

use crate::clusters::{self, u};

/// One host of one cluster, as `meshstat hosts` shows it. Absent values are `None` (`-` in
/// text, `null` in JSON).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HostRow {
    /// The meshd (admin address).
    pub source: String,
    /// The cluster.
    pub cluster: String,
    /// `ip:port`.
    pub host: String,
    /// The DNS name the host came from.
    pub hostname: Option<String>,
    /// `healthy`, or the reasons it is not: `ejected`, `failed_hc`, `unchecked`, joined by `,`.
    pub state: String,
    /// Why, per state word that has one: the ejection type, `hc_failed`, `hc_timeout`.
    pub reason: Option<String>,
    /// Whether the balancer may pick it (neither ejected nor failing its health check).
    pub in_rotation: bool,
    /// Times ejected (`None`: the cluster has no outlier detection).
    pub ejections: Option<u64>,
    /// Time left in the current ejection.
    pub ejection_time_left_ms: Option<u64>,
    /// Consecutive upstream 5xx now.
    pub consecutive_5xx: Option<u64>,
    /// Consecutive 502/503/504 now.
    pub consecutive_gateway_failure: Option<u64>,
    /// Consecutive connect failures, resets and timeouts now.
    pub consecutive_local_origin_failure: Option<u64>,
    /// Percentage of non-5xx outcomes in the last outlier interval.
    pub success_rate: Option<f64>,
    /// The active health check's state (`unchecked`, `healthy`, `unhealthy`; `None`: no check).
    pub health_check: Option<String>,
    /// Consecutive failed health checks now.
    pub hc_consecutive_failures: Option<u64>,
    /// Consecutive passed health checks now.
    pub hc_consecutive_successes: Option<u64>,
    /// Requests in flight to the host.
    pub rq_active: u64,
    /// Requests sent to the host.
    pub rq_total: u64,
    /// Requests to the host that failed (5xx, reset, timeout).
    pub rq_error: u64,
    /// Connections to the host that failed to open (UF).
    pub cx_connect_fail: u64,
}

fn flag(h: &Value, key: &str) -> bool {
    h.pointer(&format!("/health_status/{key}"))
        .and_then(Value::as_bool)
        .unwrap_or(false)
}

/// The hosts of one cluster (`/clusters?format=json` `cluster_statuses` entry) of `source`.
pub fn rows(source: &str, cluster: &Value) -> Vec<HostRow> {
    let name = clusters::name(cluster);
    clusters::hosts(cluster)
        .into_iter()
        .map(|h| row(source, name, h))
        .collect()
}

fn row(source: &str, cluster: &str, h: &Value) -> HostRow {
    let outlier = h.get("mesh_outlier");
    let hc = h.get("mesh_health_check");
    let o = |k: &str| u(outlier.and_then(|o| o.get(k)));
    let hc_state = hc
        .and_then(|c| c.get("state"))
        .and_then(Value::as_str)
        .map(str::to_owned);
    let ejected = flag(h, "failed_outlier_check")
        || outlier
            .and_then(|o| o.get("ejected"))
            .and_then(Value::as_bool)
            == Some(true);
    let failed_hc =
        flag(h, "failed_active_health_check") || hc_state.as_deref() == Some("unhealthy");
    let unchecked = hc_state.as_deref() == Some("unchecked") || flag(h, "pending_active_hc");
    let mut states = Vec::new();
    let mut reasons = Vec::new();
    if ejected {
        states.push("ejected");
        if let Some(t) = outlier
            .and_then(|o| o.get("ejection_type"))
            .and_then(Value::as_str)
        {
            reasons.push(t.to_ascii_lowercase());
        }
    }
    if failed_hc {
        states.push("failed_hc");
        let timed_out = flag(h, "active_hc_timeout")
            || hc.and_then(|c| c.get("timed_out")).and_then(Value::as_bool) == Some(true);
        reasons.push(if timed_out { "hc_timeout" } else { "hc_failed" }.to_owned());
    } else if unchecked {
        states.push("unchecked");
    }
    let stats = clusters::host_stats(h);
    let stat = |k: &str| u(stats.get(k)).unwrap_or(0);
    HostRow {
        source: source.to_owned(),
        cluster: cluster.to_owned(),
        host: clusters::host_address(h),
        hostname: h
            .get("hostname")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_owned),
        state: if states.is_empty() {
            "healthy".to_owned()
        } else {
            states.join(",")
        },
        reason: (!reasons.is_empty()).then(|| reasons.join(",")),
        in_rotation: !ejected && !failed_hc,
        ejections: o("num_ejections"),
        ejection_time_left_ms: ejected.then(|| o("ejection_time_left_ms")).flatten(),
        consecutive_5xx: o("consecutive_5xx"),
        consecutive_gateway_failure: o("consecutive_gateway_failure"),
        consecutive_local_origin_failure: o("consecutive_local_origin_failure"),
        success_rate: h.pointer("/success_rate/value").and_then(Value::as_f64),
        health_check: hc_state,
        hc_consecutive_failures: u(hc.and_then(|c| c.get("consecutive_failures"))),
        hc_consecutive_successes: u(hc.and_then(|c| c.get("consecutive_successes"))),
        rq_active: stat("rq_active"),
        rq_total: stat("rq_total"),
        rq_error: stat("rq_error"),
        cx_connect_fail: stat("cx_connect_fail"),
    }
}

/// A duration in milliseconds for people: `972ms` below a second, else `1.5s`.
pub fn duration(ms: u64) -> String {
    if ms < 1000 {
        format!("{ms}ms")
    } else {
        format!("{:.1}s", ms as f64 / 1000.0)
    }
}

fn or_dash<T: ToString>(v: Option<T>) -> String {
    v.map_or_else(|| "-".to_owned(), |v| v.to_string())
}

impl HostRow {
    /// The text line: `[source ]cluster host state reason ejections=N left=D rq_active=N
    /// rq_total=N rq_error=N cx_connect_fail=N hc=STATE`, `-` for absent values.
    pub fn text(&self, prefix: bool) -> String {
        let p = if prefix {
            format!("{} ", self.source)
        } else {
            String::new()
        };
        format!(
            "{p}{} {} {} {} ejections={} left={} rq_active={} rq_total={} rq_error={} cx_connect_fail={} hc={}",
            self.cluster,
            self.host,
            self.state,
            or_dash(self.reason.as_deref()),
            or_dash(self.ejections),
            or_dash(self.ejection_time_left_ms.map(duration)),
            self.rq_active,
            self.rq_total,
            self.rq_error,
            self.cx_connect_fail,
            or_dash(self.health_check.as_deref()),
        )
    }

    /// The host, its state and reason, and the time left: `127.0.0.3:8080 (ejected
    /// consecutive_5xx, 972ms left)`, as `meshstat why` names hosts out of rotation.
    pub fn brief(&self) -> String {
        let mut s = format!("{} ({}", self.host, self.state);
        if let Some(r) = &self.reason {
            s.push(' ');
            s.push_str(r);
        }
        if let Some(ms) = self.ejection_time_left_ms {
            s.push_str(&format!(", {} left", duration(ms)));
        }
        s.push(')');
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn captured() -> Vec<Value> {
        let v: Value =
            serde_json::from_str(include_str!("../testdata/clusters.json")).expect("fixture");
        v["cluster_statuses"].as_array().expect("clusters").clone()
    }

    #[test]
    fn the_captured_clusters_show_one_ejected_host_with_reason_and_time_left() {
        let c = captured();
        let lines: Vec<String> = c
            .iter()
            .flat_map(|c| rows("a:1", c))
            .map(|r| r.text(false))
            .collect();
        assert_eq!(
            lines,
            [
                "cds_egress_m_svc_http_42527 127.0.0.2:42527 healthy - ejections=0 left=- rq_active=0 rq_total=12 rq_error=0 cx_connect_fail=0 hc=-",
                "cds_egress_m_svc_http_42527 127.0.0.3:42527 ejected consecutive_5xx ejections=1 left=972ms rq_active=0 rq_total=3 rq_error=3 cx_connect_fail=0 hc=-",
                "cds_ingress_m_client_http_9090 127.0.0.1:9090 healthy - ejections=- left=- rq_active=0 rq_total=0 rq_error=0 cx_connect_fail=0 hc=-",
            ]
        );
        let r = &rows("a:1", &c[0])[1];
        assert!(!r.in_rotation);
        assert_eq!(
            r.brief(),
            "127.0.0.3:42527 (ejected consecutive_5xx, 972ms left)"
        );
        assert_eq!(r.text(true).split(' ').next(), Some("a:1"));
        let j = serde_json::to_value(r).expect("json");
        assert_eq!(j["hostname"], "svc.resilience.test");
        assert_eq!(j["reason"], "consecutive_5xx");
        assert_eq!(j["ejection_time_left_ms"], 972);
        assert_eq!(j["consecutive_gateway_failure"], 3);
        assert_eq!(j["health_check"], Value::Null);
        assert_eq!(j["success_rate"], Value::Null);
        let ingress = &rows("a:1", &c[1])[0];
        assert_eq!(
            (ingress.hostname.as_deref(), ingress.ejections),
            (None, None)
        );
    }

    #[test]
    fn health_checks_give_failed_hc_unchecked_and_both_states() {
        let host = |health: Value, outlier: Value, hc: Value| {
            let mut h = json!({"address": {"socket_address": {"address": "127.0.0.2", "port_value": 80}},
                "health_status": health, "mesh_health_check": hc, "success_rate": {"value": 40.0}});
            if !outlier.is_null() {
                h["mesh_outlier"] = outlier;
            }
            rows("a:1", &json!({"name": "c", "host_statuses": [h]})).remove(0)
        };
        let hc = |state: &str, timed_out: bool| json!({"state": state, "consecutive_successes": 0, "consecutive_failures": 3, "timed_out": timed_out});
        let failed = host(
            json!({"failed_active_health_check": true}),
            Value::Null,
            hc("unhealthy", true),
        );
        assert_eq!(
            failed.text(false),
            "c 127.0.0.2:80 failed_hc hc_timeout ejections=- left=- rq_active=0 rq_total=0 rq_error=0 cx_connect_fail=0 hc=unhealthy"
        );
        assert_eq!(failed.brief(), "127.0.0.2:80 (failed_hc hc_timeout)");
        assert_eq!(failed.success_rate, Some(40.0));
        let unchecked = host(json!({}), Value::Null, hc("unchecked", false));
        assert_eq!(
            (unchecked.state.as_str(), unchecked.in_rotation),
            ("unchecked", true)
        );
        assert_eq!(unchecked.reason, None);
        let both = host(
            json!({"failed_active_health_check": true, "failed_outlier_check": true}),
            json!({"ejected": true, "num_ejections": 2, "ejection_type": "CONSECUTIVE_LOCAL_ORIGIN_FAILURE",
                "ejection_time_left_ms": 1500}),
            hc("unhealthy", false),
        );
        assert_eq!(both.state, "ejected,failed_hc");
        assert_eq!(
            both.reason.as_deref(),
            Some("consecutive_local_origin_failure,hc_failed")
        );
        assert_eq!(both.brief(), "127.0.0.2:80 (ejected,failed_hc consecutive_local_origin_failure,hc_failed, 1.5s left)");
        // Envoy's /clusters: only the flags, no meshd additions.
        let envoy = host(
            json!({"failed_outlier_check": true}),
            Value::Null,
            Value::Null,
        );
        assert_eq!(
            (envoy.state.as_str(), envoy.reason.as_deref()),
            ("ejected", None)
        );
        assert_eq!(duration(0), "0ms");
        assert_eq!(duration(59_999), "60.0s");
    }
}
