//! Bodies that stream through meshd without being buffered, and the guard that ends a request.
//!
//! [`RequestBody`] carries the client's body upstream, reporting bytes and activity to the
//! request's [`Progress`]. [`ResponseBody`] carries the upstream response (or a local reply) to
//! the client, runs the request's [`Timers`] while it waits for upstream bytes, and owns the
//! request's [`Completion`]: when the last byte is sent the upstream connection goes back to the
//! pool. Otherwise the request was cut, and exactly one of these says by whom:
//! - meshd cut it ([`Completion::cut`]: a timeout, the upstream broke, the drain deadline): the
//!   flag says why (`UT`, `SI`, `UC`, `LR`), never `DC`;
//! - else the client went away: `DC`.
//!
//! Either way the upstream connection is closed (never reused mid-response), every slot is
//! released, and the access-log line is written exactly once.

use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};

use crate::downstream::{ClientBody, ClientBodyError};
use mesh_core::accesslog::{Record, ResponseFlag, Writer};
use mesh_core::pool::{Checkout, SlotConnector};

use crate::proxy::timeout::{Expired, Progress, RequestBodyError, Timers};
use crate::proxy::ListenerState;
use crate::upstream::{Reader, TcpCheckout};

/// Errors a body hands to the server writing it (which then closes the connection).
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Why meshd ended a response before its end.
#[derive(Debug, thiserror::Error)]
#[error("response cut by meshd: {0}")]
pub struct CutError(&'static str);

/// The client's request body on its way upstream: streamed from the client, or sent again from
/// what meshd buffered for a retry ([`RequestBody::replay`]).
pub struct RequestBody {
    inner: Option<ClientBody>,
    /// Buffered frames, sent before `inner` (a retry's copy has no `inner`).
    buffered: std::collections::VecDeque<Frame<Bytes>>,
    progress: Arc<Progress>,
}

impl RequestBody {
    /// Wraps `inner`, reporting bytes, activity and how it ended to `progress`.
    pub fn new(inner: ClientBody, progress: Arc<Progress>) -> Self {
        RequestBody {
            inner: Some(inner),
            buffered: Default::default(),
            progress,
        }
    }

    /// An empty body reporting to the same progress (for a copy of a request without a body).
    pub fn emptied(&self) -> Self {
        RequestBody {
            inner: None,
            buffered: Default::default(),
            progress: self.progress.clone(),
        }
    }

    /// A body of frames meshd already read from the client (counted then), followed by the
    /// rest of `inner` when the client's body was longer than what was buffered.
    pub fn replay(
        frames: std::collections::VecDeque<Frame<Bytes>>,
        inner: Option<ClientBody>,
        progress: Arc<Progress>,
    ) -> Self {
        RequestBody {
            inner,
            buffered: frames,
            progress,
        }
    }

    /// The client's body still to read and the request's progress (frames already buffered
    /// are dropped: take them first).
    pub fn into_parts(self) -> (Option<ClientBody>, Arc<Progress>) {
        (self.inner, self.progress)
    }

    /// The request's progress.
    pub fn progress(&self) -> &Arc<Progress> {
        &self.progress
    }
}

/// How a request body error reads: framing the client got wrong, or the client leaving.
fn classify(e: &ClientBodyError) -> RequestBodyError {
    match e {
        ClientBodyError::Protocol => RequestBodyError::Protocol,
        ClientBodyError::Disconnected => RequestBodyError::Disconnected,
    }
}

impl Body for RequestBody {
    type Data = Bytes;
    type Error = ClientBodyError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, ClientBodyError>>> {
        let this = &mut *self;
        if let Some(frame) = this.buffered.pop_front() {
            return Poll::Ready(Some(Ok(frame)));
        }
        let Some(inner) = this.inner.as_mut() else {
            return Poll::Ready(None);
        };
        let polled = Pin::new(&mut *inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(d) = frame.data_ref() {
                    this.progress
                        .received
                        .fetch_add(d.len() as u64, Ordering::Relaxed);
                    this.progress.touch();
                }
                // A body that says it ended is not polled again.
                if inner.is_end_stream() {
                    this.progress.request_done();
                }
            }
            Poll::Ready(Some(Err(e))) => this.progress.request_failed(classify(e)),
            Poll::Ready(None) => this.progress.request_done(),
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.buffered.is_empty() && self.inner.as_ref().is_none_or(Body::is_end_stream)
    }

    fn size_hint(&self) -> SizeHint {
        let buffered: u64 = self
            .buffered
            .iter()
            .filter_map(|f| f.data_ref().map(|d| d.len() as u64))
            .sum();
        match &self.inner {
            None => SizeHint::with_exact(buffered),
            Some(i) => {
                let h = i.size_hint();
                let mut out = SizeHint::new();
                out.set_lower(h.lower() + buffered);
                if let Some(u) = h.upper() {
                    out.set_upper(u + buffered);
                }
                out
            }
        }
    }
}

/// Why meshd cut a request (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cut {
    /// A timer fired.
    Timeout(Expired),
    /// The upstream connection broke mid-response (`UC`).
    UpstreamReset,
    /// The client's request body broke its framing (`DPE`).
    DownstreamProtocol,
}

/// Everything that must happen once when a request ends. Boxed: it is moved from the request
/// path into the response body, and a pointer moves cheaper than its ~600 bytes.
pub struct Completion(Box<CompletionState>);

impl std::ops::Deref for Completion {
    type Target = CompletionState;
    fn deref(&self) -> &CompletionState {
        &self.0
    }
}

impl std::ops::DerefMut for Completion {
    fn deref_mut(&mut self) -> &mut CompletionState {
        &mut self.0
    }
}

/// What a [`Completion`] holds.
pub struct CompletionState {
    /// The listener (its stats; whether the drain deadline is cutting requests).
    pub listener: Arc<ListenerState>,
    /// The access log, if the node has one.
    pub log: Option<Writer>,
    /// The access-log record being filled in.
    pub record: Record,
    /// When the request started.
    pub start: Instant,
    /// The upstream connection, while the response streams.
    pub upstream: Option<TcpCheckout>,
    /// A gateway's admission slot, held for the whole request.
    pub admission: Option<Checkout<SlotConnector>>,
    /// The request's progress (bytes received).
    pub progress: Option<Arc<Progress>>,
    finished: bool,
    cut: bool,
}

impl Completion {
    /// A completion for a request that just started.
    pub fn new(listener: Arc<ListenerState>, log: Option<Writer>, record: Record) -> Self {
        listener.stats.downstream_rq_active.inc();
        Completion(Box::new(CompletionState {
            listener,
            log,
            record,
            start: Instant::now(),
            upstream: None,
            admission: None,
            progress: None,
            finished: false,
            cut: false,
        }))
    }
}

impl CompletionState {
    /// The response was sent completely: the connection may be reused.
    fn finish(&mut self) {
        self.finished = true;
        if let Some(u) = self.upstream.take() {
            u.release(true);
        }
    }

    /// meshd ends the response here (after its headers were sent): flag, details and counters
    /// say why; the upstream connection is closed.
    pub fn cut(&mut self, why: Cut) {
        if self.cut || self.finished {
            return;
        }
        self.cut = true;
        let stats = &self.listener.stats;
        stats.counters.downstream_rq_tx_reset.inc();
        let upstream = self.upstream.take();
        match why {
            Cut::Timeout(Expired::Request) => {
                self.record
                    .flags
                    .insert(ResponseFlag::UpstreamRequestTimeout);
                self.record.details = "response_timeout".into();
                if let Some(u) = &upstream {
                    u.cluster().counters.upstream_rq_timeout.inc();
                    u.host().counters.rq_timeout.inc();
                }
            }
            Cut::Timeout(Expired::Idle) => {
                self.record.flags.insert(ResponseFlag::StreamIdleTimeout);
                self.record.details = "stream_idle_timeout".into();
                stats.counters.downstream_rq_idle_timeout.inc();
            }
            Cut::UpstreamReset => {
                self.record
                    .flags
                    .insert(ResponseFlag::UpstreamConnectionTermination);
                self.record.details =
                    "upstream_reset_after_response_started{connection_termination}".into();
                if let Some(u) = &upstream {
                    u.cluster().counters.upstream_rq_rx_reset.inc();
                }
            }
            Cut::DownstreamProtocol => {
                self.record
                    .flags
                    .insert(ResponseFlag::DownstreamProtocolError);
                self.record.details = "downstream_protocol_error".into();
            }
        }
        if let Some(u) = &upstream {
            if why != Cut::UpstreamReset {
                u.cluster().counters.upstream_rq_tx_reset.inc();
            }
        }
        drop(upstream); // closes the connection: it is mid-response
    }
}

impl Drop for CompletionState {
    fn drop(&mut self) {
        if !self.finished && !self.cut {
            if self.listener.cutting.load(Ordering::Relaxed) {
                // The drain deadline passed: meshd cuts what still runs (Envoy's LR, local reset).
                self.record.flags.insert(ResponseFlag::LocalReset);
                self.record.details = "drain_timeout".into();
                self.listener.stats.counters.downstream_rq_tx_reset.inc();
            } else {
                // The client left before the response ended.
                self.record
                    .flags
                    .insert(ResponseFlag::DownstreamConnectionTermination);
                self.listener.stats.counters.downstream_rq_rx_reset.inc();
            }
            if let Some(u) = self.upstream.take() {
                u.cluster().counters.upstream_rq_tx_reset.inc();
                drop(u); // mid-response: closed, never reused
            }
        }
        if let Some(a) = self.admission.take() {
            a.release(true);
        }
        let stats = &self.listener.stats;
        stats.downstream_rq_active.dec();
        stats.counters.downstream_rq_completed.inc();
        if let Some(log) = &self.log {
            // The record is not needed after this line: moved, not copied.
            let mut record = std::mem::take(&mut self.record);
            record.bytes_received = self
                .progress
                .as_ref()
                .map_or(0, |p| p.received.load(Ordering::Relaxed));
            record.duration_ms = self.start.elapsed().as_millis() as u64;
            log.log(record);
        }
    }
}

enum Kind {
    /// Read from the connection in the completion's checkout.
    Upstream(Reader, Option<Timers>),
    Local(Option<Bytes>),
}

/// The response body sent to the client.
pub struct ResponseBody {
    kind: Kind,
    completion: Option<Completion>,
}

impl ResponseBody {
    /// Streams an upstream response body; `timers` keep running until its last byte.
    pub fn upstream(inner: Reader, completion: Completion, timers: Timers) -> Self {
        ResponseBody {
            kind: Kind::Upstream(inner, Some(timers)),
            completion: Some(completion),
        }
    }

    /// A local reply (a refusal, 404, …).
    pub fn local(body: Bytes, mut completion: Completion) -> Self {
        completion.record.bytes_sent = body.len() as u64;
        ResponseBody {
            kind: Kind::Local((!body.is_empty()).then_some(body)),
            completion: Some(completion),
        }
    }

    /// A body with no request behind it (admin replies).
    pub fn plain(body: impl Into<Bytes>) -> Self {
        let body = body.into();
        ResponseBody {
            kind: Kind::Local((!body.is_empty()).then_some(body)),
            completion: None,
        }
    }

    fn end(&mut self) {
        if let Some(mut c) = self.completion.take() {
            c.finish();
        }
    }

    /// Cuts the response: the completion records why, the server gets an error and closes the
    /// client's connection.
    fn cut(
        &mut self,
        why: Cut,
        reason: &'static str,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        if let Some(c) = self.completion.as_mut() {
            c.cut(why);
        }
        // Drop the upstream body now: nothing more is read from that connection.
        self.kind = Kind::Local(None);
        self.completion.take();
        Poll::Ready(Some(Err(Box::new(CutError(reason)))))
    }
}

impl Body for ResponseBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        match &mut this.kind {
            Kind::Local(b) => match b.take() {
                Some(b) => Poll::Ready(Some(Ok(Frame::data(b)))),
                None => {
                    this.end();
                    Poll::Ready(None)
                }
            },
            Kind::Upstream(reader, timers) => match this
                .completion
                .as_mut()
                .and_then(|c| c.upstream.as_mut())
                .map_or(Poll::Ready(None), |u| reader.poll_frame(u.conn(), cx))
            {
                Poll::Ready(Some(Ok(frame))) => {
                    if let (Some(d), Some(c)) = (frame.data_ref(), this.completion.as_mut()) {
                        c.record.bytes_sent += d.len() as u64;
                    }
                    if let Some(t) = timers {
                        t.progress().touch();
                    }
                    Poll::Ready(Some(Ok(frame)))
                }
                Poll::Ready(Some(Err(_))) => {
                    // The client's body may have broken the exchange (an invalid chunk).
                    let client = timers.as_ref().and_then(|t| t.progress().request_error());
                    match client {
                        Some(RequestBodyError::Protocol) => {
                            this.cut(Cut::DownstreamProtocol, "invalid request body")
                        }
                        Some(RequestBodyError::Disconnected) => {
                            Poll::Ready(Some(Err(Box::new(CutError("client left")))))
                        }
                        None => this.cut(Cut::UpstreamReset, "upstream connection broke"),
                    }
                }
                Poll::Ready(None) => {
                    this.end();
                    Poll::Ready(None)
                }
                Poll::Pending => match timers.as_mut().map(|t| t.poll_expired(cx)) {
                    Some(Poll::Ready(Expired::Request)) => {
                        this.cut(Cut::Timeout(Expired::Request), "request timeout")
                    }
                    Some(Poll::Ready(Expired::Idle)) => {
                        this.cut(Cut::Timeout(Expired::Idle), "stream idle timeout")
                    }
                    _ => Poll::Pending,
                },
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            Kind::Local(b) => b.is_none(),
            Kind::Upstream(r, _) => r.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Local(b) => SizeHint::with_exact(b.as_ref().map_or(0, |b| b.len() as u64)),
            Kind::Upstream(r, _) => r.size_hint(),
        }
    }
}

impl Drop for ResponseBody {
    fn drop(&mut self) {
        // A server may stop polling once `is_end_stream` is true: that is a complete response.
        if self.is_end_stream() {
            self.end();
        }
    }
}
