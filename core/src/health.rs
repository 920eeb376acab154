//! Active health checks: the per-host state machine, the probe schedule with jitter, and the
//! counters (Envoy's `health_checks`, App Mesh's listener `healthCheck`, run by every caller of
//! the node against the hosts of its egress cluster to it).
//!
//! The probe itself (an HTTP `GET path` or a TCP connect, bounded by the timeout) is I/O and
//! lives in meshd; [`HealthCheckConfig::probe`] says what to send where, and
//! [`HealthChecker::record`] takes what came back.
//!
//! # States
//!
//! A host starts [`HealthState::Unchecked`] and is used for traffic until its first check
//! answers. Envoy starts a new host FAILED_ACTIVE_HC and uses it only after a first success,
//! but its 50 % panic threshold then routes to every host anyway while all are unchecked, so a
//! fresh Envoy still sends traffic; meshd has no such accident to rely on, and refusing every
//! request (503 `UH`) until the first probe returns (up to `timeoutMillis`, 2–60 s) would make
//! every start and every reload that adds a host an outage. Instead the first result decides at
//! once, both ways: a success makes the host [`Healthy`](HealthState::Healthy) (as Envoy), a
//! failure makes it [`Unhealthy`](HealthState::Unhealthy) without waiting for
//! `unhealthyThreshold`. Until then passive outlier detection and connect-failure retries cover
//! a dead host, and the first probe is sent within a second of the host appearing.
//!
//! Afterwards:
//! * `healthyThreshold` consecutive successes make an unhealthy host healthy;
//! * `unhealthyThreshold` consecutive failures make a healthy host unhealthy. Every failure
//!   counts the same way: a network failure, a timeout, or an unexpected status. (Envoy fails a
//!   host at once on an unexpected HTTP status and applies the threshold only to network
//!   failures; App Mesh documents `unhealthyThreshold` as "the number of consecutive failed
//!   health checks", which is what meshd does.)
//!
//! An unhealthy host leaves the rotation (`/failed_active_hc`; `/active_hc_timeout` too when its
//! last check timed out). A success while healthy is also the signal for
//! [`crate::outlier::OutlierDetector::health_check_succeeded`] ([`HealthUpdate::uneject_outlier`]).
//!
//! # Schedule
//!
//! The first probe of a host waits a random time in `[0, initial_jitter)` (default
//! `min(interval, 1 s)`); each later probe waits `interval` plus a random
//! `[0, interval × interval_jitter_percent / 100)` (default 10 %) after the previous result, as
//! Envoy's timer does. So a fleet started together drifts apart instead of probing in lockstep.
//! The random values come from the caller.
//!
//! # How meshd drives it
//!
//! One checker per cluster with a health check; one task per host (started for the hosts
//! [`HealthChecker::set_hosts`] adds, stopped for those it removes):
//!
//! ```
//! use std::net::SocketAddr;
//! use std::time::{Duration, Instant};
//! use mesh_core::health::{CheckResult, HealthCheckConfig, HealthChecker, HealthState, ProbeKind};
//!
//! let config = HealthCheckConfig::app_mesh(
//!     ProbeKind::Http { path: "/ping".into() },
//!     Duration::from_secs(5), Duration::from_secs(2), 2, 2);
//! let checker = HealthChecker::new(config);
//! let addr: SocketAddr = "127.0.0.2:8080".parse().unwrap();
//! let changes = checker.set_hosts(&[addr]);
//! let host = changes.added[0].clone(); // meshd: spawn the host's task with this
//! let mut rng = fastrand::Rng::with_seed(1);
//! let mut now = Instant::now();
//! let mut delay = checker.config().first_delay(rng.u64(..));
//! for answer in [Some(200), Some(503), None, Some(200), Some(200)] {
//!     now += delay; // meshd: tokio::time::sleep(delay), and stop if `host.is_removed()`
//!     let probe = checker.config().probe(host.addr(), "green.local");
//!     // meshd: GET probe.path with Host probe.host to probe.target within probe.timeout.
//!     let result = match answer {
//!         Some(status) => probe.classify(status),
//!         None => CheckResult::Timeout,
//!     };
//!     let update = checker.record(&host, result, now);
//!     if update.transition.is_some() { /* log it; the balancer reads host.is_failed() */ }
//!     delay = checker.config().next_delay(rng.u64(..));
//! }
//! assert_eq!(host.state(), HealthState::Healthy);
//! assert_eq!(checker.stats().attempt.get(), 5);
//! assert_eq!(checker.healthy_hosts(), 1);
//! ```

use std::net::SocketAddr;
use std::ops::Range;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;

use crate::stats::{kept_on_reset, Counter, StatType, Visit};

/// What a probe sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProbeKind {
    /// HTTP/1.1 `GET path`; success is a status in the expected range.
    Http {
        /// The request path (starts with `/`).
        path: String,
    },
    /// A TCP connect; success is an established connection (closed at once).
    Tcp,
}

/// A cluster's health check settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthCheckConfig {
    /// What to send.
    pub kind: ProbeKind,
    /// Time between a result and the next probe (`intervalMillis`).
    pub interval: Duration,
    /// How long a probe may take; longer is a [`CheckResult::Timeout`] (`timeoutMillis`).
    pub timeout: Duration,
    /// Consecutive successes that make an unhealthy host healthy (`healthyThreshold`).
    pub healthy_threshold: u32,
    /// Consecutive failures that make a healthy host unhealthy (`unhealthyThreshold`).
    pub unhealthy_threshold: u32,
    /// The first probe waits a random time below this.
    pub initial_jitter: Duration,
    /// Each interval is lengthened by a random share of it below this percentage.
    pub interval_jitter_percent: u32,
    /// HTTP statuses that count as success (App Mesh and Envoy: 200 only).
    pub expected_statuses: Range<u16>,
}

impl HealthCheckConfig {
    /// App Mesh's `healthCheck`, with meshd's jitter defaults (first probe within
    /// `min(interval, 1 s)`, intervals up to 10 % longer) and status 200 as the only success.
    pub fn app_mesh(
        kind: ProbeKind,
        interval: Duration,
        timeout: Duration,
        healthy_threshold: u32,
        unhealthy_threshold: u32,
    ) -> HealthCheckConfig {
        HealthCheckConfig {
            kind,
            interval,
            timeout,
            healthy_threshold,
            unhealthy_threshold,
            initial_jitter: interval.min(Duration::from_secs(1)),
            interval_jitter_percent: 10,
            expected_statuses: 200..201,
        }
    }

    /// Delay before a new host's first probe: `random` modulo `initial_jitter`, in ms.
    pub fn first_delay(&self, random: u64) -> Duration {
        jitter(self.initial_jitter, random)
    }

    /// Delay from a result to the next probe: `interval` plus `random` modulo
    /// `interval × interval_jitter_percent / 100`, in ms.
    pub fn next_delay(&self, random: u64) -> Duration {
        let span = self.interval.saturating_mul(self.interval_jitter_percent) / 100;
        self.interval.saturating_add(jitter(span, random))
    }

    /// What to probe for a host at `addr` whose DNS name is `hostname` (empty for a literal
    /// address): the target is the host's own address, which carries the listener's port (App
    /// Mesh requires `healthCheck.port` to equal it).
    pub fn probe(&self, addr: SocketAddr, hostname: &str) -> Probe {
        let host = if hostname.is_empty() {
            addr.to_string()
        } else {
            format!("{hostname}:{}", addr.port())
        };
        Probe {
            target: addr,
            kind: self.kind.clone(),
            host,
            timeout: self.timeout,
            expected_statuses: self.expected_statuses.clone(),
        }
    }
}

fn jitter(span: Duration, random: u64) -> Duration {
    let ms = u64::try_from(span.as_millis()).unwrap_or(u64::MAX);
    if ms == 0 {
        Duration::ZERO
    } else {
        Duration::from_millis(random % ms)
    }
}

/// One probe to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Probe {
    /// Where to connect.
    pub target: SocketAddr,
    /// What to send.
    pub kind: ProbeKind,
    /// The `Host` header of an HTTP probe (`hostname:port`, or the address).
    pub host: String,
    /// The probe's deadline, connect included.
    pub timeout: Duration,
    /// Statuses that count as success.
    pub expected_statuses: Range<u16>,
}

impl Probe {
    /// The result of an HTTP probe that got `status`.
    pub fn classify(&self, status: u16) -> CheckResult {
        if self.expected_statuses.contains(&status) {
            CheckResult::Success
        } else {
            CheckResult::Failure { status }
        }
    }
}

/// What one probe found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckResult {
    /// Expected status (HTTP) or connection established (TCP).
    Success,
    /// The host answered with an unexpected status.
    Failure {
        /// The status.
        status: u16,
    },
    /// Connect failed, or the connection broke before an answer.
    NetworkFailure,
    /// No answer within the timeout.
    Timeout,
}

/// A host's health as the checker sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HealthState {
    /// Not checked yet: used for traffic.
    Unchecked,
    /// Passing: used for traffic.
    Healthy,
    /// Failing: out of rotation (`/failed_active_hc`).
    Unhealthy,
}

impl HealthState {
    /// `unchecked`, `healthy` or `unhealthy`.
    pub fn as_str(self) -> &'static str {
        match self {
            HealthState::Unchecked => "unchecked",
            HealthState::Healthy => "healthy",
            HealthState::Unhealthy => "unhealthy",
        }
    }
}

/// Health check counters of one cluster (Envoy's names, under `cluster.<name>.health_check.`);
/// the `healthy` gauge is [`HealthChecker::healthy_hosts`].
#[derive(Debug, Default)]
pub struct HealthCheckStats {
    /// `attempt`: probes whose result was recorded.
    pub attempt: Counter,
    /// `success`.
    pub success: Counter,
    /// `failure`: every failed probe (network failures and timeouts included).
    pub failure: Counter,
    /// `network_failure`: probes that failed to connect, broke, or timed out.
    pub network_failure: Counter,
}

impl HealthCheckStats {
    fn counters(&self) -> [(&'static str, &Counter); 4] {
        [
            ("attempt", &self.attempt),
            ("success", &self.success),
            ("failure", &self.failure),
            ("network_failure", &self.network_failure),
        ]
    }

    /// Resets every counter except those that record faults ([`kept_on_reset`]).
    pub fn reset(&self) {
        for (name, c) in self.counters() {
            if !kept_on_reset(name) {
                c.reset();
            }
        }
    }
}

/// One host's health: the state machine, and a flag the balancer reads without a lock.
#[derive(Debug)]
pub struct HostHealth {
    addr: SocketAddr,
    failed: AtomicBool,
    removed: AtomicBool,
    inner: Mutex<HostInner>,
}

#[derive(Debug, Clone, Copy)]
struct HostInner {
    state: HealthState,
    successes: u32,
    failures: u32,
    last: Option<(CheckResult, Instant)>,
}

/// What `/clusters` shows of a host's health.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HostHealthView {
    /// The host.
    pub addr: SocketAddr,
    /// Its state.
    pub state: HealthState,
    /// Consecutive successes now.
    pub successes: u32,
    /// Consecutive failures now.
    pub failures: u32,
    /// The last result and when it came.
    pub last: Option<(CheckResult, Instant)>,
    /// Unhealthy and its last check timed out (`/active_hc_timeout`).
    pub timed_out: bool,
}

impl HostHealth {
    fn new(addr: SocketAddr) -> HostHealth {
        HostHealth {
            addr,
            failed: AtomicBool::new(false),
            removed: AtomicBool::new(false),
            inner: Mutex::new(HostInner {
                state: HealthState::Unchecked,
                successes: 0,
                failures: 0,
                last: None,
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, HostInner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The host's address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Out of rotation (`/failed_active_hc`): one atomic load, for the balancer.
    #[inline]
    pub fn is_failed(&self) -> bool {
        self.failed.load(Ordering::Acquire)
    }

    /// Removed from the cluster: its probe task should end.
    pub fn is_removed(&self) -> bool {
        self.removed.load(Ordering::Acquire)
    }

    /// The state now.
    pub fn state(&self) -> HealthState {
        self.lock().state
    }

    /// What `/clusters` shows.
    pub fn view(&self) -> HostHealthView {
        let i = *self.lock();
        HostHealthView {
            addr: self.addr,
            state: i.state,
            successes: i.successes,
            failures: i.failures,
            last: i.last,
            timed_out: i.state == HealthState::Unhealthy
                && matches!(i.last, Some((CheckResult::Timeout, _))),
        }
    }
}

/// A change of a host's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HealthTransition {
    /// The host.
    pub host: SocketAddr,
    /// The state before.
    pub from: HealthState,
    /// The state now.
    pub to: HealthState,
    /// The result that caused it.
    pub result: CheckResult,
    /// When.
    pub at: Instant,
}

/// What recording one result did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HealthUpdate {
    /// The state change, if any (for the log and tracing).
    pub transition: Option<HealthTransition>,
    /// The check succeeded and the host is healthy: meshd passes this on to
    /// [`crate::outlier::OutlierDetector::health_check_succeeded`].
    pub uneject_outlier: bool,
}

/// Hosts added and removed by [`HealthChecker::set_hosts`].
#[derive(Debug, Default)]
pub struct HostChanges {
    /// New hosts: start a probe task for each.
    pub added: Vec<Arc<HostHealth>>,
    /// Removed hosts (already marked [`HostHealth::is_removed`]): stop their tasks.
    pub removed: Vec<Arc<HostHealth>>,
}

/// The health checker of one cluster: settings, hosts and counters.
#[derive(Debug)]
pub struct HealthChecker {
    config: ArcSwap<HealthCheckConfig>,
    hosts: ArcSwap<Vec<Arc<HostHealth>>>,
    update: Mutex<()>,
    stats: HealthCheckStats,
}

impl HealthChecker {
    /// A checker with no hosts.
    pub fn new(config: HealthCheckConfig) -> HealthChecker {
        HealthChecker {
            config: ArcSwap::from_pointee(config),
            hosts: ArcSwap::from_pointee(Vec::new()),
            update: Mutex::new(()),
            stats: HealthCheckStats::default(),
        }
    }

    /// The settings now (probe tasks read them before each probe, so a reload applies from the
    /// next probe).
    pub fn config(&self) -> Arc<HealthCheckConfig> {
        self.config.load_full()
    }

    /// New settings (config reload): host states and counts carry over.
    pub fn reconfigure(&self, config: HealthCheckConfig) {
        self.config.store(Arc::new(config));
    }

    /// The counters.
    pub fn stats(&self) -> &HealthCheckStats {
        &self.stats
    }

    /// Replaces the host list (after DNS resolution). Hosts that stay keep their state; new
    /// ones start [`HealthState::Unchecked`].
    pub fn set_hosts(&self, addrs: &[SocketAddr]) -> HostChanges {
        let _guard = self.update.lock().unwrap_or_else(|e| e.into_inner());
        let old = self.hosts.load_full();
        let mut changes = HostChanges::default();
        let new: Vec<Arc<HostHealth>> = addrs
            .iter()
            .map(|a| {
                old.iter()
                    .find(|h| h.addr == *a)
                    .cloned()
                    .unwrap_or_else(|| {
                        let h = Arc::new(HostHealth::new(*a));
                        changes.added.push(Arc::clone(&h));
                        h
                    })
            })
            .collect();
        for h in old.iter() {
            if !new.iter().any(|n| Arc::ptr_eq(n, h)) {
                h.removed.store(true, Ordering::Release);
                changes.removed.push(Arc::clone(h));
            }
        }
        self.hosts.store(Arc::new(new));
        changes
    }

    /// The host with this address, if the cluster has it.
    pub fn host(&self, addr: SocketAddr) -> Option<Arc<HostHealth>> {
        self.hosts.load().iter().find(|h| h.addr == addr).cloned()
    }

    /// Every host.
    pub fn hosts(&self) -> Arc<Vec<Arc<HostHealth>>> {
        self.hosts.load_full()
    }

    /// The `healthy` gauge: hosts not failed (unchecked ones included).
    pub fn healthy_hosts(&self) -> u64 {
        self.hosts.load().iter().filter(|h| !h.is_failed()).count() as u64
    }

    /// Records one probe's result for `host` at `now` (see the module docs for the rules) and
    /// counts it.
    pub fn record(&self, host: &HostHealth, result: CheckResult, now: Instant) -> HealthUpdate {
        let config = self.config.load();
        self.stats.attempt.inc();
        let mut i = host.lock();
        let from = i.state;
        i.last = Some((result, now));
        if result == CheckResult::Success {
            self.stats.success.inc();
            i.failures = 0;
            i.successes = i.successes.saturating_add(1);
            if from == HealthState::Unchecked
                || (from == HealthState::Unhealthy && i.successes >= config.healthy_threshold)
            {
                i.state = HealthState::Healthy;
            }
        } else {
            self.stats.failure.inc();
            if matches!(result, CheckResult::NetworkFailure | CheckResult::Timeout) {
                self.stats.network_failure.inc();
            }
            i.successes = 0;
            i.failures = i.failures.saturating_add(1);
            if from == HealthState::Unchecked
                || (from == HealthState::Healthy && i.failures >= config.unhealthy_threshold)
            {
                i.state = HealthState::Unhealthy;
            }
        }
        let to = i.state;
        host.failed
            .store(to == HealthState::Unhealthy, Ordering::Release);
        HealthUpdate {
            transition: (from != to).then_some(HealthTransition {
                host: host.addr,
                from,
                to,
                result,
                at: now,
            }),
            uneject_outlier: result == CheckResult::Success && to == HealthState::Healthy,
        }
    }
}

impl Visit for HealthChecker {
    /// `prefix` ends with `health_check.`: the four counters and the `healthy` gauge.
    fn visit(&self, prefix: &str, emit: &mut dyn FnMut(String, StatType, u64)) {
        for (name, c) in self.stats.counters() {
            emit(format!("{prefix}{name}"), StatType::Counter, c.get());
        }
        emit(
            format!("{prefix}healthy"),
            StatType::Gauge,
            self.healthy_hosts(),
        );
    }
}

#[cfg(test)]
mod tests;
