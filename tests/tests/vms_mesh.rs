//! A mesh across two VMs (network namespaces, one DNS zone) with one identical config
//! directory on both, each meshd started the same way (no `--node`): each serves only the node
//! whose name resolves to its VM; VM 1's app calls VM 2's service through VM 1's egress
//! listener (Host-routed, as HTTP proxy, and captured); VM 2's connection-pool limit holds
//! exactly across the VMs; a change to VM 2's node applied on VM 1 is accepted there, binds
//! nothing, and takes effect on VM 2 once the files are synced.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use mesh_tests::vms::{in_vm, try_http, VmMeshd, Vms, EGRESS};
use mesh_tests::{bin, eventually, run_bounded, Gate, RawConn, RawUpstream, Run};
use serde_json::{json, Value};

const ZONE_FRONT: &str = "front.vm.test";
const ZONE_GREEN: &str = "green.vm.test";
const GREEN_CLUSTER: &str = "cds_ingress_m_green_http_8080";

fn green(max_connections: u32) -> Value {
    json!({"meshName": "m", "virtualNodeName": "green", "spec": {
        "listeners": [{"portMapping": {"port": 8080, "protocol": "http"},
            "connectionPool": {"http": {"maxConnections": max_connections,
                                        "maxPendingRequests": 1}}}],
        "serviceDiscovery": {"dns": {"hostname": ZONE_GREEN}}}})
}

/// The one config of the fleet: `front` (VM 1) calls the virtual service `green.vm.test`,
/// provided by node `green` (VM 2).
fn write_config(dir: &Path) -> PathBuf {
    let config = dir.join("fleet-config");
    std::fs::create_dir_all(&config).expect("mkdir");
    for (name, doc) in [
        ("mesh.json", json!({"meshName": "m", "spec": {}})),
        ("vn-green.json", green(2)),
        (
            "vn-front.json",
            json!({"meshName": "m", "virtualNodeName": "front", "spec": {
                "serviceDiscovery": {"dns": {"hostname": ZONE_FRONT}},
                "backends": [{"virtualService": {"virtualServiceName": ZONE_GREEN}}]}}),
        ),
        (
            "vs-green.json",
            json!({"meshName": "m", "virtualServiceName": ZONE_GREEN, "spec": {
                "provider": {"virtualNode": {"virtualNodeName": "green"}}}}),
        ),
    ] {
        std::fs::write(config.join(name), doc.to_string()).expect("write");
    }
    config
}

fn meshctl_in(vms: &Vms, i: usize, m: &VmMeshd, args: &[&str]) -> Run {
    let mut full = vec![
        "--socket".to_owned(),
        m.config_dir
            .parent()
            .and_then(Path::parent)
            .expect("vm root")
            .join("run/meshd/meshd.sock")
            .display()
            .to_string(),
    ];
    full.extend(args.iter().map(|a| (*a).to_owned()));
    let refs: Vec<&str> = full.iter().map(String::as_str).collect();
    vms.run(i, false, bin("meshctl").to_str().expect("path"), &refs)
}

#[test]
fn two_vms_share_one_config_and_each_serves_its_own_node() {
    let vms = Vms::up(2);
    vms.dns_set(ZONE_FRONT, &[vms.addr(1)]);
    vms.dns_set(ZONE_GREEN, &[vms.addr(2)]);
    // green's app in VM 2: answers `ok` once the gate opens (GET /now answers at once).
    let gate = Gate::default();
    let app = {
        let gate = gate.clone();
        let ns = vms.ns(2);
        let up = in_vm(&ns, move || {
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
        });
        InVm(ns, Some(up))
    };
    let config = write_config(vms.dir.path());
    let app_flag = format!("green={}", app.get().addr);
    // The same directory and the same flags on both (the app address aside): no --node.
    let m1 = vms.meshd(1, &config, &[], &[]);
    let m2 = vms.meshd(2, &config, &[], &["--app", &app_flag]);

    // Each serves only its own node.
    let l1 = m1.get("/listeners").body;
    let l2 = m2.get("/listeners").body;
    assert!(l1.contains("front-egress") && !l1.contains("green"), "{l1}");
    assert!(
        l2.contains(&format!("green-ingress::{}:8080", vms.addr(2))),
        "{l2}"
    );
    assert!(!l2.contains("front"), "{l2}");

    // VM 1's app → VM 2's service: Host-routed through the egress listener.
    let host_routed = in_vm(&vms.ns(1), || {
        let agent = ureq::AgentBuilder::new()
            .timeout(Duration::from_secs(10))
            .build();
        try_http(&agent, &format!("http://{EGRESS}/now"), Some(ZONE_GREEN))
    })
    .expect("egress answers");
    assert_eq!(
        (host_routed.status, host_routed.body.as_str()),
        (200, "ok\n")
    );
    // As its HTTP proxy.
    let mut curl = Command::new("curl");
    curl.args(["-sS", "--max-time", "10", "-w", " %{http_code}"])
        .arg(format!("http://{ZONE_GREEN}:8080/now"))
        .env("http_proxy", format!("http://{EGRESS}"))
        .env_remove("no_proxy")
        .env_remove("NO_PROXY");
    let r = run_bounded(vms.command(1, &curl), "curl");
    assert_eq!(r.stdout, "ok\n 200", "{r:?}");
    // Captured: the app calls green.vm.test:8080 directly.
    let r = vms.run(
        1,
        false,
        bin("meshctl").to_str().expect("path"),
        &["capture", "enable", "--ignore-uid", "0"],
    );
    assert_eq!(r.code, 0, "{r:?}");
    let r = vms.run(
        1,
        true,
        "curl",
        &[
            "-sS",
            "--max-time",
            "10",
            "-w",
            " %{http_code}",
            &format!("http://{ZONE_GREEN}:8080/now"),
        ],
    );
    assert_eq!(r.stdout, "ok\n 200", "{r:?}");
    let captured: u64 = m1
        .stats()
        .iter()
        .filter(|(k, _)| k.ends_with("http.egress.downstream_cx_captured"))
        .map(|(_, v)| v)
        .sum();
    assert_eq!(captured, 1);

    // VM 2's limit (2 connections, 1 pending) holds exactly for callers on VM 1: of 5 held
    // requests, 2 are served, 1 queues, 2 are refused by VM 2's meshd (and not retried by VM 1's).
    let held: Vec<_> = (0..5)
        .map(|i| {
            let ns = vms.ns(1);
            std::thread::spawn(move || {
                in_vm(&ns, || {
                    let agent = ureq::AgentBuilder::new()
                        .timeout(Duration::from_secs(15))
                        .build();
                    try_http(
                        &agent,
                        &format!("http://{EGRESS}/held{i}"),
                        Some(ZONE_GREEN),
                    )
                    .map(|r| (r.status, r.header("x-mesh-overflow").map(str::to_owned)))
                })
            })
        })
        .collect();
    let refused = format!("cluster.{GREEN_CLUSTER}.upstream_rq_pending_overflow");
    eventually("2 refusals at VM 2", Duration::from_secs(10), || {
        (m2.stat(&refused) == 2).then_some(())
    });
    assert!(!gate.is_open());
    gate.open();
    let mut got: Vec<(u16, Option<String>)> = held
        .into_iter()
        .map(|t| t.join().expect("client").expect("answer"))
        .collect();
    got.sort();
    let overflow = Some(format!("max_pending_requests {GREEN_CLUSTER}"));
    assert_eq!(
        got,
        [
            (200, None),
            (200, None),
            (200, None),
            (503, overflow.clone()),
            (503, overflow)
        ]
    );

    // A change to green applied on VM 1: accepted, nothing bound there, effective on VM 2 once
    // the files are synced.
    let change = vms.dir.path().join("green-3.json");
    std::fs::write(&change, green(3).to_string()).expect("write");
    let r = meshctl_in(
        &vms,
        1,
        &m1,
        &["apply", "-f", change.to_str().expect("path")],
    );
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(
        r.stdout,
        format!("virtualnode/green configured (served elsewhere: {ZONE_GREEN})\n")
    );
    assert!(!m1.get("/listeners").body.contains("green"));
    let synced = std::fs::read(m1.config_dir.join("vn-green.json")).expect("read");
    std::fs::write(m2.config_dir.join("vn-green.json"), synced).expect("sync");
    eventually(
        "VM 2 to apply the synced change",
        Duration::from_secs(10),
        || {
            m2.get("/clusters")
                .body
                .contains(&format!(
                    "{GREEN_CLUSTER}::default_priority::max_connections::3"
                ))
                .then_some(())
        },
    );
    let _ = vms.run(
        1,
        false,
        bin("meshctl").to_str().expect("path"),
        &["capture", "disable"],
    );
}

/// A value that lives in a VM's network namespace and must be dropped there (a
/// [`RawUpstream`] wakes its accept loop by connecting to its own address).
struct InVm<T: Send>(String, Option<T>);

impl<T: Send> InVm<T> {
    fn get(&self) -> &T {
        self.1.as_ref().expect("alive")
    }
}

impl<T: Send> Drop for InVm<T> {
    fn drop(&mut self) {
        if let Some(v) = self.1.take() {
            in_vm(&self.0, move || drop(v));
        }
    }
}
