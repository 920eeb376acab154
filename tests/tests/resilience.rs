//! Retries, outlier detection and active health checks, end to end: a caller's meshd in front
//! of a service whose DNS name resolves to two replicas (two demo apps on one port of 127.0.0.2
//! and 127.0.0.3; meshd gets its own /etc/hosts in a private mount namespace, see
//! `tests/src/hosts.rs`), one of them failing or killed.

use std::time::{Duration, Instant};

use mesh_tests::resilience::{
    merge, meshstat, outlier, port_free_on_both, two_replicas, Mesh, SERVICE,
};
use mesh_tests::{eventually, http, DemoApp, Meshd};
use serde_json::json;

#[test]
fn a_failing_replica_is_retried_around_then_ejected_and_ejected_longer_when_it_fails_again() {
    let (a, b) = two_replicas(&[], &["--fail-every", "1", "--fail-status", "502"]);
    let port = a.addr.port();
    // A 2 s interval: the ejection backoff decays at the first interval b spends in rotation,
    // so b must fail again within 2 s of its return for the second ejection to be longer.
    let mut listener = outlier(3, 50);
    listener["outlierDetection"]["interval"]["value"] = json!(2);
    let mesh = Mesh::write(
        port,
        listener,
        json!({"retryPolicy": {"maxRetries": 2,
            "perRetryTimeout": {"unit": "s", "value": 5},
            "httpRetryEvents": ["server-error"]}}),
    );
    let c = mesh.start();

    // Round robin over the two replicas: every request that meets b is retried on a.
    for i in 0..12 {
        let r = c.get(&format!("/r{i}"));
        assert_eq!(r.status, 200, "request {i}: {}", r.body);
        assert_eq!(r.body, "a\n");
    }
    // b failed three times in a row: ejected, and only then.
    let bh = c.host(port, b.addr);
    assert_eq!(bh["health_flags"], "/failed_outlier_check", "{bh:?}");
    assert_eq!(bh["outlier_ejections"], "1", "{bh:?}");
    assert_eq!(b.stats()["requests_total"], 3);
    // meshctl says the same, with the reason and the time left.
    let live = mesh_tests::meshctl(
        &c.meshd.socket,
        &["describe", "vn", "client", "--mesh", "m", "--live"],
    );
    assert_eq!(live.code, 0, "{}", live.stderr);
    let line = live
        .stdout
        .lines()
        .find(|l| l.contains(&format!("host {}", b.addr)))
        .unwrap_or_else(|| panic!("no line for b in:\n{}", live.stdout));
    assert!(
        line.contains("/failed_outlier_check: ejected for consecutive_5xx (ejection 1), "),
        "{line}"
    );
    // meshstat: which host is out, why, and that this is dead hosts, not overload.
    let out = meshstat(&c.meshd, &["hosts", "--out", "svc"]);
    let cluster = c.cluster(port);
    assert_eq!(out.lines().count(), 1, "{out}");
    assert!(
        out.starts_with(&format!(
            "{cluster} {} ejected consecutive_5xx ejections=1 left=",
            b.addr
        )),
        "{out}"
    );
    let all = meshstat(&c.meshd, &["hosts", "svc"]);
    assert!(
        all.contains(&format!("{cluster} {} healthy ", a.addr)),
        "{all}"
    );
    let why = meshstat(&c.meshd, &["why", "svc"]);
    assert!(
        why.contains(&format!("cluster {cluster}: verdict: dead hosts")),
        "{why}"
    );
    assert!(
        why.contains("3 of the 15 requests sent upstream were retries"),
        "{why}"
    );
    let lines = mesh.log_lines(12);
    assert_eq!(lines.len(), 12);
    let retried = lines.iter().filter(|l| l["attempts"] == 2).count();
    assert_eq!(retried, 3, "{lines:?}");
    assert!(lines.iter().all(|l| l["code"] == 200), "{lines:?}");
    assert_eq!(c.stat(port, "upstream_rq_retry"), 3);
    assert_eq!(c.stat(port, "upstream_rq_retry_success"), 3);
    assert_eq!(
        c.stat(port, "outlier_detection.ejections_enforced_consecutive_5xx"),
        1
    );
    let events = mesh.events();
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0]["action"], "EJECT");
    assert_eq!(events[0]["type"], "CONSECUTIVE_5XX");
    assert_eq!(events[0]["upstream_url"], b.addr.to_string());

    // After the ejection time b returns; failing again at once, it is out twice as long.
    let unejected = eventually("b to return", Duration::from_secs(10), || {
        mesh.events()
            .iter()
            .any(|e| e["action"] == "UNEJECT")
            .then_some(Instant::now())
    });
    for i in 0..12 {
        if mesh.events().len() >= 3 {
            break;
        }
        assert_eq!(c.get(&format!("/again{i}")).status, 200);
    }
    assert!(
        unejected.elapsed() < Duration::from_secs(2),
        "too slow to test the backoff"
    );
    let events = mesh.events();
    assert_eq!(events.len(), 3, "{events:?}");
    assert_eq!(events[2]["action"], "EJECT");
    assert_eq!(events[2]["num_ejections"], 2);
    assert_eq!(events[2]["ejection_duration_ms"], 2000, "{events:?}");
    drop(a);
}

#[test]
fn with_every_replica_failing_callers_get_503_uh() {
    let fail = ["--fail-every", "1", "--fail-status", "503"];
    let (a, b) = two_replicas(&fail, &fail);
    let port = a.addr.port();
    let mesh = Mesh::write(port, outlier(2, 100), json!({}));
    let c = mesh.start();
    // Each replica fails twice (no retry policy: 503 goes back to the client), then both are out.
    for i in 0..4 {
        assert_eq!(c.get(&format!("/f{i}")).status, 503);
    }
    let r = c.get("/none");
    assert_eq!(r.status, 503);
    assert_eq!(r.body, "no healthy upstream");
    let last = mesh.log_lines(5).pop().expect("a log line");
    assert_eq!(last["flags"], "UH", "{last}");
    assert_eq!(c.stat(port, "upstream_cx_none_healthy"), 1);
    assert_eq!(c.stat(port, "outlier_detection.ejections_active"), 2);
    assert_eq!(c.stat(port, "membership_healthy"), 0);
    drop(b);
}

#[test]
fn a_killed_replica_gives_uf_is_ejected_and_returns_through_the_health_check() {
    let (a, mut b) = two_replicas(&[], &[]);
    let port = a.addr.port();
    let b_addr = b.addr;
    // Ejected for a minute: only the health check (every 5 s, App Mesh's minimum) can bring b
    // back within the test.
    let mut listener = outlier(2, 50);
    listener["outlierDetection"]["baseEjectionDuration"]["value"] = json!(60);
    merge(
        &mut listener,
        &json!({"healthCheck": {"protocol": "http", "path": "/ping", "port": port,
            "intervalMillis": 5000, "timeoutMillis": 2000,
            "healthyThreshold": 2, "unhealthyThreshold": 2}}),
    );
    let mesh = Mesh::write(port, listener, json!({}));
    let c = mesh.start();
    for i in 0..4 {
        assert_eq!(c.get(&format!("/ok{i}")).status, 200);
    }
    // Both hosts pass their first health check before b dies: a first check that finds b dead
    // already takes it out of rotation (the first result decides), and then no request ever
    // reaches b to count against it. Once healthy, b needs two failed checks (≥ 5 s) to leave.
    for addr in [a.addr, b_addr] {
        eventually("first health check passed", Duration::from_secs(10), || {
            (c.host(port, addr)["active_hc"] == "healthy").then_some(())
        });
    }
    b.proc.kill();
    // Connect failures to b: retried on a (App Mesh's default retries connection errors), and
    // counted against b until it is ejected.
    let mut uf = 0;
    for i in 0..10 {
        let r = c.get(&format!("/k{i}"));
        assert_eq!(r.status, 200, "{}", r.body);
        if c.host(port, b_addr)["health_flags"].contains("failed_outlier_check") {
            uf = i + 1;
            break;
        }
    }
    assert!(uf > 0, "b was never ejected: {:?}", c.host(port, b_addr));
    assert!(c.stat(port, "upstream_cx_connect_fail") >= 2);
    assert!(mesh
        .log_lines(4 + uf)
        .iter()
        .any(|l| l["attempts"] == 2 && l["code"] == 200));

    // b comes back on the same address: the health check's success returns it to rotation
    // before its ejection would end on its own (a connect-failure ejection).
    let b2 = DemoApp::start_on("b", &b_addr.to_string(), &[]);
    eventually("b back in rotation", Duration::from_secs(20), || {
        (c.host(port, b_addr)["health_flags"] == "healthy").then_some(())
    });
    let events = mesh.events();
    let back = events
        .iter()
        .find(|e| e["action"] == "UNEJECT")
        .expect("an unejection");
    assert_eq!(back["uneject_reason"], "active_health_check", "{events:?}");
    eventually("b serving again", Duration::from_secs(10), || {
        (c.get("/back").body == "b\n").then_some(())
    });
    assert!(c.stat(port, "health_check.success") >= 1);
    let hosts = meshstat(&c.meshd, &["hosts", "svc"]);
    let line = hosts
        .lines()
        .find(|l| l.contains(&format!(" {b_addr} ")))
        .unwrap_or_else(|| panic!("no line for b in:\n{hosts}"));
    assert!(line.contains(" healthy - ejections=1 left=- "), "{line}");
    assert!(line.ends_with(" hc=healthy"), "{line}");
    drop((a, b2));
}

#[test]
fn a_per_try_timeout_is_retried_and_a_slow_upstream_gets_504_ut() {
    let (a, b) = two_replicas(&["--sleep-ms", "3000"], &["--sleep-ms", "3000"]);
    let port = a.addr.port();
    let mesh = Mesh::write(
        port,
        json!({}),
        json!({"retryPolicy": {"maxRetries": 1,
            "perRetryTimeout": {"unit": "ms", "value": 300},
            "httpRetryEvents": ["gateway-error"]},
            "timeout": {"perRequest": {"unit": "s", "value": 2}}}),
    );
    let c = mesh.start();
    let t = Instant::now();
    let r = c.get("/slow");
    assert_eq!(r.status, 504, "{}", r.body);
    assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
    let last = mesh.log_lines(1).pop().expect("a log line");
    assert_eq!(last["attempts"], 2, "{last}");
    assert!(
        last["flags"].as_str().is_some_and(|f| f.contains("UT")),
        "{last}"
    );
    assert_eq!(c.stat(port, "upstream_rq_per_try_timeout"), 2);
    assert_eq!(c.stat(port, "upstream_rq_retry_limit_exceeded"), 1);
    drop((a, b));
}

#[test]
fn under_overload_retries_stay_within_the_budget() {
    use mesh_tests::{Gate, RawConn, RawUpstream};
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    // Both replicas answer 503 to everything, each request held first: the first 10 arrivals
    // (the requests' first attempts) by `first`, later ones (retries) by `retries`.
    let (first, retries) = (Gate::default(), Gate::default());
    let arrivals = Arc::new(AtomicUsize::new(0));
    let replica = |ip: &str, port: u16| {
        let (first, retries, arrivals) = (first.clone(), retries.clone(), arrivals.clone());
        RawUpstream::try_start_on(&format!("{ip}:{port}"), move |c: &mut RawConn| {
            while c.next_request().is_some() {
                let n = arrivals.fetch_add(1, Ordering::SeqCst);
                let gate = if n < 10 { &first } else { &retries };
                if !gate.wait()
                    || !c.write(b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\n\r\n")
                {
                    return false;
                }
            }
            false
        })
    };
    let (a, b, port) = (0..10)
        .find_map(|_| {
            let a = replica("127.0.0.2", 0).ok()?;
            let port = a.addr.port();
            Some((a, replica("127.0.0.3", port).ok()?, port))
        })
        .expect("a port free on both 127.0.0.2 and 127.0.0.3");
    let mesh = Mesh::write(
        port,
        json!({}),
        json!({"retryPolicy": {"maxRetries": 5,
            "perRetryTimeout": {"unit": "s", "value": 15},
            "httpRetryEvents": ["gateway-error"]},
            "timeout": {"perRequest": {"unit": "s", "value": 20}}}),
    );
    let c = mesh.start();
    // 10 requests at once, all held at the replicas.
    let egress = c.egress;
    let threads: Vec<_> = (0..10)
        .map(|i| {
            std::thread::spawn(move || {
                http(
                    "GET",
                    &format!("http://{egress}/o{i}"),
                    &[("Host", SERVICE)],
                    None,
                )
                .status
            })
        })
        .collect();
    eventually("10 first attempts held", Duration::from_secs(10), || {
        (arrivals.load(Ordering::SeqCst) == 10).then_some(())
    });
    // All fail at once: Envoy's budget allows retries for 20 % of the 10 active requests, at
    // least 3, so exactly 3 retries go out (and are held) and 7 requests overflow the budget.
    first.open();
    eventually(
        "3 retries held, 7 overflowed",
        Duration::from_secs(10),
        || {
            (arrivals.load(Ordering::SeqCst) == 13
                && c.stat(port, "upstream_rq_retry_overflow") == 7)
                .then_some(())
        },
    );
    let peak = |c: &mesh_tests::resilience::Caller| {
        c.meshd.stat(&format!(
            "cluster.{}.circuit_breakers.default.rq_retry_peak",
            c.cluster(port)
        ))
    };
    assert_eq!(peak(&c), 3, "retries in flight");
    retries.open();
    for t in threads {
        assert_eq!(t.join().expect("client"), 503);
    }
    assert!(peak(&c) <= 3, "retries in flight peaked at {}", peak(&c));
    let lines = mesh.log_lines(10);
    let overflowed = lines
        .iter()
        .filter(|l| {
            l["attempts"] == 1
                && l["code"] == 503
                && l["flags"].as_str().is_some_and(|f| f.contains("UO"))
        })
        .count();
    assert_eq!(overflowed, 7, "{lines:?}");
    drop((a, b));
}

#[test]
fn an_upstream_meshd_refusing_for_overload_is_neither_retried_nor_ejected() {
    use mesh_tests::{Gate, RawConn, RawUpstream};
    // The service's two replicas are meshd (node svc, one connection and one queued request
    // allowed to its app) in front of apps held by a gate: a third request at a replica is
    // refused there with 503 and x-envoy-overloaded, as Envoy does.
    let gate = Gate::default();
    let app = || {
        let gate = gate.clone();
        RawUpstream::start(move |c: &mut RawConn| {
            while c.next_request().is_some() {
                if !gate.wait() || !c.write(b"HTTP/1.1 200 OK\r\ncontent-length: 3\r\n\r\nok\n") {
                    return false;
                }
            }
            false
        })
    };
    let (app_a, app_b) = (app(), app());
    let port = port_free_on_both();
    let mut listener = outlier(2, 100);
    merge(
        &mut listener,
        &json!({"connectionPool": {"http": {"maxConnections": 1, "maxPendingRequests": 1}}}),
    );
    let mesh = Mesh::write(
        port,
        listener,
        json!({"retryPolicy": {"maxRetries": 3,
            "perRetryTimeout": {"unit": "s", "value": 15},
            "httpRetryEvents": ["server-error", "gateway-error"]}}),
    );
    let replica = |ip: &str, app: &RawUpstream| {
        let config = mesh.dir.path().join(format!("config-{ip}"));
        std::fs::create_dir_all(&config).expect("mkdir");
        for e in std::fs::read_dir(&mesh.config).expect("config").flatten() {
            std::fs::copy(e.path(), config.join(e.file_name())).expect("copy");
        }
        let listen = format!("svc={ip}:{port}");
        let up = format!("svc={}", app.addr);
        Meshd::start(
            &config,
            &["--node", "svc", "--listen", &listen, "--app", &up],
        )
    };
    let (ra, rb) = (replica("127.0.0.2", &app_a), replica("127.0.0.3", &app_b));
    let c = mesh.start();

    // Six requests at once: round robin gives each replica three; each holds one at its app,
    // queues one and refuses one.
    let egress = c.egress;
    let clients: Vec<_> = (0..6)
        .map(|i| {
            std::thread::spawn(move || {
                let r = http(
                    "GET",
                    &format!("http://{egress}/o{i}"),
                    &[("Host", SERVICE)],
                    None,
                );
                (r.status, r.header("x-envoy-overloaded").map(str::to_owned))
            })
        })
        .collect();
    // The two refusals come back while the gate is still shut.
    let refused = mesh.log_lines(2);
    assert!(!gate.is_open());
    gate.open();
    let mut got: Vec<(u16, Option<String>)> = clients
        .into_iter()
        .map(|t| t.join().expect("client"))
        .collect();
    got.sort();
    assert_eq!(
        got,
        [
            (200, None),
            (200, None),
            (200, None),
            (200, None),
            (503, Some("true".into())),
            (503, Some("true".into())),
        ]
    );
    // The caller neither retried them nor held them against the replicas.
    for l in &refused {
        assert_eq!(
            (l["code"].as_u64(), l["attempts"].as_u64()),
            (Some(503), Some(1)),
            "{l}"
        );
    }
    assert_eq!(c.stat(port, "upstream_rq_retry"), 0);
    for r in [&ra, &rb] {
        let refusals = r.stat(&format!(
            "cluster.cds_ingress_m_svc_http_{port}.upstream_rq_pending_overflow"
        ));
        assert_eq!(refusals, 1);
    }
    for h in [ra.listener("svc-ingress"), rb.listener("svc-ingress")] {
        let host = c.host(port, h);
        assert_eq!(host["health_flags"], "healthy", "{host:?}");
        assert_eq!(host["outlier_consecutive_5xx"], "0", "{host:?}");
        assert_eq!(host["outlier_consecutive_gateway_failure"], "0", "{host:?}");
    }
    assert!(mesh.events().is_empty(), "{:?}", mesh.events());
    // meshstat tells it apart: overload at the replicas, nothing wrong with their hosts here.
    let ingress = format!("cds_ingress_m_svc_http_{port}");
    for r in [&ra, &rb] {
        let why = meshstat(r, &["why"]);
        assert!(
            why.contains(&format!("cluster {ingress}: verdict: overload")),
            "{why}"
        );
    }
    let why = meshstat(&c.meshd, &["why", "svc"]);
    assert!(
        why.contains("no limit refused a request and no host failed"),
        "{why}"
    );
}

#[test]
fn a_body_up_to_64_kib_is_sent_again_on_retry_and_a_larger_one_is_not_retried() {
    let (a, b) = two_replicas(&[], &["--fail-every", "1", "--fail-status", "502"]);
    let port = a.addr.port();
    let mesh = Mesh::write(
        port,
        json!({}),
        json!({"retryPolicy": {"maxRetries": 2,
            "perRetryTimeout": {"unit": "s", "value": 5},
            "httpRetryEvents": ["server-error"]}}),
    );
    let c = mesh.start();
    let post = |body: &str| {
        http(
            "POST",
            &format!("http://{}/?echo=1", c.egress),
            &[("Host", SERVICE)],
            Some(body),
        )
    };
    // Round robin sends every other request to b, whose 502 is retried on a with the whole body.
    let small: String = "0123456789abcdef".repeat(64 * 64 - 1); // 64 KiB less 16 bytes
    for i in 0..4 {
        let r = post(&small);
        assert_eq!(r.status, 200, "small POST {i}");
        assert!(
            r.body == small,
            "small POST {i}: {} bytes back",
            r.body.len()
        );
    }
    let lines = mesh.log_lines(4);
    let retried = lines.iter().filter(|l| l["attempts"] == 2).count() as u64;
    assert!(retried >= 1, "{lines:?}");
    assert_eq!(c.stat(port, "upstream_rq_retry"), retried);
    assert_eq!(c.stat(port, "retry_or_shadow_abandoned"), 0);
    // Above 64 KiB the body streams upstream once: b's 502 goes back to the client.
    let large = format!("{small}{}", "x".repeat(32));
    let mut refused = 0;
    for i in 0..4 {
        let r = post(&large);
        match r.status {
            200 => assert!(
                r.body == large,
                "large POST {i}: {} bytes back",
                r.body.len()
            ),
            502 => refused += 1,
            s => panic!("large POST {i}: {s} {}", r.body),
        }
    }
    assert!(refused >= 1, "no large POST met b");
    let lines = mesh.log_lines(8);
    let large_lines = &lines[4..];
    assert!(
        large_lines
            .iter()
            .filter(|l| l["code"] == 502)
            .all(|l| l["attempts"] == 1),
        "{large_lines:?}"
    );
    assert_eq!(c.stat(port, "retry_or_shadow_abandoned"), 4);
    assert_eq!(c.stat(port, "upstream_rq_retry"), retried);
    drop((a, b));
}
