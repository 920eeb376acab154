//! HTTP/1.1 upstream connections for the core pool: meshd's own client on httparse (as
//! meshload's fast client and pingora do), with no task and no channel per connection.
//!
//! A connection is a socket, a read buffer and a flag saying whether it may carry another
//! request. The attempt that checks it out writes the request ([`write`]) and reads the
//! response head ([`read`]) itself; the response body is read from the same buffer by whoever
//! streams it to the client ([`Reader::poll_frame`], driven by [`crate::body::ResponseBody`]),
//! and the connection goes back to the pool when the body's last byte was read. A connection
//! dropped mid-exchange is closed with its socket (the pool's slot frees with it), so it is
//! never reused half-read.
//!
//! While a connection is idle nothing polls it: an upstream that closes it (or sends anything)
//! makes its socket readable, which [`Connection::is_open`] sees without a system call unless
//! the socket is readable, when one non-blocking read tells end-of-file from nothing.

mod read;
mod write;

use std::future::Future as _;
use std::net::SocketAddr;
use std::task::{Context, Poll, Waker};

use bytes::BytesMut;
use http::Response;
use mesh_core::pool::{ConnGuard, Connection, Connector};
use tokio::net::TcpStream;

use crate::body::{BoxError, RequestBody};
pub use read::Reader;

/// Envoy's default `max_response_headers_kb`: a larger response head is a protocol error (502).
pub const MAX_RESPONSE_HEADERS: usize = 60 * 1024;

/// Why an exchange with an upstream failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The upstream closed the connection before the response ended.
    #[error("upstream closed the connection")]
    Closed,
    /// The socket failed.
    #[error("upstream connection: {0}")]
    Io(#[from] std::io::Error),
    /// The upstream broke HTTP/1.1 (a malformed or too large head, bad framing).
    #[error("upstream protocol error: {0}")]
    Protocol(&'static str),
    /// The client's request body failed while it was being sent.
    #[error("request body: {0}")]
    Body(BoxError),
}

impl Error {
    /// Whether the upstream broke the protocol (502 `UPE`) rather than the connection.
    pub fn is_parse(&self) -> bool {
        matches!(self, Error::Protocol(_))
    }

    /// Whether the connection was closed by the upstream (end of file or reset).
    pub fn is_closed(&self) -> bool {
        match self {
            Error::Closed => true,
            Error::Io(io) => matches!(
                io.kind(),
                std::io::ErrorKind::ConnectionReset
                    | std::io::ErrorKind::ConnectionAborted
                    | std::io::ErrorKind::BrokenPipe
                    | std::io::ErrorKind::UnexpectedEof
            ),
            _ => false,
        }
    }
}

/// A failed send: the error, and the request when none of it was written (it may be sent
/// again as it is).
pub struct SendError {
    /// What failed.
    pub error: Error,
    /// The request's body, untouched, when nothing of the request reached the socket.
    pub unsent: Option<RequestBody>,
}

/// A pool connection.
pub struct Upstream {
    io: TcpStream,
    /// Bytes read from the upstream and not consumed yet.
    buf: BytesMut,
    /// The request head (and chunk framing) being written; kept to reuse its allocation.
    wbuf: Vec<u8>,
    /// Whether the connection may carry another request after the current one.
    reusable: bool,
    _guard: ConnGuard,
}

impl Connection for Upstream {
    fn is_open(&self) -> bool {
        self.reusable && self.buf.is_empty() && !self.peer_spoke()
    }
}

impl Upstream {
    /// Whether the upstream sent something (end of file, a reset, bytes) since the last read:
    /// on an idle connection any of it makes the connection unusable. Costs a system call only
    /// when tokio saw the socket become readable.
    fn peer_spoke(&self) -> bool {
        let mut cx = Context::from_waker(Waker::noop());
        match self.io.poll_read_ready(&mut cx) {
            Poll::Pending => false,
            Poll::Ready(Err(_)) => true,
            Poll::Ready(Ok(())) => {
                let mut byte = [0u8; 1];
                !matches!(self.io.try_read(&mut byte), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock)
            }
        }
    }

    /// Sends a request (`parts`, `body`) and reads the response head. The head is written from
    /// `parts` as they are (never copied, so a retry writes the same head again). The body is
    /// written while the response head is awaited; when the response comes first, the rest of
    /// the body goes on while the response streams ([`Reader`]). Interim 1xx responses are
    /// skipped.
    pub async fn send(
        &mut self,
        parts: &http::request::Parts,
        body: RequestBody,
    ) -> Result<Response<Reader>, SendError> {
        let head_request = parts.method == http::Method::HEAD;
        self.wbuf.clear();
        let framing = write::head(parts, &body, &mut self.wbuf);
        if let Err(e) = write::all(&mut self.io, &self.wbuf).await {
            self.reusable = false;
            return Err(SendError {
                error: e.into(),
                unsent: Some(body),
            });
        }
        if framing == write::BodyFraming::None {
            return match read::head(&mut self.io, &mut self.buf, head_request).await {
                Ok((resp, reusable)) => {
                    self.reusable &= reusable;
                    Ok(resp)
                }
                Err(error) => Err(self.failed(error)),
            };
        }
        // The body goes out while the head is awaited: an upstream may answer first.
        let mut sender = Some(write::BodySender::new(body, framing));
        let mut write_failed = false;
        let result = {
            let (mut rd, mut wr) = self.io.split();
            let head = read::head(&mut rd, &mut self.buf, head_request);
            tokio::pin!(head);
            std::future::poll_fn(|cx| {
                if let Some(s) = sender.as_mut() {
                    match s.poll_send(&mut wr, cx) {
                        Poll::Ready(Ok(())) => sender = None,
                        Poll::Ready(Err(e @ Error::Body(_))) => return Poll::Ready(Err(e)),
                        Poll::Ready(Err(e)) => {
                            // The upstream may have answered and closed: its head decides.
                            tracing::debug!(error = %e, "writing the request body upstream failed");
                            sender = None;
                            write_failed = true;
                        }
                        Poll::Pending => {}
                    }
                }
                head.as_mut().poll(cx)
            })
            .await
        };
        self.reusable &= !write_failed;
        match result {
            Ok((mut resp, reusable)) => {
                if let Some(s) = sender {
                    // Answered before the whole body: the reader sends the rest while the
                    // response streams, and the connection is reusable only if it all went.
                    self.reusable = false;
                    resp.body_mut().keep_sending(s, reusable);
                } else {
                    self.reusable &= reusable;
                }
                Ok(resp)
            }
            Err(error) => Err(self.failed(error)),
        }
    }

    /// The connection failed mid-exchange: never reused.
    fn failed(&mut self, error: Error) -> SendError {
        self.reusable = false;
        SendError {
            error,
            unsent: None,
        }
    }

    /// Reads more bytes into the buffer; `Ok(0)` is end of file.
    fn poll_fill(&mut self, cx: &mut Context<'_>) -> Poll<std::io::Result<usize>> {
        read::poll_fill(&mut self.io, &mut self.buf, cx)
    }
}

/// Opens HTTP/1.1 connections over TCP.
#[derive(Debug, Default)]
pub struct Http1Connector;

impl Connector for Http1Connector {
    type Conn = Upstream;

    async fn connect(&self, addr: SocketAddr, guard: ConnGuard) -> std::io::Result<Upstream> {
        let io = TcpStream::connect(addr).await?;
        let _ = io.set_nodelay(true);
        Ok(Upstream {
            io,
            buf: BytesMut::new(),
            wbuf: Vec::new(),
            reusable: true,
            _guard: guard,
        })
    }
}

/// A cluster of real upstream hosts.
pub type TcpCluster = mesh_core::pool::Cluster<Http1Connector>;
/// A checkout from a [`TcpCluster`].
pub type TcpCheckout = mesh_core::pool::Checkout<Http1Connector>;
