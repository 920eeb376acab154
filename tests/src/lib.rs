//! Harness for the end-to-end tests: start the workspace's real binaries on loopback, learn their
//! addresses from their own readiness signals (never fixed ports), and stop them when the test
//! ends, also when it fails.
//!
//! The binaries must be built first: the README's test command runs
//! `cargo build --workspace --bins` before `cargo test`.

use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

pub use tempfile::TempDir;

/// How long any process may take to become ready before the test fails.
pub const READY_TIMEOUT: Duration = Duration::from_secs(20);

/// Path of a workspace binary (`target/<profile>/<name>`), found next to the test executable.
pub fn bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    // target/<profile>/deps/<test>-<hash> -> target/<profile>/<name>
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("test executable lives in target/<profile>/deps");
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} is not built: run `cargo build --workspace --bins` first (the README's test command does)",
        path.display()
    );
    path
}

/// How long a command run by [`run_bounded`] may take before the test fails.
pub const RUN_TIMEOUT: Duration = Duration::from_secs(30);

/// What a finished command produced.
#[derive(Debug)]
pub struct Run {
    /// Exit code (-1 when killed by a signal).
    pub code: i32,
    /// Everything it wrote to stdout.
    pub stdout: String,
    /// Everything it wrote to stderr.
    pub stderr: String,
}

/// Runs `cmd` to its end with stdin closed, bounded by [`RUN_TIMEOUT`]: beyond it the command is
/// killed and the test fails, naming `what` and showing its stderr. Output goes to files, never
/// pipes: a pipe that nobody reads fills up and would block a command with a large output.
pub fn run_bounded(mut cmd: Command, what: &str) -> Run {
    let dir = tempfile::tempdir().expect("tempdir");
    let out_path = dir.path().join("stdout");
    let err_path = dir.path().join("stderr");
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out_path).expect("stdout file"))
        .stderr(std::fs::File::create(&err_path).expect("stderr file"))
        .spawn()
        .unwrap_or_else(|e| panic!("start {what}: {e}"));
    let deadline = Instant::now() + RUN_TIMEOUT;
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait for command") {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "{what} did not finish in {RUN_TIMEOUT:?}; stderr:\n{}",
                std::fs::read_to_string(&err_path).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    Run {
        code: status.code().unwrap_or(-1),
        stdout: std::fs::read_to_string(&out_path).unwrap_or_default(),
        stderr: std::fs::read_to_string(&err_path).unwrap_or_default(),
    }
}

/// A child process that is killed and reaped when dropped. Its stderr goes to a log file that is
/// printed when the test panics, so a failing test shows what the process said.
pub struct Proc {
    name: String,
    child: Child,
    log: PathBuf,
}

impl Proc {
    /// Starts `cmd` with stdout piped (for readiness lines) and stderr to a log file in `dir`.
    pub fn spawn(name: &str, cmd: Command, dir: &Path) -> (Proc, std::process::ChildStdout) {
        let mut proc = Proc::spawn_with_stdout(name, cmd, dir, Stdio::piped());
        let stdout = proc.child.stdout.take().expect("piped stdout");
        (proc, stdout)
    }

    /// [`Proc::spawn`] with `stdout` as the process's standard output (e.g. a socket, as
    /// journald's stream under systemd).
    pub fn spawn_with_stdout(name: &str, mut cmd: Command, dir: &Path, stdout: Stdio) -> Proc {
        let log = dir.join(format!("{name}.{}.stderr", std::process::id()));
        let log_file = std::fs::File::create(&log).expect("create log file");
        cmd.stdin(Stdio::null())
            .stdout(stdout)
            .stderr(Stdio::from(log_file));
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        Proc {
            name: name.to_owned(),
            child,
            log,
        }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// What the process wrote on stderr so far.
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Sends SIGKILL and reaps the process.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Waits (bounded) for the process to exit on its own and returns its exit code.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<i32> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() {
            eprintln!(
                "---- stderr of {} ----\n{}---- end ----",
                self.name,
                self.stderr()
            );
        }
    }
}

/// Reads lines from `stdout` until one starts with `prefix`, returns the rest of that line.
/// Fails the test after [`READY_TIMEOUT`]. Later output keeps being drained in the background.
pub fn read_ready_line(name: &str, stdout: std::process::ChildStdout, prefix: &str) -> String {
    let (tx, rx) = mpsc::channel();
    let prefix = prefix.to_owned();
    std::thread::spawn(move || {
        let mut reader = BufReader::new(stdout);
        let mut line = String::new();
        let mut sent = false;
        loop {
            line.clear();
            match reader.read_line(&mut line) {
                Ok(0) | Err(_) => break,
                Ok(_) => {
                    if !sent {
                        if let Some(rest) = line.trim_end().strip_prefix(&prefix) {
                            let _ = tx.send(rest.to_owned());
                            sent = true;
                        }
                    }
                }
            }
        }
        // Drain anything left so the child never blocks on a full pipe.
        let _ = std::io::copy(&mut reader.take(u64::MAX), &mut std::io::sink());
    });
    rx.recv_timeout(READY_TIMEOUT)
        .unwrap_or_else(|_| panic!("{name} did not print its readiness line in time"))
}

/// Runs `meshctl --socket SOCKET ARGS` (ignoring any `MESHD_SOCKET` of the environment),
/// bounded by [`RUN_TIMEOUT`].
pub fn meshctl(socket: &Path, args: &[&str]) -> Run {
    let mut cmd = Command::new(bin("meshctl"));
    cmd.arg("--socket")
        .arg(socket)
        .args(args)
        .env_remove("MESHD_SOCKET");
    run_bounded(cmd, &format!("meshctl {args:?}"))
}

/// meshd's `/stats` text (`name: value` lines) as a map; lines that are not a number are left out.
pub fn parse_stats(text: &str) -> std::collections::BTreeMap<String, u64> {
    text.lines()
        .filter_map(|l| {
            let (k, v) = l.split_once(": ")?;
            Some((k.to_owned(), v.parse().ok()?))
        })
        .collect()
}

/// Runs `meshstat ARGS` (ignoring any `MESHD_ADMIN` of the environment), bounded by
/// [`RUN_TIMEOUT`].
pub fn meshstat(args: &[&str]) -> Run {
    let mut cmd = Command::new(bin("meshstat"));
    cmd.args(args).env_remove("MESHD_ADMIN");
    run_bounded(cmd, &format!("meshstat {args:?}"))
}

/// [`meshstat`] that must exit 0.
pub fn meshstat_ok(args: &[&str]) -> Run {
    let r = meshstat(args);
    assert_eq!(r.code, 0, "meshstat {args:?} failed:\n{}", r.stderr);
    r
}

/// The first line `stdout` prints (`None` at EOF); the rest is drained in the background.
fn read_first_line(stdout: std::process::ChildStdout) -> Option<String> {
    let mut reader = BufReader::new(stdout);
    let mut line = String::new();
    let got = reader.read_line(&mut line).ok().filter(|n| *n > 0);
    std::thread::spawn(move || {
        let _ = std::io::copy(&mut reader, &mut std::io::sink());
    });
    got.map(|_| line)
}

/// A running demo app (examples/src/bin/demo-app.rs) on a free loopback port.
pub struct DemoApp {
    pub proc: Proc,
    pub addr: SocketAddr,
    pub dir: TempDir,
}

impl DemoApp {
    /// Starts `demo-app --color COLOR --listen 127.0.0.1:0 EXTRA...`.
    pub fn start(color: &str, extra: &[&str]) -> DemoApp {
        DemoApp::start_on(color, "127.0.0.1:0", extra)
    }

    /// Like [`DemoApp::start`] on `listen` (e.g. `127.0.0.3:0`); panics if it cannot bind.
    pub fn start_on(color: &str, listen: &str, extra: &[&str]) -> DemoApp {
        DemoApp::try_start_on(color, listen, extra)
            .unwrap_or_else(|e| panic!("demo-app on {listen}: {e}"))
    }

    /// Starts a demo app on `listen`; an error when it cannot bind there (e.g. a port taken).
    pub fn try_start_on(color: &str, listen: &str, extra: &[&str]) -> Result<DemoApp, String> {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut cmd = Command::new(bin("demo-app"));
        cmd.args(["--color", color, "--listen", listen]).args(extra);
        let (mut proc, stdout) = Proc::spawn(&format!("demo-app-{color}"), cmd, dir.path());
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(read_first_line(stdout));
        });
        let line = rx.recv_timeout(READY_TIMEOUT).ok().flatten();
        match line
            .as_deref()
            .and_then(|l| l.strip_prefix("listening on "))
        {
            Some(addr) => Ok(DemoApp {
                addr: addr.trim().parse().map_err(|e| format!("{addr}: {e}"))?,
                proc,
                dir,
            }),
            None => {
                proc.kill();
                Err(proc.stderr())
            }
        }
    }

    /// The app's own view of the peak concurrency it served (`/_demo/stats`).
    pub fn stats(&self) -> serde_json::Value {
        let body = http_get(&format!("http://{}/_demo/stats", self.addr)).body;
        serde_json::from_str(&body).expect("demo stats are JSON")
    }
}

/// A response as the tests look at it.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Reply {
    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// A blocking HTTP/1.1 client with a bounded timeout and no connection reuse, so each call in a
/// concurrent test is its own downstream connection.
pub fn agent() -> ureq::Agent {
    ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(20))
        .max_idle_connections(0)
        .build()
}

/// Sends a request and returns status, headers and body whatever the status. Transport errors
/// fail the test.
pub fn http(method: &str, url: &str, headers: &[(&str, &str)], body: Option<&str>) -> Reply {
    let mut req = agent().request(method, url);
    for (k, v) in headers {
        req = req.set(k, v);
    }
    let result = match body {
        Some(b) => req.send_string(b),
        None => req.call(),
    };
    let resp = match result {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(e) => panic!("{method} {url}: {e}"),
    };
    let status = resp.status();
    let headers = resp
        .headers_names()
        .into_iter()
        .filter_map(|n| resp.header(&n).map(|v| (n.clone(), v.to_owned())))
        .collect();
    let body = resp.into_string().unwrap_or_default();
    Reply {
        status,
        headers,
        body,
    }
}

/// `GET url`.
pub fn http_get(url: &str) -> Reply {
    http("GET", url, &[], None)
}

/// Polls `check` every 20 ms until it returns `Some`, failing the test after `timeout`.
/// Use only where the system offers no event to wait on (e.g. a counter reaching a value).
pub fn eventually<T>(what: &str, timeout: Duration, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = check() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A running meshd with its config directory, admin endpoint and control socket in a temp dir.
pub struct Meshd {
    pub proc: Proc,
    pub admin: SocketAddr,
    /// The config directory meshd watches.
    pub config_dir: PathBuf,
    /// The control socket path.
    pub socket: PathBuf,
    pub dir: TempDir,
}

/// A fresh temp dir holding a copy of `examples/walkthrough` (in `config/`), with every access
/// log path pointed at `<dir>/access.log`. Returns the dir and the config path.
pub fn walkthrough_config() -> (TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("config");
    std::fs::create_dir_all(&config).expect("mkdir config");
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/walkthrough");
    let log = dir.path().join("access.log");
    for entry in std::fs::read_dir(&src).expect("walkthrough dir") {
        let path = entry.expect("entry").path();
        if path.extension().is_some_and(|e| e == "json") {
            let text = std::fs::read_to_string(&path).expect("read");
            let text = text.replace("/dev/stdout", &log.display().to_string());
            std::fs::write(config.join(path.file_name().expect("name")), text).expect("write");
        }
    }
    (dir, config)
}

/// The state directory tests give meshd for `config_dir`: a sibling, `<config_dir>.meshd-state`.
pub fn state_dir_of(config_dir: &Path) -> PathBuf {
    let mut name = config_dir
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_default();
    name.push(".meshd-state");
    config_dir.with_file_name(name)
}

/// Removes every listener's `healthCheck` from the virtual nodes of a config directory (for
/// tests that count each request through a listener; health checks are tested on their own).
pub fn strip_health_checks(config: &Path) {
    for entry in std::fs::read_dir(config).expect("config dir").flatten() {
        let path = entry.path();
        let Ok(text) = std::fs::read_to_string(&path) else {
            continue;
        };
        let Ok(mut v) = serde_json::from_str::<serde_json::Value>(&text) else {
            continue;
        };
        let mut changed = false;
        if let Some(listeners) = v
            .pointer_mut("/spec/listeners")
            .and_then(|l| l.as_array_mut())
        {
            for l in listeners {
                changed |= l
                    .as_object_mut()
                    .is_some_and(|o| o.remove("healthCheck").is_some());
            }
        }
        if changed {
            std::fs::write(&path, v.to_string()).expect("rewrite");
        }
    }
}

impl Meshd {
    /// Starts meshd on `config_dir` with the admin endpoint on a free loopback port, plus
    /// `extra` flags (e.g. `--listen green=127.0.0.1:0 --app green=IP:PORT`). Waits until the
    /// admin endpoint answers `/ready`. Unless `extra` names one, the state directory is
    /// [`state_dir_of`] the config directory, so a restart on the same directory finds the
    /// journal and snapshot of the previous run, as `/var/lib/meshd` would.
    pub fn start(config_dir: &Path, extra: &[&str]) -> Meshd {
        Meshd::start_as(Command::new(bin("meshd")), config_dir, extra)
    }

    /// [`Meshd::start`] with `cmd` as the command line up to meshd's own flags: meshd itself,
    /// or a wrapper that ends by executing it (keeping its PID, which [`Proc`] kills).
    pub fn start_as(cmd: Command, config_dir: &Path, extra: &[&str]) -> Meshd {
        Meshd::start_full(cmd, config_dir, extra, None)
    }

    /// [`Meshd::start`] with `stdout` as meshd's standard output (where an access log to
    /// `/dev/stdout` goes) instead of a pipe the harness drains.
    pub fn start_with_stdout(config_dir: &Path, extra: &[&str], stdout: Stdio) -> Meshd {
        Meshd::start_full(Command::new(bin("meshd")), config_dir, extra, Some(stdout))
    }

    fn start_full(
        mut cmd: Command,
        config_dir: &Path,
        extra: &[&str],
        stdout: Option<Stdio>,
    ) -> Meshd {
        let dir = tempfile::tempdir().expect("tempdir");
        let addr_file = dir.path().join("admin.addr");
        let socket = dir.path().join("meshd.sock");
        cmd.arg("--config-dir")
            .arg(config_dir)
            .args(["--admin", "127.0.0.1:0", "--admin-address-path"])
            .arg(&addr_file)
            .arg("--socket")
            .arg(&socket);
        if !extra.contains(&"--state-dir") {
            cmd.arg("--state-dir").arg(state_dir_of(config_dir));
        }
        cmd.args(extra).env("MESHD_LOG", "info,meshd=debug");
        let mut proc = match stdout {
            Some(stdout) => Proc::spawn_with_stdout("meshd", cmd, dir.path(), stdout),
            None => {
                let (proc, stdout) = Proc::spawn("meshd", cmd, dir.path());
                // meshd's stdout may carry access logs: keep draining it.
                std::thread::spawn(move || {
                    let _ = std::io::copy(&mut BufReader::new(stdout), &mut std::io::sink());
                });
                proc
            }
        };
        let admin: SocketAddr =
            eventually("meshd to write its admin address", READY_TIMEOUT, || {
                if let Some(code) = proc.wait_exit(Duration::from_millis(1)) {
                    panic!(
                        "meshd exited with {code} before it was ready:\n{}",
                        proc.stderr()
                    );
                }
                std::fs::read_to_string(&addr_file)
                    .ok()
                    .and_then(|s| s.trim().parse().ok())
            });
        let m = Meshd {
            proc,
            admin,
            config_dir: config_dir.to_owned(),
            socket,
            dir,
        };
        assert_eq!(http_get(&m.url("/ready")).status, 200);
        m
    }

    /// `http://<admin><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.admin)
    }

    /// The address of a listener, by its `/listeners` name (`green-ingress`, `ingress-gw-gateway`,
    /// `green-egress`).
    pub fn listener(&self, name: &str) -> SocketAddr {
        let body = http_get(&self.url("/listeners")).body;
        body.lines()
            .find_map(|l| l.strip_prefix(&format!("{name}::")))
            .unwrap_or_else(|| panic!("no listener {name} in:\n{body}"))
            .parse()
            .expect("listener address")
    }

    /// Every stat, parsed from `/stats`.
    pub fn stats(&self) -> std::collections::BTreeMap<String, u64> {
        parse_stats(&http_get(&self.url("/stats")).body)
    }

    /// One stat (0 when absent, as Envoy's lazily created counters read).
    pub fn stat(&self, name: &str) -> u64 {
        self.stats().get(name).copied().unwrap_or(0)
    }
}

// ==== Request-path helpers (tests/tests/requestpath.rs): a one-node config, a scripted raw-TCP
// upstream, a gate, signals. In their own file to keep this one short.
mod requestpath;
pub use requestpath::*;
// ==== end of request-path helpers ==============================================================

// ==== Config-path helpers (tests/tests/config_*.rs): green in front of a demo app, a probe loop.
mod green;
pub use green::*;
// ==== end of config-path helpers ===============================================================

// ==== meshd with a private /etc/hosts (several hosts in one cluster) ===========================
mod hosts;
pub use hosts::*;
// ==== end of hosts helpers =====================================================================

// ==== A service with two replicas behind one name, and its caller (tests/tests/resilience.rs) ==
pub mod resilience;

// ==== The walkthrough plus a caller node `front` (egress listener tests) =======================
pub mod egress;

// ==== VMs as network namespaces (examples/vms/vms.sh) with a DNS server: tests/tests/vms_*.rs ===
pub mod vms;

// ==== The Istio experiments on namespace VMs (tests/tests/istio_*.rs) =========================
pub mod istio;
