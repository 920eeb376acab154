//! `meshstat [PATTERN...]`: the stats of one or many meshd, filtered, as lines or JSON lines.

use std::collections::BTreeMap;

use regex::Regex;
use serde_json::json;

use crate::admin::{Kind, Stat};
use crate::output::Out;
use crate::Result;

/// How to show stats.
#[derive(Debug, Clone, Default)]
pub struct View {
    /// Prefix each line with its source (several `--admin`).
    pub prefix: bool,
    /// Add up each stat across sources.
    pub sum: bool,
    /// Hide zero values.
    pub nonzero: bool,
    /// One JSON object per line.
    pub json: bool,
}

/// Whether `name` passes the filter: no pattern, or any pattern matches part of it (as
/// `/stats?filter=`).
pub fn matches(patterns: &[Regex], name: &str) -> bool {
    patterns.is_empty() || patterns.iter().any(|p| p.is_match(name))
}

/// One output row: a stat of one source, or a sum over sources.
#[derive(Debug, Clone)]
pub struct Row {
    /// The source's label, or `None` for a sum.
    pub source: Option<String>,
    /// How many sources were summed (1 for a plain row).
    pub sources: usize,
    /// The stat.
    pub stat: Stat,
}

/// The rows to print, sorted by name and then by source order (stable for a given input).
pub fn rows(sources: &[(String, Vec<Stat>)], patterns: &[Regex], view: &View) -> Vec<Row> {
    let mut out = Vec::new();
    if view.sum {
        let mut sums: BTreeMap<&str, (u64, Kind, usize)> = BTreeMap::new();
        for (_, stats) in sources {
            for s in stats.iter().filter(|s| matches(patterns, &s.name)) {
                let e = sums.entry(&s.name).or_insert((0, s.kind, 0));
                e.0 = e.0.saturating_add(s.value);
                e.2 += 1;
            }
        }
        for (name, (value, kind, n)) in sums {
            out.push(Row {
                source: None,
                sources: n,
                stat: Stat {
                    name: name.to_owned(),
                    value,
                    kind,
                },
            });
        }
    } else {
        for (label, stats) in sources {
            for s in stats.iter().filter(|s| matches(patterns, &s.name)) {
                out.push(Row {
                    source: Some(label.clone()),
                    sources: 1,
                    stat: s.clone(),
                });
            }
        }
        // Stable: equal names keep the order of the sources on the command line.
        out.sort_by(|a, b| a.stat.name.cmp(&b.stat.name));
    }
    if view.nonzero {
        out.retain(|r| r.stat.value != 0);
    }
    out
}

/// Renders one row as a text line (`[source ]name: value`) or a JSON line.
pub fn render(row: &Row, view: &View) -> String {
    let s = &row.stat;
    if view.json {
        let mut v = json!({
            "source": row.source.as_deref().unwrap_or("sum"),
            "name": s.name,
            "value": s.value,
            "type": s.kind,
        });
        if row.source.is_none() {
            v["sources"] = json!(row.sources);
        }
        v.to_string()
    } else {
        match (&row.source, view.prefix) {
            (Some(src), true) => format!("{src} {}: {}", s.name, s.value),
            _ => format!("{}: {}", s.name, s.value),
        }
    }
}

/// Prints the rows; returns how many were printed.
pub fn print(out: &mut Out, rows: &[Row], view: &View) -> Result<usize> {
    for r in rows {
        out.line(&render(r, view))?;
    }
    Ok(rows.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn st(name: &str, value: u64, kind: Kind) -> Stat {
        Stat {
            name: name.into(),
            value,
            kind,
        }
    }

    #[test]
    fn sum_adds_counters_and_gauges_across_sources() {
        let a = vec![
            st("x.cx_open", 1, Kind::Gauge),
            st("x.rq_total", 5, Kind::Counter),
        ];
        let b = vec![
            st("x.cx_open", 0, Kind::Gauge),
            st("x.rq_total", 7, Kind::Counter),
        ];
        let sources = vec![("a".to_owned(), a), ("b".to_owned(), b)];
        let view = View {
            sum: true,
            ..View::default()
        };
        let r = rows(&sources, &[], &view);
        let lines: Vec<String> = r.iter().map(|r| render(r, &view)).collect();
        assert_eq!(lines, ["x.cx_open: 1", "x.rq_total: 12"]);
        let pats = vec![Regex::new("total$").expect("re")];
        let view = View {
            prefix: true,
            ..View::default()
        };
        let r = rows(&sources, &pats, &view);
        let lines: Vec<String> = r.iter().map(|r| render(r, &view)).collect();
        assert_eq!(lines, ["a x.rq_total: 5", "b x.rq_total: 7"]);
    }
}
