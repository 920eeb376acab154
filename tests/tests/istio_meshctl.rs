//! Istio's DestinationRule, VirtualService, ServiceEntry and WorkloadEntry through a real meshd
//! and real meshctl: apply of a multi-document YAML, get/describe/delete of each kind, bad
//! documents refused with file, path and reason and nothing changed, the App Mesh/Istio host
//! conflict naming both files, the warning for a rule no ServiceEntry provides, and a
//! hand-written multi-document file that still updates and deletes correctly.

use std::collections::BTreeMap;
use std::path::Path;

use mesh_tests::{meshctl, walkthrough_config, Meshd, Run};

const GREEN: &[&str] = &["--node", "green", "--listen", "green=127.0.0.1:0"];

const BOOKINFO: &str = "\
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: reviews}
spec:
  hosts: [reviews.bookinfo]
  ports: [{number: 9080, name: http, protocol: HTTP}]
  resolution: STATIC
  endpoints:
  - {address: 127.0.0.1, labels: {version: v1}}
  - {address: 127.0.0.2, labels: {version: v2}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews}
spec:
  host: reviews.bookinfo
  exportTo: [\".\"]
  trafficPolicy:
    connectionPool:
      tcp: {maxConnections: 5}
      http: {http1MaxPendingRequests: 1}
  subsets:
  - {name: v1, labels: {version: v1}}
  - {name: v2, labels: {version: v2}}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews}
spec:
  hosts: [reviews.bookinfo]
  http:
  - route:
    - {destination: {host: reviews.bookinfo, subset: v1}, weight: 90}
    - {destination: {host: reviews.bookinfo, subset: v2}, weight: 10}
    retries: {attempts: 2, perTryTimeout: 500ms}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: reviews-vm1}
spec: {address: 127.0.0.1, labels: {app: reviews, version: v1}}
";

#[track_caller]
fn ok(m: &Meshd, args: &[&str]) -> Run {
    let r = meshctl(&m.socket, args);
    assert_eq!(r.code, 0, "meshctl {args:?} failed: {r:?}");
    r
}

/// Every file of the config directory and its content.
fn dir_contents(dir: &Path) -> BTreeMap<String, String> {
    std::fs::read_dir(dir)
        .expect("config dir")
        .flatten()
        .filter(|e| e.path().is_file())
        .map(|e| {
            (
                e.file_name().to_string_lossy().into_owned(),
                std::fs::read_to_string(e.path()).unwrap_or_default(),
            )
        })
        .collect()
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write");
    path.to_str().expect("utf-8").to_owned()
}

#[test]
fn istio_objects_apply_list_describe_and_delete_like_app_mesh_kinds() {
    let (_t, config) = walkthrough_config();
    let m = Meshd::start(&config, GREEN);
    let work = tempfile::tempdir().expect("tempdir");
    let file = write(work.path(), "bookinfo.yaml", BOOKINFO);

    let r = ok(&m, &["apply", "-f", &file]);
    for label in [
        "serviceentry/reviews created",
        "destinationrule/reviews created",
        "virtualservice.networking.istio.io/reviews created",
        "workloadentry/reviews-vm1 created",
    ] {
        assert!(r.stdout.contains(label), "{label} missing: {r:?}");
    }
    assert!(!r.stderr.contains("warning"), "{r:?}");
    // Stored as YAML, without App Mesh metadata.
    let files = dir_contents(&config);
    let dr_file = files
        .get("destinationrule-reviews.yaml")
        .unwrap_or_else(|| panic!("no destinationrule-reviews.yaml in {:?}", files.keys()));
    assert!(dr_file.contains("kind: DestinationRule"), "{dr_file}");
    assert!(
        !dr_file.contains("uid") && !dr_file.contains("version: 1"),
        "{dr_file}"
    );
    // Applying the same again changes nothing.
    let again = ok(&m, &["apply", "-f", &file]);
    assert!(
        again.stdout.contains("destinationrule/reviews unchanged"),
        "{again:?}"
    );
    assert_eq!(dir_contents(&config), files);

    let dr = ok(&m, &["get", "dr"]).stdout;
    assert!(dr.starts_with("NAME"), "{dr}");
    assert!(dr.contains("NAMESPACE") && dr.contains("HOST"), "{dr}");
    let row = dr
        .lines()
        .find(|l| l.starts_with("destinationrule/reviews"))
        .expect(&dr);
    assert!(
        row.contains("default") && row.contains("reviews.bookinfo") && row.contains("v1,v2"),
        "{row}"
    );
    let se = ok(&m, &["get", "se"]).stdout;
    assert!(
        se.contains("RESOLUTION") && se.contains("STATIC") && se.contains("reviews.bookinfo"),
        "{se}"
    );
    let we = ok(&m, &["get", "we"]).stdout;
    assert!(
        we.contains("workloadentry/reviews-vm1") && we.contains("127.0.0.1"),
        "{we}"
    );
    // `vs` lists both virtual service kinds, told apart by the kind in NAME.
    let vs = ok(&m, &["get", "vs"]).stdout;
    assert!(vs.contains("virtualservice/color-paths"), "{vs}");
    assert!(
        vs.contains("virtualservice.networking.istio.io/reviews"),
        "{vs}"
    );
    let istio_only = ok(&m, &["get", "virtualservice.networking.istio.io"]).stdout;
    assert!(
        !istio_only.contains("color-paths") && istio_only.contains("reviews"),
        "{istio_only}"
    );
    let json = ok(&m, &["get", "dr", "-o", "json"]).stdout;
    let list: serde_json::Value = serde_json::from_str(&json).expect("json");
    assert_eq!(list[0]["spec"]["host"], "reviews.bookinfo", "{json}");

    // describe: the object as YAML, and what is not in force on stderr.
    let d = ok(&m, &["describe", "dr", "reviews"]);
    assert!(
        d.stdout.contains("kind: DestinationRule") && d.stdout.contains("maxConnections: 5"),
        "{d:?}"
    );
    assert!(
        d.stderr.contains("not in force") && d.stderr.contains("spec.exportTo"),
        "{d:?}"
    );
    let d = ok(&m, &["describe", "vs", "reviews"]);
    assert!(
        d.stdout.contains("kind: VirtualService") && d.stdout.contains("subset: v2"),
        "{d:?}"
    );
    let d = ok(&m, &["describe", "vs", "color-paths"]);
    assert!(d.stdout.contains("\"virtualService\""), "{d:?}");
    let d = ok(&m, &["describe", "se", "reviews", "-o", "json"]);
    let v: serde_json::Value = serde_json::from_str(&d.stdout).expect("json");
    assert_eq!(v["kind"], "ServiceEntry", "{d:?}");

    // A name both kinds have: `describe vs` says so and how to pick one.
    let same = write(
        work.path(),
        "same-name.yaml",
        "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: color-paths}\n\
         spec:\n  hosts: [reviews.bookinfo]\n  http:\n  - route: [{destination: {host: reviews.bookinfo}}]\n",
    );
    ok(&m, &["apply", "-f", &same]);
    let r = meshctl(&m.socket, &["describe", "vs", "color-paths"]);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(
        r.stderr
            .contains("virtualservice.appmesh.k8s.aws color-paths")
            && r.stderr
                .contains("virtualservice.networking.istio.io color-paths"),
        "{r:?}"
    );
    let d = ok(
        &m,
        &["describe", "virtualservice.appmesh.k8s.aws", "color-paths"],
    );
    assert!(d.stdout.contains("\"virtualService\""), "{d:?}");
    ok(
        &m,
        &[
            "delete",
            "virtualservice.networking.istio.io",
            "color-paths",
        ],
    );

    // A DestinationRule whose subsets a route uses is still needed.
    let r = meshctl(&m.socket, &["delete", "dr", "reviews"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(
        r.stderr.contains("still needed") && r.stderr.contains("subset \"v1\""),
        "{r:?}"
    );
    assert!(config.join("destinationrule-reviews.yaml").exists());

    // delete each kind (the route's subsets first: the VirtualService).
    for (kind, name, file) in [
        ("vs", "reviews", "virtualservice-reviews.yaml"),
        ("dr", "reviews", "destinationrule-reviews.yaml"),
        ("we", "reviews-vm1", "workloadentry-reviews-vm1.yaml"),
        ("se", "reviews", "serviceentry-reviews.yaml"),
    ] {
        let r = ok(&m, &["delete", kind, name]);
        assert!(r.stdout.contains(&format!("/{name} deleted")), "{r:?}");
        assert!(!config.join(file).exists(), "{file} still there");
    }
    let r = meshctl(&m.socket, &["get", "dr", "reviews"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(
        ok(&m, &["get", "vs"])
            .stdout
            .contains("virtualservice/color-paths"),
        "App Mesh's virtual service stays"
    );
}

#[test]
fn bad_documents_are_refused_with_file_path_and_reason_and_nothing_changes() {
    let (_t, config) = walkthrough_config();
    let m = Meshd::start(&config, GREEN);
    let work = tempfile::tempdir().expect("tempdir");
    ok(
        &m,
        &["apply", "-f", &write(work.path(), "good.yaml", BOOKINFO)],
    );
    let before_dir = dir_contents(&config);
    let before_get = ok(&m, &["get", "-o", "json"]).stdout;

    let dr = |spec: &str| {
        format!(
            "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {{name: reviews}}\n\
             spec:\n  host: reviews.bookinfo\n{spec}"
        )
    };
    let cases: Vec<(&str, String, &str, &str)> = vec![
        ("tab.yaml", dr("  trafficPolicy:\n\tconnectionPool: {}\n"), "", "line 7"),
        ("dup.yaml", dr("  host: other.bookinfo\n"), "", "duplicate"),
        (
            "duration.yaml",
            dr("  trafficPolicy:\n    connectionPool: {tcp: {connectTimeout: 5x}}\n"),
            "spec.trafficPolicy.connectionPool.tcp.connectTimeout",
            "invalid duration \"5x\"",
        ),
        (
            "negative.yaml",
            dr("  trafficPolicy:\n    connectionPool: {tcp: {maxConnections: -1}}\n"),
            "spec.trafficPolicy.connectionPool.tcp.maxConnections",
            "must not be negative",
        ),
        (
            "unknown.yaml",
            dr("  trafficPolicy:\n    connectionPool: {tcp: {maxConnection: 5}}\n"),
            "spec.trafficPolicy.connectionPool.tcp",
            "unknown field \"maxConnection\"",
        ),
        (
            "subset.yaml",
            BOOKINFO.replace("subset: v2}", "subset: v3}"),
            "spec.http[0].route[1].destination.subset",
            "subset \"v3\" of host \"reviews.bookinfo\" is not defined by any DestinationRule: destinationrule/reviews",
        ),
    ];
    for (name, text, path, reason) in cases {
        let file = write(work.path(), name, &text);
        let r = meshctl(&m.socket, &["apply", "-f", &file]);
        assert_eq!(r.code, 2, "{name}: {r:?}");
        assert!(r.stderr.contains(&file), "{name}: the file is named: {r:?}");
        assert!(
            r.stderr.contains(path),
            "{name}: the path {path} is named: {r:?}"
        );
        assert!(
            r.stderr.contains(reason),
            "{name}: {reason:?} is said: {r:?}"
        );
        assert_eq!(
            dir_contents(&config),
            before_dir,
            "{name}: the directory changed"
        );
        assert_eq!(
            ok(&m, &["get", "-o", "json"]).stdout,
            before_get,
            "{name}: the running config changed"
        );
        // Offline validation says the same.
        let v = meshctl(&m.socket, &["validate", "-f", &file]);
        assert_eq!(v.code, 2, "{name}: {v:?}");
        assert!(v.stderr.contains(reason), "{name}: {v:?}");
    }
}

#[test]
fn a_host_in_app_mesh_and_istio_is_refused_naming_both_files_and_a_rule_without_a_service_entry_is_a_warning(
) {
    let (_t, config) = walkthrough_config();
    let m = Meshd::start(&config, GREEN);
    let work = tempfile::tempdir().expect("tempdir");
    let before = dir_contents(&config);
    let conflict = write(
        work.path(),
        "conflict.yaml",
        "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: paths}\n\
         spec:\n  hosts: [color-paths]\n  http:\n  - route: [{destination: {host: color-paths}}]\n",
    );
    let r = meshctl(&m.socket, &["apply", "-f", &conflict]);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.stderr.contains(&conflict), "{r:?}");
    assert!(
        r.stderr.contains("spec.hosts[0]") && r.stderr.contains("configured by both Istio"),
        "{r:?}"
    );
    assert!(
        r.stderr
            .contains(&config.join("vs-color-paths.json").display().to_string()),
        "{r:?}"
    );
    assert_eq!(dir_contents(&config), before);

    let lone = write(
        work.path(),
        "lone.yaml",
        "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: lone}\n\
         spec: {host: nowhere.example}\n",
    );
    let v = meshctl(&m.socket, &["validate", "-f", &lone]);
    assert_eq!(v.code, 0, "{v:?}");
    assert!(
        v.stderr.contains("warning:")
            && v.stderr
                .contains("no ServiceEntry or virtual node provides host \"nowhere.example\""),
        "{v:?}"
    );
    let r = ok(&m, &["apply", "-f", &lone]);
    assert!(r.stdout.contains("destinationrule/lone created"), "{r:?}");
    assert!(
        r.stderr.contains("warning:") && r.stderr.contains(&lone) && r.stderr.contains("spec.host"),
        "{r:?}"
    );
    assert!(ok(&m, &["get", "dr"])
        .stdout
        .contains("destinationrule/lone"));
}

#[test]
fn a_hand_written_multi_document_file_updates_and_deletes_in_place() {
    let (_t, config) = walkthrough_config();
    let hand = config.join("bookinfo.yaml");
    std::fs::write(&hand, BOOKINFO).expect("write");
    let m = Meshd::start(&config, GREEN);
    assert!(ok(&m, &["get", "we"]).stdout.contains("reviews-vm1"));

    // Change the WorkloadEntry: it is rewritten in its file, the others stay there.
    let work = tempfile::tempdir().expect("tempdir");
    let we = write(
        work.path(),
        "we.yaml",
        "apiVersion: networking.istio.io/v1\nkind: WorkloadEntry\nmetadata: {name: reviews-vm1}\n\
         spec: {address: 127.0.0.3, labels: {app: reviews, version: v1}}\n",
    );
    let r = ok(&m, &["apply", "-f", &we]);
    assert!(
        r.stdout.contains("workloadentry/reviews-vm1 configured"),
        "{r:?}"
    );
    assert!(
        !config.join("workloadentry-reviews-vm1.yaml").exists(),
        "{r:?}"
    );
    let text = std::fs::read_to_string(&hand).expect("read");
    assert!(
        text.contains("127.0.0.3") && text.contains("kind: DestinationRule"),
        "{text}"
    );
    assert_eq!(text.matches("kind:").count(), 4, "{text}");
    let d = ok(&m, &["describe", "we", "reviews-vm1"]).stdout;
    assert!(d.contains("127.0.0.3"), "{d}");

    // Delete it: the file keeps the other three.
    ok(&m, &["delete", "we", "reviews-vm1"]);
    let text = std::fs::read_to_string(&hand).expect("read");
    assert!(
        !text.contains("WorkloadEntry") && text.matches("kind:").count() == 3,
        "{text}"
    );
    assert!(!ok(&m, &["get", "we"]).stdout.contains("reviews-vm1"));
    // meshd reads the rewritten file back as the same set (a restart would too).
    let dr = ok(&m, &["get", "dr"]).stdout;
    assert!(dr.contains("destinationrule/reviews"), "{dr}");
}
