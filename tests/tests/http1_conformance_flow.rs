//! meshd's HTTP/1 message flow, pinned before the HTTP path is replaced (issue 15): bodies
//! stream both ways (gated, never timed), `Expect: 100-continue`, pipelining, keep-alive and
//! close, hop-by-hop headers both ways, and an upstream that frames its response badly (502
//! `UPE`). Raw TCP client, real meshd, scripted raw upstream. The parsing and smuggling side is
//! in `http1_conformance.rs`.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::mpsc;
use std::time::Duration;

use mesh_tests::{read_to_close, DemoApp, OneNode, RawConn, RawUpstream, ONE_NODE_CLUSTER};
use serde_json::json;

const TIMEOUT: Duration = Duration::from_secs(10);
/// Bound of every wait on a gate or an upstream event.
const WAIT: Duration = Duration::from_secs(20);

fn connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(TIMEOUT)).expect("timeout");
    s
}

/// Reads until `out` contains `needle` (bounded by the read timeout); panics otherwise.
fn read_until(s: &mut TcpStream, out: &mut Vec<u8>, needle: &[u8]) {
    let mut chunk = [0u8; 16 * 1024];
    while !out.windows(needle.len()).any(|w| w == needle) {
        let n = s.read(&mut chunk).unwrap_or(0);
        assert!(
            n > 0,
            "no {:?} in {:?}",
            String::from_utf8_lossy(needle),
            String::from_utf8_lossy(out)
        );
        out.extend_from_slice(&chunk[..n]);
    }
}

#[test]
fn a_chunked_request_body_reaches_the_upstream_before_the_client_finished_sending() {
    // The upstream reports the first body bytes it got; the client holds the rest until then.
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (first_tx, first_rx) = mpsc::channel();
    let (total_tx, total_rx) = mpsc::channel();
    std::thread::spawn(move || {
        let Ok((mut s, _)) = listener.accept() else {
            return;
        };
        let _ = s.set_read_timeout(Some(WAIT));
        let mut buf = Vec::new();
        let mut chunk = [0u8; 64 * 1024];
        let mut head_end = None;
        let mut told = false;
        // Reads until the chunked terminator (meshd re-frames; sizes may differ).
        while !buf.ends_with(b"\r\n0\r\n\r\n") {
            let Ok(n) = s.read(&mut chunk) else { return };
            if n == 0 {
                return;
            }
            buf.extend_from_slice(&chunk[..n]);
            if head_end.is_none() {
                head_end = buf.windows(4).position(|w| w == b"\r\n\r\n").map(|i| i + 4);
            }
            if let Some(h) = head_end {
                if !told && buf.len() > h + 1024 {
                    told = true;
                    let _ = first_tx.send(());
                }
            }
        }
        let ones = buf[head_end.unwrap_or(0)..]
            .iter()
            .filter(|b| **b == b'x')
            .count();
        let _ = total_tx.send(ones);
        let _ = s.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok");
    });
    let node = OneNode::write(json!({}));
    let m = node.start(addr, &[]);
    let mut c = connect(m.listener("app-ingress"));
    c.write_all(
        b"POST /up HTTP/1.1\r\nhost: app\r\nconnection: close\r\ntransfer-encoding: chunked\r\n\r\n",
    )
        .expect("head");
    let piece = vec![b'x'; 64 * 1024];
    let frame = [format!("{:x}\r\n", piece.len()).as_bytes(), &piece, b"\r\n"].concat();
    c.write_all(&frame).expect("first chunk");
    first_rx
        .recv_timeout(WAIT)
        .expect("the upstream saw the first chunk while the client still held the rest");
    for _ in 1..16 {
        c.write_all(&frame).expect("next chunk");
    }
    c.write_all(b"0\r\n\r\n").expect("last chunk");
    let (got, _) = read_to_close(&mut c);
    assert!(got.starts_with("HTTP/1.1 200"), "{got}");
    assert_eq!(total_rx.recv_timeout(WAIT).expect("total"), 1024 * 1024);
}

#[test]
fn a_streamed_response_body_reaches_the_client_chunk_by_chunk() {
    let (gate_tx, gate_rx) = mpsc::channel::<()>();
    let gate_rx = std::sync::Mutex::new(gate_rx);
    let up = RawUpstream::start(move |c: &mut RawConn| {
        if c.next_request().is_none() {
            return false;
        }
        c.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n6\r\nfirst-\r\n");
        let open = gate_rx
            .lock()
            .map(|rx| rx.recv_timeout(WAIT).is_ok())
            .unwrap_or(false);
        if open {
            c.write(b"6\r\nsecond\r\n0\r\n\r\n");
        }
        false
    });
    let node = OneNode::write(json!({}));
    let m = node.start(up.addr, &[]);
    let mut c = connect(m.listener("app-ingress"));
    c.write_all(b"GET / HTTP/1.1\r\nhost: app\r\nconnection: close\r\n\r\n")
        .expect("send");
    let mut out = Vec::new();
    read_until(&mut c, &mut out, b"first-");
    assert!(
        !out.windows(6).any(|w| w == b"second"),
        "{}",
        String::from_utf8_lossy(&out)
    );
    gate_tx.send(()).expect("open the gate");
    read_until(&mut c, &mut out, b"second");
    let text = String::from_utf8_lossy(&out);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
}

#[test]
fn expect_100_continue_gets_100_or_the_answer_and_the_body_arrives_once() {
    let app = DemoApp::start("green", &[]);
    let node = OneNode::write(json!({}));
    let m = node.start(app.addr, &[]);
    let mut c = connect(m.listener("app-ingress"));
    c.write_all(
        b"POST /?echo=1 HTTP/1.1\r\nhost: app\r\ncontent-length: 5\r\nexpect: 100-continue\r\nconnection: close\r\n\r\n",
    )
    .expect("head");
    let mut out = Vec::new();
    read_until(&mut c, &mut out, b"\r\n\r\n");
    let first = String::from_utf8_lossy(&out).into_owned();
    // RFC 9110 §10.1.1: either a 100 comes first (meshd started reading the body), or the
    // final answer's head does (the echo app streams its answer back as it reads, and its
    // head may reach meshd first); either way the body is sent and arrives once.
    assert!(
        first.starts_with("HTTP/1.1 100") || first.starts_with("HTTP/1.1 200"),
        "{first}"
    );
    c.write_all(b"hello").expect("body");
    let (rest, closed) = read_to_close(&mut c);
    assert!(closed, "{rest}");
    let all = first + &rest;
    let after = match all.strip_prefix("HTTP/1.1 100") {
        Some(_) => all.split_once("\r\n\r\n").expect("the 100's end").1,
        None => all.as_str(),
    };
    assert!(after.starts_with("HTTP/1.1 200"), "{all}");
    assert!(after.ends_with("\r\n\r\nhello"), "{all}");
    assert_eq!(app.stats()["requests_total"], 1);
}

#[test]
fn pipelined_requests_are_answered_in_order() {
    let app = DemoApp::start("green", &[]);
    let node = OneNode::write(json!({}));
    let m = node.start(app.addr, &[]);
    let mut c = connect(m.listener("app-ingress"));
    // The first is slower than the second: order comes from the connection, not the app.
    c.write_all(
        b"GET /?sleep=200&status=201 HTTP/1.1\r\nhost: app\r\n\r\nGET /?status=202 HTTP/1.1\r\nhost: app\r\nconnection: close\r\n\r\n",
    )
    .expect("send");
    let (got, closed) = read_to_close(&mut c);
    assert!(closed, "{got}");
    let a = got.find("HTTP/1.1 201").expect(&got);
    let b = got.find("HTTP/1.1 202").expect(&got);
    assert!(a < b, "{got}");
    assert_eq!(got.matches("HTTP/1.1 ").count(), 2, "{got}");
}

#[test]
fn connection_close_and_http10_without_keep_alive_close_after_the_response() {
    let app = DemoApp::start("green", &[]);
    let node = OneNode::write(json!({}));
    let m = node.start(app.addr, &[]);
    let lis = m.listener("app-ingress");
    for req in [
        &b"GET / HTTP/1.1\r\nhost: app\r\nconnection: close\r\n\r\n"[..],
        b"GET / HTTP/1.0\r\nhost: app\r\n\r\n",
    ] {
        let mut c = connect(lis);
        c.write_all(req).expect("send");
        let (got, closed) = read_to_close(&mut c);
        assert!(got.contains(" 200 "), "{got}");
        assert!(
            closed,
            "still open after {:?}: {got}",
            String::from_utf8_lossy(req)
        );
    }
    // HTTP/1.1 without close stays open for a second request.
    let mut c = connect(lis);
    c.write_all(b"GET / HTTP/1.1\r\nhost: app\r\n\r\n")
        .expect("send");
    let mut out = Vec::new();
    read_until(&mut c, &mut out, b"green");
    c.write_all(b"GET / HTTP/1.1\r\nhost: app\r\nconnection: close\r\n\r\n")
        .expect("second request on the kept-alive connection");
    let (got, closed) = read_to_close(&mut c);
    assert!(got.starts_with("HTTP/1.1 200") && closed, "{got}");
}

#[test]
fn hop_by_hop_headers_of_the_response_and_upgrade_of_the_request_stop_at_meshd() {
    let app = DemoApp::start("green", &[]);
    let node = OneNode::write(json!({}));
    let m = node.start(app.addr, &[]);
    let mut c = connect(m.listener("app-ingress"));
    c.write_all(
        b"GET /?headers=1 HTTP/1.1\r\nhost: app\r\nupgrade: websocket\r\nconnection: upgrade, close\r\nte: trailers, deflate\r\ntransfer-encoding: chunked\r\n\r\n0\r\n\r\n",
    )
    .expect("send");
    let (got, _) = read_to_close(&mut c);
    assert!(got.starts_with("HTTP/1.1 200"), "{got}");
    let body = got.split("\r\n\r\n").nth(1).unwrap_or_default().to_owned();
    let names: Vec<&str> = body.lines().filter_map(|l| l.split(": ").next()).collect();
    for gone in ["upgrade", "connection", "te"] {
        assert!(!names.contains(&gone), "{gone} reached the app:\n{body}");
    }
    // Transfer-Encoding is re-framed by meshd, not copied: only `chunked` ever reaches the app.
    for l in body.lines().filter(|l| l.starts_with("transfer-encoding")) {
        assert_eq!(l, "transfer-encoding: chunked", "{body}");
    }

    let up = RawUpstream::start(|c: &mut RawConn| {
        while c.next_request().is_some() {
            c.write(b"HTTP/1.1 200 OK\r\nkeep-alive: timeout=5\r\nproxy-connection: keep-alive\r\nupgrade: h2c\r\nx-end: 1\r\ncontent-length: 2\r\n\r\nok");
        }
        false
    });
    let node = OneNode::write(json!({}));
    let m = node.start(up.addr, &[]);
    let mut c = connect(m.listener("app-ingress"));
    c.write_all(b"GET / HTTP/1.1\r\nhost: app\r\nconnection: close\r\n\r\n")
        .expect("send");
    let (got, _) = read_to_close(&mut c);
    let head = got
        .split("\r\n\r\n")
        .next()
        .unwrap_or_default()
        .to_ascii_lowercase();
    assert!(
        head.starts_with("http/1.1 200") && head.contains("x-end: 1"),
        "{got}"
    );
    for gone in ["keep-alive:", "proxy-connection:", "upgrade:"] {
        assert!(!head.contains(gone), "{gone} reached the client:\n{got}");
    }
}

/// meshd in front of an upstream that answers every request with `response`.
fn bad_response_is_502_upe(response: &'static [u8]) {
    let up = RawUpstream::start(move |c: &mut RawConn| {
        if c.next_request().is_some() {
            c.write(response);
        }
        false
    });
    let node = OneNode::write(json!({}));
    let m = node.start(up.addr, &[]);
    let mut c = connect(m.listener("app-ingress"));
    c.write_all(b"GET /bad HTTP/1.1\r\nhost: app\r\nconnection: close\r\n\r\n")
        .expect("send");
    let (got, _) = read_to_close(&mut c);
    assert!(
        got.starts_with("HTTP/1.1 502"),
        "{:?} -> {got}",
        String::from_utf8_lossy(response)
    );
    let log = node.access_log_lines(1);
    assert!(log.contains("\"GET /bad HTTP/1.1\" 502 UPE "), "{log}");
    assert_eq!(
        m.stat(&format!(
            "cluster.{ONE_NODE_CLUSTER}.upstream_cx_protocol_error"
        )),
        1
    );
}

#[test]
fn an_upstream_response_with_content_length_and_transfer_encoding_is_502_upe() {
    bad_response_is_502_upe(
        b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\ntransfer-encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n",
    );
}

#[test]
fn an_upstream_response_with_two_different_content_lengths_is_502_upe() {
    bad_response_is_502_upe(
        b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\ncontent-length: 3\r\n\r\nok!",
    );
}

#[test]
fn an_upstream_response_with_an_invalid_status_line_is_502_upe() {
    bad_response_is_502_upe(b"HTTP/1.1 2x0 OK\r\ncontent-length: 2\r\n\r\nok");
}
