//! What meshctl prints: the `get` table and the live state of `describe`.

use serde_json::Value;

/// The `<kind>/<qualified name>`, mesh, version and update time of a describe wrapper.
struct Row {
    name: String,
    mesh: String,
    version: String,
    updated: String,
    uid: String,
    arn: String,
    file: String,
    served: String,
}

/// A listed or described entry as `-o json` prints it: the describe object, plus `served`
/// (`here`/`elsewhere`) beside the wrapper for a virtual node or gateway (apply ignores it).
pub fn get_json(entry: &Value) -> Option<Value> {
    let mut resource = entry.get("resource")?.clone();
    if let (Some(served), Some(obj)) = (entry.get("served"), resource.as_object_mut()) {
        obj.insert("served".to_string(), served.clone());
    }
    Some(resource)
}

fn row(entry: &Value) -> Option<Row> {
    let wrapper = entry.get("resource")?.as_object()?;
    let (key, inner) = wrapper.iter().next()?;
    let kind = mesh_core::model::Kind::from_wrapper_key(key)?;
    let s = |k: &str| {
        inner
            .get(k)
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    let name = match kind.parent_kind() {
        Some(p) => format!("{}/{}", s(p.name_key()), s(kind.name_key())),
        None => s(kind.name_key()),
    };
    let meta = inner.get("metadata");
    let m = |k: &str| {
        meta.and_then(|m| m.get(k))
            .map(|v| match v {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            })
            .unwrap_or_else(|| "-".to_string())
    };
    Some(Row {
        name: format!("{kind}/{name}"),
        mesh: s("meshName"),
        version: m("version"),
        updated: m("lastUpdatedAt"),
        uid: m("uid"),
        arn: m("arn"),
        file: entry
            .get("file")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string(),
        served: entry
            .get("served")
            .and_then(Value::as_str)
            .unwrap_or("-")
            .to_string(),
    })
}

/// The `get` table (`wide` adds uid, ARN and file), aligned columns, a header line. `SERVED`
/// is `here` or `elsewhere` for a virtual node or gateway, `-` for other kinds.
pub fn table(entries: &[Value], wide: bool) -> String {
    let mut rows: Vec<Vec<String>> = vec![["NAME", "MESH", "VERSION", "LAST UPDATED", "SERVED"]
        .iter()
        .map(|s| s.to_string())
        .collect()];
    if wide {
        rows[0].extend(["UID", "ARN", "FILE"].iter().map(|s| s.to_string()));
    }
    for r in entries.iter().filter_map(row) {
        let mut cols = vec![r.name, r.mesh, r.version, r.updated, r.served];
        if wide {
            cols.extend([r.uid, r.arn, r.file]);
        }
        rows.push(cols);
    }
    align(rows)
}

/// Rows as aligned columns, three spaces apart, trailing blanks trimmed.
pub fn align(rows: Vec<Vec<String>>) -> String {
    let widths: Vec<usize> = (0..rows[0].len())
        .map(|i| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for r in rows {
        let line: Vec<String> = r
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{c:<w$}", w = widths[i]))
            .collect();
        out.push_str(line.join("   ").trim_end());
        out.push('\n');
    }
    out
}

/// The live state as text: listeners, then per cluster the breaker occupancy
/// (`active/limit`, `OPEN` when reached, refusals) and the hosts.
pub fn live_text(live: &Value) -> String {
    let mut out = String::from("Live state (this meshd):\n");
    for l in live
        .get("listeners")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        out.push_str(&format!(
            "  listener {} {}  connections active {}, requests active {}\n",
            str_of(l, "role"),
            str_of(l, "address"),
            num_of(l, "downstream_cx_active"),
            num_of(l, "downstream_rq_active"),
        ));
    }
    for c in live
        .get("clusters")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        out.push_str(&format!("  cluster {}\n", str_of(c, "name")));
        out.push_str(&cluster_live_text(c));
    }
    out
}

/// A cluster's breaker occupancy (`active/limit`, `OPEN` when reached, refusals) and hosts,
/// indented by four spaces.
pub fn cluster_live_text(c: &Value) -> String {
    let mut out = String::new();
    {
        if let Some(b) = c.get("breakers").and_then(Value::as_object) {
            for (limit, v) in b {
                let open = if v.get("open").and_then(Value::as_bool) == Some(true) {
                    "  OPEN"
                } else {
                    ""
                };
                out.push_str(&format!(
                    "    {:<22} {:>6}/{:<10} refused {}, peak {}{open}\n",
                    limit,
                    num_of(v, "active"),
                    num_of(v, "limit"),
                    num_of(v, "refused"),
                    num_of(v, "peak"),
                ));
            }
        }
        let hosts = c.get("hosts").and_then(Value::as_array);
        for h in hosts.into_iter().flatten() {
            let hostname = str_of(h, "hostname");
            let name = if hostname.is_empty() {
                String::new()
            } else {
                format!(" ({hostname})")
            };
            out.push_str(&format!(
                "    host {}{name}  {}  connections {}, requests active {}, total {}, errors {}\n",
                str_of(h, "address"),
                host_health(h),
                num_of(h, "cx_active"),
                num_of(h, "rq_active"),
                num_of(h, "rq_total"),
                num_of(h, "rq_error"),
            ));
        }
    }
    out
}

/// A host's health in words: `healthy`, or why it is out of rotation and until when
/// (`/failed_outlier_check: ejected for consecutive_5xx (ejection 2), 1.4s left`), then the
/// outlier counters and the health check's state when the cluster has them.
fn host_health(h: &Value) -> String {
    let flags = h
        .get("health_flags")
        .and_then(Value::as_str)
        .unwrap_or("healthy");
    let mut out = flags.to_string();
    let o = h.get("mesh_outlier");
    if let Some(o) = o.filter(|o| o.get("ejected").and_then(Value::as_bool) == Some(true)) {
        let kind = o
            .get("ejection_type")
            .and_then(Value::as_str)
            .unwrap_or("?")
            .to_lowercase();
        let times = o.get("num_ejections").and_then(Value::as_u64).unwrap_or(0);
        out.push_str(&format!(": ejected for {kind} (ejection {times})"));
        if let Some(ms) = o.get("ejection_time_left_ms").and_then(Value::as_u64) {
            out.push_str(&format!(", {:.1}s left", ms as f64 / 1000.0));
        }
    } else if let Some(o) = o {
        out.push_str(&format!(
            " (consecutive 5xx {}, gateway failures {}, local failures {}; ejected {} times)",
            num_of(o, "consecutive_5xx"),
            num_of(o, "consecutive_gateway_failure"),
            num_of(o, "consecutive_local_origin_failure"),
            num_of(o, "num_ejections"),
        ));
    }
    if let Some(hc) = h.get("mesh_health_check") {
        out.push_str(&format!(", health check {}", str_of(hc, "state")));
        if hc.get("timed_out").and_then(Value::as_bool) == Some(true) {
            out.push_str(" (timed out)");
        }
    }
    out
}

/// A string field, empty when absent.
pub fn str_of(v: &Value, k: &str) -> String {
    v.get(k).and_then(Value::as_str).unwrap_or("").to_string()
}

/// A field as JSON text, empty when absent.
pub fn num_of(v: &Value, k: &str) -> String {
    v.get(k).map(ToString::to_string).unwrap_or_default()
}

/// A validation error as data: file, resource (null when unknown), JSON path, message, and the
/// one-line form.
pub fn config_error_json(e: &mesh_core::model::ConfigError) -> Value {
    serde_json::json!({
        "file": e.file.display().to_string(),
        "resource": e.resource,
        "path": e.path,
        "message": e.message,
        "line": e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn table_aligns_columns_and_names_routes_with_their_router() {
        let entries = vec![
            json!({"file": "/etc/meshd/vn-green.json", "served": "here", "resource": {"virtualNode": {
                "meshName": "m", "virtualNodeName": "green",
                "metadata": {"version": 3, "lastUpdatedAt": "2026-01-01T00:00:00.000Z"}}}}),
            json!({"file": "/etc/meshd/rt.json", "resource": {"route": {
                "meshName": "m", "virtualRouterName": "paths", "routeName": "red"}}}),
        ];
        let t = table(&entries, false);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(
            lines[0],
            "NAME                MESH   VERSION   LAST UPDATED               SERVED"
        );
        assert_eq!(
            lines[1],
            "virtualnode/green   m      3         2026-01-01T00:00:00.000Z   here"
        );
        assert_eq!(
            lines[2],
            "route/paths/red     m      -         -                          -"
        );
        assert!(table(&entries, true).contains("/etc/meshd/rt.json"));
    }

    #[test]
    fn live_text_marks_open_breakers() {
        let live = json!({"listeners": [], "clusters": [{"name": "c", "breakers": {
            "max_connections": {"active": 5, "limit": 5, "open": true, "refused": 2, "peak": 5}},
            "hosts": [{"address": "127.0.0.1:1", "hostname": "h", "cx_active": 5,
                       "rq_active": 5, "rq_total": 9}]}]});
        let t = live_text(&live);
        assert!(t.contains("5/5"), "{t}");
        assert!(t.contains("OPEN"), "{t}");
        assert!(t.contains("host 127.0.0.1:1 (h)"), "{t}");
    }

    #[test]
    fn live_text_says_why_a_host_is_out_and_until_when() {
        let live = json!({"listeners": [], "clusters": [{"name": "c", "breakers": {},
            "hosts": [
                {"address": "127.0.0.3:1", "hostname": "h", "health_flags": "/failed_outlier_check",
                 "mesh_outlier": {"ejected": true, "num_ejections": 2,
                     "ejection_type": "CONSECUTIVE_5XX", "ejection_time_left_ms": 1450},
                 "mesh_health_check": {"state": "unhealthy", "timed_out": true}},
                {"address": "127.0.0.2:1", "hostname": "h", "health_flags": "healthy",
                 "mesh_outlier": {"ejected": false, "num_ejections": 0, "consecutive_5xx": 1,
                     "consecutive_gateway_failure": 1, "consecutive_local_origin_failure": 0}}]}]});
        let t = live_text(&live);
        assert!(
            t.contains("host 127.0.0.3:1 (h)  /failed_outlier_check: ejected for consecutive_5xx (ejection 2), 1.4s left, health check unhealthy (timed out)"),
            "{t}"
        );
        assert!(
            t.contains("host 127.0.0.2:1 (h)  healthy (consecutive 5xx 1, gateway failures 1, local failures 0; ejected 0 times)"),
            "{t}"
        );
    }
}
