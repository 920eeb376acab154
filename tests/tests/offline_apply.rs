//! `meshctl apply --config-dir` and `meshctl diff`: changing a config directory without a
//! daemon (a config repository distributed to every VM) writes exactly what meshd's own apply
//! writes.

use std::path::Path;
use std::process::Command;

use mesh_tests::{bin, meshctl, run_bounded, walkthrough_config, Meshd, Run};
use serde_json::{json, Value};

/// A fixed apply time for both sides (`SOURCE_DATE_EPOCH`), so files compare byte for byte.
const EPOCH: &str = "1700000000";

/// meshctl without a daemon (no socket), with the fixed apply time.
fn offline(args: &[&str]) -> Run {
    let mut cmd = Command::new(bin("meshctl"));
    cmd.args(args)
        .env("SOURCE_DATE_EPOCH", EPOCH)
        .env_remove("MESHD_SOCKET");
    run_bounded(cmd, &format!("meshctl {args:?}"))
}

/// File name → content of every file in `dir`.
fn files(dir: &Path) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = std::fs::read_dir(dir)
        .expect("read dir")
        .flatten()
        .map(|e| {
            (
                e.file_name().to_string_lossy().into_owned(),
                std::fs::read_to_string(e.path()).unwrap_or_default(),
            )
        })
        .collect();
    v.sort();
    v
}

fn changes(dir: &Path) -> Value {
    let mut green: Value = serde_json::from_str(
        &std::fs::read_to_string(dir.join("vn-green.json")).expect("read green"),
    )
    .expect("json");
    green["spec"]["listeners"][0]["connectionPool"]["http"]["maxConnections"] = json!(7);
    let blue = json!({"meshName": "color-mesh", "virtualNodeName": "blue", "spec": {
        "listeners": [{"portMapping": {"port": 8083, "protocol": "http"}}],
        "serviceDiscovery": {"dns": {"hostname": "blue.color-mesh.local"}}}});
    json!([green, blue])
}

#[test]
fn an_offline_apply_writes_exactly_what_a_live_apply_writes() {
    let (live_tmp, live_dir) = walkthrough_config();
    // The repository: a copy of the same files (as git or rsync would give another machine).
    let repo_tmp = tempfile::tempdir().expect("tempdir");
    let repo_dir = repo_tmp.path().join("config");
    std::fs::create_dir(&repo_dir).expect("mkdir");
    for (name, text) in files(&live_dir) {
        std::fs::write(repo_dir.join(name), text).expect("copy");
    }
    let input = live_tmp.path().join("change.json");
    std::fs::write(&input, changes(&live_dir).to_string()).expect("write input");
    let input = input.to_str().expect("path");
    let repo = repo_dir.to_str().expect("path");

    // diff first: both files named, the new one from /dev/null, nothing written.
    let before = files(&repo_dir);
    let d = offline(&["diff", "-f", input, "--config-dir", repo]);
    assert_eq!(d.code, 0, "{d:?}");
    assert!(
        d.stdout.contains(&format!("--- {repo}/vn-green.json")),
        "{}",
        d.stdout
    );
    assert!(
        d.stdout.contains("-          \"maxConnections\": 10,")
            || d.stdout.contains("\"maxConnections\": 10"),
        "{}",
        d.stdout
    );
    assert!(
        d.stdout.contains("+--- /dev/null") || d.stdout.contains("--- /dev/null"),
        "{}",
        d.stdout
    );
    let dry = offline(&["apply", "-f", input, "--config-dir", repo, "--dry-run"]);
    assert_eq!(
        dry.stdout, "virtualnode/green configured (dry run)\nvirtualnode/blue created (dry run)\n",
        "{dry:?}"
    );
    assert_eq!(
        files(&repo_dir),
        before,
        "diff or a dry run wrote something"
    );

    // The same change, live through meshd (its clock fixed the same way) and offline.
    let mut cmd = Command::new(bin("meshd"));
    cmd.env("SOURCE_DATE_EPOCH", EPOCH);
    let m = Meshd::start_as(
        cmd,
        &live_dir,
        &["--node", "green", "--listen", "green=127.0.0.1:0"],
    );
    let live = meshctl(&m.socket, &["apply", "-f", input]);
    assert_eq!(live.code, 0, "{live:?}");
    let off = offline(&["apply", "-f", input, "--config-dir", repo]);
    assert_eq!(off.code, 0, "{off:?}");
    // The same lines; a live apply also says where a node it does not serve takes effect.
    assert_eq!(
        live.stdout,
        "virtualnode/green configured\nvirtualnode/blue created (served elsewhere: \
         blue.color-mesh.local)\n"
    );
    assert_eq!(
        off.stdout,
        live.stdout
            .replace(" (served elsewhere: blue.color-mesh.local)", "")
    );
    assert_eq!(
        off.stdout,
        "virtualnode/green configured\nvirtualnode/blue created\n"
    );
    assert_eq!(files(&repo_dir), files(&live_dir));
    // Nothing left to change.
    let d = offline(&["diff", "-f", input, "--config-dir", repo]);
    assert_eq!((d.code, d.stdout.as_str()), (0, ""), "{d:?}");
    drop((m, repo_tmp));
}

#[test]
fn an_invalid_offline_apply_names_the_file_and_writes_nothing() {
    let (tmp, dir) = walkthrough_config();
    let before = files(&dir);
    let bad = tmp.path().join("bad.json");
    std::fs::write(
        &bad,
        json!({"meshName": "color-mesh", "virtualNodeName": "blue", "spec": {
            "listeners": [{"portMapping": {"port": 8083, "protocol": "http"}}],
            "backends": [{"virtualService": {"virtualServiceName": "nowhere.local"}}],
            "serviceDiscovery": {"dns": {"hostname": "blue.color-mesh.local"}}}})
        .to_string(),
    )
    .expect("write");
    let r = offline(&[
        "apply",
        "-f",
        bad.to_str().expect("path"),
        "--config-dir",
        dir.to_str().expect("path"),
    ]);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(
        r.stderr
            .contains("bad.json: virtualnode/blue: spec.backends"),
        "{}",
        r.stderr
    );
    assert_eq!(files(&dir), before);
}
