//! Outlier detection: passive ejection of hosts that fail, per cluster (Envoy's
//! `outlier_detection`, App Mesh's listener `outlierDetection`, applied by every caller of the
//! node on its egress cluster to it).
//!
//! # Counting (per host)
//!
//! Every attempt's [`Outcome`] is recorded against the host it went to:
//! * an upstream response: 5xx counts toward `consecutive_5xx`, 502/503/504 also toward
//!   `consecutive_gateway_failure`; any other status resets both;
//! * a local-origin failure (connect failure or timeout, reset before the response, per-try or
//!   request timeout) counts toward `consecutive_local_origin_failure`, apart from the 5xx
//!   counters (Envoy's `split_external_local_origin_errors: true`); any upstream response resets
//!   it, since it proves the host reachable. With the split off, a local-origin failure counts
//!   as Envoy does: a 503 (connect failure, reset) or a 504 (timeout) response;
//! * never counted, neither failure nor success: a local overflow (503 `UO`: the request never
//!   reached the host) and a response carrying `x-envoy-overloaded` (the host's own proxy shed
//!   load: the host is alive and busy, and ejecting it would move its load onto the others).
//!
//! A counter fires when it *reaches* its threshold (`==`, as Envoy), and the detection resets
//! it. App Mesh's single knob `maxServerErrors` sets both the 5xx and the local-origin
//! thresholds, so a host that refuses connections is ejected after as many failures as one that
//! answers 5xx ([`OutlierConfig::app_mesh`]).
//!
//! # Ejection
//!
//! A detection ejects the host (`enforced`) unless the host is already ejected (ignored), the
//! max-ejection-percent rule refuses (`ejections_overflow`, event not enforced), or enforcement
//! of that type is off (event not enforced). An ejected host stays out for
//! `min(base × backoff, max_ejection_time)`, where `backoff` grows by one per ejection and
//! shrinks by one at each interval the host spends in rotation (Envoy's decay); it returns at the
//! first [`tick`](OutlierDetector::tick) after that time, with its counters reset.
//!
//! **Max ejection percent, done better than Envoy.** Envoy ≥ 1.31 ejects a host only while
//! `(ejected + 1) / hosts ≤ max_ejection_percent`, so with the default 10 % a cluster of fewer
//! than 10 hosts never ejects anything, and a two-host cluster at 50 % ejects one. Here a
//! detection ejects when that holds **or** when no host is ejected and at least one other host
//! would stay in rotation ([`ejection_allowed`]). So one bad host among two or more is always
//! taken out, the percentage caps everything beyond the first, and a single-host cluster is
//! ejected only if `maxEjectionPercent` is 100 (ejecting the only host turns its errors into
//! `503 UH` without bringing it back any sooner; App Mesh's "at least one host regardless"
//! did exactly that).
//!
//! **Active health checks.** A successful health check brings back a host ejected for
//! local-origin failures at once (the check proves it reachable again: Envoy's
//! `successful_active_health_check_uneject_host`). A host ejected for 5xx responses stays out
//! for its ejection time: a health endpoint answering 200 does not prove that real requests stop
//! failing. [`HealthCheckUneject`] chooses.
//!
//! Success rate and failure percentage ejection are not implemented (App Mesh has no setting for
//! them); the success rate of each host's last interval is kept for `/clusters`.
//!
//! # Cost
//!
//! Recording is a few relaxed atomic operations on the host's own [`HostOutlier`]: no lock and
//! no lookup (the caller keeps the host's `Arc`). The detector's mutex is taken only when a
//! counter reaches its threshold, at each interval [`tick`](OutlierDetector::tick), on a health
//! check that may uneject, and when hosts change.
//!
//! # How meshd drives it
//!
//! ```
//! use std::net::SocketAddr;
//! use std::time::{Duration, Instant};
//! use mesh_core::outlier::{OutlierConfig, OutlierDetector};
//! use mesh_core::retry::Outcome;
//!
//! let good: SocketAddr = "127.0.0.2:5000".parse().unwrap();
//! let bad: SocketAddr = "127.0.0.3:5000".parse().unwrap();
//! let config = OutlierConfig::app_mesh(3, Duration::from_secs(1), Duration::from_secs(2), 100);
//! let detector = OutlierDetector::new(config);
//! let start = Instant::now();
//! detector.set_hosts(&[good, bad]); // after every DNS resolution
//! // The request path: one outcome per attempt, against the host's handle.
//! let host = detector.host(bad).unwrap();
//! let mut events = Vec::new();
//! for _ in 0..3 {
//!     let outcome = Outcome::Response { status: 502, overloaded: false };
//!     events.extend(detector.record(&host, &outcome, start));
//! }
//! assert!(host.is_ejected()); // the balancer skips it: `/failed_outlier_check`
//! assert_eq!(events.len(), 1); // meshd writes it to the event log and tracing
//! // A task per cluster: every `interval`, tick; unejections come back as events.
//! let mut now = start;
//! while host.is_ejected() {
//!     now += config.interval;
//!     events.extend(detector.tick(now));
//! }
//! assert_eq!(now - start, Duration::from_secs(2));
//! assert_eq!(detector.stats().ejections_enforced_total.get(), 1);
//! let line = events[0].to_json("cds_egress_m_bad_http_5000", std::time::SystemTime::UNIX_EPOCH);
//! assert!(line.starts_with(r#"{"type":"CONSECUTIVE_5XX","timestamp":"1970-01-01T00:00:00.000Z""#));
//! ```

mod config;
mod event;
mod stats;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;

pub use config::{ejection_allowed, EjectionType, HealthCheckUneject, OutlierConfig};
pub use event::{NotEnforced, OutlierAction, OutlierEvent, UnejectCause};
pub use stats::OutlierStats;

use crate::retry::Outcome;

/// One host's outlier state. The request path records through it without a lock; meshd keeps
/// its `Arc` next to the host (from [`OutlierDetector::host`]).
#[derive(Debug)]
pub struct HostOutlier {
    addr: SocketAddr,
    counters: [AtomicU32; 3],
    ejected: AtomicBool,
    removed: AtomicBool,
    window_success: AtomicU64,
    window_total: AtomicU64,
    ejection: Mutex<Ejection>,
}

/// What changes only under the detector's lock.
#[derive(Debug, Default)]
struct Ejection {
    num_ejections: u32,
    backoff: u32,
    last_ejection: Option<Instant>,
    last_unejection: Option<Instant>,
    kind: Option<EjectionType>,
    success_rate: Option<f64>,
}

/// What `/clusters` shows of a host's outlier state.
#[derive(Debug, Clone, PartialEq)]
pub struct HostOutlierView {
    /// The host.
    pub addr: SocketAddr,
    /// Ejected now (`/failed_outlier_check`).
    pub ejected: bool,
    /// Consecutive upstream 5xx now.
    pub consecutive_5xx: u32,
    /// Consecutive 502/503/504 now.
    pub consecutive_gateway_failure: u32,
    /// Consecutive local-origin failures now.
    pub consecutive_local_origin_failure: u32,
    /// Times ejected since the host was added (Envoy's `num_ejections`).
    pub num_ejections: u32,
    /// The current ejection backoff (the next ejection lasts `base × (backoff + 1)`, capped).
    pub backoff: u32,
    /// Why the host is (or was last) ejected.
    pub ejection_type: Option<EjectionType>,
    /// Time left in the ejection (zero when it ends at the next sweep); `None` when in rotation.
    pub time_left: Option<Duration>,
    /// Percentage of non-5xx outcomes in the last complete interval; `None` without traffic.
    pub success_rate: Option<f64>,
}

impl HostOutlier {
    fn new(addr: SocketAddr) -> HostOutlier {
        HostOutlier {
            addr,
            counters: Default::default(),
            ejected: AtomicBool::new(false),
            removed: AtomicBool::new(false),
            window_success: AtomicU64::new(0),
            window_total: AtomicU64::new(0),
            ejection: Mutex::new(Ejection::default()),
        }
    }

    /// The host's address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Whether the host is ejected now: one atomic load, for the balancer.
    #[inline]
    pub fn is_ejected(&self) -> bool {
        self.ejected.load(Ordering::Acquire)
    }

    fn counter(&self, kind: EjectionType) -> &AtomicU32 {
        &self.counters[kind.index()]
    }

    fn reset_counters(&self) {
        for c in &self.counters {
            c.store(0, Ordering::Relaxed);
        }
    }

    fn ejection(&self) -> MutexGuard<'_, Ejection> {
        self.ejection.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// How one outcome counts.
enum Class {
    Ignored,
    Response(u16),
    LocalFailure,
}

fn classify(outcome: &Outcome, split: bool) -> Class {
    match *outcome {
        Outcome::Response {
            overloaded: true, ..
        }
        | Outcome::LocalOverflow => Class::Ignored,
        Outcome::Response { status, .. } => Class::Response(status),
        _ if split => Class::LocalFailure,
        Outcome::PerTryTimeout | Outcome::GlobalTimeout => Class::Response(504),
        _ => Class::Response(503),
    }
}

#[derive(Debug, Default)]
struct Sweep {
    ejected: usize,
}

/// The outlier detector of one cluster: its hosts, settings, stats and ejection decisions.
#[derive(Debug)]
pub struct OutlierDetector {
    config: ArcSwap<OutlierConfig>,
    hosts: ArcSwap<Vec<Arc<HostOutlier>>>,
    sweep: Mutex<Sweep>,
    stats: OutlierStats,
}

impl OutlierDetector {
    /// A detector with no hosts.
    pub fn new(config: OutlierConfig) -> OutlierDetector {
        OutlierDetector {
            config: ArcSwap::from_pointee(config),
            hosts: ArcSwap::from_pointee(Vec::new()),
            sweep: Mutex::new(Sweep::default()),
            stats: OutlierStats::default(),
        }
    }

    /// The settings now.
    pub fn config(&self) -> OutlierConfig {
        **self.config.load()
    }

    /// New settings (config reload): counters, ejections and backoffs carry over; a changed
    /// base or max applies from the next sweep.
    pub fn reconfigure(&self, config: OutlierConfig) {
        self.config.store(Arc::new(config));
    }

    /// The cluster's outlier stats.
    pub fn stats(&self) -> &OutlierStats {
        &self.stats
    }

    fn lock(&self) -> MutexGuard<'_, Sweep> {
        self.sweep.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Replaces the host list (after DNS resolution). Hosts that stay keep their state; new
    /// hosts start in rotation with no history; a removed host that was ejected no longer
    /// counts in `ejections_active`, and outcomes still recorded against it are ignored.
    pub fn set_hosts(&self, addrs: &[SocketAddr]) {
        let mut sweep = self.lock();
        let old = self.hosts.load_full();
        let new: Vec<Arc<HostOutlier>> = addrs
            .iter()
            .map(|a| {
                old.iter()
                    .find(|h| h.addr == *a)
                    .cloned()
                    .unwrap_or_else(|| Arc::new(HostOutlier::new(*a)))
            })
            .collect();
        for h in old.iter() {
            if !new.iter().any(|n| Arc::ptr_eq(n, h)) {
                h.removed.store(true, Ordering::Release);
                if h.ejected.swap(false, Ordering::AcqRel) {
                    sweep.ejected -= 1;
                }
            }
        }
        self.stats.ejections_active.set(sweep.ejected as u64);
        self.hosts.store(Arc::new(new));
    }

    /// The host with this address, if the cluster has it (lock-free).
    pub fn host(&self, addr: SocketAddr) -> Option<Arc<HostOutlier>> {
        self.hosts.load().iter().find(|h| h.addr == addr).cloned()
    }

    /// Every host, in the order of the last [`set_hosts`](OutlierDetector::set_hosts).
    pub fn hosts(&self) -> Arc<Vec<Arc<HostOutlier>>> {
        self.hosts.load_full()
    }

    /// Counts one attempt's outcome against `host` (see the module docs for what counts).
    /// Lock-free unless a counter reaches its threshold; then the detection is decided and its
    /// event returned (at most one per detection type; usually none).
    pub fn record(&self, host: &HostOutlier, outcome: &Outcome, now: Instant) -> Vec<OutlierEvent> {
        let config = self.config.load();
        let mut fired: [Option<EjectionType>; 2] = [None, None];
        match classify(outcome, config.split_external_local_origin_errors) {
            Class::Ignored => return Vec::new(),
            Class::LocalFailure => {
                host.window_total.fetch_add(1, Ordering::Relaxed);
                fired[0] = bump(host, &config, EjectionType::ConsecutiveLocalOriginFailure);
            }
            Class::Response(status) => {
                host.window_total.fetch_add(1, Ordering::Relaxed);
                host.counter(EjectionType::ConsecutiveLocalOriginFailure)
                    .store(0, Ordering::Relaxed);
                if (500..600).contains(&status) {
                    let gateway = EjectionType::ConsecutiveGatewayFailure;
                    if matches!(status, 502..=504) {
                        fired[0] = bump(host, &config, gateway);
                    } else {
                        host.counter(gateway).store(0, Ordering::Relaxed);
                    }
                    fired[1] = bump(host, &config, EjectionType::Consecutive5xx);
                } else {
                    host.window_success.fetch_add(1, Ordering::Relaxed);
                    host.counter(EjectionType::Consecutive5xx)
                        .store(0, Ordering::Relaxed);
                    host.counter(EjectionType::ConsecutiveGatewayFailure)
                        .store(0, Ordering::Relaxed);
                }
            }
        }
        fired
            .into_iter()
            .flatten()
            .filter_map(|kind| self.detected(host, kind, &config, now))
            .collect()
    }

    /// A counter reached its threshold: decide under the lock.
    fn detected(
        &self,
        host: &HostOutlier,
        kind: EjectionType,
        config: &OutlierConfig,
        now: Instant,
    ) -> Option<OutlierEvent> {
        let mut sweep = self.lock();
        if host.removed.load(Ordering::Acquire) || host.is_ejected() {
            return None;
        }
        self.stats.detected(kind).inc();
        host.counter(kind).store(0, Ordering::Relaxed);
        let total = self.hosts.load().len();
        let mut e = host.ejection();
        let not_enforced = if !ejection_allowed(sweep.ejected, total, config.max_ejection_percent) {
            self.stats.ejections_overflow.inc();
            Some(NotEnforced::MaxEjectionPercent)
        } else if !config.enforcing(kind) {
            Some(NotEnforced::EnforcementDisabled)
        } else {
            None
        };
        let since_last_action = e.last_unejection.map(|t| now.saturating_duration_since(t));
        if let Some(why) = not_enforced {
            return Some(OutlierEvent::not_enforced(
                host.addr,
                kind,
                e.num_ejections,
                why,
                since_last_action,
                now,
            ));
        }
        let grow = config.base_ejection_time.saturating_mul(e.backoff)
            < config
                .max_ejection_time
                .saturating_add(config.base_ejection_time);
        if grow {
            e.backoff += 1;
        }
        e.num_ejections = e.num_ejections.saturating_add(1);
        e.last_ejection = Some(now);
        e.kind = Some(kind);
        host.ejected.store(true, Ordering::Release);
        sweep.ejected += 1;
        self.stats.ejections_active.set(sweep.ejected as u64);
        self.stats.ejections_enforced_total.inc();
        self.stats.enforced(kind).inc();
        Some(OutlierEvent::ejected(
            host.addr,
            kind,
            e.num_ejections,
            config.ejection_time(e.backoff),
            since_last_action,
            now,
        ))
    }

    /// The interval sweep, called every `interval`: returns each ejected host whose ejection
    /// time has passed to rotation (counters reset), decays the backoff of every host in
    /// rotation by one, and closes each host's success-rate window.
    pub fn tick(&self, now: Instant) -> Vec<OutlierEvent> {
        let config = self.config();
        let mut sweep = self.lock();
        let mut events = Vec::new();
        for host in self.hosts.load().iter() {
            let mut e = host.ejection();
            let total = host.window_total.swap(0, Ordering::Relaxed);
            let success = host.window_success.swap(0, Ordering::Relaxed);
            e.success_rate = (total > 0).then(|| success as f64 * 100.0 / total as f64);
            if !host.is_ejected() {
                e.backoff = e.backoff.saturating_sub(1);
                continue;
            }
            let out_for = e
                .last_ejection
                .map_or(Duration::MAX, |t| now.saturating_duration_since(t));
            if config.ejection_time(e.backoff) <= out_for {
                events.push(self.uneject(&mut sweep, host, &mut e, UnejectCause::Time, now));
            }
        }
        self.stats.ejections_active.set(sweep.ejected as u64);
        events
    }

    /// A successful active health check of `host` (while the checker counts it healthy): with
    /// [`HealthCheckUneject`] allowing it, an ejected host returns at once.
    pub fn health_check_succeeded(&self, host: &HostOutlier, now: Instant) -> Option<OutlierEvent> {
        if !host.is_ejected() {
            return None;
        }
        let policy = self.config.load().uneject_on_health_check;
        let mut sweep = self.lock();
        let mut e = host.ejection();
        let allowed = match policy {
            HealthCheckUneject::Never => false,
            HealthCheckUneject::Any => true,
            HealthCheckUneject::LocalOrigin => {
                e.kind == Some(EjectionType::ConsecutiveLocalOriginFailure)
            }
        };
        if !allowed || !host.is_ejected() || host.removed.load(Ordering::Acquire) {
            return None;
        }
        let event = self.uneject(&mut sweep, host, &mut e, UnejectCause::HealthCheck, now);
        self.stats.ejections_active.set(sweep.ejected as u64);
        Some(event)
    }

    fn uneject(
        &self,
        sweep: &mut Sweep,
        host: &HostOutlier,
        e: &mut Ejection,
        cause: UnejectCause,
        now: Instant,
    ) -> OutlierEvent {
        host.ejected.store(false, Ordering::Release);
        host.reset_counters();
        sweep.ejected -= 1;
        let out_for = e
            .last_ejection
            .map_or(Duration::ZERO, |t| now.saturating_duration_since(t));
        e.last_unejection = Some(now);
        OutlierEvent::unejected(
            host.addr,
            e.kind.unwrap_or(EjectionType::Consecutive5xx),
            e.num_ejections,
            out_for,
            cause,
            now,
        )
    }

    /// What `/clusters` shows of `host` at `now`.
    pub fn view(&self, host: &HostOutlier, now: Instant) -> HostOutlierView {
        let config = self.config();
        let e = host.ejection();
        let ejected = host.is_ejected();
        let time_left = ejected.then(|| {
            let out_for = e
                .last_ejection
                .map_or(Duration::ZERO, |t| now.saturating_duration_since(t));
            config.ejection_time(e.backoff).saturating_sub(out_for)
        });
        let count = |k| host.counter(k).load(Ordering::Relaxed);
        HostOutlierView {
            addr: host.addr,
            ejected,
            consecutive_5xx: count(EjectionType::Consecutive5xx),
            consecutive_gateway_failure: count(EjectionType::ConsecutiveGatewayFailure),
            consecutive_local_origin_failure: count(EjectionType::ConsecutiveLocalOriginFailure),
            num_ejections: e.num_ejections,
            backoff: e.backoff,
            ejection_type: e.kind,
            time_left,
            success_rate: e.success_rate,
        }
    }
}

/// Adds one to the host's `kind` counter; `Some(kind)` when it reaches the threshold.
fn bump(host: &HostOutlier, config: &OutlierConfig, kind: EjectionType) -> Option<EjectionType> {
    let threshold = config.threshold(kind);
    let n = host
        .counter(kind)
        .fetch_add(1, Ordering::Relaxed)
        .wrapping_add(1);
    (threshold > 0 && n == threshold).then_some(kind)
}

#[cfg(test)]
mod tests;
