//! Stopping without cutting requests: the drain on SIGTERM/SIGINT.
//!
//! 1. Every listener socket is closed at once: new connections are refused from then on.
//! 2. Every client connection is told to finish: an idle keep-alive connection closes now, a
//!    busy one after its response (which carries `connection: close`), hyper's graceful
//!    shutdown. The admin endpoint and the control socket keep answering.
//! 3. When the last connection has ended, or at the deadline (or at a second signal), what
//!    still runs is cut by meshd: each such request is logged with flag `LR` (Envoy's local
//!    reset: meshd reset the stream itself; never `DC`, which blames the client) and counted
//!    in `http.<prefix>.downstream_rq_tx_reset`.
//!
//! The start (requests and connections in flight) and the end (how many were cut, how long it
//! took) are logged with structured fields.

use std::future::Future;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mesh_core::stats::HttpStats;

use super::Server;

/// What client connections are told to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Serve requests.
    Serving,
    /// Finish the request in flight, then close.
    Draining,
    /// Stop now: the drain deadline passed.
    Cutting,
}

/// How a drain went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DrainReport {
    /// Requests in flight when it started.
    pub in_flight: u64,
    /// Requests still running at the deadline, cut by meshd.
    pub cut: u64,
    /// How long it took.
    pub elapsed: Duration,
}

/// How long cut connections may take to go away before meshd stops waiting for them.
const CUT_GRACE: Duration = Duration::from_secs(5);

fn in_flight(stats: &[Arc<HttpStats>]) -> (u64, u64) {
    stats.iter().fold((0, 0), |(rq, cx), s| {
        (
            rq + s.downstream_rq_active.get(),
            cx + s.downstream_cx_active.get(),
        )
    })
}

impl Server {
    /// Whether the drain has begun (for `/ready`, which Envoy answers 503 while draining).
    pub fn stopping(&self) -> bool {
        *self.phase.borrow() != Phase::Serving
    }

    /// Drains the server (see the module docs): returns when every client connection has
    /// ended, cutting what still runs after `timeout` or once `hurry` resolves (a second
    /// signal). Afterwards no config is applied any more ([`super::ApplyError::Stopping`]).
    pub async fn drain(
        self: &Arc<Self>,
        timeout: Duration,
        hurry: impl Future<Output = ()>,
    ) -> DrainReport {
        let started = Instant::now();
        self.phase.send_replace(Phase::Draining);
        let mut listeners: Vec<_> = {
            let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
            inner.listeners.drain().map(|(_, l)| l).collect()
        };
        let stats: Vec<Arc<HttpStats>> = listeners.iter().map(|l| l.state.stats.clone()).collect();
        // Close every listening socket now, and wait until each is closed.
        for l in &mut listeners {
            l.accept.abort();
            let _ = (&mut l.accept).await;
        }
        drop(listeners);
        let (requests, connections) = in_flight(&stats);
        tracing::info!(
            in_flight = requests,
            connections,
            timeout_ms = u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX),
            "drain started: listeners closed, waiting up to {} ms for {requests} request(s) in flight on {connections} connection(s)",
            timeout.as_millis()
        );
        let finished = tokio::select! {
            _ = self.phase.closed() => None,
            _ = tokio::time::sleep(timeout) => Some("the drain deadline"),
            _ = hurry => {
                tracing::info!("second signal: cutting what still runs");
                Some("a second signal")
            }
        };
        let mut cut = 0;
        if finished.is_some() {
            cut = in_flight(&stats).0;
            self.cutting.store(true, Ordering::SeqCst);
            self.phase.send_replace(Phase::Cutting);
            if tokio::time::timeout(CUT_GRACE, self.phase.closed())
                .await
                .is_err()
            {
                tracing::warn!(
                    connections = self.phase.receiver_count(),
                    "{} connection(s) still open after the drain deadline",
                    self.phase.receiver_count()
                );
            }
        }
        let report = DrainReport {
            in_flight: requests,
            cut,
            elapsed: started.elapsed(),
        };
        tracing::info!(
            in_flight = report.in_flight,
            cut = report.cut,
            elapsed_ms = u64::try_from(report.elapsed.as_millis()).unwrap_or(u64::MAX),
            "drain finished: {} of {} request(s) cut{}",
            report.cut,
            report.in_flight,
            finished.map(|by| format!(" by {by}")).unwrap_or_default()
        );
        report
    }
}
