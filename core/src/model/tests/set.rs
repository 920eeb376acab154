//! MeshSet: directory loading, whole-mesh validation, lookups.

use super::*;

#[test]
fn walkthrough_loads_and_validates_clean() {
    let set = MeshSet::load_dir(&walkthrough_dir()).unwrap_or_else(|e| panic!("{}", lines(&e)));
    let errors = set.validate();
    assert!(errors.is_empty(), "{}", lines(&errors));
    assert_eq!(set.len(), 10);
    assert!(MeshSet::load_dir_validated(&walkthrough_dir()).is_ok());
    assert_eq!(set.virtual_nodes().count(), 2);
    assert_eq!(set.virtual_gateways().count(), 1);
    let routes: Vec<&str> = set
        .gateway_routes("color-mesh", "ingress-gw")
        .iter()
        .map(|r| r.gateway_route_name.as_str())
        .collect();
    assert_eq!(routes, ["green-route", "red-route"]);
    let routes: Vec<&str> = set
        .routes("color-mesh", "color-paths")
        .iter()
        .map(|r| r.route_name.as_str())
        .collect();
    assert_eq!(routes, ["green", "red"]);
    assert!(set.virtual_service("color-mesh", "color-paths").is_some());
    assert!(set.virtual_router("color-mesh", "color-paths").is_some());
    assert!(set.virtual_node("color-mesh", "red").is_some());
    assert!(set.mesh("color-mesh").is_some());
    let file = set
        .file_of(Kind::VirtualNode, "color-mesh", "green")
        .expect("file");
    assert!(file.ends_with("vn-green.json"), "{}", file.display());
    let file = set
        .file_of(Kind::Route, "color-mesh", "color-paths/red")
        .expect("file");
    assert!(file.ends_with("route-red.json"));
    assert!(
        set.get(Kind::Route, "color-mesh", "red").is_some(),
        "unique bare route name"
    );
    assert!(set
        .get(Kind::GatewayRoute, "color-mesh", "ingress-gw/red-route")
        .is_some());
}

#[test]
fn references_to_lists_who_refers() {
    let set = MeshSet::load_dir(&walkthrough_dir()).expect("loads");
    let refs = |kind, name| set.references_to(kind, "color-mesh", name);
    assert_eq!(
        refs(Kind::VirtualNode, "red"),
        vec![(Kind::Route, "color-paths/red".to_string())]
    );
    assert_eq!(
        refs(Kind::VirtualRouter, "color-paths"),
        vec![
            (Kind::Route, "color-paths/green".to_string()),
            (Kind::Route, "color-paths/red".to_string()),
            (Kind::VirtualService, "color-paths".to_string()),
        ]
    );
    assert_eq!(
        refs(Kind::VirtualService, "color-paths"),
        vec![
            (Kind::GatewayRoute, "ingress-gw/green-route".to_string()),
            (Kind::GatewayRoute, "ingress-gw/red-route".to_string()),
        ]
    );
    assert_eq!(
        refs(Kind::VirtualGateway, "ingress-gw").len(),
        2,
        "its gateway routes"
    );
    assert!(refs(Kind::Route, "color-paths/red").is_empty());
    assert_eq!(refs(Kind::Mesh, "color-mesh").len(), 9);
}

/// Loads the walkthrough into a temp dir, applies `edit(dir)`, and returns the dir.
fn walkthrough_copy(tag: &str) -> TempDir {
    let dir = TempDir::new(tag);
    for entry in std::fs::read_dir(walkthrough_dir()).expect("walkthrough dir") {
        let entry = entry.expect("entry");
        let text = std::fs::read_to_string(entry.path()).expect("read");
        dir.write(&entry.file_name().to_string_lossy(), &text);
    }
    dir
}

fn validate_dir(dir: &TempDir) -> Vec<String> {
    match MeshSet::load_dir(dir.path()) {
        Ok(set) => set.validate().iter().map(ToString::to_string).collect(),
        Err(errors) => panic!("load failed: {}", lines(&errors)),
    }
}

/// Error lines with the temp dir prefix removed.
fn relative(dir: &TempDir, errors: Vec<String>) -> Vec<String> {
    let prefix = format!("{}/", dir.path().display());
    errors.into_iter().map(|e| e.replace(&prefix, "")).collect()
}

#[test]
fn dangling_references_name_the_referring_file_and_path() {
    let dir = walkthrough_copy("dangling");
    std::fs::remove_file(dir.path().join("vn-red.json")).expect("rm");
    std::fs::remove_file(dir.path().join("vr-color-paths.json")).expect("rm");
    dir.write(
        "vn-blue.json",
        r#"{"meshName": "other-mesh", "virtualNodeName": "blue", "spec": {"backends": [
            {"virtualService": {"virtualServiceName": "nowhere"}}]}}"#,
    );
    dir.write(
        "vs-lost.json",
        r#"{"meshName": "color-mesh", "virtualServiceName": "lost", "spec": {"provider":
            {"virtualNode": {"virtualNodeName": "red"}}}}"#,
    );
    dir.write(
        "gr-lost.json",
        r#"{"meshName": "color-mesh", "virtualGatewayName": "nogw", "gatewayRouteName": "x",
            "spec": {"httpRoute": {"match": {"prefix": "/"}, "action": {"target":
            {"virtualService": {"virtualServiceName": "color-pathz"}}}}}}"#,
    );
    assert_eq!(
        relative(&dir, validate_dir(&dir)),
        [
            "vn-blue.json: virtualnode/blue: meshName: mesh \"other-mesh\" does not exist; known meshes: color-mesh",
            "vn-blue.json: virtualnode/blue: spec.backends[0].virtualService.virtualServiceName: virtual service \"nowhere\" does not exist in mesh \"other-mesh\"; no virtual service is defined in this mesh",
            "gr-lost.json: gatewayroute/nogw/x: virtualGatewayName: virtual gateway \"nogw\" does not exist in mesh \"color-mesh\"; known virtual gateways: ingress-gw",
            "gr-lost.json: gatewayroute/nogw/x: spec.httpRoute.action.target.virtualService.virtualServiceName: virtual service \"color-pathz\" does not exist in mesh \"color-mesh\"; known virtual services: color-paths, lost",
            "route-green.json: route/color-paths/green: virtualRouterName: virtual router \"color-paths\" does not exist in mesh \"color-mesh\"; no virtual router is defined in this mesh",
            "route-red.json: route/color-paths/red: virtualRouterName: virtual router \"color-paths\" does not exist in mesh \"color-mesh\"; no virtual router is defined in this mesh",
            "route-red.json: route/color-paths/red: spec.httpRoute.action.weightedTargets[0].virtualNode: virtual node \"red\" does not exist in mesh \"color-mesh\"; known virtual nodes: green",
            "vs-color-paths.json: virtualservice/color-paths: spec.provider.virtualRouter.virtualRouterName: virtual router \"color-paths\" does not exist in mesh \"color-mesh\"; no virtual router is defined in this mesh",
            "vs-lost.json: virtualservice/lost: spec.provider.virtualNode.virtualNodeName: virtual node \"red\" does not exist in mesh \"color-mesh\"; known virtual nodes: green",
        ]
    );
    assert!(MeshSet::load_dir_validated(dir.path()).is_err());
}

#[test]
fn ports_and_protocols_of_routes_must_exist_on_listeners() {
    let dir = walkthrough_copy("ports");
    dir.write(
        "route-red.json",
        r#"{"meshName": "color-mesh", "virtualRouterName": "color-paths", "routeName": "red",
            "spec": {"tcpRoute": {"match": {"port": 9999}, "action": {"weightedTargets":
            [{"virtualNode": "red", "weight": 1, "port": 8081}]}}}}"#,
    );
    dir.write(
        "vg-ingress-gw.json",
        r#"{"meshName": "color-mesh", "virtualGatewayName": "ingress-gw", "spec": {"listeners": [
            {"portMapping": {"port": 8088, "protocol": "http"}},
            {"portMapping": {"port": 8089, "protocol": "http"}}]}}"#,
    );
    let errors = relative(&dir, validate_dir(&dir));
    assert_eq!(
        errors,
        [
            "gr-green.json: gatewayroute/ingress-gw/green-route: spec.httpRoute.match.port: required because virtual gateway \"ingress-gw\" has several listeners: 8088 (http), 8089 (http)",
            "gr-red.json: gatewayroute/ingress-gw/red-route: spec.httpRoute.match.port: required because virtual gateway \"ingress-gw\" has several listeners: 8088 (http), 8089 (http)",
            "route-red.json: route/color-paths/red: spec.tcpRoute: needs a listener with protocol \"tcp\" but virtual router \"color-paths\" listens on 8080 (http)",
            "route-red.json: route/color-paths/red: spec.tcpRoute.match.port: virtual router \"color-paths\" has no listener on port 9999; it listens on 8080 (http)",
            "route-red.json: route/color-paths/red: spec.tcpRoute.action.weightedTargets[0].port: virtual node \"red\" has no listener on port 8081; its listener ports: 8080",
        ]
    );
}

#[test]
fn duplicates_across_files_are_reported_once_per_extra_copy() {
    let dir = walkthrough_copy("dup");
    let text = std::fs::read_to_string(dir.path().join("vn-red.json")).expect("read");
    dir.write("zz-copy.json", &format!("[{text}]"));
    assert_eq!(
        relative(&dir, validate_dir(&dir)),
        ["zz-copy.json: virtualnode/red: virtualNodeName: virtual node \"red\" in mesh \"color-mesh\" is defined twice; it is also defined in vn-red.json"
            .replace("vn-red.json", &dir.path().join("vn-red.json").display().to_string())
            .replace(&format!("{}/", dir.path().display()), "")]
    );
    // The same route name under another router is a different resource.
    let other = r#"{"meshName": "color-mesh", "virtualRouterName": "other", "routeName": "red",
        "spec": {"httpRoute": {"match": {"prefix": "/"}, "action": {"weightedTargets": [{"virtualNode": "red", "weight": 1}]}}}}"#;
    let set = MeshSet::from_resources(vec![
        (PathBuf::from("a.json"), one(other)),
        (
            PathBuf::from("b.json"),
            one(&other.replace("other", "second")),
        ),
    ])
    .expect("valid resources");
    let dups: Vec<_> = set
        .validate()
        .into_iter()
        .filter(|e| e.message.contains("twice"))
        .collect();
    assert!(dups.is_empty(), "{}", lines(&dups));
    assert!(
        set.get(Kind::Route, "color-mesh", "red").is_none(),
        "ambiguous bare name"
    );
    assert!(set.get(Kind::Route, "color-mesh", "second/red").is_some());
}

#[test]
fn hidden_and_temp_files_are_ignored() {
    let dir = walkthrough_copy("temp");
    for name in [
        ".#vn-red.json",
        ".hidden.json",
        "vn-red.json~",
        "vn-red.json.swp",
        "vn-red.json.tmp",
        "#vn-red.json#",
        "notes.txt",
        "4913",
    ] {
        dir.write(name, "not json at all {");
    }
    std::fs::create_dir(dir.path().join("sub.json")).expect("mkdir");
    let set = MeshSet::load_dir(dir.path()).unwrap_or_else(|e| panic!("{}", lines(&e)));
    assert_eq!(set.len(), 10);
    assert!(set.validate().is_empty());
    for name in ["vn-red.json", "mesh.json", "a.b.json", "dr.yaml", "se.yml"] {
        assert!(is_resource_file_name(name), "{name}");
    }
    for name in [
        ".x.json",
        "x.json~",
        ".#x.json",
        "x.swp",
        "x.json.tmp",
        "x.yaml~",
        ".x.yaml",
        "#x.json#",
    ] {
        assert!(!is_resource_file_name(name), "{name}");
    }
}

#[test]
fn empty_or_missing_directory_is_an_error_naming_it() {
    let dir = TempDir::new("empty");
    dir.write("README", "no resources here");
    let errors = MeshSet::load_dir(dir.path()).expect_err("empty dir");
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].file, dir.path());
    assert!(errors[0]
        .to_string()
        .ends_with("no resource files (*.json, *.yaml, *.yml) in the config directory"));

    let missing = dir.path().join("nope");
    let errors = MeshSet::load_dir(&missing).expect_err("missing dir");
    assert_eq!(errors[0].file, missing);
    assert!(
        errors[0]
            .message
            .starts_with("cannot read config directory: "),
        "{}",
        errors[0]
    );
}

#[test]
fn every_broken_file_is_reported_and_nothing_loads() {
    let dir = walkthrough_copy("broken");
    dir.write("vn-red.json", r#"{"meshName": "color-mesh", "virtualNodeName": "red", "spec": {"listeners": [{"portMapping": {"port": 0, "protocol": "http"}}], "serviceDiscovery": {"dns": {"hostname": "r"}}}}"#);
    dir.write("vn-green.json", "{");
    let errors = MeshSet::load_dir(dir.path()).expect_err("broken files");
    let errors = relative(&dir, errors.iter().map(ToString::to_string).collect());
    assert_eq!(
        errors,
        ["vn-green.json: invalid JSON: EOF while parsing an object at line 1 column 1"]
    );
    dir.write(
        "vn-green.json",
        &std::fs::read_to_string(walkthrough_dir().join("vn-green.json")).expect("read"),
    );
    let errors = MeshSet::load_dir(dir.path()).expect_err("invalid port");
    let errors = relative(&dir, errors.iter().map(ToString::to_string).collect());
    assert_eq!(
        errors,
        ["vn-red.json: virtualnode/red: spec.listeners[0].portMapping.port: must be between 1 and 65535, got 0"]
    );
}
