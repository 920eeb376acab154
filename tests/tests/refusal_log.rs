//! meshd's log says when a cluster refuses requests, once: under systemd `journalctl -u meshd`
//! shows which cluster, which limit and which flag, without a line per refused request.

use std::time::Duration;

use mesh_tests::{eventually, http_get, Gate, OneNode, RawConn, RawUpstream, ONE_NODE_CLUSTER};
use serde_json::json;

#[test]
fn a_burst_of_refusals_is_one_warning_naming_cluster_limit_and_flag() {
    let gate = Gate::default();
    let held = gate.clone();
    let up = RawUpstream::start(move |c: &mut RawConn| {
        while c.next_request().is_some() {
            if !held.wait() || !c.write(b"HTTP/1.1 200 OK\r\ncontent-length: 3\r\n\r\nok\n") {
                return false;
            }
        }
        false
    });
    let node = OneNode::write(json!({"connectionPool": {"http": {
        "maxConnections": 1, "maxPendingRequests": 1}}}));
    let m = node.start(up.addr, &[]);
    let lis = m.listener("app-ingress");
    let url = format!("http://{lis}/held");
    // One request on the only connection, one in the queue: both held by the gate.
    let first = std::thread::spawn({
        let url = url.clone();
        move || http_get(&url)
    });
    eventually(
        "one request at the upstream",
        Duration::from_secs(10),
        || (m.stat(&format!("cluster.{ONE_NODE_CLUSTER}.upstream_rq_active")) == 1).then_some(()),
    );
    let second = std::thread::spawn(move || http_get(&url));
    eventually("one request queued", Duration::from_secs(10), || {
        (m.stat(&format!(
            "cluster.{ONE_NODE_CLUSTER}.upstream_rq_pending_active"
        )) == 1)
            .then_some(())
    });
    for _ in 0..5 {
        assert_eq!(http_get(&format!("http://{lis}/refused")).status, 503);
    }
    gate.open();
    assert_eq!(first.join().expect("first").status, 200);
    assert_eq!(second.join().expect("second").status, 200);

    let log = m.proc.stderr();
    let lines: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("refusing requests"))
        .collect();
    assert_eq!(lines.len(), 1, "one line for 5 refusals:\n{log}");
    assert!(
        lines[0].contains("WARN")
            && lines[0].contains(&format!(
                "cluster {ONE_NODE_CLUSTER}: refusing requests with 503 UO: at its \
                 max_pending_requests limit (1)"
            ))
            && lines[0].contains("flag=\"UO\""),
        "{}",
        lines[0]
    );
}
