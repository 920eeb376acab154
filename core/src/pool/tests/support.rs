//! What the pool's tests share: a connector whose connects the test controls, clusters of any
//! number of hosts, and polling a future once without yielding to other tasks.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::task::Poll;

use tokio::sync::Semaphore;

use crate::breaker::Thresholds;
use crate::pool::{Cluster, ConnGuard, Connection, Connector, PoolSettings};

/// How the [`TestConnector`] answers a connect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Connected at once.
    Instant = 0,
    /// Connected when the test lets one through ([`Ctl::allow`]).
    Gated = 1,
    /// Never answers (a host that drops SYNs).
    Never = 2,
    /// Refused at once.
    Fail = 3,
}

/// The test's side of a [`TestConnector`].
pub struct Ctl {
    mode: AtomicU8,
    gate: Semaphore,
    /// Every connect asked for, in order.
    pub connects: Mutex<Vec<SocketAddr>>,
    /// The open flags of the connections made, in order.
    pub conns: Mutex<Vec<Arc<AtomicBool>>>,
}

impl Ctl {
    pub fn set(&self, mode: Mode) {
        self.mode.store(mode as u8, Ordering::SeqCst);
    }

    /// Lets `n` gated connects complete.
    pub fn allow(&self, n: usize) {
        self.gate.add_permits(n);
    }

    pub fn connects(&self) -> Vec<SocketAddr> {
        self.connects.lock().expect("lock").clone()
    }
}

/// A connector whose connects the test controls ([`Mode`]).
#[derive(Clone)]
pub struct TestConnector(pub Arc<Ctl>);

/// A connection of the [`TestConnector`]: open until the test says otherwise.
pub struct TestConn {
    pub addr: SocketAddr,
    open: Arc<AtomicBool>,
    _guard: ConnGuard,
}

impl Connection for TestConn {
    fn is_open(&self) -> bool {
        self.open.load(Ordering::SeqCst)
    }
}

impl Connector for TestConnector {
    type Conn = TestConn;
    async fn connect(&self, addr: SocketAddr, guard: ConnGuard) -> std::io::Result<TestConn> {
        let ctl = &self.0;
        ctl.connects.lock().expect("lock").push(addr);
        match ctl.mode.load(Ordering::SeqCst) {
            0 => {}
            1 => ctl
                .gate
                .acquire()
                .await
                .map_err(std::io::Error::other)?
                .forget(),
            2 => std::future::pending::<()>().await,
            _ => return Err(std::io::ErrorKind::ConnectionRefused.into()),
        }
        let open = Arc::new(AtomicBool::new(true));
        ctl.conns.lock().expect("lock").push(open.clone());
        Ok(TestConn {
            addr,
            open,
            _guard: guard,
        })
    }
}

/// The address of test host `i`.
pub fn addr(i: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 1000 + i))
}

pub fn limits(cx: u64, pending: u64, rq: u64) -> Thresholds {
    Thresholds {
        max_connections: cx,
        max_pending_requests: pending,
        max_requests: rq,
        max_retries: 3,
    }
}

/// A cluster of `hosts` hosts (`addr(0)`…) behind a [`TestConnector`] in `mode`.
pub fn cluster(
    hosts: u16,
    t: Thresholds,
    settings: PoolSettings,
    mode: Mode,
) -> (Arc<Cluster<TestConnector>>, Arc<Ctl>) {
    let ctl = Arc::new(Ctl {
        mode: AtomicU8::new(mode as u8),
        gate: Semaphore::new(0),
        connects: Mutex::new(Vec::new()),
        conns: Mutex::new(Vec::new()),
    });
    let c = Arc::new(Cluster::new(
        "test".into(),
        t,
        settings,
        TestConnector(ctl.clone()),
    ));
    let addrs: Vec<_> = (0..hosts).map(|i| (addr(i), String::new())).collect();
    c.set_hosts(&addrs);
    (c, ctl)
}

/// Polls `fut` once in the current task, without letting any other task run.
pub async fn poll_once<F: Future>(mut fut: Pin<&mut F>) -> Poll<F::Output> {
    std::future::poll_fn(|cx| Poll::Ready(fut.as_mut().poll(cx))).await
}

/// Lets every other task of a current-thread runtime run until none is ready.
pub async fn settle() {
    for _ in 0..64 {
        tokio::task::yield_now().await;
    }
}
