//! `-plot FILE.svg`: the latency percentile spectrum as in HdrHistogram plots (x: percentile on a
//! log scale of 1/(1-p), y: latency), corrected and raw, as a small hand-written SVG.

use std::fmt::Write as _;

use hdrhistogram::Histogram;

use crate::run::RunResult;

const W: f64 = 720.0;
const H: f64 = 420.0;
const LEFT: f64 = 70.0;
const RIGHT: f64 = 20.0;
const TOP: f64 = 40.0;
const BOTTOM: f64 = 50.0;
/// Decades of 1/(1-p) shown: 0%, 90%, 99%, … 99.999%.
const DECADES: f64 = 5.0;

/// (x decade, latency ms) points of a histogram's percentile spectrum.
fn spectrum(h: &Histogram<u64>) -> Vec<(f64, f64)> {
    if h.is_empty() {
        return Vec::new();
    }
    let mut pts = Vec::new();
    for v in h.iter_quantiles(5) {
        let q = v.quantile_iterated_to();
        if q >= 1.0 {
            break;
        }
        let x = (1.0 / (1.0 - q)).log10().min(DECADES);
        pts.push((x, h.highest_equivalent(v.value_iterated_to()) as f64 / 1e6));
    }
    let top = (1.0 / (1.0 - (1.0 - 1.0 / h.len() as f64).min(0.99999))).log10();
    pts.push((top.min(DECADES), h.max() as f64 / 1e6));
    pts
}

fn nice_ceiling(v: f64) -> f64 {
    if v <= 0.0 {
        return 1.0;
    }
    let mag = 10f64.powf(v.log10().floor());
    for m in [1.0, 2.0, 2.5, 5.0, 10.0] {
        if v <= m * mag {
            return m * mag;
        }
    }
    10.0 * mag
}

/// Renders the SVG document.
pub fn svg(r: &RunResult) -> String {
    let corrected = spectrum(&r.latency.corrected);
    let raw = spectrum(&r.latency.raw);
    let ymax = nice_ceiling(
        corrected
            .iter()
            .chain(&raw)
            .map(|p| p.1)
            .fold(0.0, f64::max),
    );
    let (pw, ph) = (W - LEFT - RIGHT, H - TOP - BOTTOM);
    let px = |x: f64| LEFT + x / DECADES * pw;
    let py = |y: f64| TOP + ph - y / ymax * ph;
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(s, r#"<rect width="{W}" height="{H}" fill="white"/>"#);
    let _ = writeln!(
        s,
        r#"<text x="{LEFT}" y="22" font-size="14">meshload latency by percentile — {} calls, {} qps, {}</text>"#,
        r.count(),
        crate::gofmt::g_prec(r.actual_qps(), 5),
        xml(&r.cfg.url)
    );
    for (i, label) in ["0%", "90%", "99%", "99.9%", "99.99%", "99.999%"]
        .iter()
        .enumerate()
    {
        let x = px(i as f64);
        let _ = writeln!(
            s,
            r##"<line x1="{x:.1}" y1="{TOP}" x2="{x:.1}" y2="{:.1}" stroke="#ddd"/><text x="{x:.1}" y="{:.1}" text-anchor="middle">{label}</text>"##,
            TOP + ph,
            TOP + ph + 18.0
        );
    }
    for i in 0..=4 {
        let v = ymax * i as f64 / 4.0;
        let y = py(v);
        let _ = writeln!(
            s,
            r##"<line x1="{LEFT}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="#ddd"/><text x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"##,
            LEFT + pw,
            LEFT - 6.0,
            y + 4.0,
            crate::gofmt::g_prec(v, 4)
        );
    }
    let _ = writeln!(
        s,
        r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">percentile</text><text x="16" y="{:.1}" transform="rotate(-90 16 {:.1})" text-anchor="middle">latency (ms)</text>"#,
        LEFT + pw / 2.0,
        H - 8.0,
        TOP + ph / 2.0,
        TOP + ph / 2.0
    );
    for (pts, color, name, y) in [
        (
            &corrected,
            "#1f77b4",
            "corrected (from scheduled send)",
            TOP + 14.0,
        ),
        (&raw, "#ff7f0e", "raw (from actual send)", TOP + 30.0),
    ] {
        let path: Vec<String> = pts
            .iter()
            .map(|&(x, v)| format!("{:.1},{:.1}", px(x), py(v)))
            .collect();
        let _ = writeln!(
            s,
            r#"<polyline fill="none" stroke="{color}" stroke-width="2" points="{}"/>"#,
            path.join(" ")
        );
        let _ = writeln!(
            s,
            r#"<text x="{:.1}" y="{y:.1}" fill="{color}">{name}</text>"#,
            LEFT + 10.0
        );
    }
    s.push_str("</svg>\n");
    s
}

fn xml(v: &str) -> String {
    v.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}
