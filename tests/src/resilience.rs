//! Resilience helpers (tests/tests/resilience.rs): a service with two replicas (demo apps, or
//! meshd, on one port of 127.0.0.2 and 127.0.0.3 behind one DNS name that only the caller's
//! meshd resolves, through a private /etc/hosts: see [`crate::hosts`]), a caller's meshd in front
//! of them, and readers of its access log, outlier event log, `/clusters` and `meshstat`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde_json::{json, Value};

use crate::{eventually, http, start_meshd_with_hosts, DemoApp, Meshd, Reply, TempDir};

/// The service's DNS name: both replicas' addresses in meshd's private /etc/hosts.
pub const SERVICE: &str = "svc.resilience.test";
/// The caller's egress cluster to the service, without its port.
pub const CLUSTER_PREFIX: &str = "cds_egress_m_svc_http_";

/// Two demo apps on the same port of 127.0.0.2 (`a`) and 127.0.0.3 (`b`).
pub fn two_replicas(a: &[&str], b: &[&str]) -> (DemoApp, DemoApp) {
    for _ in 0..10 {
        let first = DemoApp::start_on("a", "127.0.0.2:0", a);
        let port = first.addr.port();
        if let Ok(second) = DemoApp::try_start_on("b", &format!("127.0.0.3:{port}"), b) {
            return (first, second);
        }
    }
    panic!("no port free on both 127.0.0.2 and 127.0.0.3 in 10 tries");
}

/// A mesh `m`: node `svc` on `port` (the replicas' port) discovered by DNS as [`SERVICE`],
/// with `listener` merged into its listener; a router for it with one route (`route` merged
/// into its `httpRoute`); node `client` calling it through its egress listener, logging JSON
/// lines with the attempt count.
pub struct Mesh {
    /// Holds the config, hosts file and logs; removed on drop.
    pub dir: TempDir,
    pub config: PathBuf,
    pub hosts: PathBuf,
    pub log: PathBuf,
    pub events: PathBuf,
}

impl Mesh {
    pub fn write(port: u16, listener: Value, route: Value) -> Mesh {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = dir.path().join("config");
        std::fs::create_dir_all(&config).expect("mkdir");
        let hosts = dir.path().join("hosts");
        std::fs::write(
            &hosts,
            format!("127.0.0.1 localhost\n127.0.0.2 {SERVICE}\n127.0.0.3 {SERVICE}\n"),
        )
        .expect("hosts");
        let log = dir.path().join("client.log");
        let events = dir.path().join("outlier.log");
        let mut l = json!({"portMapping": {"port": port, "protocol": "http"}});
        merge(&mut l, &listener);
        let mut http_route = json!({"match": {"prefix": "/"},
            "action": {"weightedTargets": [{"virtualNode": "svc", "weight": 1}]}});
        merge(&mut http_route, &route);
        let docs = [
            json!({"meshName": "m", "spec": {}}),
            json!({"meshName": "m", "virtualNodeName": "svc", "spec": {
                "listeners": [l],
                "serviceDiscovery": {"dns": {"hostname": SERVICE}}}}),
            json!({"meshName": "m", "virtualNodeName": "client", "spec": {
                "listeners": [{"portMapping": {"port": 9090, "protocol": "http"}}],
                "serviceDiscovery": {"dns": {"hostname": "client.resilience.test"}},
                "backends": [{"virtualService": {"virtualServiceName": SERVICE}}],
                "logging": {"accessLog": {"file": {"path": log.display().to_string(),
                    "format": {"json": [
                        {"key": "code", "value": "%RESPONSE_CODE%"},
                        {"key": "flags", "value": "%RESPONSE_FLAGS%"},
                        {"key": "attempts", "value": "%UPSTREAM_REQUEST_ATTEMPT_COUNT%"},
                        {"key": "upstream_host", "value": "%UPSTREAM_HOST%"}]}}}}}}),
            json!({"meshName": "m", "virtualRouterName": "svc-router", "spec": {
                "listeners": [{"portMapping": {"port": port, "protocol": "http"}}]}}),
            json!({"meshName": "m", "virtualRouterName": "svc-router", "routeName": "all",
                "spec": {"httpRoute": http_route}}),
            json!({"meshName": "m", "virtualServiceName": SERVICE, "spec": {
                "provider": {"virtualRouter": {"virtualRouterName": "svc-router"}}}}),
        ];
        for (i, d) in docs.iter().enumerate() {
            std::fs::write(config.join(format!("r{i}.json")), d.to_string()).expect("write");
        }
        Mesh {
            dir,
            config,
            hosts,
            log,
            events,
        }
    }

    /// meshd serving `client` only (svc is a remote node: its replicas are the hosts).
    pub fn start(&self) -> Caller {
        let events = self.events.display().to_string();
        let meshd = start_meshd_with_hosts(
            &self.config,
            &self.hosts,
            &[
                "--node",
                "client",
                "--listen",
                "client=127.0.0.1:0",
                "--egress",
                "client=127.0.0.1:0",
                "--outlier-log",
                &events,
            ],
        );
        let egress = meshd.listener("client-egress");
        Caller { meshd, egress }
    }

    /// The client's access log, one JSON object per line, once it holds `n` lines (lines are
    /// written off the request path).
    pub fn log_lines(&self, n: usize) -> Vec<Value> {
        eventually(
            &format!("{n} access log lines"),
            Duration::from_secs(10),
            || {
                let lines: Vec<Value> = std::fs::read_to_string(&self.log)
                    .unwrap_or_default()
                    .lines()
                    .filter_map(|l| serde_json::from_str(l).ok())
                    .collect();
                (lines.len() >= n).then_some(lines)
            },
        )
    }

    /// The outlier event log, one JSON object per line.
    pub fn events(&self) -> Vec<Value> {
        std::fs::read_to_string(&self.events)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }
}

pub fn merge(into: &mut Value, from: &Value) {
    if let (Some(i), Some(f)) = (into.as_object_mut(), from.as_object()) {
        for (k, v) in f {
            i.insert(k.clone(), v.clone());
        }
    }
}

pub struct Caller {
    pub meshd: Meshd,
    pub egress: SocketAddr,
}

impl Caller {
    pub fn get(&self, path: &str) -> Reply {
        http(
            "GET",
            &format!("http://{}{path}", self.egress),
            &[("Host", SERVICE)],
            None,
        )
    }

    pub fn cluster(&self, port: u16) -> String {
        format!("{CLUSTER_PREFIX}{port}")
    }

    pub fn stat(&self, port: u16, name: &str) -> u64 {
        self.meshd
            .stat(&format!("cluster.{}.{name}", self.cluster(port)))
    }

    /// `/clusters` lines of host `addr` of the service's cluster: `key → value`.
    pub fn host(&self, port: u16, addr: SocketAddr) -> std::collections::BTreeMap<String, String> {
        let prefix = format!("{}::{addr}::", self.cluster(port));
        crate::http_get(&self.meshd.url("/clusters"))
            .body
            .lines()
            .filter_map(|l| l.strip_prefix(&prefix))
            .filter_map(|l| l.split_once("::"))
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect()
    }
}

/// `meshstat --admin <meshd> ARGS`: its standard output (it must exit 0).
pub fn meshstat(meshd: &Meshd, args: &[&str]) -> String {
    let mut cmd = std::process::Command::new(crate::bin("meshstat"));
    cmd.arg("--admin")
        .arg(meshd.admin.to_string())
        .args(args)
        .env_remove("MESHD_ADMIN");
    let r = crate::run_bounded(cmd, &format!("meshstat {args:?}"));
    assert_eq!(r.code, 0, "meshstat {args:?}: {}", r.stderr);
    r.stdout
}

pub fn outlier(max_server_errors: u32, percent: u32) -> Value {
    json!({"outlierDetection": {"maxServerErrors": max_server_errors,
        "interval": {"unit": "s", "value": 1},
        "baseEjectionDuration": {"unit": "s", "value": 1},
        "maxEjectionPercent": percent}})
}

/// A port free on both 127.0.0.2 and 127.0.0.3 right now (meshd binds it next).
pub fn port_free_on_both() -> u16 {
    for _ in 0..10 {
        let a = std::net::TcpListener::bind("127.0.0.2:0").expect("bind 127.0.0.2");
        let port = a.local_addr().expect("addr").port();
        if std::net::TcpListener::bind(("127.0.0.3", port)).is_ok() {
            return port;
        }
    }
    panic!("no port free on both 127.0.0.2 and 127.0.0.3 in 10 tries");
}
