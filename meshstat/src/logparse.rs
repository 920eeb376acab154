//! Access-log lines as meshd and Envoy write them: the default text format
//! ([`mesh_core::accesslog::DEFAULT_FORMAT`]) and JSON lines (App Mesh `format.json`).

use std::sync::OnceLock;
use std::time::SystemTime;

use mesh_core::accesslog::unescape;
use regex::Regex;
use serde::Serialize;
use serde_json::Value;

/// One parsed access-log line. Absent values (`-`, `null`) are `None`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Entry {
    /// `%START_TIME%` as written.
    pub start_time: Option<String>,
    /// Request method.
    pub method: Option<String>,
    /// Original path.
    pub path: Option<String>,
    /// `HTTP/1.1`, `HTTP/2`, …
    pub protocol: Option<String>,
    /// Response code (0: no response was started).
    pub code: u16,
    /// Response flags, short codes (`UO`); empty for `-`.
    pub flags: Vec<String>,
    /// Request body bytes.
    pub bytes_received: Option<u64>,
    /// Response body bytes.
    pub bytes_sent: Option<u64>,
    /// `%DURATION%` in milliseconds.
    pub duration_ms: Option<u64>,
    /// `x-envoy-upstream-service-time`.
    pub upstream_service_time: Option<u64>,
    /// `x-forwarded-for`.
    pub x_forwarded_for: Option<String>,
    /// `user-agent`.
    pub user_agent: Option<String>,
    /// `x-request-id`.
    pub request_id: Option<String>,
    /// `:authority`.
    pub authority: Option<String>,
    /// `%UPSTREAM_HOST%`.
    pub upstream_host: Option<String>,
    /// `%UPSTREAM_CLUSTER%` (JSON logs only: the default format has none).
    pub upstream_cluster: Option<String>,
}

impl Entry {
    /// The start time as an instant, when it parses as RFC 3339.
    pub fn time(&self) -> Option<SystemTime> {
        self.start_time
            .as_deref()
            .and_then(|t| humantime::parse_rfc3339_weak(t.trim_end_matches('Z')).ok())
    }
}

/// A quoted field's content: anything but `"` and `\`, or a backslash escape
/// ([`mesh_core::accesslog::push_escaped`]).
macro_rules! quoted {
    () => {
        r#""((?:[^"\\]|\\.)*)""#
    };
}

/// The part of a default-format line that comes before any request header: start time,
/// request line, code, flags, byte counts, duration, upstream service time; then the rest.
fn head_re() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| {
        Regex::new(concat!(
            r#"^\[([^\]]*)\] "#,
            quoted!(),
            r#" (\d{1,3}) (\S+) (\S+) (\S+) (\S+) (\S+) (.*)$"#
        ))
        .unwrap_or_else(|e| panic!("built-in regex: {e}"))
    })
}

/// The five quoted fields after the head: x-forwarded-for, user-agent, x-request-id,
/// authority, upstream host.
fn tail_re() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| {
        Regex::new(concat!(
            "^",
            quoted!(),
            " ",
            quoted!(),
            " ",
            quoted!(),
            " ",
            quoted!(),
            " ",
            quoted!(),
            "$"
        ))
        .unwrap_or_else(|e| panic!("built-in regex: {e}"))
    })
}

fn opt(s: &str) -> Option<String> {
    (s != "-" && !s.is_empty()).then(|| s.to_owned())
}

/// A quoted field as written, unescaped; `None` for `-` or empty.
fn field_text(s: &str) -> Option<String> {
    opt(s).map(|s| unescape(&s))
}

fn num(s: &str) -> Result<Option<u64>, ()> {
    if s == "-" {
        Ok(None)
    } else {
        s.parse().map(Some).map_err(|_| ())
    }
}

fn flags(s: &str) -> Vec<String> {
    if s == "-" || s.is_empty() {
        Vec::new()
    } else {
        s.split(',').map(|f| f.trim().to_owned()).collect()
    }
}

/// Parses one line in Envoy's default format. Quoted fields are unescaped as meshd escapes
/// them. A line whose request-header fields do not split into five quoted fields (Envoy writes
/// header values unescaped, so a `"` in one shifts the fields) still counts: its head (time,
/// request, code, flags, bytes, duration) comes before any header and is kept, the header fields
/// are left out rather than guessed, and the upstream host, which no client writes, is the
/// last quoted field.
pub fn parse_default(line: &str) -> Option<Entry> {
    let c = head_re().captures(line)?;
    let g = |i: usize| c.get(i).map_or("", |m| m.as_str());
    let request = unescape(g(2));
    // `METHOD PATH PROTOCOL`; the path may hold spaces only in broken requests.
    let (method, rest) = request.split_once(' ').unwrap_or((&request, ""));
    let (path, protocol) = rest.rsplit_once(' ').unwrap_or((rest, ""));
    let mut e = Entry {
        start_time: opt(g(1)),
        method: opt(method),
        path: opt(path),
        protocol: opt(protocol),
        code: g(3).parse().ok()?,
        flags: flags(g(4)),
        bytes_received: num(g(5)).ok()?,
        bytes_sent: num(g(6)).ok()?,
        duration_ms: num(g(7)).ok()?,
        upstream_service_time: num(g(8)).ok()?,
        ..Entry::default()
    };
    let tail = g(9);
    if let Some(t) = tail_re().captures(tail) {
        let f = |i: usize| t.get(i).and_then(|m| field_text(m.as_str()));
        e.x_forwarded_for = f(1);
        e.user_agent = f(2);
        e.request_id = f(3);
        e.authority = f(4);
        e.upstream_host = f(5);
    } else {
        let host = tail.strip_suffix('"')?.rsplit_once(" \"").map(|(_, h)| h);
        e.upstream_host = host.and_then(opt);
    }
    Some(e)
}

fn field<'a>(obj: &'a serde_json::Map<String, Value>, names: &[&str]) -> Option<&'a Value> {
    names.iter().find_map(|n| {
        obj.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(n))
            .map(|(_, v)| v)
            .filter(|v| !v.is_null())
    })
}

fn jstr(obj: &serde_json::Map<String, Value>, names: &[&str]) -> Option<String> {
    match field(obj, names)? {
        Value::String(s) => opt(s),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn jnum(obj: &serde_json::Map<String, Value>, names: &[&str]) -> Option<u64> {
    match field(obj, names)? {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// Parses one JSON line. Keys are matched case-insensitively against Envoy's operator names
/// and common spellings (`response_code`/`status`/`code`, `response_flags`/`flags`,
/// `duration`/`duration_ms`, `path`/`x-envoy-original-path`, …). A response code is required.
pub fn parse_json(line: &str) -> Option<Entry> {
    let v: Value = serde_json::from_str(line).ok()?;
    let o = v.as_object()?;
    let code = jnum(o, &["response_code", "status", "code", "status_code"])?;
    Some(Entry {
        start_time: jstr(o, &["start_time", "timestamp", "time", "@timestamp"]),
        method: jstr(o, &["method", "request_method", ":method"]),
        path: jstr(
            o,
            &[
                "path",
                "x-envoy-original-path",
                "request_path",
                "url",
                ":path",
            ],
        ),
        protocol: jstr(o, &["protocol"]),
        code: u16::try_from(code).ok()?,
        flags: jstr(o, &["response_flags", "flags"]).map_or_else(Vec::new, |s| flags(&s)),
        bytes_received: jnum(o, &["bytes_received"]),
        bytes_sent: jnum(o, &["bytes_sent"]),
        duration_ms: jnum(o, &["duration", "duration_ms"]),
        upstream_service_time: jnum(
            o,
            &["upstream_service_time", "x-envoy-upstream-service-time"],
        ),
        x_forwarded_for: jstr(o, &["x_forwarded_for", "x-forwarded-for"]),
        user_agent: jstr(o, &["user_agent", "user-agent"]),
        request_id: jstr(o, &["request_id", "x-request-id"]),
        authority: jstr(o, &["authority", ":authority", "host"]),
        upstream_host: jstr(o, &["upstream_host"]),
        upstream_cluster: jstr(o, &["upstream_cluster"]),
    })
}

/// Parses a line in either format (JSON when it starts with `{`).
pub fn parse(line: &str) -> Option<Entry> {
    let t = line.trim_end_matches(['\r', '\n']);
    if t.trim_start().starts_with('{') {
        parse_json(t)
    } else {
        parse_default(t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envoys_doc_example_parses() {
        let l = r#"[2016-04-15T20:17:00.310Z] "POST /api/v1/locations HTTP/2" 204 - 154 0 226 100 "10.0.35.28" "nsq2http" "cc21d9b0-cf5c-432b-8c7e-98aeb7988cd2" "locations" "tcp://10.0.2.1:80""#;
        let e = parse(l).expect("parses");
        assert_eq!(e.code, 204);
        assert_eq!(e.method.as_deref(), Some("POST"));
        assert_eq!(e.path.as_deref(), Some("/api/v1/locations"));
        assert_eq!(e.protocol.as_deref(), Some("HTTP/2"));
        assert!(e.flags.is_empty());
        assert_eq!(e.duration_ms, Some(226));
        assert_eq!(e.upstream_service_time, Some(100));
        assert_eq!(e.upstream_host.as_deref(), Some("tcp://10.0.2.1:80"));
        assert!(e.time().is_some());
    }

    #[test]
    fn meshd_overflow_line_parses() {
        let l = r#"[2026-11-22T17:51:31.031Z] "GET /paths/green?sleep=1000 HTTP/1.1" 503 UO,URX 0 81 0 - "127.0.0.1" "curl/7.88.1" "f70f3ab2" "127.0.0.1:40469" "-""#;
        let e = parse(l).expect("parses");
        assert_eq!(e.code, 503);
        assert_eq!(e.flags, ["UO", "URX"]);
        assert_eq!(e.upstream_service_time, None);
        assert_eq!(e.upstream_host, None);
    }

    #[test]
    fn escaped_fields_parse_back_to_the_values_sent() {
        let l = r#"[2026-11-22T17:51:31.031Z] "GET /a\"b\\c HTTP/1.1" 200 - 0 6 1 0 "1.2.3.4\" \"x, 127.0.0.1" "ua \"q\" \\ \xc3\xa9\t" "\"" "h\" \"y" "127.0.0.1:80""#;
        let e = parse(l).expect("parses");
        assert_eq!(e.path.as_deref(), Some(r#"/a"b\c"#));
        assert_eq!(e.protocol.as_deref(), Some("HTTP/1.1"));
        assert_eq!(
            e.x_forwarded_for.as_deref(),
            Some(r#"1.2.3.4" "x, 127.0.0.1"#)
        );
        assert_eq!(e.user_agent.as_deref(), Some("ua \"q\" \\ é\t"));
        assert_eq!(e.request_id.as_deref(), Some("\""));
        assert_eq!(e.authority.as_deref(), Some(r#"h" "y"#));
        assert_eq!(e.upstream_host.as_deref(), Some("127.0.0.1:80"));
    }

    #[test]
    fn an_envoy_line_with_a_raw_quote_in_a_header_still_counts() {
        // Envoy does not escape: a `"` in the user agent shifts the quoted fields.
        let l = r#"[2026-11-22T17:51:31.031Z] "GET / HTTP/1.1" 503 UO 0 81 0 - "1.2.3.4" "x" "200" "y" "id" "h" "10.0.2.1:80""#;
        let e = parse(l).expect("the head still parses");
        assert_eq!(
            (e.code, e.flags.as_slice()),
            (503, ["UO".to_string()].as_slice())
        );
        assert_eq!(e.user_agent, None, "header fields are not guessed");
        assert_eq!(e.upstream_host.as_deref(), Some("10.0.2.1:80"));
    }

    #[test]
    fn json_lines_parse_and_garbage_does_not() {
        let e = parse(r#"{"status":"503","flags":"UO","duration":3,"upstream_cluster":"c"}"#)
            .expect("parses");
        assert_eq!((e.code, e.duration_ms), (503, Some(3)));
        assert_eq!(e.upstream_cluster.as_deref(), Some("c"));
        for bad in [
            "",
            "garbage",
            "{",
            "{\"x\":1}",
            "[x] \"GET / HTTP/1.1\" abc",
        ] {
            assert!(parse(bad).is_none(), "{bad}");
        }
    }
}
