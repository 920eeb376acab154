//! meshd talks to systemd (sd_notify): the test plays systemd, binding the Unix datagram socket
//! that NOTIFY_SOCKET names, and checks what a real meshd sends and when: READY=1 only once the
//! listeners accept, RELOADING=1 (with MONOTONIC_USEC) and READY=1 around a SIGHUP reload,
//! WATCHDOG=1 pings, STOPPING=1 on SIGTERM.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::net::UnixDatagram;
use std::process::Command;
use std::time::{Duration, Instant};

use mesh_tests::{
    bin, http_get, signal, state_dir_of, Gate, Meshd, OneNode, Proc, RawConn, RawUpstream, TempDir,
    ONE_NODE_CLUSTER,
};
use serde_json::json;

/// The test's end of NOTIFY_SOCKET.
struct Systemd {
    sock: UnixDatagram,
    /// The value of NOTIFY_SOCKET: a path, or `@name` for an abstract socket.
    name: String,
    _dir: TempDir,
}

impl Systemd {
    /// Binds a socket at a path in a temp dir.
    fn bind() -> Systemd {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("notify");
        let sock = UnixDatagram::bind(&path).expect("bind notify socket");
        Systemd {
            sock,
            name: path.display().to_string(),
            _dir: dir,
        }
    }

    /// Binds an abstract socket (`@name`), as systemd's own NOTIFY_SOCKET often is.
    fn bind_abstract() -> Systemd {
        use std::os::linux::net::SocketAddrExt;
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let name = format!("mesh-test-notify-{}-{nanos}", std::process::id());
        let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes())
            .expect("abstract name");
        let sock = UnixDatagram::bind_addr(&addr).expect("bind abstract notify socket");
        Systemd {
            sock,
            name: format!("@{name}"),
            _dir: tempfile::tempdir().expect("tempdir"),
        }
    }

    /// The next message, or None after `timeout`.
    fn next(&self, timeout: Duration) -> Option<String> {
        self.sock
            .set_read_timeout(Some(timeout))
            .expect("read timeout");
        let mut buf = [0u8; 4096];
        let n = self.sock.recv(&mut buf).ok()?;
        Some(String::from_utf8_lossy(&buf[..n]).into_owned())
    }

    /// Reads messages until one has the line `line`; returns every message read, that one last.
    /// Fails the test after 20 s or 200 messages.
    fn until(&self, line: &str) -> Vec<String> {
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut seen = Vec::new();
        while seen.len() < 200 {
            let left = deadline.saturating_duration_since(Instant::now());
            let Some(m) = self.next(left.max(Duration::from_millis(1))) else {
                break;
            };
            let done = m.lines().any(|l| l == line);
            seen.push(m);
            if done {
                return seen;
            }
        }
        panic!("no {line} from meshd; got {seen:?}");
    }
}

fn has_line(messages: &[String], line: &str) -> bool {
    messages.iter().any(|m| m.lines().any(|l| l == line))
}

/// An upstream that answers `GET /now` at once and every other request once `gate` opens.
fn gated_upstream(gate: &Gate) -> RawUpstream {
    let gate = gate.clone();
    RawUpstream::start(move |c: &mut RawConn| {
        while let Some(head) = c.next_request() {
            if !head.starts_with("GET /now") && !gate.wait() {
                return false;
            }
            if !c.write(b"HTTP/1.1 200 OK\r\ncontent-length: 3\r\n\r\nok\n") {
                return true;
            }
        }
        false
    })
}

/// One GET on its own connection; returns the status line (empty if the connection failed).
fn get(addr: SocketAddr, path: &str) -> String {
    let Ok(mut s) = TcpStream::connect(addr) else {
        return String::new();
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(20)));
    let req = format!("GET {path} HTTP/1.1\r\nhost: app\r\nconnection: close\r\n\r\n");
    if s.write_all(req.as_bytes()).is_err() {
        return String::new();
    }
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out.lines().next().unwrap_or_default().to_owned()
}

fn pool(max_connections: u32, max_pending: u32) -> serde_json::Value {
    json!({"connectionPool": {"http": {
        "maxConnections": max_connections, "maxPendingRequests": max_pending}}})
}

/// `meshd` with NOTIFY_SOCKET (and optionally WATCHDOG_USEC) set, through the harness.
fn notified_meshd(
    node: &OneNode,
    upstream: SocketAddr,
    systemd: &Systemd,
    watchdog_usec: Option<u64>,
    extra: &[&str],
) -> Meshd {
    let mut cmd = Command::new(bin("meshd"));
    cmd.env("NOTIFY_SOCKET", &systemd.name);
    if let Some(us) = watchdog_usec {
        cmd.env("WATCHDOG_USEC", us.to_string());
    }
    let app = format!("app={upstream}");
    let mut args = vec!["--listen", "app=127.0.0.1:0", "--app", &app];
    args.extend_from_slice(extra);
    Meshd::start_as(cmd, &node.config, &args)
}

#[test]
fn ready_is_sent_only_once_the_listener_accepts_with_a_status_line() {
    let gate = Gate::default();
    let up = gated_upstream(&gate);
    let node = OneNode::write(json!({}));
    let systemd = Systemd::bind();
    // Started by hand (not through the harness, which waits for readiness itself): the test
    // learns meshd is ready from READY=1 alone.
    let dir = tempfile::tempdir().expect("tempdir");
    let addr_file = dir.path().join("admin.addr");
    let mut cmd = Command::new(bin("meshd"));
    cmd.env("NOTIFY_SOCKET", &systemd.name)
        .env("MESHD_LOG", "info")
        .arg("--config-dir")
        .arg(&node.config)
        .arg("--state-dir")
        .arg(state_dir_of(&node.config))
        .args(["--admin", "127.0.0.1:0", "--admin-address-path"])
        .arg(&addr_file)
        .arg("--socket")
        .arg(dir.path().join("meshd.sock"))
        .args(["--listen", "app=127.0.0.1:0", "--app"])
        .arg(format!("app={}", up.addr));
    let (mut proc, _stdout): (Proc, _) = Proc::spawn("meshd", cmd, dir.path());

    let seen = systemd.until("READY=1");
    // Right after READY=1, with no retry: the admin endpoint, the listener and the proxy path
    // all answer.
    let admin = std::fs::read_to_string(&addr_file).expect("admin address written before READY");
    let listeners = http_get(&format!("http://{}/listeners", admin.trim())).body;
    let lis: SocketAddr = listeners
        .lines()
        .find_map(|l| l.strip_prefix("app-ingress::"))
        .unwrap_or_else(|| panic!("no app-ingress listener before READY=1: {listeners}"))
        .parse()
        .expect("listener address");
    assert_eq!(get(lis, "/now"), "HTTP/1.1 200 OK");
    assert_eq!(seen.len(), 1, "READY=1 is the first message: {seen:?}");
    let status = seen[0]
        .lines()
        .find_map(|l| l.strip_prefix("STATUS="))
        .unwrap_or_else(|| panic!("READY=1 comes with a STATUS= line: {seen:?}"));
    assert!(
        status.contains("1 node(s) (app)")
            && status.contains("1 listener(s)")
            && status.contains("cluster(s)")
            && status.contains("last reload: none yet"),
        "{status}"
    );
    signal(proc.pid(), "TERM");
    assert_eq!(proc.wait_exit(Duration::from_secs(15)), Some(0));
}

#[test]
fn sighup_is_wrapped_in_reloading_and_ready_and_its_new_limit_holds() {
    let gate = Gate::default();
    let up = gated_upstream(&gate);
    let node = OneNode::write(pool(10, 10));
    let systemd = Systemd::bind();
    // The directory watcher waits an hour: the SIGHUP is what applies the edit.
    let m = notified_meshd(&node, up.addr, &systemd, None, &["--debounce", "1h"]);
    systemd.until("READY=1");
    let lis = m.listener("app-ingress");

    // 1 connection, 1 pending request: of 3 requests at once, the third is refused.
    let file = node.config.join("vn-app.json");
    let mut v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&file).expect("read")).expect("json");
    v["spec"]["listeners"][0]["connectionPool"]["http"] =
        json!({"maxConnections": 1, "maxPendingRequests": 1});
    std::fs::write(&file, v.to_string()).expect("write");
    signal(m.proc.pid(), "HUP");

    let seen = systemd.until("READY=1");
    let reloading = seen
        .iter()
        .position(|m| m.lines().any(|l| l == "RELOADING=1"))
        .unwrap_or_else(|| panic!("RELOADING=1 before READY=1: {seen:?}"));
    let usec: u64 = seen[reloading]
        .lines()
        .find_map(|l| l.strip_prefix("MONOTONIC_USEC="))
        .unwrap_or_else(|| panic!("RELOADING=1 comes with MONOTONIC_USEC=: {seen:?}"))
        .parse()
        .expect("MONOTONIC_USEC is a number");
    assert!(usec > 0);
    let ready = seen.last().expect("READY=1");
    assert!(ready.contains("last reload: ok (SIGHUP)"), "{ready}");
    assert_eq!(m.stat("server.config_reload_success"), 1);

    let replies: Vec<_> = (0..3)
        .map(|_| std::thread::spawn(move || get(lis, "/held")))
        .collect();
    let overflow = format!("cluster.{ONE_NODE_CLUSTER}.upstream_rq_pending_overflow");
    mesh_tests::eventually("a request refused", Duration::from_secs(10), || {
        (m.stat(&overflow) == 1).then_some(())
    });
    gate.open();
    let codes: Vec<String> = replies
        .into_iter()
        .map(|t| t.join().expect("client"))
        .collect();
    let ok = codes
        .iter()
        .filter(|c| c.starts_with("HTTP/1.1 200"))
        .count();
    let refused = codes
        .iter()
        .filter(|c| c.starts_with("HTTP/1.1 503"))
        .count();
    assert_eq!((ok, refused), (2, 1), "{codes:?}");
}

#[test]
fn watchdog_pings_arrive_and_sigterm_sends_stopping() {
    let up = gated_upstream(&Gate::default());
    let node = OneNode::write(json!({}));
    let systemd = Systemd::bind_abstract();
    // WatchdogSec=1s: a ping every 500 ms.
    let mut m = notified_meshd(&node, up.addr, &systemd, Some(1_000_000), &[]);
    systemd.until("READY=1");
    // At least 2 pings within 5 intervals (2.5 s); bounded by time and count.
    let window = Instant::now() + Duration::from_millis(2_500);
    let mut pings = 0;
    for _ in 0..100 {
        let left = window.saturating_duration_since(Instant::now());
        if left.is_zero() || pings >= 2 {
            break;
        }
        match systemd.next(left) {
            Some(msg) if msg.lines().any(|l| l == "WATCHDOG=1") => pings += 1,
            Some(_) => {}
            None => break,
        }
    }
    assert!(pings >= 2, "{pings} WATCHDOG=1 within 2.5 s");

    signal(m.proc.pid(), "TERM");
    let seen = systemd.until("STOPPING=1");
    assert!(!has_line(&seen, "READY=1"), "{seen:?}");
    assert_eq!(m.proc.wait_exit(Duration::from_secs(15)), Some(0));
}

/// Under systemd, meshd's standard output is a socket to journald (JOURNAL_STREAM): an App Mesh
/// access log to `/dev/stdout` goes there, as Envoy's does. (open(2) of `/dev/stdout` refuses a
/// socket with ENXIO: meshd exited 1 at start under systemd 252, `packaging/vm-check.sh`.)
#[test]
fn an_access_log_to_dev_stdout_reaches_a_socket_stdout_as_journald_gives_it() {
    use std::io::{BufRead, BufReader};
    use std::os::fd::OwnedFd;
    use std::os::unix::net::UnixStream;

    let up = RawUpstream::start(|c: &mut RawConn| {
        while c.next_request().is_some() {
            if !c.write(b"HTTP/1.1 200 OK\r\ncontent-length: 3\r\n\r\nok\n") {
                return true;
            }
        }
        false
    });
    let node = OneNode::write(json!({}));
    let vn = node.config.join("vn-app.json");
    let text = std::fs::read_to_string(&vn).expect("read node");
    let text = text.replace(&node.log.display().to_string(), "/dev/stdout");
    std::fs::write(&vn, text).expect("write node");

    let (journal, meshd_end) = UnixStream::pair().expect("socket pair");
    let app = format!("app={}", up.addr);
    let m = Meshd::start_with_stdout(
        &node.config,
        &["--listen", "app=127.0.0.1:0", "--app", &app],
        std::process::Stdio::from(OwnedFd::from(meshd_end)),
    );
    assert_eq!(
        get(m.listener("app-ingress"), "/journal"),
        "HTTP/1.1 200 OK"
    );

    journal
        .set_read_timeout(Some(Duration::from_secs(20)))
        .expect("read timeout");
    let mut lines = BufReader::new(journal).lines();
    let line = (0..100)
        .map_while(|_| lines.next().and_then(Result::ok))
        .find(|l| l.contains("GET /journal"));
    assert!(
        line.as_deref().is_some_and(|l| l.contains(" 200 ")),
        "no access-log line for GET /journal on meshd's stdout: {line:?}\n{}",
        m.proc.stderr()
    );
}
