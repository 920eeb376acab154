//! End-to-end tests of meshstat: the real binary against real meshd processes under load.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use mesh_tests::{
    bin, eventually, http_get, meshstat, meshstat_ok, walkthrough_config, DemoApp, Meshd, TempDir,
};
use serde_json::Value;

/// The gateway's self-redirect cluster in the walkthrough.
const GW_CLUSTER: &str = "cds_ingress_color-mesh_ingress-gw_self_redirect_http_8088";

/// The walkthrough with only the gateway logging to `<dir>/access.log` (the nodes log to
/// `<dir>/nodes.log`), so the access log holds exactly one line per request to the gateway.
fn gateway_config() -> (TempDir, PathBuf, PathBuf) {
    let (dir, config) = walkthrough_config();
    let log = dir.path().join("access.log");
    let nodes_log = dir.path().join("nodes.log");
    for node in ["vn-green.json", "vn-red.json"] {
        let p = config.join(node);
        let text = std::fs::read_to_string(&p).expect("read node");
        let text = text.replace(&log.display().to_string(), &nodes_log.display().to_string());
        std::fs::write(&p, text).expect("write node");
    }
    (dir, config, log)
}

/// meshd serving the gateway and green (green's app is `app`), every port chosen by the OS.
fn start_gateway_and_green(config: &Path, app: &DemoApp) -> Meshd {
    // These tests count requests exactly: no health-check traffic from the gateway to green.
    mesh_tests::strip_health_checks(config);
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

fn admin(m: &Meshd) -> String {
    m.admin.to_string()
}

fn names_of_filter(m: &Meshd, pattern: &str) -> BTreeSet<String> {
    let url = format!("{}?filter={}", m.url("/stats"), encode(pattern));
    http_get(&url)
        .body
        .lines()
        .filter_map(|l| l.split_once(": ").map(|(k, _)| k.to_owned()))
        .collect()
}

fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// Whether some line of `text` is exactly these words (whitespace ignored).
fn has_row(text: &str, words: &[&str]) -> bool {
    text.lines()
        .any(|l| l.split_whitespace().collect::<Vec<_>>() == words)
}

fn lines_without_uptime(s: &str) -> Vec<&str> {
    s.lines().filter(|l| !l.contains("server.uptime")).collect()
}

#[test]
fn pattern_filter_matches_stats_filter_and_json_agrees_with_text() {
    let app = DemoApp::start("green", &[]);
    let (_dir, config, _log) = gateway_config();
    let m = start_gateway_and_green(&config, &app);
    let gw = m.listener("ingress-gw-gateway");
    for _ in 0..3 {
        assert_eq!(http_get(&format!("http://{gw}/paths/green")).status, 200);
    }
    let a = admin(&m);
    for pattern in [
        "cx_active",
        "rq_pending_(open|refused)$",
        "^server\\.",
        "upstream_rq_2",
    ] {
        let r = meshstat_ok(&["--admin", &a, pattern]);
        let names: Vec<String> = r
            .stdout
            .lines()
            .map(|l| l.split_once(": ").expect("name: value").0.to_owned())
            .collect();
        let mut sorted = names.clone();
        sorted.sort();
        assert_eq!(names, sorted, "output is sorted by name");
        let want = names_of_filter(&m, pattern);
        assert!(!want.is_empty(), "{pattern} matches something");
        assert_eq!(
            names.into_iter().collect::<BTreeSet<_>>(),
            want,
            "{pattern}"
        );
    }
    // Several patterns: any of them.
    let r = meshstat_ok(&["--admin", &a, "cx_active$", "rq_pending_overflow$"]);
    let got: BTreeSet<String> = r
        .stdout
        .lines()
        .map(|l| l.split(": ").next().unwrap_or("").to_owned())
        .collect();
    let mut want = names_of_filter(&m, "cx_active$");
    want.extend(names_of_filter(&m, "rq_pending_overflow$"));
    assert_eq!(got, want);

    // -o json: real JSON, same names and values as the text output, typed like Envoy's tables.
    let text = meshstat_ok(&["--admin", &a]);
    let json = meshstat_ok(&["--admin", &a, "-o", "json"]);
    let mut from_json = Vec::new();
    for line in json.stdout.lines() {
        let v: Value = serde_json::from_str(line).expect("each line is JSON");
        assert_eq!(v["source"], a.as_str());
        let name = v["name"].as_str().expect("name").to_owned();
        let ty = v["type"].as_str().expect("type");
        let gauge = name.contains(".membership_")
            || name.ends_with("_active")
            || name.ends_with("_open")
            || name.contains(".remaining_")
            || name.ends_with("_peak");
        let counter =
            name.ends_with("_total") || name.ends_with("_overflow") || name.ends_with("_refused");
        let expect = match (gauge, counter) {
            (true, _) => "gauge",
            (false, true) => "counter",
            (false, false) => ty,
        };
        assert_eq!(ty, expect, "{name}");
        from_json.push(format!("{name}: {}", v["value"].as_u64().expect("value")));
    }
    assert_eq!(
        lines_without_uptime(&text.stdout),
        from_json
            .iter()
            .map(String::as_str)
            .filter(|l| !l.contains("server.uptime"))
            .collect::<Vec<_>>()
    );
    // --nonzero hides zeros; nothing matching is exit 1 with no output.
    let nz = meshstat_ok(&["--admin", &a, "--nonzero", "downstream_rq"]);
    assert!(
        nz.stdout.lines().all(|l| !l.ends_with(": 0")),
        "{}",
        nz.stdout
    );
    assert!(nz.stdout.contains("downstream_rq_2xx: 3"), "{}", nz.stdout);
    let none = meshstat(&["--admin", &a, "no_such_stat_anywhere"]);
    assert_eq!((none.code, none.stdout.as_str()), (1, ""));
}

#[test]
fn two_meshd_at_once_with_sum() {
    let app = DemoApp::start("green", &[]);
    let (_d1, c1, _) = gateway_config();
    let (_d2, c2, _) = gateway_config();
    let m1 = start_gateway_and_green(&c1, &app);
    let m2 = start_gateway_and_green(&c2, &app);
    let stat = "node.green.http.ingress.downstream_rq_total";
    for (m, n) in [(&m1, 3), (&m2, 2)] {
        let green = m.listener("green-ingress");
        for _ in 0..n {
            assert_eq!(http_get(&format!("http://{green}/")).status, 200);
        }
        eventually("requests counted", Duration::from_secs(10), || {
            (m.stat(stat) == n).then_some(())
        });
    }
    let (a1, a2) = (admin(&m1), admin(&m2));
    let pattern = format!("^{}$", stat.replace('.', "\\."));
    let r = meshstat_ok(&["--admin", &a1, "--admin", &a2, &pattern]);
    assert_eq!(r.stdout, format!("{a1} {stat}: 3\n{a2} {stat}: 2\n"));
    let r = meshstat_ok(&["--admin", &a1, "--admin", &a2, "--sum", &pattern]);
    assert_eq!(r.stdout, format!("{stat}: 5\n"));
    let r = meshstat_ok(&[
        "--admin", &a1, "--admin", &a2, "--sum", "-o", "json", &pattern,
    ]);
    let v: Value = serde_json::from_str(r.stdout.trim()).expect("json");
    assert_eq!(
        (
            v["value"].as_u64(),
            v["type"].as_str(),
            v["sources"].as_u64()
        ),
        (Some(5), Some("counter"), Some(2))
    );
    // MESHD_ADMIN takes a comma-separated list too.
    let out = Command::new(bin("meshstat"))
        .env("MESHD_ADMIN", format!("{a1},{a2}"))
        .args(["--sum", &pattern])
        .output()
        .expect("run");
    assert_eq!(String::from_utf8_lossy(&out.stdout), format!("{stat}: 5\n"));
    // One unreachable source: its own line, the other still shown, exit 1.
    let dead = "127.0.0.1:1";
    let r = meshstat(&["--admin", &a1, "--admin", dead, &pattern]);
    assert_eq!(r.code, 1);
    assert_eq!(r.stdout, format!("{a1} {stat}: 3\n"));
    assert_eq!(r.stderr.lines().count(), 1, "{}", r.stderr);
    assert!(
        r.stderr.starts_with(&format!("meshstat: {dead} : ")),
        "{}",
        r.stderr
    );
    // Clusters from both, prefixed.
    let r = meshstat_ok(&[
        "--admin",
        &a1,
        "--admin",
        &a2,
        "clusters",
        "ingress_color-mesh_green",
    ]);
    assert!(
        r.stdout.lines().any(|l| l.starts_with(&format!(
            "{a2} cds_ingress_color-mesh_green_http_8080 limit max_connections 10"
        ))),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout.lines().any(|l| l.starts_with(&format!(
            "{a1} cds_ingress_color-mesh_green_http_8080 host {} healthy",
            app.addr
        ))),
        "{}",
        r.stdout
    );
}

/// Forces refusals: the gateway allows 5 connections and 5 pending, 12 slow requests at once.
fn overflow(m: &Meshd, log: &Path) {
    let gw = m.listener("ingress-gw-gateway");
    let url = format!("http://{gw}/paths/green?sleep=1000");
    let handles: Vec<_> = (0..12)
        .map(|_| {
            let u = url.clone();
            std::thread::spawn(move || http_get(&u).status)
        })
        .collect();
    let mut codes: Vec<u16> = handles
        .into_iter()
        .map(|h| h.join().expect("client"))
        .collect();
    codes.sort();
    assert_eq!(codes.iter().filter(|c| **c == 503).count(), 2, "{codes:?}");
    assert_eq!(codes.iter().filter(|c| **c == 200).count(), 10, "{codes:?}");
    eventually(
        "12 lines in the access log",
        Duration::from_secs(10),
        || {
            let text = std::fs::read_to_string(log).ok()?;
            (text.lines().count() == 12).then_some(())
        },
    );
}

#[test]
fn log_counts_uo_exactly_and_why_names_cluster_and_limit() {
    let app = DemoApp::start("green", &[]);
    let (dir, config, log) = gateway_config();
    let m = start_gateway_and_green(&config, &app);
    let a = admin(&m);
    let before = meshstat_ok(&["--admin", &a, "why"]);
    assert!(
        before.stdout.contains("no limit refused a request"),
        "{}",
        before.stdout
    );
    overflow(&m, &log);
    let log_s = log.display().to_string();

    // log: exactly the UO lines, as records and in the summary.
    let r = meshstat_ok(&["log", "--flag", "UO", "-o", "json", &log_s]);
    let recs: Vec<Value> = r
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).expect("json record"))
        .collect();
    assert_eq!(recs.len(), 2, "{}", r.stdout);
    for rec in &recs {
        assert_eq!(rec["code"], 503);
        assert_eq!(rec["flags"], serde_json::json!(["UO"]));
        assert_eq!(rec["path"], "/paths/green?sleep=1000");
    }
    let r = meshstat_ok(&["log", &log_s]);
    assert!(
        r.stdout
            .starts_with("requests 12 (lines 12, unparsed 0, filtered out 0)\n"),
        "{}",
        r.stdout
    );
    assert!(has_row(&r.stdout, &["503", "2", "16.7%"]), "{}", r.stdout);
    assert!(has_row(&r.stdout, &["200", "10", "83.3%"]), "{}", r.stdout);
    assert!(
        has_row(&r.stdout, &["UO", "2", "16.7%", "UpstreamOverflow"]),
        "{}",
        r.stdout
    );
    assert!(r.stdout.contains("duration ms: p50 "), "{}", r.stdout);
    let r = meshstat_ok(&["log", "--code", "5xx", "--lines", &log_s]);
    assert_eq!(r.stdout.lines().count(), 2);
    assert!(
        r.stdout.lines().all(|l| l.contains("\" 503 UO ")),
        "{}",
        r.stdout
    );

    // Garbage lines are counted, the rest summarised; stdin works too.
    let mut text = std::fs::read_to_string(&log).expect("log");
    text.push_str("garbage\n{\"not\": \"a log line\"}\n");
    let mixed = dir.path().join("mixed.log");
    std::fs::write(&mixed, &text).expect("write");
    let r = meshstat_ok(&["log", "--flag", "UO", &mixed.display().to_string()]);
    assert!(
        r.stdout
            .starts_with("requests 2 (lines 14, unparsed 2, filtered out 10)"),
        "{}",
        r.stdout
    );
    assert!(r.stderr.contains("2 lines not parsed"), "{}", r.stderr);
    let mut child = Command::new(bin("meshstat"))
        .args(["log", "--flag", "UO", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("start");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(text.as_bytes())
        .expect("feed");
    let out = child.wait_with_output().expect("wait");
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("requests 2 "));

    // why: the right meshd, cluster and limit, with configured value and peak.
    let r = meshstat_ok(&["--admin", &a, "why", "--log", &log_s]);
    let first = r.stdout.lines().next().unwrap_or("");
    assert_eq!(
        first,
        format!("{a}: cluster {GW_CLUSTER} refused 2 requests at its max_pending_requests limit: the queue of requests waiting for a connection was full (configured 5, peak in flight 5). They got 503 with flag UO from this meshd (x-mesh-overflow: max_pending_requests {GW_CLUSTER}).")
    );
    assert!(
        r.stdout.contains(": 2 of 12 requests have flag UO"),
        "{}",
        r.stdout
    );
    let r = meshstat_ok(&["--admin", &a, "-o", "json", "why", "gw"]);
    let found: Vec<Value> = r
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect();
    let verdict = found
        .iter()
        .find(|v| v["kind"] == "verdict")
        .expect("a verdict");
    assert_eq!(verdict["verdict"], "overload", "{verdict}");
    assert_eq!(verdict["refused"], 2, "{verdict}");
    let v = found
        .iter()
        .find(|v| v["kind"] == "limit")
        .expect("a limit finding");
    assert_eq!(v["cluster"], GW_CLUSTER);
    assert_eq!(v["limit"], "max_pending_requests");
    assert_eq!(
        (
            v["refused"].as_u64(),
            v["configured"].as_u64(),
            v["peak"].as_u64()
        ),
        (Some(2), Some(5), Some(5))
    );
    // A pattern that excludes the gateway: nothing refused there.
    let r = meshstat_ok(&["--admin", &a, "why", "green"]);
    assert!(
        r.stdout.contains("no limit refused a request"),
        "{}",
        r.stdout
    );

    // The same facts from stats and clusters.
    let r = meshstat_ok(&["--admin", &a, "rq_pending_refused$", "--nonzero"]);
    assert_eq!(
        r.stdout,
        format!("cluster.{GW_CLUSTER}.circuit_breakers.default.rq_pending_refused: 2\n")
    );
    let r = meshstat_ok(&["--admin", &a, "-o", "json", "clusters", "self_redirect"]);
    let v: Value = serde_json::from_str(r.stdout.trim()).expect("json");
    assert_eq!(v["limits"]["max_pending_requests"]["refused"], 2);
    assert_eq!(v["limits"]["max_pending_requests"]["limit"], 5);
    assert_eq!(v["limits"]["max_connections"]["peak"], 5);
}

#[test]
fn watch_prints_rates_when_piped() {
    let app = DemoApp::start("green", &[]);
    let (_dir, config, _log) = gateway_config();
    let m = start_gateway_and_green(&config, &app);
    let r = meshstat_ok(&[
        "--admin",
        &admin(&m),
        "watch",
        "downstream_rq_total$|downstream_cx_active$",
        "--interval",
        "200ms",
        "--count",
        "2",
    ]);
    let lines: Vec<&str> = r.stdout.lines().collect();
    assert!(
        !lines.is_empty() && lines.len().is_multiple_of(2),
        "{}",
        r.stdout
    );
    for l in &lines {
        let (stamp, rest) = l.split_once(' ').expect("timestamp first");
        assert!(stamp.ends_with('Z'), "{l}");
        if rest.contains("downstream_rq_total: ") {
            assert!(rest.ends_with("/s"), "counter as a rate: {l}");
        } else {
            assert!(rest.contains("downstream_cx_active: "), "{l}");
            assert!(!rest.ends_with("/s"), "gauge as a value: {l}");
        }
    }
}

#[test]
fn follow_prints_lines_as_they_are_appended() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("access.log");
    std::fs::write(&path, "old line that is not shown\n").expect("write");
    let mut child = Command::new(bin("meshstat"))
        .args(["log", "--follow", "--flag", "UO"])
        .arg(&path)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let uo = r#"[2026-01-01T00:00:00.000Z] "GET /x HTTP/1.1" 503 UO 0 81 0 - "-" "t" "id" "h" "-""#;
    let ok = r#"[2026-01-01T00:00:00.000Z] "GET /x HTTP/1.1" 200 - 0 2 1 1 "-" "t" "id" "h" "1.2.3.4:80""#;
    let got = eventually("a followed UO line", Duration::from_secs(10), || {
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .expect("open");
        writeln!(f, "{ok}\n{uo}").expect("append");
        rx.recv_timeout(Duration::from_millis(500)).ok()
    });
    assert_eq!(got, uo);
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn bad_input_is_one_line_and_exit_2_closed_pipe_is_quiet() {
    let dead = "127.0.0.1:1";
    for (args, code, start) in [
        (
            vec!["--admin", dead, "a("],
            2,
            "meshstat: invalid regex \"a(\" : ",
        ),
        (
            vec!["log", "--flag", "XYZ", "-"],
            2,
            "meshstat: --flag XYZ : unknown response flag",
        ),
        (
            vec!["log", "/no/such/access.log"],
            2,
            "meshstat: log file /no/such/access.log : ",
        ),
        (
            vec!["log", "--code", "abc", "-"],
            2,
            "meshstat: --code abc : ",
        ),
        (
            vec!["--admin", dead, "cx_open"],
            1,
            "meshstat: 127.0.0.1:1 : cannot read meshd's admin endpoint",
        ),
        (
            vec!["--admin", dead, "clusters"],
            1,
            "meshstat: 127.0.0.1:1 : ",
        ),
        (vec!["--admin", dead, "why"], 1, "meshstat: 127.0.0.1:1 : "),
    ] {
        let r = meshstat(&args);
        assert_eq!(r.code, code, "{args:?}: {}", r.stderr);
        assert_eq!(r.stderr.lines().count(), 1, "{args:?}: {}", r.stderr);
        assert!(r.stderr.starts_with(start), "{args:?}: {}", r.stderr);
        assert!(r.stdout.is_empty(), "{args:?}");
    }
    let r = meshstat_ok(&["flags"]);
    assert!(
        r.stdout
            .lines()
            .any(|l| l.starts_with("UO   UpstreamOverflow ")),
        "{}",
        r.stdout
    );
    let r = meshstat_ok(&["flags", "-o", "json"]);
    assert!(r
        .stdout
        .lines()
        .all(|l| serde_json::from_str::<Value>(l).is_ok()));

    // `| head -1`: a big log printed line by line, the reader goes away after one line.
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("big.log");
    let line =
        r#"[2026-01-01T00:00:00.000Z] "GET /x HTTP/1.1" 503 UO 0 81 0 - "-" "t" "id" "h" "-""#;
    std::fs::write(&path, format!("{line}\n").repeat(50_000)).expect("write");
    let mut child = Command::new(bin("meshstat"))
        .args(["log", "--lines"])
        .arg(&path)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start");
    let mut first = String::new();
    BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut first)
        .expect("read");
    assert_eq!(first.trim_end(), line);
    // stdout is dropped here: meshstat's next writes fail with EPIPE.
    let out = child.wait_with_output().expect("wait");
    assert_eq!(out.status.code(), Some(0));
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
