//! `meshctl explain HOST` and `meshctl describe destinationrule NAME --live` on a real client
//! meshd and server meshd (Istio WorkloadEntries on 127.0.0.2 and a client), while requests are
//! held at the server's app by a gate: the views show the limits in force on each side, their
//! live occupancy and refusals, the route's retry policy and the server-side limits.

use std::time::Duration;

use mesh_tests::{eventually, http, meshctl, Gate, Meshd, RawConn, RawUpstream};

const HOST: &str = "pyserver.demo.svc";

fn config(dir: &std::path::Path, port: u16) {
    let yaml = format!(
        r#"apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{ name: pyserver }}
spec:
  hosts: [{HOST}]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{{ number: {port}, name: http, protocol: HTTP }}]
  workloadSelector: {{ labels: {{ app: pyserver }} }}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {{ name: server }}
spec: {{ address: 127.0.0.2, labels: {{ app: pyserver }} }}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {{ name: client }}
spec: {{ address: 127.0.0.3, labels: {{ app: client }} }}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {{ name: pyserver }}
spec:
  host: {HOST}
  trafficPolicy:
    connectionPool:
      tcp: {{ maxConnections: 1 }}
      http: {{ http1MaxPendingRequests: 1 }}
    outlierDetection: {{ consecutive5xxErrors: 3, interval: 1s, baseEjectionTime: 2s }}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{ name: pyserver }}
spec:
  hosts: [{HOST}]
  http:
  - timeout: 20s
    retries: {{ attempts: 2, perTryTimeout: 10s, retryOn: "gateway-error,connect-failure" }}
    route: [{{ destination: {{ host: {HOST} }} }}]
"#
    );
    std::fs::write(dir.join("mesh.yaml"), yaml).expect("write config");
}

#[test]
fn explain_and_describe_show_each_sides_limits_with_live_occupancy() {
    let gate = Gate::default();
    let app = {
        let gate = gate.clone();
        RawUpstream::start(move |c: &mut RawConn| {
            while c.next_request().is_some() {
                if !gate.wait() || !c.write(b"HTTP/1.1 200 OK\r\ncontent-length: 3\r\n\r\nok\n") {
                    return false;
                }
            }
            false
        })
    };
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.2:0").expect("bind 127.0.0.2");
        l.local_addr().expect("addr").port()
    };
    let dir = tempfile::tempdir().expect("tempdir");
    config(dir.path(), port);
    let app_flag = format!("server={}", app.addr);
    let server = Meshd::start(dir.path(), &["--node", "server", "--app", &app_flag]);
    let client = Meshd::start(
        dir.path(),
        &["--node", "client", "--egress", "client=127.0.0.1:0"],
    );
    let egress = client.listener("client-egress");

    // Three requests at once: one reaches the app (held), one waits, one is refused (UO).
    let clients: Vec<_> = (0..3)
        .map(|i| {
            std::thread::spawn(move || {
                http(
                    "GET",
                    &format!("http://{egress}/r{i}"),
                    &[("Host", HOST)],
                    None,
                )
                .status
            })
        })
        .collect();
    let cluster = format!("outbound|{port}||{HOST}");
    eventually(
        "1 held at the app and 1 queued",
        Duration::from_secs(10),
        || {
            let s = client.stats();
            let get = |k: &str| {
                s.get(&format!("cluster.{cluster}.{k}"))
                    .copied()
                    .unwrap_or(0)
            };
            (app.accepted.load(std::sync::atomic::Ordering::SeqCst) == 1
                && get("upstream_rq_pending_active") == 1
                && get("upstream_rq_pending_overflow") == 1)
                .then_some(())
        },
    );

    let run = meshctl(&client.socket, &["explain", HOST]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let text = run.stdout;
    for want in [
        format!("{HOST} from the app of client on this VM, in order:"),
        "timeout 20s; retries: 2 retries on gateway-error,connect-failure, per try timeout 10s"
            .to_string(),
        format!("cluster {cluster} (client side)"),
        "limits: max_connections 1, max_pending_requests 1, max_requests 4294967295 (unlimited)"
            .to_string(),
        "outlier detection: 3 consecutive 5xx (ejects)".to_string(),
        "max_connections             1/1          refused 0, peak 1  OPEN".to_string(),
        "max_pending_requests        1/1          refused 1, peak 1  OPEN".to_string(),
        format!("inbound|{port}||… (DestinationRule pyserver): max_connections 1, max_pending_requests 1"),
    ] {
        assert!(text.contains(&want), "no {want:?} in:\n{text}");
    }
    let json = meshctl(&client.socket, &["explain", HOST, "-o", "json"]);
    let v: serde_json::Value = serde_json::from_str(&json.stdout).expect("json");
    assert_eq!(v["paths"][0]["clusters"][0]["name"], cluster.as_str());

    // The server's own view of the rule: its inbound cluster, with the one request in flight.
    let run = meshctl(&server.socket, &["describe", "dr", "pyserver", "--live"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let inbound = format!("cluster inbound|{port}||{HOST} (server side)");
    assert!(run.stdout.contains(&inbound), "{}", run.stdout);
    assert!(
        run.stdout.contains("max_connections             1/1"),
        "{}",
        run.stdout
    );

    gate.open();
    let mut got: Vec<u16> = clients
        .into_iter()
        .map(|t| t.join().expect("client"))
        .collect();
    got.sort();
    assert_eq!(got, [200, 200, 503]);

    let none = meshctl(&client.socket, &["explain", "nowhere.example"]);
    assert!(
        none.stdout
            .contains("No local workload on this VM routes nowhere.example"),
        "{}",
        none.stdout
    );
}
