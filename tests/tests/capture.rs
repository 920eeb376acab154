//! Transparent capture (`meshctl capture`) in a namespace VM: an app that calls a service's
//! address directly, as it would without a mesh, is redirected by nftables into meshd's egress
//! listener and routed there, by Host or, when Host names no backend, by the original
//! destination's port.

use std::process::Command;

use mesh_tests::vms::Vms;
use mesh_tests::{bin, run_bounded, Run};
use serde_json::json;

const SVC: &str = "svc.cap.test";

fn meshctl(vms: &Vms, as_nobody: bool, args: &[&str]) -> Run {
    let path = bin("meshctl");
    vms.run(1, as_nobody, path.to_str().expect("path"), args)
}

/// `curl` as the app (uid 65534) to `url`: "<body> <status>", or the failure.
fn app_get(vms: &Vms, url: &str, host: Option<&str>) -> Run {
    let mut args = vec![
        "-sS",
        "--connect-timeout",
        "2",
        "--max-time",
        "10",
        "-w",
        " %{http_code}",
    ];
    let h;
    if let Some(host) = host {
        h = format!("Host: {host}");
        args.extend(["-H", &h]);
    }
    args.push(url);
    vms.run(1, true, "curl", &args)
}

fn captured(m: &mesh_tests::vms::VmMeshd) -> u64 {
    m.stats()
        .iter()
        .filter(|(k, _)| k.ends_with("http.egress.downstream_cx_captured"))
        .map(|(_, v)| v)
        .sum()
}

#[test]
fn captured_calls_reach_the_service_through_meshd_and_stop_when_disabled() {
    // VM 1: the app and its meshd (node client); VM 2: the service's replica, svc.cap.test.
    let vms = Vms::up(2);
    let (_app, replica) = vms.demo_app(2, "green", 8080);
    vms.dns_set(SVC, &[vms.addr(2)]);
    vms.dns_set("client.cap.test", &[vms.addr(1)]);
    let config = vms.dir.path().join("config");
    std::fs::create_dir_all(&config).expect("mkdir");
    for (name, doc) in [
        ("mesh.json", json!({"meshName": "m", "spec": {}})),
        (
            "vn-svc.json",
            json!({"meshName": "m", "virtualNodeName": "svc", "spec": {
                "listeners": [{"portMapping": {"port": 8080, "protocol": "http"}}],
                "serviceDiscovery": {"dns": {"hostname": SVC}}}}),
        ),
        (
            "vn-client.json",
            json!({"meshName": "m", "virtualNodeName": "client", "spec": {
                "serviceDiscovery": {"dns": {"hostname": "client.cap.test"}},
                "backends": [{"virtualService": {"virtualServiceName": SVC}}]}}),
        ),
        (
            "vs-svc.json",
            json!({"meshName": "m", "virtualServiceName": SVC, "spec": {
                "provider": {"virtualNode": {"virtualNodeName": "svc"}}}}),
        ),
    ] {
        std::fs::write(config.join(name), doc.to_string()).expect("write");
    }
    let m = vms.meshd(1, &config, &["client"], &[]);
    let by_name = format!("http://{SVC}:8080/");
    let by_addr = format!("http://{replica}/");

    // Not root: refused, nothing installed.
    let r = meshctl(&vms, true, &["capture", "enable", "--ignore-uid", "0"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(
        r.stderr.contains("needs root or CAP_NET_ADMIN"),
        "{}",
        r.stderr
    );
    let r = meshctl(&vms, false, &["capture", "status"]);
    assert_eq!(
        (r.code, r.stderr.trim()),
        (1, "meshctl: capture is not enabled")
    );

    // Before capture the app reaches the replica directly, past meshd.
    let r = app_get(&vms, &by_name, None);
    assert_eq!((r.code, r.stdout.as_str()), (0, "green\n 200"), "{r:?}");
    assert_eq!(captured(&m), 0);

    // meshd runs as root here: its own connections are the ones left alone.
    for _ in 0..2 {
        let r = meshctl(&vms, false, &["capture", "enable", "--ignore-uid", "0"]);
        assert_eq!(r.code, 0, "{r:?}");
    }
    let tables = vms.run(1, false, "nft", &["list", "tables"]);
    assert_eq!(
        tables.stdout.matches("meshd_capture").count(),
        1,
        "{tables:?}"
    );
    let r = meshctl(&vms, false, &["capture", "status"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout.contains("redirect to :15001"), "{}", r.stdout);

    // Captured: by Host, and by address (the replica is a host of svc's cluster).
    for url in [&by_name, &by_addr] {
        let r = app_get(&vms, url, None);
        assert_eq!(
            (r.code, r.stdout.as_str()),
            (0, "green\n 200"),
            "{url}: {r:?}"
        );
    }
    assert_eq!(captured(&m), 2);
    let cluster = m.cluster("cds_egress_");
    assert_eq!(m.stat(&format!("cluster.{cluster}.upstream_rq_200")), 2);
    // An address that is no backend's host: 404 NR, never another service's replica.
    let o = vms.addr(2).octets();
    let stranger = format!("http://{}.{}.{}.77:8080/", o[0], o[1], o[2]);
    let r = app_get(&vms, &stranger, None);
    assert_eq!(r.stdout, " 404", "{r:?}");
    assert_eq!(captured(&m), 3);

    // Disabled: gone, and the app goes past meshd again.
    let r = meshctl(&vms, false, &["capture", "disable"]);
    assert_eq!(
        (r.code, r.stdout.as_str()),
        (0, "capture disabled\n"),
        "{r:?}"
    );
    let tables = vms.run(1, false, "nft", &["list", "tables"]);
    assert!(!tables.stdout.contains("meshd_capture"), "{tables:?}");
    let r = app_get(&vms, &by_addr, None);
    assert_eq!(r.stdout, "green\n 200", "{r:?}");
    assert_eq!(captured(&m), 3);
    let r = meshctl(&vms, false, &["capture", "disable"]);
    assert_eq!(
        (r.code, r.stdout.as_str()),
        (0, "capture was not enabled\n")
    );
}

#[test]
fn capture_without_nft_says_so_and_installs_nothing() {
    let mut cmd = Command::new(bin("meshctl"));
    cmd.args(["capture", "enable", "--ignore-uid", "0"])
        .env("PATH", "/nonexistent");
    let r = run_bounded(cmd, "meshctl capture");
    assert_eq!(r.code, 1, "{r:?}");
    assert_eq!(
        r.stderr.trim(),
        "meshctl: capture : nft not found : install nftables (apt-get install nftables)"
    );
}
