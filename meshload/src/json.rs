//! fortio's JSON result (`-json`), byte-compatible with Go's `json.MarshalIndent(res, "", "  ")`:
//! struct field order, durations as integer nanoseconds, Go float formatting, map keys sorted as
//! strings, HTML-escaped strings, trailing newline. meshload's own additions go in a nested
//! `Meshload` object after `AbortOn`, so strict fortio parsers keep working.

use std::time::{SystemTime, UNIX_EPOCH};

use crate::gofmt::json_float;
use crate::latency::percentile;
use crate::report::hdr_targets;
use crate::run::RunResult;
use crate::stats::{Counter, Histogram};

/// A JSON value with ordered objects.
#[derive(Debug, Clone)]
pub enum J {
    /// `null`
    Null,
    /// `true` / `false`
    Bool(bool),
    /// An integer.
    Int(i128),
    /// A float, Go-formatted.
    Float(f64),
    /// A string.
    Str(String),
    /// An array.
    Arr(Vec<J>),
    /// An object, in field order.
    Obj(Vec<(String, J)>),
}

fn escape(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '<' => out.push_str("\\u003c"),
            '>' => out.push_str("\\u003e"),
            '&' => out.push_str("\\u0026"),
            '\u{2028}' => out.push_str("\\u2028"),
            '\u{2029}' => out.push_str("\\u2029"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}

impl J {
    /// Go's `MarshalIndent` with two-space indent (no trailing newline).
    pub fn write(&self, out: &mut String, depth: usize) {
        let pad = |out: &mut String, d: usize| {
            out.push('\n');
            for _ in 0..d {
                out.push_str("  ");
            }
        };
        match self {
            J::Null => out.push_str("null"),
            J::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            J::Int(i) => out.push_str(&i.to_string()),
            J::Float(f) => out.push_str(&json_float(*f)),
            J::Str(s) => escape(out, s),
            J::Arr(v) if v.is_empty() => out.push_str("[]"),
            J::Obj(v) if v.is_empty() => out.push_str("{}"),
            J::Arr(v) => {
                out.push('[');
                for (i, x) in v.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    pad(out, depth + 1);
                    x.write(out, depth + 1);
                }
                pad(out, depth);
                out.push(']');
            }
            J::Obj(v) => {
                out.push('{');
                for (i, (k, x)) in v.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    pad(out, depth + 1);
                    escape(out, k);
                    out.push_str(": ");
                    x.write(out, depth + 1);
                }
                pad(out, depth);
                out.push('}');
            }
        }
    }

    /// The indented document plus a trailing newline.
    pub fn to_doc(&self) -> String {
        let mut s = String::new();
        self.write(&mut s, 0);
        s.push('\n');
        s
    }
}

fn obj(fields: Vec<(&str, J)>) -> J {
    J::Obj(fields.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())
}

fn s(v: &str) -> J {
    J::Str(v.to_owned())
}

fn counter_fields(c: &Counter) -> Vec<(&'static str, J)> {
    vec![
        ("Count", J::Int(c.count.into())),
        ("Min", J::Float(c.min)),
        ("Max", J::Float(c.max)),
        ("Sum", J::Float(c.sum)),
        ("Avg", J::Float(c.avg())),
        ("StdDev", J::Float(c.stddev())),
    ]
}

fn percentiles_json(p: &[(f64, f64)]) -> J {
    J::Arr(
        p.iter()
            .map(|(p, v)| obj(vec![("Percentile", J::Float(*p)), ("Value", J::Float(*v))]))
            .collect(),
    )
}

/// fortio's `HistogramData`. `percentiles`: `None` omits the field (as `omitempty` does for
/// an empty histogram or a histogram exported without percentiles).
pub fn histogram_data(h: &Histogram, percentiles: Option<Vec<(f64, f64)>>) -> J {
    let data = h.export();
    let mut f = counter_fields(&h.counter);
    f.push((
        "Data",
        if data.is_empty() {
            J::Null
        } else {
            J::Arr(
                data.iter()
                    .map(|b| {
                        obj(vec![
                            ("Start", J::Float(b.start)),
                            ("End", J::Float(b.end)),
                            ("Percent", J::Float(b.percent)),
                            ("Count", J::Int(b.count.into())),
                        ])
                    })
                    .collect(),
            )
        },
    ));
    if let Some(p) = percentiles.filter(|p| !p.is_empty() && !data.is_empty()) {
        f.push(("Percentiles", percentiles_json(&p)));
    }
    obj(f)
}

/// Local date and time of `t`: (year, month, day, hour, min, sec, nanos, utc offset seconds).
fn local_time(t: SystemTime) -> (i64, u32, u32, u32, u32, u32, u32, i64) {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs() as i64;
    let off = utc_offset(secs);
    let local = secs + off;
    let days = local.div_euclid(86_400);
    let sod = local.rem_euclid(86_400);
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (
        year,
        month,
        day,
        (sod / 3600) as u32,
        ((sod / 60) % 60) as u32,
        (sod % 60) as u32,
        d.subsec_nanos(),
        off,
    )
}

/// The local time zone's offset from UTC at `secs`, in seconds.
fn utc_offset(secs: i64) -> i64 {
    let t: libc::time_t = secs as libc::time_t;
    // SAFETY: localtime_r only writes into the tm we own; a zeroed tm is a valid initial value.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    // SAFETY: both pointers are valid for the duration of the call.
    let ok = unsafe { !libc::localtime_r(&t, &mut tm).is_null() };
    if ok {
        tm.tm_gmtoff as i64
    } else {
        0
    }
}

/// RFC 3339 with nanoseconds (trailing zeros trimmed), local zone, as Go's `time.Time` JSON.
pub fn rfc3339(t: SystemTime) -> String {
    let (y, mo, d, h, mi, s, ns, off) = local_time(t);
    let mut out = format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}");
    if ns > 0 {
        let frac = format!("{ns:09}");
        out.push('.');
        out.push_str(frac.trim_end_matches('0'));
    }
    if off == 0 {
        out.push('Z');
    } else {
        let sign = if off < 0 { '-' } else { '+' };
        let a = off.abs();
        out.push_str(&format!("{sign}{:02}:{:02}", a / 3600, (a / 60) % 60));
    }
    out
}

/// fortio's run ID: `YYYY-MM-DD-HHMMSS[_runid][_labels]`, labels reduced to `[A-Za-z0-9_]`,
/// at most 96 bytes.
pub fn run_id(t: SystemTime, runid: i64, labels: &str) -> String {
    let (y, mo, d, h, mi, s, _, _) = local_time(t);
    let mut id = format!("{y:04}-{mo:02}-{d:02}-{h:02}{mi:02}{s:02}");
    if runid != 0 {
        id.push_str(&format!("_{runid}"));
    }
    if !labels.is_empty() {
        id.push('_');
        let mut last_us = true;
        for c in labels.chars() {
            if c.is_ascii_alphanumeric() {
                id.push(c);
                last_us = false;
            } else if !last_us {
                id.push('_');
                last_us = true;
            }
        }
        while id.ends_with('_') {
            id.pop();
        }
    }
    id.truncate(96);
    id
}

fn base64(data: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(T[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// The whole fortio result document.
pub fn fortio_result(r: &RunResult) -> String {
    let cfg = &r.cfg;
    let tls = cfg
        .tls
        .as_ref()
        .map(|t| t.flags.clone())
        .unwrap_or_default();
    let st = &r.stats;
    let requested_qps = if cfg.qps <= 0.0 {
        "max".to_owned()
    } else {
        crate::gofmt::g_prec(cfg.qps, 9)
    };
    let mut requested_duration = if cfg.exactly > 0 {
        format!("exactly {} calls", cfg.exactly)
    } else if let Some(d) = cfg.duration {
        crate::gofmt::duration(d)
    } else if cfg.qps > 0.0 {
        "until stop".to_owned()
    } else {
        String::new()
    };
    if cfg.exactly > 0 && r.count() < cfg.exactly {
        requested_duration.push_str(&format!(", interrupted after {}", r.count()));
    }
    let codes: Vec<(String, J)> = {
        let mut v: Vec<(String, J)> = st
            .codes
            .iter()
            .map(|(k, n)| (k.to_string(), J::Int((*n).into())))
            .collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    };
    let ips = if st.sockets > 0 {
        J::Obj(vec![(r.addr.to_string(), J::Int(st.sockets.into()))])
    } else {
        J::Obj(vec![])
    };
    let ns = |d: std::time::Duration| J::Int(d.as_nanos() as i128);
    let doc = obj(vec![
        ("RunType", s("HTTP")),
        ("Labels", s(&cfg.labels)),
        ("StartTime", s(&rfc3339(r.start_time))),
        ("RequestedQPS", J::Str(requested_qps)),
        ("RequestedDuration", J::Str(requested_duration)),
        ("ActualQPS", J::Float(r.actual_qps())),
        ("ActualDuration", ns(r.elapsed)),
        ("NumThreads", J::Int(r.plan.threads as i128)),
        (
            "Version",
            J::Str(format!("meshload-{}", env!("CARGO_PKG_VERSION"))),
        ),
        (
            "DurationHistogram",
            histogram_data(&st.durations, Some(hdr_targets(r, false))),
        ),
        (
            "ErrorsDurationHistogram",
            histogram_data(
                &st.errors,
                Some(st.errors.data(&cfg.percentiles).percentiles),
            ),
        ),
        ("Exactly", J::Int(cfg.exactly.into())),
        ("Jitter", J::Bool(cfg.jitter)),
        ("Uniform", J::Bool(cfg.uniform)),
        ("NoCatchUp", J::Bool(cfg.nocatchup)),
        ("RunID", J::Int(cfg.runid.into())),
        ("AccessLoggerInfo", s("")),
        ("ID", J::Str(run_id(r.start_time, cfg.runid, &cfg.labels))),
        ("RetCodes", J::Obj(codes)),
        ("IPCountMap", ips),
        ("Insecure", J::Bool(tls.insecure)),
        ("MTLS", J::Bool(!tls.cert.is_empty())),
        ("CACert", s(&tls.cacert)),
        ("Cert", s(&tls.cert)),
        ("Key", s(&tls.key)),
        (
            "UnixDomainSocket",
            J::Str(
                cfg.unix_socket
                    .as_ref()
                    .map(|p| p.display().to_string())
                    .unwrap_or_default(),
            ),
        ),
        ("URL", s(&cfg.url)),
        ("NumConnections", J::Int(1)),
        ("Compression", J::Bool(false)),
        ("DisableFastClient", J::Bool(cfg.stdclient)),
        ("HTTP10", J::Bool(cfg.http10)),
        ("H2", J::Bool(cfg.h2)),
        ("DisableKeepAlive", J::Bool(!cfg.keepalive)),
        ("AllowHalfClose", J::Bool(false)),
        ("FollowRedirects", J::Bool(false)),
        (
            "Resolve",
            J::Str(cfg.resolve.map(|ip| ip.to_string()).unwrap_or_default()),
        ),
        ("HTTPReqTimeOut", ns(cfg.timeout)),
        ("UserCredentials", s("")),
        ("ContentType", s(&cfg.content_type)),
        ("Payload", J::Str(base64(&cfg.payload))),
        ("MethodOverride", s(&cfg.method_override)),
        ("LogErrors", J::Bool(true)),
        ("SequentialWarmup", J::Bool(false)),
        (
            "ConnReuseRange",
            J::Arr({
                let (lo, hi) = cfg.connection_reuse.unwrap_or((0, 0));
                vec![J::Int(lo.into()), J::Int(hi.into())]
            }),
        ),
        ("NoResolveEachConn", J::Bool(false)),
        ("Offset", ns(cfg.offset)),
        ("Resolution", J::Float(cfg.resolution)),
        ("Sizes", histogram_data(&st.sizes, None)),
        ("HeaderSizes", histogram_data(&st.header_sizes, None)),
        (
            "Sockets",
            J::Arr(
                r.per_conn
                    .iter()
                    .map(|(n, _)| J::Int((*n).into()))
                    .collect(),
            ),
        ),
        ("SocketCount", J::Int(st.sockets.into())),
        (
            "ConnectionStats",
            histogram_data(
                &st.connect,
                Some(st.connect.data(&cfg.percentiles).percentiles),
            ),
        ),
        ("AbortOn", J::Int(cfg.abort_on.into())),
        ("Meshload", meshload_extras(r)),
    ]);
    doc.to_doc()
}

/// meshload's additions: corrected and raw HDR percentiles, and schedule adherence.
fn meshload_extras(r: &RunResult) -> J {
    let st = &r.stats;
    let hdr = |h: &hdrhistogram::Histogram<u64>| {
        obj(vec![
            ("Count", J::Int(h.len().into())),
            (
                "Min",
                J::Float(if h.is_empty() {
                    0.0
                } else {
                    h.min() as f64 / 1e9
                }),
            ),
            ("Max", J::Float(percentile(h, 100.0))),
            (
                "Mean",
                J::Float(if h.is_empty() { 0.0 } else { h.mean() / 1e9 }),
            ),
            (
                "Percentiles",
                percentiles_json(
                    &r.cfg
                        .percentiles
                        .iter()
                        .map(|&p| (p, percentile(h, p)))
                        .collect::<Vec<_>>(),
                ),
            ),
        ])
    };
    obj(vec![
        ("Version", s(env!("CARGO_PKG_VERSION"))),
        (
            "LatencyFrom",
            s(if r.paced() {
                "scheduled send time"
            } else {
                "actual send time"
            }),
        ),
        ("Corrected", hdr(&r.latency.corrected)),
        ("Raw", hdr(&r.latency.raw)),
        ("RawDurationHistogram", histogram_data(&st.raw, None)),
        ("LateStarts", J::Int(st.late.into())),
        ("SkippedSlots", J::Int(st.skipped.into())),
        ("Interrupted", J::Bool(r.interrupted)),
        ("Aborted", J::Bool(r.aborted)),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marshal_indent_like_go() {
        let doc = obj(vec![
            ("A", J::Int(1)),
            ("B", J::Arr(vec![J::Float(100.0), J::Float(8.583e-7)])),
            ("C", J::Obj(vec![])),
            ("D", s("<a&b>")),
            ("E", J::Null),
        ]);
        assert_eq!(
            doc.to_doc(),
            "{\n  \"A\": 1,\n  \"B\": [\n    100,\n    8.583e-7\n  ],\n  \"C\": {},\n  \"D\": \"\\u003ca\\u0026b\\u003e\",\n  \"E\": null\n}\n"
        );
    }

    #[test]
    fn run_ids_and_times() {
        let t = UNIX_EPOCH + std::time::Duration::from_nanos(1_689_948_040_134_434_969);
        let stamp = rfc3339(t);
        assert!(stamp.contains(".134434969"), "{stamp}");
        let id = run_id(t, 0, "www.google.com/ , myhost");
        assert!(id.ends_with("_www_google_com_myhost"), "{id}");
        assert_eq!(
            id.len(),
            "2023-07-21-140040".len() + "_www_google_com_myhost".len()
        );
        assert_eq!(base64(b"hi"), "aGk=");
        assert_eq!(base64(b"abc"), "YWJj");
        assert_eq!(base64(b""), "");
    }
}
