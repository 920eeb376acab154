//! The admin endpoint has no authentication, so it refuses what only a browser or a DNS-rebinding
//! page would send (an `Origin` header, a `Host` that is a foreign DNS name, a mutating POST with
//! a body), answers 403 saying why, and `POST /reset_counters` never erases the counters that
//! record faults and refusals. What `curl`, meshstat and Prometheus send still works.

use std::net::TcpListener;

use mesh_tests::{agent, http, walkthrough_config, Meshd, Reply, TempDir};

/// Green's ingress cluster in the walkthrough.
const GREEN_CLUSTER: &str = "cds_ingress_color-mesh_green_http_8080";

/// meshd serving green in front of a port nothing listens on, after `n` requests: each one is
/// an ordinary count (`upstream_cx_total`, `downstream_rq_total`) and a fault
/// (`upstream_cx_connect_fail`, 503 `UF`).
fn green_with_faults(n: usize) -> (TempDir, Meshd) {
    let closed = TcpListener::bind("127.0.0.1:0").expect("bind");
    let app = closed.local_addr().expect("addr");
    drop(closed);
    let (dir, config) = walkthrough_config();
    let app_arg = format!("green={app}");
    let m = Meshd::start(
        &config,
        &[
            "--node",
            "green",
            "--listen",
            "green=127.0.0.1:0",
            "--app",
            &app_arg,
        ],
    );
    let url = format!("http://{}/", m.listener("green-ingress"));
    for _ in 0..n {
        assert_eq!(http("GET", &url, &[], None).status, 503);
    }
    (dir, m)
}

fn counters(m: &Meshd) -> [(String, u64); 3] {
    [
        format!("cluster.{GREEN_CLUSTER}.upstream_cx_total"),
        "http.ingress.downstream_rq_total".to_owned(),
        format!("cluster.{GREEN_CLUSTER}.upstream_cx_connect_fail"),
    ]
    .map(|n| {
        let v = m.stat(&n);
        (n, v)
    })
}

fn refused(r: &Reply, why: &str) {
    assert_eq!(r.status, 403, "{}", r.body);
    assert!(r.body.contains(why), "403 says why ({why}): {}", r.body);
}

#[test]
fn a_cross_origin_post_is_refused_and_the_counters_are_unchanged() {
    let (_dir, m) = green_with_faults(3);
    let before = counters(&m);
    assert!(before.iter().all(|(_, v)| *v == 3), "{before:?}");
    let url = m.url("/reset_counters");

    // What a page's `fetch(url, {method: "POST", mode: "no-cors", body: "x"})` or a `text/plain`
    // form sends: Origin, a simple content type and a body.
    let page = [
        ("Origin", "http://evil.example"),
        ("Content-Type", "text/plain"),
    ];
    refused(&http("POST", &url, &page, Some("x=1")), "Origin");
    // The same from a browser that sends no Origin: the body alone refuses it.
    refused(
        &http("POST", &url, &[("Content-Type", "text/plain")], Some("x=1")),
        "no body",
    );
    // A chunked body is a body too.
    let chunked = match agent()
        .post(&url)
        .set("Content-Type", "text/plain")
        .send(std::io::Cursor::new(b"x=1".to_vec()))
    {
        Ok(r) | Err(ureq::Error::Status(_, r)) => r,
        Err(e) => panic!("POST chunked: {e}"),
    };
    assert_eq!(chunked.status(), 403);
    let body = chunked.into_string().unwrap_or_default();
    assert!(body.contains("no body"), "{body}");
    // Origin refuses even a POST without a body, and a GET.
    refused(&http("POST", &url, &[("Origin", "null")], None), "Origin");
    refused(
        &http(
            "GET",
            &m.url("/stats"),
            &[("Origin", "http://evil.example")],
            None,
        ),
        "Origin",
    );

    assert_eq!(counters(&m), before, "nothing was reset");
    assert_eq!(m.stat("server.admin_rq_refused"), 5);
}

#[test]
fn a_dns_rebinding_host_is_refused_and_what_curl_meshstat_prometheus_send_works() {
    let (_dir, m) = green_with_faults(1);
    let port = m.admin.port();
    let stats = m.url("/stats");
    for host in [
        format!("evil.example:{port}"),
        "evil.example".to_owned(),
        format!("127.0.0.1.nip.io:{port}"),
        format!("localhost.evil.example:{port}"),
    ] {
        refused(&http("GET", &stats, &[("Host", &host)], None), "Host");
    }
    refused(
        &http(
            "POST",
            &m.url("/reset_counters"),
            &[("Host", "evil.example")],
            None,
        ),
        "Host",
    );
    assert_eq!(counters(&m)[0].1, 1, "nothing was reset");

    // `curl 127.0.0.1:PORT/stats`, `curl localhost:PORT/stats`, IPv6 loopback, and what
    // `meshstat --admin 10.0.0.1:9901` and a Prometheus scrape of a non-loopback `--admin` bind
    // send: an IP literal.
    for host in [
        format!("127.0.0.1:{port}"),
        format!("localhost:{port}"),
        format!("LocalHost.:{port}"),
        format!("[::1]:{port}"),
        "10.0.0.1:9901".to_owned(),
        "127.0.0.1".to_owned(),
    ] {
        let r = http("GET", &stats, &[("Host", &host)], None);
        assert_eq!(r.status, 200, "Host: {host}: {}", r.body);
        assert!(r.body.contains("server.live: 1"), "{}", r.body);
    }
    let r = http(
        "GET",
        &m.url("/stats/prometheus"),
        &[
            ("Host", "10.0.0.1:9901"),
            ("User-Agent", "Prometheus/2.53.0"),
        ],
        None,
    );
    assert_eq!(r.status, 200, "{}", r.body);
}

#[test]
fn a_post_without_a_body_resets_ordinary_counters_and_keeps_fault_counters() {
    let (_dir, m) = green_with_faults(4);
    let url = m.url("/reset_counters");
    assert_eq!(http("GET", &url, &[], None).status, 405);
    // `curl -X POST` (no Content-Length) …
    let r = http("POST", &url, &[], None);
    assert_eq!((r.status, r.body.as_str()), (200, "OK\n"));
    let [cx, downstream, connect_fail] = counters(&m);
    assert_eq!((cx.1, downstream.1), (0, 0), "ordinary counters are reset");
    assert_eq!(connect_fail.1, 4, "{} is kept", connect_fail.0);
    assert_eq!(
        m.stat(&format!("cluster.{GREEN_CLUSTER}.upstream_rq_503")),
        0,
        "response codes are traffic counts: reset"
    );

    // … and `curl -d ''` (Content-Length: 0): a `*_refused` counter is kept too.
    refused(
        &http(
            "GET",
            &m.url("/stats"),
            &[("Origin", "http://evil.example")],
            None,
        ),
        "Origin",
    );
    let r = http(
        "POST",
        &url,
        &[("Content-Type", "application/x-www-form-urlencoded")],
        Some(""),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(counters(&m)[2].1, 4);
    assert_eq!(m.stat("server.admin_rq_refused"), 1, "kept");
}

#[test]
fn host_names_given_with_admin_allow_host_are_accepted() {
    let (_dir, config) = walkthrough_config();
    let m = Meshd::start(
        &config,
        &[
            "--node",
            "green",
            "--listen",
            "green=127.0.0.1:0",
            "--admin-allow-host",
            "vm1.mesh.internal",
        ],
    );
    let stats = m.url("/stats");
    let r = http("GET", &stats, &[("Host", "vm1.mesh.internal:9901")], None);
    assert_eq!(r.status, 200, "{}", r.body);
    refused(
        &http("GET", &stats, &[("Host", "vm2.mesh.internal:9901")], None),
        "--admin-allow-host",
    );
}
