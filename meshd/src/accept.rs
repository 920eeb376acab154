//! What an accept loop does when `accept(2)` fails; shared by the listeners, the admin endpoint
//! and the control socket.
//!
//! - Out of file descriptors or kernel memory (`EMFILE`, `ENFILE`, `ENOBUFS`, `ENOMEM`): the
//!   connection stays in the kernel's backlog, and trying again at once fails again (tokio keeps
//!   the socket readable), so the loop would spin. It pauses instead, 5 ms doubling up to 1 s
//!   (Go's net/http schedule; hyper 0.14 and axum pause 1 s), and counts the failure in the
//!   socket's `downstream_cx_overflow`. A successful accept resets the pause.
//! - A connection that failed before it was accepted (`ECONNABORTED`, and the network errors
//!   Linux reports from `accept` for a pending connection: see accept(2)): the next one may be
//!   waiting, so the loop goes on at once; nothing is counted.
//! - Anything else (a broken listening socket): paused like the first kind, not counted.
//!
//! Every kind is logged at most once per [`LOG_INTERVAL`] per socket, with the number of
//! failures since the previous line, so a client that can make accept fail cannot flood the log.
//!
//! Also here: [`MAX_CONN_BUF`], the bound on an HTTP/1 connection's buffers (meshd's own
//! server, and hyper's for the admin endpoint and the control socket).

use std::io;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mesh_core::stats::Counter;
use nix::errno::Errno;

/// The largest read buffer of one downstream HTTP/1 connection: a request head up to meshd's
/// 60 KiB limit (Envoy's `max_request_headers_kb`) fits (hyper's default buffer is ~400 KiB;
/// Envoy's `per_connection_buffer_limit_bytes` is 1 MiB). A head too large for it gets 431 (414
/// while the request line is not complete) and counts as `downstream_cx_protocol_error`.
pub const MAX_CONN_BUF: usize = 64 * 1024;

/// Shortest pause after a resource failure.
const MIN_PAUSE: Duration = Duration::from_millis(5);
/// Longest pause after a resource failure.
const MAX_PAUSE: Duration = Duration::from_secs(1);
/// At most one log line per socket and kind of failure in this interval.
pub const LOG_INTERVAL: Duration = Duration::from_secs(10);

/// Accept failures of one socket, as `/stats` shows them.
#[derive(Debug, Default)]
pub struct AcceptStats {
    /// Accepts refused for lack of file descriptors or kernel memory (each attempt counts once;
    /// the connection waits in the backlog and is taken when meshd has a descriptor again).
    pub downstream_cx_overflow: Counter,
}

/// How an accept error is handled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// Out of descriptors or memory: pause, count.
    Exhausted,
    /// One pending connection failed: go on at once.
    Connection,
    /// Anything else: pause.
    Other,
}

fn kind(e: &io::Error) -> Kind {
    let Some(errno) = e.raw_os_error().map(Errno::from_raw) else {
        return Kind::Other;
    };
    match errno {
        Errno::EMFILE | Errno::ENFILE | Errno::ENOBUFS | Errno::ENOMEM => Kind::Exhausted,
        // accept(2), "Error handling": errors of the pending connection, to be treated as
        // EAGAIN; EPERM is a firewall rule refusing it; EINTR a signal.
        Errno::ECONNABORTED
        | Errno::ECONNRESET
        | Errno::ECONNREFUSED
        | Errno::EPROTO
        | Errno::EPERM
        | Errno::EINTR
        | Errno::ENETDOWN
        | Errno::ENOPROTOOPT
        | Errno::EHOSTDOWN
        | Errno::ENONET
        | Errno::EHOSTUNREACH
        | Errno::EOPNOTSUPP
        | Errno::ENETUNREACH => Kind::Connection,
        _ => Kind::Other,
    }
}

/// Failures since the last log line, and when that line was written.
#[derive(Debug, Default)]
struct Quiet {
    unlogged: u64,
    last: Option<Instant>,
}

impl Quiet {
    /// Records a failure; returns the count to log when a line is due now.
    fn failed(&mut self, now: Instant) -> Option<u64> {
        self.unlogged += 1;
        self.due(now)
    }

    /// The count to log when failures are unlogged and the interval has passed.
    fn due(&mut self, now: Instant) -> Option<u64> {
        if self.unlogged == 0 || self.last.is_some_and(|t| now - t < LOG_INTERVAL) {
            return None;
        }
        self.last = Some(now);
        Some(std::mem::take(&mut self.unlogged))
    }
}

/// The accept-error state of one socket: call [`AcceptErrors::failed`] with each error and
/// [`AcceptErrors::accepted`] after each success.
#[derive(Debug)]
pub struct AcceptErrors {
    socket: String,
    stats: Arc<AcceptStats>,
    pause: Option<Duration>,
    exhausted: Quiet,
    dropped: Quiet,
}

impl AcceptErrors {
    /// For the socket named `socket` in log lines (e.g. `listener 127.0.0.1:15000`), counting
    /// into `stats`.
    pub fn new(socket: impl Into<String>, stats: Arc<AcceptStats>) -> Self {
        AcceptErrors {
            socket: socket.into(),
            stats,
            pause: None,
            exhausted: Quiet::default(),
            dropped: Quiet::default(),
        }
    }

    /// A connection was accepted: the next failure pauses briefly again. Says once (rate
    /// limited) that the socket accepts again after running out.
    pub fn accepted(&mut self) {
        if self.pause.take().is_some() {
            if let Some(failures) = self.exhausted.due(Instant::now()) {
                tracing::info!(socket = %self.socket, failures, "{}: accepting connections again after {failures} failure(s)", self.socket);
            }
        }
    }

    /// Handles one accept error: counts and logs it (rate limited) and returns after the pause
    /// it calls for (none for a failed pending connection).
    pub async fn failed(&mut self, e: &io::Error) {
        let now = Instant::now();
        let kind = kind(e);
        if kind == Kind::Connection {
            if let Some(failures) = self.dropped.failed(now) {
                tracing::debug!(socket = %self.socket, error = %e, failures,
                    "a pending connection failed before it was accepted");
            }
            return;
        }
        if kind == Kind::Exhausted {
            self.stats.downstream_cx_overflow.inc();
        }
        let pause = self.pause.map_or(MIN_PAUSE, |p| (p * 2).min(MAX_PAUSE));
        self.pause = Some(pause);
        if let Some(failures) = self.exhausted.failed(now) {
            let retry = humantime::format_duration(pause).to_string();
            if kind == Kind::Exhausted {
                tracing::warn!(socket = %self.socket, error = %e, failures, retry_in = %retry,
                    "cannot accept connections: out of file descriptors or memory (raise LimitNOFILE); \
                     clients wait in the backlog; logged once per 10s");
            } else {
                tracing::warn!(socket = %self.socket, error = %e, failures, retry_in = %retry,
                    "cannot accept connections; logged once per 10s");
            }
        }
        tokio::time::sleep(pause).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_are_sorted_by_what_the_loop_must_do() {
        let e = |n: Errno| io::Error::from_raw_os_error(n as i32);
        assert_eq!(kind(&e(Errno::EMFILE)), Kind::Exhausted);
        assert_eq!(kind(&e(Errno::ENFILE)), Kind::Exhausted);
        assert_eq!(kind(&e(Errno::ECONNABORTED)), Kind::Connection);
        assert_eq!(kind(&e(Errno::EPROTO)), Kind::Connection);
        assert_eq!(kind(&e(Errno::EBADF)), Kind::Other);
        assert_eq!(kind(&io::Error::other("no errno")), Kind::Other);
    }

    #[test]
    fn one_line_per_interval_carries_the_count_since_the_last() {
        let mut q = Quiet::default();
        let t = Instant::now();
        assert_eq!(q.failed(t), Some(1));
        for i in 1..100 {
            assert_eq!(q.failed(t + Duration::from_millis(i)), None);
        }
        assert_eq!(q.due(t + LOG_INTERVAL - Duration::from_millis(1)), None);
        assert_eq!(q.due(t + LOG_INTERVAL), Some(99));
        assert_eq!(q.due(t + LOG_INTERVAL * 3), None, "nothing unlogged");
    }
}
