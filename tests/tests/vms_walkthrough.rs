//! The App Mesh connection-pools walkthrough across four namespace VMs, started by the one
//! command `examples/vms/walkthrough.sh up` (each VM's meshd as the systemd unit starts it, with
//! MESHD_NODE from its environment file), loaded from VM 4 with meshload: the same numbers as on
//! one machine (README "meshd": gateway `upstream_cx_active: 5`, `cx_open: 1`; green
//! `downstream_cx_active: 20`, `upstream_cx_active: 10`).

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use mesh_tests::vms::vms_sh;
use mesh_tests::{bin, eventually, run_bounded, Proc, Run};

fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../examples/vms/walkthrough.sh")
}

/// The walkthrough, stopped (`down`) when dropped, also when the test fails.
struct Walkthrough {
    id: String,
    addrs: Vec<String>,
    /// The load processes' logs.
    dir: mesh_tests::TempDir,
}

impl Walkthrough {
    fn up() -> Walkthrough {
        let id = format!("w{:x}", std::process::id());
        let bin_dir = bin("meshd").parent().expect("bin dir").to_path_buf();
        let mut cmd = Command::new(script());
        cmd.args(["up", "--id", &id, "--bin"]).arg(&bin_dir);
        let r = run_bounded(cmd, "walkthrough.sh up");
        let w = Walkthrough {
            dir: tempfile::tempdir().expect("tempdir"),
            id,
            addrs: r
                .stdout
                .lines()
                .filter_map(|l| l.strip_prefix("vm "))
                .filter_map(|l| l.split_whitespace().nth(2).map(str::to_owned))
                .collect(),
        };
        assert_eq!(r.code, 0, "walkthrough.sh up: {}", r.stderr);
        assert_eq!(w.addrs.len(), 4, "{}", r.stdout);
        w
    }

    /// `vms.sh run --id ID I program args`.
    fn run(&self, i: usize, program: &str, args: &[&str]) -> Run {
        let mut full = vec!["run", "--id", &self.id];
        let i = i.to_string();
        full.push(&i);
        full.push(program);
        full.extend(args);
        vms_sh(&full)
    }

    /// meshstat's value of `stat` in VM `i` (0 when it cannot read it).
    fn stat(&self, i: usize, stat: &str) -> u64 {
        let meshstat = bin("meshstat");
        let pattern = format!("^{}$", stat.replace('.', "\\."));
        let r = self.run(i, meshstat.to_str().expect("path"), &[&pattern]);
        r.stdout
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{stat}: ")))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0)
    }

    /// meshload in VM 4 for up to 60 s (stopped when the returned process drops).
    fn load(&self, c: &str, qps: &str, url: &str) -> Proc {
        let mut cmd =
            Command::new(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../examples/vms/vms.sh"));
        cmd.args(["run", "--id", &self.id, "4"])
            .arg(bin("meshload"))
            .args(["-c", c, "-qps", qps, "-t", "60s", url]);
        Proc::spawn("meshload", cmd, self.dir.path()).0
    }
}

impl Drop for Walkthrough {
    fn drop(&mut self) {
        let mut cmd = Command::new(script());
        cmd.args(["down", "--id", &self.id]);
        let r = run_bounded(cmd, "walkthrough.sh down");
        if r.code != 0 && !std::thread::panicking() {
            panic!("walkthrough.sh down: {}", r.stderr);
        }
    }
}

#[test]
fn the_walkthrough_on_four_vms_shows_the_same_numbers_as_on_one_machine() {
    let w = Walkthrough::up();
    let gw_cluster = "cluster.cds_ingress_color-mesh_ingress-gw_self_redirect_http_8088";
    let gw = w.load(
        "10",
        "100",
        &format!("http://{}:8088/paths/red?sleep=200", w.addrs[0]),
    );
    eventually(
        "the gateway's pool to fill",
        Duration::from_secs(40),
        || {
            (w.stat(1, &format!("{gw_cluster}.upstream_cx_active")) == 5
                && w.stat(1, &format!("{gw_cluster}.circuit_breakers.default.cx_open")) == 1)
                .then_some(())
        },
    );
    drop(gw);
    let green_cluster = "cluster.cds_ingress_color-mesh_green_http_8080";
    let green = w.load(
        "20",
        "500",
        &format!("http://{}:8080/?sleep=200", w.addrs[2]),
    );
    eventually(
        "green's listener and pool to fill",
        Duration::from_secs(40),
        || {
            (w.stat(3, "http.ingress.downstream_cx_active") == 20
                && w.stat(3, &format!("{green_cluster}.upstream_cx_active")) == 10
                && w.stat(
                    3,
                    &format!("{green_cluster}.circuit_breakers.default.cx_open"),
                ) == 1)
                .then_some(())
        },
    );
    drop(green);

    // Never more than 20 in flight against green's 10 connections + 10 pending: nothing is
    // refused, also when each client's next request arrives over the network just as its
    // response frees a connection for a queued request (it was: a queued request kept its
    // pending slot until its own task ran). The 20 are 19 clients and the gateway's active
    // health check of green (`/ping` every 5 s, one at a time), which takes the same listener,
    // pool and queue: with 20 clients, a check that lands during the run holds the 21st place
    // for one turn of the queue, and the client that finds the queue full meanwhile is refused
    // again at every retry (~40 fast 503s, in about half the runs; seen in CI).
    let meshload = bin("meshload");
    let r = w.run(
        4,
        meshload.to_str().expect("path"),
        &[
            "-c",
            "19",
            "-qps",
            "0",
            "-n",
            "1000",
            &format!("http://{}:8080/?sleep=20", w.addrs[2]),
        ],
    );
    let report = format!("{}{}", r.stdout, r.stderr); // fortio's report goes to stderr
    if !report.contains("Code 200 : 1000 (100.0 %)") {
        let m = bin("meshstat");
        // What green's meshd saw, to tell an overload from anything else.
        let stats = w.run(
            3,
            m.to_str().expect("path"),
            &["green_http_8080|http.ingress"],
        );
        let why = w.run(3, m.to_str().expect("path"), &["why"]);
        panic!("{report}\n{}\n{}", stats.stdout, why.stdout);
    }
}
