//! Clients that misbehave, end to end: one that sends its request head too slowly (slowloris),
//! one that keeps a connection idle, and one that leaves while its request is at the upstream.
//! Real meshd, a scripted upstream held by a gate, raw client sockets.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use mesh_tests::{eventually, OneNode, RawUpstream, ONE_NODE_CLUSTER};
use serde_json::json;

fn listener(m: &mesh_tests::Meshd) -> std::net::SocketAddr {
    m.listener("app-ingress")
}

/// Reads until the peer closes (bounded); returns how long that took.
fn wait_closed(s: &mut TcpStream) -> Duration {
    let t = Instant::now();
    s.set_read_timeout(Some(Duration::from_secs(15)))
        .expect("timeout");
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => return t.elapsed(),
            Ok(_) => continue,
        }
    }
}

#[test]
fn a_slow_request_head_is_cut_and_counted_apart_from_an_idle_keep_alive() {
    let upstream = RawUpstream::start(|c| {
        while c.next_request().is_some() {
            if !c.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok") {
                return false;
            }
        }
        false
    });
    let node = OneNode::write(json!({}));
    let m = node.start(upstream.addr, &["--request-headers-timeout", "1s"]);
    let addr = listener(&m);

    // Slowloris: a head that never completes.
    let mut slow = TcpStream::connect(addr).expect("connect");
    slow.write_all(b"GET / HTTP/1.1\r\nHost: app\r\nX-Slow: ")
        .expect("write");
    let took = wait_closed(&mut slow);
    assert!(took < Duration::from_secs(15), "still open after {took:?}");

    // A kept-alive connection that carried a request and then waits.
    let mut idle = TcpStream::connect(addr).expect("connect");
    idle.write_all(b"GET / HTTP/1.1\r\nHost: app\r\n\r\n")
        .expect("write");
    let mut head = [0u8; 64];
    let n = idle.read(&mut head).expect("response");
    assert!(head[..n].starts_with(b"HTTP/1.1 200"));
    wait_closed(&mut idle);

    eventually("both closes counted", Duration::from_secs(10), || {
        (m.stat("http.ingress.downstream_rq_header_timeout") == 1
            && m.stat("http.ingress.downstream_cx_idle_timeout") == 1)
            .then_some(())
    });
    assert_eq!(m.stat("http.ingress.downstream_cx_active"), 0);
}

#[test]
fn a_client_that_leaves_mid_request_gives_every_slot_back_and_is_logged_dc() {
    // An upstream that never answers: each connection waits (bounded) for meshd to close it.
    let upstream = RawUpstream::start(move |c| {
        if c.next_request().is_none() {
            return false;
        }
        c.peer_closed()
    });
    let node = OneNode::write(json!({
        "connectionPool": {"http": {"maxConnections": 3, "maxPendingRequests": 2}}
    }));
    let m = node.start(upstream.addr, &[]);
    let addr = listener(&m);
    let stat = |s: &str| m.stat(&format!("cluster.{ONE_NODE_CLUSTER}.{s}"));
    let remaining = |s: &str| {
        m.stat(&format!(
            "cluster.{ONE_NODE_CLUSTER}.circuit_breakers.default.{s}"
        ))
    };
    assert_eq!(remaining("remaining_cx"), 3);
    assert_eq!(remaining("remaining_pending"), 2);

    // Four requests: three at the upstream (each on its own connection), one queued.
    let mut clients: Vec<TcpStream> = (0..4)
        .map(|_| {
            let mut s = TcpStream::connect(addr).expect("connect");
            s.write_all(b"GET / HTTP/1.1\r\nHost: app\r\n\r\n")
                .expect("write");
            s
        })
        .collect();
    eventually(
        "3 at the upstream and 1 queued",
        Duration::from_secs(10),
        || {
            (stat("upstream_rq_active") == 3 && stat("upstream_rq_pending_active") == 1)
                .then_some(())
        },
    );
    assert_eq!(remaining("remaining_cx"), 0);
    assert_eq!(remaining("remaining_pending"), 1);

    // Every client leaves.
    for c in clients.drain(..) {
        let _ = c.shutdown(std::net::Shutdown::Both);
        drop(c);
    }
    eventually("every slot back", Duration::from_secs(10), || {
        (stat("upstream_rq_active") == 0
            && stat("upstream_rq_pending_active") == 0
            && m.stat("http.ingress.downstream_rq_active") == 0
            && remaining("remaining_rq") > 0
            && remaining("remaining_pending") == 2
            && remaining("remaining_cx") == 3)
            .then_some(())
    });
    // The upstream requests were cancelled: meshd closed every connection it opened and each
    // one that carried a request (3, or 4 when the queued request was handed a freed slot and
    // sent before its own client's close was seen) was closed by meshd, not left open.
    eventually(
        "upstream connections closed",
        Duration::from_secs(10),
        || {
            let closed = upstream
                .closed_by_peer
                .load(std::sync::atomic::Ordering::SeqCst) as u64;
            ((3..=4).contains(&closed)
                && closed <= stat("upstream_cx_total")
                && stat("upstream_cx_active") == 0)
                .then_some(())
        },
    );
    let log = node.access_log_lines(4);
    assert_eq!(
        log.lines().filter(|l| l.contains(" DC ")).count(),
        4,
        "{log}"
    );
    // The queued request left the queue either cancelled or handed a connection another
    // client freed first, depending on which client's close meshd saw first.
    assert!(stat("upstream_rq_cancelled") <= 1);
}
