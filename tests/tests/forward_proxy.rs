//! The egress listener as the app's HTTP proxy: `http_proxy=http://127.0.0.1:15001 curl
//! http://color-paths:8080/…` and Python `requests` with the same variable reach the mesh
//! (absolute-form requests, routed by their authority as Host-routed ones are).

use std::net::SocketAddr;
use std::process::Command;

use mesh_tests::egress::front;
use mesh_tests::{run_bounded, Run};

/// `program args…` with only `http_proxy` pointing at `egress` among the proxy variables.
fn through_proxy(egress: SocketAddr, program: &str, args: &[&str]) -> Run {
    let mut cmd = Command::new(program);
    cmd.args(args);
    for v in [
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "ALL_PROXY",
        "all_proxy",
        "NO_PROXY",
        "no_proxy",
    ] {
        cmd.env_remove(v);
    }
    cmd.env("http_proxy", format!("http://{egress}"));
    let r = run_bounded(cmd, program);
    assert_ne!(
        r.code, 127,
        "{program} is not installed (`.ci/run` installs it): {}",
        r.stderr
    );
    r
}

#[test]
fn curl_with_http_proxy_reaches_the_mesh_through_the_egress_listener() {
    let f = front(None);
    let (m, egress) = (&f.meshd, f.egress);
    let r = through_proxy(
        egress,
        "curl",
        &[
            "-sS",
            "-w",
            " %{http_code}",
            "http://color-paths:8080/paths/green",
        ],
    );
    assert_eq!((r.code, r.stdout.as_str()), (0, "green\n 200"), "{r:?}");
    // Without a port, and a name the node does not declare: 404 NR, as Host-routed.
    let r = through_proxy(
        egress,
        "curl",
        &[
            "-sS",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "http://color-paths/paths/red",
        ],
    );
    assert_eq!(r.stdout, "200", "{r:?}");
    let r = through_proxy(
        egress,
        "curl",
        &[
            "-sS",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "http://elsewhere.example/",
        ],
    );
    assert_eq!(r.stdout, "404", "{r:?}");
    assert_eq!(
        m.stat("cluster.cds_egress_color-mesh_green_http_8080.upstream_rq_200"),
        1
    );
}

#[test]
fn python_requests_with_http_proxy_reaches_the_mesh_with_bodies() {
    let f = front(None);
    let (m, egress) = (&f.meshd, f.egress);
    let script = "import requests, sys\n\
        r = requests.get('http://color-paths:8080/paths/green', timeout=10)\n\
        p = requests.post('http://color-paths:8080/paths/green?echo=1', data=b'x' * 70000, timeout=10)\n\
        print(r.status_code, r.text.strip(), p.status_code, len(p.content))\n";
    let r = through_proxy(egress, "python3", &["-c", script]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(r.stdout.trim(), "200 green 200 70000", "{r:?}");
    assert_eq!(
        m.stat("cluster.cds_egress_color-mesh_green_http_8080.upstream_rq_200"),
        2
    );
}
