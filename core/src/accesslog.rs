//! Access logs in Envoy's formats, and the response flags they carry.
//!
//! [`Record`] holds what one request did; [`Format`] renders it as Envoy's default line, an
//! App Mesh `text` format string, or App Mesh `json` key/value pairs (one JSON object per line).
//! [`Writer`] takes records through a bounded queue, so logging never blocks a request: when the
//! queue is full the line is dropped and counted.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::SystemTime;

use crate::stats::Counter;

mod template;
pub use template::{push_escaped, unescape, Template};

/// Envoy's response flags that meshd sets, in Envoy's enum order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResponseFlag {
    /// UH: no healthy upstream host (503).
    NoHealthyUpstream,
    /// UT: upstream request timeout (504).
    UpstreamRequestTimeout,
    /// LR: connection local reset: meshd itself reset the stream (a drain deadline).
    LocalReset,
    /// UF: upstream connection failure (503).
    UpstreamConnectionFailure,
    /// UC: upstream connection termination (503).
    UpstreamConnectionTermination,
    /// UO: upstream overflow, a circuit breaker refused (503).
    UpstreamOverflow,
    /// NR: no route configured (404).
    NoRouteFound,
    /// DI: the request was delayed by fault injection.
    DelayInjected,
    /// FI: the request was aborted by fault injection.
    FaultInjected,
    /// DC: downstream connection termination.
    DownstreamConnectionTermination,
    /// URX: upstream retry limit exceeded.
    UpstreamRetryLimitExceeded,
    /// SI: stream idle timeout (408 or 504; a response already started is cut).
    StreamIdleTimeout,
    /// DPE: downstream protocol error.
    DownstreamProtocolError,
    /// UPE: upstream protocol error (502).
    UpstreamProtocolError,
}

impl ResponseFlag {
    /// Every flag, in Envoy's order.
    pub const ALL: [ResponseFlag; 14] = [
        ResponseFlag::NoHealthyUpstream,
        ResponseFlag::UpstreamRequestTimeout,
        ResponseFlag::LocalReset,
        ResponseFlag::UpstreamConnectionFailure,
        ResponseFlag::UpstreamConnectionTermination,
        ResponseFlag::UpstreamOverflow,
        ResponseFlag::NoRouteFound,
        ResponseFlag::DelayInjected,
        ResponseFlag::FaultInjected,
        ResponseFlag::DownstreamConnectionTermination,
        ResponseFlag::UpstreamRetryLimitExceeded,
        ResponseFlag::StreamIdleTimeout,
        ResponseFlag::DownstreamProtocolError,
        ResponseFlag::UpstreamProtocolError,
    ];

    /// The short code in access logs (`UO`, `UF`, …).
    pub fn short(self) -> &'static str {
        match self {
            ResponseFlag::NoHealthyUpstream => "UH",
            ResponseFlag::UpstreamRequestTimeout => "UT",
            ResponseFlag::LocalReset => "LR",
            ResponseFlag::UpstreamConnectionFailure => "UF",
            ResponseFlag::UpstreamConnectionTermination => "UC",
            ResponseFlag::UpstreamOverflow => "UO",
            ResponseFlag::NoRouteFound => "NR",
            ResponseFlag::DelayInjected => "DI",
            ResponseFlag::FaultInjected => "FI",
            ResponseFlag::DownstreamConnectionTermination => "DC",
            ResponseFlag::UpstreamRetryLimitExceeded => "URX",
            ResponseFlag::StreamIdleTimeout => "SI",
            ResponseFlag::DownstreamProtocolError => "DPE",
            ResponseFlag::UpstreamProtocolError => "UPE",
        }
    }

    /// Envoy's long name (`%RESPONSE_FLAGS_LONG%`).
    pub fn long(self) -> &'static str {
        match self {
            ResponseFlag::NoHealthyUpstream => "NoHealthyUpstream",
            ResponseFlag::UpstreamRequestTimeout => "UpstreamRequestTimeout",
            ResponseFlag::LocalReset => "LocalReset",
            ResponseFlag::UpstreamConnectionFailure => "UpstreamConnectionFailure",
            ResponseFlag::UpstreamConnectionTermination => "UpstreamConnectionTermination",
            ResponseFlag::UpstreamOverflow => "UpstreamOverflow",
            ResponseFlag::NoRouteFound => "NoRouteFound",
            ResponseFlag::DelayInjected => "DelayInjected",
            ResponseFlag::FaultInjected => "FaultInjected",
            ResponseFlag::DownstreamConnectionTermination => "DownstreamConnectionTermination",
            ResponseFlag::UpstreamRetryLimitExceeded => "UpstreamRetryLimitExceeded",
            ResponseFlag::StreamIdleTimeout => "StreamIdleTimeout",
            ResponseFlag::DownstreamProtocolError => "DownstreamProtocolError",
            ResponseFlag::UpstreamProtocolError => "UpstreamProtocolError",
        }
    }

    /// What the flag means, in words.
    pub fn meaning(self) -> &'static str {
        match self {
            ResponseFlag::NoHealthyUpstream => "no healthy upstream host in the cluster (503)",
            ResponseFlag::UpstreamRequestTimeout => {
                "upstream request timeout (504, or the response cut after its headers)"
            }
            ResponseFlag::LocalReset => {
                "local reset: meshd cut the request itself (the drain deadline at shutdown)"
            }
            ResponseFlag::UpstreamConnectionFailure => "upstream connection failure (503)",
            ResponseFlag::UpstreamConnectionTermination => {
                "upstream connection terminated before the response (503)"
            }
            ResponseFlag::UpstreamOverflow => {
                "upstream overflow: a circuit breaker limit refused the request (503)"
            }
            ResponseFlag::NoRouteFound => "no route configured for the request (404)",
            ResponseFlag::DelayInjected => "the request was delayed by the route's fault injection",
            ResponseFlag::FaultInjected => "the request was aborted by the route's fault injection",
            ResponseFlag::DownstreamConnectionTermination => "downstream connection terminated",
            ResponseFlag::UpstreamRetryLimitExceeded => "upstream retry limit exceeded",
            ResponseFlag::StreamIdleTimeout => {
                "stream idle timeout: nothing moved for the idle timeout (408, 504, or cut)"
            }
            ResponseFlag::DownstreamProtocolError => "downstream HTTP protocol error",
            ResponseFlag::UpstreamProtocolError => "upstream HTTP protocol error (502)",
        }
    }

    /// The flag with this short code.
    pub fn from_short(s: &str) -> Option<ResponseFlag> {
        ResponseFlag::ALL.into_iter().find(|f| f.short() == s)
    }
}

/// The flags of one request, in the order they were set (as newer Envoy prints them).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Flags {
    set: [Option<ResponseFlag>; 4],
}

impl Flags {
    /// Adds a flag (ignored if already set).
    pub fn insert(&mut self, f: ResponseFlag) {
        if self.contains(f) {
            return;
        }
        if let Some(slot) = self.set.iter_mut().find(|s| s.is_none()) {
            *slot = Some(f);
        }
    }
    /// Whether `f` is set.
    pub fn contains(&self, f: ResponseFlag) -> bool {
        self.set.contains(&Some(f))
    }
    /// Whether no flag is set.
    pub fn is_empty(&self) -> bool {
        self.set[0].is_none()
    }
    /// Writes `UO,URX` style (or `-` when empty).
    pub fn write_short(&self, out: &mut String) {
        if self.is_empty() {
            out.push('-');
            return;
        }
        for (i, f) in self.set.iter().flatten().enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push_str(f.short());
        }
    }
}

/// What one request did, as the access log reports it. The default is an empty record
/// starting at the Unix epoch (a placeholder left where a record was taken).
#[derive(Debug, Clone)]
pub struct Record {
    /// When the request started.
    pub start_time: SystemTime,
    /// Request method.
    pub method: http::Method,
    /// The original path (`X-ENVOY-ORIGINAL-PATH?:PATH`).
    pub path: String,
    /// Request protocol.
    pub version: http::Version,
    /// Response status; 0 when no response was started.
    pub code: u16,
    /// Response flags.
    pub flags: Flags,
    /// Request body bytes received.
    pub bytes_received: u64,
    /// Response body bytes sent.
    pub bytes_sent: u64,
    /// Milliseconds from start to the last byte sent.
    pub duration_ms: u64,
    /// `x-envoy-upstream-service-time` of the response, when it came from upstream.
    pub upstream_service_time: Option<u64>,
    /// Request headers the default format prints.
    pub x_forwarded_for: Option<String>,
    /// `user-agent`
    pub user_agent: Option<String>,
    /// `x-request-id`
    pub request_id: Option<String>,
    /// `:authority` / `host`
    pub authority: Option<String>,
    /// The upstream host used, if any.
    pub upstream_host: Option<SocketAddr>,
    /// The upstream cluster, if one was chosen.
    pub upstream_cluster: Option<Arc<str>>,
    /// `%RESPONSE_CODE_DETAILS%`: Envoy's token (`via_upstream`, `no_healthy_upstream`, …),
    /// never with whitespace; borrowed for every fixed one, owned when it names a cluster.
    pub details: std::borrow::Cow<'static, str>,
    /// `%UPSTREAM_REQUEST_ATTEMPT_COUNT%`: attempts sent upstream (0 = none; retries add one
    /// each).
    pub attempts: u32,
}

impl Default for Record {
    fn default() -> Self {
        Record {
            start_time: SystemTime::UNIX_EPOCH,
            method: http::Method::GET,
            path: String::new(),
            version: http::Version::HTTP_11,
            code: 0,
            flags: Flags::default(),
            bytes_received: 0,
            bytes_sent: 0,
            duration_ms: 0,
            upstream_service_time: None,
            x_forwarded_for: None,
            user_agent: None,
            request_id: None,
            authority: None,
            upstream_host: None,
            upstream_cluster: None,
            details: std::borrow::Cow::Borrowed(""),
            attempts: 0,
        }
    }
}

/// How lines are rendered.
#[derive(Debug, Clone)]
pub enum Format {
    /// Envoy's default format.
    Default,
    /// An Envoy format string (`%OPERATOR%` substitution); App Mesh `format.text`.
    Text(String),
    /// App Mesh `format.json`: key/value pairs, each value a format string.
    Json(Vec<(String, String)>),
}

/// Istio's JSON access-log keys (`meshConfig.accessLogEncoding: JSON`), each with its Envoy
/// command operator, plus meshd's `upstream_request_attempt_count`.
pub const ISTIO_JSON_FORMAT: [(&str, &str); 18] = [
    ("start_time", "%START_TIME%"),
    ("method", "%REQ(:METHOD)%"),
    ("path", "%REQ(X-ENVOY-ORIGINAL-PATH?:PATH)%"),
    ("protocol", "%PROTOCOL%"),
    ("response_code", "%RESPONSE_CODE%"),
    ("response_flags", "%RESPONSE_FLAGS%"),
    ("response_code_details", "%RESPONSE_CODE_DETAILS%"),
    ("bytes_received", "%BYTES_RECEIVED%"),
    ("bytes_sent", "%BYTES_SENT%"),
    ("duration", "%DURATION%"),
    (
        "upstream_service_time",
        "%RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)%",
    ),
    ("x_forwarded_for", "%REQ(X-FORWARDED-FOR)%"),
    ("user_agent", "%REQ(USER-AGENT)%"),
    ("request_id", "%REQ(X-REQUEST-ID)%"),
    ("authority", "%REQ(:AUTHORITY)%"),
    ("upstream_host", "%UPSTREAM_HOST%"),
    ("upstream_cluster", "%UPSTREAM_CLUSTER%"),
    (
        "upstream_request_attempt_count",
        "%UPSTREAM_REQUEST_ATTEMPT_COUNT%",
    ),
];

impl Format {
    /// Istio's JSON encoding ([`ISTIO_JSON_FORMAT`]).
    pub fn istio_json() -> Format {
        Format::Json(
            ISTIO_JSON_FORMAT
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
    }
}

/// Envoy's default access-log format string.
pub const DEFAULT_FORMAT: &str = "[%START_TIME%] \"%REQ(:METHOD)% %REQ(X-ENVOY-ORIGINAL-PATH?:PATH)% %PROTOCOL%\" %RESPONSE_CODE% %RESPONSE_FLAGS% %BYTES_RECEIVED% %BYTES_SENT% %DURATION% %RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)% \"%REQ(X-FORWARDED-FOR)%\" \"%REQ(USER-AGENT)%\" \"%REQ(X-REQUEST-ID)%\" \"%REQ(:AUTHORITY)%\" \"%UPSTREAM_HOST%\"\n";

pub(crate) fn protocol(v: http::Version) -> &'static str {
    match v {
        http::Version::HTTP_10 => "HTTP/1.0",
        http::Version::HTTP_2 => "HTTP/2",
        http::Version::HTTP_3 => "HTTP/3",
        _ => "HTTP/1.1",
    }
}

impl Format {
    /// Renders one line (with its trailing newline) for `r` into `out`. Compiles the format
    /// each time: a writer compiles its [`Template`] once instead.
    pub fn render(&self, r: &Record, out: &mut String) {
        Template::new(self).render(r, out);
    }
}

/// Counters of an access-log writer (`access_log.<path>.written_lines` etc.).
#[derive(Debug, Default)]
pub struct WriterStats {
    /// Lines written.
    pub written: Counter,
    /// Lines dropped because the queue was full.
    pub dropped: Counter,
    /// Lines lost to write errors.
    pub write_errors: Counter,
}

impl WriterStats {
    /// `POST /reset_counters`: `written_lines` back to zero; `dropped_lines` and `write_errors`
    /// record faults and are kept ([`crate::stats::kept_on_reset`]).
    pub fn reset(&self) {
        for (name, c) in [
            ("written_lines", &self.written),
            ("dropped_lines", &self.dropped),
            ("write_errors", &self.write_errors),
        ] {
            if !crate::stats::kept_on_reset(name) {
                c.reset();
            }
        }
    }
}

/// `/dev/stdout` or `/dev/stderr`: a duplicate of the process's own descriptor 1 or 2 (which
/// may be a socket or a pipe, where opening the path fails); `None` for any other path.
fn std_stream(path: &std::path::Path) -> Option<std::io::Result<std::fs::File>> {
    use std::os::fd::AsFd;
    let fd = match path.to_str()? {
        "/dev/stdout" => std::io::stdout().as_fd().try_clone_to_owned(),
        "/dev/stderr" => std::io::stderr().as_fd().try_clone_to_owned(),
        _ => return None,
    };
    Some(fd.map(std::fs::File::from))
}

/// How long the writer waits, while records keep coming, before taking the next batch.
const LINGER: std::time::Duration = std::time::Duration::from_millis(5);
/// The most records rendered into one write.
const MAX_BATCH: usize = 1024;

/// A file access log fed through a bounded queue; cloning shares the queue. While records keep
/// coming the writer takes them in batches every [`LINGER`] (a line reaches the file at most
/// ~5 ms after its request ends, plus the write).
#[derive(Debug, Clone)]
pub struct Writer {
    tx: tokio::sync::mpsc::Sender<Record>,
    /// The file written to.
    pub path: PathBuf,
    /// Its counters.
    pub stats: Arc<WriterStats>,
}

impl Writer {
    /// Opens `path` for appending and starts the task that writes to it. `capacity` bounds the
    /// queue of records not yet written. Must be called inside a tokio runtime.
    ///
    /// `/dev/stdout` and `/dev/stderr` are meshd's own standard output and error, as in Envoy,
    /// whatever they are: under systemd a socket to journald, which `open(2)` of the path
    /// refuses (ENXIO), so the lines go to the journal of meshd's unit.
    ///
    /// A regular file (or `/dev/stdout`) is opened here, so a bad path is an error of the
    /// configuration. A named pipe (FIFO) is opened by the writer task instead: opening one for
    /// writing waits for its reader, and that wait must hold up neither the caller (a reload,
    /// meshd's startup) nor requests; lines queue meanwhile and are dropped beyond `capacity`.
    pub fn open(path: PathBuf, format: Format, capacity: usize) -> std::io::Result<Writer> {
        use std::io::Write;
        use std::os::unix::fs::FileTypeExt;
        let open = |path: &std::path::Path| {
            std_stream(path).unwrap_or_else(|| {
                std::fs::OpenOptions::new()
                    .append(true)
                    .create(true)
                    .open(path)
            })
        };
        let is_fifo = std::fs::metadata(&path).is_ok_and(|m| m.file_type().is_fifo());
        let file = if is_fifo { None } else { Some(open(&path)?) };
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Record>(capacity);
        let stats = Arc::new(WriterStats::default());
        let task_stats = stats.clone();
        let task_path = path.clone();
        let template = Template::new(&format);
        tokio::task::spawn_blocking(move || {
            let mut file = match file.map_or_else(|| open(&task_path), Ok) {
                Ok(f) => Some(f),
                Err(e) => {
                    tracing::warn!(path = %task_path.display(), error = %e, "access log cannot be opened; its lines are lost");
                    None
                }
            };
            let mut line = String::with_capacity(512);
            let mut batch = Vec::with_capacity(64);
            let mut write = |batch: &mut Vec<Record>| {
                if batch.is_empty() {
                    return;
                }
                line.clear();
                for r in batch.drain(..) {
                    template.render(&r, &mut line);
                }
                let n = line.lines().count() as u64;
                let written = file.as_mut().is_some_and(|f| {
                    f.write_all(line.as_bytes())
                        .and_then(|()| f.flush())
                        .is_ok()
                });
                if written {
                    task_stats.written.add(n);
                } else {
                    task_stats.write_errors.add(n);
                }
            };
            // Idle, the thread waits to be woken by the next record. Busy, it writes what it
            // has, pauses LINGER and takes what arrived meanwhile without asking to be woken:
            // a proxy under load then wakes this thread a few hundred times a second instead
            // of once per request (each wake is a system call on the request path).
            // A full batch is followed by the next one at once.
            while rx.blocking_recv_many(&mut batch, MAX_BATCH) > 0 {
                loop {
                    let full = batch.len() >= MAX_BATCH;
                    write(&mut batch);
                    if !full {
                        std::thread::sleep(LINGER);
                    }
                    let closed = loop {
                        match rx.try_recv() {
                            Ok(r) => {
                                batch.push(r);
                                if batch.len() >= MAX_BATCH {
                                    break false;
                                }
                            }
                            Err(tokio::sync::mpsc::error::TryRecvError::Empty) => break false,
                            Err(tokio::sync::mpsc::error::TryRecvError::Disconnected) => {
                                break true;
                            }
                        }
                    };
                    if closed {
                        write(&mut batch);
                        return;
                    }
                    if batch.is_empty() {
                        break;
                    }
                }
            }
        });
        Ok(Writer { tx, path, stats })
    }

    /// Queues a record; never waits. A full queue drops it and counts the drop.
    pub fn log(&self, r: Record) {
        if self.tx.try_send(r).is_err() {
            self.stats.dropped.inc();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    fn record() -> Record {
        let mut flags = Flags::default();
        flags.insert(ResponseFlag::UpstreamOverflow);
        Record {
            start_time: UNIX_EPOCH + Duration::from_millis(1_460_751_420_310),
            method: http::Method::POST,
            path: "/api/v1/locations".into(),
            version: http::Version::HTTP_2,
            code: 204,
            flags: Flags::default(),
            bytes_received: 154,
            bytes_sent: 0,
            duration_ms: 226,
            upstream_service_time: Some(100),
            x_forwarded_for: Some("10.0.35.28".into()),
            user_agent: Some("nsq2http".into()),
            request_id: Some("cc21d9b0-cf5c-432b-8c7e-98aeb7988cd2".into()),
            authority: Some("locations".into()),
            upstream_host: Some("10.0.2.1:80".parse().expect("addr")),
            upstream_cluster: None,
            details: "via_upstream".into(),
            attempts: 1,
        }
        .with_flags(flags)
    }

    impl Record {
        fn with_flags(mut self, f: Flags) -> Self {
            self.flags = f;
            self
        }
    }

    #[test]
    fn default_format_matches_envoys_doc_example() {
        let r = record().with_flags(Flags::default());
        let mut out = String::new();
        Format::Default.render(&r, &mut out);
        assert_eq!(
            out,
            "[2016-04-15T20:17:00.310Z] \"POST /api/v1/locations HTTP/2\" 204 - 154 0 226 100 \"10.0.35.28\" \"nsq2http\" \"cc21d9b0-cf5c-432b-8c7e-98aeb7988cd2\" \"locations\" \"10.0.2.1:80\"\n"
        );
    }

    #[test]
    fn local_reply_prints_dashes_and_flags() {
        let mut r = record();
        r.upstream_service_time = None;
        r.upstream_host = None;
        r.x_forwarded_for = None;
        r.flags.insert(ResponseFlag::UpstreamRetryLimitExceeded);
        let mut out = String::new();
        Format::Default.render(&r, &mut out);
        assert!(out.contains(" 204 UO,URX 154 0 226 - \"-\" "), "{out}");
        assert!(out.ends_with("\"locations\" \"-\"\n"), "{out}");
    }

    #[test]
    fn json_format_keeps_types_of_whole_operators() {
        let f = Format::Json(vec![
            ("status".into(), "%RESPONSE_CODE%".into()),
            ("flags".into(), "%RESPONSE_FLAGS%".into()),
            ("route".into(), "%REQ(:METHOD)% %REQ(:PATH)%".into()),
            ("upstream".into(), "%UPSTREAM_CLUSTER%".into()),
        ]);
        let mut out = String::new();
        f.render(&record(), &mut out);
        let v: serde_json::Value = serde_json::from_str(out.trim_end()).expect("json");
        assert_eq!(v["status"], 204);
        assert_eq!(v["flags"], "UO");
        assert_eq!(v["route"], "POST /api/v1/locations");
        assert_eq!(v["upstream"], serde_json::Value::Null);
    }

    #[test]
    fn text_format_handles_literal_percent_and_newline() {
        let mut out = String::new();
        Format::Text("%PROTOCOL%:%DURATION% 100%%".into()).render(&record(), &mut out);
        assert_eq!(out, "HTTP/2:226 100%\n");
    }

    #[test]
    fn flags_round_trip_by_short_code() {
        for f in ResponseFlag::ALL {
            assert_eq!(ResponseFlag::from_short(f.short()), Some(f));
        }
    }
}
