//! `meshstat clusters [PATTERN]`: the `/clusters` facts (limits with live occupancy, hosts with
//! their counts and health), one fact per line or one JSON object per cluster.

use serde_json::{json, Map, Value};

/// Envoy's names of the four limits, in order.
pub const LIMITS: [&str; 4] = [
    "max_connections",
    "max_pending_requests",
    "max_requests",
    "max_retries",
];

/// One limit of one cluster, as `/clusters?format=json` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LimitState {
    /// `max_connections`, …
    pub limit_name: String,
    /// The configured limit.
    pub limit: u64,
    /// In flight now (`None` when meshd gave no occupancy).
    pub active: Option<u64>,
    /// Highest occupancy seen.
    pub peak: Option<u64>,
    /// Refused by this limit.
    pub refused: Option<u64>,
    /// At capacity now.
    pub open: bool,
}

pub(crate) fn u(v: Option<&Value>) -> Option<u64> {
    match v? {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

/// The cluster's name.
pub fn name(c: &Value) -> &str {
    c.get("name").and_then(Value::as_str).unwrap_or("")
}

/// The default-priority limits of a cluster, with meshd's occupancy when present.
pub fn limits(c: &Value) -> Vec<LimitState> {
    let thresholds = c
        .pointer("/circuit_breakers/thresholds")
        .and_then(Value::as_array)
        .and_then(|t| t.iter().find(|t| t.get("priority").is_none()));
    let occ = c.get("mesh_breaker_occupancy");
    LIMITS
        .iter()
        .filter_map(|l| {
            let o = occ.and_then(|o| o.get(*l));
            let limit = u(thresholds.and_then(|t| t.get(*l))).or_else(|| u(o?.get("limit")))?;
            Some(LimitState {
                limit_name: (*l).to_owned(),
                limit,
                active: u(o.and_then(|o| o.get("active"))),
                peak: u(o.and_then(|o| o.get("peak"))),
                refused: u(o.and_then(|o| o.get("refused"))),
                open: o
                    .and_then(|o| o.get("open"))
                    .and_then(Value::as_bool)
                    .unwrap_or(false),
            })
        })
        .collect()
}

/// A host's health in Envoy's `/clusters` text form (`healthy`, `/failed_outlier_check`, …).
pub fn health(h: &Value) -> String {
    let hs = h.get("health_status");
    let mut out = String::new();
    for (key, text) in [
        ("failed_active_health_check", "/failed_active_hc"),
        ("failed_outlier_check", "/failed_outlier_check"),
        ("failed_active_degraded_check", "/degraded_active_hc"),
        ("pending_dynamic_removal", "/pending_dynamic_removal"),
        ("pending_active_hc", "/pending_active_hc"),
        (
            "excluded_via_immediate_hc_fail",
            "/excluded_via_immediate_hc_fail",
        ),
        ("active_hc_timeout", "/active_hc_timeout"),
    ] {
        if hs.and_then(|s| s.get(key)).and_then(Value::as_bool) == Some(true) {
            out.push_str(text);
        }
    }
    match hs
        .and_then(|s| s.get("eds_health_status"))
        .and_then(Value::as_str)
    {
        Some("UNHEALTHY") => out.push_str("/failed_eds_health"),
        Some("DEGRADED") => out.push_str("/degraded_eds_health"),
        Some("DRAINING") => out.push_str("/eds_status_draining"),
        _ => {}
    }
    if out.is_empty() {
        "healthy".into()
    } else {
        out
    }
}

/// A host's `ip:port` (`[ip]:port` for IPv6).
pub(crate) fn host_address(h: &Value) -> String {
    let sa = h.pointer("/address/socket_address");
    let ip = sa
        .and_then(|s| s.get("address"))
        .and_then(Value::as_str)
        .unwrap_or("?");
    let port = u(sa.and_then(|s| s.get("port_value"))).unwrap_or(0);
    if ip.contains(':') {
        format!("[{ip}]:{port}")
    } else {
        format!("{ip}:{port}")
    }
}

/// A host's stats by name, sorted; Envoy omits zero values, they read 0 here.
pub(crate) fn host_stats(h: &Value) -> Map<String, Value> {
    let mut m: Vec<(String, u64)> = h
        .get("stats")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|s| {
                    Some((
                        s.get("name")?.as_str()?.to_owned(),
                        u(s.get("value")).unwrap_or(0),
                    ))
                })
                .collect()
        })
        .unwrap_or_default();
    m.sort();
    m.into_iter().map(|(k, v)| (k, json!(v))).collect()
}

/// The cluster's `host_statuses`.
pub(crate) fn hosts(c: &Value) -> Vec<&Value> {
    c.get("host_statuses")
        .and_then(Value::as_array)
        .map(|a| a.iter().collect())
        .unwrap_or_default()
}

/// Text lines for one cluster: `<cluster> limit …` per limit, `<cluster> host …` per host.
pub fn text(c: &Value, prefix: Option<&str>) -> Vec<String> {
    let p = prefix.map(|p| format!("{p} ")).unwrap_or_default();
    let n = name(c);
    let mut out = Vec::new();
    for l in limits(c) {
        let mut s = format!("{p}{n} limit {} {}", l.limit_name, l.limit);
        for (k, v) in [
            ("active", l.active),
            ("peak", l.peak),
            ("refused", l.refused),
        ] {
            if let Some(v) = v {
                s.push_str(&format!(" {k} {v}"));
            }
        }
        if l.open {
            s.push_str(" open");
        }
        out.push(s);
    }
    for h in hosts(c) {
        let mut s = format!("{p}{n} host {} {}", host_address(h), health(h));
        for (k, v) in host_stats(h) {
            s.push_str(&format!(" {k} {v}"));
        }
        out.push(s);
    }
    out
}

/// One JSON object for one cluster.
pub fn to_json(c: &Value, source: &str) -> Value {
    let limits: Map<String, Value> = limits(c)
        .into_iter()
        .map(|l| {
            (
                l.limit_name.clone(),
                json!({"limit": l.limit, "active": l.active, "peak": l.peak, "refused": l.refused, "open": l.open}),
            )
        })
        .collect();
    let hosts: Vec<Value> = hosts(c)
        .into_iter()
        .map(|h| {
            json!({
                "address": host_address(h),
                "hostname": h.get("hostname").cloned().unwrap_or(Value::Null),
                "health": health(h),
                "stats": host_stats(h),
            })
        })
        .collect();
    json!({"source": source, "name": name(c), "limits": limits, "hosts": hosts})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_and_hosts_render_one_fact_per_line() {
        let c = json!({
            "name": "pyserver",
            "circuit_breakers": {"thresholds": [
                {"max_connections": 5, "max_pending_requests": 1, "max_requests": 9, "max_retries": 3},
                {"priority": "HIGH", "max_connections": 1, "max_pending_requests": 1, "max_requests": 1, "max_retries": 1}]},
            "host_statuses": [{"address": {"socket_address": {"address": "10.0.0.1", "port_value": 80}},
                "stats": [{"name": "cx_active", "value": "2", "type": "GAUGE"}, {"name": "rq_total"}],
                "health_status": {"failed_outlier_check": true, "eds_health_status": "HEALTHY"}}],
            "mesh_breaker_occupancy": {"max_pending_requests": {"active": 1, "limit": 1, "open": true, "refused": 4, "peak": 1}}
        });
        let t = text(&c, None);
        assert_eq!(t[0], "pyserver limit max_connections 5");
        assert_eq!(
            t[1],
            "pyserver limit max_pending_requests 1 active 1 peak 1 refused 4 open"
        );
        assert_eq!(
            t[4],
            "pyserver host 10.0.0.1:80 /failed_outlier_check cx_active 2 rq_total 0"
        );
        let j = to_json(&c, "a");
        assert_eq!(j["limits"]["max_pending_requests"]["refused"], 4);
        assert_eq!(j["hosts"][0]["stats"]["cx_active"], 2);
    }
}
