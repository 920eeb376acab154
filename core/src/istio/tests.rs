//! Reading Istio documents: YAML and JSON, several per file, errors with paths and positions.

use std::path::Path;

use crate::model::{parse_document, Kind, Resource};

use super::IstioSpec;

const DR_AND_VS: &str = r#"
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: { name: color }
spec:
  host: color.demo.svc.cluster.local
  trafficPolicy:
    loadBalancer: { simple: LEAST_REQUEST }
    connectionPool:
      tcp: { maxConnections: 100, connectTimeout: 2s }
      http: { http1MaxPendingRequests: 50, http2MaxRequests: 1000, maxRequestsPerConnection: 10, maxRetries: 3, idleTimeout: 300s }
    outlierDetection:
      consecutive5xxErrors: 5
      interval: 10s
      baseEjectionTime: 30s
      maxEjectionPercent: 50
  subsets:
  - { name: blue, labels: { version: blue } }
  - { name: green, labels: { version: green } }
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: { name: color }
spec:
  hosts: [color.demo.svc.cluster.local]
  http:
  - route:
    - { destination: { host: color.demo.svc.cluster.local, subset: blue }, weight: 90 }
    - { destination: { host: color.demo.svc.cluster.local, subset: green }, weight: 10 }
    timeout: 2s
    retries: { attempts: 3, perTryTimeout: 500ms, retryOn: "5xx,gateway-error,reset,connect-failure" }
    fault:
      delay: { fixedDelay: 1s, percentage: { value: 0.1 } }
"#;

fn errors(name: &str, text: &str) -> Vec<String> {
    match parse_document(Path::new(name), text) {
        Ok(r) => panic!("parsed: {r:?}"),
        Err(e) => e.iter().map(ToString::to_string).collect(),
    }
}

#[test]
fn the_reference_example_reads_as_two_resources_and_round_trips() {
    let list = parse_document(Path::new("color.yaml"), DR_AND_VS).expect("parses");
    assert_eq!(list.len(), 2);
    assert_eq!(list[0].kind(), Kind::DestinationRule);
    assert_eq!(list[0].label(), "destinationrule/color");
    assert_eq!(list[0].mesh(), "default");
    assert_eq!(list[1].label(), "virtualservice.networking.istio.io/color");
    let Resource::Istio(dr) = &list[0] else {
        panic!("not istio")
    };
    let IstioSpec::DestinationRule(spec) = &dr.spec else {
        panic!("not a rule")
    };
    let tcp = spec
        .traffic_policy
        .as_ref()
        .and_then(|t| t.connection_pool.as_ref())
        .and_then(|c| c.tcp.as_ref())
        .expect("tcp");
    assert_eq!(tcp.max_connections, Some(100));
    assert_eq!(
        tcp.connect_timeout.as_ref().map(|d| d.get()),
        Some(std::time::Duration::from_secs(2))
    );
    // JSON out, JSON back in: the same resources.
    let json = serde_json::Value::Array(list.iter().map(Resource::to_json).collect());
    let again = parse_document(Path::new("color.json"), &json.to_string()).expect("json");
    assert_eq!(again, list);
}

#[test]
fn unknown_fields_bad_durations_and_kinds_name_the_path() {
    let e = errors(
        "dr.yaml",
        "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: r}\nspec:\n  host: h\n  trafficPolicy:\n    connectionPool:\n      tcp: {maxConnectons: 5}\n",
    );
    assert!(
        e[0].starts_with("dr.yaml: destinationrule/r: spec.trafficPolicy.connectionPool.tcp.maxConnectons: unknown field \"maxConnectons\""),
        "{e:?}"
    );
    let e = errors(
        "dr.yaml",
        "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: r}\nspec:\n  host: h\n  trafficPolicy:\n    outlierDetection: {interval: 5x}\n",
    );
    assert!(
        e[0].contains("spec.trafficPolicy.outlierDetection.interval: invalid duration \"5x\""),
        "{e:?}"
    );
    let e = errors(
        "gw.yaml",
        "apiVersion: networking.istio.io/v1\nkind: Gateway\nmetadata: {name: g}\n",
    );
    assert!(
        e[0].contains("kind: kind \"Gateway\" is not supported"),
        "{e:?}"
    );
    let e = errors(
        "dr.json",
        r#"{"apiVersion": "networking.istio.io/v2", "kind": "DestinationRule", "metadata": {"name": "r"}, "spec": {"host": "h"}}"#,
    );
    assert!(
        e[0].contains("apiVersion: must be networking.istio.io/v1"),
        "{e:?}"
    );
}

#[test]
fn yaml_tabs_and_duplicate_keys_give_line_and_column() {
    let e = errors(
        "tab.yaml",
        "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata:\n\tname: r\n",
    );
    assert!(e[0].contains("line 4 column"), "{e:?}");
    let e = errors(
        "dup.yaml",
        "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: r}\nspec:\n  host: a\n  host: b\n",
    );
    assert!(e[0].contains("duplicate"), "{e:?}");
    assert!(
        e[0].contains("duplicate entry with key \"host\" at line 5"),
        "{e:?}"
    );
}
