//! End-to-end tests of meshctl and meshd's control socket: real meshd, real meshctl processes.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use mesh_tests::{bin, run_bounded, walkthrough_config, Meshd, Proc, Run};
use serde_json::{json, Value};

/// meshd serving only `green` of the walkthrough, on loopback.
const GREEN: &[&str] = &["--node", "green", "--listen", "green=127.0.0.1:0"];

/// Runs `meshctl --socket SOCKET ARGS`, optionally through a privilege-dropping `prefix`, bounded
/// by the harness's run timeout.
fn meshctl_as(prefix: &[&str], socket: &Path, args: &[&str]) -> Run {
    let mut cmd = match prefix.split_first() {
        Some((first, rest)) => {
            let mut c = Command::new(first);
            c.args(rest).arg(bin("meshctl"));
            c
        }
        None => Command::new(bin("meshctl")),
    };
    cmd.arg("--socket")
        .arg(socket)
        .args(args)
        .env_remove("MESHD_SOCKET");
    run_bounded(cmd, &format!("meshctl {args:?}"))
}

fn meshctl(socket: &Path, args: &[&str]) -> Run {
    meshctl_as(&[], socket, args)
}

/// Runs meshctl and asserts exit 0.
fn ok(socket: &Path, args: &[&str]) -> String {
    let r = meshctl(socket, args);
    assert_eq!(r.code, 0, "meshctl {args:?} failed: {r:?}");
    r.stdout
}

fn describe(socket: &Path, kind: &str, name: &str) -> Value {
    serde_json::from_str(&ok(socket, &["describe", kind, name])).expect("describe prints JSON")
}

/// `metadata.version` of a describe wrapper or of a flat (CLI-input shaped) resource.
fn version(v: &Value) -> i64 {
    let inner = if v.get("metadata").is_some() {
        v
    } else {
        v.as_object()
            .and_then(|o| o.values().next())
            .expect("wrapper")
    };
    inner["metadata"]["version"].as_i64().expect("version")
}

fn write_json(path: &Path, v: &Value) {
    std::fs::write(path, serde_json::to_string_pretty(v).expect("json")).expect("write");
}

/// A virtual node of the walkthrough mesh with `max` connections.
fn node(name: &str, port: u16, max: i64) -> Value {
    json!({"meshName": "color-mesh", "virtualNodeName": name, "spec": {
        "listeners": [{"portMapping": {"port": port, "protocol": "http"},
                       "connectionPool": {"http": {"maxConnections": max}}}],
        "serviceDiscovery": {"dns": {"hostname": format!("{name}.color-mesh.local")}}}})
}

/// File name → content of every file of a directory.
fn snapshot(dir: &Path) -> Vec<(PathBuf, String)> {
    let mut files: Vec<(PathBuf, String)> = std::fs::read_dir(dir)
        .expect("read dir")
        .flatten()
        .map(|e| {
            let p = e.path();
            let text = std::fs::read_to_string(&p).unwrap_or_default();
            (p, text)
        })
        .collect();
    files.sort();
    files
}

#[test]
fn describe_apply_round_trips_and_versions_grow() {
    let (tmp, config) = walkthrough_config();
    let hand_written = snapshot(&config);
    let m = Meshd::start(&config, GREEN);
    // Hand-written files are never rewritten by meshd on its own: their metadata is derived.
    assert_eq!(snapshot(&config), hand_written);

    let before = describe(&m.socket, "virtualnode", "green");
    assert_eq!(version(&before), 1);
    let meta = &before["virtualNode"]["metadata"];
    assert_eq!(
        meta["arn"],
        "arn:aws:appmesh:local:000000000000:mesh/color-mesh/virtualNode/green"
    );
    for k in [
        "uid",
        "createdAt",
        "lastUpdatedAt",
        "meshOwner",
        "resourceOwner",
    ] {
        assert!(meta.get(k).is_some(), "metadata has no {k}: {meta}");
    }
    assert_eq!(before["virtualNode"]["status"]["status"], "ACTIVE");

    let file = tmp.path().join("green.json");
    write_json(&file, &before);
    let f = file.to_str().expect("utf-8 path");
    assert_eq!(
        ok(&m.socket, &["apply", "-f", f]),
        "virtualnode/green unchanged\n"
    );
    assert_eq!(describe(&m.socket, "vn", "green"), before);

    let mut changed = before.clone();
    for (i, max) in [7, 8].into_iter().enumerate() {
        changed["virtualNode"]["spec"]["listeners"][0]["connectionPool"]["http"]
            ["maxConnections"] = json!(max);
        write_json(&file, &changed);
        let dry = ok(&m.socket, &["apply", "-f", f, "--dry-run"]);
        assert_eq!(dry, "virtualnode/green configured (dry run)\n");
        assert_eq!(
            ok(&m.socket, &["apply", "-f", f]),
            "virtualnode/green configured\n"
        );
        let now = describe(&m.socket, "virtual-node", "green");
        assert_eq!(version(&now), 2 + i as i64);
        assert_eq!(
            now["virtualNode"]["metadata"]["createdAt"],
            meta["createdAt"]
        );
        assert_eq!(now["virtualNode"]["metadata"]["uid"], meta["uid"]);
        // In force before apply returned: the breaker limit is the new one.
        let live = ok(&m.socket, &["describe", "vn", "green", "--live"]);
        assert!(live.contains(&format!("0/{max} ")), "{live}");
    }
    // The file the watcher reads holds it, in the shape the file had (flat CLI input here).
    let on_disk: Value = serde_json::from_str(
        &std::fs::read_to_string(config.join("vn-green.json")).expect("vn-green.json"),
    )
    .expect("json");
    assert_eq!(version(&on_disk), 3);
    assert_eq!(on_disk["virtualNodeName"], "green", "{on_disk}");

    // Live state: breaker occupancy and hosts of the node's clusters.
    let live = ok(&m.socket, &["describe", "vn", "green", "--live"]);
    assert!(
        live.contains("cluster cds_ingress_color-mesh_green_http_8080"),
        "{live}"
    );
    assert!(
        live.contains("max_pending_requests") && live.contains("host "),
        "{live}"
    );
    let j: Value = serde_json::from_str(&ok(
        &m.socket,
        &["describe", "vn", "green", "--live", "-o", "json"],
    ))
    .expect("json");
    assert_eq!(
        j["live"]["clusters"][0]["breakers"]["max_connections"]["limit"],
        8
    );

    // get: table, wide, json.
    let table = ok(&m.socket, &["get"]);
    assert!(table.starts_with("NAME"), "{table}");
    assert!(table.contains("route/color-paths/green"), "{table}");
    let wide = ok(&m.socket, &["get", "vn", "-o", "wide"]);
    assert!(wide.contains("vn-green.json"), "{wide}");
    let list: Value =
        serde_json::from_str(&ok(&m.socket, &["get", "vs", "-o", "json"])).expect("json");
    assert_eq!(list.as_array().map(Vec::len), Some(1));

    // delete: refused while referred to, then allowed bottom-up.
    let r = meshctl(&m.socket, &["delete", "vn", "red"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stderr.contains("route/color-paths/red"), "{r:?}");
    assert_eq!(r.stderr.lines().count(), 1, "{r:?}");
    assert_eq!(
        ok(&m.socket, &["delete", "rt", "red"]),
        "route/color-paths/red deleted\n"
    );
    assert!(!config.join("route-red.json").exists());
    let r = meshctl(&m.socket, &["describe", "route", "red"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stderr.contains("not found"), "{r:?}");
}

#[test]
fn a_bad_resource_in_three_changes_nothing() {
    let (tmp, config) = walkthrough_config();
    let m = Meshd::start(&config, GREEN);
    let before = snapshot(&config);
    let mut bad = node("bad", 8082, 1);
    bad["spec"]["listeners"][0]["portMapping"]["port"] = json!(70000);
    let file = tmp.path().join("three.json");
    write_json(
        &file,
        &json!([node("blue", 8081, 1), bad, node("white", 8083, 1)]),
    );
    let r = meshctl(&m.socket, &["apply", "-f", file.to_str().expect("path")]);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(
        r.stderr.contains("three.json: virtualnode/bad: spec.listeners[0].portMapping.port: must be between 1 and 65535"),
        "{r:?}"
    );
    // A reference error is found by meshd against the whole mesh, also exit 2.
    let mut dangling = node("blue", 8081, 1);
    dangling["spec"]["backends"] =
        json!([{"virtualService": {"virtualServiceName": "nowhere.local"}}]);
    write_json(&file, &json!([dangling, node("white", 8083, 1)]));
    let r = meshctl(&m.socket, &["apply", "-f", file.to_str().expect("path")]);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(
        r.stderr
            .contains("three.json: virtualnode/blue: spec.backends"),
        "{r:?}"
    );
    assert_eq!(snapshot(&config), before, "a refused apply wrote something");
    let r = meshctl(&m.socket, &["get", "vn", "blue"]);
    assert_eq!(r.code, 1, "{r:?}");
}

#[test]
fn concurrent_applies_all_land_exactly_once() {
    let (tmp, config) = walkthrough_config();
    let m = Meshd::start(&config, GREEN);
    let v0 = version(&describe(&m.socket, "vn", "red"));
    let clients = 8;
    let handles: Vec<_> = (0..clients)
        .map(|i| {
            let socket = m.socket.clone();
            let file = tmp.path().join(format!("c{i}.json"));
            let mut red = node("red", 8080, 100 + i);
            red["spec"]["serviceDiscovery"]["dns"]["hostname"] = json!("red.color-mesh.local");
            write_json(
                &file,
                &json!([node(&format!("n{i}"), 9000 + i as u16, 1), red]),
            );
            std::thread::spawn(move || {
                meshctl(&socket, &["apply", "-f", file.to_str().expect("p")])
            })
        })
        .collect();
    for h in handles {
        let r = h.join().expect("thread");
        assert_eq!(r.code, 0, "{r:?}");
        assert!(
            r.stdout.contains("created") && r.stdout.contains("virtualnode/red configured"),
            "{r:?}"
        );
    }
    // Every update of red counted once: the version grew by exactly the number of clients.
    assert_eq!(version(&describe(&m.socket, "vn", "red")), v0 + clients);
    let list: Value =
        serde_json::from_str(&ok(&m.socket, &["get", "vn", "-o", "json"])).expect("json");
    let names: Vec<&str> = list
        .as_array()
        .expect("array")
        .iter()
        .filter_map(|r| r["virtualNode"]["virtualNodeName"].as_str())
        .collect();
    for i in 0..clients {
        let n = format!("n{i}");
        assert_eq!(names.iter().filter(|x| **x == n).count(), 1, "{names:?}");
        assert!(config.join(format!("virtualnode-{n}.json")).exists());
    }
}

#[test]
fn a_user_outside_the_socket_group_is_refused_with_403() {
    let prefix: &[&str] = if Path::new("/usr/bin/setpriv").exists() || which("setpriv") {
        &[
            "setpriv",
            "--reuid",
            "nobody",
            "--regid",
            "nogroup",
            "--clear-groups",
        ]
    } else if which("runuser") {
        &["runuser", "-u", "nobody", "--"]
    } else {
        eprintln!("note: neither setpriv nor runuser exists; skipping the authorisation test");
        return;
    };
    let (tmp, config) = walkthrough_config();
    let m = Meshd::start(&config, &[GREEN, &["--socket-mode", "0666"]].concat());
    // Let nobody reach the socket, so that the refusal comes from SO_PEERCRED.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(m.dir.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let file = tmp.path().join("blue.json");
    write_json(&file, &node("blue", 8081, 1));
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let before = snapshot(&config);

    let r = meshctl_as(
        prefix,
        &m.socket,
        &["apply", "-f", file.to_str().expect("p")],
    );
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stderr.contains("403"), "{r:?}");
    assert!(
        r.stderr
            .contains("user nobody (uid 65534) may not change the mesh"),
        "{r:?}"
    );
    let r = meshctl_as(prefix, &m.socket, &["delete", "rt", "red"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stderr.contains("403"), "{r:?}");
    assert_eq!(snapshot(&config), before, "a refused caller changed files");
    // Reading is allowed.
    let r = meshctl_as(prefix, &m.socket, &["get", "vn"]);
    assert_eq!(r.code, 0, "{r:?}");
    // Root may.
    ok(&m.socket, &["apply", "-f", file.to_str().expect("p")]);
}

fn which(tool: &str) -> bool {
    std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(tool).exists()))
        .unwrap_or(false)
}

#[test]
fn killing_meshd_during_applies_never_mixes_versions() {
    let (tmp, config) = walkthrough_config();
    let names: Vec<String> = (0..20).map(|i| format!("k{i}")).collect();
    let doc = |max: i64| -> Value {
        Value::Array(
            names
                .iter()
                .enumerate()
                .map(|(i, n)| node(n, 9100 + i as u16, max))
                .collect(),
        )
    };
    let mut m = Meshd::start(&config, GREEN);
    let file = tmp.path().join("k.json");
    write_json(&file, &doc(1));
    ok(&m.socket, &["apply", "-f", file.to_str().expect("p")]);
    for (round, delay_ms) in [0u64, 3, 10, 25].into_iter().enumerate() {
        let max = 2 + round as i64;
        write_json(&file, &doc(max));
        let socket = m.socket.clone();
        let f = file.clone();
        let client =
            std::thread::spawn(move || meshctl(&socket, &["apply", "-f", f.to_str().expect("p")]));
        std::thread::sleep(Duration::from_millis(delay_ms));
        m.proc.kill();
        let acknowledged = client.join().expect("thread").code == 0;
        m = Meshd::start(&config, GREEN);
        for n in &names {
            let d = describe(&m.socket, "vn", n);
            let got = d["virtualNode"]["spec"]["listeners"][0]["connectionPool"]["http"]
                ["maxConnections"]
                .as_i64()
                .expect("max");
            let v = version(&d);
            // Old or new, never a mix: the version matches the content.
            assert_eq!(v, got, "{n}: version {v} with maxConnections {got}");
            assert!(
                got == max || got == max - 1 || (!acknowledged && got < max),
                "{n}: {got}"
            );
            if acknowledged {
                assert_eq!(got, max, "{n}: an acknowledged apply was lost");
            }
        }
        // Bring every resource to this round's content before the next one.
        ok(&m.socket, &["apply", "-f", file.to_str().expect("p")]);
        let leftovers: Vec<_> = std::fs::read_dir(&config)
            .expect("dir")
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().ends_with("-tmp"))
            .collect();
        assert!(leftovers.is_empty(), "temp files left: {leftovers:?}");
    }
}

#[test]
fn socket_errors_are_one_clear_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let missing = dir.path().join("meshd.sock");
    let r = meshctl(&missing, &["get"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert_eq!(r.stderr.lines().count(), 1, "{r:?}");
    assert!(
        r.stderr.starts_with("meshctl: cannot connect to meshd at "),
        "{r:?}"
    );
    assert!(
        r.stderr.contains(&missing.display().to_string()) && r.stderr.contains("start meshd"),
        "{r:?}"
    );

    let not_socket = dir.path().join("plain");
    std::fs::write(&not_socket, "x").expect("write");
    let r = meshctl(&not_socket, &["get"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stderr.contains("is not a socket"), "{r:?}");

    // A live meshd's socket is not stolen; a stale one is replaced.
    let (_tmp, config) = walkthrough_config();
    let m = Meshd::start(&config, GREEN);
    let mut cmd = Command::new(bin("meshd"));
    cmd.arg("--config-dir")
        .arg(&config)
        .args(["--admin", "127.0.0.1:0", "--state-dir"])
        .arg(mesh_tests::state_dir_of(&config))
        .arg("--socket");
    cmd.arg(&m.socket).args(GREEN);
    let (mut second, _out) = Proc::spawn("meshd-second", cmd, dir.path());
    assert_eq!(second.wait_exit(Duration::from_secs(20)), Some(1));
    assert!(
        second.stderr().contains("another meshd is answering"),
        "{}",
        second.stderr()
    );
    ok(&m.socket, &["get"]);

    let stale = dir.path().join("stale.sock");
    drop(std::os::unix::net::UnixListener::bind(&stale).expect("bind"));
    assert!(stale.exists());
    let mut cmd = Command::new(bin("meshd"));
    cmd.arg("--config-dir")
        .arg(&config)
        .args(["--admin", "127.0.0.1:0", "--state-dir"])
        .arg(mesh_tests::state_dir_of(&config))
        .arg("--socket");
    cmd.arg(&stale)
        .args(["--node", "green", "--listen", "green=127.0.0.1:0"]);
    let (_third, _out) = Proc::spawn("meshd-third", cmd, dir.path());
    mesh_tests::eventually(
        "meshd to take over the stale socket",
        Duration::from_secs(20),
        || (meshctl(&stale, &["get", "mesh"]).code == 0).then_some(()),
    );
}

#[test]
fn validate_works_offline_and_tools_generate() {
    let (_tmp, config) = walkthrough_config();
    let nowhere = Path::new("/nonexistent/meshd.sock");
    let r = meshctl(nowhere, &["validate", "-f", config.to_str().expect("p")]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(
        r.stdout.starts_with("ok: 10 resources in 10 files"),
        "{r:?}"
    );
    let green = config.join("vn-green.json");
    let g = green.to_str().expect("p");
    let r = meshctl(nowhere, &["validate", "-f", g]);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(
        r.stderr.contains("vn-green.json: virtualnode/green"),
        "{r:?}"
    );
    assert_eq!(
        meshctl(nowhere, &["validate", "-f", g, "--no-references"]).code,
        0
    );
    std::fs::write(
        &green,
        "{\"meshName\": \"color-mesh\", \"virtualNodeName\": \"g\", \"spec\": {\"x\": 1}}",
    )
    .expect("write");
    let r = meshctl(nowhere, &["validate", "-f", g, "--no-references"]);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(
        r.stderr.contains("virtualnode/g: spec.x: unknown field"),
        "{r:?}"
    );

    for shell in ["bash", "zsh", "fish"] {
        let r = meshctl(nowhere, &["completions", shell]);
        assert_eq!(r.code, 0, "{r:?}");
        assert!(r.stdout.contains("meshctl"), "{shell}");
    }
    let r = meshctl(nowhere, &["man"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(
        r.stdout.contains(".TH meshctl"),
        "{}",
        &r.stdout[..200.min(r.stdout.len())]
    );
    let r = meshctl(nowhere, &["describe", "nonsense", "x"]);
    assert_eq!(r.code, 2, "{r:?}");
}

#[test]
fn hand_written_files_are_never_rewritten_and_get_the_same_metadata_everywhere() {
    let (_tmp, config) = walkthrough_config();
    let m = Meshd::start(&config, GREEN);
    let file = config.join("vn-blue.json");
    let tmp = config.join(".vn-blue.json.tmp");
    write_json(&tmp, &node("blue", 8081, 3));
    std::fs::rename(&tmp, &file).expect("rename");
    let written = std::fs::read_to_string(&file).expect("read");
    let d = mesh_tests::eventually("meshd to load blue", Duration::from_secs(10), || {
        let r = meshctl(&m.socket, &["describe", "vn", "blue"]);
        (r.code == 0).then(|| serde_json::from_str::<Value>(&r.stdout).expect("json"))
    });
    let meta = &d["virtualNode"]["metadata"];
    assert_eq!(meta["version"], 1, "{d}");
    assert!(meta["uid"].as_str().is_some_and(|u| u.len() == 36), "{d}");
    // Timestamps are not this machine's: neither its clock at load time nor the file's
    // modification time (which git, rsync or Ansible set differently on every VM).
    assert_eq!(meta["createdAt"], "1970-01-01T00:00:00.000Z", "{d}");
    assert_eq!(meta["lastUpdatedAt"], "1970-01-01T00:00:00.000Z", "{d}");
    // The file is exactly what the user wrote.
    assert_eq!(std::fs::read_to_string(&file).expect("read"), written);

    // Another meshd on a copy of the directory (another VM with the same files) reports the
    // same uid.
    let other = tempfile::tempdir().expect("tempdir");
    let copy = other.path().join("config");
    std::fs::create_dir(&copy).expect("mkdir");
    for (path, text) in snapshot(&config) {
        std::fs::write(copy.join(path.file_name().expect("name")), text).expect("copy");
    }
    let m2 = Meshd::start(&copy, GREEN);
    let d2 = describe(&m2.socket, "vn", "blue");
    assert_eq!(d2["virtualNode"]["metadata"], *meta);
    assert_eq!(
        describe(&m2.socket, "mesh", "color-mesh")["mesh"]["metadata"]["uid"],
        describe(&m.socket, "mesh", "color-mesh")["mesh"]["metadata"]["uid"]
    );
}

#[test]
fn validate_reads_a_directory_as_meshd_does() {
    let (_tmp, config) = walkthrough_config();
    let nowhere = Path::new("/nonexistent/meshd.sock");
    let dir = config.to_str().expect("p");
    // A dangling link is skipped and said so, as meshd logs it; the rest validates.
    std::os::unix::fs::symlink(config.join("gone.json"), config.join("old.json")).expect("link");
    let r = meshctl(nowhere, &["validate", "-f", dir]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(
        r.stderr.contains("old.json") && r.stderr.contains("dangling symlink"),
        "{r:?}"
    );
    // A file above meshd's limit is refused naming it and the limit, in a directory or alone.
    let big = config.join("big.json");
    let mut text = std::fs::read_to_string(config.join("mesh.json")).expect("mesh.json");
    text.push_str(&" ".repeat(9 << 20));
    std::fs::write(&big, text).expect("write");
    for input in [dir, big.to_str().expect("p")] {
        let r = meshctl(nowhere, &["validate", "-f", input]);
        assert_eq!(r.code, 2, "{r:?}");
        assert!(
            r.stderr.contains("big.json") && r.stderr.contains("8 MiB per resource file"),
            "{r:?}"
        );
    }
}

#[test]
fn bad_retry_outlier_and_health_check_settings_are_refused_naming_the_range() {
    let (tmp, config) = walkthrough_config();
    let app = mesh_tests::DemoApp::start("green", &[]);
    let app_flag = format!("green={}", app.addr);
    let m = Meshd::start(&config, &[GREEN, &["--app", &app_flag]].concat());
    let before = snapshot(&config);
    let read = |name: &str| -> Value {
        serde_json::from_str(&std::fs::read_to_string(config.join(name)).expect("read"))
            .expect("json")
    };
    let file = tmp.path().join("bad.json");
    let path = file.to_str().expect("path");
    let mut route = read("route-green.json");
    let mut node = read("vn-green.json");
    let l = "spec.listeners[0]";
    let rp = "spec.httpRoute.retryPolicy";
    let cases = [
        (
            "route",
            json!({"maxRetries": 2, "perRetryTimeout": {"unit": "ms", "value": 500}}),
            format!("bad.json: route/color-paths/green: {rp}: at least one retry event must be set"),
        ),
        (
            "outlier",
            json!({"maxServerErrors": 0, "interval": {"unit": "s", "value": 10},
                   "baseEjectionDuration": {"unit": "s", "value": 30}, "maxEjectionPercent": 50}),
            format!("bad.json: virtualnode/green: {l}.outlierDetection.maxServerErrors: must be between 1 and 4294967295, got 0"),
        ),
        (
            "percent",
            json!({"maxServerErrors": 5, "interval": {"unit": "s", "value": 10},
                   "baseEjectionDuration": {"unit": "s", "value": 30}, "maxEjectionPercent": 101}),
            format!("bad.json: virtualnode/green: {l}.outlierDetection.maxEjectionPercent: must be between 0 and 100, got 101"),
        ),
        (
            "health",
            json!({"protocol": "http", "path": "/ping", "intervalMillis": 5000,
                   "timeoutMillis": 2000, "healthyThreshold": 11, "unhealthyThreshold": 2}),
            format!("bad.json: virtualnode/green: {l}.healthCheck.healthyThreshold: must be between 2 and 10, got 11"),
        ),
    ];
    for (what, value, expected) in cases {
        let doc = match what {
            "route" => {
                route["spec"]["httpRoute"]["retryPolicy"] = value;
                route.clone()
            }
            "health" => {
                let mut n = node.clone();
                n["spec"]["listeners"][0]["healthCheck"] = value;
                n
            }
            _ => {
                node["spec"]["listeners"][0]["outlierDetection"] = value;
                node.clone()
            }
        };
        write_json(&file, &doc);
        for args in [vec!["validate", "-f", path], vec!["apply", "-f", path]] {
            let r = meshctl(&m.socket, &args);
            assert_eq!(r.code, 2, "{what} {args:?}: {r:?}");
            assert!(
                r.stderr.contains(&expected),
                "{what} {args:?}: {}",
                r.stderr
            );
        }
    }
    assert_eq!(snapshot(&config), before, "a refused apply wrote something");
    // What was applied before still serves, with its health check.
    let green = describe(&m.socket, "vn", "green");
    assert_eq!(
        green["virtualNode"]["spec"]["listeners"][0]["healthCheck"]["healthyThreshold"], 2,
        "{green}"
    );
    assert!(
        green["virtualNode"]["spec"]["listeners"][0]
            .get("outlierDetection")
            .is_none(),
        "{green}"
    );
    assert_eq!(
        mesh_tests::http_get(&format!("http://{}/", m.listener("green-ingress"))).status,
        200
    );
}
