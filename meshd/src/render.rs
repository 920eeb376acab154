//! Admin output formats: `/stats` (Envoy text and JSON), `/stats/prometheus`, `/clusters`.

use std::fmt::Write as _;

use mesh_core::breaker::{Breakers, Limit};
use mesh_core::stats::{StatType, Visit};
use serde_json::{json, Value};

use crate::server::{AnyCluster, View};

/// One stat line.
pub struct Stat {
    /// Full name.
    pub name: String,
    /// Counter or gauge.
    pub kind: StatType,
    /// Value.
    pub value: u64,
    /// Tags for Prometheus: (label, value), in Envoy's extraction order.
    pub tags: Vec<(&'static str, String)>,
    /// The name with tags removed, for Prometheus.
    pub tag_free: String,
}

/// Process-wide counters and gauges (`server.*`).
#[derive(Debug, Default)]
pub struct ServerStats {
    /// Config changes applied.
    pub config_reload_success: mesh_core::stats::Counter,
    /// Config changes rejected (the last good config kept serving).
    pub config_reload_failure: mesh_core::stats::Counter,
    /// Times the config directory was found missing or empty while a config was in force (once
    /// per episode; the running config kept serving).
    pub config_dir_fault: mesh_core::stats::Counter,
    /// Entries of the config directory skipped: dangling or looping symlinks, non-UTF-8 names,
    /// directories or FIFOs named `*.json` (each counted once while it stays).
    pub config_files_skipped: mesh_core::stats::Counter,
    /// 1 while the config in force is not what the directory holds (the directory is missing,
    /// empty or invalid, or meshd started from its last-good snapshot).
    pub config_stale: mesh_core::stats::Gauge,
    /// Settings of the config in force that are accepted but not in force yet (health checks,
    /// outlier detection, retries, ...; `meshctl validate` lists them).
    pub config_not_in_force: mesh_core::stats::Gauge,
    /// Admin requests refused (from a web page, a DNS-rebinding `Host`, a mutating request with
    /// a body).
    pub admin_rq_refused: mesh_core::stats::Counter,
    /// The admin endpoint's accept failures (`listener.admin.*`).
    pub admin_accept: std::sync::Arc<crate::accept::AcceptStats>,
    /// Requests the read-only stats listener (`--stats-listen`) refused: from a web page, a
    /// DNS-rebinding `Host`, a method other than GET (405), a path it does not serve (404).
    pub stats_rq_refused: mesh_core::stats::Counter,
    /// The stats listener's accept failures (`listener.stats.*`).
    pub stats_accept: std::sync::Arc<crate::accept::AcceptStats>,
    /// The control socket's accept failures (`listener.control.*`).
    pub control_accept: std::sync::Arc<crate::accept::AcceptStats>,
}

impl ServerStats {
    /// Every counter with its name under `server.`, as `/stats` lists them.
    pub fn counters(&self) -> [(&'static str, &mesh_core::stats::Counter); 6] {
        [
            ("admin_rq_refused", &self.admin_rq_refused),
            ("config_dir_fault", &self.config_dir_fault),
            ("config_files_skipped", &self.config_files_skipped),
            ("config_reload_failure", &self.config_reload_failure),
            ("config_reload_success", &self.config_reload_success),
            ("stats_rq_refused", &self.stats_rq_refused),
        ]
    }

    /// Every gauge with its name under `server.`.
    pub fn gauges(&self) -> [(&'static str, &mesh_core::stats::Gauge); 2] {
        [
            ("config_not_in_force", &self.config_not_in_force),
            ("config_stale", &self.config_stale),
        ]
    }

    /// `POST /reset_counters`: every counter but those that record faults and refusals.
    pub fn reset(&self) {
        for (name, c) in self.counters() {
            if !mesh_core::stats::kept_on_reset(name) {
                c.reset();
            }
        }
    }
}

fn breaker_stats(prefix: &str, b: &Breakers, out: &mut Vec<(String, StatType, u64)>) {
    for l in Limit::ALL {
        let r = b.get(l);
        out.push((
            format!("{prefix}{}", l.open_gauge()),
            StatType::Gauge,
            r.open(),
        ));
        out.push((
            format!("{prefix}{}", l.remaining_gauge()),
            StatType::Gauge,
            r.remaining(),
        ));
        out.push((
            format!("{prefix}{}", l.refused_counter()),
            StatType::Counter,
            r.refused(),
        ));
        let peak = l.open_gauge().replace("_open", "_peak");
        out.push((format!("{prefix}{peak}"), StatType::Gauge, r.peak()));
    }
    out.push((format!("{prefix}cx_pool_open"), StatType::Gauge, 0));
}

fn cluster_stats(c: &AnyCluster, out: &mut Vec<(String, StatType, u64)>) {
    let info = c.info();
    let p = format!("cluster.{}.", info.name);
    let mut emit = |n: String, t: StatType, v: u64| out.push((n, t, v));
    info.counters.visit_counters(&p, &mut emit);
    info.codes.visit(&p, "upstream_rq", &mut emit);
    let b = &info.breakers;
    emit(
        format!("{p}upstream_cx_active"),
        StatType::Gauge,
        b.connections.current(),
    );
    emit(
        format!("{p}upstream_rq_active"),
        StatType::Gauge,
        b.requests.current(),
    );
    emit(
        format!("{p}upstream_rq_pending_active"),
        StatType::Gauge,
        b.pending.current(),
    );
    let hosts = c.hosts();
    emit(
        format!("{p}membership_total"),
        StatType::Gauge,
        hosts.len() as u64,
    );
    emit(
        format!("{p}membership_healthy"),
        StatType::Gauge,
        hosts.iter().filter(|h| h.usable()).count() as u64,
    );
    breaker_stats(
        &format!("{p}circuit_breakers.default."),
        &info.breakers,
        out,
    );
    breaker_stats(&format!("{p}circuit_breakers.high."), &info.high, out);
    if let AnyCluster::Tcp(u) = c {
        let mut emit = |n: String, t: StatType, v: u64| out.push((n, t, v));
        u.retry_stats.visit(&p, &mut emit);
        if let Some(d) = u.outlier() {
            d.stats()
                .visit(&format!("{p}outlier_detection."), &mut emit);
        }
        if let Some(h) = u.health() {
            h.visit(&format!("{p}health_check."), &mut emit);
        }
    }
}

fn sanitize(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect::<String>()
        .trim_matches('_')
        .to_owned()
}

/// Every stat of the daemon, sorted by name. With `node`, only that node's listeners and the
/// clusters it uses; listener stats of several nodes are told apart by a `node.<name>.` prefix
/// (a node's own stats keep Envoy's exact names: `http.ingress.downstream_cx_active`).
pub fn collect(view: &View, server: &ServerStats, uptime: u64, node: Option<&str>) -> Vec<Stat> {
    let mut raw: Vec<(String, StatType, u64)> = Vec::new();
    let mut nodes: Vec<&str> = view.listeners.iter().map(|(n, ..)| n.as_str()).collect();
    nodes.sort();
    nodes.dedup();
    let scoped = node.is_some() || nodes.len() <= 1;
    for (n, role, _, stats) in &view.listeners {
        if node.is_some_and(|want| want != n) {
            continue;
        }
        let prefix = if scoped {
            format!("http.{}.", role.stat_word())
        } else {
            format!("node.{n}.http.{}.", role.stat_word())
        };
        stats.visit(&prefix, &mut |name, t, v| raw.push((name, t, v)));
    }
    // Envoy's listener stats: `listener.<ip>_<port>.`, and `listener.admin.` for the admin.
    let overflow = |scope: &str, a: &crate::accept::AcceptStats| {
        let name = format!("listener.{scope}.downstream_cx_overflow");
        (name, StatType::Counter, a.downstream_cx_overflow.get())
    };
    for (n, addr, a) in &view.accept {
        if node.is_none_or(|want| want == n) {
            raw.push(overflow(&addr.to_string().replace(':', "_"), a));
        }
    }
    if node.is_none() {
        raw.push(overflow("admin", &server.admin_accept));
        raw.push(overflow("control", &server.control_accept));
        raw.push(overflow("stats", &server.stats_accept));
    }
    let node_clusters: Option<Vec<String>> = node.map(|want| {
        view.config
            .listeners
            .iter()
            .filter(|l| l.node == want)
            .flat_map(|l| {
                let mut names: Vec<String> = l.admission_cluster.iter().cloned().collect();
                names.extend(routing_clusters(&l.routing));
                names
            })
            .collect()
    });
    for c in &view.clusters {
        if let Some(list) = &node_clusters {
            if !list.contains(&c.info().name) {
                continue;
            }
        }
        cluster_stats(c, &mut raw);
    }
    if node.is_none() {
        for w in &view.logs {
            let p = format!("access_log.{}.", sanitize(&w.path.display().to_string()));
            raw.push((
                format!("{p}written_lines"),
                StatType::Counter,
                w.stats.written.get(),
            ));
            raw.push((
                format!("{p}dropped_lines"),
                StatType::Counter,
                w.stats.dropped.get(),
            ));
            raw.push((
                format!("{p}write_errors"),
                StatType::Counter,
                w.stats.write_errors.get(),
            ));
        }
        raw.push(("server.live".into(), StatType::Gauge, 1));
        raw.push(("server.uptime".into(), StatType::Gauge, uptime));
        for (name, c) in server.counters() {
            raw.push((format!("server.{name}"), StatType::Counter, c.get()));
        }
        for (name, g) in server.gauges() {
            raw.push((format!("server.{name}"), StatType::Gauge, g.get()));
        }
    }
    raw.sort_by(|a, b| a.0.cmp(&b.0));
    let cluster_names: Vec<&str> = view
        .clusters
        .iter()
        .map(|c| c.info().name.as_str())
        .collect();
    raw.into_iter()
        .map(|(name, kind, value)| {
            let (tag_free, tags) = extract_tags(&name, &cluster_names);
            Stat {
                name,
                kind,
                value,
                tags,
                tag_free,
            }
        })
        .collect()
}

/// The clusters a routing table can send to.
pub fn routing_clusters(r: &mesh_core::runtime::Routing) -> Vec<String> {
    use mesh_core::runtime::Routing;
    let vh = |v: &mesh_core::runtime::VirtualHost| -> Vec<String> {
        v.routes
            .iter()
            .flat_map(|r| r.targets.iter().map(|t| t.cluster.clone()))
            .collect()
    };
    match r {
        Routing::Cluster(c) => vec![c.clone()],
        Routing::Hosts(hs) => hs.iter().flat_map(|h| vh(h)).collect(),
        Routing::Gateway(gs) => gs.iter().flat_map(|g| vh(&g.target)).collect(),
    }
}

/// Envoy's tag extraction for the names we emit: response code, code class, cluster name,
/// connection-manager prefix (and our node prefix).
fn extract_tags(name: &str, clusters: &[&str]) -> (String, Vec<(&'static str, String)>) {
    let mut tags = Vec::new();
    let mut rest = name.to_owned();
    if let Some(n) = rest.strip_prefix("node.") {
        if let Some((node, tail)) = n.split_once('.') {
            tags.push(("envoy_node", node.to_owned()));
            rest = tail.to_owned();
        }
    }
    // `_rq_503` / `_rq_5xx` at the end.
    if let Some(pos) = rest.rfind("_rq_") {
        let suffix = &rest[pos + 4..];
        if suffix.len() == 3 && suffix.bytes().all(|b| b.is_ascii_digit()) {
            tags.push(("envoy_response_code", suffix.to_owned()));
            rest.truncate(pos + 3);
        } else if suffix.len() == 3
            && suffix.ends_with("xx")
            && suffix.as_bytes()[0].is_ascii_digit()
        {
            tags.push(("envoy_response_code_class", suffix[..1].to_owned()));
            rest.truncate(pos + 3);
            rest.push_str("_xx");
        }
    }
    if let Some(after) = rest.strip_prefix("cluster.") {
        if let Some(c) = clusters
            .iter()
            .filter(|c| after.starts_with(&format!("{c}.")))
            .max_by_key(|c| c.len())
        {
            tags.push(("envoy_cluster_name", (*c).to_owned()));
            rest = format!("cluster.{}", &after[c.len() + 1..]);
        }
    } else if let Some(after) = rest.strip_prefix("listener.") {
        // Envoy's `^listener\.(([_.[:digit:]]*|[_\[\]aAbBcCdDeEfF[:digit:]]*)\.)`: the longest
        // run of address characters that ends before a dot (so `listener.admin.` has no tag).
        let address = [
            |c: char| c.is_ascii_digit() || c == '_' || c == '.',
            |c: char| c.is_ascii_hexdigit() || matches!(c, '_' | '[' | ']'),
        ]
        .iter()
        .filter_map(|allowed| {
            // The run and the character after it, which may be the dot that ends it.
            let run = after.find(|c| !allowed(c)).map_or(after.len(), |i| i + 1);
            after.get(..run)?.rfind('.').filter(|&dot| dot > 0)
        })
        .max();
        if let Some(dot) = address {
            tags.push(("envoy_listener_address", after[..dot].to_owned()));
            rest = format!("listener.{}", &after[dot + 1..]);
        }
    } else if let Some(after) = rest.strip_prefix("http.") {
        if let Some((prefix, tail)) = after.split_once('.') {
            tags.push(("envoy_http_conn_manager_prefix", prefix.to_owned()));
            rest = format!("http.{tail}");
        }
    }
    (rest, tags)
}

/// `name: value` lines.
pub fn text(stats: &[Stat]) -> String {
    let mut out = String::with_capacity(stats.len() * 48);
    for s in stats {
        let _ = writeln!(out, "{}: {}", s.name, s.value);
    }
    out
}

/// `{"stats":[{"name":…,"value":…}]}`.
pub fn json(stats: &[Stat]) -> String {
    let list: Vec<Value> = stats
        .iter()
        .map(|s| json!({"name": s.name, "value": s.value}))
        .collect();
    let mut out = json!({ "stats": list }).to_string();
    out.push('\n');
    out
}

fn escape_label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Prometheus text exposition (v0.0.4): counters, then gauges, grouped by metric.
pub fn prometheus(stats: &[Stat]) -> String {
    use std::collections::BTreeMap;
    let mut groups: BTreeMap<(u8, String), Vec<String>> = BTreeMap::new();
    for s in stats {
        let metric = format!("envoy_{}", mesh_core::stats::prometheus_name(&s.tag_free));
        let order = u8::from(s.kind == StatType::Gauge);
        let labels: Vec<String> = s
            .tags
            .iter()
            .map(|(k, v)| format!("{k}=\"{}\"", escape_label(v)))
            .collect();
        let series = if labels.is_empty() {
            format!("{metric} {}", s.value)
        } else {
            format!("{metric}{{{}}} {}", labels.join(","), s.value)
        };
        groups.entry((order, metric)).or_default().push(series);
    }
    let mut out = String::new();
    for ((order, metric), mut series) in groups {
        series.sort();
        let kind = if order == 0 { "counter" } else { "gauge" };
        let _ = writeln!(out, "# TYPE {metric} {kind}");
        for s in series {
            out.push_str(&s);
            out.push('\n');
        }
        out.push('\n');
    }
    out
}

/// Live occupancy of each limit: `{"max_connections": {"active", "limit", "open", "refused",
/// "peak"}, …}`, as `/clusters?format=json` and `meshctl describe` show it.
pub fn occupancy_json(b: &Breakers) -> serde_json::Map<String, Value> {
    Limit::ALL
        .iter()
        .map(|l| {
            let r = b.get(*l);
            (
                l.threshold_name().to_owned(),
                json!({"active": r.current(), "limit": r.max(), "open": r.open() == 1,
                       "refused": r.refused(), "peak": r.peak()}),
            )
        })
        .collect()
}

mod clusters;
pub use clusters::{clusters_json, clusters_text, mesh_host_state};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_follow_envoys_extraction() {
        let clusters = ["cds_ingress_m_green_http_8080"];
        let (n, t) = extract_tags(
            "cluster.cds_ingress_m_green_http_8080.upstream_rq_503",
            &clusters,
        );
        assert_eq!(n, "cluster.upstream_rq");
        assert_eq!(
            t,
            vec![
                ("envoy_response_code", "503".to_string()),
                (
                    "envoy_cluster_name",
                    "cds_ingress_m_green_http_8080".to_string()
                )
            ]
        );
        let (n, t) = extract_tags("http.ingress.downstream_rq_5xx", &clusters);
        assert_eq!(n, "http.downstream_rq_xx");
        assert_eq!(t[0], ("envoy_response_code_class", "5".to_string()));
        assert_eq!(
            t[1],
            ("envoy_http_conn_manager_prefix", "ingress".to_string())
        );
        let (n, _) = extract_tags(
            "cluster.cds_ingress_m_green_http_8080.circuit_breakers.default.cx_open",
            &clusters,
        );
        assert_eq!(n, "cluster.circuit_breakers.default.cx_open");
        let (n, t) = extract_tags("listener.127.0.0.1_15000.downstream_cx_overflow", &clusters);
        assert_eq!(n, "listener.downstream_cx_overflow");
        assert_eq!(
            t,
            vec![("envoy_listener_address", "127.0.0.1_15000".to_string())]
        );
        let (n, t) = extract_tags("listener.[__1]_15000.downstream_cx_overflow", &clusters);
        assert_eq!(n, "listener.downstream_cx_overflow");
        assert_eq!(
            t,
            vec![("envoy_listener_address", "[__1]_15000".to_string())]
        );
        let (n, t) = extract_tags("listener.admin.downstream_cx_overflow", &clusters);
        assert_eq!(n, "listener.admin.downstream_cx_overflow");
        assert!(t.is_empty());
    }
}
