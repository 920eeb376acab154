//! A client cannot break an access-log line or hide a request from meshstat: values it sends (user
//! agent, x-forwarded-for, x-request-id, Host, path) with `"`, `\`, spaces, tabs and bytes that
//! are not ASCII are escaped in text lines and stay valid JSON in JSON lines, and `meshstat log`
//! and `meshstat why --log` count every request the log holds, reading the values back as sent.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use mesh_tests::{bin, eventually, run_bounded, walkthrough_config, DemoApp, Meshd, Run, TempDir};
use serde_json::{json, Value};

/// One request as it goes on the wire, and what the log must read back.
struct Hostile {
    path: &'static [u8],
    host: &'static [u8],
    /// Extra headers (name, raw value bytes).
    headers: Vec<(&'static str, &'static [u8])>,
    status: u16,
}

/// Every request carries its own `x-request-id` (a hostile one for some), by which the test
/// finds its line again.
fn requests() -> Vec<Hostile> {
    let h = |path, host, headers, status| Hostile {
        path,
        host,
        headers,
        status,
    };
    vec![
        h(
            b"/paths/green",
            b"gw",
            vec![
                ("X-Request-Id", b"r1"),
                ("User-Agent", br#"evil" 200 - 0 0 0 - "forged"#),
            ],
            200,
        ),
        h(
            b"/nowhere",
            b"gw",
            vec![
                ("X-Request-Id", b"r2"),
                ("X-Forwarded-For", br#"1.2.3.4" "spoofed"#),
            ],
            404,
        ),
        h(
            b"/paths/green",
            b"gw",
            vec![("X-Request-Id", br#""\" "x"#)],
            200,
        ),
        h(
            b"/nowhere",
            br#"green" "evil\"#,
            vec![("X-Request-Id", b"r4")],
            404,
        ),
        h(
            // hyper refuses `"` in the query, not in the path.
            br#"/paths/green"q\r?a='1'\"#,
            b"gw",
            vec![("X-Request-Id", b"r5"), ("User-Agent", b"ends with \\")],
            200,
        ),
        h(
            b"/nowhere",
            b"gw",
            vec![
                ("X-Request-Id", b"r6"),
                ("User-Agent", b"tab\there \xff\xfe caf\xc3\xa9 \x80"),
            ],
            404,
        ),
        h(
            br#"/paths/green\x41\"#,
            b"gw",
            vec![
                ("X-Request-Id", b"r7"),
                ("User-Agent", br#"\x41\"\\ \t"#),
                ("X-Forwarded-For", br#"\"#),
            ],
            200,
        ),
        h(
            b"/paths/green",
            b"gw",
            vec![("X-Request-Id", b"r8"), ("User-Agent", b"curl/8.5.0")],
            200,
        ),
        h(
            b"/nowhere",
            b"gw",
            vec![("X-Request-Id", b"r9"), ("User-Agent", b"   ")],
            404,
        ),
    ]
}

/// Sends `req` on its own connection and returns the response status.
fn send(addr: SocketAddr, req: &Hostile) -> u16 {
    let mut raw = b"GET ".to_vec();
    raw.extend_from_slice(req.path);
    raw.extend_from_slice(b" HTTP/1.1\r\nHost: ");
    raw.extend_from_slice(req.host);
    raw.extend_from_slice(b"\r\n");
    for (k, v) in &req.headers {
        raw.extend_from_slice(k.as_bytes());
        raw.extend_from_slice(b": ");
        raw.extend_from_slice(v);
        raw.extend_from_slice(b"\r\n");
    }
    raw.extend_from_slice(b"Connection: close\r\n\r\n");
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(20)))
        .expect("timeout");
    s.write_all(&raw).expect("send");
    let mut resp = Vec::new();
    s.read_to_end(&mut resp)
        .expect("read the response to its end");
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut r = httparse::Response::new(&mut headers);
    r.parse(&resp).expect("an HTTP response");
    r.code.expect("a status")
}

/// What the log must read back for `req`: (path, user agent, x-forwarded-for, authority), by
/// request id. meshd appends the client's address to x-forwarded-for.
fn expected(req: &Hostile) -> (String, (String, Option<String>, String, String)) {
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    let header = |n: &str| {
        req.headers
            .iter()
            .find(|(k, _)| *k == n)
            .map(|(_, v)| text(v))
    };
    let xff = match header("X-Forwarded-For") {
        Some(x) => format!("{x}, 127.0.0.1"),
        None => "127.0.0.1".to_owned(),
    };
    let id = header("X-Request-Id").expect("every request has an id");
    // Spaces around a header value are not part of it (RFC 9110): an empty one is absent.
    let ua = header("User-Agent").filter(|u| !u.trim().is_empty());
    (id, (text(req.path), ua, xff, text(req.host)))
}

/// The walkthrough with only the gateway logging, to `<dir>/access.log`, in `format` (App Mesh
/// `logging.accessLog.file.format`; `None`: Envoy's default).
fn gateway_logging(format: Option<Value>) -> (TempDir, PathBuf, PathBuf) {
    let (dir, config) = walkthrough_config();
    let log = dir.path().join("access.log");
    for node in ["vn-green.json", "vn-red.json"] {
        let p = config.join(node);
        let text = std::fs::read_to_string(&p).expect("read node");
        let nodes_log = dir.path().join("nodes.log");
        let text = text.replace(&log.display().to_string(), &nodes_log.display().to_string());
        std::fs::write(&p, text).expect("write node");
    }
    if let Some(f) = format {
        let p = config.join("vg-ingress-gw.json");
        let mut v: Value =
            serde_json::from_str(&std::fs::read_to_string(&p).expect("read")).expect("json");
        v["spec"]["logging"]["accessLog"]["file"]["format"] = f;
        std::fs::write(&p, v.to_string()).expect("write gateway");
    }
    (dir, config, log)
}

fn start(config: &Path, app: &DemoApp) -> Meshd {
    let app_arg = format!("green={}", app.addr);
    Meshd::start(
        config,
        &[
            "--node",
            "ingress-gw",
            "--node",
            "green",
            "--listen",
            "ingress-gw=127.0.0.1:0",
            "--listen",
            "green=127.0.0.1:0",
            "--egress",
            "green=127.0.0.1:0",
            "--app",
            &app_arg,
        ],
    )
}

fn meshstat_ok(args: &[&str]) -> Run {
    let mut cmd = Command::new(bin("meshstat"));
    cmd.args(args).env_remove("MESHD_ADMIN");
    let r = run_bounded(cmd, &format!("meshstat {args:?}"));
    assert_eq!(r.code, 0, "meshstat {args:?}:\n{}", r.stderr);
    r
}

/// Sends every hostile request through the gateway, waits for their lines and checks that
/// meshstat counts them all and reads each value back as sent. Returns the log's text.
fn hostile_requests_are_logged_and_counted(format: Option<Value>) -> String {
    let app = DemoApp::start("green", &[]);
    let (_dir, config, log) = gateway_logging(format);
    let m = start(&config, &app);
    let gw = m.listener("ingress-gw-gateway");
    let reqs = requests();
    for r in &reqs {
        assert_eq!(
            send(gw, r),
            r.status,
            "{:?}",
            String::from_utf8_lossy(r.path)
        );
    }
    let n = reqs.len();
    let text = eventually("every request in the log", Duration::from_secs(10), || {
        let text = std::fs::read_to_string(&log).ok()?;
        (text.lines().count() == n).then_some(text)
    });
    let log_s = log.display().to_string();
    let not_found = reqs.iter().filter(|r| r.status == 404).count();

    // Every request counted, none unparsed, flags and codes right.
    let r = meshstat_ok(&["log", &log_s]);
    assert!(
        r.stdout.starts_with(&format!(
            "requests {n} (lines {n}, unparsed 0, filtered out 0)\n"
        )),
        "{}\n{text}",
        r.stdout
    );
    let r = meshstat_ok(&["log", "--flag", "NR", &log_s]);
    assert!(
        r.stdout
            .starts_with(&format!("requests {not_found} (lines {n}, unparsed 0,")),
        "{}",
        r.stdout
    );
    let a = m.admin.to_string();
    let r = meshstat_ok(&["--admin", &a, "why", "--log", &log_s]);
    assert!(
        r.stdout
            .contains(&format!(": 0 of {n} requests have flag UO")),
        "{}",
        r.stdout
    );
    assert!(!r.stdout.contains("not parsed"), "{}", r.stdout);

    // Each value read back as sent (bytes that are not UTF-8 as U+FFFD).
    let r = meshstat_ok(&["log", "-o", "json", &log_s]);
    let got: BTreeMap<String, (String, Option<String>, String, String)> = r
        .stdout
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).expect("json record");
            let s = |k: &str| v[k].as_str().map(str::to_owned);
            (
                s("request_id").expect("request id"),
                (
                    s("path").expect("path"),
                    s("user_agent"),
                    s("x_forwarded_for").expect("xff"),
                    s("authority").expect("authority"),
                ),
            )
        })
        .collect();
    let want: BTreeMap<_, _> = reqs.iter().map(expected).collect();
    assert_eq!(got, want, "\n{text}");
    text
}

#[test]
fn hostile_values_are_escaped_in_text_lines_and_every_request_is_counted() {
    let text = hostile_requests_are_logged_and_counted(None);
    for line in text.lines() {
        assert!(
            line.bytes().all(|b| (0x20..0x7f).contains(&b)),
            "printable ASCII only: {line:?}"
        );
    }
    // Envoy's line shape, with `"` and `\` escaped inside the quoted fields.
    assert!(
        text.contains(r#" "127.0.0.1" "evil\" 200 - 0 0 0 - \"forged" "r1" "gw" "#),
        "{text}"
    );
    assert!(
        text.contains(r#""GET /paths/green\"q\\r?a='1'\\ HTTP/1.1" 200 "#),
        "{text}"
    );
    assert!(
        text.contains(r#" "tab\there \xef\xbf\xbd\xef\xbf\xbd caf\xc3\xa9 \xef\xbf\xbd" "r6" "#),
        "{text}"
    );
}

#[test]
fn hostile_values_stay_valid_json_in_json_lines_and_every_request_is_counted() {
    let keys = [
        ("start_time", "%START_TIME%"),
        ("method", "%REQ(:METHOD)%"),
        ("path", "%REQ(X-ENVOY-ORIGINAL-PATH?:PATH)%"),
        ("protocol", "%PROTOCOL%"),
        ("response_code", "%RESPONSE_CODE%"),
        ("response_flags", "%RESPONSE_FLAGS%"),
        ("duration", "%DURATION%"),
        ("x_forwarded_for", "%REQ(X-FORWARDED-FOR)%"),
        ("user_agent", "%REQ(USER-AGENT)%"),
        ("request_id", "%REQ(X-REQUEST-ID)%"),
        ("authority", "%REQ(:AUTHORITY)%"),
        ("upstream_host", "%UPSTREAM_HOST%"),
        ("request", "%REQ(:METHOD)% %REQ(:PATH)% %PROTOCOL%"),
    ];
    let format = json!({"json": keys.iter().map(|(k, v)| json!({"key": k, "value": v})).collect::<Vec<_>>()});
    let text = hostile_requests_are_logged_and_counted(Some(format));
    for line in text.lines() {
        let v: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line:?}"));
        let request = v["request"].as_str().expect("request");
        let path = v["path"].as_str().expect("path");
        assert_eq!(request, format!("GET {path} HTTP/1.1"), "not escaped twice");
    }
}
