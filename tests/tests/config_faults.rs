//! The config path under faults, end to end: a removed, emptied or replaced config directory,
//! SIGHUP, an invalid directory at start, symlinked files, skipped entries and a slow control
//! client (large applies and configs: `config_apply.rs`). Real meshd, real demo app, real
//! clients; every fault is made with the same commands an operator would use.

use std::io::{Read, Write};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use mesh_tests::{
    bin, eventually, green_json, http_get, meshctl, run_bounded, state_dir_of, walkthrough_config,
    DemoApp, Green, Probe, GREEN_CLUSTER,
};
use serde_json::{json, Value};

fn count(log: &str, needle: &str) -> usize {
    log.lines().filter(|l| l.contains(needle)).count()
}

#[test]
fn a_removed_config_directory_keeps_serving_and_its_return_is_applied() {
    let g = Green::start(&[]);
    let probe = Probe::start(g.url(), 1_000_000);
    probe.wait_some(20);

    // `rm -rf /etc/meshd`: the running config keeps serving.
    std::fs::remove_dir_all(&g.config).expect("rm -rf");
    eventually("the fault to be counted", Duration::from_secs(15), || {
        (g.meshd.stat("server.config_dir_fault") == 1).then_some(())
    });
    assert_eq!(g.meshd.stat("server.config_stale"), 1);
    probe.wait_some(50);
    // Activity next to it (the parent is watched) is not logged again and again.
    let parent = g.config.parent().expect("parent").to_path_buf();
    for i in 0..20 {
        std::fs::write(parent.join(format!("noise-{i}")), "x").expect("write");
    }
    probe.wait_some(20);

    // The directory comes back (as a config-management tool writes it: files first, then the
    // directory renamed into place), with one change: green's limit is now 7.
    let staged = parent.join("config.new");
    std::fs::create_dir(&staged).expect("mkdir");
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/walkthrough");
    for e in std::fs::read_dir(src).expect("walkthrough").flatten() {
        std::fs::copy(e.path(), staged.join(e.file_name())).expect("copy");
    }
    std::fs::write(staged.join("vn-green.json"), green_json(7)).expect("write");
    std::fs::rename(&staged, &g.config).expect("rename into place");
    g.wait_max_connections(7, "the returned directory to be applied");
    eventually("the stale gauge to clear", Duration::from_secs(15), || {
        (g.meshd.stat("server.config_stale") == 0).then_some(())
    });
    probe.wait_some(20);

    // `rm config/*.json` (an empty directory) is the same fault; deleting some files is not.
    for e in std::fs::read_dir(&g.config).expect("dir").flatten() {
        std::fs::remove_file(e.path()).expect("rm");
    }
    eventually(
        "the empty directory to be seen",
        Duration::from_secs(15),
        || (g.meshd.stat("server.config_stale") == 1).then_some(()),
    );
    assert_eq!(g.meshd.stat("server.config_dir_fault"), 2);
    probe.wait_some(50);

    let (ok, errors, _) = probe.finish();
    assert!(
        errors.is_empty(),
        "{} of {} requests failed: {errors:?}",
        errors.len(),
        ok
    );
    let log = g.meshd.proc.stderr();
    assert_eq!(count(&log, "the config directory is missing"), 1, "{log}");
    assert_eq!(count(&log, "the config directory is empty"), 1, "{log}");
    assert_eq!(
        count(&log, "the config directory is usable again"),
        1,
        "{log}"
    );
    drop(g.app);
}

#[test]
fn a_replaced_directory_symlink_is_followed() {
    // Deploy tools switch a symlink (`ln -sfn releases/v2 /etc/meshd`).
    let app = DemoApp::start("green", &[]);
    let (tmp, v1) = walkthrough_config();
    let link = tmp.path().join("current");
    std::os::unix::fs::symlink(&v1, &link).expect("symlink");
    let meshd = Green::meshd(&app, &link, &[]);
    let g = Green {
        app,
        meshd,
        config: link.clone(),
        tmp,
    };
    g.wait_max_connections(10, "v1 in force");

    let v2 = g.tmp.path().join("v2");
    std::fs::create_dir(&v2).expect("mkdir");
    for e in std::fs::read_dir(&v1).expect("v1").flatten() {
        std::fs::copy(e.path(), v2.join(e.file_name())).expect("copy");
    }
    std::fs::write(v2.join("vn-green.json"), green_json(3)).expect("write");
    let next = g.tmp.path().join("current.next");
    std::os::unix::fs::symlink(&v2, &next).expect("symlink");
    std::fs::rename(&next, &link).expect("switch the link");
    g.wait_max_connections(3, "the switched link to be applied");

    // Edits in the new target are followed too.
    std::fs::write(v2.join("vn-green.json"), green_json(4)).expect("write");
    g.wait_max_connections(4, "an edit in the new target");
}

#[test]
fn sighup_rereads_the_config_directory() {
    // A debounce of an hour: only SIGHUP can apply the edit within the test.
    let g = Green::start(&["--debounce", "1h"]);
    std::fs::write(g.config.join("vn-green.json"), green_json(6)).expect("write");
    let sent = Command::new("kill")
        .args(["-HUP", &g.meshd.proc.pid().to_string()])
        .status()
        .expect("kill");
    assert!(sent.success());
    g.wait_max_connections(6, "SIGHUP to apply the edit");
    assert_eq!(http_get(&g.url()).status, 200);
    assert!(g.meshd.proc.stderr().contains("SIGHUP"));
}

#[test]
fn an_invalid_directory_at_start_serves_the_last_good_snapshot_unless_strict() {
    let app = DemoApp::start("green", &[]);
    let (_tmp, config) = walkthrough_config();
    let mut m = Green::meshd(&app, &config, &[]);
    m.proc.kill();

    // A broken edit while meshd was down.
    std::fs::write(config.join("vn-green.json"), "{ \"meshName\": ").expect("write");
    let m = Green::meshd(&app, &config, &[]);
    let url = format!("http://{}/", m.listener("green-ingress"));
    assert_eq!(http_get(&url).status, 200);
    assert_eq!(m.stat("server.config_stale"), 1);
    let log = m.proc.stderr();
    assert!(log.contains("serving the last good config"), "{log}");
    assert!(
        log.contains("vn-green.json"),
        "the error names the file: {log}"
    );

    // --strict-config (for CI) refuses to start on it.
    let mut cmd = Command::new(bin("meshd"));
    cmd.arg("--config-dir")
        .arg(&config)
        .arg("--state-dir")
        .arg(state_dir_of(&config))
        .args(["--strict-config", "--admin", "127.0.0.1:0", "--socket"])
        .arg(config.with_file_name("strict.sock"))
        .args(["--node", "green", "--listen", "green=127.0.0.1:0"]);
    let r = run_bounded(cmd, "meshd --strict-config");
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.stderr.contains("vn-green.json"), "{r:?}");

    // Fixing the file puts the directory back in force.
    std::fs::write(config.join("vn-green.json"), green_json(5)).expect("write");
    eventually(
        "the fixed directory to apply",
        Duration::from_secs(15),
        || (m.stat("server.config_stale") == 0).then_some(()),
    );
    let clusters = http_get(&m.url("/clusters")).body;
    assert!(clusters.contains(&format!(
        "{GREEN_CLUSTER}::default_priority::max_connections::5\n"
    )));
    drop(app);
}

#[test]
fn a_symlinked_file_stays_a_symlink_and_edits_of_its_target_apply() {
    let app = DemoApp::start("green", &[]);
    let (tmp, config) = walkthrough_config();
    // The user keeps green's file elsewhere (a git checkout) and links it in.
    let store = tmp.path().join("store");
    std::fs::create_dir(&store).expect("mkdir");
    let target = store.join("vn-green.json");
    std::fs::write(&target, green_json(10)).expect("write");
    let link = config.join("vn-green.json");
    std::fs::remove_file(&link).expect("rm");
    std::os::unix::fs::symlink(&target, &link).expect("symlink");

    let meshd = Green::meshd(&app, &config, &[]);
    let g = Green {
        app,
        meshd,
        config: config.clone(),
        tmp,
    };
    g.wait_max_connections(10, "the linked file in force");
    let is_link = |p: &Path| {
        std::fs::symlink_metadata(p)
            .expect("lstat")
            .file_type()
            .is_symlink()
    };
    assert!(is_link(&link), "meshd replaced the link at start");

    // Editing the target applies.
    std::fs::write(&target, green_json(7)).expect("write");
    g.wait_max_connections(7, "an edit of the link's target");
    assert!(is_link(&link));

    // An apply through meshctl writes through the link.
    let desc = meshctl(&g.meshd.socket, &["describe", "vn", "green"]);
    assert_eq!(desc.code, 0, "{desc:?}");
    let mut v: Value = serde_json::from_str(&desc.stdout).expect("json");
    v["virtualNode"]["spec"]["listeners"][0]["connectionPool"]["http"]["maxConnections"] = json!(6);
    let file = g.tmp.path().join("green-6.json");
    std::fs::write(&file, v.to_string()).expect("write");
    let r = meshctl(
        &g.meshd.socket,
        &["apply", "-f", file.to_str().expect("utf-8")],
    );
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(g.max_connections(), Some(6));
    assert!(is_link(&link), "the apply replaced the link");
    let on_target: Value =
        serde_json::from_str(&std::fs::read_to_string(&target).expect("read")).expect("json");
    assert_eq!(
        on_target["spec"]["listeners"][0]["connectionPool"]["http"]["maxConnections"], 6,
        "{on_target}"
    );
}

#[test]
fn odd_directory_entries_are_logged_and_counted_not_skipped_in_silence() {
    let app = DemoApp::start("green", &[]);
    let (_tmp, config) = walkthrough_config();
    std::os::unix::fs::symlink(config.join("nowhere.json"), config.join("dangling.json"))
        .expect("dangling link");
    std::os::unix::fs::symlink(config.join("loop-b.json"), config.join("loop-a.json"))
        .expect("loop a");
    std::os::unix::fs::symlink(config.join("loop-a.json"), config.join("loop-b.json"))
        .expect("loop b");
    {
        use std::os::unix::ffi::OsStrExt;
        let name = std::ffi::OsStr::from_bytes(b"caf\xe9.json");
        std::fs::write(config.join(name), "{}").expect("non-UTF-8 name");
    }
    let m = Green::meshd(&app, &config, &[]);
    assert_eq!(m.stat("server.config_files_skipped"), 4);
    let log = m.proc.stderr();
    for what in ["dangling symlink", "symlink loop", "not valid UTF-8"] {
        assert!(log.contains(what), "{what}: {log}");
    }
    // The rest of the directory is served.
    assert_eq!(
        http_get(&format!("http://{}/", m.listener("green-ingress"))).status,
        200
    );
}

#[test]
fn a_control_client_that_sends_no_request_head_is_disconnected() {
    let g = Green::start(&["--control-timeout", "1s"]);
    let mut s = std::os::unix::net::UnixStream::connect(&g.meshd.socket).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(15)))
        .expect("timeout");
    s.write_all(b"GET /v1/ping HTTP/1.1\r\nHost: meshd\r\n")
        .expect("write");
    let t = Instant::now();
    let mut buf = Vec::new();
    // meshd closes the connection (EOF, possibly after a 408) instead of holding it.
    let _ = s.read_to_end(&mut buf);
    assert!(
        t.elapsed() < Duration::from_secs(15),
        "still connected after {:?}",
        t.elapsed()
    );
    // A well-behaved client still gets its answer.
    let r = meshctl(&g.meshd.socket, &["get", "mesh"]);
    assert_eq!(r.code, 0, "{r:?}");
}
