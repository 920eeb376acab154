//! Active health checks, the I/O half: the probes (an HTTP/1.1 `GET` through hyper's client, or
//! a TCP connect), each bounded by the check's timeout, and one task per host that probes on
//! [`HealthChecker`]'s jittered schedule and records each result. The decisions (thresholds,
//! states, what a result does to an outlier ejection) are `mesh_core::health`'s.
//!
//! A host that never answers is a [`CheckResult::Timeout`], never a stuck task: every probe runs
//! under `tokio::time::timeout`.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use bytes::Bytes;
use http_body_util::Empty;
use hyper_util::rt::TokioIo;
use mesh_core::health::{CheckResult, HealthChecker, HealthUpdate, HostHealth, Probe, ProbeKind};
use tokio::net::TcpStream;
use tokio::task::JoinHandle;

/// Sends one probe and classifies what came back.
pub async fn probe(p: &Probe) -> CheckResult {
    match tokio::time::timeout(p.timeout, attempt(p)).await {
        Ok(result) => result,
        Err(_) => CheckResult::Timeout,
    }
}

async fn attempt(p: &Probe) -> CheckResult {
    let Ok(tcp) = TcpStream::connect(p.target).await else {
        return CheckResult::NetworkFailure;
    };
    let path = match &p.kind {
        ProbeKind::Tcp => return CheckResult::Success,
        ProbeKind::Http { path } => path,
    };
    let _ = tcp.set_nodelay(true);
    let Ok((mut sender, conn)) =
        hyper::client::conn::http1::handshake::<_, Empty<Bytes>>(TokioIo::new(tcp)).await
    else {
        return CheckResult::NetworkFailure;
    };
    // The connection task ends with this probe (the sender is dropped, or the timeout drops it).
    let driver = tokio::spawn(conn);
    let req = http::Request::get(path.as_str())
        .header(http::header::HOST, p.host.as_str())
        .header(http::header::USER_AGENT, "meshd-health-check")
        .header(http::header::CONNECTION, "close")
        .body(Empty::<Bytes>::new());
    let result = match req {
        Ok(req) => match sender.send_request(req).await {
            Ok(resp) => p.classify(resp.status().as_u16()),
            Err(_) => CheckResult::NetworkFailure,
        },
        Err(_) => CheckResult::NetworkFailure,
    };
    driver.abort();
    result
}

/// What a cluster does with each health update (mark the pool's host, uneject it from outlier
/// detection, log).
pub type OnUpdate = Arc<dyn Fn(&HostHealth, &HealthUpdate) + Send + Sync>;

/// The probing tasks of one cluster: one per host, started and stopped as DNS changes the hosts.
pub struct Checks {
    checker: Arc<HealthChecker>,
    on_update: OnUpdate,
    tasks: Mutex<HashMap<SocketAddr, JoinHandle<()>>>,
}

impl Checks {
    /// Checks for a cluster; nothing is probed until [`Checks::set_hosts`].
    pub fn new(checker: Arc<HealthChecker>, on_update: OnUpdate) -> Arc<Checks> {
        Arc::new(Checks {
            checker,
            on_update,
            tasks: Mutex::new(HashMap::new()),
        })
    }

    /// The state machine.
    pub fn checker(&self) -> &Arc<HealthChecker> {
        &self.checker
    }

    /// The cluster's hosts now (`(address, DNS name)`): new hosts get a probing task, removed
    /// ones lose theirs.
    pub fn set_hosts(self: &Arc<Self>, hosts: &[(SocketAddr, String)]) {
        let addrs: Vec<SocketAddr> = hosts.iter().map(|(a, _)| *a).collect();
        let changes = self.checker.set_hosts(&addrs);
        let mut tasks = self.tasks.lock().unwrap_or_else(|p| p.into_inner());
        for gone in &changes.removed {
            if let Some(t) = tasks.remove(&gone.addr()) {
                t.abort();
            }
        }
        for host in changes.added {
            let hostname = hosts
                .iter()
                .find(|(a, _)| *a == host.addr())
                .map(|(_, h)| h.clone())
                .unwrap_or_default();
            let this = Arc::downgrade(self);
            let addr = host.addr();
            let task = tokio::spawn(async move {
                let mut rng = fastrand::Rng::new();
                let first = match this.upgrade() {
                    Some(c) => c.checker.config().first_delay(rng.u64(..)),
                    None => return,
                };
                tokio::time::sleep(first).await;
                loop {
                    let Some(checks) = this.upgrade() else { return };
                    if host.is_removed() {
                        return;
                    }
                    let config = checks.checker.config();
                    let p = config.probe(addr, &hostname);
                    drop(checks);
                    let result = probe(&p).await;
                    let Some(checks) = this.upgrade() else { return };
                    let update = checks.checker.record(&host, result, Instant::now());
                    (checks.on_update)(&host, &update);
                    drop(checks);
                    tokio::time::sleep(config.next_delay(rng.u64(..))).await;
                }
            });
            if let Some(old) = tasks.insert(addr, task) {
                old.abort();
            }
        }
    }
}

impl Drop for Checks {
    fn drop(&mut self) {
        for (_, t) in self
            .tasks
            .get_mut()
            .unwrap_or_else(|p| p.into_inner())
            .drain()
        {
            t.abort();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn http_probe(target: SocketAddr, timeout: Duration) -> Probe {
        Probe {
            target,
            kind: ProbeKind::Http {
                path: "/ping".into(),
            },
            host: "app".into(),
            timeout,
            expected_statuses: 200..201,
        }
    }

    #[tokio::test]
    async fn a_silent_host_is_a_timeout_and_a_closed_port_a_network_failure() {
        // Accepts and never answers.
        let silent = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = silent.local_addr().expect("addr");
        let hold = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((s, _)) = silent.accept().await {
                held.push(s);
            }
        });
        let r = probe(&http_probe(addr, Duration::from_millis(200))).await;
        assert_eq!(r, CheckResult::Timeout);
        hold.abort();

        let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = closed.local_addr().expect("addr");
        drop(closed);
        let r = probe(&http_probe(addr, Duration::from_secs(2))).await;
        assert_eq!(r, CheckResult::NetworkFailure);
    }

    #[tokio::test]
    async fn http_status_decides_and_tcp_needs_only_a_connection() {
        let server = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = server.local_addr().expect("addr");
        let serve = tokio::spawn(async move {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            let mut n = 0;
            while let Ok((mut s, _)) = server.accept().await {
                n += 1;
                let mut buf = [0u8; 1024];
                let got = s.read(&mut buf).await.unwrap_or(0);
                if got == 0 {
                    continue; // the TCP probe
                }
                let status = if n == 1 {
                    "200 OK"
                } else {
                    "503 Service Unavailable"
                };
                let _ = s
                    .write_all(format!("HTTP/1.1 {status}\r\ncontent-length: 0\r\n\r\n").as_bytes())
                    .await;
            }
        });
        let p = http_probe(addr, Duration::from_secs(2));
        assert_eq!(probe(&p).await, CheckResult::Success);
        assert_eq!(probe(&p).await, CheckResult::Failure { status: 503 });
        let tcp = Probe {
            kind: ProbeKind::Tcp,
            ..p
        };
        assert_eq!(probe(&tcp).await, CheckResult::Success);
        serve.abort();
    }
}
