//! The meshd admin endpoint as meshstat reads it: `/stats?format=json`, `/stats/prometheus`
//! (for the type of each stat) and `/clusters?format=json`, over a small blocking HTTP client.

use std::collections::HashMap;
use std::time::Duration;

use serde::Serialize;

use crate::error::{Error, Result};

/// Counter or gauge, as Envoy's `/stats/prometheus` `# TYPE` lines say.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// Only goes up (until `/reset_counters`): shown as a rate by `watch`, summed by `--sum`.
    Counter,
    /// A current value.
    Gauge,
}

/// One stat of one meshd.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stat {
    /// Full Envoy name (`cluster.<c>.upstream_cx_active`).
    pub name: String,
    /// Value.
    pub value: u64,
    /// Counter or gauge.
    pub kind: Kind,
}

/// One meshd admin endpoint.
#[derive(Debug, Clone)]
pub struct Admin {
    /// The address as the user gave it (shown as the source of every line).
    pub label: String,
    base: String,
    agent: ureq::Agent,
    /// What it is, for messages: `admin endpoint` or `stats endpoint`.
    what: &'static str,
}

impl Admin {
    /// An endpoint at `addr` (`host:port` or `http://host:port`).
    pub fn new(addr: &str, timeout: Duration) -> Admin {
        let trimmed = addr.trim_end_matches('/');
        let base = if trimmed.starts_with("http://") || trimmed.starts_with("https://") {
            trimmed.to_owned()
        } else {
            format!("http://{trimmed}")
        };
        let agent = ureq::AgentBuilder::new().timeout(timeout).build();
        Admin {
            label: addr.to_owned(),
            base,
            agent,
            what: "admin endpoint",
        }
    }

    /// A fleet member's read-only stats endpoint at `addr`, its lines labelled `label`.
    pub fn stats_endpoint(label: String, addr: std::net::SocketAddr, timeout: Duration) -> Admin {
        Admin {
            label,
            what: "stats endpoint",
            ..Admin::new(&addr.to_string(), timeout)
        }
    }

    fn err(&self, why: impl Into<String>) -> Error {
        Error::Admin {
            addr: self.label.clone(),
            why: why.into(),
        }
    }

    /// `GET <path>` and its body; any transport error or non-200 answer is an [`Error::Admin`].
    pub fn get(&self, path: &str) -> Result<String> {
        let url = format!("{}{path}", self.base);
        match self.agent.get(&url).call() {
            Ok(r) => r
                .into_string()
                .map_err(|e| self.err(format!("reading {path}: {e}"))),
            Err(ureq::Error::Status(code, r)) => {
                let body = r.into_string().unwrap_or_default();
                let first = body.lines().next().unwrap_or("").to_owned();
                Err(self.err(format!("{path} answered {code} {first}")))
            }
            Err(ureq::Error::Transport(t)) => {
                let why = std::error::Error::source(&t)
                    .map(ToString::to_string)
                    .or_else(|| t.message().map(str::to_owned))
                    .unwrap_or_else(|| t.kind().to_string());
                Err(self.err(format!("cannot read meshd's {}: {why}", self.what)))
            }
        }
    }

    fn get_json(&self, path: &str) -> Result<serde_json::Value> {
        let body = self.get(path)?;
        serde_json::from_str(&body).map_err(|e| self.err(format!("{path} is not JSON: {e}")))
    }

    /// Every counter and gauge, sorted by name, each with its type.
    pub fn stats(&self) -> Result<Vec<Stat>> {
        let v = self.get_json("/stats?format=json")?;
        let types = prometheus_types(&self.get("/stats/prometheus")?);
        let list = v
            .get("stats")
            .and_then(|s| s.as_array())
            .ok_or_else(|| self.err("/stats?format=json has no \"stats\" array"))?;
        let mut out: Vec<Stat> = list
            .iter()
            .filter_map(|s| {
                let name = s.get("name")?.as_str()?.to_owned();
                let value = s.get("value")?.as_u64()?; // text readouts and histograms skipped
                let kind = types
                    .get(&sanitize(&name))
                    .copied()
                    .unwrap_or_else(|| kind_by_name(&name));
                Some(Stat { name, value, kind })
            })
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// `/clusters?format=json` (`cluster_statuses`, with meshd's `mesh_breaker_occupancy`).
    pub fn clusters(&self) -> Result<Vec<serde_json::Value>> {
        let v = self.get_json("/clusters?format=json")?;
        match v.get("cluster_statuses") {
            Some(serde_json::Value::Array(a)) => Ok(a.clone()),
            None | Some(serde_json::Value::Null) => Ok(Vec::new()),
            Some(_) => Err(self.err("/clusters?format=json: cluster_statuses is not an array")),
        }
    }
}

/// How Prometheus names are made from stat names (meshd's own rule).
pub use mesh_core::stats::prometheus_name as sanitize;

/// The type of every series in a Prometheus exposition, keyed by the sanitized full stat name
/// rebuilt from the metric and Envoy's extracted tags (cluster name, connection-manager prefix,
/// response code and class, meshd's node). A series with a tag we do not know is skipped, and
/// its stat falls back to [`kind_by_name`].
pub fn prometheus_types(text: &str) -> HashMap<String, Kind> {
    let mut types: HashMap<String, Kind> = HashMap::new();
    let mut current: Option<(String, Kind)> = None;
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let mut it = rest.split_whitespace();
            current = match (it.next(), it.next()) {
                (Some(m), Some("counter")) => Some((m.to_owned(), Kind::Counter)),
                (Some(m), Some("gauge")) => Some((m.to_owned(), Kind::Gauge)),
                _ => None,
            };
            continue;
        }
        let Some((metric, kind)) = &current else {
            continue;
        };
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let series = line.rsplit_once(' ').map_or(line, |(s, _)| s);
        let (name, labels) = match series.split_once('{') {
            Some((n, l)) => (n, l.trim_end_matches('}')),
            None => (series, ""),
        };
        if name != metric {
            continue;
        }
        if let Some(full) = rebuild(name, &parse_labels(labels)) {
            types.insert(full, *kind);
        }
    }
    types
}

fn parse_labels(s: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut rest = s;
    while let Some((k, after)) = rest.split_once("=\"") {
        let mut value = String::new();
        let mut chars = after.char_indices();
        let mut end = after.len();
        while let Some((i, c)) = chars.next() {
            match c {
                '\\' => match chars.next() {
                    Some((_, 'n')) => value.push('\n'),
                    Some((_, c)) => value.push(c),
                    None => {}
                },
                '"' => {
                    end = i + 1;
                    break;
                }
                c => value.push(c),
            }
        }
        out.push((k.trim_start_matches(',').trim().to_owned(), value));
        rest = &after[end.min(after.len())..];
    }
    out
}

fn rebuild(metric: &str, labels: &[(String, String)]) -> Option<String> {
    let mut base = metric.strip_prefix("envoy_").unwrap_or(metric).to_owned();
    let get = |k: &str| labels.iter().find(|(l, _)| l == k).map(|(_, v)| v.as_str());
    for (k, _) in labels {
        if !matches!(
            k.as_str(),
            "envoy_response_code"
                | "envoy_response_code_class"
                | "envoy_cluster_name"
                | "envoy_http_conn_manager_prefix"
                | "envoy_node"
        ) {
            return None;
        }
    }
    if let Some(code) = get("envoy_response_code") {
        base = format!("{base}_{code}");
    }
    if let Some(class) = get("envoy_response_code_class") {
        base = format!("{}_{class}xx", base.strip_suffix("_xx")?);
    }
    if let Some(c) = get("envoy_cluster_name") {
        base = format!("cluster_{}_{}", sanitize(c), base.strip_prefix("cluster_")?);
    }
    if let Some(p) = get("envoy_http_conn_manager_prefix") {
        base = format!("http_{}_{}", sanitize(p), base.strip_prefix("http_")?);
    }
    if let Some(n) = get("envoy_node") {
        base = format!("node_{}_{base}", sanitize(n));
    }
    Some(base)
}

/// The fallback rule when `/stats/prometheus` does not type a stat: Envoy's gauges end in
/// `_active`, `_open`, `_buffered`, `_peak` (meshd), start with `remaining_`, or are one of
/// `membership_{total,healthy,degraded,excluded}`, `max_host_weight`, `healthy`, `live`,
/// `uptime`; everything else is a counter.
pub fn kind_by_name(name: &str) -> Kind {
    let last = name.rsplit('.').next().unwrap_or(name);
    let gauge = ["_active", "_open", "_buffered", "_peak"]
        .iter()
        .any(|s| last.ends_with(s))
        || last.starts_with("remaining_")
        || matches!(
            last,
            "membership_total"
                | "membership_healthy"
                | "membership_degraded"
                | "membership_excluded"
                | "max_host_weight"
                | "healthy"
                | "live"
                | "uptime"
        );
    if gauge {
        Kind::Gauge
    } else {
        Kind::Counter
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prometheus_series_map_back_to_stat_names() {
        let text = "# TYPE envoy_cluster_upstream_rq counter\n\
            envoy_cluster_upstream_rq{envoy_response_code=\"503\",envoy_cluster_name=\"a-b\"} 2\n\n\
            # TYPE envoy_http_downstream_rq_xx counter\n\
            envoy_http_downstream_rq_xx{envoy_node=\"green\",envoy_response_code_class=\"5\",envoy_http_conn_manager_prefix=\"ingress\"} 1\n\n\
            # TYPE envoy_cluster_upstream_cx_active gauge\n\
            envoy_cluster_upstream_cx_active{envoy_cluster_name=\"outbound|80||x.y\"} 0\n\
            # TYPE envoy_server_live gauge\nenvoy_server_live 1\n";
        let t = prometheus_types(text);
        let k = |n: &str| t.get(&sanitize(n)).copied();
        assert_eq!(k("cluster.a-b.upstream_rq_503"), Some(Kind::Counter));
        assert_eq!(
            k("node.green.http.ingress.downstream_rq_5xx"),
            Some(Kind::Counter)
        );
        assert_eq!(
            k("cluster.outbound|80||x.y.upstream_cx_active"),
            Some(Kind::Gauge)
        );
        assert_eq!(k("server.live"), Some(Kind::Gauge));
    }

    #[test]
    fn name_rule_matches_envoys_tables() {
        for g in [
            "cluster.c.upstream_cx_active",
            "cluster.c.circuit_breakers.default.cx_open",
            "cluster.c.circuit_breakers.default.remaining_cx",
            "cluster.c.circuit_breakers.default.rq_pending_peak",
            "cluster.c.membership_healthy",
        ] {
            assert_eq!(kind_by_name(g), Kind::Gauge, "{g}");
        }
        for c in [
            "cluster.c.upstream_rq_pending_overflow",
            "cluster.c.circuit_breakers.default.rq_pending_refused",
            "http.ingress.downstream_rq_5xx",
        ] {
            assert_eq!(kind_by_name(c), Kind::Counter, "{c}");
        }
    }
}
