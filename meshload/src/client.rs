//! One load connection's client: the request prepared once ([`Template`]), a lazily opened
//! connection of the fast HTTP/1.x client ([`crate::fast`], the default) or of hyper
//! ([`crate::stdclient`], `-stdclient` and `-h2`), fortio's retry of a reused connection that died,
//! and the timeout on every call.

use std::net::SocketAddr;
use std::pin::{pin, Pin};
use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};
use http::header::{CONNECTION, CONTENT_LENGTH, CONTENT_TYPE, HOST, USER_AGENT};
use http::{HeaderMap, HeaderValue, Method, Request, Uri, Version};
use http_body_util::Full;

use crate::config::Config;
use crate::{fast, stdclient};

/// fortio's status for a transport error (connect refused, reset, timeout).
pub const SOCKET_ERROR: i32 = -1;

/// The request every call sends, prepared once.
#[derive(Debug, Clone)]
pub struct Template {
    method: Method,
    uri: Uri,
    version: Version,
    headers: HeaderMap,
    body: Bytes,
    /// The method is HEAD: responses have no body.
    head: bool,
    /// The whole HTTP/1.x request as the fast client writes it: head and body.
    wire: Bytes,
}

/// The request line, headers (in `headers`' order, then Content-Length) and body, as bytes.
fn serialize(
    method: &Method,
    target: &str,
    version: Version,
    headers: &HeaderMap,
    body: &[u8],
) -> Bytes {
    let mut w = BytesMut::with_capacity(256 + body.len());
    w.put_slice(method.as_str().as_bytes());
    w.put_u8(b' ');
    w.put_slice(target.as_bytes());
    w.put_slice(if version == Version::HTTP_10 {
        b" HTTP/1.0\r\n"
    } else {
        b" HTTP/1.1\r\n"
    });
    for (k, v) in headers {
        w.put_slice(k.as_str().as_bytes());
        w.put_slice(b": ");
        w.put_slice(v.as_bytes());
        w.put_slice(b"\r\n");
    }
    // As hyper: a length for any body, and for methods whose requests carry one.
    let wants_length =
        !body.is_empty() || matches!(*method, Method::POST | Method::PUT | Method::PATCH);
    if wants_length && !headers.contains_key(CONTENT_LENGTH) {
        w.put_slice(b"content-length: ");
        w.put_slice(body.len().to_string().as_bytes());
        w.put_slice(b"\r\n");
    }
    w.put_slice(b"\r\n");
    w.put_slice(body);
    w.freeze()
}

impl Template {
    /// Prepares the request for `cfg`.
    pub fn new(cfg: &Config) -> Template {
        let mut headers = HeaderMap::new();
        let authority = cfg
            .host_override
            .clone()
            .or_else(|| cfg.uri.authority().map(|a| a.as_str().to_owned()))
            .unwrap_or_default();
        let path = cfg
            .uri
            .path_and_query()
            .map(|p| p.as_str().to_owned())
            .unwrap_or_else(|| "/".to_owned());
        let uri: Uri = if cfg.h2 {
            format!("http://{authority}{path}")
                .parse()
                .unwrap_or_default()
        } else {
            path.parse().unwrap_or_default()
        };
        if !cfg.h2 {
            if let Ok(v) = HeaderValue::from_str(&authority) {
                headers.insert(HOST, v);
            }
        }
        if !cfg.no_user_agent {
            headers.insert(
                USER_AGENT,
                HeaderValue::from_static(concat!("meshload/", env!("CARGO_PKG_VERSION"))),
            );
        }
        if !cfg.content_type.is_empty() {
            if let Ok(v) = HeaderValue::from_str(&cfg.content_type) {
                headers.insert(CONTENT_TYPE, v);
            }
        }
        for (k, v) in &cfg.headers {
            headers.append(k.clone(), v.clone());
        }
        if !cfg.h2 {
            if !cfg.keepalive {
                headers.insert(CONNECTION, HeaderValue::from_static("close"));
            } else if cfg.http10 {
                headers.insert(CONNECTION, HeaderValue::from_static("keep-alive"));
            }
        }
        let version = if cfg.h2 {
            Version::HTTP_2
        } else if cfg.http10 {
            Version::HTTP_10
        } else {
            Version::HTTP_11
        };
        let wire = serialize(&cfg.method, &path, version, &headers, &cfg.payload);
        Template {
            head: cfg.method == Method::HEAD,
            method: cfg.method.clone(),
            uri,
            version,
            headers,
            body: cfg.payload.clone(),
            wire,
        }
    }

    /// The request's bytes for the fast client.
    pub fn wire(&self) -> &[u8] {
        &self.wire
    }

    /// A fresh request for hyper (cheap clones of prepared parts).
    #[inline]
    pub fn request(&self) -> Request<Full<Bytes>> {
        let mut req = Request::new(Full::new(self.body.clone()));
        *req.method_mut() = self.method.clone();
        *req.uri_mut() = self.uri.clone();
        *req.version_mut() = self.version;
        *req.headers_mut() = self.headers.clone();
        req
    }
}

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
    addr: SocketAddr,
    h2: bool,
    stdclient: bool,
    keepalive: bool,
    timeout: Duration,
    conn: Option<Conn>,
    /// Exchanges completed on the current connection.
    used: u64,
    /// `-connection-reuse` range, and the limit drawn for the current connection.
    reuse: Option<(u64, u64)>,
    reuse_limit: u64,
    rng: u64,
    timer: Option<Pin<Box<tokio::time::Sleep>>>,
    /// Successful connects (fortio's socket count).
    pub sockets: u64,
}

/// Result of one call: a reply, or a transport error (fortio code -1).
pub type CallResult = Result<Reply, ()>;

impl Client {
    /// A client for `addr`; nothing is opened yet. `seed` varies the `-connection-reuse` draws
    /// between connections.
    pub fn new(addr: SocketAddr, cfg: &Config, seed: u64) -> Client {
        Client {
            addr,
            h2: cfg.h2,
            stdclient: cfg.stdclient,
            keepalive: cfg.keepalive,
            timeout: cfg.timeout,
            conn: None,
            used: 0,
            reuse: cfg.connection_reuse,
            reuse_limit: u64::MAX,
            rng: 0x9E37_79B9_7F4A_7C15 ^ seed.wrapping_mul(0xD1B5_4A32_D192_ED03) | 1,
            timer: None,
            sockets: 0,
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
                    let c = if self.stdclient {
                        Conn::Std(
                            stdclient::connect(self.addr, self.h2)
                                .await
                                .map_err(|_| ())?,
                        )
                    } else {
                        Conn::Fast(fast::connect(self.addr).await.map_err(|_| ())?)
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
