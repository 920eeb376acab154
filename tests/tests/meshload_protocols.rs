//! meshload's two clients on the wire: the fast HTTP/1.x client (default) against every way an
//! HTTP/1 response can be framed, and the hyper client (`-stdclient`, `-h2`) against the demo-app
//! speaking HTTP/1.1 and h2c.
//!
//! Where the demo-app cannot produce a response shape (a body delimited by close, interim 100
//! responses, garbage, a body cut short, a server that drops idle keep-alive connections), a
//! scripted HTTP server on a loopback socket in this test answers with exact bytes.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::process::Command;
use std::sync::{Arc, Mutex};

use mesh_tests::{bin, run_bounded, DemoApp, RUN_TIMEOUT};
use serde_json::Value;

/// Runs meshload to completion (bounded by the harness's run timeout) with `-json -`, returns the
/// parsed result and stderr; fails the test on a non-zero exit.
fn run_json(args: &[&str]) -> (Value, String) {
    let mut cmd = Command::new(bin("meshload"));
    cmd.args(["-loglevel", "Warning", "-json", "-"]).args(args);
    let r = run_bounded(cmd, &format!("meshload {args:?}"));
    assert_eq!(r.code, 0, "meshload {args:?} failed:\n{}", r.stderr);
    let v = serde_json::from_str(&r.stdout).expect("JSON result on stdout");
    (v, r.stderr)
}

/// A max-rate run of exactly `n` calls on `c` connections (`extra` flags before the URL).
fn calls(c: u32, n: u32, extra: &[&str], url: &str) -> (Value, String) {
    let (c, n) = (c.to_string(), n.to_string());
    let mut args = vec!["-qps", "0", "-c", &c, "-n", &n];
    args.extend_from_slice(extra);
    args.push(url);
    run_json(&args)
}

fn code(v: &Value, code: &str) -> u64 {
    v["RetCodes"][code].as_u64().unwrap_or(0)
}

/// One response script per connection: after reading each request head, write the next
/// response; `None` closes the connection instead of answering.
type Script = &'static [Option<&'static [u8]>];

/// A scripted HTTP/1 server on 127.0.0.1:0. Every accepted connection plays `script` from the
/// start. The accept thread lives until the test process ends; each connection ends with its
/// script (or when the client closes).
fn scripted(script: Script) -> SocketAddr {
    recording(script).0
}

/// Requests (head and body) a [`recording`] server received, in order.
type Heads = Arc<Mutex<Vec<String>>>;

/// [`scripted`], also keeping every request it reads.
fn recording(script: Script) -> (SocketAddr, Heads) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    let heads = Heads::default();
    let kept = heads.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { continue };
            let _ = stream.set_read_timeout(Some(RUN_TIMEOUT));
            let kept = kept.clone();
            std::thread::spawn(move || serve(stream, script, &kept));
        }
    });
    (addr, heads)
}

fn serve<S: Read + Write>(mut stream: S, script: Script, heads: &Mutex<Vec<String>>) {
    let mut buf = Vec::new();
    for step in script {
        // Read one request.
        loop {
            if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                // The head, and a body of its Content-Length once all of it has arrived.
                let head = String::from_utf8_lossy(&buf[..end + 4]).to_ascii_lowercase();
                let body_len = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .and_then(|v| v.trim().parse::<usize>().ok())
                    .unwrap_or(0);
                if buf.len() >= end + 4 + body_len {
                    let request = buf.drain(..end + 4 + body_len).collect::<Vec<u8>>();
                    if let Ok(mut h) = heads.lock() {
                        h.push(String::from_utf8_lossy(&request).into_owned());
                    }
                    break;
                }
            }
            let mut chunk = [0u8; 4096];
            match stream.read(&mut chunk) {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
        match step {
            Some(bytes) => {
                if stream.write_all(bytes).is_err() {
                    return;
                }
            }
            None => return,
        }
    }
}

fn url(addr: SocketAddr, path: &str) -> String {
    format!("http://{addr}{path}")
}

#[test]
fn sizes_are_head_plus_body_for_every_framing() {
    let app = DemoApp::start("green", &[]);
    // Content-Length, a body far larger than the read buffer.
    let (v, _) = calls(2, 6, &[], &url(app.addr, "/?size=300000"));
    assert_eq!(code(&v, "200"), 6, "{v}");
    let head = v["HeaderSizes"]["Min"].as_u64().expect("header size");
    assert!(head > 20, "head {head}");
    assert_eq!(v["HeaderSizes"]["Max"], head);
    assert_eq!(v["Sizes"]["Min"], head + 300_000);
    assert_eq!(v["Sizes"]["Max"], head + 300_000);
    assert_eq!(v["SocketCount"], 2);

    // Chunked: the app streams the request body back without a length.
    let (v, _) = calls(
        1,
        4,
        &["-payload-size", "70000"],
        &url(app.addr, "/?echo=1"),
    );
    assert_eq!(code(&v, "200"), 4, "{v}");
    let head = v["HeaderSizes"]["Min"].as_u64().expect("header size");
    assert_eq!(v["Sizes"]["Min"], head + 70_000, "{v}");
    assert_eq!(v["Sizes"]["Max"], head + 70_000, "{v}");
    assert_eq!(v["SocketCount"], 1, "chunked bodies keep the connection");

    // HEAD: the response announces a length but carries no body.
    let (v, _) = calls(1, 3, &["-X", "HEAD"], &url(app.addr, "/?size=500"));
    assert_eq!(code(&v, "200"), 3, "{v}");
    assert_eq!(v["Sizes"]["Max"], v["HeaderSizes"]["Max"], "{v}");
    assert_eq!(v["SocketCount"], 1, "{v}");
}

#[test]
fn stdclient_counts_bodies_only_as_fortio() {
    let app = DemoApp::start("green", &[]);
    let (v, _) = calls(2, 6, &["-stdclient"], &url(app.addr, "/?size=1000"));
    assert_eq!(code(&v, "200"), 6, "{v}");
    assert_eq!(v["DisableFastClient"], true);
    assert_eq!(v["HeaderSizes"]["Max"], 0);
    assert_eq!(v["Sizes"]["Min"], 1000);
    assert_eq!(v["SocketCount"], 2);
    assert_eq!(app.stats()["requests_http2"], 0);
}

#[test]
fn h2_speaks_http2_to_an_h2c_server() {
    let app = DemoApp::start("green", &["--fail-every", "5"]);
    let (v, stderr) = calls(2, 20, &["-h2"], &url(app.addr, "/"));
    assert_eq!(v["H2"], true);
    assert_eq!(v["DisableFastClient"], true);
    // `-n` runs have no warm-up: 20 requests at the app, every fifth answered 503.
    assert_eq!(code(&v, "200"), 16, "{v}");
    assert_eq!(code(&v, "503"), 4, "{v}");
    let stats = app.stats();
    assert_eq!(stats["requests_total"], 20, "{stats}");
    assert_eq!(
        stats["requests_http2"], 20,
        "every request was HTTP/2: {stats}"
    );
    assert_eq!(v["SocketCount"], 2, "{stderr}");
}

#[test]
fn body_until_close_and_connection_close_open_a_socket_per_call() {
    // No length: the body ends when the server closes.
    let until_close = scripted(&[Some(b"HTTP/1.1 200 OK\r\n\r\nhello until close")]);
    let (v, _) = calls(1, 5, &[], &url(until_close, "/"));
    assert_eq!(code(&v, "200"), 5, "{v}");
    assert_eq!(v["Sizes"]["Min"], 19 + 17, "{v}");
    assert_eq!(v["HeaderSizes"]["Min"], 19);
    assert_eq!(v["SocketCount"], 5, "one per call");

    // A length and `Connection: close`: the client must not reuse the socket.
    let close = scripted(&[Some(
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok",
    )]);
    let (v, _) = calls(1, 5, &[], &url(close, "/"));
    assert_eq!(code(&v, "200"), 5, "{v}");
    assert_eq!(v["SocketCount"], 5);
}

#[test]
fn interim_responses_precede_the_final_status() {
    let addr = scripted(&[
        Some(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n"),
        Some(b"HTTP/1.1 204 No Content\r\nContent-Length: 10\r\n\r\n"),
        Some(b"HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n"),
    ]);
    // 201 (after a 100), then 204 (its stray length ignored), then 201, all on one socket.
    let (v, _) = calls(1, 3, &[], &url(addr, "/"));
    assert_eq!(code(&v, "204"), 1, "{v}");
    assert_eq!(code(&v, "201"), 2, "{v}");
    assert_eq!(v["SocketCount"], 1, "{v}");
}

#[test]
fn broken_responses_are_socket_errors_never_hangs() {
    let garbage = scripted(&[Some(b"NOT HTTP AT ALL\r\n\r\n")]);
    let cut = scripted(&[Some(
        b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly ten b",
    )]);
    let bad_chunk = scripted(&[Some(
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nxx\r\n0\r\n\r\n",
    )]);
    let bad_length = scripted(&[Some(b"HTTP/1.1 200 OK\r\nContent-Length: 1x\r\n\r\n1")]);
    let silent = scripted(&[None]);
    for addr in [garbage, cut, bad_chunk, bad_length, silent] {
        let (v, stderr) = calls(
            1,
            3,
            &["-allow-initial-errors", "-timeout", "2s"],
            &url(addr, "/"),
        );
        assert_eq!(code(&v, "-1"), 3, "{addr}: {v}\n{stderr}");
    }
}

#[test]
fn a_reused_connection_closed_while_idle_is_retried_uncounted() {
    // Keep-alive by the headers, but the server closes after each response, as a server whose
    // idle timeout fired between two requests.
    let addr = scripted(&[Some(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")]);
    let (v, stderr) = calls(2, 10, &[], &url(addr, "/"));
    assert_eq!(code(&v, "200"), 10, "{v}\n{stderr}");
    assert_eq!(code(&v, "-1"), 0, "{v}");
    // Every call after the first on a connection found it closed and reconnected.
    assert_eq!(v["SocketCount"], 10, "{v}");
}

#[test]
fn chunked_bodies_with_extensions_and_trailers() {
    let addr = scripted(&[
        Some(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nx-trailer: t\r\n\r\n"),
        Some(b"HTTP/1.1 202 Accepted\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"),
        Some(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nx-trailer: t\r\n\r\n"),
    ]);
    let (v, _) = calls(1, 3, &[], &url(addr, "/"));
    assert_eq!(code(&v, "202"), 1, "{v}");
    assert_eq!(code(&v, "200"), 2, "{v}");
    let head = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".len() as u64;
    assert_eq!(v["Sizes"]["Max"], head + 11, "{v}");
    assert_eq!(v["SocketCount"], 1, "{v}");
}

#[test]
fn resolve_connects_to_the_ip_and_keeps_the_host_name() {
    let (addr, heads) = recording(&[Some(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")]);
    // The name does not resolve anywhere; -resolve supplies the address.
    let target = format!("http://color-green.mesh.invalid:{}/hello", addr.port());
    let (v, stderr) = calls(1, 1, &["-resolve", "127.0.0.1"], &target);
    assert_eq!(code(&v, "200"), 1, "{v}\n{stderr}");
    assert_eq!(v["Resolve"], "127.0.0.1");
    let heads = heads.lock().expect("heads").clone();
    assert_eq!(heads.len(), 1, "{heads:?}");
    assert!(heads[0].starts_with("GET /hello HTTP/1.1\r\n"), "{heads:?}");
    let host = format!("host: color-green.mesh.invalid:{}\r\n", addr.port());
    assert!(heads[0].to_ascii_lowercase().contains(&host), "{heads:?}");
}

#[test]
fn connection_reuse_closes_connections_after_the_drawn_number_of_calls() {
    let app = DemoApp::start("green", &[]);
    let (v, _) = calls(1, 9, &["-connection-reuse", "3"], &url(app.addr, "/"));
    assert_eq!(code(&v, "200"), 9, "{v}");
    assert_eq!(v["SocketCount"], 3, "{v}");
    assert_eq!(v["ConnReuseRange"], serde_json::json!([3, 3]));

    // 2 connections, 20 calls each, 2 to 4 calls per socket: between 10 and 20 sockets.
    let (v, _) = calls(2, 40, &["-connection-reuse", "2:4"], &url(app.addr, "/"));
    assert_eq!(code(&v, "200"), 40, "{v}");
    let sockets = v["SocketCount"].as_u64().expect("sockets");
    assert!((10..=20).contains(&sockets), "{sockets} sockets: {v}");
    // The app saw both runs' sockets and the stats request's own connection.
    assert_eq!(app.stats()["connections_total"], 3 + sockets + 1);
}

/// The UUIDs (8-4-4-4-12 lowercase hex) in `text`, in order.
fn uuids(text: &str) -> Vec<String> {
    let b = text.as_bytes();
    let shape = |w: &[u8]| {
        w.iter().enumerate().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => *c == b'-',
            _ => c.is_ascii_hexdigit() && !c.is_ascii_uppercase(),
        })
    };
    (0..b.len().saturating_sub(35))
        .filter(|&i| shape(&b[i..i + 36]))
        .map(|i| text[i..i + 36].to_owned())
        .collect()
}

#[test]
fn uuid_tokens_become_a_new_uuid_per_request_and_occurrence() {
    for client in [&[][..], &["-stdclient"][..]] {
        const OK: Option<&[u8]> = Some(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
        let (addr, requests) = recording(&[OK, OK, OK]);
        let target = url(addr, "/item/{uuid}?trace={uuid}");
        let mut extra = vec!["-payload", "{\"id\":\"{uuid}\"}"];
        extra.extend_from_slice(client);
        let (v, stderr) = calls(1, 3, &extra, &target);
        assert_eq!(code(&v, "200"), 3, "{client:?}: {v}\n{stderr}");
        let requests = requests.lock().expect("requests").clone();
        assert_eq!(requests.len(), 3, "{requests:?}");
        let mut seen = Vec::new();
        for r in &requests {
            assert!(r.starts_with("POST /item/"), "{r}");
            assert!(!r.contains("{uuid}"), "{r}");
            let found = uuids(r);
            assert_eq!(found.len(), 3, "path, query and body: {r}");
            // The body's length was announced right.
            let body = r.split("\r\n\r\n").nth(1).unwrap_or_default();
            assert_eq!(body, format!("{{\"id\":\"{}\"}}", found[2]), "{r}");
            seen.extend(found);
        }
        let distinct: std::collections::BTreeSet<&String> = seen.iter().collect();
        assert_eq!(
            distinct.len(),
            9,
            "{client:?}: every UUID differs: {seen:?}"
        );
    }
}

#[test]
fn unix_socket_carries_the_requests_with_the_urls_host() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("app.sock");
    let listener = std::os::unix::net::UnixListener::bind(&path).expect("bind unix socket");
    let heads = Heads::default();
    let kept = heads.clone();
    std::thread::spawn(move || {
        const OK: Option<&[u8]> = Some(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
        for stream in listener.incoming() {
            let Ok(stream) = stream else { continue };
            let _ = stream.set_read_timeout(Some(RUN_TIMEOUT));
            let kept = kept.clone();
            std::thread::spawn(move || serve(stream, &[OK, OK, OK], &kept));
        }
    });
    let sock = path.to_str().expect("utf-8 path");
    for client in [&[][..], &["-stdclient"][..]] {
        let mut extra = vec!["-unix-socket", sock];
        extra.extend_from_slice(client);
        let (v, stderr) = calls(1, 3, &extra, "http://app.internal/x");
        assert_eq!(code(&v, "200"), 3, "{client:?}: {v}\n{stderr}");
        assert_eq!(v["UnixDomainSocket"], sock);
        assert_eq!(v["SocketCount"], 1, "{v}");
        assert!(stderr.contains(&format!("{sock}: 1")), "{stderr}");
    }
    let heads = heads.lock().expect("heads").clone();
    assert_eq!(heads.len(), 6, "{heads:?}");
    assert!(
        heads
            .iter()
            .all(|h| h.to_ascii_lowercase().contains("host: app.internal\r\n")),
        "{heads:?}"
    );
}
