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
    })
}

/// The `get` table (`wide` adds uid, ARN and file), aligned columns, a header line.
pub fn table(entries: &[Value], wide: bool) -> String {
    let mut rows: Vec<Vec<String>> = vec![["NAME", "MESH", "VERSION", "LAST UPDATED"]
        .iter()
        .map(|s| s.to_string())
        .collect()];
    if wide {
        rows[0].extend(["UID", "ARN", "FILE"].iter().map(|s| s.to_string()));
    }
    for r in entries.iter().filter_map(row) {
        let mut cols = vec![r.name, r.mesh, r.version, r.updated];
        if wide {
            cols.extend([r.uid, r.arn, r.file]);
        }
        rows.push(cols);
    }
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
                "    host {}{name}  connections {}, requests active {}, total {}\n",
                str_of(h, "address"),
                num_of(h, "cx_active"),
                num_of(h, "rq_active"),
                num_of(h, "rq_total"),
            ));
        }
    }
    out
}

fn str_of(v: &Value, k: &str) -> String {
    v.get(k).and_then(Value::as_str).unwrap_or("").to_string()
}

fn num_of(v: &Value, k: &str) -> String {
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
            json!({"file": "/etc/meshd/vn-green.json", "resource": {"virtualNode": {
                "meshName": "m", "virtualNodeName": "green",
                "metadata": {"version": 3, "lastUpdatedAt": "2026-01-01T00:00:00.000Z"}}}}),
            json!({"file": "/etc/meshd/rt.json", "resource": {"route": {
                "meshName": "m", "virtualRouterName": "paths", "routeName": "red"}}}),
        ];
        let t = table(&entries, false);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(
            lines[0],
            "NAME                MESH   VERSION   LAST UPDATED"
        );
        assert_eq!(
            lines[1],
            "virtualnode/green   m      3         2026-01-01T00:00:00.000Z"
        );
        assert_eq!(lines[2], "route/paths/red     m      -         -");
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
}
