//! The text report, line for line fortio's (v1.75 format, see loadgen.md §2.2), gated by
//! `-loglevel` the way fortio gates it. Latency percentiles (`# target`) come from HdrHistogram;
//! in `-qps` mode latency is measured from the scheduled send time and the raw numbers follow
//! on extra lines that fortio parsers ignore.

use std::fmt::Write as _;

use crate::config::LogLevel;
use crate::gofmt::{duration, g, g_prec};
use crate::latency::percentile;
use crate::run::RunResult;
use crate::stats::{histogram_lines, target_lines, Histogram};

/// Percent of paced sleeps that may be late (≤ -1 ms) before fortio warns.
const LATE_WARN_PCT: f64 = 5.0;

/// `(p, value)` pairs from the corrected (or raw) HDR histogram.
pub fn hdr_targets(r: &RunResult, raw: bool) -> Vec<(f64, f64)> {
    let (h, c) = if raw {
        (&r.latency.raw, &r.stats.raw.counter)
    } else {
        (&r.latency.corrected, &r.stats.durations.counter)
    };
    // HDR reports a bucket's highest equivalent value; keep it within the exact min and max.
    r.cfg
        .percentiles
        .iter()
        .map(|&p| (p, percentile(h, p).clamp(c.min, c.max.max(c.min))))
        .collect()
}

/// Percentage of sleeps that were at least 1 ms late.
pub fn late_sleep_pct(r: &RunResult) -> f64 {
    let s = &r.stats.sleep;
    if s.counter.count == 0 {
        return 0.0;
    }
    // Bucket 0 of NewHistogram(-0.001, 0.001) holds the sleeps <= -1 ms.
    100.0 * s.buckets[0] as f64 / s.counter.count as f64
}

fn hist_block(out: &mut String, h: &Histogram, name: &str, targets: Option<&[f64]>, full: bool) {
    let _ = writeln!(out, "{}", h.counter.line(name));
    let data = h.export();
    if full {
        histogram_lines(out, &data);
    }
    if let Some(ps) = targets {
        let pairs: Vec<(f64, f64)> = ps
            .iter()
            .map(|&p| (p, crate::stats::interpolate(&h.counter, &data, p)))
            .collect();
        target_lines(out, &pairs);
    }
}

/// Renders the whole report.
pub fn text(r: &RunResult) -> String {
    let cfg = &r.cfg;
    let lvl = cfg.loglevel;
    let w = lvl <= LogLevel::Warning;
    let info = lvl <= LogLevel::Info;
    let verbose = lvl <= LogLevel::Verbose;
    let st = &r.stats;
    let mut out = String::new();
    let count = r.count();
    if w {
        let _ = writeln!(
            out,
            "Ended after {} : {count} calls. qps={}",
            duration(r.elapsed),
            g_prec(r.actual_qps(), 5)
        );
    }
    if r.paced() && w {
        let late = late_sleep_pct(r);
        if late > LATE_WARN_PCT || verbose {
            hist_block(
                &mut out,
                &st.sleep,
                "Aggregated Sleep Time",
                Some(&[50.0]),
                true,
            );
        } else {
            let _ = writeln!(out, "{}", st.sleep.counter.line("Sleep times"));
        }
        if late > LATE_WARN_PCT {
            let _ = writeln!(out, "WARNING {late:.2}% of sleep were falling behind");
        }
    }
    // Call durations.
    let _ = writeln!(
        out,
        "{}",
        st.durations.counter.line("Aggregated Function Time")
    );
    if w {
        histogram_lines(&mut out, &st.durations.export());
    }
    target_lines(&mut out, &hdr_targets(r, false));
    if r.paced() {
        let _ = writeln!(
            out,
            "# Latency above is from each request's scheduled send time (coordinated omission corrected); {} of {count} requests started more than 1ms late{}",
            st.late,
            if st.skipped > 0 { format!(", {} slots skipped (-nocatchup)", st.skipped) } else { String::new() }
        );
        let _ = writeln!(
            out,
            "{}",
            st.raw.counter.line("Raw Function Time (from actual send)")
        );
        for (p, v) in hdr_targets(r, true) {
            let _ = writeln!(out, "# raw target {}% {}", g(p), g_prec(v, 6));
        }
    }
    if !w {
        let _ = writeln!(out, "{}", st.errors.counter.line("Error cases"));
    } else if st.errors.counter.count == 0 {
        out.push_str("Error cases : no data\n");
    } else {
        hist_block(
            &mut out,
            &st.errors,
            "Error cases",
            Some(&cfg.percentiles),
            w,
        );
    }
    // Connections.
    out.push_str("# Socket and IP used for each connection:\n");
    for (i, (sockets, c)) in r.per_conn.iter().enumerate() {
        let _ = writeln!(
            out,
            "{}",
            c.line(&format!(
                "[{i}] {sockets:3} socket used, resolved to {}, connection timing",
                r.addr
            ))
        );
    }
    if info {
        hist_block(
            &mut out,
            &st.connect,
            "Connection time histogram (s)",
            Some(&cfg.percentiles),
            true,
        );
    } else if w {
        let _ = writeln!(out, "{}", st.connect.counter.line("Connection time (s)"));
    }
    let _ = writeln!(
        out,
        "Sockets used: {} (for perfect keepalive, would be {})",
        st.sockets, r.plan.threads
    );
    let _ = writeln!(
        out,
        "Uniform: {}, Jitter: {}, Catchup allowed: {}",
        cfg.uniform, cfg.jitter, !cfg.nocatchup
    );
    out.push_str("IP addresses distribution:\n");
    if st.sockets > 0 {
        let _ = writeln!(out, "{}: {}", r.addr, st.sockets);
    }
    for (code, n) in &st.codes {
        let pct = if count > 0 {
            100.0 * *n as f64 / count as f64
        } else {
            0.0
        };
        let _ = writeln!(out, "Code {code:3} : {n} ({pct:.1} %)");
    }
    if w {
        if verbose {
            hist_block(
                &mut out,
                &st.header_sizes,
                "Response Header Sizes Histogram",
                None,
                true,
            );
            hist_block(
                &mut out,
                &st.sizes,
                "Response Body/Total Sizes Histogram",
                None,
                true,
            );
        } else {
            let _ = writeln!(
                out,
                "{}",
                st.header_sizes.counter.line("Response Header Sizes")
            );
            let _ = writeln!(
                out,
                "{}",
                st.sizes.counter.line("Response Body/Total Sizes")
            );
        }
    }
    if r.aborted {
        let _ = writeln!(out, "Aborted because of -abort-on {}", cfg.abort_on);
    } else if r.interrupted {
        out.push_str("Interrupted (Ctrl-C): report covers the calls made so far\n");
    }
    let warmup = if cfg.exactly > 0 { 0 } else { cfg.connections };
    let _ = writeln!(
        out,
        "All done {count} calls (plus {warmup} warmup) {:.3} ms avg, {:.1} qps",
        1000.0 * st.durations.counter.avg(),
        r.actual_qps()
    );
    out
}
