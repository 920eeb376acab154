//! Experiment 2 (examples/istio/slow-server with replicas): the DestinationRule's limits
//! (`maxConnections: 5`, `http1MaxPendingRequests: 1`) apply per destination service at each
//! client (outbound cluster) and per serving workload at each server (inbound cluster), with
//! apps that hold every request until the gate opens.
//!
//! * 1 client × 3 servers: still exactly 5 in flight at the client (not 2 per replica), spread
//!   2 + 2 + 1 by round robin;
//! * 3 clients × 1 server, bursts one after another: 7 × 200 and 23 × 503 — 4 `UO` at the
//!   first client, the other 19 refused at the other clients (`UO`) or by the server's inbound
//!   limits (503 with `x-envoy-overloaded`, attempts 1: never retried); 12 + 11 when every
//!   burst reaches its meshd before the first refusal comes back;
//! * 3 clients × 3 servers and × 4 servers: 15 in flight at the clients (5 each), and what
//!   reaches each server follows from round robin starting at the first host.
//!
//! To make the round-robin spread exact, the multi-server tests fire each client's 10 requests
//! one at a time, each settled (held at an app, queued, or answered) before the next.

use std::time::Duration;

use mesh_tests::eventually;
use mesh_tests::istio::{
    access_log, cluster_stat, count, destination_rule, meshd, write_config, Client, GatedApp, Got,
    Server, OUTBOUND,
};
use mesh_tests::vms::{VmMeshd, Vms};
use mesh_tests::Gate;

const POLICY: &str = "    loadBalancer: { simple: ROUND_ROBIN }\n    connectionPool:\n      tcp: { maxConnections: 5 }\n      http: { http1MaxPendingRequests: 1 }\n";

/// `clients` client VMs (1..) and `servers` server VMs after them, every app gated by one gate.
struct Fleet {
    apps: Vec<GatedApp>,
    client_mesh: Vec<VmMeshd>,
    server_mesh: Vec<VmMeshd>,
    clients: Vec<Client>,
    gate: Gate,
    vms: Vms,
}

impl Fleet {
    fn up(clients: usize, servers: usize) -> Fleet {
        let vms = Vms::up(clients + servers);
        let gate = Gate::default();
        let apps: Vec<GatedApp> = (0..servers)
            .map(|s| {
                GatedApp::start(
                    &vms,
                    clients + 1 + s,
                    &format!("pyserver-{}", s + 1),
                    gate.clone(),
                )
            })
            .collect();
        let entries: Vec<Server> = apps
            .iter()
            .enumerate()
            .map(|(s, a)| Server {
                name: format!("pyserver-{}", s + 1),
                addr: vms.addr(clients + 1 + s),
                port: a.port,
                version: "v1".into(),
            })
            .collect();
        let client_addrs: Vec<_> = (1..=clients).map(|i| vms.addr(i)).collect();
        let config = write_config(
            vms.dir.path(),
            &entries,
            &client_addrs,
            &destination_rule(POLICY),
        );
        let client_mesh = (1..=clients).map(|i| meshd(&vms, i, &config)).collect();
        let server_mesh = (0..servers)
            .map(|s| meshd(&vms, clients + 1 + s, &config))
            .collect();
        let clients = (1..=clients).map(|i| Client::new(&vms, i)).collect();
        Fleet {
            apps,
            client_mesh,
            server_mesh,
            clients,
            gate,
            vms,
        }
    }

    fn inbound(&self, s: usize) -> String {
        self.server_mesh[s].cluster("inbound|")
    }

    /// Requests queued in server `s`'s inbound cluster.
    fn server_pending(&self, s: usize) -> u64 {
        cluster_stat(
            &self.server_mesh[s],
            &self.inbound(s),
            "upstream_rq_pending_active",
        )
    }

    /// Every request fired so far is held at an app, queued at a client or a server, or answered.
    fn settled(&self) -> usize {
        let held: usize = self.apps.iter().map(GatedApp::held).sum();
        let server_q: u64 = (0..self.apps.len()).map(|s| self.server_pending(s)).sum();
        let client_q: u64 = self
            .client_mesh
            .iter()
            .map(|m| cluster_stat(m, OUTBOUND, "upstream_rq_pending_active"))
            .sum();
        let answered: usize = self.clients.iter().map(Client::answered).sum();
        held + server_q as usize + client_q as usize + answered
    }

    /// Client `c` fires 10 requests one at a time, each settled before the next.
    fn staged_burst(&mut self, c: usize) {
        for k in 0..10 {
            let before = self.settled();
            self.clients[c].fire(&format!("c{c}r{k}"));
            eventually(
                &format!("client {c}'s request {k} settled"),
                Duration::from_secs(20),
                || (self.settled() == before + 1).then_some(()),
            );
        }
    }

    /// (held at the app, queued at the server) per server, in server order.
    fn at_servers(&self) -> Vec<(usize, u64)> {
        (0..self.apps.len())
            .map(|s| (self.apps[s].held(), self.server_pending(s)))
            .collect()
    }

    fn finish(&mut self) -> Vec<Vec<Got>> {
        self.gate.open();
        self.clients.iter_mut().map(Client::finish).collect()
    }
}

#[test]
fn three_replicas_still_see_5_in_flight_from_one_client_spread_2_2_1() {
    let mut f = Fleet::up(1, 3);
    f.staged_burst(0);
    let m = &f.client_mesh[0];
    assert_eq!(cluster_stat(m, OUTBOUND, "upstream_rq_active"), 5);
    assert_eq!(cluster_stat(m, OUTBOUND, "upstream_cx_active"), 5);
    assert_eq!(cluster_stat(m, OUTBOUND, "upstream_rq_pending_active"), 1);
    assert_eq!(cluster_stat(m, OUTBOUND, "upstream_rq_pending_overflow"), 4);
    // Round robin from the first host: requests 1–5 go to hosts 1, 2, 3, 1, 2.
    assert_eq!(f.at_servers(), [(2, 0), (2, 0), (1, 0)]);
    let got = f.finish();
    assert_eq!(count(&got[0], 200, false), 6, "{:?}", got[0]);
    assert_eq!(count(&got[0], 503, true), 4, "{:?}", got[0]);
}

#[test]
fn three_clients_one_server_give_7_ok_and_23_refusals() {
    let mut f = Fleet::up(3, 1);
    // Client 1: 5 reach the app, 1 waits in its queue, 4 refused by its own meshd.
    f.clients[0].burst(10);
    eventually("client 1 settled", Duration::from_secs(20), || {
        (f.apps[0].held() == 5 && f.clients[0].answered() == 4).then_some(())
    });
    // Client 2: 5 reach the server's meshd, whose inbound pool is full: 1 waits there, 4 are
    // refused; each refusal frees a connection, so client 2's queued request goes too and is
    // refused (the server's queue is full): 4 UO + 5 refused by the server.
    f.clients[1].burst(10);
    eventually("client 2 settled", Duration::from_secs(20), || {
        (f.clients[1].answered() == 9 && f.server_pending(0) == 1).then_some(())
    });
    // Client 3: all 5 sent and its queued one refused by the server, 4 UO at home.
    f.clients[2].burst(10);
    eventually("client 3 settled", Duration::from_secs(20), || {
        (f.clients[2].answered() == 10).then_some(())
    });
    assert_eq!(f.apps[0].held(), 5);
    assert_eq!(f.server_pending(0), 1);
    // Client 1 refused exactly 4 itself (nothing came back during its burst). Of clients 2 and
    // 3, each request is refused either at home (UO, when it arrives while its 5 connections are
    // still busy) or by the server (when an earlier refusal already freed a connection): which
    // one depends on how fast the refusals come back, the sum does not.
    let local: Vec<u64> = f
        .client_mesh
        .iter()
        .map(|m| cluster_stat(m, OUTBOUND, "upstream_rq_pending_overflow"))
        .collect();
    assert_eq!(local[0], 4);
    let inbound = f.inbound(0);
    let by_server = cluster_stat(&f.server_mesh[0], &inbound, "upstream_rq_pending_overflow");
    assert_eq!(
        local.iter().sum::<u64>() + by_server,
        23,
        "{local:?} {by_server}"
    );
    let got = f.finish();
    let all: Vec<Got> = got.iter().flatten().cloned().collect();
    assert_eq!(count(&all, 200, false), 7, "{got:?}");
    assert_eq!(count(&all, 503, true), 23, "{got:?}");
    assert_eq!(got[0].len(), 10);
    assert_eq!(count(&got[0], 200, false), 6, "{:?}", got[0]);
    assert_eq!(count(&got[1], 200, false), 1, "{:?}", got[1]);
    assert_eq!(count(&got[2], 200, false), 0, "{:?}", got[2]);
    // At the clients: 12 refused locally (UO), 11 upstream 503s, none retried.
    let mut uo = 0;
    let mut upstream_503 = 0;
    for c in 1..=3 {
        for l in access_log(&f.vms, c, 10) {
            assert_eq!(l["upstream_request_attempt_count"], 1, "{l}");
            match (l["response_code"].as_u64(), l["response_flags"].as_str()) {
                (Some(503), Some("UO")) => uo += 1,
                (Some(503), Some("-")) => upstream_503 += 1,
                (Some(200), Some("-")) => {}
                _ => panic!("unexpected access-log line {l}"),
            }
        }
    }
    assert_eq!(uo + upstream_503, 23);
    assert_eq!((uo, upstream_503), (local.iter().sum::<u64>(), by_server));
}

/// 3 clients × `servers` servers, each client's requests staged; returns (held, queued) per
/// server while everything is held.
fn three_clients(servers: usize) -> Vec<(usize, u64)> {
    let mut f = Fleet::up(3, servers);
    for c in 0..3 {
        f.staged_burst(c);
    }
    for (c, m) in f.client_mesh.iter().enumerate() {
        let s = |n| cluster_stat(m, OUTBOUND, n);
        assert_eq!(
            (
                s("upstream_rq_active"),
                s("upstream_rq_pending_active"),
                s("upstream_rq_pending_overflow")
            ),
            (5, 1, 4),
            "client {c}"
        );
    }
    let at = f.at_servers();
    let got = f.finish();
    for g in &got {
        assert_eq!(count(g, 200, false), 6, "{g:?}");
        assert_eq!(count(g, 503, true), 4, "{g:?}");
    }
    at
}

#[test]
fn three_clients_three_servers_keep_15_in_flight() {
    // Each client: hosts 1, 2, 3, 1, 2 → 2 + 2 + 1; three clients: 6, 6, 3 → servers 1 and 2
    // hold 5 at the app and queue 1 (their inbound limit), server 3 holds 3.
    assert_eq!(three_clients(3), [(5, 1), (5, 1), (3, 0)]);
}

#[test]
fn three_clients_four_servers_keep_15_in_flight() {
    // Each client: hosts 1, 2, 3, 4, 1 → 2 + 1 + 1 + 1; three clients: 6, 3, 3, 3.
    assert_eq!(three_clients(4), [(5, 1), (3, 0), (3, 0), (3, 0)]);
}
