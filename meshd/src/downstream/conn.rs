//! The connection loop: read a head, drive the handler (feeding the request body from the
//! socket when it is polled), write the response, then keep the connection or close it.
//!
//! - Keep-alive: HTTP/1.1 unless the client sent `connection: close`; HTTP/1.0 only with
//!   `connection: keep-alive`. A response that closes says `connection: close` (HTTP/1.1).
//! - Pipelining: bytes after a request stay in the buffer and the next head is parsed from them
//!   once the response is written, so answers go out in order.
//! - `expect: 100-continue`: `100 Continue` is written when the handler first polls the body,
//!   never when it answers without reading it (the connection then closes).
//! - `--request-headers-timeout`: a head must be complete this long after the connection began
//!   waiting for it (also between requests of a kept-alive connection).
//! - Drain: an idle connection closes at once, a busy one after its response (which then says
//!   `connection: close`); the cut drops everything at once.
//! - A response body error after the head closes the connection without ending the body.
//! - Memory: an idle connection keeps no read or write buffer; a head is read into 4 KiB that
//!   grows up to [`MAX_CONN_BUF`] only when needed.

use std::future::poll_fn;
use std::net::SocketAddr;
use std::pin::{pin, Pin};
use std::sync::Arc;
use std::task::Poll;
use std::time::{Duration, SystemTime};

use bytes::{Bytes, BytesMut};
use http::header::CONNECTION;
use http_body::{Body as _, Frame};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::time::Instant;

use super::codec::{self, Decoded, Decoder, Encoding, HeadError};
use super::{ClientBody, ClientBodyError, Feed};
use crate::accept::MAX_CONN_BUF;
use crate::body::ResponseBody;
use crate::proxy::ListenerState;
use crate::server::Phase;

/// How a connection ended, for the listener's counters.
#[derive(Debug, Default)]
pub struct Ended {
    /// Requests it carried.
    pub served: u64,
    /// A malformed or too large head was answered (400, 414, 431).
    pub protocol_error: bool,
    /// No complete head within `--request-headers-timeout`.
    pub timeout: bool,
    /// The drain ended it.
    pub drained: bool,
    /// The drain deadline cut it.
    pub cut: bool,
}

/// What reading a head gave (a value on the stack, returned once: its size does not matter).
#[allow(clippy::large_enum_variant)]
enum HeadRead {
    Head(codec::Head),
    Closed,
    Error(HeadError),
    Timeout,
    Drained,
    Cut,
}

/// What a response frame led to.
enum Step {
    /// Go on.
    More,
    /// The response is complete.
    End,
    /// Stop the exchange.
    Stop(Stop),
}

/// Why a request's exchange stopped the connection.
enum Stop {
    /// Go on with the next request.
    Next,
    /// Close (gracefully: the response is complete or was cut by meshd).
    Close,
    /// The drain deadline: drop everything now.
    Cut,
}

struct Conn {
    tcp: TcpStream,
    peer: SocketAddr,
    captured: Option<SocketAddr>,
    state: Arc<ListenerState>,
    phase: watch::Receiver<Phase>,
    buf: BytesMut,
    out: Vec<u8>,
    /// `--request-headers-timeout`, reset for each head (extending a timer that has not fired
    /// is cheap; a new one per request cost ~700 instructions).
    head_timer: Pin<Box<tokio::time::Sleep>>,
    draining: bool,
    ended: Ended,
}

/// A deadline that never comes (no `--request-headers-timeout`).
const NO_TIMEOUT: Duration = Duration::from_secs(365 * 86400);

/// Serves one client connection until it ends; see the module docs.
pub async fn serve(
    tcp: TcpStream,
    peer: SocketAddr,
    captured: Option<SocketAddr>,
    state: Arc<ListenerState>,
    phase: watch::Receiver<Phase>,
) -> Ended {
    let mut c = Conn {
        tcp,
        peer,
        captured,
        state,
        phase,
        buf: BytesMut::new(),
        out: Vec::new(),
        head_timer: Box::pin(tokio::time::sleep(NO_TIMEOUT)),
        draining: false,
        ended: Ended::default(),
    };
    c.run().await;
    c.ended.drained = c.draining;
    c.ended
}

/// Today's `date` value, formatted once per second per thread.
fn with_date<R>(f: impl FnOnce(&[u8]) -> R) -> R {
    thread_local! {
        static DATE: std::cell::RefCell<(u64, String)> = const { std::cell::RefCell::new((0, String::new())) };
    }
    let now = SystemTime::now();
    let secs = now
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    DATE.with(|d| {
        let mut d = d.borrow_mut();
        if d.0 != secs || d.1.is_empty() {
            *d = (secs, httpdate::fmt_http_date(now));
        }
        f(d.1.as_bytes())
    })
}

/// Returns when the drain deadline passes (or the server is gone).
async fn until_cut(phase: &mut watch::Receiver<Phase>) {
    loop {
        if *phase.borrow_and_update() == Phase::Cutting || phase.changed().await.is_err() {
            return;
        }
    }
}

impl Conn {
    async fn run(&mut self) {
        loop {
            let head = match self.read_head().await {
                HeadRead::Head(h) => h,
                HeadRead::Closed => return,
                HeadRead::Error(e) => {
                    self.ended.protocol_error = true;
                    let status = e.status();
                    let mut out = format!(
                        "HTTP/1.1 {} {}\r\ncontent-length: 0\r\nconnection: close\r\ndate: ",
                        status.as_str(),
                        status.canonical_reason().unwrap_or("")
                    )
                    .into_bytes();
                    with_date(|d| out.extend_from_slice(d));
                    out.extend_from_slice(b"\r\n\r\n");
                    let _ = self.tcp.write_all(&out).await;
                    let _ = self.tcp.shutdown().await;
                    tracing::debug!(peer = %self.peer, error = %e, "downstream request head refused");
                    return;
                }
                HeadRead::Timeout => {
                    self.ended.timeout = true;
                    return;
                }
                HeadRead::Drained => {
                    self.ended.drained = true;
                    return;
                }
                HeadRead::Cut => {
                    self.ended.cut = true;
                    return;
                }
            };
            self.ended.served += 1;
            // Boxed: the handler's future is large, and a task's future is sized for its
            // largest state; boxed per request, an idle connection does not carry it.
            // The drain deadline cuts a running exchange: watched here, once per request,
            // rather than at every pass of the exchange's loop.
            let mut cut = self.phase.clone();
            let stop = tokio::select! {
                biased;
                s = Box::pin(self.exchange(head)) => s,
                () = until_cut(&mut cut) => Stop::Cut,
            };
            match stop {
                Stop::Next => {}
                Stop::Close => {
                    let _ = self.tcp.shutdown().await;
                    self.ended.drained |= self.draining;
                    return;
                }
                Stop::Cut => {
                    self.ended.cut = true;
                    return;
                }
            }
            if self.buf.is_empty() {
                // Idle: hold no buffers until the next request's bytes arrive.
                self.buf = BytesMut::new();
                self.out = Vec::new();
            }
        }
    }

    /// Whether the drain has begun (read from the phase, which the exchange does not watch).
    fn draining_now(&mut self) -> bool {
        if *self.phase.borrow() != Phase::Serving {
            self.draining = true;
        }
        self.draining
    }

    /// Notes a phase change; `true` when the drain deadline cuts the connection.
    fn phase_changed(&mut self, changed: Result<(), watch::error::RecvError>) -> bool {
        if changed.is_err() {
            return true; // the server is gone
        }
        match *self.phase.borrow_and_update() {
            Phase::Cutting => true,
            Phase::Draining => {
                self.draining = true;
                false
            }
            Phase::Serving => false,
        }
    }

    async fn read_head(&mut self) -> HeadRead {
        let timeout = self.state.headers_timeout;
        let timeout = if timeout.is_zero() {
            NO_TIMEOUT
        } else {
            timeout
        };
        self.head_timer.as_mut().reset(Instant::now() + timeout);
        // A connection accepted just as the drain began has not seen the change: look first.
        match *self.phase.borrow_and_update() {
            Phase::Cutting => return HeadRead::Cut,
            Phase::Draining => self.draining = true,
            Phase::Serving => {}
        }
        loop {
            if !self.buf.is_empty() {
                match codec::parse_head(&mut self.buf) {
                    Ok(Some(h)) => return HeadRead::Head(h),
                    Ok(None) if self.buf.len() >= MAX_CONN_BUF => {
                        return HeadRead::Error(codec::too_large(&self.buf))
                    }
                    Ok(None) => {}
                    Err(e) => return HeadRead::Error(e),
                }
            } else if self.draining {
                return HeadRead::Drained;
            }
            tokio::select! {
                biased;
                changed = self.phase.changed() => {
                    if self.phase_changed(changed) {
                        return HeadRead::Cut;
                    }
                }
                r = poll_fn(|cx| self.tcp.poll_read_ready(cx)) => {
                    if r.is_err() {
                        return HeadRead::Closed;
                    }
                    let len = self.buf.len();
                    if self.buf.capacity() - len < 1024 {
                        let more = len.max(4096).min(MAX_CONN_BUF - len);
                        self.buf.reserve(more);
                    }
                    match self.tcp.try_read_buf(&mut self.buf) {
                        Ok(0) => return HeadRead::Closed,
                        Ok(_) => {}
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                        Err(_) => return HeadRead::Closed,
                    }
                }
                () = self.head_timer.as_mut() => return HeadRead::Timeout,
            }
        }
    }

    /// Decodes what the buffer holds for the body; `true` when more bytes must be read.
    fn pump(&mut self, feed: &Feed, decoder: &mut Decoder, failed: &mut bool) -> bool {
        match decoder.decode(&mut self.buf) {
            Ok(Decoded::Data(d)) => {
                feed.push(Frame::data(d));
                if decoder.is_done() {
                    feed.end();
                }
                false
            }
            Ok(Decoded::Trailers(t)) => {
                feed.trailers(t);
                feed.end();
                false
            }
            Ok(Decoded::End) => {
                feed.end();
                false
            }
            Ok(Decoded::NeedMore) => true,
            Err(_) => {
                *failed = true;
                // A codec error on the connection, as a bad head is (Envoy counts both).
                self.ended.protocol_error = true;
                feed.fail(ClientBodyError::Protocol);
                false
            }
        }
    }

    /// One request and its response: one loop drives the handler, then the response body,
    /// and feeds the request body whenever it asks.
    async fn exchange(&mut self, head: codec::Head) -> Stop {
        let codec::Head {
            request,
            framing,
            mut keep_alive,
            expect_continue,
            ..
        } = head;
        let mut decoder = Decoder::new(framing);
        let (client_body, feed) = if decoder.is_done() {
            (ClientBody::empty(), None)
        } else {
            let (b, shared) = ClientBody::streaming(decoder.remaining());
            (b, Some(Feed { shared }))
        };
        let method = request.method().clone();
        let version = request.version();
        let mut continue_pending = expect_continue;
        let mut need_read = false;
        let mut failed = false;
        // The handler dropped the body before its end: nothing more is fed (what is already
        // buffered may still finish it, see below).
        let mut abandoned = false;
        let handler = crate::proxy::handle(
            request.map(|()| client_body),
            self.peer,
            self.captured,
            self.state.clone(),
        );
        let mut handler = pin!(handler);
        let mut body: Option<ResponseBody> = None;
        let mut encoding = Encoding::None;
        let mut keep = false;
        loop {
            let feeding =
                feed.is_some() && !need_read && !failed && !abandoned && !decoder.is_done();
            tokio::select! {
                biased;
                _ = poll_fn(|cx| feed.as_ref().map_or(Poll::Pending, |f| f.poll_want(cx))), if feeding => {
                    let Some(f) = &feed else { continue };
                    if f.dropped() {
                        abandoned = true;
                        continue;
                    }
                    if continue_pending {
                        continue_pending = false;
                        if self.tcp.write_all(b"HTTP/1.1 100 Continue\r\n\r\n").await.is_err() {
                            f.fail(ClientBodyError::Disconnected);
                            failed = true;
                            continue;
                        }
                    }
                    need_read = self.pump(f, &mut decoder, &mut failed);
                }
                r = &mut handler, if body.is_none() => {
                    let Ok(response) = r;
                    let (parts, b) = response.into_parts();
                    if parts
                        .headers
                        .get_all(CONNECTION)
                        .iter()
                        .any(|v| v.as_bytes().eq_ignore_ascii_case(b"close"))
                    {
                        keep_alive = false;
                    }
                    let close = !keep_alive || self.draining_now() || failed;
                    let exact = b.size_hint().exact();
                    self.out.clear();
                    encoding = with_date(|d| {
                        codec::encode_head(&parts, (&method, version), exact, close, d, &mut self.out)
                    });
                    keep = !close && encoding != Encoding::Close;
                    body = Some(b);
                    // Frames ready now go out with the head.
                    match self.drain_ready(&mut body, encoding).await {
                        Step::More => {}
                        Step::End => break,
                        Step::Stop(s) => return s,
                    }
                }
                f = poll_fn(|cx| body.as_mut().map_or(Poll::Pending, |b| Pin::new(b).poll_frame(cx))), if body.is_some() => {
                    match self.on_frame(f, encoding).await {
                        Step::More => {}
                        Step::End => break,
                        Step::Stop(s) => return s,
                    }
                    match self.drain_ready(&mut body, encoding).await {
                        Step::More => {}
                        Step::End => break,
                        Step::Stop(s) => return s,
                    }
                }
                // The body wants bytes, or else nothing does and the socket is watched, so
                // that a client that leaves cancels the request (bytes that come, e.g. a
                // pipelined request, are kept, up to the buffer's limit).
                // poll_read_ready, not readable(): no waiter registered and dropped per pass.
                r = poll_fn(|cx| self.tcp.poll_read_ready(cx)), if need_read || self.buf.len() < MAX_CONN_BUF => {
                    let len = self.buf.len();
                    if need_read && self.buf.capacity() - len < 1024 {
                        self.buf.reserve(16 * 1024);
                    } else if self.buf.capacity() - len < 1024 {
                        self.buf.reserve(len.max(4096).min(MAX_CONN_BUF - len));
                    }
                    let read = match r {
                        Ok(()) => self.tcp.try_read_buf(&mut self.buf),
                        Err(e) => Err(e),
                    };
                    match read {
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                        Ok(n) if n > 0 => {
                            if need_read {
                                if let Some(f) = &feed {
                                    need_read = self.pump(f, &mut decoder, &mut failed);
                                }
                            }
                        }
                        _ => {
                            // Closed or failed: the body (if any) fails; a client that left
                            // while nothing read cancels the request (the handler's drop logs
                            // DC).
                            if let Some(f) = &feed {
                                f.fail(ClientBodyError::Disconnected);
                            }
                            if !need_read {
                                return Stop::Close;
                            }
                            need_read = false;
                            failed = true;
                        }
                    }
                }
            }
        }
        if !self.out.is_empty() {
            if self.tcp.write_all(&self.out).await.is_err() {
                return Stop::Close;
            }
            self.out.clear();
        }
        drop(body);
        // A body the handler did not read to its end: what is buffered may finish it.
        if !decoder.is_done() {
            if continue_pending || failed || need_read {
                keep = false;
            } else {
                while !decoder.is_done() {
                    match decoder.decode(&mut self.buf) {
                        Ok(Decoded::NeedMore) | Err(_) => {
                            keep = false;
                            break;
                        }
                        Ok(_) => {}
                    }
                }
            }
        }
        if keep && !self.draining_now() {
            Stop::Next
        } else {
            Stop::Close
        }
    }

    /// Takes the frames the response body has ready now; writes the buffer when it has none.
    async fn drain_ready(&mut self, body: &mut Option<ResponseBody>, encoding: Encoding) -> Step {
        loop {
            let Some(b) = body.as_mut() else {
                return Step::More;
            };
            let now = poll_fn(|cx| Poll::Ready(Pin::new(&mut *b).poll_frame(cx))).await;
            match now {
                Poll::Ready(f) => match self.on_frame(f, encoding).await {
                    Step::More => {}
                    other => return other,
                },
                Poll::Pending => {
                    if !self.out.is_empty() {
                        if self.tcp.write_all(&self.out).await.is_err() {
                            return Step::Stop(Stop::Close); // the client left: the body logs DC
                        }
                        self.out.clear();
                    }
                    return Step::More;
                }
            }
        }
    }

    /// One polled frame of the response body.
    async fn on_frame(
        &mut self,
        frame: Option<Result<Frame<Bytes>, crate::body::BoxError>>,
        encoding: Encoding,
    ) -> Step {
        match frame {
            None => {
                if encoding == Encoding::Chunked {
                    self.out.extend_from_slice(codec::LAST_CHUNK);
                }
                Step::End
            }
            Some(Ok(frame)) => match frame.into_data() {
                Ok(data) => match self.write_data(encoding, data).await {
                    Ok(()) => Step::More,
                    Err(_) => Step::Stop(Stop::Close),
                },
                Err(_) => Step::More, // trailers are not sent (as hyper without `te: trailers`)
            },
            Some(Err(e)) => {
                // Cut after the head: close without ending the body, so the client sees it.
                tracing::debug!(peer = %self.peer, error = %e, "response body failed");
                let _ = self.tcp.write_all(&self.out).await;
                self.out.clear();
                Step::Stop(Stop::Close)
            }
        }
    }

    /// Appends a data frame to the write buffer (framed), writing large frames directly.
    async fn write_data(&mut self, encoding: Encoding, data: Bytes) -> std::io::Result<()> {
        match encoding {
            Encoding::None => return Ok(()),
            Encoding::Chunked => {
                if data.is_empty() {
                    return Ok(());
                }
                codec::chunk_header(data.len(), &mut self.out);
            }
            Encoding::Length(_) | Encoding::Close => {}
        }
        if data.len() <= 16 * 1024 {
            self.out.extend_from_slice(&data);
        } else {
            self.tcp.write_all(&self.out).await?;
            self.out.clear();
            self.tcp.write_all(&data).await?;
        }
        if encoding == Encoding::Chunked {
            self.out.extend_from_slice(b"\r\n");
        }
        Ok(())
    }
}
