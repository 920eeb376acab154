//! meshd with its own /etc/hosts: the only way to give one meshd cluster several hosts is a
//! node's DNS name resolving to several addresses. The machine's /etc/hosts is never touched:
//! meshd runs in a private mount namespace (`unshare`) where a hosts file written by the test is
//! bind-mounted over /etc/hosts, for meshd alone.

use std::io::BufReader;
use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::{bin, eventually, http_get, run_bounded, state_dir_of, Meshd, Proc, READY_TIMEOUT};

/// The `unshare` flags that give a process a private mount namespace here: `--mount` as root
/// (CI), else a user namespace mapping the caller to root. Fails the test, saying why, when
/// neither works: there is no other way to give one meshd cluster several hosts.
pub fn private_mount_flags(hosts: &Path) -> Vec<&'static str> {
    let candidates: [&[&'static str]; 2] =
        [&["--mount"], &["--user", "--map-root-user", "--mount"]];
    let mut tried = Vec::new();
    for flags in candidates {
        let mut cmd = Command::new("unshare");
        cmd.args(flags)
            .args([
                "sh",
                "-c",
                "mount --bind \"$0\" /etc/hosts && grep -q -F -f \"$0\" /etc/hosts",
            ])
            .arg(hosts);
        let r = run_bounded(cmd, "unshare probe");
        if r.code == 0 {
            return flags.to_vec();
        }
        tried.push(format!(
            "unshare {}: exit {} {}",
            flags.join(" "),
            r.code,
            r.stderr.trim()
        ));
    }
    panic!(
        "this test needs a private mount namespace (unshare(1) with --mount as root, or user \
         namespaces) to give meshd its own /etc/hosts; tried:\n{}",
        tried.join("\n")
    );
}

/// Starts meshd as [`Meshd::start`] does, but in a private mount namespace whose /etc/hosts is
/// `hosts` (the machine's /etc/hosts is never changed). `exec` keeps meshd's PID the one
/// [`Proc`] kills.
pub fn start_meshd_with_hosts(config: &Path, hosts: &Path, extra: &[&str]) -> Meshd {
    let flags = private_mount_flags(hosts);
    let dir = tempfile::tempdir().expect("tempdir");
    let addr_file = dir.path().join("admin.addr");
    let socket = dir.path().join("meshd.sock");
    let mut cmd = Command::new("unshare");
    cmd.args(&flags)
        .args(["sh", "-c", "mount --bind \"$0\" /etc/hosts && exec \"$@\""])
        .arg(hosts)
        .arg(bin("meshd"))
        .arg("--config-dir")
        .arg(config)
        .args(["--admin", "127.0.0.1:0", "--admin-address-path"])
        .arg(&addr_file)
        .arg("--socket")
        .arg(&socket)
        .arg("--state-dir")
        .arg(state_dir_of(config))
        .args(extra)
        .env("MESHD_LOG", "info,meshd=debug");
    let (mut proc, stdout) = Proc::spawn("meshd", cmd, dir.path());
    std::thread::spawn(move || {
        let _ = std::io::copy(&mut BufReader::new(stdout), &mut std::io::sink());
    });
    let admin: SocketAddr = eventually("meshd to write its admin address", READY_TIMEOUT, || {
        if let Some(code) = proc.wait_exit(Duration::from_millis(1)) {
            panic!(
                "meshd exited with {code} before it was ready:\n{}",
                proc.stderr()
            );
        }
        std::fs::read_to_string(&addr_file)
            .ok()
            .and_then(|s| s.trim().parse().ok())
    });
    let m = Meshd {
        proc,
        admin,
        config_dir: config.to_owned(),
        socket,
        dir,
    };
    assert_eq!(http_get(&m.url("/ready")).status, 200);
    m
}
