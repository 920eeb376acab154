//! meshd as an operator runs it: `--version`, `--check-config`, `--log-level`, bad flag and
//! variable values, errors through the log once it is up, and the second stop signal.
//! (The drain itself, a slow request finishing 200 under SIGTERM while new connections are
//! refused, is `requestpath::sigterm_drains_in_flight_requests_refuses_new_connections_and_exits_0`.)

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::Duration;

use mesh_tests::{
    bin, eventually, run_bounded, signal, walkthrough_config, Gate, OneNode, RawConn, RawUpstream,
    Run,
};
use serde_json::json;

fn meshd(args: &[&str], env: &[(&str, &str)]) -> Run {
    let mut cmd = Command::new(bin("meshd"));
    cmd.args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    run_bounded(cmd, "meshd")
}

#[test]
fn version_prints_the_version() {
    let r = meshd(&["--version"], &[]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(
        r.stdout.trim(),
        format!("meshd {}", env!("CARGO_PKG_VERSION")),
        "{r:?}"
    );
}

#[test]
fn the_drain_timeout_defaults_to_envoys_10s() {
    let r = meshd(&["--help"], &[]);
    assert_eq!(r.code, 0, "{r:?}");
    let help = r.stdout.replace('\n', " ");
    let at = help
        .find("--drain-timeout")
        .expect("--drain-timeout in --help");
    assert!(
        help[at..].contains("[default: 10s]"),
        "{}",
        &help[at..at + 600.min(help.len() - at)]
    );
}

#[test]
fn an_unknown_value_in_a_meshd_variable_exits_2_naming_it() {
    let r = meshd(&[], &[("MESHD_ACCESS_LOG_ENCODING", "XML")]);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(
        r.stderr.contains("XML") && r.stderr.contains("--access-log-encoding"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.contains(
            "meshd: MESHD_ACCESS_LOG_ENCODING : the refused value comes from this variable"
        ),
        "{}",
        r.stderr
    );
    let r = meshd(&["--log-level", "verbose"], &[]);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(
        r.stderr.starts_with("meshd: --log-level \"verbose\" : "),
        "{}",
        r.stderr
    );
}

#[test]
fn check_config_prints_what_this_machine_serves_and_exits_0_or_2() {
    let (_dir, config) = walkthrough_config();
    let dir = config.display().to_string();
    let r = meshd(
        &["--check-config", "--config-dir", &dir, "--node", "green"],
        &[],
    );
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout.contains(": valid, "), "{}", r.stdout);
    assert!(
        r.stdout
            .lines()
            .any(|l| l.starts_with("serve  green (named by --node")),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout.lines().any(|l| l.starts_with("remote red (")),
        "{}",
        r.stdout
    );

    // A --node the config does not have.
    let r = meshd(
        &["--check-config", "--config-dir", &dir, "--node", "blue"],
        &[],
    );
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.stderr.contains("--node blue"), "{}", r.stderr);

    // An invalid file: named, exit 2.
    std::fs::write(
        config.join("vn-broken.json"),
        r#"{"meshName": "color-mesh""#,
    )
    .expect("write");
    let r = meshd(&["--check-config", "--config-dir", &dir], &[]);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.stderr.contains("vn-broken.json"), "{}", r.stderr);

    // A missing directory.
    let missing = config.join("not-here").display().to_string();
    let r = meshd(&["--check-config", "--config-dir", &missing], &[]);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.stderr.contains(&missing), "{}", r.stderr);
}

#[test]
fn log_level_beats_meshd_log_and_startup_errors_go_through_the_log() {
    // The admin port is taken: meshd exits 1, and says so through its log (a level and
    // fields), not a bare stderr line.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let admin = taken.local_addr().expect("addr").to_string();
    let node = OneNode::write(json!({}));
    let dir = tempfile::tempdir().expect("tempdir");
    let config = node.config.display().to_string();
    let state = dir.path().join("state").display().to_string();
    let socket = dir.path().join("meshd.sock").display().to_string();
    let args = [
        "--config-dir",
        &config,
        "--state-dir",
        &state,
        "--socket",
        &socket,
        "--admin",
        &admin,
        "--listen",
        "app=127.0.0.1:0",
    ];
    let r = meshd(&args, &[("MESHD_LOG", "info")]);
    assert_eq!(r.code, 1, "{r:?}");
    let line = r
        .stderr
        .lines()
        .find(|l| l.contains("cannot listen on admin address"))
        .unwrap_or_else(|| panic!("{}", r.stderr));
    assert!(
        line.contains("ERROR") && line.contains(&format!("admin={admin}")),
        "{line}"
    );
    assert!(r.stderr.contains("INFO"), "{}", r.stderr);

    // --log-level error: only errors, whatever MESHD_LOG says.
    let mut quiet = args.to_vec();
    quiet.extend(["--log-level", "error"]);
    let r = meshd(&quiet, &[("MESHD_LOG", "debug")]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(!r.stderr.contains("INFO"), "{}", r.stderr);
    assert!(
        r.stderr.contains("ERROR") && r.stderr.contains("cannot listen on admin address"),
        "{}",
        r.stderr
    );
}

#[test]
fn a_second_sigterm_during_a_held_request_exits_at_once_and_logs_the_cut() {
    let gate = Gate::default();
    let g = gate.clone();
    let up = RawUpstream::start(move |c: &mut RawConn| {
        while c.next_request().is_some() {
            if !g.wait() || !c.write(b"HTTP/1.1 200 OK\r\ncontent-length: 3\r\n\r\nok\n") {
                return false;
            }
        }
        false
    });
    let node = OneNode::write(json!({}));
    // A drain deadline far beyond the test: only the second signal can end it.
    let mut m = node.start(up.addr, &["--drain-timeout", "1h"]);
    let lis = m.listener("app-ingress");
    let client = std::thread::spawn(move || {
        let mut s = TcpStream::connect(lis).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(30)))
            .expect("timeout");
        s.write_all(b"GET /held HTTP/1.1\r\nhost: app\r\n\r\n")
            .expect("send");
        let mut out = String::new();
        let _ = s.read_to_string(&mut out);
        out
    });
    eventually("the held request", Duration::from_secs(10), || {
        (m.stat("http.ingress.downstream_rq_active") == 1).then_some(())
    });
    signal(m.proc.pid(), "TERM");
    eventually("the drain", Duration::from_secs(10), || {
        m.proc.stderr().contains("drain started").then_some(())
    });
    // Still draining: the request is held and meshd runs.
    assert_eq!(m.proc.wait_exit(Duration::from_millis(200)), None);
    signal(m.proc.pid(), "TERM");
    assert_eq!(m.proc.wait_exit(Duration::from_secs(10)), Some(0));
    let got = client.join().expect("client");
    assert!(!got.contains("200 OK"), "the held request was cut: {got}");
    gate.open();
    let err = m.proc.stderr();
    assert!(
        err.contains("drain finished: 1 of 1 request(s) cut by a second signal"),
        "{err}"
    );
    let log = node.access_log_lines(1);
    assert!(log.contains("\"GET /held HTTP/1.1\" 0 LR "), "{log}");
}

#[test]
fn a_missing_config_directory_at_start_without_a_last_good_config_exits_1_naming_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let missing = dir.path().join("etc-meshd").display().to_string();
    let state = dir.path().join("state").display().to_string();
    let socket = dir.path().join("meshd.sock").display().to_string();
    let r = meshd(
        &[
            "--config-dir",
            &missing,
            "--state-dir",
            &state,
            "--socket",
            &socket,
            "--admin",
            "127.0.0.1:0",
        ],
        &[],
    );
    assert_eq!(r.code, 1, "{r:?}");
    let line = r
        .stderr
        .lines()
        .find(|l| l.contains(&format!("config directory {missing} : ")))
        .unwrap_or_else(|| panic!("{}", r.stderr));
    assert!(line.contains("ERROR"), "{line}");
    assert!(
        !std::path::Path::new(&missing).exists(),
        "meshd does not create it"
    );
}

/// The threads of process `pid` named `name` (/proc/PID/task/*/comm).
fn threads_named(pid: u32, name: &str) -> usize {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).expect("/proc/PID/task");
    tasks
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
        .filter(|comm| comm.trim_end() == name)
        .count()
}

#[test]
fn concurrency_sets_the_worker_threads_and_refuses_0_or_a_non_number() {
    let r = meshd(&["--concurrency", "0"], &[]);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.stderr.contains("--concurrency"), "{}", r.stderr);
    let r = meshd(&[], &[("MESHD_CONCURRENCY", "x")]);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(
        r.stderr.contains("--concurrency")
            && r.stderr
                .contains("meshd: MESHD_CONCURRENCY : the refused value comes from this variable"),
        "{}",
        r.stderr
    );
    assert!(meshd(&["--help"], &[]).stdout.contains("--concurrency <N>"));

    let up = RawUpstream::start(|c: &mut RawConn| {
        while c.next_request().is_some() {
            if !c.write(b"HTTP/1.1 200 OK\r\ncontent-length: 3\r\n\r\nok\n") {
                return false;
            }
        }
        false
    });
    let node = OneNode::write(json!({}));
    // 1 (the smallest) and 3 (more than this 2-core machine's default).
    for n in [1, 3] {
        let m = node.start(up.addr, &["--concurrency", &n.to_string()]);
        let lis = m.listener("app-ingress");
        let reply = mesh_tests::http_get(&format!("http://{lis}/"));
        assert_eq!(reply.status, 200, "{reply:?}");
        assert_eq!(threads_named(m.proc.pid(), "meshd-worker"), n);
    }
}
