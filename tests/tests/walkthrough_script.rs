//! `examples/walkthrough.sh` as a newcomer runs it: a busy port is named with the flag that moves
//! it; with free ports it starts the walkthrough, serves through the gateway, leaves nothing under
//! examples/ modified, and Ctrl-C (SIGTERM here) stops everything it started.

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use mesh_tests::{bin, eventually, http_get, run_bounded, Proc};

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/walkthrough.sh")
}

fn bin_dir() -> PathBuf {
    bin("meshd").parent().expect("bin dir").to_path_buf()
}

/// A port nothing listens on now.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind")
        .port()
}

fn git_status() -> Option<String> {
    let mut cmd = Command::new("git");
    cmd.args(["status", "--porcelain", "--", "examples"])
        .current_dir(env!("CARGO_MANIFEST_DIR"));
    let r = run_bounded(cmd, "git status");
    (r.code == 0).then_some(r.stdout)
}

#[test]
fn a_busy_port_is_named_with_the_flag_that_moves_it() {
    let taken = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = taken.local_addr().expect("addr").port();
    let mut cmd = Command::new("bash");
    cmd.arg(script())
        .args(["--admin-port", &port.to_string()])
        .env("MESH_BIN", bin_dir());
    let r = run_bounded(cmd, "walkthrough.sh");
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(
        r.stderr.contains(&format!(
            "port {port} (admin) is in use on 127.0.0.1; pick another with --admin-port or MESH_ADMIN_PORT"
        )),
        "{}",
        r.stderr
    );
}

/// Kills the script's whole process group (its demo apps and meshd too) when dropped.
struct Group(u32);

impl Drop for Group {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.0)])
            .stderr(std::process::Stdio::null())
            .status();
    }
}

#[test]
fn the_walkthrough_starts_on_the_ports_given_serves_and_stops_on_a_signal() {
    let before = git_status();
    let ports: Vec<u16> = (0..6).map(|_| free_port()).collect();
    let dir = tempfile::tempdir().expect("tempdir");
    // setsid: the script leads its own process group, so the test can stop all it started.
    let mut cmd = Command::new("setsid");
    cmd.arg("bash")
        .arg(script())
        .env("MESH_BIN", bin_dir())
        .env("MESH_ADMIN_PORT", ports[0].to_string())
        .env("MESH_GATEWAY_PORT", ports[1].to_string())
        .env("MESH_GREEN_PORT", ports[2].to_string())
        .env("MESH_RED_PORT", ports[3].to_string())
        .env("MESH_RED_APP_PORT", ports[4].to_string())
        .env("MESH_GREEN_APP_PORT", ports[5].to_string());
    let (mut proc, stdout) = Proc::spawn("walkthrough.sh", cmd, dir.path());
    let group = Group(proc.pid());
    let mut lines = BufReader::new(stdout).lines();
    let mut printed = String::new();
    for _ in 0..100 {
        let Some(Ok(line)) = lines.next() else { break };
        printed.push_str(&line);
        printed.push('\n');
        if line.starts_with("Ctrl-C stops everything") {
            break;
        }
    }
    assert!(
        printed.contains(&format!("http://127.0.0.1:{}/paths/red", ports[1])),
        "{printed}\n{}",
        proc.stderr()
    );
    assert!(printed.contains("meshload -c 20"), "{printed}");
    let r = http_get(&format!("http://127.0.0.1:{}/paths/red", ports[1]));
    assert_eq!((r.status, r.body.as_str()), (200, "red\n"));
    let r = http_get(&format!("http://127.0.0.1:{}/ready", ports[0]));
    assert_eq!(r.status, 200);

    // SIGTERM to the script: its EXIT trap stops the apps and meshd.
    let _ = Command::new("kill")
        .args(["-TERM", &proc.pid().to_string()])
        .status();
    assert!(
        proc.wait_exit(Duration::from_secs(10)).is_some(),
        "the script did not exit"
    );
    eventually(
        "meshd and the apps stopped",
        Duration::from_secs(10),
        || {
            (TcpListener::bind(("127.0.0.1", ports[0])).is_ok()
                && TcpListener::bind(("127.0.0.1", ports[1])).is_ok()
                && TcpListener::bind(("127.0.0.1", ports[4])).is_ok())
            .then_some(())
        },
    );
    drop(group);
    assert_eq!(git_status(), before, "examples/ was modified");
}
