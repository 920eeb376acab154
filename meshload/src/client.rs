//! One HTTP connection and one exchange on it, with hyper's low-level client
//! (`hyper::client::conn::http1`, or `http2` for `-h2`).
//!
//! The connection future is driven inside the caller's task (see [`drive`]) instead of being
//! spawned, so each load connection is exactly one tokio task. The request is built once into a
//! [`Template`]; each call clones it (reference-counted body and URI).

use std::future::Future;
use std::net::SocketAddr;
use std::pin::{pin, Pin};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::{CONNECTION, CONTENT_TYPE, HOST, USER_AGENT};
use http::{HeaderMap, HeaderValue, Method, Request, Uri, Version};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpStream;

use crate::config::Config;

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
        Template {
            method: cfg.method.clone(),
            uri,
            version: if cfg.h2 {
                Version::HTTP_2
            } else if cfg.http10 {
                Version::HTTP_10
            } else {
                Version::HTTP_11
            },
            headers,
            body: cfg.payload.clone(),
        }
    }

    /// A fresh request (cheap clones of prepared parts).
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

enum Sender {
    H1(http1::SendRequest<Full<Bytes>>),
    H2(http2::SendRequest<Full<Bytes>>),
}

type Driver = Pin<Box<dyn Future<Output = ()> + Send>>;

/// An open connection: the request sender and the connection future that performs the I/O.
pub struct Conn {
    sender: Sender,
    driver: Option<Driver>,
    /// Exchanges completed on this connection.
    pub used: u64,
}

/// What one exchange produced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reply {
    /// HTTP status.
    pub status: u16,
    /// Size of the response head (status line, headers, blank line), as fortio's fast client.
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
    /// The response head came but the body failed.
    InBody,
}

/// Opens a TCP connection (no delay) and performs the HTTP handshake.
pub async fn connect(addr: SocketAddr, h2: bool) -> std::io::Result<Conn> {
    let stream = TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let io = TokioIo::new(stream);
    let (sender, driver): (Sender, Driver) = if h2 {
        let (s, c) = http2::Builder::new(TokioExecutor::new())
            .handshake(io)
            .await
            .map_err(std::io::Error::other)?;
        (
            Sender::H2(s),
            Box::pin(async move {
                let _ = c.await;
            }),
        )
    } else {
        let (s, c) = http1::Builder::new()
            .handshake(io)
            .await
            .map_err(std::io::Error::other)?;
        (
            Sender::H1(s),
            Box::pin(async move {
                let _ = c.await;
            }),
        )
    };
    Ok(Conn {
        sender,
        driver: Some(driver),
        used: 0,
    })
}

/// Polls `fut` together with the connection's I/O future until `fut` completes. When the
/// connection ends first, `fut` is polled alone: it then resolves or fails promptly.
async fn drive<F: Future>(driver: &mut Option<Driver>, fut: F) -> F::Output {
    let mut fut = pin!(fut);
    if let Some(d) = driver.as_mut() {
        tokio::select! {
            biased;
            out = &mut fut => return out,
            _ = d.as_mut() => {}
        }
        *driver = None;
    }
    fut.await
}

/// Size of an HTTP/1.x response head as it was on the wire (hyper does not expose the raw bytes;
/// this recomputes it: status line, `name: value\r\n` per header, final `\r\n`).
fn head_size<B>(resp: &http::Response<B>) -> u64 {
    let reason = resp.status().canonical_reason().unwrap_or("").len();
    let mut n = "HTTP/1.1 200 ".len() + reason + 2 + 2;
    for (k, v) in resp.headers() {
        n += k.as_str().len() + 2 + v.len() + 2;
    }
    n as u64
}

impl Conn {
    /// Whether the connection may carry another request.
    pub fn reusable(&self) -> bool {
        self.driver.is_some()
            && match &self.sender {
                Sender::H1(s) => !s.is_closed(),
                Sender::H2(s) => !s.is_closed(),
            }
    }

    /// Sends `req` and reads the whole response, counting bytes.
    pub async fn exchange(&mut self, req: Request<Full<Bytes>>) -> Result<Reply, Failure> {
        let Conn { sender, driver, .. } = self;
        let h2 = matches!(sender, Sender::H2(_));
        let result = drive(driver, async move {
            let resp = match sender {
                Sender::H1(s) => {
                    s.ready().await.map_err(|_| Failure::BeforeResponse)?;
                    s.send_request(req).await
                }
                Sender::H2(s) => {
                    s.ready().await.map_err(|_| Failure::BeforeResponse)?;
                    s.send_request(req).await
                }
            }
            .map_err(|_| Failure::BeforeResponse)?;
            let status = resp.status().as_u16();
            let header_size = if h2 { 0 } else { head_size(&resp) };
            let close = resp
                .headers()
                .get(CONNECTION)
                .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"close"));
            let mut body = resp.into_body();
            let mut body_size = 0u64;
            while let Some(frame) = body.frame().await {
                let frame = frame.map_err(|_| Failure::InBody)?;
                if let Some(d) = frame.data_ref() {
                    body_size += d.len() as u64;
                }
            }
            Ok(Reply {
                status,
                header_size,
                body_size,
                close,
            })
        })
        .await;
        if result.is_ok() {
            self.used += 1;
        }
        result
    }
}

/// A connection slot: connects lazily, retries once when a reused connection died before
/// answering (fortio does the same, without counting the retry), and bounds every call by the
/// timeout.
pub struct Client {
    addr: SocketAddr,
    h2: bool,
    keepalive: bool,
    timeout: Duration,
    conn: Option<Conn>,
    timer: Option<Pin<Box<tokio::time::Sleep>>>,
    /// Successful connects (fortio's socket count).
    pub sockets: u64,
}

/// Result of one call: a reply, or a transport error (fortio code -1).
pub type CallResult = Result<Reply, ()>;

impl Client {
    /// A client for `addr`; nothing is opened yet.
    pub fn new(addr: SocketAddr, cfg: &Config) -> Client {
        Client {
            addr,
            h2: cfg.h2,
            keepalive: cfg.keepalive,
            timeout: cfg.timeout,
            conn: None,
            timer: None,
            sockets: 0,
        }
    }

    /// Makes one call, bounded by the timeout. Each connect duration (seconds) is recorded in
    /// `on_connect`.
    ///
    /// The timeout uses one lazily re-armed timer per connection instead of a new timer per
    /// request: the timer keeps an older (earlier) deadline, and when it fires before the current
    /// call's deadline it is simply moved forward. It is re-armed at most once per timeout period.
    pub async fn call(
        &mut self,
        template: &Template,
        on_connect: &mut crate::stats::Histogram,
    ) -> CallResult {
        let deadline = tokio::time::Instant::now() + self.timeout;
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
                    let c = connect(self.addr, self.h2).await.map_err(|_| ())?;
                    on_connect.record(t0.elapsed().as_secs_f64());
                    self.sockets += 1;
                    self.conn.insert(c)
                }
            };
            let reused = conn.used > 0;
            match conn.exchange(template.request()).await {
                Ok(reply) => {
                    if reply.close || !self.keepalive || !conn.reusable() {
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
