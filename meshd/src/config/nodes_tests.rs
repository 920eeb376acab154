use std::collections::BTreeSet;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use mesh_core::model::{MeshSet, SourceFile};
use mesh_core::runtime::{compile, Bind, Overrides, Role};

use super::*;

/// Node `here` (hostname `localhost`), `there` (`192.0.2.10`, TEST-NET: never local), `gone`
/// (a name that never resolves) and gateway `gw`.
fn mesh() -> MeshSet {
    let node = |name: &str, host: &str| {
        format!(
            r#"{{"meshName": "m", "virtualNodeName": "{name}", "spec": {{
                "listeners": [{{"portMapping": {{"port": 8080, "protocol": "http"}}}}],
                "serviceDiscovery": {{"dns": {{"hostname": "{host}"}}}}}}}}"#
        )
    };
    let docs = [
        r#"{"meshName": "m", "spec": {}}"#.to_string(),
        node("here", "localhost"),
        node("there", "192.0.2.10"),
        node("gone", "nosuch.invalid"),
        r#"{"meshName": "m", "virtualGatewayName": "gw", "spec": {"listeners":
            [{"portMapping": {"port": 8088, "protocol": "http"}}]}}"#
            .to_string(),
    ];
    let files = docs
        .iter()
        .enumerate()
        .map(|(i, d)| SourceFile {
            path: PathBuf::from(format!("/c/{i}.json")),
            text: d.clone(),
            modified: None,
            link_target: None,
        })
        .collect();
    match crate::config::load::from_files(files, true) {
        Ok(l) => l.set,
        Err(e) => panic!("invalid: {e:?}"),
    }
}

fn named(names: &[&str]) -> Overrides {
    Overrides {
        nodes: Some(names.iter().map(|n| n.to_string()).collect()),
        ..Overrides::default()
    }
}

fn ingress_bind(o: &Overrides, node: &str) -> Option<Bind> {
    compile(&mesh(), o)
        .listeners
        .into_iter()
        .find(|l| l.node == node && l.role == Role::Ingress)
        .map(|l| l.bind)
}

#[test]
fn without_node_a_meshd_serves_the_nodes_whose_hostname_is_local() {
    let (sel, o) = select(&mesh(), &Overrides::default());
    assert_eq!(sel.served(), BTreeSet::from(["here".to_owned()]));
    assert!(
        matches!(&sel.nodes["here"].reason, Reason::Local { host, addr } if host == "localhost" && addr.is_loopback()),
        "{:?}",
        sel.nodes["here"]
    );
    assert_eq!(
        sel.nodes["there"].reason,
        Reason::Remote {
            host: "192.0.2.10".into(),
            addrs: vec!["192.0.2.10".parse().expect("ip")]
        }
    );
    assert_eq!(
        sel.nodes["gone"].reason,
        Reason::Unresolved {
            host: "nosuch.invalid".into()
        }
    );
    assert_eq!(sel.nodes["gw"].reason, Reason::NoHostname);
    assert!(sel.missing.is_empty());
    // The listener binds the local address found, not the hostname again.
    let here = match ingress_bind(&o, "here") {
        Some(Bind::Addr(a)) => a,
        other => panic!("{other:?}"),
    };
    assert!(here.ip().is_loopback() && here.port() == 8080, "{here}");
    assert_eq!(ingress_bind(&o, "there"), None);
    assert_eq!(ingress_bind(&o, "gw"), None);

    let line = sel.summary();
    assert!(line.starts_with("serving here (localhost → "), "{line}");
    assert!(
        line.contains("; remote: gone (nosuch.invalid does not resolve here), gw (no DNS hostname")
            && line.contains("there (192.0.2.10 → 192.0.2.10)"),
        "{line}"
    );
    assert_eq!(sel.elsewhere("there").as_deref(), Some("192.0.2.10"));
    assert_eq!(sel.elsewhere("here"), None);
    assert_eq!(sel.served_word("gw"), "elsewhere");
}

#[test]
fn a_listen_address_decides_by_its_own_address() {
    let mut flags = Overrides::default();
    flags
        .listen
        .insert("gw".into(), SocketAddr::from(([127, 0, 0, 1], 0)));
    flags
        .listen
        .insert("here".into(), SocketAddr::from(([192, 0, 2, 11], 80)));
    let (sel, o) = select(&mesh(), &flags);
    assert!(sel.serves("gw"), "{}", sel.summary());
    assert!(!sel.serves("here"), "{}", sel.summary());
    assert!(matches!(sel.nodes["here"].reason, Reason::ListenRemote(_)));
    let rc = compile(&mesh(), &o);
    assert!(rc
        .listeners
        .iter()
        .any(|l| l.node == "gw" && l.role == Role::Gateway));
    assert!(rc.listeners.iter().all(|l| l.node == "gw"));
}

#[test]
fn named_nodes_are_served_wherever_their_hostname_points_and_unknown_names_are_reported() {
    let (sel, o) = select(&mesh(), &named(&["there", "gw", "nosuch"]));
    assert_eq!(
        sel.served(),
        BTreeSet::from(["there".to_owned(), "gw".to_owned()])
    );
    assert_eq!(sel.missing, vec!["nosuch".to_owned()]);
    assert_eq!(sel.known(), "gone, gw, here, there");
    assert_eq!(sel.nodes["here"].reason, Reason::NotNamed);
    // `there` resolves to another machine's address: bind every address, Envoy-on-EC2 style.
    assert_eq!(
        ingress_bind(&o, "there"),
        Some(Bind::Addr(SocketAddr::from(([0, 0, 0, 0], 8080))))
    );
    assert!(
        sel.nodes["there"].why.contains("binds 0.0.0.0"),
        "{}",
        sel.nodes["there"].why
    );
    // A named node whose hostname is local binds that address.
    let (_, o) = select(&mesh(), &named(&["here"]));
    match ingress_bind(&o, "here") {
        Some(Bind::Addr(a)) => assert!(a.ip().is_loopback(), "{a}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn no_local_node_serves_none_and_says_so() {
    let mut flags = Overrides::default();
    flags
        .listen
        .insert("here".into(), SocketAddr::from(([192, 0, 2, 11], 80)));
    let (sel, o) = select(&mesh(), &flags);
    assert!(sel.served().is_empty());
    assert!(compile(&mesh(), &o).listeners.is_empty());
    assert!(
        sel.summary()
            .starts_with("serving no node: none is local; remote: "),
        "{}",
        sel.summary()
    );
    assert_eq!(
        sel.ready_lines(),
        "serving: \nremote: gone, gw, here, there\n"
    );
}

#[test]
fn loopback_unspecified_and_interface_addresses_are_local() {
    let local = local_addrs();
    assert!(is_local(IpAddr::from([127, 0, 0, 2]), &local));
    assert!(is_local(IpAddr::from([0, 0, 0, 0]), &local));
    assert!(!is_local(IpAddr::from([192, 0, 2, 10]), &local));
    for a in &local {
        assert!(is_local(*a, &local));
    }
}
