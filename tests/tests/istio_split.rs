//! An Istio weighted split between subsets, one of which fails: outlier detection ejects the
//! failing subset's host, and from then on its share goes to the other subset instead of being
//! answered 503 `UH` (Envoy's behaviour, where a split picks a subset whatever its health).

use std::time::Duration;

use mesh_tests::resilience::two_replicas;
use mesh_tests::{eventually, http, http_get, Meshd};

const HOST: &str = "pyserver.demo.svc";

#[test]
fn a_split_sends_the_share_of_an_ejected_subset_to_the_healthy_one() {
    // a (v1) answers 200 "a"; b (v2) always 502.
    let (a, b) = two_replicas(&[], &["--fail-every", "1", "--fail-status", "502"]);
    let port = a.addr.port();
    let dir = tempfile::tempdir().expect("tempdir");
    let yaml = format!(
        r#"apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{ name: pyserver }}
spec:
  hosts: [{HOST}]
  resolution: STATIC
  ports: [{{ number: {port}, name: http }}]
  endpoints:
  - {{ address: 127.0.0.2, labels: {{ version: v1 }} }}
  - {{ address: 127.0.0.3, labels: {{ version: v2 }} }}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {{ name: client }}
spec: {{ address: 127.0.0.1 }}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {{ name: pyserver }}
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
metadata: {{ name: pyserver }}
spec:
  hosts: [{HOST}]
  http:
  - route:
    - {{ destination: {{ host: {HOST}, subset: v1 }}, weight: 50 }}
    - {{ destination: {{ host: {HOST}, subset: v2 }}, weight: 50 }}
    retries: {{ attempts: 1, retryOn: gateway-error }}
"#
    );
    std::fs::write(dir.path().join("mesh.yaml"), yaml).expect("write config");
    let client = Meshd::start(
        dir.path(),
        &["--node", "client", "--egress", "client=127.0.0.1:0"],
    );
    let egress = client.listener("client-egress");
    let get = |i: usize| {
        http(
            "GET",
            &format!("http://{egress}/r{i}"),
            &[("Host", HOST)],
            None,
        )
    };

    // v2's host fails twice in a row (a request and its retry, or two requests) and is out.
    let v2 = format!("outbound|{port}|v2|{HOST}::{}::health_flags::", b.addr);
    let mut sent = 0;
    eventually("v2's host ejected", Duration::from_secs(20), || {
        assert!(sent < 200, "v2 not ejected after {sent} requests");
        get(sent);
        sent += 1;
        http_get(&client.url("/clusters"))
            .body
            .lines()
            .any(|l| l.starts_with(&v2) && l.contains("failed_outlier_check"))
            .then_some(())
    });
    // Every request now gets v1's answer, including the half the split draws for v2.
    let mut bodies = Vec::new();
    for i in 0..60 {
        let r = get(1000 + i);
        bodies.push((r.status, r.body));
    }
    assert!(
        bodies.iter().all(|(s, body)| *s == 200 && body == "a\n"),
        "{bodies:?}"
    );
    let v2_stat = format!("cluster.outbound|{port}|v2|{HOST}.upstream_cx_none_healthy");
    assert_eq!(client.stat(&v2_stat), 0, "no request was answered 503 UH");
    drop((a, b));
}
