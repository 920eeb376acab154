//! Reference §11 examples and complete documents: parse, validate, round-trip, key order.

use serde_json::Value;

use super::reference_docs::*;
use super::*;

/// Recursively sorts object keys (what App Mesh's output order is).
fn sorted(value: &Value) -> Value {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            let mut out = serde_json::Map::new();
            for k in keys {
                out.insert(k.clone(), sorted(&map[k]));
            }
            Value::Object(out)
        }
        Value::Array(items) => Value::Array(items.iter().map(sorted).collect()),
        other => other.clone(),
    }
}

/// Panics unless every object's keys are in ascending (byte) order.
#[track_caller]
fn assert_keys_sorted(value: &Value, path: &str) {
    match value {
        Value::Object(map) => {
            let keys: Vec<&String> = map.keys().collect();
            let mut want = keys.clone();
            want.sort();
            assert_eq!(keys, want, "keys out of order at {path:?}");
            for (k, v) in map {
                assert_keys_sorted(v, &format!("{path}.{k}"));
            }
        }
        Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                assert_keys_sorted(v, &format!("{path}[{i}]"));
            }
        }
        _ => {}
    }
}

fn compact(text: &str) -> String {
    let value: Value = serde_json::from_str(text).expect("test JSON");
    value.to_string()
}

/// Parses, checks the kind, validates clean, and checks that the input form reproduces the
/// document with keys sorted and nothing lost.
#[track_caller]
fn round_trip_input(text: &str, kind: Kind) -> Resource {
    let r = one(text);
    let errors = validate_resource(Path::new("f.json"), &r);
    assert!(errors.is_empty(), "{}", lines(&errors));
    round_trip_parse(text, kind)
}

/// Parses, checks the kind, and checks that the input form reproduces the document with keys
/// sorted and nothing lost (validation left to the caller).
#[track_caller]
fn round_trip_parse(text: &str, kind: Kind) -> Resource {
    let r = one(text);
    assert_eq!(r.kind(), kind);
    let original: Value = serde_json::from_str(text).expect("test JSON");
    let out = r.to_input_json();
    assert_keys_sorted(&out, "");
    assert_eq!(out.to_string(), sorted(&original).to_string());
    r
}

#[test]
fn reference_examples_parse_validate_and_round_trip() {
    let vn = round_trip_input(VN_INPUT, Kind::VirtualNode);
    assert_eq!(
        (vn.mesh(), vn.name(), vn.parent()),
        ("demo", "color-blue", None)
    );
    round_trip_input(VG_INPUT, Kind::VirtualGateway);
    let gr = round_trip_input(GR_INPUT, Kind::GatewayRoute);
    assert_eq!(
        (gr.name(), gr.parent()),
        ("color-route", Some("ingress-gw"))
    );
    round_trip_input(VR_INPUT, Kind::VirtualRouter);
    let route = round_trip_input(ROUTE_INPUT, Kind::Route);
    assert_eq!(
        (route.name(), route.parent()),
        ("color-canary", Some("color-router"))
    );
    assert_eq!(route.label(), "route/color-router/color-canary");
    round_trip_input(VS_INPUT, Kind::VirtualService);
}

#[test]
fn describe_output_round_trips_byte_for_byte() {
    let r = one(VN_DESCRIBE);
    assert_eq!(r.kind(), Kind::VirtualNode);
    assert!(r.metadata().is_some() && r.status().is_some());
    assert_eq!(r.to_describe_json().to_string(), compact(VN_DESCRIBE));
}

#[test]
fn input_plus_metadata_gives_the_documented_describe_output() {
    let described = one(VN_DESCRIBE);
    let mut r = one(VN_INPUT);
    r.set_metadata(described.metadata().cloned());
    r.set_status(described.status().cloned());
    // Tags are input-only and not part of describe output.
    assert_eq!(r.to_describe_json().to_string(), compact(VN_DESCRIBE));
}

#[test]
fn describe_wrapper_of_every_kind_parses() {
    for text in [
        VN_INPUT,
        VG_INPUT,
        GR_INPUT,
        VR_INPUT,
        ROUTE_INPUT,
        VS_INPUT,
        MESH_FULL,
    ] {
        let r = one(text);
        let wrapped = r.to_describe_json().to_string();
        let again = one(&wrapped);
        assert_eq!(again.kind(), r.kind());
        assert_eq!(again.key(), r.key());
        assert_eq!(again.to_describe_json().to_string(), wrapped);
    }
}

#[test]
fn array_of_mixed_shapes_parses_in_order() {
    let doc = format!(
        "[{VR_INPUT}, {{\"virtualService\": {VS_INPUT}}}, {ROUTE_INPUT}, {{\"mesh\": {MESH_FULL}}}]"
    );
    let list = parse_document(Path::new("all.json"), &doc).expect("parses");
    let kinds: Vec<Kind> = list.iter().map(Resource::kind).collect();
    assert_eq!(
        kinds,
        [
            Kind::VirtualRouter,
            Kind::VirtualService,
            Kind::Route,
            Kind::Mesh
        ]
    );
}

#[test]
fn timestamps_keep_their_form() {
    let text = r#"{"mesh": {"meshName": "m", "metadata": {"createdAt": 1563809909.282,
        "lastUpdatedAt": 1563809909, "version": 2}, "spec": {}, "status": {"status": "DELETED"}}}"#;
    let r = one(text);
    assert_eq!(r.to_describe_json().to_string(), compact(text));
}

#[test]
fn mesh_without_spec_serializes_empty_spec() {
    let r = one(r#"{"meshName": "m"}"#);
    assert_eq!(r.kind(), Kind::Mesh);
    assert_eq!(
        r.to_input_json().to_string(),
        r#"{"meshName":"m","spec":{}}"#
    );
    assert_eq!(
        r.to_describe_json().to_string(),
        r#"{"mesh":{"meshName":"m","spec":{}}}"#
    );
}

#[test]
fn complete_documents_keep_every_field_in_alphabetical_order() {
    // These three set every TLS member; parsing keeps them all, and validation refuses only the
    // TLS meshd does not implement yet (tested in `not_in_force.rs`).
    for (text, kind, refused) in [
        (VN_FULL, Kind::VirtualNode, 2),
        (VN_CLOUD_MAP, Kind::VirtualNode, 1),
        (VG_FULL, Kind::VirtualGateway, 1),
    ] {
        round_trip_parse(text, kind);
        let errors = errors_of(text);
        assert_eq!(errors.len(), refused, "{errors:?}");
        assert!(
            errors.iter().all(|e| e.contains("is not supported yet")),
            "{errors:?}"
        );
    }
    for (text, kind) in [
        (GR_HTTP_FULL, Kind::GatewayRoute),
        (GR_GRPC_FULL, Kind::GatewayRoute),
        (ROUTE_HTTP2_FULL, Kind::Route),
        (ROUTE_GRPC_FULL, Kind::Route),
        (ROUTE_TCP_FULL, Kind::Route),
        (MESH_FULL, Kind::Mesh),
        (VS_NODE, Kind::VirtualService),
    ] {
        round_trip_input(text, kind);
    }
}

#[test]
fn defaults_apply_at_read_time() {
    let r = one(VN_FULL);
    let Resource::VirtualNode(vn) = r else {
        panic!("not a node")
    };
    let l = &vn.listeners()[0];
    let Some(VirtualNodeConnectionPool::Http(pool)) = l.connection_pool else {
        panic!("http pool expected")
    };
    assert_eq!(pool.max_pending_requests_or_default(), 2_147_483_647);
    let timeout = l.timeout.as_ref().expect("timeout");
    assert_eq!(
        timeout.per_request_or_default(),
        Some(std::time::Duration::from_millis(250))
    );
    assert_eq!(
        timeout.idle_or_default(),
        std::time::Duration::from_secs(300)
    );
    assert_eq!(
        vn.dns().map(DnsServiceDiscovery::response_type_or_default),
        Some(DnsResponseType::Loadbalancer)
    );
    assert_eq!(l.port_mapping.port_u16(), 8080);
    let mesh = one(r#"{"meshName": "m"}"#);
    let Resource::Mesh(mesh) = mesh else {
        panic!("not a mesh")
    };
    assert_eq!(mesh.egress_filter_or_default(), EgressFilterType::DropAll);
}

#[test]
fn kind_parses_what_users_type() {
    for (text, kind) in [
        ("virtualnode", Kind::VirtualNode),
        ("virtual-node", Kind::VirtualNode),
        ("VirtualNode", Kind::VirtualNode),
        ("vn", Kind::VirtualNode),
        ("virtualnodes", Kind::VirtualNode),
        ("virtual_nodes", Kind::VirtualNode),
        ("vg", Kind::VirtualGateway),
        ("virtual-gateway", Kind::VirtualGateway),
        ("gr", Kind::GatewayRoute),
        ("GatewayRoutes", Kind::GatewayRoute),
        ("vr", Kind::VirtualRouter),
        ("vs", Kind::VirtualService),
        ("virtualservices", Kind::VirtualService),
        ("rt", Kind::Route),
        ("route", Kind::Route),
        ("routes", Kind::Route),
        ("mesh", Kind::Mesh),
        ("meshes", Kind::Mesh),
    ] {
        assert_eq!(text.parse::<Kind>(), Ok(kind), "{text}");
    }
    for kind in Kind::ALL {
        assert_eq!(kind.as_str().parse::<Kind>(), Ok(kind));
        if kind != Kind::IstioVirtualService {
            // `vs` is App Mesh's; meshctl lists both kinds for it.
            assert_eq!(kind.short().parse::<Kind>(), Ok(kind));
        }
    }
    let err = "node".parse::<Kind>().unwrap_err().to_string();
    assert_eq!(
        err,
        "unknown kind \"node\", expected one of mesh, virtualnode (vn), virtualgateway (vg), \
         gatewayroute (gr), virtualrouter (vr), route (rt), virtualservice (vs), \
         destinationrule (dr), virtualservice.networking.istio.io, serviceentry (se), \
         workloadentry (we)"
    );
}

pub(super) const VN_FULL: &str = r#"{
  "meshName": "demo", "virtualNodeName": "full", "clientToken": "tok-1", "meshOwner": "111122223333",
  "tags": [{"key": "team", "value": "x"}, {"key": "bare"}],
  "spec": {
    "listeners": [{
      "portMapping": {"port": 8080, "protocol": "http"},
      "connectionPool": {"http": {"maxConnections": 3}},
      "healthCheck": {"protocol": "http", "path": "/ping", "port": 8080, "intervalMillis": 5000,
        "timeoutMillis": 2000, "healthyThreshold": 2, "unhealthyThreshold": 10},
      "outlierDetection": {"maxServerErrors": 1, "interval": {"unit": "ms", "value": 1},
        "baseEjectionDuration": {"unit": "s", "value": 1}, "maxEjectionPercent": 0},
      "timeout": {"http": {"perRequest": {"unit": "ms", "value": 250}}},
      "tls": {"mode": "STRICT",
        "certificate": {"file": {"certificateChain": "/c.pem", "privateKey": "/k.pem"}},
        "validation": {"trust": {"sds": {"secretName": "ca"}},
          "subjectAlternativeNames": {"match": {"exact": ["a.local"]}}}}
    }],
    "serviceDiscovery": {"dns": {"hostname": "full.local", "ipPreference": "IPv4_ONLY"}},
    "backends": [{"virtualService": {"virtualServiceName": "b.local",
      "clientPolicy": {"tls": {"enforce": false, "ports": [443],
        "certificate": {"sds": {"secretName": "me"}},
        "validation": {"trust": {"acm": {"certificateAuthorityArns": ["arn:1"]}}}}}}}],
    "backendDefaults": {"clientPolicy": {"tls": {"validation": {"trust": {"file": {"certificateChain": "/ca.pem"}},
      "subjectAlternativeNames": {"match": {"exact": ["x"]}}}}}},
    "logging": {"accessLog": {"file": {"path": "/dev/stdout", "format": {"text": "%RESPONSE_CODE%\n"}}}}
  }
}"#;

pub(super) const VN_CLOUD_MAP: &str = r#"{
  "meshName": "demo", "virtualNodeName": "cm",
  "spec": {
    "listeners": [
      {"portMapping": {"port": 9000, "protocol": "tcp"}, "connectionPool": {"tcp": {"maxConnections": 1}},
       "timeout": {"tcp": {"idle": {"unit": "s", "value": 0}}},
       "tls": {"mode": "PERMISSIVE", "certificate": {"acm": {"certificateArn": "arn:c"}}}},
      {"portMapping": {"port": 9001, "protocol": "grpc"}, "connectionPool": {"grpc": {"maxRequests": 7}},
       "timeout": {"grpc": {"idle": {"unit": "s", "value": 1}, "perRequest": {"unit": "s", "value": 2}}}},
      {"portMapping": {"port": 9002, "protocol": "http2"}, "connectionPool": {"http2": {"maxRequests": 7}},
       "timeout": {"http2": {"idle": {"unit": "s", "value": 1}}}}
    ],
    "serviceDiscovery": {"awsCloudMap": {"namespaceName": "ns", "serviceName": "svc",
      "attributes": [{"key": "k", "value": "v"}], "ipPreference": "IPv6_PREFERRED"}},
    "backends": [],
    "logging": {"accessLog": {"file": {"path": "/tmp/log", "format": {"json": [{"key": "a", "value": "b"}]}}}}
  }
}"#;

pub(super) const VG_FULL: &str = r#"{
  "meshName": "demo", "virtualGatewayName": "gw", "clientToken": "t", "tags": [],
  "spec": {
    "listeners": [{
      "portMapping": {"port": 443, "protocol": "http2"},
      "connectionPool": {"http2": {"maxRequests": 100}},
      "healthCheck": {"protocol": "http2", "path": "/h", "intervalMillis": 300000, "timeoutMillis": 60000,
        "healthyThreshold": 10, "unhealthyThreshold": 2},
      "tls": {"mode": "DISABLED", "certificate": {"sds": {"secretName": "s"}},
        "validation": {"trust": {"file": {"certificateChain": "/ca.pem"}}}}
    }],
    "backendDefaults": {"clientPolicy": {"tls": {"validation": {"trust": {"sds": {"secretName": "ca"}}}}}},
    "logging": {"accessLog": {"file": {"path": "/dev/stdout"}}}
  }
}"#;

pub(super) const GR_HTTP_FULL: &str = r#"{
  "meshName": "demo", "virtualGatewayName": "gw", "gatewayRouteName": "all", "meshOwner": "111122223333",
  "spec": {
    "priority": 0,
    "http2Route": {
      "match": {
        "path": {"regex": "/v[0-9]+/.*"},
        "method": "PATCH",
        "headers": [{"name": "x-a", "invert": true, "match": {"range": {"start": 1, "end": 5}}},
                    {"name": "x-b", "match": {"suffix": "z"}}, {"name": "x-c"}],
        "hostname": {"exact": "www.example.com"},
        "queryParameters": [{"name": "q", "match": {"exact": "1"}}, {"name": "flag"}],
        "port": 443
      },
      "action": {
        "target": {"virtualService": {"virtualServiceName": "color.local"}, "port": 8080},
        "rewrite": {"hostname": {"defaultTargetHostname": "DISABLED"}, "path": {"exact": "/new"}}
      }
    }
  }
}"#;

pub(super) const GR_GRPC_FULL: &str = r#"{
  "meshName": "demo", "virtualGatewayName": "gw", "gatewayRouteName": "grpc",
  "spec": {
    "grpcRoute": {
      "match": {"serviceName": "pkg.Svc", "hostname": {"suffix": ".example.com"}, "port": 443,
        "metadata": [{"name": "m", "match": {"prefix": "p"}}]},
      "action": {"target": {"virtualService": {"virtualServiceName": "color.local"}},
        "rewrite": {"hostname": {"defaultTargetHostname": "ENABLED"}}}
    }
  }
}"#;

pub(super) const ROUTE_HTTP2_FULL: &str = r#"{
  "meshName": "demo", "virtualRouterName": "r", "routeName": "h2", "clientToken": "abc",
  "spec": {
    "priority": 1000,
    "http2Route": {
      "match": {"path": {"exact": "/only"}, "method": "GET", "scheme": "https", "port": 8080,
        "headers": [{"name": "h", "match": {"regex": "^a+$"}}],
        "queryParameters": [{"name": "q"}]},
      "action": {"weightedTargets": [{"virtualNode": "a", "weight": 0, "port": 8080},
                                     {"virtualNode": "b", "weight": 100}]},
      "retryPolicy": {"maxRetries": 0, "perRetryTimeout": {"unit": "s", "value": 1},
        "httpRetryEvents": ["server-error", "gateway-error", "client-error", "stream-error"]},
      "timeout": {"idle": {"unit": "s", "value": 0}, "perRequest": {"unit": "ms", "value": 1}}
    }
  }
}"#;

pub(super) const ROUTE_GRPC_FULL: &str = r#"{
  "meshName": "demo", "virtualRouterName": "r", "routeName": "g",
  "spec": {
    "grpcRoute": {
      "match": {"serviceName": "pkg.Svc", "methodName": "Get", "port": 9000,
        "metadata": [{"name": "m", "invert": false, "match": {"exact": "v"}}]},
      "action": {"weightedTargets": [{"virtualNode": "a", "weight": 1}]},
      "retryPolicy": {"maxRetries": 2, "perRetryTimeout": {"unit": "ms", "value": 100},
        "grpcRetryEvents": ["cancelled", "deadline-exceeded", "internal", "resource-exhausted", "unavailable"],
        "httpRetryEvents": ["stream-error"], "tcpRetryEvents": ["connection-error"]},
      "timeout": {"perRequest": {"unit": "s", "value": 3}}
    }
  }
}"#;

pub(super) const ROUTE_TCP_FULL: &str = r#"{
  "meshName": "demo", "virtualRouterName": "r", "routeName": "t",
  "spec": {
    "tcpRoute": {
      "match": {"port": 9000},
      "action": {"weightedTargets": [{"virtualNode": "a", "weight": 1}]},
      "timeout": {"idle": {"unit": "s", "value": 60}}
    }
  }
}"#;

pub(super) const MESH_FULL: &str = r#"{
  "meshName": "demo", "clientToken": "x_y",
  "spec": {"egressFilter": {"type": "ALLOW_ALL"}, "serviceDiscovery": {"ipPreference": "IPv6_ONLY"}},
  "tags": [{"key": "k", "value": ""}]
}"#;

const VS_NODE: &str = r#"{
  "meshName": "demo", "virtualServiceName": "color.local",
  "spec": {"provider": {"virtualNode": {"virtualNodeName": "color-node"}}}
}"#;
