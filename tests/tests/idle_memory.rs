//! What an idle downstream connection costs meshd once it has carried a large body: meshd's
//! server grows a connection's buffers with the body (up to `meshd::accept::MAX_CONN_BUF`,
//! 64 KiB) and releases them while the connection idles; hyper's server, before it, kept its
//! read buffer (up to ~400 KiB) for the life of the connection. Measured as meshd's VmRSS with
//! real clients holding real idle connections.

use std::time::Duration;

use mesh_tests::{eventually, walkthrough_config, DemoApp, Meshd};

/// Idle connections held.
const CONNS: usize = 100;
/// What each sends first (echoed back by the upstream).
const BODY: usize = 1 << 20;
/// The most an idle connection may keep: the 64 KiB buffer bound, the fixed per-connection
/// state and slack for the allocator. Unbounded, it is ~350-470 KiB. What this debug build
/// measures varies between ~10 and ~42 KiB from run to run (pages the allocator keeps from the
/// 1 MiB bodies count too), so the bound stays above the buffer bound rather than near the
/// ~1.7 KB per idle connection the release build shows with 10 000 (`bench/peers.sh`, idle).
const MAX_PER_CONN: u64 = 160 * 1024;

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("read status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .expect("VmRSS")
}

fn echo(agent: &ureq::Agent, url: &str, body: &str) {
    let r = agent
        .post(url)
        .send_string(body)
        .expect("POST through meshd");
    assert_eq!(r.status(), 200);
    assert_eq!(r.into_string().expect("body").len(), body.len());
}

#[test]
fn an_idle_connection_keeps_a_bounded_buffer_after_a_large_body() {
    let app = DemoApp::start("green", &[]);
    let (_dir, config) = walkthrough_config();
    let meshd = Meshd::start(
        &config,
        &[
            "--node",
            "green",
            "--listen",
            "green=127.0.0.1:0",
            "--app",
            &format!("green={}", app.addr),
        ],
    );
    let pid = meshd.proc.pid();
    let url = format!("http://{}/?echo=1", meshd.listener("green-ingress"));
    let body = "x".repeat(BODY);
    // Warm up on a connection that then closes: upstream connections, pools, the access log.
    for _ in 0..4 {
        echo(&mesh_tests::agent(), &url, &body);
    }
    let before = rss_kib(pid);

    // One keep-alive agent per connection, so each holds its own idle connection.
    let agents: Vec<ureq::Agent> = (0..CONNS)
        .map(|_| {
            let a = ureq::AgentBuilder::new()
                .timeout(Duration::from_secs(20))
                .build();
            echo(&a, &url, &body);
            a
        })
        .collect();
    eventually(
        "meshd to hold every idle connection",
        Duration::from_secs(20),
        || (meshd.stat("http.ingress.downstream_cx_active") == CONNS as u64).then_some(()),
    );
    let held = rss_kib(pid);
    let per_conn = held.saturating_sub(before) * 1024 / CONNS as u64;
    println!("meshd VmRSS: {before} KiB before, {held} KiB with {CONNS} idle connections that each carried {BODY} bytes: {per_conn} bytes per connection");
    assert!(
        per_conn <= MAX_PER_CONN,
        "{per_conn} bytes per idle connection, expected at most {MAX_PER_CONN}"
    );
    drop(agents);
}
