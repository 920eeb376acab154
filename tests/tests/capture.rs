//! Transparent capture (`meshctl capture`) in a namespace VM: an app that calls a service's
//! address directly, as it would without a mesh, is redirected by nftables into meshd's egress
//! listener and routed there, by Host or, when Host names no backend, by the original
//! destination's port.

use std::net::Ipv4Addr;
use std::process::Command;

use mesh_tests::vms::Vms;
use mesh_tests::{bin, run_bounded, Run};
use serde_json::json;

const SVC: &str = "svc.cap.test";

/// Runs `program args` in VM 1, as root or (with `as_nobody`) as uid/gid 65534.
fn in_vm(vms: &Vms, as_nobody: bool, program: &str, args: &[&str]) -> Run {
    let mut cmd = if as_nobody {
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
    run_bounded(vms.command(1, &cmd), program)
}

fn meshctl(vms: &Vms, as_nobody: bool, args: &[&str]) -> Run {
    let path = bin("meshctl");
    in_vm(vms, as_nobody, path.to_str().expect("path"), args)
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
    in_vm(vms, true, "curl", &args)
}

#[test]
fn captured_calls_reach_the_service_through_meshd_and_stop_when_disabled() {
    let vms = Vms::up(1);
    let (_app, app_addr) = vms.demo_app(1, "green", 9000);
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
    let app_flag = format!("svc={app_addr}");
    let m = vms.meshd(
        1,
        &config,
        &["client", "svc"],
        &["--listen", "svc=127.0.0.1:18080", "--app", &app_flag],
    );
    // An address on the VM's network where nothing answers: only capture can reach it.
    let o = vms.addr(1).octets();
    let nowhere = Ipv4Addr::new(o[0], o[1], o[2], 77);
    let url = format!("http://{nowhere}:8080/");

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

    // Before capture the address is just unreachable.
    assert_ne!(app_get(&vms, &url, None).code, 0);

    // meshd runs as root here: its own connections are the ones left alone.
    for _ in 0..2 {
        let r = meshctl(&vms, false, &["capture", "enable", "--ignore-uid", "0"]);
        assert_eq!(r.code, 0, "{r:?}");
    }
    let tables = in_vm(&vms, false, "nft", &["list", "tables"]);
    assert_eq!(
        tables.stdout.matches("meshd_capture").count(),
        1,
        "{tables:?}"
    );
    let r = meshctl(&vms, false, &["capture", "status"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout.contains("redirect to :15001"), "{}", r.stdout);

    // By Host, and with an address only (routed by the original port, 8080: svc's).
    let r = app_get(&vms, &url, Some(SVC));
    assert_eq!((r.code, r.stdout.as_str()), (0, "green\n 200"), "{r:?}");
    let r = app_get(&vms, &url, None);
    assert_eq!((r.code, r.stdout.as_str()), (0, "green\n 200"), "{r:?}");
    // A port no backend answers on: 404 NR, as an undeclared Host.
    let r = app_get(&vms, &format!("http://{nowhere}:8181/"), None);
    assert_eq!(r.stdout, " 404", "{r:?}");
    let captured: u64 = m
        .stats()
        .iter()
        .filter(|(k, _)| k.ends_with("http.egress.downstream_cx_captured"))
        .map(|(_, v)| v)
        .sum();
    assert_eq!(captured, 3);

    // Disabled: gone, and the address is unreachable again.
    let r = meshctl(&vms, false, &["capture", "disable"]);
    assert_eq!(
        (r.code, r.stdout.as_str()),
        (0, "capture disabled\n"),
        "{r:?}"
    );
    let tables = in_vm(&vms, false, "nft", &["list", "tables"]);
    assert!(!tables.stdout.contains("meshd_capture"), "{tables:?}");
    assert_ne!(app_get(&vms, &url, None).code, 0);
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
