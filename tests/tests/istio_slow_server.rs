//! Experiment 1 (examples/istio/slow-server): a client fires 10 requests at once at a server
//! whose app holds every request (the seed's 5 s sleep, as a gate), with a DestinationRule
//! `maxConnections: 5`. Without a pending limit: exactly 5 at the app, 5 queued at the client.
//! With `http1MaxPendingRequests: 1`: exactly 5 at the app, exactly 1 queued (the client's
//! `upstream_rq_pending_active`), exactly 4 refused at once by the client's meshd (503 `UO`,
//! `x-envoy-overloaded`), from the first burst; once the gate opens the 6 others get 200.

use std::time::Duration;

use mesh_tests::eventually;
use mesh_tests::istio::{
    access_log, cluster_stat, count, destination_rule, meshd, write_config, Client, GatedApp,
    Server, OUTBOUND,
};
use mesh_tests::vms::Vms;
use mesh_tests::Gate;

/// Client in VM 1, server in VM 2, the rule's connection pool as given; 10 requests at once.
/// Returns the answers, after checking the held state: `at_app` at the app, `queued` in the
/// client's pending queue, the rest refused with `UO`.
fn ten_at_once(pool: &str, queued: u64) {
    let vms = Vms::up(2);
    let app = GatedApp::start(&vms, 2, "pyserver", Gate::default());
    let servers = [Server::in_vm(&vms, 2, "pyserver-1", app.port, "v1")];
    let config = write_config(
        vms.dir.path(),
        &servers,
        &[vms.addr(1)],
        &destination_rule(pool),
    );
    let client_mesh = meshd(&vms, 1, &config);
    let _server_mesh = meshd(&vms, 2, &config);

    let mut client = Client::new(&vms, 1);
    client.burst(10);
    let refused = 10 - 5 - queued as usize;
    eventually(
        "5 at the app, the rest queued or refused",
        Duration::from_secs(20),
        || {
            let pending = cluster_stat(&client_mesh, OUTBOUND, "upstream_rq_pending_active");
            (app.held() == 5 && pending == queued && client.answered() == refused).then_some(())
        },
    );
    // Refused at once, by the client's own meshd, while the others are still held.
    let early = client.answers();
    assert!(
        early.iter().all(|g| g.status == 503 && g.overloaded),
        "{early:?}"
    );
    assert_eq!(
        cluster_stat(&client_mesh, OUTBOUND, "upstream_rq_pending_overflow"),
        refused as u64
    );
    assert_eq!(
        cluster_stat(&client_mesh, OUTBOUND, "upstream_cx_active"),
        5
    );
    assert_eq!(
        cluster_stat(&client_mesh, OUTBOUND, "upstream_rq_active"),
        5
    );
    let log = access_log(&vms, 1, refused);
    let uo = log
        .iter()
        .filter(|l| l["response_code"] == 503 && l["response_flags"] == "UO")
        .count();
    assert_eq!(uo, refused, "{log:?}");

    app.gate.open();
    let all = client.finish();
    assert_eq!(count(&all, 200, false), 5 + queued as usize, "{all:?}");
    assert_eq!(count(&all, 503, true), refused, "{all:?}");
    // Never more than 5 at the app: the queued ones went after the first 5.
    assert_eq!(app.peak(), 5);
    assert_eq!(app.served(), 5 + queued as usize);
}

#[test]
fn max_connections_5_serves_5_at_a_time_and_queues_the_rest() {
    ten_at_once("    connectionPool:\n      tcp: { maxConnections: 5 }\n", 5);
}

#[test]
fn max_connections_5_pending_1_refuses_exactly_4_at_once() {
    ten_at_once(
        "    connectionPool:\n      tcp: { maxConnections: 5 }\n      http: { http1MaxPendingRequests: 1 }\n",
        1,
    );
}
