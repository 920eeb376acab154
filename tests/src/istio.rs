//! The Istio experiments on namespace VMs (tests/tests/istio_*.rs): one VM per client and per
//! server replica, every VM's meshd started as the systemd unit starts it from the same config
//! directory, which holds Istio YAML: a `ServiceEntry` for [`HOST`] whose `workloadSelector`
//! picks the servers' `WorkloadEntry`s, a `WorkloadEntry` per client, and the experiment's
//! `DestinationRule` (and `VirtualService`). Each meshd serves the WorkloadEntries whose address
//! is its VM's.
//!
//! The servers' apps are [`GatedApp`]s: scripted HTTP/1.1 upstreams on the VM's
//! `127.0.0.1:<port>` (where meshd's inbound cluster sends) that hold every request until the
//! test opens their gate, and count what they hold. The clients are threads inside the client
//! VMs calling the egress listener `127.0.0.1:15001` with `Host: pyserver` ([`Client`]).

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::vms::{in_vm, try_http, VmMeshd, Vms, EGRESS};
use crate::{Gate, RawConn, RawUpstream, Reply};

/// The service's host (the ServiceEntry's `hosts`), as in the seed's `pyserver`.
pub const HOST: &str = "pyserver";
/// The service port (`ports[0].number`): the outbound clusters are `outbound|8080|…|pyserver`.
pub const PORT: u16 = 8080;
/// The client's outbound cluster for the whole service.
pub const OUTBOUND: &str = "outbound|8080||pyserver";

/// A scripted app in a VM on `127.0.0.1:<port>`: every request is held until the gate opens
/// (bounded by the harness's read timeout), then answered `200` with the app's name.
pub struct GatedApp {
    ns: String,
    up: Option<RawUpstream>,
    /// The port it listens on (inside its VM).
    pub port: u16,
    /// The gate its requests wait on.
    pub gate: Gate,
    held: Arc<AtomicUsize>,
    peak: Arc<AtomicUsize>,
    served: Arc<AtomicUsize>,
}

impl GatedApp {
    /// Starts it in VM `i`, answering `name`. A gate opened already lets every request through.
    pub fn start(vms: &Vms, i: usize, name: &str, gate: Gate) -> GatedApp {
        let held = Arc::new(AtomicUsize::new(0));
        let peak = Arc::new(AtomicUsize::new(0));
        let served = Arc::new(AtomicUsize::new(0));
        let ns = vms.ns(i);
        let answer = format!(
            "HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n{name}\n",
            name.len() + 1
        );
        let up = {
            let (gate, held, peak, served) =
                (gate.clone(), held.clone(), peak.clone(), served.clone());
            in_vm(&ns, move || {
                RawUpstream::start(move |c: &mut RawConn| {
                    while c.next_request().is_some() {
                        let now = held.fetch_add(1, Ordering::SeqCst) + 1;
                        peak.fetch_max(now, Ordering::SeqCst);
                        let open = gate.wait();
                        held.fetch_sub(1, Ordering::SeqCst);
                        if !open || !c.write(answer.as_bytes()) {
                            return false;
                        }
                        served.fetch_add(1, Ordering::SeqCst);
                    }
                    false
                })
            })
        };
        GatedApp {
            ns,
            port: up.addr.port(),
            up: Some(up),
            gate,
            held,
            peak,
            served,
        }
    }

    /// Requests it holds now.
    pub fn held(&self) -> usize {
        self.held.load(Ordering::SeqCst)
    }

    /// The most requests it ever held at once.
    pub fn peak(&self) -> usize {
        self.peak.load(Ordering::SeqCst)
    }

    /// Requests it answered.
    pub fn served(&self) -> usize {
        self.served.load(Ordering::SeqCst)
    }
}

impl Drop for GatedApp {
    fn drop(&mut self) {
        // Its accept loop is woken by a connection from inside its VM.
        if let Some(up) = self.up.take() {
            in_vm(&self.ns, move || drop(up));
        }
    }
}

/// A server replica of [`HOST`]: a WorkloadEntry with its VM's address and its app's port.
pub struct Server {
    /// The WorkloadEntry's name.
    pub name: String,
    /// Its VM's address.
    pub addr: Ipv4Addr,
    /// Its app's port (`ports.http`).
    pub port: u16,
    /// Its `version` label.
    pub version: String,
}

impl Server {
    /// Server `name` in VM `i` of `vms`, its app on `port`, labelled `version`.
    pub fn in_vm(vms: &Vms, i: usize, name: &str, port: u16, version: &str) -> Server {
        Server {
            name: name.into(),
            addr: vms.addr(i),
            port,
            version: version.into(),
        }
    }
}

/// Writes the experiment's config directory under `dir` and returns it: the ServiceEntry for
/// [`HOST`] (port 8080 `http`, selecting `app: pyserver`), a WorkloadEntry per server and per
/// client (`client-1`, … with `app: client`), and `extra` (more YAML documents: the
/// DestinationRule, a VirtualService).
pub fn write_config(dir: &Path, servers: &[Server], clients: &[Ipv4Addr], extra: &str) -> PathBuf {
    let config = dir.join("istio-config");
    std::fs::create_dir_all(&config).expect("mkdir");
    let mut yaml = format!(
        "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {{ name: {HOST} }}\n\
         spec:\n  hosts: [{HOST}]\n  ports: [{{ number: {PORT}, name: http, protocol: HTTP }}]\n  \
         resolution: STATIC\n  workloadSelector: {{ labels: {{ app: {HOST} }} }}\n"
    );
    for s in servers {
        yaml.push_str(&format!(
            "---\napiVersion: networking.istio.io/v1\nkind: WorkloadEntry\nmetadata: {{ name: {} }}\n\
             spec: {{ address: {}, labels: {{ app: {HOST}, version: {} }}, ports: {{ http: {} }} }}\n",
            s.name, s.addr, s.version, s.port
        ));
    }
    for (i, a) in clients.iter().enumerate() {
        yaml.push_str(&format!(
            "---\napiVersion: networking.istio.io/v1\nkind: WorkloadEntry\nmetadata: {{ name: client-{} }}\n\
             spec: {{ address: {a}, labels: {{ app: client }} }}\n",
            i + 1
        ));
    }
    std::fs::write(config.join("pyserver.yaml"), yaml).expect("write");
    std::fs::write(config.join("policy.yaml"), extra).expect("write");
    config
}

/// A DestinationRule for [`HOST`] with `traffic_policy` (YAML, indented for `trafficPolicy:`).
pub fn destination_rule(traffic_policy: &str) -> String {
    format!(
        "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {{ name: {HOST} }}\n\
         spec:\n  host: {HOST}\n  trafficPolicy:\n{traffic_policy}"
    )
}

/// meshd in VM `i` as the unit starts it, with Istio's JSON access log in the VM's directory.
pub fn meshd(vms: &Vms, i: usize, config: &Path) -> VmMeshd {
    let log = access_log_path(vms, i);
    let log = log.display().to_string();
    vms.meshd(
        i,
        config,
        &[],
        &["--access-log", &log, "--access-log-encoding", "JSON"],
    )
}

/// Where [`meshd`] in VM `i` writes its access log.
pub fn access_log_path(vms: &Vms, i: usize) -> PathBuf {
    vms.dir.path().join(format!("vm-{i}-access.log"))
}

/// The access log of VM `i`'s meshd, once it has `n` lines (bounded wait), one JSON object each.
pub fn access_log(vms: &Vms, i: usize, n: usize) -> Vec<serde_json::Value> {
    let path = access_log_path(vms, i);
    crate::eventually(
        &format!("{n} access-log lines in VM {i}"),
        Duration::from_secs(10),
        || {
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            let lines: Vec<serde_json::Value> = text
                .lines()
                .map(|l| serde_json::from_str(l).expect("JSON access-log line"))
                .collect();
            (lines.len() >= n).then_some(lines)
        },
    )
}

/// What a client request got: status, `x-envoy-overloaded`, body.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Got {
    /// The status (0: no answer).
    pub status: u16,
    /// Whether `x-envoy-overloaded` was set.
    pub overloaded: bool,
    /// The body (the app's name for a 200).
    pub body: String,
}

/// An app in a client VM: each [`Client::fire`] sends one `GET /<path>` with `Host: pyserver`
/// through the VM's egress listener on its own thread (its own connection).
pub struct Client {
    ns: String,
    answers: Arc<Mutex<Vec<Got>>>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Client {
    /// The app of VM `i`.
    pub fn new(vms: &Vms, i: usize) -> Client {
        Client {
            ns: vms.ns(i),
            answers: Arc::default(),
            threads: Vec::new(),
        }
    }

    /// Sends one request in the background.
    pub fn fire(&mut self, path: &str) {
        let (ns, answers) = (self.ns.clone(), self.answers.clone());
        let url = format!("http://{EGRESS}/{path}");
        self.threads.push(std::thread::spawn(move || {
            let got = in_vm(&ns, || {
                let agent = ureq::AgentBuilder::new()
                    .timeout(Duration::from_secs(40))
                    .build();
                match try_http(&agent, &url, Some(HOST)) {
                    Ok(r) => got(&r),
                    Err(e) => Got {
                        status: 0,
                        overloaded: false,
                        body: e,
                    },
                }
            });
            answers.lock().expect("answers").push(got);
        }));
    }

    /// Sends `n` requests at once.
    pub fn burst(&mut self, n: usize) {
        for k in 0..n {
            self.fire(&format!("r{k}"));
        }
    }

    /// How many requests were answered so far.
    pub fn answered(&self) -> usize {
        self.answers.lock().expect("answers").len()
    }

    /// The answers so far, sorted.
    pub fn answers(&self) -> Vec<Got> {
        let mut a = self.answers.lock().expect("answers").clone();
        a.sort();
        a
    }

    /// Waits for every request (each bounded by its client timeout) and returns the answers.
    pub fn finish(&mut self) -> Vec<Got> {
        for t in self.threads.drain(..) {
            t.join().expect("client thread");
        }
        self.answers()
    }
}

fn got(r: &Reply) -> Got {
    Got {
        status: r.status,
        overloaded: r.header("x-envoy-overloaded") == Some("true"),
        body: r.body.trim().to_owned(),
    }
}

/// `n` answers `status` (with `overloaded` as given).
pub fn count(answers: &[Got], status: u16, overloaded: bool) -> usize {
    answers
        .iter()
        .filter(|g| g.status == status && g.overloaded == overloaded)
        .count()
}

/// A gauge or counter of `cluster` in `m`'s `/stats` (`cluster.<cluster>.<stat>`).
pub fn cluster_stat(m: &VmMeshd, cluster: &str, stat: &str) -> u64 {
    m.stat(&format!("cluster.{cluster}.{stat}"))
}

/// A demo app in VM `i` on the VM's `127.0.0.1:<free port>` (where an inbound cluster sends),
/// with `extra` flags; returns it and its port once it listens.
pub fn local_demo_app(vms: &Vms, i: usize, color: &str, extra: &[&str]) -> (crate::Proc, u16) {
    let mut cmd = std::process::Command::new(crate::bin("demo-app"));
    cmd.args(["--color", color, "--listen", "127.0.0.1:0"])
        .args(extra);
    let (proc, stdout) = vms.spawn(i, &format!("demo-app-{color}"), cmd);
    let addr = crate::read_ready_line(&format!("demo-app {color}"), stdout, "listening on ");
    let addr: std::net::SocketAddr = addr.trim().parse().expect("demo-app address");
    (proc, addr.port())
}
