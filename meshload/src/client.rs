//! One load connection's client: the request prepared once ([`Template`]), a lazily opened
//! connection of the fast HTTP/1.x client ([`crate::fast`], the default) or of hyper
//! ([`crate::stdclient`], `-stdclient` and `-h2`), fortio's retry of a reused connection that died,
//! and the timeout on every call.

use std::net::SocketAddr;
use std::pin::{pin, Pin};
use std::time::{Duration, Instant};

use crate::config::Config;
pub use crate::request::Template;
use crate::{fast, stdclient};

/// Where connections go: a resolved TCP address, or a Unix socket (`-unix-socket`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// TCP to this address.
    Tcp(SocketAddr),
    /// This Unix domain socket.
    Unix(std::path::PathBuf),
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Target::Tcp(a) => write!(f, "{a}"),
            Target::Unix(p) => write!(f, "{}", p.display()),
        }
    }
}

/// fortio's status for a transport error (connect refused, reset, timeout).
pub const SOCKET_ERROR: i32 = -1;

/// An open connection of either client.
enum Conn {
    Fast(fast::Conn),
    Std(stdclient::Conn),
}

impl Conn {
    fn reusable(&self) -> bool {
        match self {
            Conn::Fast(c) => c.reusable(),
            Conn::Std(c) => c.reusable(),
        }
    }
}

/// What one exchange produced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reply {
    /// HTTP status.
    pub status: u16,
    /// Size of the response head as received (status line, headers, blank line); 0 with the std
    /// client, as fortio's.
    pub header_size: u64,
    /// Body bytes.
    pub body_size: u64,
    /// Whether the connection cannot be reused.
    pub close: bool,
}

/// Where an exchange failed: before the response head (safe to retry on a fresh connection when
/// the old one was reused) or after.
#[derive(Debug)]
pub enum Failure {
    /// The request never got a response head.
    BeforeResponse,
    /// The response head came but the body failed, or the response was not valid HTTP.
    InBody,
}

/// A connection slot: connects lazily, retries once when a reused connection died before
/// answering (fortio does the same, without counting the retry), and bounds every call by the
/// timeout.
pub struct Client {
    addr: Target,
    h2: bool,
    stdclient: bool,
    tls: Option<crate::tls::Tls>,
    keepalive: bool,
    timeout: Duration,
    conn: Option<Conn>,
    /// Exchanges completed on the current connection.
    used: u64,
    /// This connection's copy of the request bytes when `{uuid}` tokens are refilled per call.
    wire: Vec<u8>,
    /// `-connection-reuse` range, and the limit drawn for the current connection.
    reuse: Option<(u64, u64)>,
    reuse_limit: u64,
    rng: u64,
    timer: Option<Pin<Box<tokio::time::Sleep>>>,
    /// Successful connects (fortio's socket count).
    pub sockets: u64,
    /// Why the first failed connect (TCP or TLS) failed, until taken.
    pub connect_error: Option<String>,
}

/// Result of one call: a reply, or a transport error (fortio code -1).
pub type CallResult = Result<Reply, ()>;

impl Client {
    /// A client for `addr`; nothing is opened yet. `seed` varies the `-connection-reuse` draws
    /// between connections.
    pub fn new(addr: Target, cfg: &Config, seed: u64) -> Client {
        Client {
            addr,
            h2: cfg.h2,
            stdclient: cfg.stdclient,
            tls: cfg.tls.clone(),
            keepalive: cfg.keepalive,
            timeout: cfg.timeout,
            conn: None,
            used: 0,
            wire: Vec::new(),
            reuse: cfg.connection_reuse,
            reuse_limit: u64::MAX,
            rng: 0x9E37_79B9_7F4A_7C15 ^ seed.wrapping_mul(0xD1B5_4A32_D192_ED03) | 1,
            timer: None,
            sockets: 0,
            connect_error: None,
        }
    }

    /// Makes one call sent at `sent` (the caller's clock reading, reused for the deadline), bounded
    /// by the timeout. Each connect duration (seconds) is recorded in
    /// `on_connect`.
    ///
    /// The timeout uses one lazily re-armed timer per connection instead of a new timer per
    /// request: the timer keeps an older (earlier) deadline, and when it fires before the current
    /// call's deadline it is simply moved forward. It is re-armed at most once per timeout period.
    pub async fn call(
        &mut self,
        sent: Instant,
        template: &Template,
        on_connect: &mut crate::stats::Histogram,
    ) -> CallResult {
        let deadline = tokio::time::Instant::from_std(sent) + self.timeout;
        let mut timer = self
            .timer
            .take()
            .unwrap_or_else(|| Box::pin(tokio::time::sleep_until(deadline)));
        let result = {
            let call = self.call_inner(template, on_connect);
            let mut call = pin!(call);
            loop {
                tokio::select! {
                    biased;
                    r = &mut call => break Some(r),
                    _ = timer.as_mut() => {
                        if tokio::time::Instant::now() >= deadline {
                            break None;
                        }
                        timer.as_mut().reset(deadline);
                    }
                }
            }
        };
        self.timer = Some(timer);
        match result {
            Some(r) => r,
            None => {
                self.conn = None;
                Err(())
            }
        }
    }

    /// Calls allowed on a new connection: uniform in the `-connection-reuse` range (xorshift),
    /// or unlimited.
    fn draw_reuse_limit(&mut self) -> u64 {
        let Some((lo, hi)) = self.reuse else {
            return u64::MAX;
        };
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        lo + self.rng % (hi - lo + 1)
    }

    async fn call_inner(
        &mut self,
        template: &Template,
        on_connect: &mut crate::stats::Histogram,
    ) -> CallResult {
        for attempt in 0..2 {
            let conn = match self.conn.as_mut() {
                Some(c) => c,
                None => {
                    let t0 = Instant::now();
                    let opened = if self.stdclient {
                        stdclient::connect(&self.addr, self.h2, self.tls.as_ref())
                            .await
                            .map(Conn::Std)
                    } else {
                        fast::connect(&self.addr, self.tls.as_ref())
                            .await
                            .map(Conn::Fast)
                    };
                    let c = match opened {
                        Ok(c) => c,
                        Err(e) => {
                            if self.connect_error.is_none() {
                                self.connect_error = Some(e.to_string());
                            }
                            return Err(());
                        }
                    };
                    on_connect.record(t0.elapsed().as_secs_f64());
                    self.sockets += 1;
                    self.used = 0;
                    self.reuse_limit = self.draw_reuse_limit();
                    self.conn.insert(c)
                }
            };
            let reused = self.used > 0;
            let result = match conn {
                Conn::Fast(c) if template.has_uuids() => {
                    if self.wire.is_empty() {
                        self.wire = template.wire().to_vec();
                    }
                    template.fill_uuids(&mut self.wire);
                    c.exchange(&self.wire, template.head).await
                }
                Conn::Fast(c) => c.exchange(template.wire(), template.head).await,
                // Boxed so that hyper's larger exchange future does not enlarge (and get copied
                // with) every fast-client call; hyper allocates per request anyway.
                Conn::Std(c) => Box::pin(c.exchange(template.request())).await,
            };
            match result {
                Ok(reply) => {
                    self.used += 1;
                    if self.used >= self.reuse_limit
                        || reply.close
                        || !self.keepalive
                        || !conn.reusable()
                    {
                        self.conn = None;
                    }
                    return Ok(reply);
                }
                Err(Failure::BeforeResponse) if reused && attempt == 0 => {
                    self.conn = None;
                }
                Err(_) => {
                    self.conn = None;
                    return Err(());
                }
            }
        }
        Err(())
    }
}
