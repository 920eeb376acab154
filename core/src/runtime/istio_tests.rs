//! The Istio compile: which clusters, limits, routes and listeners a set of Istio objects gives.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use crate::model::{parse_document, MeshSet};
use crate::runtime::{compile, Cluster, Endpoints, Overrides, Role, RuntimeConfig};

const MESH: &str = r#"
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: { name: pyserver }
spec:
  hosts: [pyserver.demo.svc]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{ number: 8080, name: http, protocol: HTTP }]
  workloadSelector: { labels: { app: pyserver } }
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: { name: server-1, labels: { version: v1 } }
spec: { address: 198.18.0.11, labels: { app: pyserver } }
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: { name: server-2 }
spec: { address: 198.18.0.12, labels: { app: pyserver, version: v2 }, ports: { http: 9090 } }
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: { name: client }
spec: { address: 198.18.0.20, labels: { app: client } }
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: { name: pyserver }
spec:
  host: pyserver.demo.svc
  trafficPolicy:
    connectionPool:
      tcp: { maxConnections: 5 }
      http: { http1MaxPendingRequests: 1, maxRequestsPerConnection: 1 }
    outlierDetection: { consecutive5xxErrors: 2, interval: 1s, baseEjectionTime: 3s, maxEjectionPercent: 100 }
  subsets:
  - { name: v1, labels: { version: v1 } }
  - name: v2
    labels: { version: v2 }
    trafficPolicy:
      connectionPool: { tcp: { maxConnections: 2 } }
  - { name: v3, labels: { version: v3 } }
"#;

const SPLIT: &str = r#"
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: { name: pyserver }
spec:
  hosts: [pyserver.demo.svc]
  http:
  - match: [{ uri: { prefix: /admin } }, { headers: { x-canary: { exact: "1" } } }]
    route: [{ destination: { host: pyserver.demo.svc, subset: v2 } }]
  - route:
    - { destination: { host: pyserver.demo.svc, subset: v1 }, weight: 90 }
    - { destination: { host: pyserver.demo.svc, subset: v2 }, weight: 10 }
    timeout: 2s
    retries: { attempts: 3, perTryTimeout: 500ms, retryOn: "gateway-error,connect-failure" }
"#;

fn config(docs: &[&str], nodes: &[&str]) -> RuntimeConfig {
    let mut entries = Vec::new();
    for (i, d) in docs.iter().enumerate() {
        let file = Path::new("/etc/meshd").join(format!("{i}.yaml"));
        for r in parse_document(&file, d).expect("parses") {
            entries.push((file.clone(), r));
        }
    }
    let set = MeshSet::from_resources(entries).expect("set");
    let o = Overrides {
        nodes: Some(nodes.iter().map(|s| s.to_string()).collect::<BTreeSet<_>>()),
        ..Overrides::default()
    };
    compile(&set, &o)
}

fn cluster<'a>(c: &'a RuntimeConfig, name: &str) -> &'a Cluster {
    c.clusters
        .iter()
        .find(|x| x.name == name)
        .unwrap_or_else(|| {
            let names: Vec<&str> = c.clusters.iter().map(|x| x.name.as_str()).collect();
            panic!("no cluster {name} in {names:?}")
        })
}

#[test]
fn a_client_workload_gets_outbound_clusters_with_the_rules_limits_per_subset() {
    let c = config(&[MESH], &["client"]);
    let all = cluster(&c, "outbound|8080||pyserver.demo.svc");
    assert_eq!(all.thresholds.max_connections, 5);
    assert_eq!(all.thresholds.max_pending_requests, 1);
    assert_eq!(all.thresholds.max_requests, 4_294_967_295);
    assert_eq!(all.settings.max_requests_per_connection, 1);
    assert_eq!(all.settings.connect_timeout, Duration::from_secs(10));
    assert_eq!(
        all.endpoints,
        Endpoints::List(vec![
            ("198.18.0.11".into(), 8080),
            ("198.18.0.12".into(), 9090)
        ])
    );
    let od = all.outlier_detection.expect("outlier");
    assert_eq!(od.consecutive_5xx, 2);
    assert_eq!(od.base_ejection_time, Duration::from_secs(3));
    assert_eq!(od.max_ejection_percent, 100);
    // The subset's own connection pool replaces the rule's block.
    let v2 = cluster(&c, "outbound|8080|v2|pyserver.demo.svc");
    assert_eq!(v2.thresholds.max_connections, 2);
    assert_eq!(v2.thresholds.max_pending_requests, 4_294_967_295);
    assert_eq!(
        v2.endpoints,
        Endpoints::List(vec![("198.18.0.12".into(), 9090)])
    );
    // The egress listener routes the host, with and without port, by default to all endpoints
    // with Istio's default retries.
    let egress = c
        .listeners
        .iter()
        .find(|l| l.role == Role::Egress)
        .expect("egress");
    let hosts = egress.routing.virtual_hosts();
    assert!(hosts
        .iter()
        .any(|h| h.domains == ["pyserver.demo.svc:8080"]));
    assert!(hosts.iter().any(|h| h.domains == ["pyserver.demo.svc"]));
    let route = &hosts[0].routes[0];
    assert_eq!(
        route.retry,
        Some(crate::runtime::istio_default_retry_policy())
    );
    assert_eq!(route.targets[0].cluster, "outbound|8080||pyserver.demo.svc");
    // The client serves no service: no inbound listener.
    assert!(c.listeners.iter().all(|l| l.role != Role::Ingress));
}

#[test]
fn a_server_workload_gets_an_inbound_listener_and_cluster_with_the_rules_pool_only() {
    let c = config(&[MESH], &["server-2"]);
    let inbound = cluster(&c, "inbound|9090||pyserver.demo.svc");
    assert_eq!(inbound.thresholds.max_connections, 5);
    assert_eq!(inbound.thresholds.max_pending_requests, 1);
    assert!(inbound.outlier_detection.is_none());
    assert_eq!(
        inbound.endpoints,
        Endpoints::Static("127.0.0.1:9090".parse().expect("addr"))
    );
    let l = c
        .listeners
        .iter()
        .find(|l| l.role == Role::Ingress)
        .expect("inbound listener");
    assert_eq!(
        l.bind,
        crate::runtime::Bind::Addr("198.18.0.12:9090".parse().expect("addr"))
    );
    assert_eq!(l.request_timeout, Duration::ZERO);
}

#[test]
fn a_virtual_service_splits_by_weight_matches_and_sets_retries_and_timeout() {
    let c = config(&[MESH, SPLIT], &["client"]);
    let egress = c
        .listeners
        .iter()
        .find(|l| l.role == Role::Egress)
        .expect("egress");
    let vh = &egress.routing.virtual_hosts()[0];
    assert_eq!(vh.routes.len(), 3, "two match entries and the split");
    assert_eq!(
        vh.routes[0].targets[0].cluster,
        "outbound|8080|v2|pyserver.demo.svc"
    );
    let split = &vh.routes[2];
    let targets: Vec<(&str, u32)> = split
        .targets
        .iter()
        .map(|t| (t.cluster.as_str(), t.weight))
        .collect();
    assert_eq!(
        targets,
        [
            ("outbound|8080|v1|pyserver.demo.svc", 90),
            ("outbound|8080|v2|pyserver.demo.svc", 10)
        ]
    );
    assert_eq!(split.timeout, Some(Duration::from_secs(2)));
    let retry = split.retry.expect("retries");
    assert_eq!(retry.num_retries, 3);
    assert!(retry.retry_on.gateway_error && retry.retry_on.connect_failure);
    assert!(!retry.retry_on.five_xx);
    assert_eq!(retry.per_try_timeout, Some(Duration::from_millis(500)));
    // The match-only route has no timeout (Istio's default) and Istio's default retries.
    assert_eq!(vh.routes[0].timeout, Some(Duration::ZERO));
}

#[test]
fn a_subset_no_endpoint_matches_is_a_cluster_without_hosts() {
    let c = config(
        &[
            MESH,
            r#"
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: { name: v3 }
spec:
  hosts: [pyserver.demo.svc]
  http: [{ route: [{ destination: { host: pyserver.demo.svc, subset: v3 } }] }]
"#,
        ],
        &["client"],
    );
    assert_eq!(
        cluster(&c, "outbound|8080|v3|pyserver.demo.svc").endpoints,
        Endpoints::List(vec![])
    );
}

#[test]
fn faults_and_status_code_retries_compile_as_envoy_takes_them() {
    let vs = r#"
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: { name: pyserver }
spec:
  hosts: [pyserver.demo.svc]
  http:
  - fault:
      delay: { fixedDelay: 1s, percentage: { value: 10 } }
      abort: { httpStatus: 418, percentage: { value: 50.5 } }
    retries: { attempts: 2, retryOn: "503,connect-failure" }
    route: [{ destination: { host: pyserver.demo.svc, subset: v1 } }]
"#;
    let c = config(&[MESH, vs], &["client"]);
    let egress = c
        .listeners
        .iter()
        .find(|l| l.role == Role::Egress)
        .expect("egress");
    let route = &egress.routing.virtual_hosts()[0].routes[0];
    let fault = route.fault.expect("fault");
    assert_eq!(fault.delay, Some((Duration::from_secs(1), 10.0)));
    assert_eq!(fault.abort, Some((418, 50.5)));
    let retry = route.retry.expect("retry");
    assert!(retry.retry_on.connect_failure);
    assert!(!retry.retry_on.five_xx);
    assert_eq!(
        retry.retry_on,
        crate::retry::RetryOn::parse_envoy("503,connect-failure").expect("parses")
    );
}
