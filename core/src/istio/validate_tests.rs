//! Istio validation: each rule refuses bad input with file, resource, path and reason; the
//! settings meshd does not serve are refused as "not supported yet"; whole-set rules and
//! warnings; accepted settings not in force.

use std::path::{Path, PathBuf};

use crate::model::{not_in_force, parse_document, MeshSet, Resource};

fn resources(file: &str, text: &str) -> Vec<(PathBuf, Resource)> {
    parse_document(Path::new(file), text)
        .unwrap_or_else(|e| panic!("parse: {e:?}"))
        .into_iter()
        .map(|r| (PathBuf::from(file), r))
        .collect()
}

/// Every error of `text` as a line (per object, then whole set).
fn errors(text: &str) -> Vec<String> {
    match MeshSet::from_resources_validated(resources("t.yaml", text)) {
        Ok(_) => Vec::new(),
        Err(e) => e.iter().map(ToString::to_string).collect(),
    }
}

/// Asserts that `text` is refused with one error at `path` containing `reason`.
#[track_caller]
fn refused(text: &str, path: &str, reason: &str) {
    let errors = errors(text);
    assert!(
        errors.iter().any(|e| e.starts_with("t.yaml: ")
            && e.contains(&format!(": {path}: "))
            && e.contains(reason)),
        "expected an error at {path} saying {reason:?}, got {errors:#?}"
    );
}

const SE: &str = "apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: reviews}
spec:
  hosts: [reviews.bookinfo]
  ports: [{number: 9080, name: http, protocol: HTTP}]
  resolution: STATIC
  endpoints:
  - {address: 10.0.0.1, labels: {version: v1}}
  - {address: 10.0.0.2, labels: {version: v2}}
---
";

fn dr(spec: &str) -> String {
    format!(
        "{SE}apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {{name: reviews}}\n\
         spec:\n  host: reviews.bookinfo\n{spec}"
    )
}

fn vs(http: &str) -> String {
    format!(
        "{}---\napiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {{name: reviews}}\n\
         spec:\n  hosts: [reviews.bookinfo]\n  http:\n{http}",
        dr("  subsets: [{name: v1, labels: {version: v1}}, {name: v2, labels: {version: v2}}]\n")
    )
}

fn se(spec: &str) -> String {
    format!(
        "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {{name: ext}}\nspec:\n{spec}"
    )
}

const ROUTE: &str = "  - route: [{destination: {host: reviews.bookinfo, subset: v1}}]\n";

#[test]
fn a_valid_set_has_no_errors_and_no_warnings() {
    assert_eq!(errors(&vs(ROUTE)), Vec::<String>::new());
    let set = MeshSet::from_resources_validated(resources("t.yaml", &vs(ROUTE))).expect("valid");
    assert!(set.warnings().is_empty(), "{:?}", set.warnings());
}

#[test]
fn names_are_dns_1123() {
    refused(
        &se("  hosts: [a.b]\n  ports: [{number: 80, name: http}]\n  resolution: DNS\n")
            .replace("name: ext", "name: Ext_1"),
        "metadata.name",
        "DNS-1123 subdomain",
    );
    refused(
        &se("  hosts: [a.b]\n  ports: [{number: 80, name: http}]\n  resolution: DNS\n")
            .replace("{name: ext}", "{name: ext, namespace: a.b}"),
        "metadata.namespace",
        "DNS-1123 label",
    );
}

#[test]
fn required_fields_are_named() {
    refused(
        &dr("").replace("  host: reviews.bookinfo\n", "  host: \"\"\n"),
        "spec.host",
        "missing",
    );
    refused(
        &se("  ports: [{number: 80, name: http}]\n  resolution: DNS\n"),
        "spec.hosts",
        "at least one host",
    );
    refused(
        &se("  hosts: [a.b]\n  resolution: DNS\n"),
        "spec.ports",
        "at least one port",
    );
    refused(
        "apiVersion: networking.istio.io/v1\nkind: WorkloadEntry\nmetadata: {name: w}\nspec: {labels: {app: x}}\n",
        "spec.address",
        "missing",
    );
    refused(
        "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: v}\nspec: {http: []}\n",
        "spec.hosts",
        "at least one host",
    );
    refused(
        &vs("  - timeout: 1s\n"),
        "spec.http[0].route",
        "at least one route destination",
    );
}

#[test]
fn negative_limits_and_counts_are_refused() {
    for (field, block) in [
        ("tcp.maxConnections", "tcp: {maxConnections: -1}"),
        (
            "http.http1MaxPendingRequests",
            "http: {http1MaxPendingRequests: -1}",
        ),
        ("http.http2MaxRequests", "http: {http2MaxRequests: -5}"),
        (
            "http.maxRequestsPerConnection",
            "http: {maxRequestsPerConnection: -1}",
        ),
        ("http.maxRetries", "http: {maxRetries: -3}"),
    ] {
        refused(
            &dr(&format!(
                "  trafficPolicy:\n    connectionPool: {{{block}}}\n"
            )),
            &format!("spec.trafficPolicy.connectionPool.{field}"),
            "must not be negative",
        );
    }
    refused(
        &dr("  trafficPolicy:\n    connectionPool: {tcp: {maxConnections: 4294967296}}\n"),
        "spec.trafficPolicy.connectionPool.tcp.maxConnections",
        "at most 4294967295",
    );
    refused(
        &dr("  trafficPolicy:\n    outlierDetection: {consecutive5xxErrors: -1, maxEjectionPercent: 150}\n"),
        "spec.trafficPolicy.outlierDetection.consecutive5xxErrors",
        "must not be negative",
    );
    refused(
        &dr("  trafficPolicy:\n    outlierDetection: {maxEjectionPercent: 150}\n"),
        "spec.trafficPolicy.outlierDetection.maxEjectionPercent",
        "between 0 and 100, got 150",
    );
    refused(
        &vs("  - route: [{destination: {host: reviews.bookinfo}}]\n    retries: {attempts: -1}\n"),
        "spec.http[0].retries.attempts",
        "must not be negative",
    );
    refused(
        &dr("  trafficPolicy:\n    connectionPool: {tcp: {connectTimeout: 0s}}\n"),
        "spec.trafficPolicy.connectionPool.tcp.connectTimeout",
        "at least 1ms",
    ); // An idle timeout of 0s turns it off, as Istio documents.
    assert_eq!(
        errors(&dr(
            "  trafficPolicy:\n    connectionPool: {tcp: {idleTimeout: 0s}, http: {idleTimeout: 0s}}\n"
        )),
        Vec::<String>::new()
    );
}

#[test]
fn routes_weights_faults_and_retries_are_checked() {
    refused(
        &vs("  - route: [{destination: {host: reviews.bookinfo, subset: v1}, weight: -1}, {destination: {host: reviews.bookinfo, subset: v2}, weight: 1}]\n"),
        "spec.http[0].route[0].weight",
        "must not be negative",
    );
    refused(
        &vs("  - route: [{destination: {host: reviews.bookinfo, subset: v1}}, {destination: {host: reviews.bookinfo, subset: v2}}]\n"),
        "spec.http[0].route",
        "at least one weight must be above 0",
    );
    refused(
        &vs("  - route: [{destination: {host: reviews.bookinfo}}]\n    fault: {abort: {httpStatus: 700, percentage: {value: 10}}}\n"),
        "spec.http[0].fault.abort.httpStatus",
        "between 200 and 599, got 700",
    );
    refused(
        &vs("  - route: [{destination: {host: reviews.bookinfo}}]\n    fault: {delay: {fixedDelay: 1s, percentage: {value: 120}}}\n"),
        "spec.http[0].fault.delay.percentage.value",
        "between 0 and 100",
    );
    refused(
        &vs("  - route: [{destination: {host: reviews.bookinfo, port: {number: 0}}}]\n"),
        "spec.http[0].route[0].destination.port.number",
        "between 1 and 65535",
    );
    refused(
        &vs("  - route: [{destination: {host: reviews.bookinfo}}]\n    retries: {attempts: 2, retryOn: \"5xx,sometimes\"}\n"),
        "spec.http[0].retries.retryOn",
        "unknown retry condition \"sometimes\"",
    );
    refused(
        &vs("  - match: [{uri: {regex: \"(\"}}]\n    route: [{destination: {host: reviews.bookinfo}}]\n"),
        "spec.http[0].match[0].uri.regex",
        "invalid regular expression",
    );
}

#[test]
fn subsets_and_port_level_settings_are_checked() {
    refused(
        &dr("  subsets: [{name: V1}]\n"),
        "spec.subsets[0].name",
        "DNS-1123 label",
    );
    refused(
        &dr("  subsets: [{name: v1}, {name: v1}]\n"),
        "spec.subsets[1].name",
        "defined twice",
    );
    refused(
        &dr("  trafficPolicy:\n    portLevelSettings: [{connectionPool: {tcp: {maxConnections: 1}}}]\n"),
        "spec.trafficPolicy.portLevelSettings[0].port",
        "needs port.number",
    );
    refused(
        &dr("  trafficPolicy:\n    portLevelSettings: [{port: {number: 70000}}]\n"),
        "spec.trafficPolicy.portLevelSettings[0].port.number",
        "between 1 and 65535",
    );
}

#[test]
fn service_entry_ports_resolution_and_endpoints_follow_istio() {
    let ports = "  ports: [{number: 80, name: http}]\n";
    refused(
        &se("  hosts: [a.b]\n  ports: [{number: 80, name: http}, {number: 81, name: http}]\n  resolution: DNS\n"),
        "spec.ports[1].name",
        "already defined",
    );
    refused(
        &se("  hosts: [a.b]\n  ports: [{number: 80, name: a}, {number: 80, name: b}]\n  resolution: DNS\n"),
        "spec.ports[1].number",
        "port 80 is already defined",
    );
    refused(
        &se("  hosts: [a.b]\n  ports: [{number: 0, name: a}]\n  resolution: DNS\n"),
        "spec.ports[0].number",
        "between 1 and 65535",
    );
    refused(
        &se("  hosts: [a.b]\n  ports: [{number: 80, name: a, targetPort: 70000}]\n  resolution: DNS\n"),
        "spec.ports[0].targetPort",
        "between 1 and 65535",
    );
    refused(
        &se(&format!("  hosts: [a.b]\n{ports}")),
        "spec.resolution",
        "Istio's default when unset",
    );
    refused(
        &se(&format!("  hosts: [a.b]\n{ports}  resolution: STATIC\n  endpoints: [{{address: db.example.com}}]\n")),
        "spec.endpoints[0].address",
        "STATIC needs IP addresses",
    );
    refused(
        &se(&format!("  hosts: [a.b]\n{ports}  resolution: DNS_ROUND_ROBIN\n  endpoints: [{{address: x.y}}, {{address: z.y}}]\n")),
        "spec.endpoints",
        "at most one endpoint",
    );
    refused(
        &se(&format!("  hosts: [a.b]\n{ports}  resolution: STATIC\n  endpoints: [{{address: 10.0.0.1, ports: {{grpc: 9000}}}}]\n")),
        "spec.endpoints[0].ports.grpc",
        "not defined by the ServiceEntry, which has http",
    );
    refused(
        &se(&format!("  hosts: [a.b]\n{ports}  resolution: STATIC\n  endpoints: [{{address: 10.0.0.1}}]\n  workloadSelector: {{labels: {{app: a}}}}\n")),
        "spec.workloadSelector",
        "only one of endpoints and workloadSelector",
    );
    refused(
        &se(&format!("  hosts: [\"*.b\"]\n{ports}  resolution: DNS\n")),
        "spec.hosts[0]",
        "must not be a wildcard",
    );
}

#[test]
fn what_meshd_does_not_do_is_refused_as_not_supported_yet() {
    let cases: Vec<(String, &str, &str)> = vec![
        (dr("  trafficPolicy: {tls: {mode: ISTIO_MUTUAL}}\n"), "spec.trafficPolicy.tls.mode", "TLS mode ISTIO_MUTUAL is not supported yet"),
        (dr("  trafficPolicy: {loadBalancer: {consistentHash: {useSourceIp: true}}}\n"), "spec.trafficPolicy.loadBalancer.consistentHash", "not supported yet"),
        (dr("  trafficPolicy: {loadBalancer: {simple: PASSTHROUGH}}\n"), "spec.trafficPolicy.loadBalancer.simple", "not supported yet"),
        (se("  hosts: [a.b]\n  ports: [{number: 80, name: a, protocol: TCP}]\n  resolution: DNS\n"), "spec.ports[0].protocol", "protocol TCP is not supported yet"),
        (se("  hosts: [\"*.b\"]\n  ports: [{number: 80, name: a}]\n  resolution: DYNAMIC_DNS\n"), "spec.resolution", "not supported yet"),
        (vs("  - redirect: {uri: /x}\n    route: [{destination: {host: reviews.bookinfo}}]\n"), "spec.http[0].redirect", "not supported yet"),
        (vs("  - match: [{scheme: {exact: https}}]\n    route: [{destination: {host: reviews.bookinfo}}]\n"), "spec.http[0].match[0].scheme", "not supported yet"),
        (vs("  - match: [{method: {prefix: G}}]\n    route: [{destination: {host: reviews.bookinfo}}]\n"), "spec.http[0].match[0].method", "only method.exact"),
        (vs("  - route: [{destination: {host: reviews.bookinfo}, headers: {request: {set: {a: b}}}}]\n"), "spec.http[0].route[0].headers", "not supported yet"),
        (vs("  - route: [{destination: {host: reviews.bookinfo}}]\n    fault: {delay: {exponentialDelay: 1s}}\n"), "spec.http[0].fault.delay.exponentialDelay", "not supported yet"),
        (vs("  - route: [{destination: {host: reviews.bookinfo}}]\n    fault: {abort: {grpcStatus: UNAVAILABLE}}\n"), "spec.http[0].fault.abort.grpcStatus", "not supported yet"),
        (vs(ROUTE).replace("  http:\n", "  gateways: [ingress]\n  http:\n"), "spec.gateways", "other than [mesh]"),
        (vs(ROUTE).replace("  http:\n", "  tcp: [{route: []}]\n  http:\n"), "spec.tcp", "not supported yet"),
    ];
    for (text, path, reason) in cases {
        refused(&text, path, reason);
    }
}

#[test]
fn an_unknown_subset_names_the_host_and_the_subsets_that_exist() {
    refused(
        &vs("  - route: [{destination: {host: reviews.bookinfo, subset: v3}}]\n"),
        "spec.http[0].route[0].destination.subset",
        "subset \"v3\" of host \"reviews.bookinfo\" is not defined by any DestinationRule: \
         destinationrule/reviews (t.yaml) defines v1, v2",
    );
}

#[test]
fn two_rules_for_one_host_and_a_host_in_both_app_mesh_and_istio_are_errors_naming_both_files() {
    let mut all = resources("a.yaml", &dr(""));
    all.extend(resources(
        "b.yaml",
        "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: reviews-2}\nspec: {host: reviews.bookinfo}\n",
    ));
    all.extend(resources(
        "mesh.json",
        r#"[{"meshName": "m", "spec": {}},
            {"meshName": "m", "virtualNodeName": "n", "spec": {}},
            {"meshName": "m", "virtualServiceName": "reviews.bookinfo",
             "spec": {"provider": {"virtualNode": {"virtualNodeName": "n"}}}}]"#,
    ));
    let errors: Vec<String> = MeshSet::from_resources_validated(all)
        .expect_err("refused")
        .iter()
        .map(ToString::to_string)
        .collect();
    assert!(
        errors.iter().any(
            |e| e.starts_with("b.yaml: destinationrule/reviews-2: spec.host: ")
                && e.contains("already has a DestinationRule, default/reviews in a.yaml")
        ),
        "{errors:#?}"
    );
    assert!(
        errors.iter().any(
            |e| e.starts_with("a.yaml: destinationrule/reviews: spec.host: ")
                && e.contains("configured by both Istio")
                && e.contains("mesh.json")
        ),
        "{errors:#?}"
    );
}

#[test]
fn a_rule_for_a_host_nothing_provides_is_a_warning_not_an_error() {
    let text =
        "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: lone}\n\
                spec: {host: nowhere.example}\n";
    let set = MeshSet::from_resources_validated(resources("w.yaml", text)).expect("valid");
    let warnings: Vec<String> = set.warnings().iter().map(ToString::to_string).collect();
    assert_eq!(
        warnings,
        ["w.yaml: destinationrule/lone: spec.host: no ServiceEntry or virtual node provides host \
          \"nowhere.example\"; this DestinationRule has no effect until one does"]
    );
}

#[test]
fn accepted_settings_meshd_does_not_apply_are_listed_as_not_in_force() {
    let text = format!(
        "{}---\n{}",
        dr("  exportTo: [\".\"]\n  trafficPolicy:\n    connectionPool: {tcp: {tcpKeepalive: {time: 1s}}, http: {h2UpgradePolicy: UPGRADE}}\n    loadBalancer: {simple: ROUND_ROBIN, localityLbSetting: {enabled: true}}\n    outlierDetection: {minHealthPercent: 50}\n"),
        "apiVersion: networking.istio.io/v1\nkind: WorkloadEntry\nmetadata: {name: w}\nspec: {address: 10.0.0.9, locality: a/b, serviceAccount: sa}\n"
    );
    let set = MeshSet::from_resources_validated(resources("n.yaml", &text)).expect("valid");
    let items: Vec<String> = not_in_force(&set).iter().map(|n| n.path.clone()).collect();
    for path in [
        "spec.exportTo",
        "spec.trafficPolicy.connectionPool.tcp.tcpKeepalive",
        "spec.trafficPolicy.connectionPool.http.h2UpgradePolicy",
        "spec.trafficPolicy.loadBalancer.localityLbSetting",
        "spec.trafficPolicy.outlierDetection.minHealthPercent",
        "spec.locality",
        "spec.serviceAccount",
    ] {
        assert!(
            items.contains(&path.to_string()),
            "{path} missing from {items:?}"
        );
    }
}
