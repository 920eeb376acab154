//! Which nodes a meshd serves (issue 12 item 1): one config directory with node `here`, whose
//! hostname resolves to 127.0.0.1, and node `there`, resolving to 192.0.2.10 (TEST-NET-1, never
//! an address of this machine). meshd gets its own /etc/hosts in a private mount namespace
//! (`start_meshd_with_hosts`), so the host's files are never touched.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::Command;

use mesh_tests::{
    bin, http_get, meshctl, private_mount_flags, run_bounded, start_meshd_with_hosts, Meshd,
    TempDir,
};
use serde_json::Value;

/// A config directory with `here` and `there`, and the hosts file that places them.
struct Fleet {
    _dir: TempDir,
    config: PathBuf,
    hosts: PathBuf,
    /// `here`'s listener port (free when the test started).
    here_port: u16,
    /// `there`'s listener port.
    there_port: u16,
}

fn free_port() -> u16 {
    // Bound and released: the port is free now; meshd binds it a moment later.
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

fn node(name: &str, host: &str, port: u16) -> String {
    format!(
        r#"{{"meshName": "m", "virtualNodeName": "{name}", "spec": {{
            "listeners": [{{"portMapping": {{"port": {port}, "protocol": "http"}}}}],
            "serviceDiscovery": {{"dns": {{"hostname": "{host}"}}}}}}}}"#
    )
}

impl Fleet {
    fn new() -> Fleet {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = dir.path().join("config");
        std::fs::create_dir_all(&config).expect("mkdir");
        let (here_port, there_port) = (free_port(), free_port());
        std::fs::write(config.join("mesh.json"), r#"{"meshName": "m", "spec": {}}"#).expect("mesh");
        std::fs::write(
            config.join("vn-here.json"),
            node("here", "here.sel.test", here_port),
        )
        .expect("here");
        std::fs::write(
            config.join("vn-there.json"),
            node("there", "there.sel.test", there_port),
        )
        .expect("there");
        let hosts = dir.path().join("hosts");
        std::fs::write(
            &hosts,
            "127.0.0.1 localhost\n127.0.0.1 here.sel.test\n192.0.2.10 there.sel.test\n\
             192.0.2.11 far.sel.test\n",
        )
        .expect("hosts");
        Fleet {
            _dir: dir,
            config,
            hosts,
            here_port,
            there_port,
        }
    }

    /// meshd on this fleet's config with its /etc/hosts (`start_meshd_with_hosts`), with
    /// `MESHD_NODE` set to `env_nodes` when given, as the systemd unit's EnvironmentFile sets it.
    fn start(&self, env_nodes: Option<&str>, extra: &[&str]) -> Meshd {
        let Some(env_nodes) = env_nodes else {
            return start_meshd_with_hosts(&self.config, &self.hosts, extra);
        };
        let flags = private_mount_flags(&self.hosts);
        let mut cmd = Command::new("unshare");
        cmd.args(&flags)
            .args(["sh", "-c", "mount --bind \"$0\" /etc/hosts && exec \"$@\""])
            .arg(&self.hosts)
            .arg(bin("meshd"));
        cmd.env("MESHD_NODE", env_nodes);
        Meshd::start_as(cmd, &self.config, extra)
    }
}

/// `/listeners` as `name::address` lines.
fn listeners(m: &Meshd) -> String {
    http_get(&m.url("/listeners")).body
}

fn ok(m: &Meshd, args: &[&str]) -> String {
    let r = meshctl(&m.socket, args);
    assert_eq!(r.code, 0, "meshctl {args:?}: {r:?}");
    r.stdout
}

#[test]
fn without_node_meshd_serves_the_nodes_whose_hostname_is_local_and_says_why() {
    let f = Fleet::new();
    let m = f.start(None, &[]);
    // `here` is bound at its hostname's address; `there` (192.0.2.10) is not bound at all.
    let l = listeners(&m);
    assert!(
        l.contains(&format!("here-ingress::127.0.0.1:{}", f.here_port)),
        "{l}"
    );
    assert!(
        !l.lines().any(|x| x.starts_with("there-")),
        "a remote node was bound:\n{l}"
    );
    let ready = http_get(&m.url("/ready"));
    assert_eq!(ready.status, 200);
    assert_eq!(ready.body, "LIVE\nserving: here\nremote: there\n");
    // One log line names what was chosen and why.
    let log = m.proc.stderr();
    assert!(
        log.contains("serving here (here.sel.test → 127.0.0.1 is local)")
            || log.contains("serving nodes here (here.sel.test → 127.0.0.1 is local)"),
        "{log}"
    );
    assert!(
        log.contains("remote: there (there.sel.test → 192.0.2.10)"),
        "{log}"
    );

    // meshctl get: a SERVED column, and `served` in -o json (which still applies back).
    let table = ok(&m, &["get", "vn"]);
    let row = |name: &str| {
        table
            .lines()
            .find(|l| l.starts_with(&format!("virtualnode/{name} ")))
            .unwrap_or_else(|| panic!("no {name} in:\n{table}"))
            .split_whitespace()
            .last()
            .map(str::to_owned)
    };
    assert!(
        table.lines().next().is_some_and(|h| h.ends_with("SERVED")),
        "{table}"
    );
    assert_eq!(row("here").as_deref(), Some("here"), "{table}");
    assert_eq!(row("there").as_deref(), Some("elsewhere"), "{table}");
    let json: Value = serde_json::from_str(&ok(&m, &["get", "vn", "-o", "json"])).expect("json");
    let served: Vec<(String, String)> = json
        .as_array()
        .expect("array")
        .iter()
        .map(|v| {
            (
                v["virtualNode"]["virtualNodeName"]
                    .as_str()
                    .unwrap_or("?")
                    .to_owned(),
                v["served"].as_str().unwrap_or("?").to_owned(),
            )
        })
        .collect();
    assert_eq!(
        served,
        [
            ("here".into(), "here".into()),
            ("there".into(), "elsewhere".into())
        ]
    );
    let listed = m.dir.path().join("listed.json");
    std::fs::write(&listed, json.to_string()).expect("write");
    let back = ok(&m, &["apply", "-f", listed.to_str().expect("utf-8")]);
    assert!(back.contains("virtualnode/here unchanged"), "{back}");
}

#[test]
fn applying_a_remote_node_binds_nothing_and_says_where_it_takes_effect() {
    let f = Fleet::new();
    let m = f.start(None, &[]);
    let before = listeners(&m);
    let doc = m.dir.path().join("far.json");
    std::fs::write(&doc, node("far", "far.sel.test", free_port())).expect("write");
    let out = ok(&m, &["apply", "-f", doc.to_str().expect("utf-8")]);
    assert_eq!(
        out.trim(),
        "virtualnode/far created (served elsewhere: far.sel.test)"
    );
    assert_eq!(
        listeners(&m),
        before,
        "applying a remote node bound something"
    );
    // A change to a remote node: configured, served elsewhere.
    std::fs::write(&doc, node("there", "there.sel.test", f.there_port + 1)).expect("write");
    let out = ok(&m, &["apply", "-f", doc.to_str().expect("utf-8")]);
    assert_eq!(
        out.trim(),
        "virtualnode/there configured (served elsewhere: there.sel.test)"
    );
    // A local one keeps today's message.
    std::fs::write(&doc, node("here", "here.sel.test", f.here_port)).expect("write");
    let out = ok(&m, &["apply", "-f", doc.to_str().expect("utf-8")]);
    assert_eq!(out.trim(), "virtualnode/here unchanged");
    assert_eq!(listeners(&m), before);
    let described = meshctl(&m.socket, &["describe", "vn", "far"]);
    assert_eq!(described.code, 0, "{described:?}");
    assert!(
        described.stderr.contains(
            "virtualnode/far is served elsewhere, not by this meshd (far.sel.test → 192.0.2.11)"
        ),
        "{described:?}"
    );
    // stdout stays the describe JSON; -o json adds `served`, and both apply back.
    let plain: Value = serde_json::from_str(&described.stdout).expect("json");
    assert!(plain.get("served").is_none(), "{plain}");
    let json: Value =
        serde_json::from_str(&ok(&m, &["describe", "vn", "far", "-o", "json"])).expect("json");
    assert_eq!(json["served"], "elsewhere", "{json}");
}

#[test]
fn a_node_named_in_meshd_node_is_served_even_when_its_address_is_not_local() {
    let f = Fleet::new();
    // As the systemd unit's EnvironmentFile sets it.
    let m = f.start(Some("there"), &[]);
    let l = listeners(&m);
    // Its hostname's address is another machine's: it binds the unspecified address instead.
    assert!(
        l.contains(&format!("there-ingress::0.0.0.0:{}", f.there_port)),
        "{l}"
    );
    assert!(
        !l.lines().any(|x| x.starts_with("here-")),
        "an unnamed node was bound:\n{l}"
    );
    assert_eq!(
        http_get(&m.url("/ready")).body,
        "LIVE\nserving: there\nremote: here\n"
    );
    let log = m.proc.stderr();
    assert!(log.contains("named by --node"), "{log}");
}

#[test]
fn a_node_flag_naming_no_node_of_the_config_exits_2_and_lists_the_nodes() {
    let f = Fleet::new();
    let state = tempfile::tempdir().expect("tempdir");
    let mut cmd = Command::new(bin("meshd"));
    cmd.arg("--config-dir")
        .arg(&f.config)
        .arg("--state-dir")
        .arg(state.path())
        .args([
            "--admin",
            "127.0.0.1:0",
            "--node",
            "here",
            "--node",
            "nosuch",
        ])
        .arg("--socket")
        .arg(state.path().join("meshd.sock"));
    let r = run_bounded(cmd, "meshd --node nosuch");
    assert_eq!(r.code, 2, "{r:?}");
    let line = r
        .stderr
        .lines()
        .find(|l| l.contains("nosuch"))
        .unwrap_or_else(|| panic!("no line names nosuch:\n{}", r.stderr));
    assert!(line.contains("here") && line.contains("there"), "{line}");
}

#[test]
fn a_reload_that_removes_a_named_node_keeps_serving_the_others() {
    let f = Fleet::new();
    let m = f.start(Some("here,there"), &[]);
    let l = listeners(&m);
    assert!(
        l.contains("here-ingress") && l.contains("there-ingress"),
        "{l}"
    );
    std::fs::remove_file(f.config.join("vn-there.json")).expect("rm");
    mesh_tests::eventually("there's listener to go", mesh_tests::READY_TIMEOUT, || {
        (!listeners(&m).contains("there-ingress")).then_some(())
    });
    assert!(listeners(&m).contains("here-ingress"));
    let ready = http_get(&m.url("/ready")).body;
    assert!(ready.starts_with("LIVE\nserving: here\n"), "{ready}");
    let log = m.proc.stderr();
    assert!(
        log.lines()
            .any(|l| l.contains("--node") && l.contains("there") && l.contains("no such")),
        "the named node missing from the config is not logged:\n{log}"
    );
}

#[test]
fn a_config_with_no_local_node_serves_none_says_so_and_serves_a_local_node_added_later() {
    let f = Fleet::new();
    let here = std::fs::read_to_string(f.config.join("vn-here.json")).expect("read");
    std::fs::remove_file(f.config.join("vn-here.json")).expect("rm");
    let m = f.start(None, &[]);
    assert!(
        !listeners(&m).lines().any(|l| l.contains("-ingress::")),
        "{}",
        listeners(&m)
    );
    let log = m.proc.stderr();
    assert!(log.contains("serving no node"), "{log}");
    assert!(
        http_get(&m.url("/ready"))
            .body
            .starts_with("LIVE\nserving: \n")
            || http_get(&m.url("/ready"))
                .body
                .starts_with("LIVE\nserving: -\n"),
        "{}",
        http_get(&m.url("/ready")).body
    );
    // The directory is still watched: a node whose hostname is local, added later, is served.
    std::fs::write(f.config.join("vn-here.json"), here).expect("write");
    let want = format!("here-ingress::127.0.0.1:{}", f.here_port);
    mesh_tests::eventually("here to be bound", mesh_tests::READY_TIMEOUT, || {
        listeners(&m).contains(&want).then_some(())
    });
    assert!(
        http_get(&m.url("/ready"))
            .body
            .starts_with("LIVE\nserving: here\n"),
        "{}",
        http_get(&m.url("/ready")).body
    );
}
