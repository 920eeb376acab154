//! `meshctl explain HOST`: every limit, retry policy and ejection setting a request to HOST
//! passes through on this VM, in order (what Istio users reconstruct from `istioctl
//! proxy-config` dumps), from meshd's compiled config in force and its live occupancy.

use serde_json::Value;

use crate::output::{cluster_live_text, num_of, str_of};

fn dur(v: &Value) -> String {
    match v.as_u64() {
        None => "none".to_string(),
        Some(0) => "none".to_string(),
        Some(ms) if ms % 1000 == 0 => format!("{}s", ms / 1000),
        Some(ms) => format!("{ms}ms"),
    }
}

fn limit(v: &Value) -> String {
    match v.as_u64() {
        Some(n) if n >= 2_147_483_647 => format!("{n} (unlimited)"),
        Some(n) => n.to_string(),
        None => "?".into(),
    }
}

fn route_text(r: &Value, listener_timeout: &Value) -> String {
    let targets: Vec<String> = r
        .get("targets")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|t| format!("{} (weight {})", str_of(t, "cluster"), num_of(t, "weight")))
        .collect();
    let mut conditions = vec![str_of(r, "match")];
    if let Some(m) = r.get("method").and_then(Value::as_str) {
        conditions.push(format!("method {m}"));
    }
    for h in r
        .get("headers")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        conditions.push(format!("header {}", h.as_str().unwrap_or("")));
    }
    let timeout = match r.get("timeout_ms") {
        Some(Value::Null) | None => format!("{} (the listener's)", dur(listener_timeout)),
        Some(t) => dur(t),
    };
    let retry = match r.get("retry") {
        Some(p) if !p.is_null() => format!(
            "{} retries on {}, per try timeout {}, backoff {}..{}",
            num_of(p, "num_retries"),
            str_of(p, "retry_on"),
            dur(&p["per_try_timeout_ms"]),
            dur(&p["backoff_base_ms"]),
            dur(&p["backoff_max_ms"]),
        ),
        _ => "none".into(),
    };
    format!(
        "  route {}: {}\n    to {}\n    timeout {timeout}; retries: {retry}\n",
        str_of(r, "name"),
        conditions.join(", "),
        targets.join(", "),
    )
}

/// A cluster's settings and live state as text.
pub fn cluster_text(c: &Value) -> String {
    let l = &c["limits"];
    let p = &c["pool"];
    let b = &c["retry_budget"];
    let mut out = format!(
        "  cluster {} ({} side)\n    limits: max_connections {}, max_pending_requests {}, max_requests {}, max_retries {}\n",
        str_of(c, "name"),
        str_of(c, "side"),
        limit(&l["max_connections"]),
        limit(&l["max_pending_requests"]),
        limit(&l["max_requests"]),
        limit(&l["max_retries"]),
    );
    out.push_str(&format!(
        "    retry budget: {}% of active requests, at least {}\n",
        num_of(b, "budget_percent"),
        num_of(b, "min_retry_concurrency"),
    ));
    let per_cx = match p["max_requests_per_connection"].as_u64() {
        Some(0) | None => "unlimited".to_string(),
        Some(n) => n.to_string(),
    };
    out.push_str(&format!(
        "    pool: connect timeout {}, idle timeout {}, requests per connection {per_cx}, {}\n",
        dur(&p["connect_timeout_ms"]),
        dur(&p["idle_timeout_ms"]),
        str_of(p, "lb_policy"),
    ));
    match c.get("outlier_detection") {
        Some(o) if !o.is_null() => {
            let enforced = |k: &str| {
                if o[k].as_bool() == Some(true) {
                    "ejects"
                } else {
                    "counted only"
                }
            };
            out.push_str(&format!(
                "    outlier detection: {} consecutive 5xx ({}), {} consecutive gateway errors ({}), interval {}, base ejection {}, at most {}% ejected\n",
                num_of(o, "consecutive_5xx"),
                enforced("enforcing_consecutive_5xx"),
                num_of(o, "consecutive_gateway_failure"),
                enforced("enforcing_consecutive_gateway_failure"),
                dur(&o["interval_ms"]),
                dur(&o["base_ejection_time_ms"]),
                num_of(o, "max_ejection_percent"),
            ));
        }
        _ => out.push_str("    outlier detection: none\n"),
    }
    if let Some(h) = c.get("health_check").filter(|h| !h.is_null()) {
        out.push_str(&format!(
            "    health check: every {}, timeout {}, healthy after {}, unhealthy after {}\n",
            dur(&h["interval_ms"]),
            dur(&h["timeout_ms"]),
            num_of(h, "healthy_threshold"),
            num_of(h, "unhealthy_threshold"),
        ));
    }
    let eps: Vec<&str> = c["endpoints"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    out.push_str(&format!(
        "    endpoints: {}\n",
        if eps.is_empty() {
            "none (503 UH)".to_string()
        } else {
            eps.join(", ")
        }
    ));
    out.push_str(&cluster_live_text(c));
    out
}

/// The explanation as text.
pub fn text(body: &Value) -> String {
    let host = str_of(body, "host");
    let paths = body["paths"].as_array().cloned().unwrap_or_default();
    let mut out = String::new();
    if paths.is_empty() {
        out.push_str(&format!(
            "No local workload on this VM routes {host}: no egress listener answers it.\n"
        ));
    }
    for p in &paths {
        out.push_str(&format!(
            "{host} from the app of {} on this VM, in order:\n  egress listener {} (request timeout {}, stream idle timeout {})\n  virtual host {}\n",
            str_of(p, "node"),
            str_of(p, "listener"),
            dur(&p["request_timeout_ms"]),
            dur(&p["stream_idle_timeout_ms"]),
            str_of(p, "virtual_host"),
        ));
        for r in p["routes"].as_array().into_iter().flatten() {
            out.push_str(&route_text(r, &p["request_timeout_ms"]));
        }
        for c in p["clusters"].as_array().into_iter().flatten() {
            out.push_str(&cluster_text(c));
        }
    }
    let server = body["server_side"].as_array().cloned().unwrap_or_default();
    if !server.is_empty() {
        out.push_str(&format!(
            "Server side, on every VM that serves {} (its WorkloadEntries):\n",
            host.rsplit_once(':').map_or(host.as_str(), |(h, _)| h)
        ));
        for s in &server {
            let l = &s["limits"];
            let rule = match s["rule"].as_str() {
                Some(r) => format!("DestinationRule {r}"),
                None => "no DestinationRule: Istio's defaults".into(),
            };
            out.push_str(&format!(
                "  inbound|{}||… ({rule}): max_connections {}, max_pending_requests {}, max_requests {}, max_retries {}\n",
                num_of(s, "port"),
                limit(&l["max_connections"]),
                limit(&l["max_pending_requests"]),
                limit(&l["max_requests"]),
                limit(&l["max_retries"]),
            ));
        }
    }
    for c in body["served_here"].as_array().into_iter().flatten() {
        out.push_str("Served on this VM too:\n");
        out.push_str(&cluster_text(c));
    }
    out
}
