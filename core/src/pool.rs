//! Upstream clusters: hosts, load balancing, and an HTTP/1.1-style connection pool with exact
//! breakers and a strictly FIFO pending queue.
//!
//! Where a request is admitted or refused, in order ([`Cluster::checkout_with`]):
//! 1. no usable host → [`CheckoutError::NoHealthyUpstream`] (503 `UH`,
//!    `upstream_cx_none_healthy`);
//! 2. requests are already queued → the request joins the back of the queue (step 6): it never
//!    takes a connection or slot ahead of an older request;
//! 3. the balancer ([`crate::balance`], round robin by default) picks a usable host, and the
//!    pool serves that host: an idle connection *of that host* → attach;
//! 4. else a `max_connections` slot → open a connection to that host (the request waits for the
//!    connect holding a connection slot, not a pending slot) → attach;
//! 5. else, when another host has an idle connection, that connection is closed and its slot
//!    opens one to the picked host (as Envoy frees an idle pool when it may not create one): the
//!    limit stays exact and the balancer's pick stands, at the cost of a new connection where
//!    the limit is below the number of hosts in use;
//! 6. else a `max_pending_requests` slot → wait in the queue, counted once in
//!    `upstream_cx_overflow` (a connection the limit did not let it open, as Envoy counts it for
//!    a queued request that wants one); no slot → refuse: [`CheckoutError::Overflow`] with
//!    [`Limit::PendingRequests`] (`upstream_rq_pending_overflow`; not a connection overflow:
//!    Envoy checks the pending limit first too).
//!
//! The queue is strict FIFO with hand-off (`pool/queue.rs`): a connection that goes idle, or a
//! slot freed by a closed connection, goes to the oldest waiter directly. A waiter takes what
//! frees first: an idle connection of whichever host just finished a request (no new connection
//! is opened only to change hosts, unless the waiter avoids that host or wants a new
//! connection: then that connection is closed and its slot is the waiter's), or a slot it opens
//! to the balancer's pick at that moment. So under saturation hosts share in proportion to how
//! fast they answer; below it, the balancer decides alone.
//!
//! Attaching takes a `max_requests` slot ([`Limit::Requests`] refuses otherwise). Each slot is a
//! [`Permit`] dropped exactly when its work ends: a connection's slot is freed by whichever
//! ends first, the pool closing the connection or the [`Connector`]'s [`ConnGuard`] (kept for as
//! long as the socket is open).
//!
//! Host health: a host with a [`HealthFlag`] set (outlier ejection, failed active health check)
//! is not usable: the balancers skip it (no panic mode, see [`crate::balance`]), its idle
//! connections are closed when it becomes unusable ([`Cluster::set_health`]), and its busy ones
//! close when their request ends instead of going idle.
//!
//! The request path takes no lock unless requests are queued: idle connections sit in lock-free
//! per-host queues, limits and the queue's length are atomics.
//!
//! Time: the pool reads the clock in one place, [`Cluster::now`] (tokio's clock, which
//! `tokio::time::pause` controls in tests), and connect timeouts are tokio timers on the same
//! clock; what it decides from the time is a pure function of `now` ([`idle_expired`]).

mod checkout;
mod host;
mod queue;
mod slot;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::Duration;

use arc_swap::ArcSwap;
use tokio::time::Instant;

use crate::balance::{Balancer, Policy};
use crate::breaker::{Breakers, Limit, Permit, Thresholds};
use crate::stats::{ClusterCounters, CodeStats};
pub use checkout::Checkout;
pub use host::{HealthFlag, Host, HostInfo};
use queue::{Queue, Trash};
pub use slot::ConnGuard;
use slot::{ConnSlot, CxSlot, Pooled, SlotSink};

/// Settings of a cluster's connection pool that a reload may change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolSettings {
    /// How long opening a connection may take (Envoy's `connect_timeout`, default 5 s).
    pub connect_timeout: Duration,
    /// How long a connection may stay idle before it is closed (Envoy's default: 1 hour).
    pub idle_timeout: Duration,
    /// Requests per connection before it is closed; 0 = unlimited.
    pub max_requests_per_connection: u32,
    /// How hosts are picked (Envoy's `lb_policy`, default round robin).
    pub lb_policy: Policy,
}

impl Default for PoolSettings {
    fn default() -> Self {
        PoolSettings {
            connect_timeout: Duration::from_secs(5),
            idle_timeout: Duration::from_secs(3600),
            max_requests_per_connection: 0,
            lb_policy: Policy::RoundRobin,
        }
    }
}

/// Whether a connection idle since `since` has passed `timeout` at `now`.
pub fn idle_expired(since: Instant, now: Instant, timeout: Duration) -> bool {
    now.saturating_duration_since(since) >= timeout
}

/// An open upstream connection as the pool sees it.
pub trait Connection: Send + Sync + 'static {
    /// Whether the connection may carry another request.
    fn is_open(&self) -> bool;
}

/// Opens connections. The connector must keep `guard` alive exactly as long as the connection
/// is open (dropping it frees the connection slot and updates the gauges).
pub trait Connector: Send + Sync + 'static {
    /// The connection type.
    type Conn: Connection;
    /// Opens a connection to `addr`.
    fn connect(
        &self,
        addr: SocketAddr,
        guard: ConnGuard,
    ) -> impl Future<Output = Result<Self::Conn, std::io::Error>> + Send;
}

/// Why a request got no connection.
#[derive(Debug, thiserror::Error)]
pub enum CheckoutError {
    /// A limit was reached (503, flag UO).
    #[error("overflow: {} reached", .0.threshold_name())]
    Overflow(Limit),
    /// The cluster has no usable host (503, flag UH).
    #[error("no healthy upstream")]
    NoHealthyUpstream,
    /// Opening the connection failed (503, flag UF).
    #[error("connection failure to {addr}: {source}")]
    ConnectFailed {
        /// The host.
        addr: SocketAddr,
        /// What the socket said.
        source: std::io::Error,
    },
    /// Opening the connection took longer than the connect timeout (503, flag UF).
    #[error("connection timeout to {addr}")]
    ConnectTimeout {
        /// The host.
        addr: SocketAddr,
    },
}

/// How one request wants its connection ([`Cluster::checkout_with`]).
#[derive(Debug, Clone, Copy, Default)]
pub struct CheckoutOptions<'a> {
    /// Hosts to leave out (a retry's hosts already tried), as long as another usable host
    /// remains; otherwise any usable host.
    pub avoid: &'a [SocketAddr],
    /// Never an idle connection: a newly opened one (within the same limits).
    pub fresh: bool,
}

/// What the stats and `/clusters` show of a cluster; shared by every pool type.
#[derive(Debug)]
pub struct ClusterInfo {
    /// The cluster's name (`cds_ingress_…`, `cds_egress_…`).
    pub name: String,
    /// The same name, shared (access-log records hold it without copying).
    pub shared_name: Arc<str>,
    /// The breakers of the default priority (the one routes use).
    pub breakers: Breakers,
    /// The breakers of the high priority (shown in stats; no route uses it yet).
    pub high: Breakers,
    /// Counters (`cluster.<name>.upstream_*`).
    pub counters: ClusterCounters,
    /// `upstream_rq_<code>` / `upstream_rq_<N>xx` of responses sent downstream.
    pub codes: CodeStats,
    /// meshd's log line about this cluster's refusals: at most one per 10 s.
    pub refusal_log: crate::lograte::Every,
}

impl ClusterInfo {
    fn new(name: String, thresholds: Thresholds) -> Self {
        ClusterInfo {
            shared_name: Arc::from(name.as_str()),
            name,
            breakers: Breakers::new(thresholds),
            high: Breakers::new(thresholds),
            counters: ClusterCounters::default(),
            codes: CodeStats::default(),
            refusal_log: crate::lograte::Every::new(std::time::Duration::from_secs(10)),
        }
    }
}

/// A snapshot of a cluster's hosts.
type Hosts<T> = Arc<Vec<Arc<Host<T>>>>;

/// An upstream cluster: its hosts, balancer, breakers, stats and connection pool.
pub struct Cluster<C: Connector> {
    info: Arc<ClusterInfo>,
    hosts: ArcSwap<Vec<Arc<Host<C::Conn>>>>,
    balancer: Balancer,
    queue: Queue<C::Conn>,
    settings: ArcSwap<PoolSettings>,
    connector: C,
    /// `upstream_rq_total` at the last [`Cluster::sweep_idle`].
    swept_at: std::sync::atomic::AtomicU64,
}

impl<C: Connector> Cluster<C> {
    /// A cluster with no hosts yet.
    pub fn new(name: String, thresholds: Thresholds, settings: PoolSettings, connector: C) -> Self {
        Cluster {
            info: Arc::new(ClusterInfo::new(name, thresholds)),
            hosts: ArcSwap::from_pointee(Vec::new()),
            balancer: Balancer::new(),
            queue: Queue::default(),
            settings: ArcSwap::from_pointee(settings),
            connector,
            swept_at: std::sync::atomic::AtomicU64::new(u64::MAX),
        }
    }

    /// Stats and breakers.
    pub fn info(&self) -> &Arc<ClusterInfo> {
        &self.info
    }

    /// The hosts now.
    pub fn hosts(&self) -> Vec<Arc<HostInfo>> {
        self.hosts.load().iter().map(|h| h.info.clone()).collect()
    }

    /// Whether a request could be given a host now: some host is usable (not ejected, not
    /// failing its health check).
    pub fn has_usable_host(&self) -> bool {
        self.hosts.load().iter().any(|h| h.info.usable())
    }

    /// The pool settings now.
    pub fn settings(&self) -> PoolSettings {
        **self.settings.load()
    }

    /// Closes the idle connections that can no longer carry a request: closed or broken by
    /// the upstream ([`Connection::is_open`]), past the idle timeout, or of a host that left
    /// the rotation. A checkout finds such connections itself; this is for a quiet cluster,
    /// whose dead connections would otherwise hold their slots (and sockets) until its next
    /// request. It does nothing when a request was sent since the previous call, so it never
    /// takes an idle connection from under a checkout (call it periodically: a cluster is
    /// swept from the second quiet call on). Returns how many connections it closed.
    pub fn sweep_idle(&self) -> usize {
        let sent = self.info.counters.upstream_rq_total.get();
        if self.swept_at.swap(sent, Ordering::Relaxed) != sent {
            return 0;
        }
        let now = self.now();
        let mut trash = Trash::new();
        let mut live = Vec::new();
        for host in self.hosts.load().iter() {
            for _ in 0..host.idle.len() {
                match self.pop_idle(host, now, &mut trash) {
                    Some(idle) => live.push(idle),
                    None => break,
                }
            }
            for idle in live.drain(..) {
                host.idle.push(idle);
            }
        }
        trash.len()
    }

    /// The time as the pool sees it: tokio's clock (paused and advanced by tests).
    pub fn now(&self) -> Instant {
        Instant::now()
    }

    /// Applies new limits and settings in place; in-flight work keeps its slots. When
    /// `max_connections` is lowered below the connections open now, idle connections above the
    /// new limit are closed at once and busy ones are closed when their request ends, so the
    /// limit holds for reused connections too. A raised limit serves queued requests at once.
    pub fn reconfigure(self: &Arc<Self>, thresholds: Thresholds, settings: PoolSettings) {
        self.info.breakers.set_thresholds(thresholds);
        self.info.high.set_thresholds(thresholds);
        self.settings.store(Arc::new(settings));
        let cx = &self.info.breakers.connections;
        for host in self.hosts.load().iter() {
            while cx.current() > cx.max() {
                let Some(idle) = host.idle.pop() else { break };
                drop(idle);
            }
        }
        if !self.queue.is_empty() {
            self.dispatch(None);
        }
    }

    /// Replaces the host list (after DNS resolution). Hosts that stay keep their stats, health
    /// and idle connections; a new host starts usable; a removed host's idle connections are
    /// closed at once and its busy ones when their request ends.
    pub fn set_hosts(&self, addrs: &[(SocketAddr, String)]) {
        self.set_hosts_with(addrs, &[]);
    }

    /// Like [`Cluster::set_hosts`], but a new host starts with `new_host_flags` set (Envoy
    /// starts a host `/failed_active_hc` while a health checker has not passed it yet), so no
    /// request reaches it before its first check.
    pub fn set_hosts_with(&self, addrs: &[(SocketAddr, String)], new_host_flags: &[HealthFlag]) {
        let old = self.hosts.load_full();
        let new: Vec<_> = addrs
            .iter()
            .map(|(addr, hostname)| {
                old.iter()
                    .find(|h| h.info.addr == *addr)
                    .cloned()
                    .unwrap_or_else(|| {
                        let host = Host::new(*addr, hostname.clone());
                        for f in new_host_flags {
                            host.info.set_flag(*f, true);
                        }
                        Arc::new(host)
                    })
            })
            .collect();
        if new.len() != old.len() || new.iter().zip(old.iter()).any(|(a, b)| !Arc::ptr_eq(a, b)) {
            self.hosts.store(Arc::new(new));
            for gone in old
                .iter()
                .filter(|h| !addrs.iter().any(|(a, _)| *a == h.info.addr))
            {
                gone.removed.store(true, Ordering::Release);
                gone.close_idle();
            }
        }
    }

    /// Sets (`failed = true`) or clears one health flag of the host at `addr`, as outlier
    /// detection and active health checks decide. A host that becomes unusable gets no new
    /// request and its idle connections are closed at once (their slots go to queued requests);
    /// its requests in flight finish, and their connections close instead of going idle.
    /// Returns whether the host is usable now, or `None` if the cluster has no such host.
    pub fn set_health(&self, addr: SocketAddr, flag: HealthFlag, failed: bool) -> Option<bool> {
        let hosts = self.hosts.load_full();
        let host = hosts.iter().find(|h| h.info.addr == addr)?;
        let was = host.info.set_flag(flag, failed);
        let now = host.info.usable();
        if was && !now {
            host.close_idle();
        }
        Some(now)
    }

    /// Gets a connection for one request, to the balancer's pick: see the module docs for the
    /// exact order of checks.
    pub async fn checkout(self: &Arc<Self>) -> Result<Checkout<C>, CheckoutError> {
        self.checkout_with(CheckoutOptions::default()).await
    }

    /// Like [`Cluster::checkout`], but never hands out an idle connection: the request gets a
    /// newly opened one (within the same limits, queueing as a pending request when none may be
    /// opened now). For a request that may be sent again because a reused connection turned out
    /// closed by its peer: other idle connections may be just as stale.
    pub async fn checkout_new(self: &Arc<Self>) -> Result<Checkout<C>, CheckoutError> {
        self.checkout_with(CheckoutOptions {
            fresh: true,
            ..CheckoutOptions::default()
        })
        .await
    }

    /// Gets a connection as `opts` asks (hosts to avoid, a fresh connection): see the module
    /// docs for the exact order of checks.
    pub async fn checkout_with(
        self: &Arc<Self>,
        opts: CheckoutOptions<'_>,
    ) -> Result<Checkout<C>, CheckoutError> {
        let hosts = self.hosts.load_full();
        if self.queue.is_empty() {
            let Some(i) = self.pick(&hosts, opts.avoid) else {
                return Err(self.none_healthy());
            };
            let host = &hosts[i];
            if !opts.fresh {
                let mut closed = Trash::new();
                if let Some(conn) = self.pop_idle(host, self.now(), &mut closed) {
                    return self.attach(host.clone(), conn);
                }
                drop(closed); // their slots free up before the next step looks
            }
            let mut closed = Trash::new();
            let slot = self
                .try_slot()
                .or_else(|| self.slot_of_idle(&hosts, i, opts.fresh, &mut closed));
            drop(closed);
            if let Some(slot) = slot {
                return self.open(host.clone(), slot).await;
            }
        } else if !hosts.iter().any(|h| h.info.usable()) {
            return Err(self.none_healthy());
        }
        // Boxed: the queue's path is rare and its future large; inline, it would make every
        // request's future (moved on the request path) larger.
        Box::pin(self.wait(&hosts, opts)).await
    }

    fn none_healthy(&self) -> CheckoutError {
        self.info.counters.upstream_cx_none_healthy.inc();
        CheckoutError::NoHealthyUpstream
    }

    /// The balancer's pick among `hosts`.
    fn pick(&self, hosts: &[Arc<Host<C::Conn>>], avoid: &[SocketAddr]) -> Option<usize> {
        let policy = self.settings.load().lb_policy;
        let random = match policy {
            Policy::LeastRequest | Policy::Random => fastrand::u64(..),
            Policy::RoundRobin => 0,
        };
        self.balancer.pick(policy, hosts, avoid, random)
    }

    /// A `max_connections` slot, if one is free.
    fn try_slot(self: &Arc<Self>) -> Option<CxSlot> {
        let permit = self.info.breakers.connections.try_acquire_quiet()?;
        Some(self.slot(permit))
    }

    fn slot(self: &Arc<Self>, permit: Permit) -> CxSlot {
        let sink: Weak<dyn SlotSink> = Arc::downgrade(self) as Weak<Self>;
        CxSlot::new(permit, sink)
    }

    /// The slot of an idle connection of another host than `hosts[picked]` (of any host when
    /// `fresh`), closing that connection: the limit is full and the picked host has none.
    fn slot_of_idle(
        &self,
        hosts: &Hosts<C::Conn>,
        picked: usize,
        fresh: bool,
        trash: &mut Trash<C::Conn>,
    ) -> Option<CxSlot> {
        let now = self.now();
        let n = hosts.len();
        let skip = usize::from(!fresh);
        (skip..n).find_map(|k| {
            let host = &hosts[(picked + k) % n];
            self.pop_idle(host, now, trash)?.into_slot()
        })
    }

    /// An idle connection of `host` that is still open and not past the idle timeout; the
    /// others (and all of an unusable host's) go to `trash` to be closed.
    fn pop_idle(
        &self,
        host: &Host<C::Conn>,
        now: Instant,
        trash: &mut Trash<C::Conn>,
    ) -> Option<Pooled<C::Conn>> {
        let idle_timeout = self.settings.load().idle_timeout;
        while let Some(idle) = host.idle.pop() {
            if !idle.conn.as_ref().is_some_and(Connection::is_open) || !host.poolable() {
                trash.push(idle); // closed by the upstream, or the host left the rotation
                continue;
            }
            if idle_expired(idle.since, now, idle_timeout) {
                self.info.counters.upstream_cx_idle_timeout.inc();
                trash.push(idle);
                continue;
            }
            return Some(idle);
        }
        None
    }

    async fn open(
        self: &Arc<Self>,
        host: Arc<Host<C::Conn>>,
        slot: CxSlot,
    ) -> Result<Checkout<C>, CheckoutError> {
        let c = &self.info.counters;
        c.upstream_cx_total.inc();
        c.upstream_cx_http1_total.inc();
        host.info.counters.cx_total.inc();
        let conn_slot = ConnSlot::open(slot, self.info.clone(), host.info.clone());
        let guard = ConnGuard {
            slot: conn_slot.clone(),
        };
        let addr = host.info.addr;
        let timeout = self.settings.load().connect_timeout;
        let result = tokio::time::timeout(timeout, self.connector.connect(addr, guard)).await;
        match result {
            Ok(Ok(conn)) => {
                let conn = Pooled {
                    conn: Some(conn),
                    slot: conn_slot,
                    uses: 0,
                    since: self.now(),
                };
                self.attach(host, conn)
            }
            Ok(Err(source)) => {
                conn_slot.free();
                c.upstream_cx_connect_fail.inc();
                host.info.counters.cx_connect_fail.inc();
                Err(CheckoutError::ConnectFailed { addr, source })
            }
            Err(_) => {
                conn_slot.free();
                c.upstream_cx_connect_fail.inc();
                c.upstream_cx_connect_timeout.inc();
                host.info.counters.cx_connect_fail.inc();
                Err(CheckoutError::ConnectTimeout { addr })
            }
        }
    }

    fn attach(
        self: &Arc<Self>,
        host: Arc<Host<C::Conn>>,
        conn: Pooled<C::Conn>,
    ) -> Result<Checkout<C>, CheckoutError> {
        let Some(request) = self.info.breakers.requests.try_acquire() else {
            self.info.counters.upstream_rq_active_overflow.inc();
            self.offer(host, conn);
            return Err(CheckoutError::Overflow(Limit::Requests));
        };
        self.info.counters.upstream_rq_total.inc();
        host.info.counters.rq_total.inc();
        host.info.rq_active.inc();
        Ok(Checkout {
            reused: conn.uses > 0,
            conn: Some(conn),
            host,
            cluster: self.clone(),
            request: Some(request),
        })
    }
}

/// Connections that are only slots: used where App Mesh accounts a listener's connection pool
/// on a self-redirect cluster (a virtual gateway's listener). A "connection" stays idle after
/// its request, like a kept-alive loopback connection, so `upstream_cx_active` reads as App
/// Mesh's does.
#[derive(Debug, Default)]
pub struct SlotConnector;

/// A connection of [`SlotConnector`]: its guard is the connection.
#[derive(Debug)]
pub struct SlotConn(#[allow(dead_code)] ConnGuard);

impl Connection for SlotConn {
    fn is_open(&self) -> bool {
        true
    }
}

impl Connector for SlotConnector {
    type Conn = SlotConn;
    async fn connect(&self, _addr: SocketAddr, guard: ConnGuard) -> std::io::Result<SlotConn> {
        Ok(SlotConn(guard))
    }
}

#[cfg(test)]
mod tests;
