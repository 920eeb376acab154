//! A request's two timers, as Envoy keeps them:
//! - the **per-request timeout** (App Mesh `timeout.http.perRequest`, Envoy's route `timeout`):
//!   from the request's start until the response is complete, headers *and* body;
//! - the **stream idle timeout** (App Mesh `timeout.http.idle`, Envoy's `stream_idle_timeout`,
//!   a route's `idle_timeout`): how long no byte may move either way, the request body coming in
//!   or the response body going out, before or after the response headers.
//!
//! [`Progress`] is what the request's bodies report (bytes, last activity, how the request body
//! ended); [`Timers`] turns it into one sleep that is re-armed only when it fires, so activity
//! costs one atomic store per chunk, not a timer reset.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::time::{Instant, Sleep};

/// How a request body failed, as the client caused it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestBodyError {
    /// The body did not follow HTTP/1.1 framing (e.g. an invalid chunk): 400, flag `DPE`.
    Protocol,
    /// The client went away before its body ended: flag `DC`.
    Disconnected,
}

/// What a request's bodies report while they move.
#[derive(Debug)]
pub struct Progress {
    start: Instant,
    /// Milliseconds from `start` to the last byte that moved either way.
    last_ms: AtomicU64,
    /// Request body bytes received from the client.
    pub received: AtomicU64,
    request_done: AtomicBool,
    request_error: AtomicU8,
}

impl Progress {
    /// Progress of a request that starts now; `request_done` when it has no body to wait for.
    pub fn new(request_done: bool) -> Self {
        Progress {
            start: Instant::now(),
            last_ms: AtomicU64::new(0),
            received: AtomicU64::new(0),
            request_done: AtomicBool::new(request_done),
            request_error: AtomicU8::new(0),
        }
    }

    /// When the request started.
    pub fn start(&self) -> Instant {
        self.start
    }

    /// A byte moved: the stream is not idle.
    pub fn touch(&self) {
        let ms = u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_ms.store(ms, Ordering::Relaxed);
    }

    /// When a byte last moved (the request's start if none has).
    fn last_activity(&self) -> Instant {
        self.start + Duration::from_millis(self.last_ms.load(Ordering::Relaxed))
    }

    /// The client's request body ended (all of it received).
    pub fn request_done(&self) {
        self.request_done.store(true, Ordering::Relaxed);
    }

    /// Whether the whole request was received (Envoy: "remote decode complete").
    pub fn request_complete(&self) -> bool {
        self.request_done.load(Ordering::Relaxed)
    }

    /// The request body failed on the client's side.
    pub fn request_failed(&self, why: RequestBodyError) {
        let v = match why {
            RequestBodyError::Protocol => 1,
            RequestBodyError::Disconnected => 2,
        };
        self.request_error.store(v, Ordering::Relaxed);
    }

    /// How the request body failed, if it did.
    pub fn request_error(&self) -> Option<RequestBodyError> {
        match self.request_error.load(Ordering::Relaxed) {
            1 => Some(RequestBodyError::Protocol),
            2 => Some(RequestBodyError::Disconnected),
            _ => None,
        }
    }
}

/// Which timer fired.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expired {
    /// The per-request timeout (flag `UT`).
    Request,
    /// The stream idle timeout (flag `SI`).
    Idle,
}

/// A request's per-request and stream idle timers (zero = none).
pub struct Timers {
    progress: Arc<Progress>,
    deadline: Option<Instant>,
    idle: Option<Duration>,
    sleep: Option<Pin<Box<Sleep>>>,
}

impl Timers {
    /// Timers for the request of `progress`: the deadline counts from the request's start.
    pub fn new(progress: Arc<Progress>, per_request: Duration, idle: Duration) -> Self {
        let mut t = Timers {
            progress,
            deadline: None,
            idle: None,
            sleep: None,
        };
        t.set(per_request, idle);
        t
    }

    /// Replaces both timeouts (a route's own); the deadline still counts from the start.
    pub fn set(&mut self, per_request: Duration, idle: Duration) {
        self.deadline = (!per_request.is_zero()).then(|| self.progress.start + per_request);
        self.idle = (!idle.is_zero()).then_some(idle);
    }

    /// Replaces both timeouts, the deadline counting from now: after a fault delay, as Envoy's
    /// route timeout starts only when the router sees the request. The delay counts as
    /// activity (meshd held the request, the stream was not idle).
    pub fn restart(&mut self, per_request: Duration, idle: Duration) {
        self.progress.touch();
        self.deadline = (!per_request.is_zero()).then(|| Instant::now() + per_request);
        self.idle = (!idle.is_zero()).then_some(idle);
    }

    /// The request's progress.
    pub fn progress(&self) -> &Arc<Progress> {
        &self.progress
    }

    /// Ready with the timer that fired; registers a wakeup for the next one otherwise.
    pub fn poll_expired(&mut self, cx: &mut Context<'_>) -> Poll<Expired> {
        loop {
            let now = Instant::now();
            if self.deadline.is_some_and(|d| now >= d) {
                return Poll::Ready(Expired::Request);
            }
            let idle_at = self.idle.map(|i| self.progress.last_activity() + i);
            if idle_at.is_some_and(|t| now >= t) {
                return Poll::Ready(Expired::Idle);
            }
            let next = match (self.deadline, idle_at) {
                (Some(d), Some(i)) => d.min(i),
                (Some(t), None) | (None, Some(t)) => t,
                (None, None) => return Poll::Pending,
            };
            let sleep = self
                .sleep
                .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(next)));
            if sleep.deadline() != next {
                sleep.as_mut().reset(next);
            }
            if sleep.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            // The sleep ended: activity may have moved the idle deadline; check again.
        }
    }

    /// Waits until one of the timers fires (never, when both are zero).
    pub async fn expired(&mut self) -> Expired {
        std::future::poll_fn(|cx| self.poll_expired(cx)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn idle_moves_with_activity_and_the_deadline_does_not() {
        let p = Arc::new(Progress::new(true));
        let mut t = Timers::new(p.clone(), Duration::from_secs(10), Duration::from_secs(3));
        tokio::time::sleep(Duration::from_secs(2)).await;
        p.touch();
        let start = Instant::now();
        assert_eq!(t.expired().await, Expired::Idle);
        assert_eq!(start.elapsed(), Duration::from_secs(3));
        // Keep it busy: the per-request deadline fires at 10 s whatever moves.
        p.touch();
        let mut t = Timers::new(p.clone(), Duration::from_secs(10), Duration::from_secs(3));
        let toucher = {
            let p = p.clone();
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    p.touch();
                }
            })
        };
        assert_eq!(t.expired().await, Expired::Request);
        assert_eq!(p.start().elapsed(), Duration::from_secs(10));
        toucher.abort();
    }

    #[tokio::test(start_paused = true)]
    async fn zero_disables() {
        let p = Arc::new(Progress::new(true));
        let mut t = Timers::new(p, Duration::ZERO, Duration::ZERO);
        let r = tokio::time::timeout(Duration::from_secs(3600), t.expired()).await;
        assert!(r.is_err(), "no timer fires");
    }
}
