//! `-o json`: a small summary on stdout for jq (snake_case keys, seconds as floats).

use crate::json::J;
use crate::latency::percentile;
use crate::run::RunResult;

fn f(k: &str, v: f64) -> (String, J) {
    (k.to_owned(), J::Float(v))
}

fn latency(r: &RunResult, h: &hdrhistogram::Histogram<u64>) -> J {
    let mut fields = vec![
        f(
            "min",
            if h.is_empty() {
                0.0
            } else {
                h.min() as f64 / 1e9
            },
        ),
        f("mean", if h.is_empty() { 0.0 } else { h.mean() / 1e9 }),
    ];
    for &p in &r.cfg.percentiles {
        fields.push(f(&format!("p{}", crate::gofmt::g(p)), percentile(h, p)));
    }
    fields.push(f("max", percentile(h, 100.0)));
    J::Obj(fields)
}

/// The summary document.
pub fn json(r: &RunResult) -> String {
    let st = &r.stats;
    let codes = st
        .codes
        .iter()
        .map(|(k, n)| (k.to_string(), J::Int((*n).into())))
        .collect();
    let ok: u64 = st
        .codes
        .iter()
        .filter(|(c, _)| crate::worker::code_is_ok(**c))
        .map(|(_, n)| n)
        .sum();
    J::Obj(vec![
        ("url".into(), J::Str(r.cfg.url.clone())),
        ("connections".into(), J::Int(r.plan.threads as i128)),
        ("requested_qps".into(), J::Float(r.cfg.qps)),
        ("calls".into(), J::Int(r.count().into())),
        ("ok".into(), J::Int(ok.into())),
        ("duration_s".into(), J::Float(r.elapsed.as_secs_f64())),
        ("qps".into(), J::Float(r.actual_qps())),
        ("codes".into(), J::Obj(codes)),
        ("sockets".into(), J::Int(st.sockets.into())),
        (
            "latency_from".into(),
            J::Str(if r.paced() { "scheduled" } else { "sent" }.into()),
        ),
        ("latency".into(), latency(r, &r.latency.corrected)),
        ("raw_latency".into(), latency(r, &r.latency.raw)),
        ("late_starts".into(), J::Int(st.late.into())),
        ("skipped_slots".into(), J::Int(st.skipped.into())),
        ("interrupted".into(), J::Bool(r.interrupted)),
        ("aborted".into(), J::Bool(r.aborted)),
    ])
    .to_doc()
}
