//! meshd's request path under faults: an upstream that stalls after its headers, timeouts
//! before and after the response started, the drain on SIGTERM/SIGINT, an upstream that closes
//! its keep-alive connections after each response, and malformed messages both ways. Real meshd,
//! real sockets; upstreams are demo-app or a scripted raw-TCP server ([`RawUpstream`]).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::Command;
use std::time::Duration;

use mesh_tests::{
    bin, eventually, http, http_get, run_bounded, signal, walkthrough_config, DemoApp, Gate, Meshd,
    OneNode, RawConn, RawUpstream, ONE_NODE_CLUSTER,
};
use serde_json::json;

const C: &str = ONE_NODE_CLUSTER;

/// Sends `request` on a new connection and reads until the server closes it. Returns what came
/// back and whether the server closed the connection (false: still open after `timeout`).
fn exchange(addr: SocketAddr, request: &[u8], timeout: Duration) -> (String, bool) {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(timeout)).expect("timeout");
    s.write_all(request).expect("send request");
    mesh_tests::read_to_close(&mut s)
}

/// Reads one response with a `content-length` from a kept-alive connection.
fn read_one_response(s: &mut TcpStream) -> String {
    let mut out = Vec::new();
    let mut byte = [0u8; 1];
    while !out.ends_with(b"\r\n\r\n") {
        assert_eq!(s.read(&mut byte).expect("read head"), 1, "EOF in head");
        out.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&out).into_owned();
    let len: usize = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-length: ")
                .map(str::to_owned)
        })
        .and_then(|v| v.trim().parse().ok())
        .expect("content-length");
    let mut body = vec![0u8; len];
    s.read_exact(&mut body).expect("read body");
    head + &String::from_utf8_lossy(&body)
}

/// Every slot of the request is back: request, connection and pending slots of each cluster
/// (a gateway's self-redirect "connections" stay open like kept-alive ones: name it in
/// `slot_clusters`, whose connections are not checked), and the listener's active request.
fn slots_back(m: &Meshd, clusters: &[&str], slot_clusters: &[&str], listener_prefix: &str) {
    let mut gauges: Vec<String> = vec![format!("{listener_prefix}downstream_rq_active")];
    for c in clusters.iter().chain(slot_clusters) {
        gauges.push(format!("cluster.{c}.upstream_rq_active"));
        gauges.push(format!("cluster.{c}.upstream_rq_pending_active"));
    }
    for c in clusters {
        gauges.push(format!("cluster.{c}.upstream_cx_active"));
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let st = m.stats();
        let busy: Vec<(&String, u64)> = gauges
            .iter()
            .map(|g| (g, st.get(g).copied().unwrap_or(0)))
            .filter(|(_, v)| *v != 0)
            .collect();
        if busy.is_empty() {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "slots still taken: {busy:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// An upstream that answers each request with a head promising 100 bytes, sends 7 of them and
/// then waits for meshd to close the connection.
fn stalling_upstream() -> RawUpstream {
    RawUpstream::start(|c: &mut RawConn| {
        if c.next_request().is_none() {
            return false;
        }
        c.write(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\npartial");
        c.peer_closed()
    })
}

fn timeouts(idle: serde_json::Value, per_request: serde_json::Value) -> serde_json::Value {
    json!({"timeout": {"http": {"idle": idle, "perRequest": per_request}}})
}

fn ms(v: u64) -> serde_json::Value {
    json!({"unit": "ms", "value": v})
}

#[test]
fn headers_then_stall_is_cut_by_the_stream_idle_timeout_and_every_slot_comes_back() {
    let up = stalling_upstream();
    let node = OneNode::write(timeouts(ms(300), ms(60_000)));
    let m = node.start(up.addr, &[]);
    let lis = m.listener("app-ingress");
    let (got, closed) = exchange(
        lis,
        b"GET /stall HTTP/1.1\r\nhost: app\r\n\r\n",
        Duration::from_secs(10),
    );
    assert!(got.starts_with("HTTP/1.1 200"), "{got}");
    assert!(got.ends_with("partial"), "{got}");
    assert!(closed, "meshd must cut the stalled response:\n{got}");
    slots_back(&m, &[C], &[], "http.ingress.");
    assert_eq!(m.stat("http.ingress.downstream_rq_idle_timeout"), 1);
    assert_eq!(m.stat("http.ingress.downstream_rq_tx_reset"), 1);
    assert_eq!(m.stat(&format!("cluster.{C}.upstream_rq_timeout")), 0);
    eventually(
        "the upstream connection closed by meshd",
        Duration::from_secs(10),
        || (up.closed_by_peer.load(std::sync::atomic::Ordering::SeqCst) == 1).then_some(()),
    );
    let log = node.access_log_lines(1);
    assert!(log.contains("\"GET /stall HTTP/1.1\" 200 SI 0 7 "), "{log}");
    assert!(!log.contains(" DC "), "{log}");
}

#[test]
fn the_per_request_timeout_covers_the_whole_response() {
    let up = stalling_upstream();
    let node = OneNode::write(timeouts(ms(60_000), ms(400)));
    let m = node.start(up.addr, &[]);
    let lis = m.listener("app-ingress");
    let (got, closed) = exchange(
        lis,
        b"GET /slow-body HTTP/1.1\r\nhost: app\r\n\r\n",
        Duration::from_secs(10),
    );
    assert!(got.starts_with("HTTP/1.1 200"), "{got}");
    assert!(closed, "meshd must cut the response at the timeout:\n{got}");
    slots_back(&m, &[C], &[], "http.ingress.");
    assert_eq!(m.stat(&format!("cluster.{C}.upstream_rq_timeout")), 1);
    assert_eq!(m.stat("http.ingress.downstream_rq_idle_timeout"), 0);
    let clusters = http_get(&m.url("/clusters")).body;
    assert!(
        clusters.contains(&format!("{C}::{}::rq_timeout::1\n", up.addr)),
        "{clusters}"
    );
    let log = node.access_log_lines(1);
    assert!(log.contains("\"GET /slow-body HTTP/1.1\" 200 UT "), "{log}");
    eventually(
        "the upstream connection closed",
        Duration::from_secs(10),
        || (up.closed_by_peer.load(std::sync::atomic::Ordering::SeqCst) == 1).then_some(()),
    );
}

#[test]
fn a_stream_idle_before_the_response_answers_504_or_408_with_si() {
    // Reads the request and never answers.
    let up = RawUpstream::start(|c: &mut RawConn| {
        if c.next_request().is_none() {
            return false;
        }
        c.peer_closed()
    });
    let node = OneNode::write(timeouts(ms(300), ms(60_000)));
    let m = node.start(up.addr, &[]);
    let lis = m.listener("app-ingress");
    // The request is complete: the upstream is late, 504.
    let r = http_get(&format!("http://{lis}/quiet"));
    assert_eq!((r.status, r.body.as_str()), (504, "stream timeout"));
    // The request body is still missing bytes: the client is late, 408.
    let (got, closed) = exchange(
        lis,
        b"POST /upload HTTP/1.1\r\nhost: app\r\ncontent-length: 10\r\n\r\nabc",
        Duration::from_secs(10),
    );
    assert!(got.starts_with("HTTP/1.1 408"), "{got}");
    assert!(got.ends_with("stream timeout"), "{got}");
    assert!(closed, "a 408 ends the connection:\n{got}");
    slots_back(&m, &[C], &[], "http.ingress.");
    assert_eq!(m.stat("http.ingress.downstream_rq_idle_timeout"), 2);
    let log = node.access_log_lines(2);
    assert!(log.contains("\"GET /quiet HTTP/1.1\" 504 SI "), "{log}");
    assert!(log.contains("\"POST /upload HTTP/1.1\" 408 SI 3 "), "{log}");
}

#[test]
fn a_request_queued_for_a_connection_gets_its_pending_slot_back_at_the_timeout() {
    // The first request holds the only connection, kept busy by a byte every 50 ms (well under
    // the 1 s idle timeout) until the gate opens; the second waits in the pending queue, where
    // nothing moves, until its stream idle timeout answers 504 SI.
    let gate = Gate::default();
    let drip = gate.clone();
    let up = RawUpstream::start(move |c: &mut RawConn| {
        if c.next_request().is_none() {
            return false;
        }
        c.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n");
        for _ in 0..400 {
            if drip.is_open() {
                break;
            }
            if !c.write(b"1\r\nx\r\n") {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50)); // pacing, not synchronisation
        }
        c.write(b"0\r\n\r\n");
        false
    });
    let mut listener = timeouts(ms(1000), ms(60_000));
    listener["connectionPool"] = json!({"http": {"maxConnections": 1, "maxPendingRequests": 1}});
    let node = OneNode::write(listener);
    let m = node.start(up.addr, &[]);
    let lis = m.listener("app-ingress");
    let first = std::thread::spawn(move || http_get(&format!("http://{lis}/busy")));
    eventually(
        "the first request on the connection",
        Duration::from_secs(10),
        || (m.stat(&format!("cluster.{C}.upstream_rq_active")) == 1).then_some(()),
    );
    let queued = http_get(&format!("http://{lis}/queued"));
    assert_eq!(
        (queued.status, queued.body.as_str()),
        (504, "stream timeout")
    );
    assert_eq!(m.stat(&format!("cluster.{C}.upstream_rq_pending_total")), 1);
    assert_eq!(
        m.stat(&format!("cluster.{C}.upstream_rq_pending_active")),
        0
    );
    gate.open();
    let first = first.join().expect("first request");
    assert_eq!(first.status, 200);
    assert!(first.body.starts_with("xxx"), "{first:?}");
    slots_back(&m, &[], &[], "http.ingress.");
    let log = node.access_log_lines(2);
    assert!(log.contains("\"GET /queued HTTP/1.1\" 504 SI "), "{log}");
    assert!(log.contains("\"GET /busy HTTP/1.1\" 200 - "), "{log}");
}

#[test]
fn a_gateway_request_cut_by_a_route_idle_timeout_returns_every_slot_of_every_hop() {
    const GW: &str = "cds_ingress_color-mesh_ingress-gw_self_redirect_http_8088";
    const EGRESS: &str = "cds_egress_color-mesh_green_http_8080";
    const GREEN: &str = "cds_ingress_color-mesh_green_http_8080";
    let up = stalling_upstream();
    let (dir, config) = walkthrough_config();
    let route = config.join("route-green.json");
    let mut v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&route).expect("read")).expect("json");
    v["spec"]["httpRoute"]["timeout"] = json!({"idle": ms(300)});
    std::fs::write(&route, v.to_string()).expect("write");
    let green_app = format!("green={}", up.addr);
    let m = Meshd::start(
        &config,
        &[
            "--node",
            "ingress-gw",
            "--node",
            "green",
            "--listen",
            "ingress-gw=127.0.0.1:0",
            "--listen",
            "green=127.0.0.1:0",
            "--app",
            &green_app,
        ],
    );
    let gw = m.listener("ingress-gw-gateway");
    let (got, closed) = exchange(
        gw,
        b"GET /paths/green/stall HTTP/1.1\r\nhost: gw\r\n\r\n",
        Duration::from_secs(10),
    );
    assert!(got.starts_with("HTTP/1.1 200"), "{got}");
    assert!(closed, "the gateway must cut the stalled response:\n{got}");
    slots_back(&m, &[EGRESS, GREEN], &[GW], "node.ingress-gw.http.ingress.");
    slots_back(&m, &[], &[], "node.green.http.ingress.");
    assert_eq!(
        m.stat("node.ingress-gw.http.ingress.downstream_rq_idle_timeout"),
        1
    );
    let log = eventually("2 access log lines", Duration::from_secs(10), || {
        let l = std::fs::read_to_string(dir.path().join("access.log")).unwrap_or_default();
        (l.lines().count() >= 2).then_some(l)
    });
    // The gateway cut it (SI); the green node saw its client (the gateway) leave (DC).
    assert!(
        log.lines()
            .any(|l| l.contains("\"GET /paths/green/stall HTTP/1.1\" 200 SI ")),
        "{log}"
    );
    assert!(log.lines().any(|l| l.contains(" 200 DC ")), "{log}");
}

/// An upstream that holds every response until `gate` opens (except `GET /early`, answered at
/// once); it keeps connections alive.
fn gated_upstream(gate: &Gate) -> RawUpstream {
    let gate = gate.clone();
    RawUpstream::start(move |c: &mut RawConn| {
        while let Some(head) = c.next_request() {
            if !head.starts_with("GET /early") && !gate.wait() {
                return false;
            }
            if !c.write(b"HTTP/1.1 200 OK\r\ncontent-length: 3\r\n\r\nok\n") {
                return true;
            }
        }
        false
    })
}

#[test]
fn sigterm_drains_in_flight_requests_refuses_new_connections_and_exits_0() {
    let gate = Gate::default();
    let up = gated_upstream(&gate);
    let node = OneNode::write(json!({}));
    let mut m = node.start(up.addr, &[]);
    let lis = m.listener("app-ingress");

    // An idle kept-alive client connection: its request was answered before the signal.
    let mut idle = TcpStream::connect(lis).expect("connect");
    idle.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    idle.write_all(b"GET /early HTTP/1.1\r\nhost: app\r\n\r\n")
        .expect("send");
    let first = read_one_response(&mut idle);
    assert!(first.starts_with("HTTP/1.1 200"), "{first}");

    // Four requests in flight, three on their own connections and one on a kept-alive
    // connection that must be ended by its response.
    let url = format!("http://{lis}/slow");
    let slow: Vec<_> = (0..3)
        .map(|_| {
            let url = url.clone();
            std::thread::spawn(move || http_get(&url))
        })
        .collect();
    let kept = std::thread::spawn(move || {
        exchange(
            lis,
            b"GET /slow-kept HTTP/1.1\r\nhost: app\r\n\r\n",
            Duration::from_secs(15),
        )
    });
    eventually("4 requests in flight", Duration::from_secs(10), || {
        (m.stat("http.ingress.downstream_rq_active") == 4).then_some(())
    });

    signal(m.proc.pid(), "TERM");
    eventually(
        "new connections refused while draining",
        Duration::from_secs(10),
        || TcpStream::connect(lis).is_err().then_some(()),
    );
    // The admin endpoint still answers, and the requests are still in flight (the gate holds).
    assert_eq!(m.stat("http.ingress.downstream_rq_active"), 4);
    // `/ready` says it is draining, as Envoy's 503, so a load balancer stops sending here.
    let ready = mesh_tests::http_get(&m.url("/ready"));
    assert_eq!((ready.status, ready.body.as_str()), (503, "DRAINING\n"));
    // The idle kept-alive connection was closed at the drain's start.
    let mut rest = Vec::new();
    assert!(
        idle.read_to_end(&mut rest).is_ok(),
        "meshd closes idle kept-alive connections when the drain starts"
    );

    gate.open();
    for t in slow {
        let r = t.join().expect("slow request");
        assert_eq!((r.status, r.body.as_str()), (200, "ok\n"));
    }
    let (got, closed) = kept.join().expect("kept-alive request");
    assert!(got.starts_with("HTTP/1.1 200"), "{got}");
    assert!(
        got.to_ascii_lowercase().contains("connection: close"),
        "{got}"
    );
    assert!(
        closed,
        "the response ends a kept-alive connection while draining"
    );
    assert_eq!(m.proc.wait_exit(Duration::from_secs(10)), Some(0));
    let err = m.proc.stderr();
    assert!(
        err.contains("drain started") && err.contains("in_flight=4"),
        "{err}"
    );
    assert!(
        err.contains("drain finished") && err.contains("cut=0"),
        "{err}"
    );
    let log = node.access_log_lines(5);
    assert_eq!(
        log.lines().filter(|l| l.contains("\" 200 - ")).count(),
        5,
        "{log}"
    );
}

#[test]
fn a_request_still_running_at_the_drain_deadline_is_cut_and_logged_lr_not_dc() {
    let gate = Gate::default();
    let up = gated_upstream(&gate);
    let node = OneNode::write(json!({}));
    let mut m = node.start(up.addr, &["--drain-timeout", "300ms"]);
    let lis = m.listener("app-ingress");
    let client = std::thread::spawn(move || {
        exchange(
            lis,
            b"GET /forever HTTP/1.1\r\nhost: app\r\n\r\n",
            Duration::from_secs(15),
        )
    });
    eventually("the request in flight", Duration::from_secs(10), || {
        (m.stat("http.ingress.downstream_rq_active") == 1).then_some(())
    });
    signal(m.proc.pid(), "INT");
    assert_eq!(m.proc.wait_exit(Duration::from_secs(10)), Some(0));
    let (got, closed) = client.join().expect("client");
    assert!(closed, "meshd closed the connection at the deadline: {got}");
    gate.open();
    let err = m.proc.stderr();
    assert!(
        err.contains("drain finished") && err.contains("cut=1"),
        "{err}"
    );
    let log = node.access_log_lines(1);
    assert!(log.contains("\"GET /forever HTTP/1.1\" 0 LR "), "{log}");
    assert!(!log.contains("DC"), "{log}");
}

#[test]
fn an_upstream_that_closes_after_each_response_fails_no_request_at_full_rate() {
    // Answers one request per connection, without `connection: close`, then closes.
    let up = RawUpstream::start(|c: &mut RawConn| {
        if c.next_request().is_some() {
            c.write(b"HTTP/1.1 200 OK\r\ncontent-length: 3\r\n\r\nok\n");
        }
        false
    });
    let node = OneNode::write(json!({}));
    let m = node.start(up.addr, &[]);
    let lis = m.listener("app-ingress");
    let mut cmd = Command::new(bin("meshload"));
    cmd.args(["-c", "8", "-qps", "0", "-n", "2000", "-loglevel", "Warning"])
        .arg(format!("http://{lis}/"));
    let r = run_bounded(cmd, "meshload");
    assert!(
        r.stderr.contains("Code 200 : 2000 (100.0 %)"),
        "{}\nresent: {}",
        r.stderr,
        m.stat(&format!("cluster.{C}.upstream_rq_resent_on_new_cx"))
    );
    eprintln!(
        "resent on a new connection: {}, upstream connections: {}",
        m.stat(&format!("cluster.{C}.upstream_rq_resent_on_new_cx")),
        m.stat(&format!("cluster.{C}.upstream_cx_total"))
    );
}

#[test]
fn an_invalid_chunked_request_body_is_400_dpe() {
    let app = DemoApp::start("green", &[]);
    let node = OneNode::write(json!({}));
    let m = node.start(app.addr, &[]);
    let lis = m.listener("app-ingress");
    let (got, _) = exchange(
        lis,
        b"POST /?echo=1 HTTP/1.1\r\nhost: app\r\ntransfer-encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n",
        Duration::from_secs(10),
    );
    assert!(got.starts_with("HTTP/1.1 400"), "{got}");
    let log = node.access_log_lines(1);
    assert!(log.contains("\"POST /?echo=1 HTTP/1.1\" 400 DPE "), "{log}");
    // A codec error on the connection, as Envoy counts it (the connection has closed, its
    // end is counted as the server's connection task finishes).
    eventually(
        "downstream_cx_protocol_error counted",
        Duration::from_secs(10),
        || (m.stat("http.ingress.downstream_cx_protocol_error") == 1).then_some(()),
    );
    slots_back(&m, &[C], &[], "http.ingress.");
}

#[test]
fn http11_without_host_is_400_and_http10_without_host_is_served() {
    let app = DemoApp::start("green", &[]);
    let node = OneNode::write(json!({}));
    let m = node.start(app.addr, &[]);
    let lis = m.listener("app-ingress");
    let (got, _) = exchange(lis, b"GET / HTTP/1.1\r\n\r\n", Duration::from_secs(10));
    assert!(got.starts_with("HTTP/1.1 400"), "{got}");
    let (got, _) = exchange(lis, b"GET / HTTP/1.0\r\n\r\n", Duration::from_secs(10));
    assert!(
        got.starts_with("HTTP/1.0 200") || got.starts_with("HTTP/1.1 200"),
        "{got}"
    );
    assert_eq!(app.stats()["requests_total"], 1, "only the HTTP/1.0 one");
}

#[test]
fn headers_named_in_connection_are_not_forwarded_either_way() {
    let app = DemoApp::start("green", &[]);
    let node = OneNode::write(json!({}));
    let m = node.start(app.addr, &[]);
    let lis = m.listener("app-ingress");
    let (got, _) = exchange(
        lis,
        b"GET /?headers=1 HTTP/1.1\r\nhost: app\r\nconnection: x-secret, close\r\nx-secret: 1\r\nx-keep: 2\r\n\r\n",
        Duration::from_secs(10),
    );
    let body = got.split("\r\n\r\n").nth(1).unwrap_or_default();
    assert!(body.contains("x-keep: 2\n"), "{got}");
    assert!(
        !body.contains("x-secret"),
        "x-secret reached the app:\n{got}"
    );

    let up = RawUpstream::start(|c: &mut RawConn| {
        while c.next_request().is_some() {
            c.write(b"HTTP/1.1 200 OK\r\nconnection: x-hop\r\nx-hop: 1\r\nx-end: 2\r\ncontent-length: 3\r\n\r\nok\n");
        }
        false
    });
    let node = OneNode::write(json!({}));
    let m = node.start(up.addr, &[]);
    let r = http_get(&format!("http://{}/", m.listener("app-ingress")));
    assert_eq!(r.status, 200);
    assert_eq!(r.header("x-end"), Some("2"));
    assert_eq!(r.header("x-hop"), None, "{:?}", r.headers);
}

#[test]
fn an_upstream_response_head_above_60_kib_is_502_upe() {
    let up = RawUpstream::start(|c: &mut RawConn| {
        while let Some(head) = c.next_request() {
            let kib = if head.starts_with("GET /big") { 70 } else { 50 };
            let mut resp = b"HTTP/1.1 200 OK\r\nx-big: ".to_vec();
            resp.extend(std::iter::repeat_n(b'a', kib * 1024));
            resp.extend(b"\r\ncontent-length: 3\r\n\r\nok\n");
            if !c.write(&resp) {
                return true;
            }
        }
        false
    });
    let node = OneNode::write(json!({}));
    let m = node.start(up.addr, &[]);
    let lis = m.listener("app-ingress");
    assert_eq!(http_get(&format!("http://{lis}/small")).status, 200);
    let r = http("GET", &format!("http://{lis}/big"), &[], None);
    assert_eq!(r.status, 502);
    assert_eq!(
        r.body,
        "upstream connect error or disconnect/reset before headers. reset reason: protocol error"
    );
    assert_eq!(
        m.stat(&format!("cluster.{C}.upstream_cx_protocol_error")),
        1
    );
    let log = node.access_log_lines(2);
    assert!(log.contains("\"GET /big HTTP/1.1\" 502 UPE "), "{log}");
    slots_back(&m, &[C], &[], "http.ingress.");
}

#[test]
fn an_idle_connection_the_upstream_closes_gives_back_its_slot_without_a_request() {
    // Answers one request on a keep-alive connection, then closes it once the gate opens: the
    // connection is idle in meshd's pool by then.
    let gate = Gate::default();
    let closer = gate.clone();
    let up = RawUpstream::start(move |c: &mut RawConn| {
        if c.next_request().is_some() {
            c.write(b"HTTP/1.1 200 OK\r\ncontent-length: 3\r\n\r\nok\n");
            closer.wait();
        }
        false
    });
    let node = OneNode::write(json!({}));
    let m = node.start(up.addr, &[]);
    let (resp, _) = exchange(
        m.listener("app-ingress"),
        b"GET / HTTP/1.1\r\nhost: app\r\nconnection: close\r\n\r\n",
        Duration::from_secs(5),
    );
    assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");
    let active = format!("cluster.{C}.upstream_cx_active");
    assert_eq!(m.stat(&active), 1, "the connection is pooled");
    gate.open();
    // No request comes: meshd's sweep of quiet clusters (once a second) finds it closed.
    eventually(
        "the closed idle connection to be dropped",
        Duration::from_secs(10),
        || (m.stat(&active) == 0).then_some(()),
    );
    assert_eq!(m.stat(&format!("cluster.{C}.upstream_cx_total")), 1);
}
