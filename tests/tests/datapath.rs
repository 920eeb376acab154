//! meshd's data path end to end: the App Mesh connection-pool walkthrough with real demo apps,
//! a real meshd and real clients on loopback.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::{Duration, Instant};

use mesh_tests::{eventually, http, http_get, walkthrough_config, DemoApp, Meshd, Reply, TempDir};

const GW_CLUSTER: &str = "cds_ingress_color-mesh_ingress-gw_self_redirect_http_8088";
const GREEN_CLUSTER: &str = "cds_ingress_color-mesh_green_http_8080";
const OVERFLOW_BODY: &str =
    "upstream connect error or disconnect/reset before headers. reset reason: overflow";

struct Walkthrough {
    meshd: Meshd,
    app: DemoApp,
    dir: TempDir,
}

impl Walkthrough {
    /// The walkthrough mesh with one demo app behind both nodes, every listener on port 0.
    fn start() -> Walkthrough {
        let app = DemoApp::start("green", &[]);
        let (dir, config) = walkthrough_config();
        // These tests count every request through green's listener exactly: the walkthrough's
        // health checks (the gateway probing green's `/ping` through that listener, as App Mesh
        // does) would add some. They are tested on their own (`resilience.rs`).
        mesh_tests::strip_health_checks(&config);
        let a = app.addr.to_string();
        let meshd = Meshd::start(
            &config,
            &[
                "--listen",
                "ingress-gw=127.0.0.1:0",
                "--listen",
                "green=127.0.0.1:0",
                "--listen",
                "red=127.0.0.1:0",
                "--app",
                &format!("green={a}"),
                "--app",
                &format!("red={a}"),
            ],
        );
        Walkthrough { meshd, app, dir }
    }

    fn gateway(&self, path: &str) -> String {
        format!("http://{}{path}", self.meshd.listener("ingress-gw-gateway"))
    }

    fn green(&self, path: &str) -> String {
        format!("http://{}{path}", self.meshd.listener("green-ingress"))
    }

    fn access_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("access.log")).unwrap_or_default()
    }

    fn stat(&self, cluster: &str, stat: &str) -> u64 {
        self.meshd.stat(&format!("cluster.{cluster}.{stat}"))
    }
}

/// Sends `n` GETs at once, each on its own connection; returns each reply with when it ended.
fn burst(n: usize, url: &str) -> Vec<(Reply, Instant)> {
    let start = std::sync::Arc::new(std::sync::Barrier::new(n));
    let threads: Vec<_> = (0..n)
        .map(|_| {
            let url = url.to_owned();
            let start = start.clone();
            std::thread::spawn(move || {
                start.wait();
                let r = http_get(&url);
                (r, Instant::now())
            })
        })
        .collect();
    threads
        .into_iter()
        .map(|t| t.join().expect("request thread"))
        .collect()
}

#[test]
fn gateway_5_5_serves_ten_concurrent_with_at_most_five_connections() {
    let w = Walkthrough::start();
    let url = w.gateway("/paths/green?sleep=1500");
    let replies = std::thread::scope(|s| {
        let sender = s.spawn(|| burst(10, &url));
        // While the burst is in flight the gauges show 5 connections and 5 queued.
        eventually(
            "5 active and 5 pending on the gateway",
            Duration::from_secs(10),
            || {
                let st = w.meshd.stats();
                let get = |n: &str| st.get(&format!("cluster.{GW_CLUSTER}.{n}")).copied();
                (get("upstream_cx_active") == Some(5)
                    && get("upstream_rq_pending_active") == Some(5)
                    && get("circuit_breakers.default.cx_open") == Some(1))
                .then_some(())
            },
        );
        sender.join().expect("burst")
    });
    assert!(replies.iter().all(|(r, _)| r.status == 200), "{replies:?}");
    assert_eq!(w.stat(GW_CLUSTER, "circuit_breakers.default.cx_peak"), 5);
    assert_eq!(
        w.stat(GW_CLUSTER, "circuit_breakers.default.rq_pending_peak"),
        5
    );
    assert_eq!(w.stat(GW_CLUSTER, "upstream_rq_pending_overflow"), 0);
    assert_eq!(
        w.stat(GW_CLUSTER, "upstream_cx_total"),
        5,
        "connections reused"
    );
}

#[test]
fn gateway_5_5_refuses_exactly_two_of_twelve_at_once_and_says_why() {
    let w = Walkthrough::start();
    let replies = burst(12, &w.gateway("/paths/green?sleep=2000"));
    let refused: Vec<_> = replies.iter().filter(|(r, _)| r.status == 503).collect();
    let served: Vec<_> = replies.iter().filter(|(r, _)| r.status == 200).collect();
    assert_eq!(refused.len(), 2, "{replies:?}");
    assert_eq!(served.len(), 10);
    let first_served = served.iter().map(|(_, t)| *t).min().expect("served");
    for (r, t) in &refused {
        assert!(*t < first_served, "refusals are immediate, not queued");
        assert_eq!(r.body, OVERFLOW_BODY);
        assert_eq!(r.header("x-envoy-overloaded"), Some("true"));
        assert_eq!(
            r.header("x-mesh-overflow"),
            Some(format!("max_pending_requests {GW_CLUSTER}").as_str())
        );
    }
    assert_eq!(w.stat(GW_CLUSTER, "upstream_rq_pending_overflow"), 2);
    assert_eq!(
        w.stat(GW_CLUSTER, "circuit_breakers.default.rq_pending_refused"),
        2
    );
    assert_eq!(w.stat(GW_CLUSTER, "upstream_rq_503"), 2);
    assert_eq!(
        w.app.stats()["requests_max"],
        5,
        "the app never saw more than 5"
    );
    // The gateway and the green node share the log file: 12 gateway lines + 10 node lines.
    let log = eventually("22 access log lines", Duration::from_secs(10), || {
        let log = w.access_log();
        (log.lines().count() >= 22).then_some(log)
    });
    let uo: Vec<&str> = log.lines().filter(|l| l.contains("\" 503 UO ")).collect();
    assert_eq!(uo.len(), 2, "{log}");
    assert!(
        uo[0].contains("\"GET /paths/green?sleep=2000 HTTP/1.1\""),
        "{}",
        uo[0]
    );
    assert_eq!(
        log.lines().filter(|l| l.contains("\" 200 - ")).count(),
        20,
        "{log}"
    );
}

#[test]
fn green_10_10_serves_twenty_concurrent_with_ten_upstream() {
    let w = Walkthrough::start();
    let replies = burst(20, &w.green("/?sleep=1000"));
    assert!(replies.iter().all(|(r, _)| r.status == 200), "{replies:?}");
    assert_eq!(
        w.stat(GREEN_CLUSTER, "circuit_breakers.default.cx_peak"),
        10
    );
    assert_eq!(
        w.stat(GREEN_CLUSTER, "circuit_breakers.default.rq_pending_peak"),
        10
    );
    assert_eq!(w.stat(GREEN_CLUSTER, "upstream_rq_pending_overflow"), 0);
    assert_eq!(
        w.stat(GREEN_CLUSTER, "upstream_cx_active"),
        10,
        "kept alive"
    );
    assert_eq!(w.app.stats()["requests_max"], 10);
    assert_eq!(
        w.meshd.stat("http.ingress.downstream_rq_2xx"),
        0,
        "several nodes: prefixed"
    );
    assert_eq!(
        w.meshd.stat("node.green.http.ingress.downstream_rq_2xx"),
        20
    );
}

fn set_green_pool(config: &Path, max_connections: u32, max_pending: u32) {
    let file = config.join("vn-green.json");
    let mut v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&file).expect("read")).expect("json");
    v["spec"]["listeners"][0]["connectionPool"]["http"] = serde_json::json!({
        "maxConnections": max_connections,
        "maxPendingRequests": max_pending,
    });
    let tmp = config.join(".vn-green.json.tmp");
    std::fs::write(&tmp, serde_json::to_string_pretty(&v).expect("json")).expect("write");
    std::fs::rename(&tmp, &file).expect("rename");
}

#[test]
fn an_edited_limit_applies_without_restart_and_without_failing_in_flight_requests() {
    let w = Walkthrough::start();
    let pid = w.meshd.proc.pid();
    let in_flight = std::thread::scope(|s| {
        let sender = s.spawn(|| burst(3, &w.green("/?sleep=1500")));
        eventually("3 requests in flight", Duration::from_secs(10), || {
            (w.stat(GREEN_CLUSTER, "upstream_rq_active") == 3).then_some(())
        });
        set_green_pool(&w.meshd.config_dir, 1, 1);
        eventually("the reload", Duration::from_secs(10), || {
            (w.meshd.stat("server.config_reload_success") >= 1).then_some(())
        });
        sender.join().expect("burst")
    });
    assert!(
        in_flight.iter().all(|(r, _)| r.status == 200),
        "{in_flight:?}"
    );
    let clusters = http_get(&w.meshd.url("/clusters")).body;
    assert!(
        clusters.contains(&format!(
            "{GREEN_CLUSTER}::default_priority::max_connections::1\n"
        )),
        "{clusters}"
    );
    // The same breaker lives on: its counters survived the reload.
    assert_eq!(w.stat(GREEN_CLUSTER, "upstream_rq_total"), 3);
    // New limits: of 3 at once, 1 is served, 1 queued, 1 refused.
    let replies = burst(3, &w.green("/?sleep=1000"));
    let codes: Vec<u16> = replies.iter().map(|(r, _)| r.status).collect();
    assert_eq!(codes.iter().filter(|c| **c == 200).count(), 2, "{codes:?}");
    assert_eq!(codes.iter().filter(|c| **c == 503).count(), 1, "{codes:?}");
    assert_eq!(w.meshd.proc.pid(), pid);
}

#[test]
fn a_broken_file_leaves_the_old_config_serving() {
    let w = Walkthrough::start();
    let config = &w.meshd.config_dir;
    // A semantic error: logged with file, JSON path and what is allowed.
    set_green_pool(config, 0, 1);
    eventually("a rejected reload", Duration::from_secs(10), || {
        (w.meshd.stat("server.config_reload_failure") >= 1).then_some(())
    });
    let err = w.meshd.proc.stderr();
    assert!(err.contains("vn-green.json"), "{err}");
    assert!(err.contains("connectionPool.http.maxConnections"), "{err}");
    assert_eq!(http_get(&w.green("/")).status, 200);
    // Half-written JSON.
    std::fs::write(config.join("vn-green.json"), "{\"meshName\": \"color-me").expect("write");
    eventually("a second rejected reload", Duration::from_secs(10), || {
        (w.meshd.stat("server.config_reload_failure") >= 2).then_some(())
    });
    assert_eq!(http_get(&w.gateway("/paths/green")).body, "green\n");
    let clusters = http_get(&w.meshd.url("/clusters")).body;
    assert!(clusters.contains(&format!(
        "{GREEN_CLUSTER}::default_priority::max_connections::10\n"
    )));
}

#[test]
fn a_port_in_use_exits_1_naming_the_node_and_address() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = taken.local_addr().expect("addr").to_string();
    let (_dir, config) = walkthrough_config();
    let out = std::process::Command::new(mesh_tests::bin("meshd"))
        .arg("--config-dir")
        .arg(&config)
        .args(["--admin", "127.0.0.1:0", "--node", "green", "--listen"])
        .arg(format!("green={addr}"))
        .arg("--state-dir")
        .arg(mesh_tests::state_dir_of(&config))
        .output()
        .expect("run meshd");
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("green") && err.contains(&addr), "{err}");
}

#[test]
fn unreachable_app_is_503_uf() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = closed.local_addr().expect("addr").to_string();
    drop(closed);
    let (dir, config) = walkthrough_config();
    let m = Meshd::start(
        &config,
        &[
            "--node",
            "green",
            "--listen",
            "green=127.0.0.1:0",
            "--app",
            &format!("green={addr}"),
        ],
    );
    let r = http_get(&format!("http://{}/", m.listener("green-ingress")));
    assert_eq!(r.status, 503);
    assert!(r.body.contains("remote connection failure"), "{}", r.body);
    assert_eq!(
        m.stat(&format!("cluster.{GREEN_CLUSTER}.upstream_cx_connect_fail")),
        1
    );
    let log = eventually("the access log line", Duration::from_secs(10), || {
        std::fs::read_to_string(dir.path().join("access.log"))
            .ok()
            .filter(|l| !l.is_empty())
    });
    assert!(log.contains("\" 503 UF "), "{log}");
}

fn raw(addr: &str, request: &[u8]) -> String {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let _ = s.write_all(request);
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

#[test]
fn malformed_and_oversized_requests_get_400_and_431() {
    let w = Walkthrough::start();
    let addr = w.meshd.listener("green-ingress").to_string();
    let bad = raw(&addr, b"NOT HTTP AT ALL\r\n\r\n");
    assert!(bad.starts_with("HTTP/1.1 400"), "{bad}");
    let mut big = b"GET / HTTP/1.1\r\nhost: x\r\nx-big: ".to_vec();
    big.extend(std::iter::repeat_n(b'a', 100 * 1024));
    big.extend(b"\r\n\r\n");
    let too_large = raw(&addr, &big);
    assert!(too_large.starts_with("HTTP/1.1 431"), "{too_large}");
    // meshd is fine afterwards.
    assert_eq!(http_get(&w.green("/")).status, 200);
}

#[test]
fn hop_by_hop_headers_stop_at_meshd_and_envoy_headers_are_added() {
    let w = Walkthrough::start();
    let addr = w.meshd.listener("green-ingress").to_string();
    let seen = raw(
        &addr,
        b"GET /?headers=1 HTTP/1.1\r\nhost: green\r\nproxy-connection: keep-alive\r\nkeep-alive: 5\r\nte: trailers\r\nx-keep: 1\r\nx-forwarded-for: 10.0.0.9\r\nconnection: close\r\n\r\n",
    );
    assert!(seen.starts_with("HTTP/1.1 200"), "{seen}");
    let body = seen.split("\r\n\r\n").nth(1).unwrap_or_default();
    let names: Vec<&str> = body.lines().filter_map(|l| l.split(": ").next()).collect();
    for gone in ["proxy-connection", "keep-alive", "te", "upgrade", "trailer"] {
        assert!(!names.contains(&gone), "{gone} reached the app:\n{body}");
    }
    assert!(body.contains("x-keep: 1\n"), "{body}");
    assert!(
        body.contains("x-forwarded-for: 10.0.0.9, 127.0.0.1\n"),
        "{body}"
    );
    assert!(names.contains(&"x-request-id"), "{body}");
}

#[test]
fn proxied_requests_carry_envoy_headers_and_bodies_stream_both_ways() {
    let w = Walkthrough::start();
    let body = "x".repeat(256 * 1024);
    let r = http(
        "POST",
        &w.green("/?echo=1"),
        &[("x-request-id", "abc")],
        Some(&body),
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.body.len(), body.len());
    assert!(r.header("x-envoy-upstream-service-time").is_some());
    let r = http_get(&w.gateway("/nowhere"));
    assert_eq!(r.status, 404);
    let log = eventually("2 log lines", Duration::from_secs(10), || {
        let l = w.access_log();
        (l.lines().count() >= 2).then_some(l)
    });
    assert!(
        log.contains(&format!(
            "\"POST /?echo=1 HTTP/1.1\" 200 - {} {} ",
            body.len(),
            body.len()
        )),
        "{log}"
    );
    assert!(log.contains("\"abc\""), "{log}");
    assert!(log.contains("\" 404 NR 0 0 "), "{log}");
}

#[test]
fn egress_listener_routes_declared_backends_by_host_and_refuses_others_with_nr() {
    let log = tempfile::tempdir().expect("tempdir");
    let f = mesh_tests::egress::front(Some(&log.path().join("front.log")));
    let (m, egress) = (&f.meshd, f.egress);
    let ok = http(
        "GET",
        &format!("http://{egress}/paths/green"),
        &[("host", "color-paths")],
        None,
    );
    assert_eq!((ok.status, ok.body.as_str()), (200, "green\n"));
    let with_port = http(
        "GET",
        &format!("http://{egress}/paths/red"),
        &[("host", "color-paths:8080")],
        None,
    );
    assert_eq!(with_port.status, 200);
    let undeclared = http(
        "GET",
        &format!("http://{egress}/"),
        &[("host", "elsewhere")],
        None,
    );
    assert_eq!(undeclared.status, 404);
    assert_eq!(
        m.stat("cluster.cds_egress_color-mesh_green_http_8080.upstream_rq_200"),
        1
    );
    let log = eventually("3 egress log lines", Duration::from_secs(10), || {
        std::fs::read_to_string(log.path().join("front.log"))
            .ok()
            .filter(|l| l.lines().count() >= 3)
    });
    assert!(log.contains("\" 404 NR "), "{log}");
}

#[test]
fn admin_endpoints_prometheus_config_dump_and_reset() {
    let w = Walkthrough::start();
    assert_eq!(http_get(&w.gateway("/paths/green")).status, 200);

    // Prometheus exposition: every series follows a `# TYPE` line of its metric, names and
    // labels are well formed, values are integers.
    let prom = http_get(&w.meshd.url("/stats/prometheus")).body;
    let series = regex::Regex::new(
        r#"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([a-zA-Z_][a-zA-Z0-9_]*="[^"\\]*",?)*\})? [0-9]+$"#,
    )
    .expect("regex");
    let mut typed = std::collections::HashSet::new();
    for line in prom.lines().filter(|l| !l.is_empty()) {
        if let Some(t) = line.strip_prefix("# TYPE ") {
            let (name, kind) = t.split_once(' ').expect("name and type");
            assert!(kind == "counter" || kind == "gauge", "{line}");
            assert!(typed.insert(name.to_owned()), "one TYPE per metric: {line}");
            continue;
        }
        let caps = series
            .captures(line)
            .unwrap_or_else(|| panic!("bad series: {line}"));
        assert!(typed.contains(&caps[1]), "series before its TYPE: {line}");
    }
    assert!(prom.contains(&format!(
        "envoy_cluster_upstream_rq{{envoy_response_code=\"200\",envoy_cluster_name=\"{GREEN_CLUSTER}\"}} 1"
    )), "{prom}");

    let clusters: serde_json::Value =
        serde_json::from_str(&http_get(&w.meshd.url("/clusters?format=json")).body).expect("json");
    let green = clusters["cluster_statuses"]
        .as_array()
        .expect("statuses")
        .iter()
        .find(|c| c["name"] == GREEN_CLUSTER)
        .expect("green cluster");
    assert_eq!(
        green["circuit_breakers"]["thresholds"][0]["max_connections"],
        10
    );
    assert_eq!(
        green["host_statuses"][0]["address"]["socket_address"]["port_value"],
        w.app.addr.port()
    );

    let dump: serde_json::Value =
        serde_json::from_str(&http_get(&w.meshd.url("/config_dump")).body).expect("json");
    assert_eq!(dump["resources"].as_array().map(Vec::len), Some(10));

    let filtered = http_get(
        &w.meshd
            .url("/stats?filter=green_http_8080%5C.upstream_rq_total"),
    )
    .body;
    assert_eq!(filtered.lines().count(), 2, "{filtered}");

    assert_eq!(http_get(&w.meshd.url("/reset_counters")).status, 405);
    assert_eq!(
        http("POST", &w.meshd.url("/reset_counters"), &[], None).status,
        200
    );
    assert_eq!(w.stat(GREEN_CLUSTER, "upstream_rq_total"), 0);
    assert_eq!(
        w.stat(GREEN_CLUSTER, "upstream_cx_active"),
        1,
        "gauges are not reset"
    );
}
