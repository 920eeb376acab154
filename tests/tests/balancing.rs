//! Load balancing and the pending queue, end to end: real meshd, real upstream sockets held by a
//! gate the test opens, real clients.
//!
//! - Eight hosts behind one cluster: meshd's only way to put several hosts in one cluster is a
//!   node's DNS name resolving to several addresses. The test never touches the machine's
//!   /etc/hosts: meshd runs in a private mount namespace (`unshare`) where a hosts file written
//!   by the test is bind-mounted over /etc/hosts, so `backends.balancing.test` resolves to
//!   127.0.0.2 … 127.0.0.9 for meshd alone. The upstreams listen on those addresses, one port.
//! - The pending queue: a 5/5 listener in front of one held upstream; queued requests must leave
//!   the queue in the order they arrived while newcomers hammer the listener.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use mesh_tests::{eventually, http_get, start_meshd_with_hosts, Meshd, OneNode, ONE_NODE_CLUSTER};
use serde_json::json;

/// How long a held request or a client read may take before the test gives up.
const HOLD_TIMEOUT: Duration = Duration::from_secs(20);

// ---- A held upstream: every request waits until the test releases its path prefix. ----------

#[derive(Default)]
struct HoldState {
    /// Every request received: (the address it came in on, its path), in arrival order.
    arrivals: Vec<(IpAddr, String)>,
    /// Path prefixes released so far.
    released: Vec<String>,
    /// Everything is released (the test is ending).
    all: bool,
}

#[derive(Default)]
struct Hold {
    state: Mutex<HoldState>,
    cv: Condvar,
}

impl Hold {
    fn lock(&self) -> std::sync::MutexGuard<'_, HoldState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records an arrival and waits until its path is released; false after [`HOLD_TIMEOUT`].
    fn arrive_and_wait(&self, ip: IpAddr, path: &str) -> bool {
        let mut s = self.lock();
        s.arrivals.push((ip, path.to_owned()));
        self.cv.notify_all();
        let (s, _) = self
            .cv
            .wait_timeout_while(s, HOLD_TIMEOUT, |s| {
                !s.all && !s.released.iter().any(|p| path.starts_with(p.as_str()))
            })
            .unwrap_or_else(|p| p.into_inner());
        s.all || s.released.iter().any(|p| path.starts_with(p.as_str()))
    }

    fn release(&self, prefix: &str) {
        self.lock().released.push(prefix.to_owned());
        self.cv.notify_all();
    }

    fn release_all(&self) {
        self.lock().all = true;
        self.cv.notify_all();
    }

    /// The paths received so far that start with `prefix`, in arrival order.
    fn arrived(&self, prefix: &str) -> Vec<String> {
        self.lock()
            .arrivals
            .iter()
            .filter(|(_, p)| p.starts_with(prefix))
            .map(|(_, p)| p.clone())
            .collect()
    }

    /// Waits until at least `n` requests whose path starts with `prefix` arrived.
    fn wait_arrived(&self, prefix: &str, n: usize) -> Vec<String> {
        let s = self.lock();
        let (s, _) = self
            .cv
            .wait_timeout_while(s, HOLD_TIMEOUT, |s| {
                s.arrivals
                    .iter()
                    .filter(|(_, p)| p.starts_with(prefix))
                    .count()
                    < n
            })
            .unwrap_or_else(|p| p.into_inner());
        let got: Vec<String> = s
            .arrivals
            .iter()
            .filter(|(_, p)| p.starts_with(prefix))
            .map(|(_, p)| p.clone())
            .collect();
        assert!(
            got.len() >= n,
            "waited for {n} requests under {prefix}, got {got:?}"
        );
        got
    }
}

/// HTTP/1.1 upstreams on the given listeners (any number of addresses, one port), each
/// connection on its own thread, each request held by [`Hold`]. The response body is the
/// address the request came in on. Stopped (everything released, accept threads joined) when
/// dropped.
struct HeldUpstreams {
    addrs: Vec<SocketAddr>,
    hold: Arc<Hold>,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

impl HeldUpstreams {
    fn start(listeners: Vec<TcpListener>) -> HeldUpstreams {
        let hold = Arc::new(Hold::default());
        let stop = Arc::new(AtomicBool::new(false));
        let mut addrs = Vec::new();
        let mut threads = Vec::new();
        for listener in listeners {
            let addr = listener.local_addr().expect("upstream addr");
            addrs.push(addr);
            let (hold, stop) = (hold.clone(), stop.clone());
            threads.push(std::thread::spawn(move || {
                for stream in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(stream) = stream else { continue };
                    let hold = hold.clone();
                    std::thread::spawn(move || serve_held(stream, addr.ip(), &hold));
                }
            }));
        }
        HeldUpstreams {
            addrs,
            hold,
            stop,
            threads,
        }
    }

    /// Binds `ips` on one free port (the first address picks it; retried when another address
    /// has that port taken).
    fn bind_same_port(ips: &[Ipv4Addr]) -> HeldUpstreams {
        for _ in 0..50 {
            let first = TcpListener::bind((ips[0], 0)).expect("bind the first upstream");
            let port = first.local_addr().expect("addr").port();
            let rest: Result<Vec<_>, _> = ips[1..]
                .iter()
                .map(|ip| TcpListener::bind((*ip, port)))
                .collect();
            if let Ok(mut rest) = rest {
                rest.insert(0, first);
                return HeldUpstreams::start(rest);
            }
        }
        panic!("no port was free on every one of {ips:?} in 50 tries");
    }
}

impl Drop for HeldUpstreams {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        self.hold.release_all();
        for a in &self.addrs {
            let _ = TcpStream::connect(a); // wakes the accept loop so it sees the flag
        }
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// Serves one upstream connection: request heads (no bodies: the tests send GETs), each held
/// until released, answered 200 with the local address as body, kept alive.
fn serve_held(stream: TcpStream, ip: IpAddr, hold: &Hold) {
    let _ = stream.set_read_timeout(Some(HOLD_TIMEOUT));
    let Ok(mut out) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(stream);
    loop {
        let mut request_line = String::new();
        match reader.read_line(&mut request_line) {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        loop {
            let mut line = String::new();
            match reader.read_line(&mut line) {
                Ok(0) | Err(_) => return,
                Ok(_) if line == "\r\n" => break,
                Ok(_) => {}
            }
        }
        let path = request_line
            .split_whitespace()
            .nth(1)
            .unwrap_or("")
            .to_owned();
        if !hold.arrive_and_wait(ip, &path) {
            return;
        }
        let body = ip.to_string();
        let resp = format!(
            "HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        );
        if out.write_all(resp.as_bytes()).is_err() {
            return;
        }
    }
}

fn write(dir: &Path, name: &str, v: serde_json::Value) {
    std::fs::write(dir.join(name), v.to_string()).expect("write config");
}

/// `/clusters` lines `<cluster>::<addr>::rq_total::<n>` of one cluster, per host address.
fn host_rq_totals(m: &Meshd, cluster: &str) -> BTreeMap<SocketAddr, u64> {
    http_get(&m.url("/clusters"))
        .body
        .lines()
        .filter_map(|l| {
            let rest = l.strip_prefix(&format!("{cluster}::"))?;
            let (addr, n) = rest.split_once("::rq_total::")?;
            Some((addr.parse().ok()?, n.parse().ok()?))
        })
        .collect()
}

const GW_ADMISSION: &str = "cds_ingress_m_gw_self_redirect_http_8088";

#[test]
fn every_host_gets_its_round_robin_share_behind_a_5_1_gateway() {
    const HOSTS: u8 = 8;
    const BURSTS: usize = 8;
    const PER_BURST: usize = 6; // 5 served at once by the gateway, 1 queued there
    let ips: Vec<Ipv4Addr> = (2..2 + HOSTS)
        .map(|i| Ipv4Addr::new(127, 0, 0, i))
        .collect();
    let up = HeldUpstreams::bind_same_port(&ips);
    let port = up.addrs[0].port();

    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("config");
    std::fs::create_dir_all(&config).expect("mkdir");
    let hosts = dir.path().join("hosts");
    let mut text = String::from("127.0.0.1 localhost\n");
    for ip in &ips {
        text.push_str(&format!("{ip} backends.balancing.test\n"));
    }
    std::fs::write(&hosts, text).expect("write hosts");
    write(&config, "mesh.json", json!({"meshName": "m", "spec": {}}));
    write(
        &config,
        "vg.json",
        json!({"meshName": "m", "virtualGatewayName": "gw", "spec": {"listeners": [{
            "portMapping": {"port": 8088, "protocol": "http"},
            "connectionPool": {"http": {"maxConnections": 5, "maxPendingRequests": 1}}}]}}),
    );
    write(
        &config,
        "gr.json",
        json!({"meshName": "m", "virtualGatewayName": "gw", "gatewayRouteName": "all",
               "spec": {"httpRoute": {"match": {"prefix": "/"},
                        "action": {"target": {"virtualService": {"virtualServiceName": "svc"}}}}}}),
    );
    write(
        &config,
        "vs.json",
        json!({"meshName": "m", "virtualServiceName": "svc",
               "spec": {"provider": {"virtualNode": {"virtualNodeName": "backend"}}}}),
    );
    write(
        &config,
        "vn.json",
        json!({"meshName": "m", "virtualNodeName": "backend", "spec": {
            "listeners": [{"portMapping": {"port": port, "protocol": "http"}}],
            "serviceDiscovery": {"dns": {"hostname": "backends.balancing.test"}}}}),
    );
    let m = start_meshd_with_hosts(
        &config,
        &hosts,
        &["--node", "gw", "--listen", "gw=127.0.0.1:0"],
    );
    let cluster = format!("cds_egress_m_backend_http_{port}");
    eventually("the 8 hosts resolved", Duration::from_secs(10), || {
        (host_rq_totals(&m, &cluster).len() == usize::from(HOSTS)).then_some(())
    });
    let gw = m.listener("gw-gateway");

    for b in 0..BURSTS {
        let prefix = format!("/b{b}/");
        let clients: Vec<_> = (0..PER_BURST)
            .map(|i| {
                let url = format!("http://{gw}{prefix}{i}");
                std::thread::spawn(move || http_get(&url).status)
            })
            .collect();
        // The burst is in flight at once: 5 held by the upstreams, 1 queued at the gateway.
        up.hold.wait_arrived(&prefix, 5);
        eventually("1 request queued at the gateway", HOLD_TIMEOUT, || {
            (m.stat(&format!(
                "cluster.{GW_ADMISSION}.upstream_rq_pending_active"
            )) == 1)
                .then_some(())
        });
        up.hold.release(&prefix);
        let statuses: Vec<u16> = clients
            .into_iter()
            .map(|c| c.join().expect("client"))
            .collect();
        assert_eq!(statuses, vec![200; PER_BURST], "burst {b}");
    }

    // Round robin over the usable hosts with one counter per cluster: each of the 6·8 = 48 picks
    // goes to the next host, so every host gets exactly ⌊48/8⌋ or ⌈48/8⌉ requests (here 6).
    let total = BURSTS * PER_BURST;
    let (lo, hi) = (total / HOSTS as usize, total.div_ceil(HOSTS as usize));
    let mut seen: BTreeMap<IpAddr, usize> = ips.iter().map(|ip| (IpAddr::V4(*ip), 0)).collect();
    for (ip, _) in up.hold.lock().arrivals.iter() {
        *seen.entry(*ip).or_default() += 1;
    }
    assert_eq!(seen.values().sum::<usize>(), total, "{seen:?}");
    assert!(
        seen.values().all(|n| (lo..=hi).contains(n)),
        "every host gets {lo}..={hi} of {total} requests, got {seen:?}"
    );
    // meshd's own per-host counts say the same.
    let counted = host_rq_totals(&m, &cluster);
    for (ip, n) in &seen {
        assert_eq!(
            counted.get(&SocketAddr::new(*ip, port)).copied(),
            Some(*n as u64),
            "/clusters rq_total of {ip}: {counted:?}"
        );
    }
}

/// Sends `GET path` on a kept-alive connection and returns the status (0 if the connection
/// broke).
fn get_on(s: &mut TcpStream, path: &str) -> u16 {
    if s.write_all(format!("GET {path} HTTP/1.1\r\nhost: app\r\n\r\n").as_bytes())
        .is_err()
    {
        return 0;
    }
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match s.read(&mut byte) {
            Ok(1) => head.push(byte[0]),
            _ => return 0,
        }
    }
    let head = String::from_utf8_lossy(&head).to_ascii_lowercase();
    let len: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length: "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    let mut body = vec![0u8; len];
    if s.read_exact(&mut body).is_err() {
        return 0;
    }
    head.split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0)
}

#[test]
fn queued_requests_leave_the_queue_in_arrival_order_while_newcomers_hammer() {
    const ROUNDS: usize = 6;
    const FLOOD: usize = 4;
    let up = HeldUpstreams::start(vec![TcpListener::bind("127.0.0.1:0").expect("bind")]);
    let node = OneNode::write(json!({
        "connectionPool": {"http": {"maxConnections": 5, "maxPendingRequests": 5}}
    }));
    let m = node.start(up.addrs[0], &[]);
    let listener = m.listener("app-ingress");
    let pending = || {
        m.stat(&format!(
            "cluster.{ONE_NODE_CLUSTER}.upstream_rq_pending_active"
        ))
    };

    for round in 0..ROUNDS {
        let r = format!("/r{round}/");
        let get = |path: String| {
            std::thread::spawn(move || {
                let mut s = TcpStream::connect(listener).expect("connect");
                s.set_read_timeout(Some(HOLD_TIMEOUT)).expect("timeout");
                get_on(&mut s, &path)
            })
        };
        // Five requests hold the five connections.
        let held: Vec<_> = (0..5).map(|i| get(format!("{r}h{i}/"))).collect();
        up.hold.wait_arrived(&format!("{r}h"), 5);
        // Five more queue, one after the other: the order of the queue is known.
        let queued: Vec<_> = (0..5)
            .map(|i| {
                let q = get(format!("{r}q{i}/"));
                eventually(&format!("{} queued", i + 1), HOLD_TIMEOUT, || {
                    (pending() == i as u64 + 1).then_some(())
                });
                q
            })
            .collect();
        // Newcomers hammer the listener on kept-alive connections (refused while the queue is
        // full, queued behind it otherwise) while the queue drains.
        let stop = Arc::new(AtomicBool::new(false));
        let answered = Arc::new(AtomicUsize::new(0));
        let flood: Vec<_> = (0..FLOOD)
            .map(|f| {
                let (stop, answered, r) = (stop.clone(), answered.clone(), r.clone());
                std::thread::spawn(move || {
                    let mut s = TcpStream::connect(listener).expect("connect");
                    s.set_read_timeout(Some(HOLD_TIMEOUT)).expect("timeout");
                    for k in 0..100_000 {
                        if stop.load(Ordering::SeqCst) {
                            break;
                        }
                        let code = get_on(&mut s, &format!("{r}n{f}-{k}/"));
                        answered.fetch_add(1, Ordering::SeqCst);
                        if code == 0 {
                            s = TcpStream::connect(listener).expect("reconnect");
                            s.set_read_timeout(Some(HOLD_TIMEOUT)).expect("timeout");
                        }
                    }
                })
            })
            .collect();
        eventually("newcomers answered", HOLD_TIMEOUT, || {
            (answered.load(Ordering::SeqCst) >= FLOOD).then_some(())
        });
        // Each finished request frees one connection: it must go to the oldest queued request.
        let before = up.hold.arrived(&r).len();
        for i in 0..5 {
            up.hold.release(&format!("{r}h{i}/"));
            up.hold.wait_arrived(&r, before + i + 1);
        }
        stop.store(true, Ordering::SeqCst);
        let order: Vec<String> = up.hold.arrived(&r)[before..before + 5].to_vec();
        up.hold.release(&r);
        for c in held.into_iter().chain(queued) {
            assert_eq!(c.join().expect("client"), 200, "round {round}");
        }
        for f in flood {
            f.join().expect("flood client");
        }
        let expected: Vec<String> = (0..5).map(|i| format!("{r}q{i}/")).collect();
        assert_eq!(
            order, expected,
            "round {round}: the queue is left in arrival order, before any newcomer"
        );
        assert_eq!(pending(), 0);
    }
}
