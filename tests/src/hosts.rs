//! meshd with its own /etc/hosts: the only way to give one meshd cluster several hosts is a
//! node's DNS name resolving to several addresses. The machine's /etc/hosts is never touched:
//! meshd runs in a private mount namespace (`unshare`) where a hosts file written by the test is
//! bind-mounted over /etc/hosts, for meshd alone.

use std::path::Path;
use std::process::Command;

use crate::{bin, run_bounded, Meshd};

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
/// `Proc` kills.
pub fn start_meshd_with_hosts(config: &Path, hosts: &Path, extra: &[&str]) -> Meshd {
    let flags = private_mount_flags(hosts);
    let mut cmd = Command::new("unshare");
    cmd.args(&flags)
        .args(["sh", "-c", "mount --bind \"$0\" /etc/hosts && exec \"$@\""])
        .arg(hosts)
        .arg(bin("meshd"));
    Meshd::start_as(cmd, config, extra)
}
