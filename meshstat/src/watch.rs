//! `meshstat watch`: matching stats refreshed every interval, counters as rates per second.

use std::collections::HashMap;
use std::time::{Duration, Instant, SystemTime};

use regex::Regex;

use crate::admin::{Admin, Kind, Stat};
use crate::output::Out;
use crate::Result;

/// One sample of every source.
type Sample = Vec<(String, Vec<Stat>)>;

fn sample(admins: &[Admin], patterns: &[Regex]) -> Result<Sample> {
    let mut out = Vec::new();
    for a in admins {
        let mut s = a.stats()?;
        s.retain(|s| crate::stats::matches(patterns, &s.name));
        out.push((a.label.clone(), s));
    }
    Ok(out)
}

/// The lines of one refresh: `[source ]name: value` for gauges, `name: rate/s` for counters.
pub fn lines(prev: &Sample, now: &Sample, secs: f64, prefix: bool) -> Vec<String> {
    let before: HashMap<(&str, &str), u64> = prev
        .iter()
        .flat_map(|(src, st)| {
            st.iter()
                .map(move |s| ((src.as_str(), s.name.as_str()), s.value))
        })
        .collect();
    let mut out = Vec::new();
    for (src, stats) in now {
        for s in stats {
            let p = if prefix {
                format!("{src} ")
            } else {
                String::new()
            };
            let v = match s.kind {
                Kind::Gauge => s.value.to_string(),
                Kind::Counter => {
                    let old = before
                        .get(&(src.as_str(), s.name.as_str()))
                        .copied()
                        .unwrap_or(s.value);
                    // A counter that went down was reset: count from zero.
                    let delta = if s.value >= old {
                        s.value - old
                    } else {
                        s.value
                    };
                    format!("{:.1}/s", delta as f64 / secs.max(1e-3))
                }
            };
            out.push(format!("{p}{}: {v}", s.name));
        }
    }
    out
}

/// Runs the watch until `count` refreshes are shown (or forever).
pub fn run(
    admins: &[Admin],
    patterns: &[Regex],
    interval: Duration,
    count: Option<u64>,
    prefix: bool,
    out: &mut Out,
) -> Result<()> {
    let mut prev = sample(admins, patterns)?;
    let mut at = Instant::now();
    let mut shown = 0u64;
    while count.is_none_or(|c| shown < c) {
        std::thread::sleep(interval);
        let now = sample(admins, patterns)?;
        let t = Instant::now();
        let secs = t.duration_since(at).as_secs_f64();
        let stamp = humantime::format_rfc3339_seconds(SystemTime::now()).to_string();
        let body = lines(&prev, &now, secs, prefix);
        if out.tty {
            // Redraw in place: home, clear, then the table.
            out.raw("\x1b[H\x1b[2J")?;
            out.line(&format!(
                "meshstat watch every {} at {stamp} (counters per second)",
                humantime::format_duration(interval)
            ))?;
            for l in &body {
                out.line(l)?;
            }
        } else {
            for l in &body {
                out.line(&format!("{stamp} {l}"))?;
            }
        }
        out.flush()?;
        prev = now;
        at = t;
        shown += 1;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_become_rates_and_gauges_stay_values() {
        let st = |n: &str, v, k| Stat {
            name: n.into(),
            value: v,
            kind: k,
        };
        let prev = vec![(
            "a".to_owned(),
            vec![
                st("rq_total", 10, Kind::Counter),
                st("cx_active", 1, Kind::Gauge),
            ],
        )];
        let now = vec![(
            "a".to_owned(),
            vec![
                st("rq_total", 30, Kind::Counter),
                st("cx_active", 4, Kind::Gauge),
            ],
        )];
        assert_eq!(
            lines(&prev, &now, 2.0, false),
            ["rq_total: 10.0/s", "cx_active: 4"]
        );
    }
}
