//! meshd's own HTTP/1.1 server connection for the proxy listeners (admin, control and stats
//! stay on hyper).
//!
//! - [`codec`]: framing free of I/O (request heads with `httparse`, chunked decoding, response
//!   heads), where the smuggling defences are.
//! - [`conn`]: the connection loop. One task per connection drives the handler's future and
//!   the response body itself (no task or channel per request), feeds the request body from
//!   the socket when the body is polled, answers pipelined requests in order, keeps the
//!   connection alive or closes it, and holds no read buffer while idle.
//! - [`ClientBody`]: the request body the handler reads; it shares a small state with the
//!   connection task, which reads the socket only while the body wants bytes.

pub mod codec;
mod conn;

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

use bytes::Bytes;
use http::HeaderMap;
use http_body::{Body, Frame, SizeHint};

pub use conn::serve;

/// Why the client's request body could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ClientBodyError {
    /// The body broke HTTP/1.1 framing (an invalid chunk).
    #[error("invalid request body framing")]
    Protocol,
    /// The client closed the connection (or it failed) before the body ended.
    #[error("client disconnected before the request body ended")]
    Disconnected,
}

/// What the connection and the body share.
#[derive(Default)]
struct Shared {
    /// Frames decoded and not read yet.
    frames: VecDeque<Frame<Bytes>>,
    /// The body was polled and found nothing: the connection should read the socket.
    want: bool,
    /// The connection decoded the body's end (no more frames will come).
    ended: bool,
    /// The body failed.
    error: Option<ClientBodyError>,
    /// The handler dropped the body.
    dropped: bool,
    /// Exact bytes still to come, when known (for the size hint).
    remaining: Option<u64>,
    body_waker: Option<Waker>,
    conn_waker: Option<Waker>,
}

/// The client's request body: frames the connection decodes from its socket when the body is
/// polled. Dropping it before its end makes the connection close after the response (unless
/// what is left of the body is already buffered).
pub struct ClientBody {
    shared: Option<Arc<Mutex<Shared>>>,
}

fn lock(s: &Mutex<Shared>) -> std::sync::MutexGuard<'_, Shared> {
    s.lock().unwrap_or_else(|p| p.into_inner())
}

impl ClientBody {
    /// A body without bytes.
    pub fn empty() -> Self {
        ClientBody { shared: None }
    }

    fn streaming(remaining: Option<u64>) -> (Self, Arc<Mutex<Shared>>) {
        let shared = Arc::new(Mutex::new(Shared {
            remaining,
            ..Default::default()
        }));
        (
            ClientBody {
                shared: Some(shared.clone()),
            },
            shared,
        )
    }
}

impl Drop for ClientBody {
    fn drop(&mut self) {
        if let Some(s) = &self.shared {
            let mut s = lock(s);
            s.dropped = true;
            s.want = false;
            if let Some(w) = s.conn_waker.take() {
                w.wake();
            }
        }
    }
}

impl Body for ClientBody {
    type Data = Bytes;
    type Error = ClientBodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, ClientBodyError>>> {
        let Some(shared) = &self.shared else {
            return Poll::Ready(None);
        };
        let mut s = lock(shared);
        if let Some(f) = s.frames.pop_front() {
            if let (Some(d), Some(r)) = (f.data_ref(), s.remaining.as_mut()) {
                *r = r.saturating_sub(d.len() as u64);
            }
            return Poll::Ready(Some(Ok(f)));
        }
        if let Some(e) = s.error {
            return Poll::Ready(Some(Err(e)));
        }
        if s.ended {
            return Poll::Ready(None);
        }
        s.want = true;
        if !s
            .body_waker
            .as_ref()
            .is_some_and(|w| w.will_wake(cx.waker()))
        {
            s.body_waker = Some(cx.waker().clone());
        }
        if let Some(w) = s.conn_waker.take() {
            w.wake();
        }
        Poll::Pending
    }

    fn is_end_stream(&self) -> bool {
        self.shared.as_ref().is_none_or(|s| {
            let s = lock(s);
            s.frames.is_empty() && s.error.is_none() && (s.ended || s.remaining == Some(0))
        })
    }

    fn size_hint(&self) -> SizeHint {
        match &self.shared {
            None => SizeHint::with_exact(0),
            Some(s) => match lock(s).remaining {
                Some(n) => SizeHint::with_exact(n),
                None => SizeHint::new(),
            },
        }
    }
}

/// The connection's side of a [`ClientBody`].
struct Feed {
    shared: Arc<Mutex<Shared>>,
}

impl Feed {
    /// Whether the body wants bytes (registers the connection task to be woken when it does,
    /// or when the body is dropped).
    fn poll_want(&self, cx: &mut Context<'_>) -> Poll<()> {
        let mut s = lock(&self.shared);
        if s.want || s.dropped {
            return Poll::Ready(());
        }
        if !s
            .conn_waker
            .as_ref()
            .is_some_and(|w| w.will_wake(cx.waker()))
        {
            s.conn_waker = Some(cx.waker().clone());
        }
        Poll::Pending
    }

    fn dropped(&self) -> bool {
        lock(&self.shared).dropped
    }

    fn push(&self, frame: Frame<Bytes>) {
        let mut s = lock(&self.shared);
        s.frames.push_back(frame);
        s.want = false;
        if let Some(w) = s.body_waker.take() {
            w.wake();
        }
    }

    fn trailers(&self, t: HeaderMap) {
        self.push(Frame::trailers(t));
    }

    fn end(&self) {
        let mut s = lock(&self.shared);
        s.ended = true;
        s.want = false;
        if let Some(w) = s.body_waker.take() {
            w.wake();
        }
    }

    fn fail(&self, e: ClientBodyError) {
        let mut s = lock(&self.shared);
        s.error = Some(e);
        s.want = false;
        if let Some(w) = s.body_waker.take() {
            w.wake();
        }
    }
}
