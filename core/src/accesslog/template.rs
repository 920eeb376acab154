//! A [`Format`] compiled once into literal pieces and resolved operators, so a line is rendered by
//! appending to one buffer: no scan of the format string, no operator name matched and no
//! intermediate string per line.
//!
//! Values a client controls (`%REQ(...)%`, the path) are escaped in text lines by
//! [`push_escaped`], so a line always has the format's shape; JSON lines are serialized by
//! `serde_json`, which escapes them as JSON strings.

use std::fmt::Write as _;

use super::{protocol, Format, Record, DEFAULT_FORMAT};

/// A request field that `%REQ(...)%` can name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field {
    Method,
    Path,
    Authority,
    ForwardedFor,
    UserAgent,
    RequestId,
    Unknown,
}

impl Field {
    fn named(name: &str) -> Field {
        match name.to_ascii_lowercase().as_str() {
            ":method" => Field::Method,
            ":path" => Field::Path,
            ":authority" | "host" => Field::Authority,
            "x-forwarded-for" => Field::ForwardedFor,
            "user-agent" => Field::UserAgent,
            "x-request-id" => Field::RequestId,
            _ => Field::Unknown,
        }
    }

    /// The field's value; `None` when absent or empty.
    fn get<'a>(self, r: &'a Record) -> Option<&'a str> {
        let opt = |s: &'a Option<String>| s.as_deref().filter(|s| !s.is_empty());
        match self {
            Field::Method => Some(r.method.as_str()),
            Field::Path => Some(r.path.as_str()),
            Field::Authority => opt(&r.authority),
            Field::ForwardedFor => opt(&r.x_forwarded_for),
            Field::UserAgent => opt(&r.user_agent),
            Field::RequestId => opt(&r.request_id),
            Field::Unknown => None,
        }
    }
}

/// Which bytes [`push_escaped`] rewrites: `"`, `\` and every byte outside printable ASCII.
const ESCAPED: [bool; 256] = {
    let mut t = [true; 256];
    let mut b = 0x20;
    while b < 0x7f {
        t[b] = b == b'"' as usize || b == b'\\' as usize;
        b += 1;
    }
    t
};

/// Appends `v` to `out` escaped for a text access-log line, as Apache httpd escapes `%r` and
/// `%i`: `"` as `\"`, `\` as `\\`, tab, newline and carriage return as `\t`, `\n`, `\r`,
/// and every other byte outside printable ASCII (controls, DEL, each byte of a non-ASCII
/// character) as `\xHH`. The result is printable ASCII with no unescaped `"`, so a value can
/// neither end its quoted field nor its line. A value with nothing to escape is copied once, as
/// `push_str` copies it. Envoy writes values as they are (envoyproxy/envoy#4191).
pub fn push_escaped(out: &mut String, v: &str) {
    let bytes = v.as_bytes();
    let mut start = 0;
    while let Some(at) = first_escaped(&bytes[start..]) {
        let i = start + at;
        // `start..i` holds printable ASCII only, so both ends are character boundaries.
        if let Some(run) = v.get(start..i) {
            out.push_str(run);
        }
        match bytes[i] {
            b'"' => out.push_str("\\\""),
            b'\\' => out.push_str("\\\\"),
            b'\t' => out.push_str("\\t"),
            b'\n' => out.push_str("\\n"),
            b'\r' => out.push_str("\\r"),
            b => {
                let _ = write!(out, "\\x{b:02x}");
            }
        }
        start = i + 1;
    }
    if let Some(run) = v.get(start..) {
        out.push_str(run);
    }
}

/// Where the first byte [`ESCAPED`] names is in `b`. Looks at 8 bytes at a time while none of
/// them is one, then byte by byte.
fn first_escaped(b: &[u8]) -> Option<usize> {
    let mut i = 0;
    while let Some(word) = b.get(i..i + 8).and_then(|w| <[u8; 8]>::try_from(w).ok()) {
        if word_has_escaped(u64::from_le_bytes(word)) {
            break;
        }
        i += 8;
    }
    b.get(i..)?
        .iter()
        .position(|c| ESCAPED[usize::from(*c)])
        .map(|p| i + p)
}

/// Whether any byte of `w` is below 0x20, at or above 0x7f, `"` or `\` (exact, per byte:
/// the classic "has a byte less than n" and "has a zero byte" tricks, with no carry between
/// bytes that could hide one).
fn word_has_escaped(w: u64) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let zero_byte = |x: u64| x.wrapping_sub(ONES) & !x & HIGH;
    let below_space = w.wrapping_sub(ONES * 0x20) & !w & HIGH;
    let del_or_high = (((w & !HIGH) + ONES) | w) & HIGH;
    let quote = zero_byte(w ^ (ONES * u64::from(b'"')));
    let backslash = zero_byte(w ^ (ONES * u64::from(b'\\')));
    below_space | del_or_high | quote | backslash != 0
}

/// The inverse of [`push_escaped`], for readers of text lines: `\"`, `\\`, `\t`, `\n`, `\r` and
/// `\xHH` are decoded; any other backslash is kept as it is (Envoy's own lines are not escaped,
/// so a lone backslash in them stays). Bytes that do not form UTF-8 become U+FFFD.
pub fn unescape(s: &str) -> String {
    if !s.contains('\\') {
        return s.to_owned();
    }
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |j: usize| {
            b.get(j..j + 2)
                .filter(|h| h.iter().all(u8::is_ascii_hexdigit))
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        };
        let (byte, len) = match (b[i], b.get(i + 1)) {
            (b'\\', Some(b'"')) => (b'"', 2),
            (b'\\', Some(b'\\')) => (b'\\', 2),
            (b'\\', Some(b't')) => (b'\t', 2),
            (b'\\', Some(b'n')) => (b'\n', 2),
            (b'\\', Some(b'r')) => (b'\r', 2),
            (b'\\', Some(b'x')) => match hex(i + 2) {
                Some(h) => (h, 4),
                None => (b'\\', 1),
            },
            (c, _) => (c, 1),
        };
        out.push(byte);
        i += len;
    }
    String::from_utf8(out).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

/// An Envoy `%OPERATOR%`, resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    StartTime,
    Protocol,
    ResponseCode,
    ResponseFlags,
    ResponseCodeDetails,
    BytesReceived,
    BytesSent,
    Duration,
    UpstreamHost,
    UpstreamCluster,
    /// `REQ(A?B)`: A, or B when A is absent.
    Req(Field, Field),
    UpstreamServiceTime,
    UpstreamRequestAttemptCount,
    Unknown,
}

impl Op {
    fn named(op: &str) -> Op {
        match op {
            "START_TIME" => Op::StartTime,
            "PROTOCOL" => Op::Protocol,
            "RESPONSE_CODE" => Op::ResponseCode,
            "RESPONSE_FLAGS" => Op::ResponseFlags,
            "RESPONSE_CODE_DETAILS" => Op::ResponseCodeDetails,
            "BYTES_RECEIVED" => Op::BytesReceived,
            "BYTES_SENT" => Op::BytesSent,
            "DURATION" => Op::Duration,
            "UPSTREAM_HOST" => Op::UpstreamHost,
            "UPSTREAM_CLUSTER" => Op::UpstreamCluster,
            "UPSTREAM_REQUEST_ATTEMPT_COUNT" => Op::UpstreamRequestAttemptCount,
            _ => {
                if let Some(h) = op.strip_prefix("REQ(").and_then(|s| s.strip_suffix(')')) {
                    let mut names = h.split('?');
                    let first = Field::named(names.next().unwrap_or(h));
                    let second = names.next().map_or(Field::Unknown, Field::named);
                    Op::Req(first, second)
                } else if let Some(h) = op.strip_prefix("RESP(").and_then(|s| s.strip_suffix(')')) {
                    if h.eq_ignore_ascii_case("x-envoy-upstream-service-time") {
                        Op::UpstreamServiceTime
                    } else {
                        Op::Unknown
                    }
                } else {
                    Op::Unknown
                }
            }
        }
    }

    /// The value when it is a number (these keep their type in JSON).
    fn number(self, r: &Record) -> Option<Option<u64>> {
        match self {
            Op::ResponseCode => Some(Some(u64::from(r.code))),
            Op::BytesReceived => Some(Some(r.bytes_received)),
            Op::BytesSent => Some(Some(r.bytes_sent)),
            Op::Duration => Some(Some(r.duration_ms)),
            Op::UpstreamServiceTime => Some(r.upstream_service_time),
            Op::UpstreamRequestAttemptCount => Some(Some(u64::from(r.attempts))),
            _ => None,
        }
    }

    /// Appends the value to `out`; false (nothing appended) when it is absent. With `escape`
    /// (text lines), a value from the client or the config is escaped by [`push_escaped`]; the
    /// others are made by meshd and never need it.
    fn write(self, r: &Record, out: &mut String, escape: bool) -> bool {
        let put = |out: &mut String, v: &str| {
            if escape {
                push_escaped(out, v);
            } else {
                out.push_str(v);
            }
        };
        if let Some(n) = self.number(r) {
            return n.is_some_and(|n| {
                out.push_str(itoa::Buffer::new().format(n));
                true
            });
        }
        match self {
            Op::StartTime => push_start_time(out, r.start_time),
            Op::Protocol => out.push_str(protocol(r.version)),
            Op::ResponseFlags => r.flags.write_short(out),
            Op::ResponseCodeDetails => out.push_str(&r.details),
            Op::UpstreamHost => match r.upstream_host {
                Some(a) => crate::text::push_addr(out, a),
                None => return false,
            },
            Op::UpstreamCluster => match &r.upstream_cluster {
                Some(c) => put(out, c),
                None => return false,
            },
            Op::Req(a, b) => match a.get(r).or_else(|| b.get(r)) {
                Some(v) => put(out, v),
                None => return false,
            },
            _ => return false,
        }
        true
    }
}

/// Appends `t` as RFC 3339 UTC with milliseconds (`2026-11-28T13:30:05.123Z`, Envoy's
/// `%START_TIME%`). The part up to the seconds is formatted once per second per thread.
fn push_start_time(out: &mut String, t: std::time::SystemTime) {
    use std::cell::RefCell;
    thread_local! {
        static SECOND: RefCell<(u64, String)> = const { RefCell::new((u64::MAX, String::new())) };
    }
    let since = t.duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs();
    SECOND.with_borrow_mut(|(cached, text)| {
        if *cached != secs {
            let whole = std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs);
            *text = humantime::format_rfc3339_seconds(whole).to_string();
            text.pop(); // the trailing 'Z'
            *cached = secs;
        }
        out.push_str(text);
    });
    let ms = since.subsec_millis();
    out.push('.');
    out.push(char::from(b'0' + (ms / 100) as u8));
    out.push(char::from(b'0' + (ms / 10 % 10) as u8));
    out.push(char::from(b'0' + (ms % 10) as u8));
    out.push('Z');
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Literal(String),
    Op(Op),
}

/// Splits an Envoy format string; `%%` is a literal percent, a lone `%` is kept.
fn pieces(fmt: &str) -> Vec<Piece> {
    let mut out = Vec::new();
    let mut lit = String::new();
    let mut rest = fmt;
    while let Some(start) = rest.find('%') {
        lit.push_str(&rest[..start]);
        let after = &rest[start + 1..];
        match after.find('%') {
            Some(end) if end > 0 => {
                if !lit.is_empty() {
                    out.push(Piece::Literal(std::mem::take(&mut lit)));
                }
                out.push(Piece::Op(Op::named(&after[..end])));
                rest = &after[end + 1..];
            }
            Some(_) => {
                lit.push('%');
                rest = &after[1..];
            }
            None => {
                lit.push('%');
                rest = after;
            }
        }
    }
    lit.push_str(rest);
    if !lit.is_empty() {
        out.push(Piece::Literal(lit));
    }
    out
}

fn render_pieces(pieces: &[Piece], r: &Record, out: &mut String, escape: bool) {
    for p in pieces {
        match p {
            Piece::Literal(s) => out.push_str(s),
            Piece::Op(op) => {
                if !op.write(r, out, escape) {
                    out.push('-');
                }
            }
        }
    }
}

#[derive(Debug, Clone)]
enum JsonValue {
    /// Exactly one operator: numbers stay numbers, absent is `null`.
    Whole(Op),
    Text(Vec<Piece>),
}

#[derive(Debug, Clone)]
enum Kind {
    Text { pieces: Vec<Piece>, newline: bool },
    Json(Vec<(String, JsonValue)>),
}

/// A compiled access-log format.
#[derive(Debug, Clone)]
pub struct Template {
    kind: Kind,
}

impl Template {
    /// Compiles `format` once.
    pub fn new(format: &Format) -> Template {
        let kind = match format {
            Format::Default => Kind::Text {
                pieces: pieces(DEFAULT_FORMAT),
                newline: false,
            },
            Format::Text(f) => Kind::Text {
                pieces: pieces(f),
                newline: !f.ends_with('\n'),
            },
            Format::Json(pairs) => Kind::Json(
                pairs
                    .iter()
                    .map(|(k, v)| {
                        let trimmed = v.trim();
                        let whole = trimmed.len() > 2
                            && trimmed.starts_with('%')
                            && trimmed.ends_with('%')
                            && !trimmed[1..trimmed.len() - 1].contains('%');
                        let value = if whole {
                            JsonValue::Whole(Op::named(&trimmed[1..trimmed.len() - 1]))
                        } else {
                            JsonValue::Text(pieces(v))
                        };
                        (k.clone(), value)
                    })
                    .collect(),
            ),
        };
        Template { kind }
    }

    /// Appends one line (with its trailing newline) for `r` to `out`.
    pub fn render(&self, r: &Record, out: &mut String) {
        match &self.kind {
            Kind::Text { pieces, newline } => {
                render_pieces(pieces, r, out, true);
                if *newline {
                    out.push('\n');
                }
            }
            Kind::Json(pairs) => {
                let mut obj = serde_json::Map::new();
                for (k, v) in pairs {
                    let value = match v {
                        JsonValue::Whole(op) => match op.number(r) {
                            Some(Some(n)) => serde_json::Value::from(n),
                            Some(None) => serde_json::Value::Null,
                            None => {
                                let mut s = String::new();
                                if op.write(r, &mut s, false) {
                                    serde_json::Value::from(s)
                                } else {
                                    serde_json::Value::Null
                                }
                            }
                        },
                        JsonValue::Text(p) => {
                            let mut s = String::new();
                            render_pieces(p, r, &mut s, false);
                            serde_json::Value::from(s)
                        }
                    };
                    obj.insert(k.clone(), value);
                }
                out.push_str(&serde_json::Value::Object(obj).to_string());
                out.push('\n');
            }
        }
    }
}

impl Template {
    /// The operators of an App Mesh `text` format (or one `json` value) that meshd does not
    /// render and writes as `-`, as written (`%DOWNSTREAM_REMOTE_ADDRESS%`, `%REQ(X-MY-HEADER)%`),
    /// in order of appearance, each once. Empty when every operator is rendered.
    pub fn unsupported_operators(format: &str) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        let mut rest = format;
        while let Some(start) = rest.find('%') {
            let after = &rest[start + 1..];
            let Some(end) = after.find('%') else { break };
            let name = &after[..end];
            rest = &after[end + 1..];
            let unsupported = match Op::named(name) {
                Op::Unknown => !name.is_empty(),
                Op::Req(Field::Unknown, Field::Unknown) => true,
                _ => false,
            };
            let written = format!("%{name}%");
            if unsupported && !out.contains(&written) {
                out.push(written);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn start_times_read_as_rfc_3339_with_milliseconds() {
        let base = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_795_000_000);
        for ms in [0u64, 7, 45, 999, 1_000, 61_001] {
            let t = base + std::time::Duration::from_millis(ms);
            let mut out = String::new();
            push_start_time(&mut out, t);
            assert_eq!(out, humantime::format_rfc3339_millis(t).to_string());
        }
    }

    use super::*;
    use proptest::prelude::*;
    use std::time::{Duration, UNIX_EPOCH};

    fn escaped(v: &str) -> String {
        let mut out = String::new();
        push_escaped(&mut out, v);
        out
    }

    #[test]
    fn escaping_keeps_plain_values_and_rewrites_hostile_bytes() {
        assert_eq!(
            escaped("curl/8.5.0 (x86_64) a=b;c"),
            "curl/8.5.0 (x86_64) a=b;c"
        );
        assert_eq!(escaped(r#"a"b\c"#), r#"a\"b\\c"#);
        assert_eq!(escaped("t\tn\nr\r\u{1}\u{7f}"), r"t\tn\nr\r\x01\x7f");
        assert_eq!(escaped("é\u{fffd}"), r"\xc3\xa9\xef\xbf\xbd");
        assert_eq!(escaped(""), "");
        assert_eq!(unescape(r"\q \x4 \"), r"\q \x4 \", "not escapes: kept");
    }

    #[test]
    fn the_word_test_agrees_with_the_table_for_every_byte_in_every_place() {
        for b in 0..=255u8 {
            for at in 0..8 {
                let mut word = *b"abcdefgh";
                word[at] = b;
                assert_eq!(
                    word_has_escaped(u64::from_le_bytes(word)),
                    ESCAPED[usize::from(b)],
                    "byte {b:#x} at {at}"
                );
            }
        }
    }

    proptest! {
        #[test]
        fn escaped_values_are_printable_quote_free_and_round_trip(v in any::<String>()) {
            let e = escaped(&v);
            prop_assert!(e.bytes().all(|b| (0x20..0x7f).contains(&b)), "{e:?}");
            // Every `"` is preceded by an odd run of backslashes: none ends a quoted field.
            let b = e.as_bytes();
            for (i, _) in e.match_indices('"') {
                let run = b[..i].iter().rev().take_while(|c| **c == b'\\').count();
                prop_assert!(run % 2 == 1, "{e:?}");
            }
            prop_assert_eq!(unescape(&e), v);
        }
    }

    #[test]
    fn unsupported_operators_are_named_as_written() {
        assert_eq!(
            Template::unsupported_operators(
                "%START_TIME% %REQ(X-CUSTOM)% %REQ(X-ENVOY-ORIGINAL-PATH?:PATH)% 100%% \
                 %DOWNSTREAM_REMOTE_ADDRESS% %REQ(X-CUSTOM)% %RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)%"
            ),
            ["%REQ(X-CUSTOM)%", "%DOWNSTREAM_REMOTE_ADDRESS%"]
        );
        assert!(Template::unsupported_operators(super::super::DEFAULT_FORMAT).is_empty());
    }

    #[test]
    fn operators_resolve_once_and_render_like_envoy() {
        let r = Record {
            start_time: UNIX_EPOCH + Duration::from_millis(1_460_751_420_310),
            method: http::Method::GET,
            path: "/p".into(),
            version: http::Version::HTTP_11,
            code: 503,
            flags: super::super::Flags::default(),
            bytes_received: 0,
            bytes_sent: 81,
            duration_ms: 3,
            upstream_service_time: None,
            x_forwarded_for: None,
            user_agent: Some(String::new()),
            request_id: None,
            authority: Some("green".into()),
            upstream_host: None,
            upstream_cluster: Some("cds_x".into()),
            details: "upstream_overflow".into(),
            attempts: 1,
        };
        let t = Template::new(&Format::Text(
            "%REQ(X-ENVOY-ORIGINAL-PATH?:PATH)% %REQ(host)% %REQ(USER-AGENT)% %RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)% %NOPE% %UPSTREAM_CLUSTER% %RESPONSE_CODE_DETAILS% %START_TIME% 5%"
                .into(),
        ));
        let mut out = String::new();
        t.render(&r, &mut out);
        t.render(&r, &mut out);
        let line = "/p green - - - cds_x upstream_overflow 2016-04-15T20:17:00.310Z 5%\n";
        assert_eq!(out, format!("{line}{line}"));
        assert_eq!(
            pieces("a%%b%"),
            vec![Piece::Literal("a%b%".into())],
            "%% is a percent, a lone % stays"
        );
    }
}
