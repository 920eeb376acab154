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
