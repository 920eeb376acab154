//! Experiment 4 (examples/istio/bad-server): a VirtualService splits `pyserver` 50/50 between
//! subsets v1 (VM 2, answers 200) and v2 (VM 3, always 502), with retries on gateway errors and
//! outlier detection. v2's host is ejected (`/clusters` shows `failed_outlier_check`), and from
//! then on the client sees only v1's 200s: the split skips a subset with no usable host (Envoy
//! would answer 503 `UH` for that share). Then, both subsets healthy, weights 90/10: over 400
//! requests v2's share is within 4.5 σ of 10 %.

use std::time::Duration;

use mesh_tests::eventually;
use mesh_tests::istio::{local_demo_app, meshd, write_config, Server, HOST, PORT};
use mesh_tests::vms::{in_vm, try_http, Vms, EGRESS};

fn rule_and_split(v1: u32, v2: u32) -> String {
    format!(
        r#"apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {{ name: {HOST} }}
spec:
  host: {HOST}
  trafficPolicy:
    outlierDetection: {{ consecutive5xxErrors: 2, interval: 1s, baseEjectionTime: 60s, maxEjectionPercent: 100 }}
  subsets:
  - {{ name: v1, labels: {{ version: v1 }} }}
  - {{ name: v2, labels: {{ version: v2 }} }}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{ name: {HOST} }}
spec:
  hosts: [{HOST}]
  http:
  - route:
    - {{ destination: {{ host: {HOST}, subset: v1 }}, weight: {v1} }}
    - {{ destination: {{ host: {HOST}, subset: v2 }}, weight: {v2} }}
    retries: {{ attempts: 2, retryOn: "gateway-error,connect-failure,refused-stream" }}
"#
    )
}

/// `n` requests from VM 1's app, one after another: (status, body) of each.
fn requests(vms: &Vms, n: usize) -> Vec<(u16, String)> {
    in_vm(&vms.ns(1), || {
        let agent = ureq::AgentBuilder::new()
            .timeout(Duration::from_secs(10))
            .build();
        (0..n)
            .map(
                |_| match try_http(&agent, &format!("http://{EGRESS}/"), Some(HOST)) {
                    Ok(r) => (r.status, r.body.trim().to_owned()),
                    Err(e) => (0, e),
                },
            )
            .collect()
    })
}

#[test]
fn a_failing_subset_is_ejected_and_the_split_sends_its_share_to_v1() {
    let vms = Vms::up(3);
    let (_v1, p1) = local_demo_app(&vms, 2, "v1", &[]);
    let (_v2, p2) = local_demo_app(
        &vms,
        3,
        "v2",
        &["--fail-every", "1", "--fail-status", "502"],
    );
    let servers = [
        Server::in_vm(&vms, 2, "pyserver-v1", p1, "v1"),
        Server::in_vm(&vms, 3, "pyserver-v2", p2, "v2"),
    ];
    let config = write_config(
        vms.dir.path(),
        &servers,
        &[vms.addr(1)],
        &rule_and_split(50, 50),
    );
    let client = meshd(&vms, 1, &config);
    let _s1 = meshd(&vms, 2, &config);
    let s2 = meshd(&vms, 3, &config);

    let v2_flags = format!(
        "outbound|{PORT}|v2|{HOST}::{}:{p2}::health_flags::",
        vms.addr(3)
    );
    let mut sent = 0;
    eventually("v2's host ejected", Duration::from_secs(20), || {
        assert!(sent < 100, "v2 not ejected after {sent} requests");
        requests(&vms, 1);
        sent += 1;
        client
            .get("/clusters")
            .body
            .lines()
            .any(|l| l.starts_with(&v2_flags) && l.contains("failed_outlier_check"))
            .then_some(())
    });
    let after = requests(&vms, 60);
    assert!(
        after.iter().all(|(s, b)| *s == 200 && b == "v1"),
        "{after:?}"
    );
    drop((client, s2));

    // Both healthy, 90/10: v2 gets 10 % ± 4.5 σ of 400 (σ = 6).
    let (_v2, p2) = local_demo_app(&vms, 3, "v2b", &[]);
    let servers = [
        Server::in_vm(&vms, 2, "pyserver-v1", p1, "v1"),
        Server::in_vm(&vms, 3, "pyserver-v2", p2, "v2"),
    ];
    let config = write_config(
        vms.dir.path(),
        &servers,
        &[vms.addr(1)],
        &rule_and_split(90, 10),
    );
    let _client = meshd(&vms, 1, &config);
    let _s2 = meshd(&vms, 3, &config);
    let got = requests(&vms, 400);
    let v1 = got.iter().filter(|(s, b)| *s == 200 && b == "v1").count();
    let v2 = got.iter().filter(|(s, b)| *s == 200 && b == "v2b").count();
    assert_eq!(v1 + v2, 400, "{got:?}");
    let (mean, sigma) = (40.0, (400.0f64 * 0.1 * 0.9).sqrt());
    assert!(
        (v2 as f64 - mean).abs() <= 4.5 * sigma,
        "v2 got {v2} of 400, expected {mean} ± {}",
        4.5 * sigma
    );
}
