//! A [`Format`] compiled once into literal pieces and resolved operators, so a line is rendered by
//! appending to one buffer: no scan of the format string, no operator name matched and no
//! intermediate string per line.

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
            _ => None,
        }
    }

    /// Appends the value to `out`; false (nothing appended) when it is absent.
    fn write(self, r: &Record, out: &mut String) -> bool {
        if let Some(n) = self.number(r) {
            return n.is_some_and(|n| write!(out, "{n}").is_ok());
        }
        match self {
            Op::StartTime => {
                let _ = write!(out, "{}", humantime::format_rfc3339_millis(r.start_time));
            }
            Op::Protocol => out.push_str(protocol(r.version)),
            Op::ResponseFlags => r.flags.write_short(out),
            Op::ResponseCodeDetails => out.push_str(r.details),
            Op::UpstreamHost => match r.upstream_host {
                Some(a) => {
                    let _ = write!(out, "{a}");
                }
                None => return false,
            },
            Op::UpstreamCluster => match &r.upstream_cluster {
                Some(c) => out.push_str(c),
                None => return false,
            },
            Op::Req(a, b) => match a.get(r).or_else(|| b.get(r)) {
                Some(v) => out.push_str(v),
                None => return false,
            },
            _ => return false,
        }
        true
    }
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

fn render_pieces(pieces: &[Piece], r: &Record, out: &mut String) {
    for p in pieces {
        match p {
            Piece::Literal(s) => out.push_str(s),
            Piece::Op(op) => {
                if !op.write(r, out) {
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
                render_pieces(pieces, r, out);
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
                                if op.write(r, &mut s) {
                                    serde_json::Value::from(s)
                                } else {
                                    serde_json::Value::Null
                                }
                            }
                        },
                        JsonValue::Text(p) => {
                            let mut s = String::new();
                            render_pieces(p, r, &mut s);
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
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

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
            details: "upstream_overflow",
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
