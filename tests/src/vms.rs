//! VMs for the tests: network namespaces made by `examples/vms/vms.sh` (the script people use),
//! joined by a bridge, with addresses from 198.18.0.0/15 and a dnsmasq serving their zone. A test
//! starts real processes in them ([`Vms::spawn`], [`Vms::demo_app`], [`Vms::meshd`], started as
//! the systemd unit starts meshd) and reaches into a VM from a thread that entered the VM's
//! network namespace ([`in_vm`]): its sockets are the VM's, so `127.0.0.1:9901` is that VM's
//! meshd admin.
//!
//! Everything is torn down when [`Vms`] is dropped, also when the test panics: `vms.sh down`
//! kills what still runs inside the namespaces by PID and deletes the namespaces and their
//! `/etc/netns` directories by name. The host's interfaces, routes and DNS are never touched.
//! Without root, `ip` or dnsmasq, [`Vms::up`] fails the test with the script's one-line reason.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{ChildStdout, Command};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::{bin, eventually, read_ready_line, run_bounded, Proc, Reply, TempDir};

/// How long a VM's meshd may take to answer `/ready` before the test fails.
pub const VM_READY_TIMEOUT: Duration = Duration::from_secs(20);
/// meshd's admin address inside its VM (the default, as the systemd unit has it).
pub const ADMIN: &str = "127.0.0.1:9901";
/// meshd's egress listener inside its VM (the default).
pub const EGRESS: &str = "127.0.0.1:15001";

/// `examples/vms/vms.sh`.
pub fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/vms/vms.sh")
}

/// `bash vms.sh ARGS`, bounded.
pub fn vms_sh(args: &[&str]) -> crate::Run {
    let mut cmd = Command::new("bash");
    cmd.arg(script()).args(args);
    run_bounded(cmd, &format!("vms.sh {args:?}"))
}

/// An ID no other live test uses: this process's PID and a counter.
fn fresh_id() -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    format!(
        "t{:x}x{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::SeqCst)
    )
}

/// N VMs and their zone's DNS server.
pub struct Vms {
    id: String,
    addrs: Vec<Ipv4Addr>,
    /// The DNS server's address (on the switch).
    pub dns: Ipv4Addr,
    /// The zone (`mesh.test`): every VM I is `vmI.<zone>`.
    pub zone: String,
    /// Per-VM directories (`vm-I/etc/meshd`, ...) and process logs.
    pub dir: TempDir,
}

impl Vms {
    /// Creates `n` VMs with an ID unique to this process and call. Fails the test, with the
    /// script's reason, when it cannot (not root, no `ip`, no dnsmasq).
    pub fn up(n: usize) -> Vms {
        let id = fresh_id();
        // Anything left with this ID belongs to a dead process that had this PID.
        let _ = vms_sh(&["down", "--id", &id]);
        let r = vms_sh(&["up", "--id", &id, "--count", &n.to_string()]);
        assert_eq!(r.code, 0, "vms.sh up failed: {}", r.stderr.trim());
        let mut vms = Vms {
            id,
            addrs: Vec::new(),
            dns: Ipv4Addr::UNSPECIFIED,
            zone: String::new(),
            dir: tempfile::tempdir().expect("tempdir"),
        };
        for line in r.stdout.lines() {
            let f: Vec<&str> = line.split_whitespace().collect();
            match f.as_slice() {
                ["dns", addr, zone] => {
                    vms.dns = addr.parse().expect("dns address");
                    vms.zone = (*zone).to_owned();
                }
                ["vm", _, _, addr] => vms.addrs.push(addr.parse().expect("vm address")),
                _ => panic!("unexpected line from vms.sh up: {line}"),
            }
        }
        assert_eq!(vms.addrs.len(), n, "vms.sh up printed:\n{}", r.stdout);
        vms
    }

    /// The ID the namespaces are named after (`mvm-<id>-<i>`).
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The network namespace of VM `i` (1-based).
    pub fn ns(&self, i: usize) -> String {
        assert!((1..=self.addrs.len()).contains(&i), "no VM {i}");
        format!("mvm-{}-{i}", self.id)
    }

    /// VM `i`'s address.
    pub fn addr(&self, i: usize) -> Ipv4Addr {
        self.addrs[i - 1]
    }

    /// Makes `name` resolve to exactly `addrs` (none: NXDOMAIN); returns once the DNS server
    /// answers so.
    pub fn dns_set(&self, name: &str, addrs: &[Ipv4Addr]) {
        let addrs: Vec<String> = addrs.iter().map(ToString::to_string).collect();
        let mut args = vec!["dns-set", "--id", &self.id, name];
        args.extend(addrs.iter().map(String::as_str));
        let r = vms_sh(&args);
        assert_eq!(r.code, 0, "vms.sh dns-set: {}", r.stderr.trim());
    }

    /// Stops the zone's DNS server (queries then fail: the port is closed).
    pub fn dns_stop(&self) {
        let r = vms_sh(&["dns-stop", "--id", &self.id]);
        assert_eq!(r.code, 0, "vms.sh dns-stop: {}", r.stderr.trim());
    }

    /// Starts the zone's DNS server again.
    pub fn dns_start(&self) {
        let r = vms_sh(&["dns-start", "--id", &self.id]);
        assert_eq!(r.code, 0, "vms.sh dns-start: {}", r.stderr.trim());
    }

    /// `cmd` as it runs in VM `i` (`ip netns exec`, which mounts the VM's /etc/netns files and
    /// then executes the command: the PID is the command's).
    pub fn command(&self, i: usize, cmd: &Command) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.ns(i)])
            .arg(cmd.get_program())
            .args(cmd.get_args());
        for (k, v) in cmd.get_envs() {
            match v {
                Some(v) => c.env(k, v),
                None => c.env_remove(k),
            };
        }
        if let Some(d) = cmd.get_current_dir() {
            c.current_dir(d);
        }
        c
    }

    /// Runs `program args` in VM `i` to its end (bounded): as root, or with `as_app` as uid and
    /// gid 65534 (an app, which `meshctl capture` redirects while root, meshd's uid here, is not).
    pub fn run(&self, i: usize, as_app: bool, program: &str, args: &[&str]) -> crate::Run {
        let mut cmd = if as_app {
            let mut c = Command::new("setpriv");
            c.args([
                "--reuid",
                "65534",
                "--regid",
                "65534",
                "--clear-groups",
                program,
            ]);
            c
        } else {
            Command::new(program)
        };
        cmd.args(args);
        crate::run_bounded(self.command(i, &cmd), program)
    }

    /// Starts `cmd` in VM `i`: a [`Proc`] (killed by PID when dropped; its stderr in a log that
    /// a failing test prints) and its stdout.
    pub fn spawn(&self, i: usize, name: &str, cmd: Command) -> (Proc, ChildStdout) {
        Proc::spawn(
            &format!("{name}-vm{i}"),
            self.command(i, &cmd),
            self.dir.path(),
        )
    }

    /// A demo app in VM `i` on `<addr>:<port>`, ready (it printed its address).
    pub fn demo_app(&self, i: usize, color: &str, port: u16) -> (Proc, SocketAddr) {
        let listen = SocketAddr::from((self.addr(i), port));
        let mut cmd = Command::new(bin("demo-app"));
        cmd.args(["--color", color, "--listen", &listen.to_string()]);
        let (proc, stdout) = self.spawn(i, &format!("demo-app-{color}"), cmd);
        let addr = read_ready_line(&format!("demo-app {color}"), stdout, "listening on ");
        (proc, addr.trim().parse().expect("demo-app address"))
    }

    /// meshd in VM `i` as the systemd unit starts it (`--config-dir /etc/meshd --state-dir
    /// /var/lib/meshd`, admin on the VM's loopback `127.0.0.1:9901`, its socket in the VM's
    /// runtime directory), with the VM's own copies of those directories under `dir/vm-I/`.
    /// `config` is copied there first, as rsync or a config-management tool would. `nodes` are
    /// the nodes it serves (`--node`); `extra` are more flags (e.g. `--dns-refresh 200ms`).
    /// Returns once its admin answers `/ready` inside the VM.
    pub fn meshd(&self, i: usize, config: &Path, nodes: &[&str], extra: &[&str]) -> VmMeshd {
        let root = self.dir.path().join(format!("vm-{i}"));
        let config_dir = root.join("etc/meshd");
        let state_dir = root.join("var/lib/meshd");
        let run_dir = root.join("run/meshd");
        for d in [&config_dir, &state_dir, &run_dir] {
            std::fs::create_dir_all(d).expect("mkdir");
        }
        for entry in std::fs::read_dir(config).expect("config dir").flatten() {
            if entry.path().is_file() {
                std::fs::copy(entry.path(), config_dir.join(entry.file_name())).expect("copy");
            }
        }
        let mut cmd = Command::new(bin("meshd"));
        cmd.arg("--config-dir")
            .arg(&config_dir)
            .arg("--state-dir")
            .arg(&state_dir);
        for n in nodes {
            cmd.args(["--node", n]);
        }
        cmd.args(extra)
            .env("MESHD_SOCKET", run_dir.join("meshd.sock"))
            .env("MESHD_LOG", "info")
            .env_remove("MESHD_ADMIN")
            .env_remove("MESHD_CONFIG_DIR")
            .env_remove("MESHD_NODE")
            .env_remove("JOURNAL_STREAM");
        let (mut proc, stdout) = self.spawn(i, "meshd", cmd);
        std::thread::spawn(move || {
            let _ = std::io::copy(&mut std::io::BufReader::new(stdout), &mut std::io::sink());
        });
        let m = VmMeshd {
            ns: self.ns(i),
            config_dir,
            proc: None,
        };
        eventually(
            &format!("meshd in VM {i} to answer /ready"),
            VM_READY_TIMEOUT,
            || {
                if let Some(code) = proc.wait_exit(Duration::from_millis(1)) {
                    panic!("meshd in VM {i} exited with {code}:\n{}", proc.stderr());
                }
                m.try_get("/ready").filter(|r| r.status == 200).map(|_| ())
            },
        );
        VmMeshd {
            proc: Some(proc),
            ..m
        }
    }
}

impl Drop for Vms {
    fn drop(&mut self) {
        let r = vms_sh(&["down", "--id", &self.id]);
        if r.code != 0 {
            let msg = format!("vms.sh down --id {}: {}", self.id, r.stderr.trim());
            if std::thread::panicking() {
                eprintln!("{msg}");
            } else {
                panic!("{msg}");
            }
        }
    }
}

/// Runs `f` on a thread inside network namespace `ns` (`/run/netns/<ns>`): every socket it opens
/// is the VM's. The calling thread stays where it is.
pub fn in_vm<T: Send>(ns: &str, f: impl FnOnce() -> T + Send) -> T {
    std::thread::scope(|s| {
        s.spawn(|| {
            let file = std::fs::File::open(format!("/run/netns/{ns}"))
                .unwrap_or_else(|e| panic!("open /run/netns/{ns}: {e}"));
            nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET)
                .unwrap_or_else(|e| panic!("setns into {ns}: {e}"));
            f()
        })
        .join()
        .unwrap_or_else(|p| std::panic::resume_unwind(p))
    })
}

/// A request with a short timeout; `None` when it could not be sent or answered.
pub fn try_http(agent: &ureq::Agent, url: &str, host: Option<&str>) -> Result<Reply, String> {
    let mut req = agent.get(url);
    if let Some(h) = host {
        req = req.set("Host", h);
    }
    let resp = match req.call() {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(e) => return Err(e.to_string()),
    };
    let status = resp.status();
    let headers = resp
        .headers_names()
        .into_iter()
        .filter_map(|n| resp.header(&n).map(|v| (n.clone(), v.to_owned())))
        .collect();
    let body = resp.into_string().map_err(|e| e.to_string())?;
    Ok(Reply {
        status,
        headers,
        body,
    })
}

/// A meshd running in a VM.
pub struct VmMeshd {
    ns: String,
    /// Its config directory (the VM's `/etc/meshd`).
    pub config_dir: PathBuf,
    proc: Option<Proc>,
}

impl VmMeshd {
    /// The process.
    pub fn proc(&mut self) -> &mut Proc {
        self.proc.as_mut().expect("started")
    }

    /// What meshd logged so far (its stderr).
    pub fn log(&self) -> String {
        self.proc.as_ref().map(Proc::stderr).unwrap_or_default()
    }

    /// `GET http://127.0.0.1:9901<path>` inside the VM.
    pub fn try_get(&self, path: &str) -> Option<Reply> {
        let url = format!("http://{ADMIN}{path}");
        in_vm(&self.ns, || {
            let agent = ureq::AgentBuilder::new()
                .timeout(Duration::from_secs(5))
                .build();
            try_http(&agent, &url, None).ok()
        })
    }

    /// `GET` on the admin that must answer.
    pub fn get(&self, path: &str) -> Reply {
        self.try_get(path)
            .unwrap_or_else(|| panic!("meshd admin in {} did not answer {path}", self.ns))
    }

    /// Every stat, from `/stats`.
    pub fn stats(&self) -> BTreeMap<String, u64> {
        crate::parse_stats(&self.get("/stats").body)
    }

    /// One stat (0 when absent).
    pub fn stat(&self, name: &str) -> u64 {
        self.stats().get(name).copied().unwrap_or(0)
    }

    /// The hosts of `cluster` as `/clusters` lists them, sorted.
    pub fn hosts(&self, cluster: &str) -> Vec<SocketAddr> {
        let prefix = format!("{cluster}::");
        let mut hosts: Vec<SocketAddr> = self
            .get("/clusters")
            .body
            .lines()
            .filter_map(|l| l.strip_prefix(&prefix))
            .filter_map(|l| l.split_once("::"))
            .filter_map(|(addr, _)| addr.parse().ok())
            .collect();
        hosts.sort();
        hosts.dedup();
        hosts
    }

    /// The name of the one cluster whose name starts with `prefix`.
    pub fn cluster(&self, prefix: &str) -> String {
        let body = self.get("/clusters").body;
        let mut names: Vec<&str> = body
            .lines()
            .filter_map(|l| l.split("::").next())
            .filter(|n| n.starts_with(prefix))
            .collect();
        names.dedup();
        assert_eq!(names.len(), 1, "clusters named {prefix}*: {body}");
        names[0].to_owned()
    }
}

/// A steady load from inside a VM: one client thread sending `GET url` with `Host: host` on a
/// keep-alive connection, one request every 2 ms or so, until stopped (bounded by 60,000
/// requests and 120 s). Counts answers per `x-demo-color` and keeps every failure (transport error or a
/// status other than 200).
pub struct Load {
    stop: Arc<std::sync::atomic::AtomicBool>,
    ok: Arc<AtomicU64>,
    colors: Arc<Mutex<BTreeMap<String, u64>>>,
    thread: Option<std::thread::JoinHandle<Vec<String>>>,
}

/// What a [`Load`] saw.
#[derive(Debug)]
pub struct LoadResult {
    /// Requests answered 200.
    pub ok: u64,
    /// Answers per replica color.
    pub colors: BTreeMap<String, u64>,
    /// Every failed request: what went wrong.
    pub failures: Vec<String>,
}

impl Load {
    /// Starts the client thread in namespace `ns`.
    pub fn start(ns: &str, url: &str, host: &str) -> Load {
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let ok = Arc::new(AtomicU64::new(0));
        let colors = Arc::new(Mutex::new(BTreeMap::new()));
        let (s, o, c) = (stop.clone(), ok.clone(), colors.clone());
        let (ns, url, host) = (ns.to_owned(), url.to_owned(), host.to_owned());
        let thread = std::thread::spawn(move || {
            in_vm(&ns, || {
                let agent = ureq::AgentBuilder::new()
                    .timeout(Duration::from_secs(10))
                    .build();
                let mut failures = Vec::new();
                let deadline = std::time::Instant::now() + Duration::from_secs(120);
                for _ in 0..60_000 {
                    if s.load(Ordering::SeqCst) || std::time::Instant::now() > deadline {
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(2));
                    match try_http(&agent, &url, Some(&host)) {
                        Ok(r) if r.status == 200 => {
                            let color = r.header("x-demo-color").unwrap_or("?").to_owned();
                            *c.lock().expect("colors").entry(color).or_default() += 1;
                            o.fetch_add(1, Ordering::SeqCst);
                        }
                        Ok(r) => failures.push(format!("status {}: {}", r.status, r.body.trim())),
                        Err(e) => failures.push(e),
                    }
                }
                failures
            })
        });
        Load {
            stop,
            ok,
            colors,
            thread: Some(thread),
        }
    }

    /// Requests answered 200 so far.
    pub fn ok(&self) -> u64 {
        self.ok.load(Ordering::SeqCst)
    }

    /// Answers per color so far.
    pub fn colors(&self) -> BTreeMap<String, u64> {
        self.colors.lock().expect("colors").clone()
    }

    /// Waits (bounded) until `n` more requests than now were answered 200.
    pub fn wait_more(&self, n: u64) {
        let base = self.ok();
        eventually(
            &format!("{n} more requests answered"),
            Duration::from_secs(30),
            || (self.ok() >= base + n).then_some(()),
        );
    }

    /// Stops the client and returns what it saw.
    pub fn finish(mut self) -> LoadResult {
        self.stop.store(true, Ordering::SeqCst);
        let failures = self
            .thread
            .take()
            .map(|t| t.join().expect("load thread"))
            .unwrap_or_default();
        LoadResult {
            ok: self.ok(),
            colors: self.colors(),
            failures,
        }
    }
}

impl Drop for Load {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
