//! Circuit breakers with exact limits.
//!
//! Envoy checks a limit and increments the counter in two steps, so a burst can exceed
//! `max_connections` (its "leeway"). Here every admission is one compare-and-swap on a shared
//! atomic counter that succeeds only while `current < max`, so no interleaving of acquires and
//! releases ever takes a counter above its limit. A successful admission returns a [`Permit`]
//! whose `Drop` gives the slot back: no path can leak a slot.
//!
//! Limits live in atomics so a config reload changes them in place: permits taken under the old
//! limit are released to the same counter, and a lowered limit refuses new work until enough
//! in-flight work has finished.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// The limits of one priority of one cluster, as Envoy's `circuit_breakers.thresholds` entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Thresholds {
    /// `max_connections`: connections (connecting, busy or idle) to all hosts of the cluster.
    pub max_connections: u64,
    /// `max_pending_requests`: requests queued waiting for a connection.
    pub max_pending_requests: u64,
    /// `max_requests`: requests attached to a connection, across all hosts.
    pub max_requests: u64,
    /// `max_retries`: retries in flight, cluster-wide.
    pub max_retries: u64,
}

impl Thresholds {
    /// Envoy's defaults: 1024 connections, 1024 pending, 1024 requests, 3 retries.
    pub const ENVOY_DEFAULT: Thresholds = Thresholds {
        max_connections: 1024,
        max_pending_requests: 1024,
        max_requests: 1024,
        max_retries: 3,
    };

    /// App Mesh's defaults where a listener sets no connection pool: every limit 2147483647.
    pub const APP_MESH_DEFAULT: Thresholds = Thresholds {
        max_connections: 2_147_483_647,
        max_pending_requests: 2_147_483_647,
        max_requests: 2_147_483_647,
        max_retries: 2_147_483_647,
    };
}

/// Which limit of a cluster refused or admitted work.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Limit {
    /// `max_connections`
    Connections,
    /// `max_pending_requests`
    PendingRequests,
    /// `max_requests`
    Requests,
    /// `max_retries`
    Retries,
}

impl Limit {
    /// Every limit, in Envoy's order.
    pub const ALL: [Limit; 4] = [
        Limit::Connections,
        Limit::PendingRequests,
        Limit::Requests,
        Limit::Retries,
    ];

    /// The Envoy threshold name (`max_connections`, …), as used in `/clusters` and in the
    /// `x-mesh-overflow` header.
    pub fn threshold_name(self) -> &'static str {
        match self {
            Limit::Connections => "max_connections",
            Limit::PendingRequests => "max_pending_requests",
            Limit::Requests => "max_requests",
            Limit::Retries => "max_retries",
        }
    }

    /// The Envoy `*_open` gauge name (`cx_open`, `rq_pending_open`, `rq_open`, `rq_retry_open`).
    pub fn open_gauge(self) -> &'static str {
        match self {
            Limit::Connections => "cx_open",
            Limit::PendingRequests => "rq_pending_open",
            Limit::Requests => "rq_open",
            Limit::Retries => "rq_retry_open",
        }
    }

    /// The Envoy `remaining_*` gauge name.
    pub fn remaining_gauge(self) -> &'static str {
        match self {
            Limit::Connections => "remaining_cx",
            Limit::PendingRequests => "remaining_pending",
            Limit::Requests => "remaining_rq",
            Limit::Retries => "remaining_retries",
        }
    }

    /// The name of our refusal counter for this limit (`…overflow_<limit>` under
    /// `circuit_breakers.<priority>.`): Envoy has no per-limit refusal counter.
    pub fn refused_counter(self) -> &'static str {
        match self {
            Limit::Connections => "cx_refused",
            Limit::PendingRequests => "rq_pending_refused",
            Limit::Requests => "rq_refused",
            Limit::Retries => "rq_retry_refused",
        }
    }
}

/// One exact limit: a counter that never exceeds its maximum, plus what the stats show of it.
#[derive(Debug)]
pub struct Resource {
    current: AtomicU64,
    max: AtomicU64,
    peak: AtomicU64,
    refused: AtomicU64,
}

impl Resource {
    /// A resource with nothing in use and the given limit.
    pub fn new(max: u64) -> Self {
        Resource {
            current: AtomicU64::new(0),
            max: AtomicU64::new(max),
            peak: AtomicU64::new(0),
            refused: AtomicU64::new(0),
        }
    }

    /// Takes one slot if `current < max`, atomically. Counts a refusal otherwise.
    /// Guarantees: `current` never exceeds `max` through this call.
    #[inline]
    pub fn try_acquire(self: &Arc<Self>) -> Option<Permit> {
        if self.try_inc() {
            Some(Permit {
                resource: Arc::clone(self),
            })
        } else {
            self.refused.fetch_add(1, Ordering::Relaxed);
            None
        }
    }

    /// Takes a slot without counting a refusal when none is free (used for internal re-checks
    /// that are not a request being refused).
    #[inline]
    pub fn try_acquire_quiet(self: &Arc<Self>) -> Option<Permit> {
        self.try_inc().then(|| Permit {
            resource: Arc::clone(self),
        })
    }

    #[inline]
    fn try_inc(&self) -> bool {
        let max = self.max.load(Ordering::Acquire);
        let mut cur = self.current.load(Ordering::Acquire);
        loop {
            if cur >= max {
                return false;
            }
            match self.current.compare_exchange_weak(
                cur,
                cur + 1,
                Ordering::SeqCst,
                Ordering::Acquire,
            ) {
                Ok(_) => {
                    if cur + 1 > self.peak.load(Ordering::Relaxed) {
                        self.peak.fetch_max(cur + 1, Ordering::Relaxed);
                    }
                    return true;
                }
                Err(actual) => cur = actual,
            }
        }
    }

    /// Slots in use now.
    pub fn current(&self) -> u64 {
        self.current.load(Ordering::SeqCst)
    }

    /// The configured limit.
    pub fn max(&self) -> u64 {
        self.max.load(Ordering::Acquire)
    }

    /// Changes the limit in place; permits already taken stay valid and are released normally.
    pub fn set_max(&self, max: u64) {
        self.max.store(max, Ordering::Release);
    }

    /// Envoy's `*_open` gauge: 1 when the limit is reached, else 0.
    pub fn open(&self) -> u64 {
        u64::from(self.current() >= self.max())
    }

    /// Envoy's `remaining_*` gauge: slots left before the limit (0 when at or over it).
    pub fn remaining(&self) -> u64 {
        self.max().saturating_sub(self.current())
    }

    /// The highest number of slots ever in use at once (since start or the last reset).
    pub fn peak(&self) -> u64 {
        self.peak.load(Ordering::Relaxed)
    }

    /// How many acquisitions were refused because the limit was reached.
    pub fn refused(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }

    /// Resets the peak to the current level and, with `refused`, the refusal count.
    pub fn reset_counters(&self, refused: bool) {
        if refused {
            self.refused.store(0, Ordering::Relaxed);
        }
        self.peak.store(self.current(), Ordering::Relaxed);
    }
}

/// One slot of a [`Resource`], held for exactly as long as the work it admits. Dropping it
/// gives the slot back.
#[derive(Debug)]
#[must_use = "dropping a permit releases the slot at once"]
pub struct Permit {
    resource: Arc<Resource>,
}

impl Permit {
    /// The resource this permit belongs to.
    pub fn resource(&self) -> &Arc<Resource> {
        &self.resource
    }
}

impl Drop for Permit {
    #[inline]
    fn drop(&mut self) {
        self.resource.current.fetch_sub(1, Ordering::SeqCst);
    }
}

/// The four limits of one (cluster, priority).
#[derive(Debug)]
pub struct Breakers {
    /// `max_connections`
    pub connections: Arc<Resource>,
    /// `max_pending_requests`
    pub pending: Arc<Resource>,
    /// `max_requests`
    pub requests: Arc<Resource>,
    /// `max_retries`
    pub retries: Arc<Resource>,
}

impl Breakers {
    /// Breakers with the given limits and nothing in use.
    pub fn new(t: Thresholds) -> Self {
        Breakers {
            connections: Arc::new(Resource::new(t.max_connections)),
            pending: Arc::new(Resource::new(t.max_pending_requests)),
            requests: Arc::new(Resource::new(t.max_requests)),
            retries: Arc::new(Resource::new(t.max_retries)),
        }
    }

    /// The resource behind one limit.
    pub fn get(&self, limit: Limit) -> &Arc<Resource> {
        match limit {
            Limit::Connections => &self.connections,
            Limit::PendingRequests => &self.pending,
            Limit::Requests => &self.requests,
            Limit::Retries => &self.retries,
        }
    }

    /// The limits as configured now.
    pub fn thresholds(&self) -> Thresholds {
        Thresholds {
            max_connections: self.connections.max(),
            max_pending_requests: self.pending.max(),
            max_requests: self.requests.max(),
            max_retries: self.retries.max(),
        }
    }

    /// Applies new limits in place (config reload).
    pub fn set_thresholds(&self, t: Thresholds) {
        self.connections.set_max(t.max_connections);
        self.pending.set_max(t.max_pending_requests);
        self.requests.set_max(t.max_requests);
        self.retries.set_max(t.max_retries);
    }

    /// Resets the peaks of every limit, for `POST /reset_counters`. The refusal counters
    /// (`*_refused`) record refusals and are kept ([`crate::stats::kept_on_reset`]).
    pub fn reset_counters(&self) {
        for l in Limit::ALL {
            let refused = !crate::stats::kept_on_reset(l.refused_counter());
            self.get(l).reset_counters(refused);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn admits_up_to_the_limit_and_no_further() {
        let r = Arc::new(Resource::new(2));
        let a = r.try_acquire().expect("first");
        let _b = r.try_acquire().expect("second");
        assert!(r.try_acquire().is_none());
        assert_eq!(r.refused(), 1);
        assert_eq!(r.open(), 1);
        assert_eq!(r.remaining(), 0);
        drop(a);
        assert_eq!(r.current(), 1);
        assert_eq!(r.open(), 0);
        assert!(r.try_acquire().is_some());
        assert_eq!(r.peak(), 2);
    }

    #[test]
    fn lowering_the_limit_keeps_permits_and_refuses_new_work() {
        let r = Arc::new(Resource::new(3));
        let held: Vec<_> = (0..3).filter_map(|_| r.try_acquire()).collect();
        r.set_max(1);
        assert!(r.try_acquire().is_none());
        assert_eq!(r.remaining(), 0);
        drop(held);
        assert_eq!(r.current(), 0);
        let _one = r.try_acquire().expect("one slot under the new limit");
        assert!(r.try_acquire().is_none());
    }

    #[test]
    fn quiet_acquire_counts_no_refusal() {
        let r = Arc::new(Resource::new(0));
        assert!(r.try_acquire_quiet().is_none());
        assert_eq!(r.refused(), 0);
    }

    #[test]
    fn threads_never_exceed_the_limit() {
        let r = Arc::new(Resource::new(3));
        let max_seen = Arc::new(AtomicU64::new(0));
        let handles: Vec<_> = (0..4)
            .map(|_| {
                let r = r.clone();
                let max_seen = max_seen.clone();
                std::thread::spawn(move || {
                    for _ in 0..20_000 {
                        if let Some(p) = r.try_acquire() {
                            max_seen.fetch_max(r.current(), Ordering::SeqCst);
                            drop(p);
                        }
                    }
                })
            })
            .collect();
        for h in handles {
            h.join().expect("thread");
        }
        assert!(max_seen.load(Ordering::SeqCst) <= 3);
        assert_eq!(r.current(), 0, "every slot came back");
    }

    #[derive(Debug, Clone)]
    enum Op {
        Acquire,
        Release(usize),
        SetMax(u64),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => Just(Op::Acquire),
            3 => (0usize..64).prop_map(Op::Release),
            1 => (0u64..8).prop_map(Op::SetMax),
        ]
    }

    proptest! {
        /// No interleaving of acquires, releases and limit changes lets an acquire succeed at
        /// or above the limit, and every slot comes back.
        #[test]
        fn never_exceeds_and_every_slot_returns(max in 0u64..8, ops in proptest::collection::vec(op(), 0..200)) {
            let r = Arc::new(Resource::new(max));
            let mut held = Vec::new();
            for op in ops {
                match op {
                    Op::Acquire => {
                        let before = r.current();
                        match r.try_acquire() {
                            Some(p) => {
                                prop_assert!(before < r.max());
                                held.push(p);
                            }
                            None => prop_assert!(before >= r.max()),
                        }
                    }
                    Op::Release(i) => {
                        if !held.is_empty() {
                            let i = i % held.len();
                            drop(held.swap_remove(i));
                        }
                    }
                    Op::SetMax(m) => r.set_max(m),
                }
                prop_assert_eq!(r.current(), held.len() as u64);
            }
            drop(held);
            prop_assert_eq!(r.current(), 0);
        }
    }
}
