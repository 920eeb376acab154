//! Upstream clusters: hosts, round robin, and an HTTP/1.1-style connection pool with exact
//! breakers.
//!
//! Where a request is admitted or refused, in order ([`Cluster::checkout`]):
//! 1. an idle connection (preferring the host round robin picked) → attach;
//! 2. else a `max_connections` slot → open a connection (the request waits for the connect
//!    holding a connection slot, not a pending slot) → attach;
//! 3. else a `max_pending_requests` slot → wait in FIFO order until a connection goes idle or a
//!    connection slot frees up;
//! 4. else refuse: [`CheckoutError::Overflow`] with [`Limit::PendingRequests`].
//!
//! Attaching takes a `max_requests` slot ([`Limit::Requests`] refuses otherwise). Each slot is a
//! [`Permit`] dropped exactly when its work ends: a connection's slot lives in the connection's
//! [`ConnGuard`], which the [`Connector`] keeps for as long as the socket is open.
//!
//! The request path takes no lock: idle connections sit in lock-free per-host queues, limits are
//! atomics, and the pending queue is a [`Notify`] touched only while requests are queued.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{fence, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use crossbeam_queue::SegQueue;
use tokio::sync::Notify;
use tokio::time::Instant;

use crate::breaker::{Breakers, Limit, Permit, Thresholds};
use crate::stats::{ClusterCounters, CodeStats, Gauge, HostCounters};

/// Settings of a cluster's connection pool that a reload may change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolSettings {
    /// How long opening a connection may take (Envoy's `connect_timeout`, default 5 s).
    pub connect_timeout: Duration,
    /// How long a connection may stay idle before it is closed (Envoy's default: 1 hour).
    pub idle_timeout: Duration,
    /// Requests per connection before it is closed; 0 = unlimited.
    pub max_requests_per_connection: u32,
}

impl Default for PoolSettings {
    fn default() -> Self {
        PoolSettings {
            connect_timeout: Duration::from_secs(5),
            idle_timeout: Duration::from_secs(3600),
            max_requests_per_connection: 0,
        }
    }
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
    /// The cluster has no hosts (503, flag UH).
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
    pending_wakeup: Notify,
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
            pending_wakeup: Notify::new(),
        }
    }

    /// Wakes the first queued request, if any is queued. Callers publish what they freed
    /// before calling; the fence pairs with the one in `checkout` so a wakeup is never lost.
    fn wake_pending(&self) {
        fence(Ordering::SeqCst);
        if self.breakers.pending.current() > 0 {
            self.pending_wakeup.notify_one();
        }
    }
}

/// What the stats and `/clusters` show of one host.
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
}

/// Holds one connection slot for exactly the life of one connection, and keeps the gauges
/// right when it ends.
#[derive(Debug)]
pub struct ConnGuard {
    permit: Option<Permit>,
    cluster: Arc<ClusterInfo>,
    host: Arc<HostInfo>,
}

impl Drop for ConnGuard {
    fn drop(&mut self) {
        self.host.cx_active.dec();
        self.cluster.counters.upstream_cx_destroy.inc();
        // Free the slot first, then wake a queued request that may use it.
        drop(self.permit.take());
        self.cluster.wake_pending();
    }
}

struct Idle<T> {
    conn: T,
    uses: u32,
    since: Instant,
}

/// An idle connection taken from a host's queue.
type Found<T> = (Arc<Host<T>>, Idle<T>);

/// One host of a cluster with its idle connections.
pub struct Host<T> {
    /// What the stats show of the host.
    pub info: Arc<HostInfo>,
    idle: SegQueue<Idle<T>>,
}

/// An upstream cluster: its hosts, breakers, stats and connection pool.
pub struct Cluster<C: Connector> {
    info: Arc<ClusterInfo>,
    hosts: ArcSwap<Vec<Arc<Host<C::Conn>>>>,
    rr: AtomicUsize,
    settings: ArcSwap<PoolSettings>,
    connector: C,
}

/// A connection checked out for one request. Call [`Checkout::release`] when the response is
/// complete and the connection may be reused; dropping it otherwise closes the connection.
/// Either way the request's `max_requests` slot is freed.
pub struct Checkout<C: Connector> {
    conn: Option<C::Conn>,
    uses: u32,
    reused: bool,
    host: Arc<Host<C::Conn>>,
    cluster: Arc<Cluster<C>>,
    _request: Permit,
}

/// Counts `upstream_rq_cancelled` if a queued request's future is dropped while it waits.
struct PendingWait<'a> {
    counters: &'a ClusterCounters,
    done: bool,
}

impl Drop for PendingWait<'_> {
    fn drop(&mut self) {
        if !self.done {
            self.counters.upstream_rq_cancelled.inc();
        }
    }
}

impl<C: Connector> Cluster<C> {
    /// A cluster with no hosts yet.
    pub fn new(name: String, thresholds: Thresholds, settings: PoolSettings, connector: C) -> Self {
        Cluster {
            info: Arc::new(ClusterInfo::new(name, thresholds)),
            hosts: ArcSwap::from_pointee(Vec::new()),
            rr: AtomicUsize::new(0),
            settings: ArcSwap::from_pointee(settings),
            connector,
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

    /// The pool settings now.
    pub fn settings(&self) -> PoolSettings {
        **self.settings.load()
    }

    /// Applies new limits and settings in place; in-flight work keeps its slots. When
    /// `max_connections` is lowered below the connections open now, idle connections above the
    /// new limit are closed at once and busy ones are closed when their request ends, so the
    /// limit holds for reused connections too.
    pub fn reconfigure(&self, thresholds: Thresholds, settings: PoolSettings) {
        self.info.breakers.set_thresholds(thresholds);
        self.info.high.set_thresholds(thresholds);
        self.settings.store(Arc::new(settings));
        let cx = &self.info.breakers.connections;
        let mut excess = cx.current().saturating_sub(cx.max());
        for host in self.hosts.load().iter() {
            while excess > 0 {
                let Some(idle) = host.idle.pop() else { break };
                drop(idle);
                excess -= 1;
            }
        }
        // A raised limit may admit queued requests.
        self.info.pending_wakeup.notify_waiters();
    }

    /// Replaces the host list (after DNS resolution). Hosts that stay keep their stats and idle
    /// connections; removed hosts are dropped once no request uses them.
    pub fn set_hosts(&self, addrs: &[(SocketAddr, String)]) {
        let old = self.hosts.load();
        let new: Vec<_> = addrs
            .iter()
            .map(|(addr, hostname)| {
                old.iter()
                    .find(|h| h.info.addr == *addr)
                    .cloned()
                    .unwrap_or_else(|| {
                        Arc::new(Host {
                            info: Arc::new(HostInfo {
                                addr: *addr,
                                hostname: hostname.clone(),
                                counters: HostCounters::default(),
                                cx_active: Gauge::default(),
                                rq_active: Gauge::default(),
                            }),
                            idle: SegQueue::new(),
                        })
                    })
            })
            .collect();
        if new.len() != old.len() || new.iter().zip(old.iter()).any(|(a, b)| !Arc::ptr_eq(a, b)) {
            self.hosts.store(Arc::new(new));
        }
    }

    /// Gets a connection for one request: see the module docs for the exact order of checks.
    pub async fn checkout(self: &Arc<Self>) -> Result<Checkout<C>, CheckoutError> {
        self.checkout_with(true).await
    }

    /// Like [`Cluster::checkout`], but never hands out an idle connection: the request gets a
    /// newly opened one (within the same limits, queueing as a pending request when none may be
    /// opened now). For a request that may be sent again because a reused connection turned out
    /// closed by its peer: other idle connections may be just as stale.
    pub async fn checkout_new(self: &Arc<Self>) -> Result<Checkout<C>, CheckoutError> {
        self.checkout_with(false).await
    }

    async fn checkout_with(self: &Arc<Self>, reuse: bool) -> Result<Checkout<C>, CheckoutError> {
        let hosts = self.hosts.load_full();
        if hosts.is_empty() {
            self.info.counters.upstream_cx_none_healthy.inc();
            return Err(CheckoutError::NoHealthyUpstream);
        }
        let start = self.rr.fetch_add(1, Ordering::Relaxed) % hosts.len();
        if let Some((host, idle)) = reuse.then(|| self.pop_idle(&hosts, start)).flatten() {
            return self.attach(host, idle);
        }
        if let Some(slot) = self.info.breakers.connections.try_acquire_quiet() {
            return self.open(hosts[start].clone(), slot).await;
        }
        self.info.counters.upstream_cx_overflow.inc();
        let Some(pending) = self.info.breakers.pending.try_acquire() else {
            self.info.counters.upstream_rq_pending_overflow.inc();
            return Err(CheckoutError::Overflow(Limit::PendingRequests));
        };
        self.info.counters.upstream_rq_pending_total.inc();
        let mut wait = PendingWait {
            counters: &self.info.counters,
            done: false,
        };
        loop {
            // Register for a wakeup *before* re-checking, so a release between the check and
            // the await still wakes us.
            let notified = self.info.pending_wakeup.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            fence(Ordering::SeqCst);
            let hosts = self.hosts.load_full();
            if !hosts.is_empty() {
                let pick = self.rr.fetch_add(1, Ordering::Relaxed) % hosts.len();
                if let Some((host, idle)) = reuse.then(|| self.pop_idle(&hosts, pick)).flatten() {
                    wait.done = true;
                    drop(pending);
                    return self.attach(host, idle);
                }
                if let Some(slot) = self.info.breakers.connections.try_acquire_quiet() {
                    wait.done = true;
                    drop(pending);
                    return self.open(hosts[pick].clone(), slot).await;
                }
            }
            notified.await;
        }
    }

    fn pop_idle(&self, hosts: &[Arc<Host<C::Conn>>], start: usize) -> Option<Found<C::Conn>> {
        let idle_timeout = self.settings.load().idle_timeout;
        for i in 0..hosts.len() {
            let host = &hosts[(start + i) % hosts.len()];
            while let Some(idle) = host.idle.pop() {
                if !idle.conn.is_open() {
                    continue; // closed by the upstream; its guard already freed the slot
                }
                if idle.since.elapsed() >= idle_timeout {
                    self.info.counters.upstream_cx_idle_timeout.inc();
                    continue; // dropping it closes it
                }
                return Some((host.clone(), idle));
            }
        }
        None
    }

    async fn open(
        self: &Arc<Self>,
        host: Arc<Host<C::Conn>>,
        slot: Permit,
    ) -> Result<Checkout<C>, CheckoutError> {
        let c = &self.info.counters;
        c.upstream_cx_total.inc();
        c.upstream_cx_http1_total.inc();
        host.info.counters.cx_total.inc();
        host.info.cx_active.inc();
        let guard = ConnGuard {
            permit: Some(slot),
            cluster: self.info.clone(),
            host: host.info.clone(),
        };
        let addr = host.info.addr;
        let timeout = self.settings.load().connect_timeout;
        match tokio::time::timeout(timeout, self.connector.connect(addr, guard)).await {
            Ok(Ok(conn)) => self.attach(
                host,
                Idle {
                    conn,
                    uses: 0,
                    since: Instant::now(),
                },
            ),
            Ok(Err(source)) => {
                c.upstream_cx_connect_fail.inc();
                host.info.counters.cx_connect_fail.inc();
                Err(CheckoutError::ConnectFailed { addr, source })
            }
            Err(_) => {
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
        idle: Idle<C::Conn>,
    ) -> Result<Checkout<C>, CheckoutError> {
        let Some(request) = self.info.breakers.requests.try_acquire() else {
            self.info.counters.upstream_rq_active_overflow.inc();
            host.idle.push(idle);
            self.info.wake_pending();
            return Err(CheckoutError::Overflow(Limit::Requests));
        };
        self.info.counters.upstream_rq_total.inc();
        host.info.counters.rq_total.inc();
        host.info.rq_active.inc();
        Ok(Checkout {
            reused: idle.uses > 0,
            conn: Some(idle.conn),
            uses: idle.uses,
            host,
            cluster: self.clone(),
            _request: request,
        })
    }
}

impl<C: Connector> Checkout<C> {
    /// The connection.
    pub fn conn(&mut self) -> &mut C::Conn {
        self.conn
            .as_mut()
            .expect("a checkout holds its connection until released")
    }

    /// What the stats show of the host this connection goes to.
    pub fn host(&self) -> &Arc<HostInfo> {
        &self.host.info
    }

    /// Whether the connection already carried requests before this one (a request that fails
    /// on a reused connection before it was sent may safely be tried on a new one).
    pub fn reused(&self) -> bool {
        self.reused
    }

    /// The cluster's stats.
    pub fn cluster(&self) -> &Arc<ClusterInfo> {
        &self.cluster.info
    }

    /// Ends the request: a `reusable` open connection goes back to the idle queue (waking a
    /// queued request); otherwise it is closed.
    pub fn release(mut self, reusable: bool) {
        if let Some(conn) = self.conn.take() {
            let uses = self.uses + 1;
            let max = self.cluster.settings.load().max_requests_per_connection;
            let cx = &self.cluster.info.breakers.connections;
            if max != 0 && uses >= max {
                self.cluster.info.counters.upstream_cx_max_requests.inc();
            } else if cx.current() > cx.max() {
                // The limit was lowered: close rather than keep an extra connection.
            } else if reusable && conn.is_open() {
                self.host.idle.push(Idle {
                    conn,
                    uses,
                    since: Instant::now(),
                });
                self.cluster.info.wake_pending();
            }
        }
    }
}

impl<C: Connector> Drop for Checkout<C> {
    fn drop(&mut self) {
        self.host.info.rq_active.dec();
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
