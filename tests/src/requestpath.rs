//! Request-path helpers (tests/tests/requestpath.rs): a one-node mesh written to a temp dir,
//! and a scripted raw-TCP upstream whose every byte the test decides, for faults demo-app cannot
//! produce (a head then a stall, a close after each response, an oversized head).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use crate::{eventually, run_bounded, Meshd, TempDir};

/// Cluster of the virtual node `app` that [`OneNode`] writes.
pub const ONE_NODE_CLUSTER: &str = "cds_ingress_m_app_http_8080";

/// A mesh `m` with one virtual node `app` (HTTP listener on port 8080, access log in the temp
/// dir), in App Mesh CLI-input shape.
pub struct OneNode {
    pub dir: TempDir,
    /// The config directory.
    pub config: PathBuf,
    /// The node's access log.
    pub log: PathBuf,
}

impl OneNode {
    /// Writes the config; `listener` is merged into the node's listener (e.g.
    /// `{"timeout": {"http": {"idle": {"unit": "ms", "value": 500}}}}`).
    pub fn write(listener: serde_json::Value) -> OneNode {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = dir.path().join("config");
        std::fs::create_dir_all(&config).expect("mkdir config");
        let log = dir.path().join("access.log");
        let mut l = serde_json::json!({"portMapping": {"port": 8080, "protocol": "http"}});
        if let (Some(l), Some(extra)) = (l.as_object_mut(), listener.as_object()) {
            l.extend(extra.clone());
        }
        let node = serde_json::json!({
            "meshName": "m",
            "virtualNodeName": "app",
            "spec": {
                "listeners": [l],
                "serviceDiscovery": {"dns": {"hostname": "app.m.local"}},
                "logging": {"accessLog": {"file": {"path": log.display().to_string()}}}
            }
        });
        std::fs::write(config.join("mesh.json"), r#"{"meshName": "m", "spec": {}}"#)
            .expect("write mesh");
        std::fs::write(config.join("vn-app.json"), node.to_string()).expect("write node");
        OneNode { dir, config, log }
    }

    /// Starts meshd serving `app` on a free port in front of `upstream`, plus `extra` flags.
    /// It runs one worker (`MESHD_CONCURRENCY=1`, unless `extra` says `--concurrency`): tokio's
    /// single-thread scheduler, which a one-core VM gets by default, so the request-path tests
    /// hold it to the same answers; the walkthrough's tests ([`Meshd::start`]) run the
    /// multi-thread one.
    pub fn start(&self, upstream: SocketAddr, extra: &[&str]) -> Meshd {
        let app = format!("app={upstream}");
        let mut args = vec!["--listen", "app=127.0.0.1:0", "--app", &app];
        args.extend_from_slice(extra);
        let mut cmd = Command::new(crate::bin("meshd"));
        cmd.env("MESHD_CONCURRENCY", "1");
        Meshd::start_as(cmd, &self.config, &args)
    }

    /// The access log now.
    pub fn access_log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits until the access log holds at least `n` lines and returns it.
    pub fn access_log_lines(&self, n: usize) -> String {
        eventually(
            &format!("{n} access log line(s)"),
            Duration::from_secs(10),
            || {
                let l = self.access_log();
                (l.lines().count() >= n).then_some(l)
            },
        )
    }
}

/// How long a scripted connection waits for a byte before it gives up (bounds its thread).
pub const RAW_READ_TIMEOUT: Duration = Duration::from_secs(20);

/// One accepted connection of a [`RawUpstream`].
pub struct RawConn {
    pub stream: std::net::TcpStream,
    buf: Vec<u8>,
}

impl RawConn {
    /// Reads the next request head (and discards a `content-length` body). `None` at EOF, on an
    /// error or after [`RAW_READ_TIMEOUT`].
    pub fn next_request(&mut self) -> Option<String> {
        let end = loop {
            if let Some(i) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            if !self.fill() {
                return None;
            }
        };
        let head = String::from_utf8_lossy(&self.buf[..end]).into_owned();
        self.buf.drain(..end);
        let len = head
            .lines()
            .find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.eq_ignore_ascii_case("content-length")
                    .then(|| v.trim().parse::<usize>().ok())?
            })
            .unwrap_or(0);
        while self.buf.len() < len {
            if !self.fill() {
                return None;
            }
        }
        self.buf.drain(..len);
        Some(head)
    }

    fn fill(&mut self) -> bool {
        use std::io::Read as _;
        let mut chunk = [0u8; 16 * 1024];
        match self.stream.read(&mut chunk) {
            Ok(0) | Err(_) => false,
            Ok(n) => {
                self.buf.extend_from_slice(&chunk[..n]);
                true
            }
        }
    }

    /// Writes `bytes`; false if the peer is gone.
    pub fn write(&mut self, bytes: &[u8]) -> bool {
        use std::io::Write as _;
        self.stream.write_all(bytes).is_ok()
    }

    /// Waits (up to [`RAW_READ_TIMEOUT`]) for the peer to close; true if it did (EOF or reset).
    pub fn peer_closed(&mut self) -> bool {
        use std::io::Read as _;
        let mut chunk = [0u8; 1024];
        loop {
            match self.stream.read(&mut chunk) {
                Ok(0) => return true,
                Ok(_) => continue,
                Err(e) => {
                    return !matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    )
                }
            }
        }
    }
}

/// A scripted HTTP/1.1 upstream on a free loopback port: every accepted connection runs
/// `serve` on its own thread. Stopped when dropped (connection threads end by their read
/// timeout at the latest).
pub struct RawUpstream {
    pub addr: SocketAddr,
    /// Connections accepted so far.
    pub accepted: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    /// Connections whose `serve` saw the peer (meshd) close.
    pub closed_by_peer: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl RawUpstream {
    /// Starts the upstream. `serve` returns true when it saw the peer close the connection.
    pub fn start(serve: impl Fn(&mut RawConn) -> bool + Send + Sync + 'static) -> RawUpstream {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind upstream");
        RawUpstream::serve(listener, serve)
    }

    /// Like [`RawUpstream::start`] on `addr` (e.g. `127.0.0.3:<port>`); an error when it cannot
    /// bind there.
    pub fn try_start_on(
        addr: &str,
        serve: impl Fn(&mut RawConn) -> bool + Send + Sync + 'static,
    ) -> std::io::Result<RawUpstream> {
        Ok(RawUpstream::serve(
            std::net::TcpListener::bind(addr)?,
            serve,
        ))
    }

    fn serve(
        listener: std::net::TcpListener,
        serve: impl Fn(&mut RawConn) -> bool + Send + Sync + 'static,
    ) -> RawUpstream {
        use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
        use std::sync::Arc;
        let addr = listener.local_addr().expect("upstream addr");
        let accepted = Arc::new(AtomicUsize::new(0));
        let closed_by_peer = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let serve = Arc::new(serve);
        let thread = {
            let (accepted, closed, stop) = (accepted.clone(), closed_by_peer.clone(), stop.clone());
            std::thread::spawn(move || {
                for stream in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(stream) = stream else { continue };
                    accepted.fetch_add(1, Ordering::SeqCst);
                    let _ = stream.set_read_timeout(Some(RAW_READ_TIMEOUT));
                    let _ = stream.set_nodelay(true);
                    let (serve, closed) = (serve.clone(), closed.clone());
                    std::thread::spawn(move || {
                        let mut conn = RawConn {
                            stream,
                            buf: Vec::new(),
                        };
                        if serve(&mut conn) {
                            closed.fetch_add(1, Ordering::SeqCst);
                        }
                    });
                }
            })
        };
        RawUpstream {
            addr,
            accepted,
            closed_by_peer,
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for RawUpstream {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        // Wake the accept loop so it sees the flag.
        let _ = std::net::TcpStream::connect(self.addr);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A gate a scripted upstream waits on until the test opens it (bounded by
/// [`RAW_READ_TIMEOUT`]).
#[derive(Clone, Default)]
pub struct Gate(std::sync::Arc<(std::sync::Mutex<bool>, std::sync::Condvar)>);

impl Gate {
    /// Lets every waiter through, now and later.
    pub fn open(&self) {
        let (lock, cv) = &*self.0;
        *lock.lock().unwrap_or_else(|p| p.into_inner()) = true;
        cv.notify_all();
    }

    /// Whether the gate is open now.
    pub fn is_open(&self) -> bool {
        *self.0 .0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Waits until the gate is open; false after [`RAW_READ_TIMEOUT`].
    pub fn wait(&self) -> bool {
        let (lock, cv) = &*self.0;
        let open = lock.lock().unwrap_or_else(|p| p.into_inner());
        let (open, _) = cv
            .wait_timeout_while(open, RAW_READ_TIMEOUT, |open| !*open)
            .unwrap_or_else(|p| p.into_inner());
        *open
    }
}

/// Sends SIGTERM or SIGINT (`sig`: "TERM", "INT") to `pid` with kill(1).
pub fn signal(pid: u32, sig: &str) {
    let r = run_bounded(
        {
            let mut c = Command::new("kill");
            c.arg(format!("-{sig}")).arg(pid.to_string());
            c
        },
        "kill",
    );
    assert_eq!(r.code, 0, "kill -{sig} {pid}: {}", r.stderr);
}

/// Reads from a client's connection until the peer closes it (true: EOF or reset) or the
/// socket's read timeout passes without a byte (false); returns what came, lossily as text.
pub fn read_to_close(s: &mut std::net::TcpStream) -> (String, bool) {
    use std::io::Read as _;
    let mut out = Vec::new();
    let mut chunk = [0u8; 64 * 1024];
    let closed = loop {
        match s.read(&mut chunk) {
            Ok(0) => break true,
            Ok(n) => out.extend_from_slice(&chunk[..n]),
            Err(e) => {
                break !matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                )
            }
        }
    };
    (String::from_utf8_lossy(&out).into_owned(), closed)
}
