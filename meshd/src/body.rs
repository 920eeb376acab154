//! Bodies that stream through meshd without being buffered, and the guard that ends a request.
//!
//! [`RequestBody`] counts the bytes a client sends upstream. [`ResponseBody`] carries the
//! upstream response (or a local reply) to the client and owns the request's [`Completion`]:
//! when the last byte is sent the upstream connection goes back to the pool; if the client goes
//! away first it is closed. Either way the access-log line is written exactly once.

use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use mesh_core::accesslog::{Record, ResponseFlag, Writer};
use mesh_core::pool::{Checkout, SlotConnector};
use mesh_core::stats::HttpStats;

use crate::upstream::TcpCheckout;

/// The client's request body on its way upstream, counting bytes.
pub struct RequestBody {
    inner: Incoming,
    received: Arc<AtomicU64>,
}

impl RequestBody {
    /// Wraps `inner`, adding every data byte to `received`.
    pub fn new(inner: Incoming, received: Arc<AtomicU64>) -> Self {
        RequestBody { inner, received }
    }
}

impl Body for RequestBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if let Poll::Ready(Some(Ok(frame))) = &polled {
            if let Some(d) = frame.data_ref() {
                self.received.fetch_add(d.len() as u64, Ordering::Relaxed);
            }
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Everything that must happen once when a request ends.
pub struct Completion {
    /// The listener's stats (`downstream_rq_active` is decremented here).
    pub stats: Arc<HttpStats>,
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
    /// Request bytes sent upstream so far.
    pub received: Option<Arc<AtomicU64>>,
    finished: bool,
}

impl Completion {
    /// A completion for a request that just started.
    pub fn new(stats: Arc<HttpStats>, log: Option<Writer>, record: Record) -> Self {
        stats.downstream_rq_active.inc();
        Completion {
            stats,
            log,
            record,
            start: Instant::now(),
            upstream: None,
            admission: None,
            received: None,
            finished: false,
        }
    }

    /// The response was sent completely: the connection may be reused.
    fn finish(&mut self) {
        self.finished = true;
        if let Some(u) = self.upstream.take() {
            u.release(true);
        }
    }
}

impl Drop for Completion {
    fn drop(&mut self) {
        if !self.finished {
            // The client left (or the upstream broke) before the response ended: the
            // upstream connection is mid-response and cannot be reused.
            self.record
                .flags
                .insert(ResponseFlag::DownstreamConnectionTermination);
            drop(self.upstream.take());
        }
        if let Some(a) = self.admission.take() {
            a.release(true);
        }
        self.stats.downstream_rq_active.dec();
        self.stats.counters.downstream_rq_completed.inc();
        if let Some(log) = &self.log {
            let mut record = self.record.clone();
            record.bytes_received = self
                .received
                .as_ref()
                .map_or(0, |r| r.load(Ordering::Relaxed));
            record.duration_ms = self.start.elapsed().as_millis() as u64;
            log.log(record);
        }
    }
}

enum Kind {
    Upstream(Incoming),
    Local(Option<Bytes>),
}

/// The response body sent to the client.
pub struct ResponseBody {
    kind: Kind,
    completion: Option<Completion>,
}

impl ResponseBody {
    /// Streams an upstream response body.
    pub fn upstream(inner: Incoming, completion: Completion) -> Self {
        ResponseBody {
            kind: Kind::Upstream(inner),
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
}

impl Body for ResponseBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let this = &mut *self;
        match &mut this.kind {
            Kind::Local(b) => match b.take() {
                Some(b) => Poll::Ready(Some(Ok(Frame::data(b)))),
                None => {
                    this.end();
                    Poll::Ready(None)
                }
            },
            Kind::Upstream(inner) => match Pin::new(inner).poll_frame(cx) {
                Poll::Ready(Some(Ok(frame))) => {
                    if let (Some(d), Some(c)) = (frame.data_ref(), this.completion.as_mut()) {
                        c.record.bytes_sent += d.len() as u64;
                    }
                    Poll::Ready(Some(Ok(frame)))
                }
                Poll::Ready(Some(Err(e))) => {
                    if let Some(c) = this.completion.as_mut() {
                        c.record
                            .flags
                            .insert(ResponseFlag::UpstreamConnectionTermination);
                    }
                    Poll::Ready(Some(Err(e)))
                }
                Poll::Ready(None) => {
                    this.end();
                    Poll::Ready(None)
                }
                Poll::Pending => Poll::Pending,
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            Kind::Local(b) => b.is_none(),
            Kind::Upstream(i) => i.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Local(b) => SizeHint::with_exact(b.as_ref().map_or(0, |b| b.len() as u64)),
            Kind::Upstream(i) => i.size_hint(),
        }
    }
}

impl Drop for ResponseBody {
    fn drop(&mut self) {
        // hyper may stop polling once `is_end_stream` is true: that is a complete response.
        if self.is_end_stream() {
            self.end();
        }
    }
}
