//! One load connection: its loop (closed-loop max QPS, or paced by fortio's schedule) and its own
//! statistics, merged by the caller when the run ends. Nothing here sends a message or allocates
//! per request; the live progress counters are plain relaxed atomic stores to this connection's
//! own cache line.
//!
//! The one exception to "its own": the HDR latency histograms, the large tables (tens of KiB each
//! at 3 significant digits), are kept per lane and shared by the lane's connections under an
//! uncontended lock (all of a lane's tasks run on one thread). One pair per connection made the
//! working set of 64 connections several MiB, and every record a cache miss.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::watch;

use crate::client::{CallResult, Client, Template, SOCKET_ERROR};
use crate::config::Config;
use crate::latency::Latency;
use crate::pace::Pacer;
use crate::plan::{Plan, Stop};
use crate::stats::Histogram;

/// Live counters of one connection, read by the progress line.
#[derive(Debug, Default)]
#[repr(align(64))]
pub struct Slot {
    /// Calls completed.
    pub calls: AtomicU64,
    /// Calls that were not 2xx/418.
    pub errors: AtomicU64,
}

/// State shared by all connections of a run.
pub struct Shared {
    /// Validated configuration.
    pub cfg: Arc<Config>,
    /// The work split.
    pub plan: Plan,
    /// The prepared request.
    pub template: Template,
    /// Set to end the run early (Ctrl-C, `-abort-on`).
    pub stop: AtomicBool,
    /// Wakes sleeping connections when `stop` is set.
    pub stop_tx: watch::Sender<bool>,
    /// Set when `-abort-on` matched.
    pub aborted: AtomicBool,
    /// Set once the first connect failure has been logged.
    pub connect_error_logged: AtomicBool,
    /// One progress slot per connection.
    pub slots: Vec<Slot>,
}

impl Shared {
    /// Ends the run early.
    pub fn request_stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.stop_tx.send(true);
    }
}

/// What fortio counts as OK: 2xx and 418.
pub fn code_is_ok(code: i32) -> bool {
    (200..300).contains(&code) || code == 418
}

/// Statistics of one connection (or, after [`ConnStats::merge`], of the whole run).
#[derive(Debug, Clone)]
pub struct ConnStats {
    /// All calls, fortio buckets (latency from the scheduled time in `-qps` mode).
    pub durations: Histogram,
    /// Calls that were not OK.
    pub errors: Histogram,
    /// All calls, latency from the actual send.
    pub raw: Histogram,
    /// Response total sizes (headers + body).
    pub sizes: Histogram,
    /// Response header sizes.
    pub header_sizes: Histogram,
    /// Connect times.
    pub connect: Histogram,
    /// Sleep before each paced call (negative = late), `-qps` mode only.
    pub sleep: Histogram,
    /// Status codes (-1 = socket error).
    pub codes: BTreeMap<i32, u64>,
    /// Sockets opened.
    pub sockets: u64,
    /// Slots skipped by `-nocatchup`.
    pub skipped: u64,
    /// Calls sent more than 1 ms after their scheduled time.
    pub late: u64,
}

impl ConnStats {
    /// Empty statistics with the run's resolution and offset.
    pub fn new(cfg: &Config) -> ConnStats {
        let off = cfg.offset.as_secs_f64();
        ConnStats {
            durations: Histogram::new(off, cfg.resolution),
            errors: Histogram::new(off, cfg.resolution),
            raw: Histogram::new(off, cfg.resolution),
            sizes: Histogram::new(0.0, 100.0),
            header_sizes: Histogram::new(0.0, 5.0),
            connect: Histogram::new(off, cfg.resolution),
            sleep: Histogram::new(-0.001, 0.001),
            codes: BTreeMap::new(),
            sockets: 0,
            skipped: 0,
            late: 0,
        }
    }

    /// Adds another connection's statistics.
    pub fn merge(&mut self, o: &ConnStats) {
        self.durations.merge(&o.durations);
        self.errors.merge(&o.errors);
        self.raw.merge(&o.raw);
        self.sizes.merge(&o.sizes);
        self.header_sizes.merge(&o.header_sizes);
        self.connect.merge(&o.connect);
        self.sleep.merge(&o.sleep);
        for (k, v) in &o.codes {
            *self.codes.entry(*k).or_default() += v;
        }
        self.sockets += o.sockets;
        self.skipped += o.skipped;
        self.late += o.late;
    }
}

/// One connection's task state.
pub struct Worker {
    /// Index (fortio thread id).
    pub id: usize,
    shared: Arc<Shared>,
    client: Client,
    stop_rx: watch::Receiver<bool>,
    rng: u64,
    paced: bool,
    /// Waits for this connection's `-qps` slots.
    pacer: Pacer,
    /// Yield between calls in max-QPS mode (set for lanes holding several connections).
    pub batch: bool,
    /// This connection's statistics.
    pub stats: ConnStats,
    /// The HDR histograms of this connection's lane.
    lane_latency: Arc<Mutex<Latency>>,
}

impl Worker {
    /// A worker for connection `id` to `addr`, recording latencies into its lane's `latency`.
    pub fn new(
        id: usize,
        shared: Arc<Shared>,
        addr: crate::client::Target,
        latency: Arc<Mutex<Latency>>,
    ) -> Worker {
        let client = Client::new(addr, &shared.cfg, id as u64);
        let stats = ConnStats::new(&shared.cfg);
        let stop_rx = shared.stop_tx.subscribe();
        Worker {
            id,
            client,
            stop_rx,
            rng: 0x2545_F491_4F6C_DD1D ^ ((id as u64 + 1) * 0x9E37_79B9),
            stats,
            paced: shared.plan.per_thread_qps.is_some(),
            batch: false,
            pacer: Pacer::new(),
            shared,
            lane_latency: latency,
        }
    }

    async fn call(&mut self, sent: Instant) -> CallResult {
        let connect = &mut self.stats.connect;
        let r = self.client.call(sent, &self.shared.template, connect).await;
        self.stats.sockets = self.client.sockets;
        if let Some(why) = self.client.connect_error.take() {
            // The first connect failure of the run is worth one line: a -1 count alone does
            // not say "refused" from "certificate not trusted".
            if !self
                .shared
                .connect_error_logged
                .swap(true, Ordering::Relaxed)
            {
                crate::run::log(
                    &self.shared.cfg,
                    crate::config::LogLevel::Warning,
                    &format!("Unable to connect to {} : {why}", self.shared.cfg.url),
                );
            }
        }
        r
    }

    /// fortio's warm-up call (not counted, but its socket is). Returns the status (-1 on a
    /// transport error) and the response size.
    pub async fn warmup(&mut self) -> (i32, u64) {
        match self.call(Instant::now()).await {
            Ok(r) => (i32::from(r.status), r.header_size + r.body_size),
            Err(()) => (SOCKET_ERROR, 0),
        }
    }

    fn record(&mut self, intended: Instant, sent: Instant, result: CallResult, done: u64) {
        let end = Instant::now();
        let raw = end.saturating_duration_since(sent);
        let corrected = if self.paced {
            if sent.saturating_duration_since(intended) > Duration::from_millis(1) {
                self.stats.late += 1;
            }
            end.saturating_duration_since(intended.min(sent))
        } else {
            raw
        };
        let (c, r) = (corrected.as_secs_f64(), raw.as_secs_f64());
        self.stats.durations.record(c);
        // Never contended (one thread per lane); a panicked holder cannot leave it half-updated
        // in a way that matters for counts, so a poisoned lock is used as is.
        let mut latency = self
            .lane_latency
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if self.paced {
            self.stats.raw.record(r);
            latency.record(corrected, raw);
        } else {
            // Raw equals corrected without a schedule: the run copies it once at the end.
            latency.record_corrected(corrected);
        }
        drop(latency);
        let code = match result {
            Ok(reply) => {
                self.stats
                    .sizes
                    .record((reply.header_size + reply.body_size) as f64);
                self.stats.header_sizes.record(reply.header_size as f64);
                i32::from(reply.status)
            }
            Err(()) => {
                self.stats.sizes.record(0.0);
                self.stats.header_sizes.record(0.0);
                SOCKET_ERROR
            }
        };
        let slot = &self.shared.slots[self.id];
        if !code_is_ok(code) {
            self.stats.errors.record(c);
            slot.errors.fetch_add(1, Ordering::Relaxed);
        }
        *self.stats.codes.entry(code).or_default() += 1;
        slot.calls.store(done, Ordering::Relaxed);
        let abort_on = self.shared.cfg.abort_on;
        if abort_on != 0 && code == abort_on {
            self.shared.aborted.store(true, Ordering::Relaxed);
            self.shared.request_stop();
        }
    }

    fn stopped(&self) -> bool {
        self.shared.stop.load(Ordering::Relaxed)
    }

    /// Runs this connection's share of the load, from `start`. Boxed in and out: the worker (its
    /// histograms) is kilobytes, and a task's output is copied each time the task is polled.
    pub async fn run(mut self: Box<Self>, start: Instant) -> Box<Worker> {
        match self.shared.plan.per_thread_qps {
            None => self.run_max(start).await,
            Some(q) => self.run_paced(start, q).await,
        }
        self
    }

    async fn run_max(&mut self, start: Instant) {
        let plan_calls = self.shared.plan.calls[self.id];
        let stop = self.shared.plan.stop;
        let end = match stop {
            Stop::Duration(d) => Some(start + d),
            _ => None,
        };
        let mut i = 0u64;
        loop {
            if self.stopped() {
                break;
            }
            if self.batch && i > 0 {
                // Let the lane's other connections read their ready responses before this one
                // sends again, as wrk's event loop does: requests then reach the server in
                // bursts, and both sides wake up less often. Measured against a loopback server
                // on the same cores: +4-6 % requests/s with 4 to 32 connections per lane, -8 %
                // with 2 (hence the threshold in `lanes`). With the server on cores of its own
                // the extra turn costs about 3 % at 4-16 per lane: the common case of a load
                // test next to its target wins.
                tokio::task::yield_now().await;
            }
            let sent = Instant::now();
            if end.is_some_and(|e| sent > e) {
                break;
            }
            let r = self.call(sent).await;
            i += 1;
            self.record(sent, sent, r, i);
            if stop == Stop::Calls && i >= plan_calls {
                break;
            }
        }
    }

    fn jitter(&mut self, sleep: f64) -> f64 {
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        let u = (self.rng >> 11) as f64 / (1u64 << 53) as f64; // [0,1)
        sleep + sleep.abs() * 0.1 * (2.0 * u - 1.0)
    }

    async fn run_paced(&mut self, start: Instant, per_thread_qps: f64) {
        let plan = &self.shared.plan;
        let num_calls = plan.calls[self.id];
        let stop = plan.stop;
        let bounded = stop != Stop::Interrupted;
        let (uniform, jitter, nocatchup) = (
            self.shared.cfg.uniform,
            self.shared.cfg.jitter,
            self.shared.cfg.nocatchup,
        );
        let start = if uniform {
            let delay = (self.id as f64 / plan.threads as f64) / per_thread_qps;
            start + Duration::from_secs_f64(delay)
        } else {
            start
        };
        let end = match stop {
            Stop::Duration(d) => Some(start + d),
            _ => None,
        };
        let mut intended = start;
        let mut i = 0u64;
        let mut done = 0u64;
        if !self
            .pacer
            .sleep_until(intended, &self.shared.stop, &mut self.stop_rx)
            .await
        {
            return;
        }
        loop {
            if self.stopped() {
                break;
            }
            let sent = Instant::now();
            if end.is_some_and(|e| sent > e) && i >= 2 && i + 1 != num_calls {
                break;
            }
            let r = self.call(sent).await;
            i += 1;
            done += 1;
            self.record(intended, sent, r, done);
            if bounded && i >= num_calls {
                break;
            }
            // Next slot (fortio: sleep = target - elapsed; negative means catch up).
            let mut target = self.shared.plan.target_elapsed(i, num_calls);
            let mut sleep = target - start.elapsed().as_secs_f64();
            if nocatchup {
                while sleep < 0.0 && (!bounded || i < num_calls) {
                    self.stats.skipped += 1;
                    i += 1;
                    target = self.shared.plan.target_elapsed(i, num_calls);
                    sleep = target - start.elapsed().as_secs_f64();
                }
                if bounded && i >= num_calls {
                    break;
                }
            }
            if jitter {
                let jittered = self.jitter(sleep);
                target += jittered - sleep;
                sleep = jittered;
            }
            self.stats.sleep.record((sleep * 1e9).round() / 1e9);
            intended = start + Duration::from_secs_f64(target.max(0.0));
            if sleep > 0.0
                && !self
                    .pacer
                    .sleep_until(intended, &self.shared.stop, &mut self.stop_rx)
                    .await
            {
                break;
            }
        }
    }
}
