//! Experiment 3 (examples/istio/productpage): `maxConnections: 1`, `http1MaxPendingRequests: 1`,
//! `maxRequestsPerConnection: 1` on the service, `meshload` (fortio's flags and output) in the
//! client VM through its egress listener.
//!
//! * `-c 1 -qps 0 -n 20`: one request at a time never meets a limit: 100 % 200;
//! * `-c 3 -qps 0 -n 21` (7 calls per connection), the app holding its first request until the
//!   gate opens: one connection's request is at the app, one waits in the queue, and the third
//!   connection is refused (`UO`) on every one of its 7 calls while the first is held. After the
//!   gate opens the other two alternate (a freed slot goes straight to the queued request, so
//!   the next call finds the queue free): exactly 14 × 200 and 7 × 503, every run.

use std::collections::BTreeMap;
use std::time::Duration;

use mesh_tests::istio::{
    cluster_stat, destination_rule, meshd, write_config, GatedApp, Server, HOST, OUTBOUND,
};
use mesh_tests::vms::Vms;
use mesh_tests::{bin, eventually, Gate, Run};

const POOL: &str = "    connectionPool:\n      tcp: { maxConnections: 1 }\n      http: { http1MaxPendingRequests: 1, maxRequestsPerConnection: 1 }\n";

/// meshload's `Code NNN : COUNT (P %)` lines.
fn codes(r: &Run) -> BTreeMap<u16, u64> {
    // fortio (and meshload) print the report on stderr.
    r.stderr
        .lines()
        .chain(r.stdout.lines())
        .filter_map(|l| {
            let rest = l.strip_prefix("Code ")?;
            let (code, rest) = rest.split_once(" : ")?;
            let n = rest.split_whitespace().next()?;
            Some((code.trim().parse().ok()?, n.parse().ok()?))
        })
        .collect()
}

fn meshload(vms: &Vms, args: &[&str]) -> Run {
    let host = format!("Host: {HOST}");
    let mut all = vec!["-qps", "0", "-H", &host];
    all.extend_from_slice(args);
    all.push("http://127.0.0.1:15001/productpage");
    vms.run(1, false, bin("meshload").to_str().expect("path"), &all)
}

#[test]
fn productpage_one_connection_all_ok_three_connections_exact_share() {
    let vms = Vms::up(2);
    let gate = Gate::default();
    let app = GatedApp::start(&vms, 2, "productpage", gate.clone());
    let servers = [Server::in_vm(&vms, 2, "productpage-1", app.port, "v1")];
    let config = write_config(
        vms.dir.path(),
        &servers,
        &[vms.addr(1)],
        &destination_rule(POOL),
    );
    let client = meshd(&vms, 1, &config);
    let _server = meshd(&vms, 2, &config);

    // Three connections, the first request held: one connection's 7 calls are all refused.
    let run = std::thread::scope(|s| {
        let load = s.spawn(|| meshload(&vms, &["-c", "3", "-n", "21"]));
        eventually(
            "one connection's 7 calls refused while 1 is held and 1 queued",
            Duration::from_secs(25),
            || {
                let refused = cluster_stat(&client, OUTBOUND, "upstream_rq_pending_overflow");
                assert!(refused <= 7, "{refused} refused");
                (refused == 7
                    && app.held() == 1
                    && cluster_stat(&client, OUTBOUND, "upstream_rq_pending_active") == 1)
                    .then_some(())
            },
        );
        gate.open();
        load.join().expect("meshload thread")
    });
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(
        codes(&run),
        BTreeMap::from([(200, 14), (503, 7)]),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("Code 200 : 14 (66.7 %)"),
        "{}",
        run.stderr
    );
    assert_eq!(app.peak(), 1);

    // One connection: every call waits for the previous answer, 100 % 200.
    let run = meshload(&vms, &["-c", "1", "-n", "20"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(codes(&run), BTreeMap::from([(200, 20)]), "{}", run.stderr);
    assert_eq!(
        cluster_stat(&client, OUTBOUND, "upstream_rq_pending_overflow"),
        7
    );
}
