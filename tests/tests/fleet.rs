//! The fleet view, on loopback: two meshd, each serving one node of one config directory (node
//! `a` at 127.0.0.2, node `b` at 127.0.0.3, as two VMs would), each with a read-only stats
//! listener (`--stats-listen`) on its node's address and one port for the fleet.
//!
//! - The stats listener serves `/stats` (every query option), `/stats/prometheus`, `/clusters`
//!   and `/ready`; `POST /reset_counters` gets 405 and resets nothing, `/config_dump` 404;
//!   the admin's browser and DNS-rebinding refusals hold there too.
//! - `meshstat --fleet` over a list file and over the config directory reads exactly what each
//!   meshd's own `/stats` says, each line naming node and address; `why` names which limit on
//!   which meshd refused; an unreachable or unlocatable node is one stderr line and exit 1.
//! - Debian's Prometheus scrapes both (targets from `meshstat --fleet DIR --targets`) and its
//!   HTTP API returns the same breaker counters as each meshd's `/stats` (fleet/prometheus.rs).
//! - Across namespace VMs, `meshstat --fleet` finds a node's replicas through the zone's DNS
//!   (fleet/vms.rs).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use mesh_tests::{
    bin, eventually, http, http_get, meshstat, meshstat_ok, run_bounded, Gate, Meshd, RawUpstream,
    TempDir,
};
use serde_json::Value;

#[path = "fleet/prometheus.rs"]
mod prometheus;
#[path = "fleet/vms.rs"]
mod vms;

/// meshd's limits on each node: one connection, one pending request.
const POOL: &str = r#"{"http": {"maxConnections": 1, "maxPendingRequests": 1}}"#;

/// The ingress cluster of node `n`.
fn cluster(n: &str) -> String {
    format!("cds_ingress_m_{n}_http_8080")
}

/// Writes the fleet's config directory: mesh `m`, node `a` (hostname 127.0.0.2) and node `b`
/// (127.0.0.3), both with [`POOL`]; `extra` adds more files (name, JSON).
fn write_config(dir: &Path, extra: &[(&str, Value)]) {
    std::fs::create_dir_all(dir).expect("mkdir config");
    std::fs::write(dir.join("mesh.json"), r#"{"meshName": "m", "spec": {}}"#).expect("mesh");
    let pool: Value = serde_json::from_str(POOL).expect("pool");
    for (name, ip) in [("a", "127.0.0.2"), ("b", "127.0.0.3")] {
        let node = serde_json::json!({
            "meshName": "m",
            "virtualNodeName": name,
            "spec": {
                "listeners": [{"portMapping": {"port": 8080, "protocol": "http"},
                               "connectionPool": pool}],
                "serviceDiscovery": {"dns": {"hostname": ip}}
            }
        });
        std::fs::write(dir.join(format!("vn-{name}.json")), node.to_string()).expect("node");
    }
    for (file, v) in extra {
        std::fs::write(dir.join(file), v.to_string()).expect("extra");
    }
}

/// One "VM": a meshd serving one node in front of an upstream held by a gate.
struct Vm {
    name: &'static str,
    meshd: Meshd,
    gate: Gate,
    _upstream: RawUpstream,
    /// The stats listener's bound address, from the admin's `/listeners`.
    stats: SocketAddr,
}

impl Vm {
    /// meshd serving node `name` (its own copy of the fleet's config directory, in `root`) with
    /// `--stats-listen stats_listen`.
    fn start(name: &'static str, root: &Path, stats_listen: &str) -> Vm {
        let config = root.join(format!("config-{name}"));
        write_config(&config, &[]);
        let gate = Gate::default();
        let g = gate.clone();
        let upstream = RawUpstream::start(move |conn| {
            while conn.next_request().is_some() {
                g.wait();
                if !conn.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok") {
                    return false;
                }
            }
            false
        });
        let listen = format!("{name}=127.0.0.1:0");
        let app = format!("{name}={}", upstream.addr);
        let meshd = Meshd::start(
            &config,
            &[
                "--node",
                name,
                "--listen",
                &listen,
                "--app",
                &app,
                "--stats-listen",
                stats_listen,
            ],
        );
        let stats = meshd.listener("stats");
        Vm {
            name,
            meshd,
            gate,
            _upstream: upstream,
            stats,
        }
    }

    /// `http://<stats listener><path>`.
    fn stats_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.stats)
    }

    /// `cluster.<this node's ingress cluster>.<stat>` from the admin's `/stats`.
    fn cluster_stat(&self, stat: &str) -> u64 {
        self.meshd
            .stat(&format!("cluster.{}.{stat}", cluster(self.name)))
    }

    /// Makes this node's pool refuse exactly `k` requests: one request holds the connection
    /// (the upstream waits on the gate), one waits in the queue, `k` more get 503 at once; then
    /// the gate opens and the first two get 200.
    fn refuse(&self, k: usize) {
        let url = format!(
            "http://{}/",
            self.meshd.listener(&format!("{}-ingress", self.name))
        );
        let spawn = |u: String| std::thread::spawn(move || http_get(&u).status);
        let first = spawn(url.clone());
        eventually("a request at the upstream", Duration::from_secs(10), || {
            (self.cluster_stat("upstream_rq_active") == 1).then_some(())
        });
        let second = spawn(url.clone());
        eventually("a request in the queue", Duration::from_secs(10), || {
            (self.cluster_stat("upstream_rq_pending_active") == 1).then_some(())
        });
        for _ in 0..k {
            assert_eq!(http_get(&url).status, 503, "refused at the limit");
        }
        self.gate.open();
        assert_eq!(first.join().expect("first"), 200);
        assert_eq!(second.join().expect("second"), 200);
        assert_eq!(self.cluster_stat("upstream_rq_pending_overflow"), k as u64);
    }

    /// Every stat of the admin's `/stats` but the uptime (which moves between two reads).
    fn stats_now(&self) -> BTreeMap<String, u64> {
        let mut s = self.meshd.stats();
        s.remove("server.uptime");
        s
    }
}

/// Two VMs: `a` with its stats listener on 127.0.0.2:P and `b` on 127.0.0.3:P, one port P for
/// the fleet (as `--stats-port` assumes). P is the port the OS gave `a`; should 127.0.0.3:P be
/// taken, `a` starts again on another port (bounded).
struct Fleet {
    a: Vm,
    b: Vm,
    port: u16,
    /// A copy of the config directory, as `meshstat --fleet DIR` reads it.
    config: PathBuf,
    dir: TempDir,
}

impl Fleet {
    fn start() -> Fleet {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = dir.path().join("config");
        write_config(&config, &[]);
        for _ in 0..5 {
            let a = Vm::start("a", dir.path(), "127.0.0.2:0");
            let port = a.stats.port();
            assert_eq!(a.stats.ip().to_string(), "127.0.0.2");
            if std::net::TcpListener::bind(("127.0.0.3", port)).is_err() {
                continue;
            }
            let b = Vm::start("b", dir.path(), &format!("127.0.0.3:{port}"));
            return Fleet {
                a,
                b,
                port,
                config,
                dir,
            };
        }
        panic!("no port free on both 127.0.0.2 and 127.0.0.3 in 5 tries");
    }

    fn vms(&self) -> [&Vm; 2] {
        [&self.a, &self.b]
    }

    /// The label meshstat gives a node's stats endpoint: `<node>@<ip>:<port>`.
    fn label(&self, vm: &Vm) -> String {
        format!("{}@{}", vm.name, vm.stats)
    }
}

/// `meshstat -o json` output as source → (name → value), without the uptime.
fn by_source(stdout: &str) -> BTreeMap<String, BTreeMap<String, u64>> {
    let mut out: BTreeMap<String, BTreeMap<String, u64>> = BTreeMap::new();
    for line in stdout.lines() {
        let v: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        let (Some(src), Some(name), Some(value)) = (
            v["source"].as_str(),
            v["name"].as_str(),
            v["value"].as_u64(),
        ) else {
            panic!("not a stat: {line}");
        };
        if name != "server.uptime" {
            out.entry(src.to_owned())
                .or_default()
                .insert(name.to_owned(), value);
        }
    }
    out
}

fn status(method: &str, url: &str, headers: &[(&str, &str)]) -> u16 {
    http(method, url, headers, None).status
}

#[test]
fn the_stats_listener_serves_only_the_read_only_endpoints() {
    let f = Fleet::start();
    let vm = &f.a;
    vm.refuse(2);
    let c = cluster("a");

    // What it serves: the admin's own answers.
    let text = http_get(&vm.stats_url("/stats"));
    assert_eq!(text.status, 200);
    let served: BTreeMap<String, u64> = text
        .body
        .lines()
        .filter_map(|l| {
            let (k, v) = l.split_once(": ")?;
            Some((k.to_owned(), v.parse().ok()?))
        })
        .filter(|(k, _)| k != "server.uptime")
        .collect();
    assert_eq!(
        served,
        vm.stats_now(),
        "the stats listener's /stats is the admin's"
    );
    let filtered = http_get(&vm.stats_url("/stats?filter=rq_pending_overflow$&usedonly"));
    assert_eq!(
        filtered.body,
        format!("cluster.{c}.upstream_rq_pending_overflow: 2\n"),
        "?filter and ?usedonly work"
    );
    let json: Value =
        serde_json::from_str(&http_get(&vm.stats_url("/stats?format=json")).body).expect("json");
    assert!(json["stats"].as_array().is_some_and(|s| !s.is_empty()));
    let prom = http_get(&vm.stats_url("/stats/prometheus"));
    assert_eq!(prom.status, 200);
    assert!(
        prom.body.contains(&format!(
            "envoy_cluster_upstream_rq_pending_overflow{{envoy_cluster_name=\"{c}\"}} 2"
        )),
        "{}",
        prom.body
    );
    let clusters: Value =
        serde_json::from_str(&http_get(&vm.stats_url("/clusters?format=json")).body)
            .expect("clusters json");
    assert_eq!(clusters["cluster_statuses"][0]["name"], c.as_str());
    assert!(http_get(&vm.stats_url("/clusters")).body.contains(&c));
    // The same answer as the admin's /ready (LIVE, then which nodes this meshd serves).
    let ready = http_get(&vm.stats_url("/ready"));
    assert_eq!(ready.status, 200);
    assert!(ready.body.starts_with("LIVE\n"), "{}", ready.body);
    assert_eq!(ready.body, http_get(&vm.meshd.url("/ready")).body);

    // What it refuses, each counted in server.stats_rq_refused. Nothing mutates: every
    // mutating call stays on the loopback admin.
    let total = vm.cluster_stat("upstream_rq_total");
    assert_eq!(total, 2);
    let reset = http("POST", &vm.stats_url("/reset_counters"), &[], None);
    assert_eq!(reset.status, 405, "{}", reset.body);
    assert_eq!(reset.header("allow"), Some("GET"));
    assert!(reset.body.contains("--admin"), "says where: {}", reset.body);
    assert_eq!(vm.cluster_stat("upstream_rq_total"), total, "nothing reset");
    for (method, path, want) in [
        ("GET", "/config_dump", 404),
        ("GET", "/listeners", 404),
        ("GET", "/reset_counters", 404),
        ("GET", "/", 404),
        ("POST", "/stats", 405),
        ("POST", "/clusters", 405),
        ("PUT", "/clusters", 405),
        ("DELETE", "/ready", 405),
    ] {
        assert_eq!(
            status(method, &vm.stats_url(path), &[]),
            want,
            "{method} {path}"
        );
    }
    let port = vm.stats.port();
    let stats = vm.stats_url("/stats");
    assert_eq!(
        status("GET", &stats, &[("Origin", "http://evil.example")]),
        403
    );
    let evil = format!("evil.example:{port}");
    assert_eq!(status("GET", &stats, &[("Host", &evil)]), 403);
    // What a fleet scraper sends passes: the IP literal it dialled, or localhost.
    for host in [
        format!("127.0.0.2:{port}"),
        format!("198.18.0.7:{port}"),
        "localhost".into(),
    ] {
        assert_eq!(status("GET", &stats, &[("Host", &host)]), 200, "{host}");
    }
    assert_eq!(vm.meshd.stat("server.stats_rq_refused"), 11);
    assert_eq!(vm.meshd.stat("server.admin_rq_refused"), 0);
    assert_eq!(vm.meshd.stat("listener.stats.downstream_cx_overflow"), 0);
    assert_eq!(vm.cluster_stat("upstream_rq_pending_overflow"), 2);

    // The loopback admin still resets (and keeps the refusal counters, as always).
    assert_eq!(status("POST", &vm.meshd.url("/reset_counters"), &[]), 200);
    assert_eq!(vm.cluster_stat("upstream_rq_total"), 0);
    assert_eq!(vm.cluster_stat("upstream_rq_pending_overflow"), 2);

    // A stats listener that cannot bind is a start failure naming it (exit 1).
    let mut cmd = Command::new(bin("meshd"));
    let state = f.dir.path().join("state-busy");
    cmd.arg("--config-dir")
        .arg(&f.config)
        .arg("--state-dir")
        .arg(&state)
        .args([
            "--node",
            "a",
            "--listen",
            "a=127.0.0.1:0",
            "--admin",
            "127.0.0.1:0",
        ])
        .arg("--socket")
        .arg(f.dir.path().join("busy.sock"))
        .args(["--stats-listen", &vm.stats.to_string()]);
    let r = run_bounded(cmd, "meshd on a taken stats address");
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(
        r.stderr
            .contains(&format!("cannot listen on stats address {}", vm.stats)),
        "{}",
        r.stderr
    );
}

#[test]
fn meshstat_fleet_reads_what_each_meshd_serves() {
    let f = Fleet::start();
    f.a.refuse(2);
    f.b.refuse(3);
    let (la, lb) = (f.label(&f.a), f.label(&f.b));
    let port = f.port.to_string();
    let dir = f.config.to_str().expect("utf-8 path");

    // A list file: NAME=HOST:PORT or HOST:PORT a line; comments and blank lines skipped.
    let list = f.dir.path().join("fleet.txt");
    std::fs::write(
        &list,
        format!("# the fleet\na={}\n\n{}\n", f.a.stats, f.b.stats),
    )
    .expect("list");
    let list = list.to_str().expect("utf-8 path");
    let r = meshstat_ok(&["--fleet", list, "-o", "json"]);
    let got = by_source(&r.stdout);
    let want: BTreeMap<String, BTreeMap<String, u64>> = [
        (la.clone(), f.a.stats_now()),
        (f.b.stats.to_string(), f.b.stats_now()),
    ]
    .into();
    assert_eq!(got, want, "the fleet view reads each meshd's /stats");

    // The config directory: every node's hostname, at --stats-port.
    let r = meshstat_ok(&["--fleet", dir, "--stats-port", &port, "-o", "json"]);
    let want: BTreeMap<String, BTreeMap<String, u64>> =
        [(la.clone(), f.a.stats_now()), (lb.clone(), f.b.stats_now())].into();
    assert_eq!(by_source(&r.stdout), want);

    let r = meshstat_ok(&[
        "--fleet",
        dir,
        "--stats-port",
        &port,
        "rq_pending_overflow$",
    ]);
    assert_eq!(
        r.stdout,
        format!(
            "{la} cluster.{}.upstream_rq_pending_overflow: 2\n\
             {lb} cluster.{}.upstream_rq_pending_overflow: 3\n",
            cluster("a"),
            cluster("b")
        )
    );
    let r = meshstat_ok(&[
        "--fleet",
        dir,
        "--stats-port",
        &port,
        "--sum",
        "server.stats_rq_refused",
    ]);
    assert_eq!(r.stdout, "server.stats_rq_refused: 0\n");

    // why: which limit on which meshd refused.
    let r = meshstat_ok(&["--fleet", dir, "--stats-port", &port, "why"]);
    for (label, n, k) in [(&la, "a", 2), (&lb, "b", 3)] {
        let want = format!(
            "{label}: cluster {} refused {k} requests at its max_pending_requests limit",
            cluster(n)
        );
        assert!(
            r.stdout.lines().any(|l| l.starts_with(&want)),
            "{want}\n{}",
            r.stdout
        );
    }
    // clusters and hosts: every line names its source.
    for sub in ["clusters", "hosts"] {
        let r = meshstat_ok(&["--fleet", dir, "--stats-port", &port, sub]);
        for (label, n) in [(&la, "a"), (&lb, "b")] {
            assert!(
                r.stdout
                    .lines()
                    .any(|l| l.starts_with(&format!("{label} {}", cluster(n)))),
                "{sub}: {}",
                r.stdout
            );
        }
        assert!(r
            .stdout
            .lines()
            .all(|l| l.starts_with(&la) || l.starts_with(&lb)));
    }
}

#[test]
fn meshstat_fleet_unreachable_and_unlocatable_nodes() {
    let f = Fleet::start();
    let port = f.port.to_string();
    let (la, lb) = (f.label(&f.a), f.label(&f.b));

    // A node nothing answers for (c at 127.0.0.4) and a gateway, which has no hostname: one
    // stderr line each, the others still shown, exit 1.
    let dir = f.dir.path().join("config-more");
    let gateway = serde_json::json!({"meshName": "m", "virtualGatewayName": "gw", "spec": {
        "listeners": [{"portMapping": {"port": 8088, "protocol": "http"}}]}});
    let c = serde_json::json!({"meshName": "m", "virtualNodeName": "c", "spec": {
        "listeners": [{"portMapping": {"port": 8080, "protocol": "http"}}],
        "serviceDiscovery": {"dns": {"hostname": "127.0.0.4"}}}});
    write_config(&dir, &[("vg-gw.json", gateway), ("vn-c.json", c)]);
    let dir_s = dir.to_str().expect("utf-8 path");
    let r = meshstat(&[
        "--fleet",
        dir_s,
        "--stats-port",
        &port,
        "upstream_rq_total$",
    ]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    let err: Vec<&str> = r.stderr.lines().collect();
    assert_eq!(err.len(), 2, "{}", r.stderr);
    assert!(
        err.iter()
            .any(|l| l.starts_with(&format!("meshstat: c@127.0.0.4:{port} : "))),
        "{}",
        r.stderr
    );
    assert!(
        err.iter()
            .any(|l| l.starts_with("meshstat: virtual gateway gw : ") && l.contains("list file")),
        "{}",
        r.stderr
    );
    assert!(r.stdout.contains(&format!("{la} cluster.")), "{}", r.stdout);
    assert!(r.stdout.contains(&format!("{lb} cluster.")), "{}", r.stdout);

    // A list file entry names the gateway: located (its endpoint still answers nothing here).
    let list = f.dir.path().join("more.txt");
    std::fs::write(&list, format!("gw=127.0.0.5:{port}\n")).expect("list");
    let r = meshstat(&[
        "--fleet",
        dir_s,
        "--fleet",
        list.to_str().expect("utf-8"),
        "--stats-port",
        &port,
        "upstream_rq_total$",
    ]);
    assert_eq!(r.code, 1);
    assert!(
        r.stderr
            .contains(&format!("meshstat: gw@127.0.0.5:{port} : ")),
        "{}",
        r.stderr
    );
    assert!(!r.stderr.contains("virtual gateway gw"), "{}", r.stderr);

    // Bad input: exit 2, one line.
    let bad = f.dir.path().join("bad.txt");
    std::fs::write(&bad, "127.0.0.2:9902\nnot an address\n").expect("bad");
    for (args, what) in [
        (
            vec!["--fleet", "/nonexistent/fleet"],
            "meshstat: --fleet /nonexistent/fleet : ",
        ),
        (
            vec!["--fleet", bad.to_str().expect("utf-8")],
            &*format!("meshstat: {}:2 : ", bad.display()),
        ),
    ] {
        let r = meshstat(&args);
        assert_eq!(r.code, 2, "{args:?}: {}", r.stderr);
        assert_eq!(r.stderr.lines().count(), 1, "{}", r.stderr);
        assert!(r.stderr.starts_with(what), "{what}\n{}", r.stderr);
    }
}

#[test]
fn meshstat_fleet_targets_prints_prometheus_file_sd() {
    let f = Fleet::start();
    let port = f.port.to_string();
    let r = meshstat_ok(&[
        "--fleet",
        f.config.to_str().expect("utf-8"),
        "--stats-port",
        &port,
        "--targets",
    ]);
    let got: Value = serde_json::from_str(&r.stdout).expect("file_sd JSON");
    let want = serde_json::json!([
        {"targets": [f.a.stats.to_string()], "labels": {"node": "a"}},
        {"targets": [f.b.stats.to_string()], "labels": {"node": "b"}},
    ]);
    assert_eq!(got, want);
    // Each target answers /stats/prometheus.
    for t in [f.a.stats, f.b.stats] {
        assert_eq!(
            http_get(&format!("http://{t}/stats/prometheus")).status,
            200
        );
    }
}
