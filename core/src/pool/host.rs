//! One upstream host: what the stats show of it, whether it may get requests, and its idle
//! connections.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::Arc;

use crossbeam_queue::SegQueue;

use super::slot::Pooled;
use crate::balance::Candidate;
use crate::stats::{Gauge, HostCounters};

/// A reason a host may not get requests, as Envoy's `/clusters` `health_flags` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HealthFlag {
    /// Failing active health checks (`/failed_active_hc`).
    FailedActiveHc,
    /// Ejected by outlier detection (`/failed_outlier_check`).
    FailedOutlierCheck,
}

impl HealthFlag {
    /// Every flag, in the order Envoy prints them.
    pub const ALL: [HealthFlag; 2] = [HealthFlag::FailedActiveHc, HealthFlag::FailedOutlierCheck];

    fn bit(self) -> u8 {
        match self {
            HealthFlag::FailedActiveHc => 1,
            HealthFlag::FailedOutlierCheck => 2,
        }
    }

    /// Envoy's name in `health_flags` (`failed_active_hc`, `failed_outlier_check`).
    pub fn envoy_name(self) -> &'static str {
        match self {
            HealthFlag::FailedActiveHc => "failed_active_hc",
            HealthFlag::FailedOutlierCheck => "failed_outlier_check",
        }
    }
}

/// What the stats and `/clusters` show of one host, and whether it may get requests.
#[derive(Debug)]
pub struct HostInfo {
    /// The address connections go to.
    pub addr: SocketAddr,
    /// The DNS name it was resolved from (empty for a literal address).
    pub hostname: String,
    /// Per-host counters.
    pub counters: HostCounters,
    /// Connections open (or opening) to this host.
    pub cx_active: Gauge,
    /// Requests in flight to this host.
    pub rq_active: Gauge,
    health: AtomicU8,
}

impl HostInfo {
    pub(crate) fn new(addr: SocketAddr, hostname: String) -> Self {
        HostInfo {
            addr,
            hostname,
            counters: HostCounters::default(),
            cx_active: Gauge::default(),
            rq_active: Gauge::default(),
            health: AtomicU8::new(0),
        }
    }

    /// Whether the host may get requests: no [`HealthFlag`] is set. The balancers skip a host
    /// that is not usable, always (there is no panic mode: see [`crate::balance`]).
    #[inline]
    pub fn usable(&self) -> bool {
        self.health.load(Ordering::Acquire) == 0
    }

    /// Whether `flag` is set.
    pub fn failed(&self, flag: HealthFlag) -> bool {
        self.health.load(Ordering::Acquire) & flag.bit() != 0
    }

    /// Envoy's `/clusters` `health_flags`: `healthy` when no flag is set, else each set flag
    /// with a leading `/`, in Envoy's order (`/failed_active_hc/failed_outlier_check`).
    pub fn health_flags(&self) -> &'static str {
        match self.health.load(Ordering::Acquire) {
            0 => "healthy",
            1 => "/failed_active_hc",
            2 => "/failed_outlier_check",
            _ => "/failed_active_hc/failed_outlier_check",
        }
    }

    /// Sets or clears `flag`; returns whether the host was usable before.
    pub(crate) fn set_flag(&self, flag: HealthFlag, failed: bool) -> bool {
        let before = if failed {
            self.health.fetch_or(flag.bit(), Ordering::AcqRel)
        } else {
            self.health.fetch_and(!flag.bit(), Ordering::AcqRel)
        };
        before == 0
    }
}

impl Candidate for HostInfo {
    fn addr(&self) -> SocketAddr {
        self.addr
    }
    fn usable(&self) -> bool {
        HostInfo::usable(self)
    }
    fn active_requests(&self) -> u64 {
        self.rq_active.get()
    }
}

/// One host of a cluster with its idle connections.
pub struct Host<T> {
    /// What the stats show of the host.
    pub info: Arc<HostInfo>,
    pub(super) idle: SegQueue<Pooled<T>>,
    /// Set once the host left the cluster's host list: its connections are not pooled again.
    pub(super) removed: AtomicBool,
}

impl<T> Host<T> {
    pub(super) fn new(addr: SocketAddr, hostname: String) -> Self {
        Host {
            info: Arc::new(HostInfo::new(addr, hostname)),
            idle: SegQueue::new(),
            removed: AtomicBool::new(false),
        }
    }

    /// Whether a connection to this host may go back to its idle queue.
    pub(super) fn poolable(&self) -> bool {
        self.info.usable() && !self.removed.load(Ordering::Acquire)
    }

    /// Closes every idle connection now (each frees its connection slot at once).
    pub(super) fn close_idle(&self) -> usize {
        let mut n = 0;
        while let Some(conn) = self.idle.pop() {
            drop(conn);
            n += 1;
        }
        n
    }
}

impl<T> Candidate for Host<T> {
    fn addr(&self) -> SocketAddr {
        self.info.addr
    }
    fn usable(&self) -> bool {
        self.info.usable()
    }
    fn active_requests(&self) -> u64 {
        self.info.rq_active.get()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn health_flags_read_as_envoy_prints_them() {
        let h = HostInfo::new("127.0.0.1:1".parse().expect("addr"), String::new());
        assert_eq!((h.usable(), h.health_flags()), (true, "healthy"));
        assert!(h.set_flag(HealthFlag::FailedOutlierCheck, true));
        assert_eq!(
            (h.usable(), h.health_flags()),
            (false, "/failed_outlier_check")
        );
        assert!(!h.set_flag(HealthFlag::FailedActiveHc, true));
        assert_eq!(h.health_flags(), "/failed_active_hc/failed_outlier_check");
        assert!(h.failed(HealthFlag::FailedActiveHc));
        assert!(!h.set_flag(HealthFlag::FailedOutlierCheck, false));
        assert_eq!(h.health_flags(), "/failed_active_hc");
        assert!(!h.set_flag(HealthFlag::FailedActiveHc, false));
        assert_eq!((h.usable(), h.health_flags()), (true, "healthy"));
    }
}
