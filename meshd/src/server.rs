//! The running daemon's state: clusters, listeners and access logs, and how a new config is
//! applied to them.
//!
//! A reload changes nothing that did not change: a cluster with the same name keeps its
//! breakers, pool and counters (new limits are applied in place), a listener with the same
//! node, role and address keeps its socket, and in-flight requests keep the objects they hold.
//! New listeners are bound before anything is swapped, so a reload that cannot bind changes
//! nothing.
//!
//! [`Server::drain`] stops it: listeners close at once, in-flight requests finish within a
//! deadline, and what still runs then is cut (see [`drain`]).

mod drain;
pub mod original_dst;
mod resolve;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use arc_swap::ArcSwap;
use mesh_core::accesslog::Writer;
use mesh_core::pool::{ClusterInfo, HostInfo, SlotConnector};
use mesh_core::runtime::{self, Bind, Endpoints, Role, RuntimeConfig};
use mesh_core::stats::HttpStats;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::accept::{AcceptErrors, AcceptStats};
use crate::proxy::{ListenerState, ListenerTable, SlotCluster};
use crate::resilience::{EventLog, Upstream};
pub use drain::{DrainReport, Phase};

/// A cluster of either kind, as the admin endpoint lists it.
#[derive(Clone)]
pub enum AnyCluster {
    /// Real upstream hosts.
    Tcp(Arc<Upstream>),
    /// A gateway's self-redirect slots.
    Slots(Arc<SlotCluster>),
}

impl AnyCluster {
    /// Stats and breakers.
    pub fn info(&self) -> &Arc<ClusterInfo> {
        match self {
            AnyCluster::Tcp(c) => c.pool.info(),
            AnyCluster::Slots(c) => c.info(),
        }
    }
    /// Hosts.
    pub fn hosts(&self) -> Vec<Arc<HostInfo>> {
        match self {
            AnyCluster::Tcp(c) => c.pool.hosts(),
            AnyCluster::Slots(c) => c.hosts(),
        }
    }
}

/// A bound listener.
pub struct RunningListener {
    /// Its config.
    pub config: runtime::Listener,
    /// Where it is bound.
    pub addr: SocketAddr,
    /// Its state.
    pub state: Arc<ListenerState>,
    /// Its accept failures (`listener.<addr>.*`).
    pub accept_stats: Arc<AcceptStats>,
    accept: JoinHandle<()>,
}

impl Drop for RunningListener {
    fn drop(&mut self) {
        // Stops accepting; connections already accepted run to their end.
        self.accept.abort();
    }
}

/// What the admin endpoint reads.
#[derive(Default)]
pub struct View {
    /// Every cluster, sorted by name.
    pub clusters: Vec<AnyCluster>,
    /// Every listener: (node, role, address, stats).
    pub listeners: Vec<(String, Role, SocketAddr, Arc<HttpStats>)>,
    /// Every listener's accept failures: (node, address, stats).
    pub accept: Vec<(String, SocketAddr, Arc<AcceptStats>)>,
    /// Access logs.
    pub logs: Vec<Writer>,
    /// The config in force.
    pub config: RuntimeConfig,
}

/// Why a config could not be applied.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// A listener could not bind.
    #[error("node {node}: cannot listen on {addr}: {source}")]
    Bind {
        /// The node.
        node: String,
        /// The address.
        addr: String,
        /// Why.
        source: std::io::Error,
    },
    /// meshd is stopping (draining): no config is applied any more.
    #[error("meshd is stopping: the config is not applied")]
    Stopping,
    /// An access log could not be opened.
    #[error("node {node}: cannot open access log {path}: {source}")]
    AccessLog {
        /// The node.
        node: String,
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
}

/// The daemon's state.
pub struct Server {
    inner: Mutex<Inner>,
    /// What the admin endpoint shows; swapped after each apply.
    pub view: ArcSwap<View>,
    dns_refresh: Duration,
    /// How long a client may take to send a request head (`--request-headers-timeout`).
    headers_timeout: Duration,
    /// Where clusters write ejections (`--outlier-log`).
    events: EventLog,
    /// Serving, draining or cutting: every connection task watches it; a connection holds a
    /// receiver for its whole life, so the sender sees when the last connection ended.
    phase: watch::Sender<Phase>,
    /// Set when the drain deadline cuts what still runs (each request then logs `LR`).
    cutting: Arc<AtomicBool>,
}

#[derive(Default)]
struct Inner {
    tcp: HashMap<String, (Arc<Upstream>, Arc<ArcSwap<Endpoints>>)>,
    slots: HashMap<String, Arc<SlotCluster>>,
    listeners: HashMap<(String, Role, Bind), RunningListener>,
    logs: HashMap<(String, String), Writer>,
}

/// Access-log queue length per file.
const LOG_QUEUE: usize = 8192;

impl Server {
    /// A server with nothing configured.
    pub fn new(dns_refresh: Duration, headers_timeout: Duration, events: EventLog) -> Arc<Self> {
        Arc::new(Server {
            inner: Mutex::new(Inner::default()),
            view: ArcSwap::from_pointee(View::default()),
            dns_refresh,
            headers_timeout,
            events,
            phase: watch::channel(Phase::Serving).0,
            cutting: Arc::new(AtomicBool::new(false)),
        })
    }

    /// Applies `config`: see the module docs. On error nothing changed.
    pub async fn apply(self: &Arc<Self>, config: RuntimeConfig) -> Result<(), ApplyError> {
        if *self.phase.borrow() != Phase::Serving {
            return Err(ApplyError::Stopping);
        }
        // Bind new listeners first (outside the lock: binding may resolve names).
        let existing: Vec<_> = {
            let inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
            inner.listeners.keys().cloned().collect()
        };
        let mut fresh = HashMap::new();
        for l in &config.listeners {
            if existing.contains(&l.key()) || fresh.contains_key(&l.key()) {
                continue;
            }
            let bound = match &l.bind {
                Bind::Addr(a) => TcpListener::bind(a).await,
                Bind::Host(h, p) => TcpListener::bind((h.as_str(), *p)).await,
            }
            .map_err(|source| ApplyError::Bind {
                node: l.node.clone(),
                addr: match &l.bind {
                    Bind::Addr(a) => a.to_string(),
                    Bind::Host(h, p) => format!("{h}:{p}"),
                },
                source,
            })?;
            fresh.insert(l.key(), bound);
        }

        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        if *self.phase.borrow() != Phase::Serving {
            return Err(ApplyError::Stopping); // the drain began while this apply bound
        }
        // Access logs: reuse a writer for the same file and format.
        let mut logs = HashMap::new();
        for l in &config.listeners {
            if let Some(al) = &l.access_log {
                let key = (al.path.display().to_string(), format!("{:?}", al.format));
                if logs.contains_key(&key) {
                    continue;
                }
                let w = match inner.logs.get(&key) {
                    Some(w) => w.clone(),
                    None => Writer::open(al.path.clone(), al.format.clone(), LOG_QUEUE).map_err(
                        |source| ApplyError::AccessLog {
                            node: l.node.clone(),
                            path: al.path.display().to_string(),
                            source,
                        },
                    )?,
                };
                logs.insert(key, w);
            }
        }

        // Clusters: keep by name, reconfigure in place.
        let mut tcp = HashMap::new();
        let mut slots = HashMap::new();
        for c in &config.clusters {
            if c.endpoints == Endpoints::Slots {
                let cl = inner.slots.get(&c.name).cloned().unwrap_or_else(|| {
                    let cl = Arc::new(SlotCluster::new(
                        c.name.clone(),
                        c.thresholds,
                        c.settings,
                        SlotConnector,
                    ));
                    cl.set_hosts(&[(SocketAddr::from(([127, 0, 0, 1], 0)), String::new())]);
                    cl
                });
                cl.reconfigure(c.thresholds, c.settings);
                slots.insert(c.name.clone(), cl);
            } else {
                let (cl, eps) = match inner.tcp.get(&c.name) {
                    Some((cl, eps)) => {
                        eps.store(Arc::new(c.endpoints.clone()));
                        cl.reconfigure(c);
                        (cl.clone(), eps.clone())
                    }
                    None => {
                        let cl = Upstream::new(c, self.events.clone());
                        let eps = Arc::new(ArcSwap::from_pointee(c.endpoints.clone()));
                        self.spawn_resolver(Arc::downgrade(&cl), eps.clone());
                        (cl, eps)
                    }
                };
                tcp.insert(c.name.clone(), (cl, eps));
            }
        }

        // Listeners: keep by key, swap tables, start new ones, drop removed ones.
        let mut listeners = HashMap::new();
        for l in &config.listeners {
            let table = ListenerTable {
                routing: l.routing.clone(),
                clusters: tcp
                    .iter()
                    .map(|(name, (cl, _))| (name.clone(), cl.clone()))
                    .collect(),
                admission: l
                    .admission_cluster
                    .as_ref()
                    .and_then(|n| slots.get(n).cloned()),
                log: l.access_log.as_ref().and_then(|al| {
                    logs.get(&(al.path.display().to_string(), format!("{:?}", al.format)))
                        .cloned()
                }),
                timeout: l.request_timeout,
                idle_timeout: l.stream_idle_timeout,
            };
            let key = l.key();
            if let Some(mut running) = inner.listeners.remove(&key) {
                running.state.table.store(Arc::new(table));
                running.config = l.clone();
                listeners.insert(key, running);
            } else if let Some(socket) = fresh.remove(&key) {
                let addr = socket
                    .local_addr()
                    .unwrap_or_else(|_| ([0, 0, 0, 0], 0).into());
                let state = Arc::new(ListenerState {
                    stats: Arc::new(HttpStats::default()),
                    table: ArcSwap::from_pointee(table),
                    cutting: self.cutting.clone(),
                    headers_timeout: self.headers_timeout,
                    egress: l.role == Role::Egress,
                });
                let accept_stats = Arc::new(AcceptStats::default());
                let errors = AcceptErrors::new(format!("listener {addr}"), accept_stats.clone());
                let accept = tokio::spawn(accept_loop(
                    socket,
                    state.clone(),
                    self.phase.subscribe(),
                    errors,
                ));
                tracing::info!(node = %l.node, role = ?l.role, %addr, "listening on {addr} for node {} ({:?})", l.node, l.role);
                listeners.insert(
                    key,
                    RunningListener {
                        config: l.clone(),
                        addr,
                        state,
                        accept_stats,
                        accept,
                    },
                );
            }
        }
        for (key, _old) in inner.listeners.drain() {
            tracing::info!(node = %key.0, role = ?key.1, "listener of node {} ({:?}) removed", key.0, key.1);
        }
        inner.listeners = listeners;
        inner.tcp = tcp;
        inner.slots = slots;
        inner.logs = logs.into_iter().collect();

        // Endpoints of local nodes' listeners: their bound addresses.
        for (cl, eps) in inner.tcp.values() {
            if let Endpoints::LocalListener { node } = &**eps.load() {
                if let Some(l) = inner
                    .listeners
                    .values()
                    .find(|l| &l.config.node == node && l.config.role != Role::Egress)
                {
                    cl.set_hosts(&[(l.addr, String::new())]);
                }
            }
        }

        let mut clusters: Vec<AnyCluster> = inner
            .tcp
            .values()
            .map(|(c, _)| AnyCluster::Tcp(c.clone()))
            .chain(inner.slots.values().map(|c| AnyCluster::Slots(c.clone())))
            .collect();
        clusters.sort_by(|a, b| a.info().name.cmp(&b.info().name));
        let mut ls: Vec<_> = inner
            .listeners
            .values()
            .map(|l| {
                (
                    l.config.node.clone(),
                    l.config.role,
                    l.addr,
                    l.state.stats.clone(),
                )
            })
            .collect();
        ls.sort_by(|a, b| (&a.0, a.2).cmp(&(&b.0, b.2)));
        let accept = inner
            .listeners
            .values()
            .map(|l| (l.config.node.clone(), l.addr, l.accept_stats.clone()))
            .collect();
        self.view.store(Arc::new(View {
            clusters,
            listeners: ls,
            accept,
            logs: inner.logs.values().cloned().collect(),
            config,
        }));
        Ok(())
    }

    /// Resolves a cluster's endpoints now and then every `dns_refresh`, until it is dropped
    /// (see [`resolve`]: a failed lookup keeps the last hosts, counted and logged once).
    fn spawn_resolver(&self, cluster: Weak<Upstream>, eps: Arc<ArcSwap<Endpoints>>) {
        resolve::spawn(cluster, eps, self.dns_refresh);
    }

    /// The bound address of every listener: (node, role, address).
    pub fn listener_addrs(&self) -> Vec<(String, Role, SocketAddr)> {
        self.view
            .load()
            .listeners
            .iter()
            .map(|(n, r, a, _)| (n.clone(), *r, *a))
            .collect()
    }
}

async fn accept_loop(
    socket: TcpListener,
    state: Arc<ListenerState>,
    phase: watch::Receiver<Phase>,
    mut errors: AcceptErrors,
) {
    loop {
        let (tcp, peer) = match socket.accept().await {
            Ok(c) => c,
            Err(e) => {
                errors.failed(&e).await;
                continue;
            }
        };
        errors.accepted();
        let _ = tcp.set_nodelay(true);
        let state = state.clone();
        tokio::spawn(serve_connection(tcp, peer, state, phase.clone()));
    }
}

/// Serves one client connection until it ends, the drain ends it gracefully (an idle
/// keep-alive connection closes at once, a busy one after its response, which then carries
/// `connection: close`), or the drain deadline drops it.
async fn serve_connection(
    tcp: tokio::net::TcpStream,
    peer: SocketAddr,
    state: Arc<ListenerState>,
    phase: watch::Receiver<Phase>,
) {
    let stats = state.stats.clone();
    // Only an egress listener is a capture target; elsewhere the lookup is skipped.
    let captured = if state.egress {
        original_dst::original_dst(&tcp)
    } else {
        None
    };
    if captured.is_some() {
        stats.counters.downstream_cx_captured.inc();
    }
    stats.counters.downstream_cx_total.inc();
    stats.counters.downstream_cx_http1_total.inc();
    stats.downstream_cx_active.inc();
    let ended = crate::downstream::serve(tcp, peer, captured, state, phase).await;
    if ended.protocol_error {
        stats.counters.downstream_cx_protocol_error.inc();
    }
    if ended.timeout {
        if ended.served == 0 {
            // No complete request head within --request-headers-timeout (slowloris).
            stats.counters.downstream_rq_header_timeout.inc();
        } else {
            // The same timer closes a kept-alive connection waiting for its next request.
            stats.counters.downstream_cx_idle_timeout.inc();
        }
    }
    if ended.cut {
        tracing::debug!(%peer, "downstream connection cut by the drain deadline");
    }
    let draining = ended.drained;
    if draining {
        stats.counters.downstream_cx_drain_close.inc();
    }
    stats.downstream_cx_active.dec();
    stats.counters.downstream_cx_destroy.inc();
}
