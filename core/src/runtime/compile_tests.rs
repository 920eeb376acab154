//! Compiling the walkthrough and small meshes into runtime configs.

use super::*;
use std::path::Path;

fn walkthrough() -> MeshSet {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/walkthrough");
    MeshSet::load_dir_validated(&dir).expect("walkthrough is valid")
}

#[test]
fn walkthrough_compiles_to_app_mesh_clusters() {
    let rc = compile(&walkthrough(), &Overrides::default());
    let names: Vec<&str> = rc.clusters.iter().map(|c| c.name.as_str()).collect();
    assert!(
        names.contains(&"cds_ingress_color-mesh_green_http_8080"),
        "{names:?}"
    );
    assert!(names.contains(&"cds_ingress_color-mesh_ingress-gw_self_redirect_http_8088"));
    assert!(names.contains(&"cds_egress_color-mesh_green_http_8080"));
    let gw = rc
        .clusters
        .iter()
        .find(|c| c.name.contains("self_redirect"))
        .expect("gateway cluster");
    assert_eq!(gw.thresholds.max_connections, 5);
    assert_eq!(gw.thresholds.max_pending_requests, 5);
    let green = rc
        .clusters
        .iter()
        .find(|c| c.name == "cds_ingress_color-mesh_green_http_8080")
        .expect("green");
    assert_eq!(green.thresholds.max_connections, 10);
    assert_eq!(
        green.endpoints,
        Endpoints::Static("127.0.0.1:8080".parse().expect("addr"))
    );
    let gw_listener = rc
        .listeners
        .iter()
        .find(|l| l.role == Role::Gateway)
        .expect("gateway listener");
    let req = http::Request::get("/paths/green/x")
        .body(())
        .expect("req")
        .into_parts()
        .0;
    let action = gw_listener.routing.route(&req).expect("routed");
    assert_eq!(action.cluster, "cds_egress_color-mesh_green_http_8080");
}

#[test]
fn listeners_get_app_mesh_default_timeouts() {
    let rc = compile(&walkthrough(), &Overrides::default());
    for l in &rc.listeners {
        assert_eq!(l.request_timeout, Duration::from_secs(15), "{}", l.node);
        assert_eq!(
            l.stream_idle_timeout,
            Duration::from_secs(300),
            "{}",
            l.node
        );
    }
}

#[test]
fn listen_overrides_make_local_endpoints() {
    let mut o = Overrides::default();
    o.listen
        .insert("green".into(), "127.0.0.1:0".parse().expect("addr"));
    let rc = compile(&walkthrough(), &o);
    let egress = rc
        .clusters
        .iter()
        .find(|c| c.name == "cds_egress_color-mesh_green_http_8080")
        .expect("egress");
    assert_eq!(
        egress.endpoints,
        Endpoints::LocalListener {
            node: "green".into()
        }
    );
    o.nodes = Some(["ingress-gw".to_owned()].into());
    let rc = compile(&walkthrough(), &o);
    assert!(rc.listeners.iter().all(|l| l.node == "ingress-gw"));
}

#[test]
fn bind_ip_binds_that_address_with_the_listeners_port_and_listen_still_wins() {
    let mut o = Overrides::default();
    o.bind_ip
        .insert("green".into(), "198.18.1.2".parse().expect("ip"));
    o.bind_ip
        .insert("red".into(), "0.0.0.0".parse().expect("ip"));
    o.listen
        .insert("red".into(), "127.0.0.1:0".parse().expect("addr"));
    let rc = compile(&walkthrough(), &o);
    let bind = |node: &str| {
        rc.listeners
            .iter()
            .find(|l| l.node == node && l.role == Role::Ingress)
            .map(|l| l.bind.clone())
    };
    assert_eq!(
        bind("green"),
        Some(Bind::Addr("198.18.1.2:8080".parse().expect("addr")))
    );
    assert_eq!(
        bind("red"),
        Some(Bind::Addr("127.0.0.1:0".parse().expect("addr")))
    );
}
