//! End-to-end tests of meshload: the real binary against a real demo-app on loopback.

use std::net::TcpListener;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use mesh_tests::{bin, run_bounded, DemoApp, Run, RUN_TIMEOUT};
use serde_json::Value;

/// Runs `meshload ARGS`, bounded by the harness's run timeout (killed and failed beyond it).
fn meshload(args: &[&str]) -> Run {
    let mut cmd = Command::new(bin("meshload"));
    cmd.args(args);
    run_bounded(cmd, &format!("meshload {args:?}"))
}

/// Runs and requires exit code 0.
fn meshload_ok(args: &[&str]) -> Run {
    let r = meshload(args);
    assert_eq!(r.code, 0, "meshload {args:?} failed:\n{}", r.stderr);
    r
}

fn url(app: &DemoApp, path: &str) -> String {
    format!("http://{}{path}", app.addr)
}

fn requests_total(app: &DemoApp) -> u64 {
    app.stats()["requests_total"]
        .as_u64()
        .expect("requests_total")
}

fn assert_line(stderr: &str, line: &str) {
    assert!(
        stderr.lines().any(|l| l == line),
        "missing line {line:?} in:\n{stderr}"
    );
}

/// The number N in the line "All done N calls ...".
fn all_done_calls(stderr: &str) -> u64 {
    let line = stderr
        .lines()
        .find(|l| l.starts_with("All done "))
        .unwrap_or_else(|| panic!("no All done line in:\n{stderr}"));
    line.split_whitespace()
        .nth(2)
        .and_then(|n| n.parse().ok())
        .expect("call count")
}

#[test]
fn exact_calls_are_split_across_connections() {
    let app = DemoApp::start("green", &[]);
    let u = url(&app, "/");
    let r = meshload_ok(&["-c", "3", "-qps", "0", "-n", "20", &u]);
    assert_line(
        &r.stderr,
        "Starting at max qps with 3 thread(s) [gomax 2] for exactly 20 calls (6 per thread + 2)"
            .replace("gomax 2", &format!("gomax {}", gomax()))
            .as_str(),
    );
    assert_line(&r.stderr, "Code 200 : 20 (100.0 %)");
    assert!(
        r.stderr.contains("All done 20 calls (plus 0 warmup)"),
        "{}",
        r.stderr
    );
    assert!(r
        .stderr
        .contains("Aggregated Function Time : count 20 avg "));
    assert!(r.stderr.contains("# target 99% "));
    assert!(r.stdout.is_empty(), "text must go to stderr only");
    assert_eq!(requests_total(&app), 20);
}

fn gomax() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

#[test]
fn fortio_load_form_and_double_dash_flags() {
    let app = DemoApp::start("blue", &[]);
    let u = url(&app, "/");
    let r = meshload_ok(&[
        "load",
        "--c=2",
        "--n",
        "7",
        "-qps=0",
        "-loglevel",
        "Warning",
        &u,
    ]);
    assert_line(&r.stderr, "Code 200 : 7 (100.0 %)");
    assert_eq!(requests_total(&app), 7);

    // -gomaxprocs sets the threads that run the connections, reported as fortio does.
    let r = meshload_ok(&["-gomaxprocs", "1", "-c", "3", "-qps", "0", "-n", "9", &u]);
    assert!(
        r.stderr.contains(&format!("{}->1 procs", gomax())),
        "{}",
        r.stderr
    );
    assert_line(
        &r.stderr,
        "Starting at max qps with 3 thread(s) [gomax 1] for exactly 9 calls (3 per thread + 0)",
    );
    assert_line(&r.stderr, "Code 200 : 9 (100.0 %)");
}

#[test]
fn status_codes_are_counted() {
    let app = DemoApp::start("green", &["--fail-every", "3"]);
    let u = url(&app, "/");
    let r = meshload_ok(&[
        "-c",
        "3",
        "-qps",
        "0",
        "-n",
        "20",
        "-loglevel",
        "Warning",
        &u,
    ]);
    assert_line(&r.stderr, "Code 200 : 14 (70.0 %)");
    assert_line(&r.stderr, "Code 503 : 6 (30.0 %)");
    assert!(r.stderr.contains("Error cases : count 6 "), "{}", r.stderr);
    assert_eq!(requests_total(&app), 20);
}

#[test]
fn json_on_stdout_agrees_with_text() {
    let app = DemoApp::start("green", &["--fail-every", "4"]);
    let u = url(&app, "/");
    let r = meshload_ok(&["-c", "2", "-qps", "0", "-n", "20", "-json", "-", &u]);
    let v: Value = serde_json::from_str(&r.stdout).expect("stdout is the JSON result only");
    let keys: Vec<&str> = v
        .as_object()
        .expect("object")
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        &keys[..10],
        &[
            "RunType",
            "Labels",
            "StartTime",
            "RequestedQPS",
            "RequestedDuration",
            "ActualQPS",
            "ActualDuration",
            "NumThreads",
            "Version",
            "DurationHistogram"
        ]
    );
    assert_eq!(keys[keys.len() - 2..], ["AbortOn", "Meshload"]);
    assert_eq!(v["RunType"], "HTTP");
    assert_eq!(v["RequestedQPS"], "max");
    assert_eq!(v["RequestedDuration"], "exactly 20 calls");
    assert_eq!(v["RetCodes"]["200"], 15);
    assert_eq!(v["RetCodes"]["503"], 5);
    assert_eq!(v["DurationHistogram"]["Count"], 20);
    assert_eq!(v["ErrorsDurationHistogram"]["Count"], 5);
    // The HDR histograms (kept per lane, merged at the end) hold every call too.
    assert_eq!(v["Meshload"]["Corrected"]["Count"], 20);
    assert_eq!(v["Meshload"]["Raw"]["Count"], 20);
    assert_eq!(v["SocketCount"], 2);
    assert_eq!(v["HTTPReqTimeOut"], 3_000_000_000u64);
    assert_eq!(v["Sockets"], serde_json::json!([1, 1]));
    let pcts = v["DurationHistogram"]["Percentiles"]
        .as_array()
        .expect("percentiles");
    assert_eq!(pcts.len(), 5);
    assert_line(&r.stderr, "Code 200 : 15 (75.0 %)");
    assert_line(&r.stderr, "Code 503 : 5 (25.0 %)");
    assert!(r.stderr.contains("Json data to stdout"), "{}", r.stderr);
    // The histogram counts in the JSON add up to the text's call count.
    let data = v["DurationHistogram"]["Data"].as_array().expect("data");
    let total: u64 = data.iter().map(|b| b["Count"].as_u64().unwrap_or(0)).sum();
    assert_eq!(total, all_done_calls(&r.stderr));
}

#[test]
fn paced_run_makes_the_planned_number_of_calls() {
    let app = DemoApp::start("green", &[]);
    let u = url(&app, "/");
    let r = meshload_ok(&["-c", "2", "-qps", "100", "-t", "2s", "-o", "json", &u]);
    let calls = all_done_calls(&r.stderr);
    // 100 calls per connection are planned; a loaded machine may cut a few at the deadline.
    assert!((150..=200).contains(&calls), "{calls} calls:\n{}", r.stderr);
    assert!(r.stderr.contains("Sleep times : count") || r.stderr.contains("Aggregated Sleep Time"));
    assert!(r.stderr.contains("Raw Function Time (from actual send)"));
    assert!(r.stderr.contains("All done") && r.stderr.contains("(plus 2 warmup)"));
    let s: Value = serde_json::from_str(&r.stdout).expect("-o json summary");
    assert_eq!(s["calls"], calls);
    assert_eq!(s["latency_from"], "scheduled");
    let qps = s["qps"].as_f64().expect("qps");
    assert!(qps > 50.0 && qps < 150.0, "qps {qps}");
    // Warm-up calls reach the app too.
    assert_eq!(requests_total(&app), calls + 2);
}

#[test]
fn keepalive_uses_one_socket_per_connection() {
    let app = DemoApp::start("green", &[]);
    let u = url(&app, "/");
    let r = meshload_ok(&["-c", "3", "-qps", "0", "-n", "30", &u]);
    assert_line(
        &r.stderr,
        "Sockets used: 3 (for perfect keepalive, would be 3)",
    );
    assert_line(&r.stderr, &format!("{}: 3", app.addr));
    // The app counts the stats request's own connection too.
    assert_eq!(app.stats()["connections_total"].as_u64(), Some(3 + 1));

    let r = meshload_ok(&["-c", "2", "-qps", "0", "-n", "10", "-keepalive=false", &u]);
    assert_line(
        &r.stderr,
        "Sockets used: 10 (for perfect keepalive, would be 2)",
    );
    assert_line(&r.stderr, "Code 200 : 10 (100.0 %)");
}

#[test]
fn http10_requests_are_answered() {
    let app = DemoApp::start("green", &[]);
    let u = url(&app, "/");
    let r = meshload_ok(&["-c", "1", "-qps", "0", "-n", "5", "-http1.0", &u]);
    assert_line(&r.stderr, "Code 200 : 5 (100.0 %)");
}

/// A loopback address nobody listens on: bind port 0, read it, close it.
fn refused_addr() -> String {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = l.local_addr().expect("addr");
    drop(l);
    addr.to_string()
}

#[test]
fn refused_connection_is_code_minus_one() {
    let u = format!("http://{}/", refused_addr());
    let r = meshload_ok(&["-c", "2", "-qps", "0", "-n", "6", &u]);
    assert_line(&r.stderr, "Code  -1 : 6 (100.0 %)");
    // One line says why, once per run.
    let why: Vec<&str> = r
        .stderr
        .lines()
        .filter(|l| l.starts_with("[WRN] Unable to connect to "))
        .collect();
    assert_eq!(why.len(), 1, "{}", r.stderr);
    assert!(why[0].contains("refused"), "{}", why[0]);
    assert_line(
        &r.stderr,
        "Sockets used: 0 (for perfect keepalive, would be 2)",
    );
    assert!(r.stderr.contains("All done 6 calls"), "{}", r.stderr);
}

#[test]
fn failed_warmup_aborts_unless_allowed() {
    let u = format!("http://{}/", refused_addr());
    let r = meshload(&["-c", "1", "-qps", "10", "-t", "1s", &u]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    let last = r.stderr.lines().last().unwrap_or_default();
    assert!(
        last.starts_with("meshload: warm-up : Aborting because of error -1"),
        "{}",
        r.stderr
    );

    let r = meshload_ok(&[
        "-c",
        "1",
        "-qps",
        "10",
        "-t",
        "300ms",
        "-allow-initial-errors",
        &u,
    ]);
    assert!(r.stderr.contains("Code  -1 : "), "{}", r.stderr);
}

#[test]
fn every_request_respects_the_timeout() {
    let app = DemoApp::start("green", &[]);
    let u = url(&app, "/?sleep=5000");
    let started = Instant::now();
    let r = meshload_ok(&["-c", "2", "-qps", "0", "-n", "2", "-timeout", "300ms", &u]);
    assert_line(&r.stderr, "Code  -1 : 2 (100.0 %)");
    // Bounded by the timeout, not by the 5 s the app would take (generous for a loaded host).
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn abort_on_stops_the_run() {
    let app = DemoApp::start("green", &["--fail-every", "3"]);
    let u = url(&app, "/");
    let r = meshload_ok(&["-c", "1", "-qps", "0", "-n", "50", "-abort-on", "503", &u]);
    assert_eq!(all_done_calls(&r.stderr), 3, "{}", r.stderr);
    assert!(r.stderr.contains("Aborted because of -abort-on 503"));
}

#[test]
fn plot_and_json_file_are_written() {
    let app = DemoApp::start("green", &[]);
    let u = url(&app, "/");
    let dir = tempfile::tempdir().expect("tempdir");
    let svg = dir.path().join("lat.svg");
    let json = dir.path().join("res.json");
    let (svg_s, json_s) = (svg.to_string_lossy(), json.to_string_lossy());
    meshload_ok(&[
        "-c", "2", "-qps", "200", "-n", "40", "-plot", &svg_s, "-json", &json_s, "-labels", "e2e",
        &u,
    ]);
    let text = std::fs::read_to_string(Path::new(&*svg_s)).expect("svg written");
    assert!(text.starts_with("<svg") && text.trim_end().ends_with("</svg>"));
    assert!(text.contains("<polyline"));
    let v: Value = serde_json::from_str(&std::fs::read_to_string(&json).expect("json written"))
        .expect("valid JSON");
    assert_eq!(v["Labels"], "e2e");
    assert_eq!(v["RequestedQPS"], "200");
    assert_eq!(v["DurationHistogram"]["Count"], 40);
    assert!(v["ID"].as_str().expect("id").ends_with("_e2e"));
}

/// Bad input: exit 2 and exactly one stderr line `meshload: <what> : <why>`.
fn assert_usage_error(args: &[&str], what: &str) {
    let r = meshload(args);
    assert_eq!(r.code, 2, "meshload {args:?}:\n{}", r.stderr);
    let lines: Vec<&str> = r.stderr.lines().collect();
    assert_eq!(
        lines.len(),
        1,
        "one line expected for {args:?}:\n{}",
        r.stderr
    );
    assert!(
        lines[0].starts_with(&format!("meshload: {what}")) && lines[0].contains(" : "),
        "{args:?}: {}",
        lines[0]
    );
    assert!(r.stdout.is_empty());
}

#[test]
fn bad_input_is_one_line_and_exit_2() {
    assert_usage_error(&["http://"], "url http://");
    assert_usage_error(&["-c", "3", "ht tp://x y/"], "url ");
    assert_usage_error(&["-bogus", "http://127.0.0.1:1/"], "-bogus");
    assert_usage_error(&["-c", "0", "http://127.0.0.1:1/"], "-c 0");
    assert_usage_error(&["-qps", "-5", "http://127.0.0.1:1/"], "-qps -5");
    assert_usage_error(&["-t", "5x", "http://127.0.0.1:1/"], "-t 5x");
    assert_usage_error(
        &[
            "-payload-file",
            "/nonexistent/meshload-payload",
            "http://127.0.0.1:1/",
        ],
        "-payload-file /nonexistent/meshload-payload",
    );
    assert_usage_error(&["-c", "2"], "url");
    assert_usage_error(&["http://127.0.0.1:1/", "extra"], "arguments");
}

#[test]
fn help_lists_fortio_flags() {
    let r = meshload_ok(&["-h"]);
    for flag in [
        "--qps",
        "--keepalive",
        "--payload-file",
        "--abort-on",
        "--plot",
    ] {
        assert!(r.stdout.contains(flag), "{flag} missing from help");
    }
}

#[test]
fn ctrl_c_ends_an_endless_run_with_the_full_report() {
    let app = DemoApp::start("green", &[]);
    let u = url(&app, "/");
    let dir = tempfile::tempdir().expect("tempdir");
    let err_path = dir.path().join("stderr");
    let mut child = Command::new(bin("meshload"))
        .args(["-c", "2", "-qps", "50", "-t", "0", &u])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&err_path).expect("stderr file"))
        .spawn()
        .expect("start meshload");
    // Wait (bounded) until the run has started, then interrupt it like Ctrl-C does.
    mesh_tests::eventually("meshload to start", Duration::from_secs(10), || {
        std::fs::read_to_string(&err_path)
            .ok()
            .filter(|s| s.contains("until interrupted"))
    });
    std::thread::sleep(Duration::from_millis(500));
    let sent = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .expect("kill -INT");
    assert!(sent.success());
    let deadline = Instant::now() + RUN_TIMEOUT;
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait") {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("meshload ignored SIGINT");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let stderr = std::fs::read_to_string(&err_path).unwrap_or_default();
    assert_eq!(status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("Interrupted (Ctrl-C)"), "{stderr}");
    assert!(stderr.contains("# target 99% "), "{stderr}");
    assert!(all_done_calls(&stderr) > 0, "{stderr}");
}

#[test]
fn many_connections_raise_the_open_files_limit() {
    let app = DemoApp::start("green", &[]);
    let u = url(&app, "/");
    // A soft limit of 128 open files cannot hold 200 connections; meshload raises it (the hard
    // limit allows) instead of failing the connections beyond it.
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg(r#"ulimit -Sn 128 && exec "$0" "$@""#)
        .arg(bin("meshload"))
        .args([
            "-c",
            "200",
            "-qps",
            "0",
            "-n",
            "400",
            "-loglevel",
            "Warning",
            &u,
        ]);
    let r = run_bounded(cmd, "meshload -c 200 under ulimit -Sn 128");
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_line(&r.stderr, "Code 200 : 400 (100.0 %)");
    assert_line(
        &r.stderr,
        "Sockets used: 200 (for perfect keepalive, would be 200)",
    );
}

#[test]
fn auto_save_writes_the_result_under_its_run_id() {
    let app = DemoApp::start("green", &[]);
    let u = url(&app, "/");
    let dir = tempfile::tempdir().expect("tempdir");
    let data_dir = dir.path().to_str().expect("utf-8 path");
    let r = meshload_ok(&[
        "-a",
        "-data-dir",
        data_dir,
        "-labels",
        "green run",
        "-c",
        "1",
        "-qps",
        "0",
        "-n",
        "3",
        &u,
    ]);
    let files: Vec<_> = std::fs::read_dir(dir.path())
        .expect("data dir")
        .map(|e| e.expect("entry").file_name().into_string().expect("utf-8"))
        .collect();
    assert_eq!(files.len(), 1, "{files:?}");
    let v: Value = serde_json::from_str(
        &std::fs::read_to_string(dir.path().join(&files[0])).expect("read result"),
    )
    .expect("JSON result");
    let id = v["ID"].as_str().expect("ID");
    assert_eq!(files[0], format!("{id}.json"));
    assert!(id.ends_with("_green_run"), "{id}");
    assert_eq!(v["RetCodes"]["200"], 3);
    assert!(
        r.stderr
            .contains(&format!("Json data to {data_dir}/{id}.json")),
        "{}",
        r.stderr
    );
}
