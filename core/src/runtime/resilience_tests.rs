//! Compiling retry policies, outlier detection and health checks.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::health::{HealthCheckConfig, ProbeKind};
use crate::model::{parse_document, MeshSet};
use crate::outlier::{HealthCheckUneject, OutlierConfig};
use crate::retry::{Outcome, RetryBudget, RetryOn, RetryPolicy};
use crate::runtime::{compile, Cluster, Overrides, Role, RuntimeConfig};

/// A mesh: node `web` calls service `svc` (router `r` with `routes`) and `direct` (provided by
/// node `green`); node `blue` has the listener members `blue_listener`; `green` has none.
fn mesh(blue_listener: &str, routes: &[&str]) -> MeshSet {
    let node = |name: &str, extra: &str, backends: &str| {
        format!(
            r#"{{"meshName": "m", "virtualNodeName": "{name}", "spec": {{
                "listeners": [{{"portMapping": {{"port": 8080, "protocol": "http"}}{extra}}}],
                "serviceDiscovery": {{"dns": {{"hostname": "{name}.local"}}}}{backends}}}}}"#
        )
    };
    let mut docs = vec![
        r#"{"meshName": "m", "spec": {}}"#.to_string(),
        node("blue", blue_listener, ""),
        node("green", "", ""),
        node(
            "web",
            "",
            r#", "backends": [{"virtualService": {"virtualServiceName": "svc"}},
                {"virtualService": {"virtualServiceName": "direct"}}]"#,
        ),
        r#"{"meshName": "m", "virtualRouterName": "r", "spec": {"listeners":
            [{"portMapping": {"port": 8080, "protocol": "http"}}]}}"#
            .to_string(),
        r#"{"meshName": "m", "virtualServiceName": "svc", "spec": {"provider":
            {"virtualRouter": {"virtualRouterName": "r"}}}}"#
            .to_string(),
        r#"{"meshName": "m", "virtualServiceName": "direct", "spec": {"provider":
            {"virtualNode": {"virtualNodeName": "green"}}}}"#
            .to_string(),
    ];
    for (i, r) in routes.iter().enumerate() {
        docs.push(format!(
            r#"{{"meshName": "m", "virtualRouterName": "r", "routeName": "r{i}", "spec": {{
                "priority": {i}, "httpRoute": {{"match": {{"prefix": "/{i}"}},
                "action": {{"weightedTargets": [{{"virtualNode": "blue", "weight": 1}}]}}{r}}}}}}}"#
        ));
    }
    let resources: Vec<(PathBuf, crate::model::Resource)> = docs
        .iter()
        .enumerate()
        .flat_map(|(i, d)| {
            let file = PathBuf::from(format!("{i}.json"));
            parse_document(&file, d)
                .unwrap_or_else(|e| panic!("{d}: {e:?}"))
                .into_iter()
                .map(move |r| (file.clone(), r))
        })
        .collect();
    MeshSet::from_resources_validated(resources).unwrap_or_else(|e| panic!("invalid: {e:?}"))
}

fn cluster<'a>(rc: &'a RuntimeConfig, name: &str) -> &'a Cluster {
    rc.clusters
        .iter()
        .find(|c| c.name == name)
        .unwrap_or_else(|| panic!("no cluster {name}"))
}

/// The retry policy of the egress route that a GET of `path` with Host `host` takes.
fn route_retry(rc: &RuntimeConfig, host: &str, path: &str) -> Option<RetryPolicy> {
    let egress = rc
        .listeners
        .iter()
        .find(|l| l.node == "web" && l.role == Role::Egress)
        .expect("egress listener");
    let req = http::Request::get(path)
        .header("host", host)
        .body(())
        .expect("request")
        .into_parts()
        .0;
    egress.routing.route(&req).expect("routed").retry
}

const OUTLIER_AND_HC: &str = r#", "outlierDetection": {"maxServerErrors": 3,
    "interval": {"unit": "ms", "value": 500}, "baseEjectionDuration": {"unit": "s", "value": 2},
    "maxEjectionPercent": 50},
    "healthCheck": {"protocol": "http", "path": "/ping", "intervalMillis": 5000,
    "timeoutMillis": 2000, "healthyThreshold": 3, "unhealthyThreshold": 4}"#;

#[test]
fn a_listeners_outlier_detection_and_health_check_go_on_its_callers_egress_cluster() {
    let rc = compile(&mesh(OUTLIER_AND_HC, &[""]), &Overrides::default());
    let blue = cluster(&rc, "cds_egress_m_blue_http_8080");
    assert_eq!(
        blue.outlier_detection,
        Some(OutlierConfig {
            consecutive_5xx: 3,
            consecutive_gateway_failure: 0,
            consecutive_local_origin_failure: 3,
            enforcing_consecutive_5xx: true,
            enforcing_consecutive_gateway_failure: false,
            enforcing_consecutive_local_origin_failure: true,
            split_external_local_origin_errors: true,
            interval: Duration::from_millis(500),
            base_ejection_time: Duration::from_secs(2),
            max_ejection_time: Duration::from_secs(300),
            max_ejection_percent: 50,
            uneject_on_health_check: HealthCheckUneject::LocalOrigin,
        })
    );
    assert_eq!(
        blue.health_check,
        Some(HealthCheckConfig {
            kind: ProbeKind::Http {
                path: "/ping".into()
            },
            interval: Duration::from_secs(5),
            timeout: Duration::from_secs(2),
            healthy_threshold: 3,
            unhealthy_threshold: 4,
            initial_jitter: Duration::from_secs(1),
            interval_jitter_percent: 10,
            expected_statuses: 200..201,
        })
    );
    assert_eq!(blue.retry_budget, RetryBudget::DEFAULT);
    // The node's own ingress cluster (its app) neither ejects nor probes.
    let o = Overrides {
        nodes: Some(["blue".to_owned()].into()),
        ..Overrides::default()
    };
    let rc = compile(&mesh(OUTLIER_AND_HC, &[""]), &o);
    let ingress = cluster(&rc, "cds_ingress_m_blue_http_8080");
    assert_eq!(ingress.outlier_detection, None);
    assert_eq!(ingress.health_check, None);
    // A node without the settings gives clusters without them.
    let rc = compile(&mesh("", &[""]), &Overrides::default());
    let blue = cluster(&rc, "cds_egress_m_blue_http_8080");
    assert_eq!(
        (&blue.outlier_detection, &blue.health_check),
        (&None, &None)
    );
}

#[test]
fn tcp_health_checks_connect_and_http2_ones_are_not_run_yet() {
    let hc = |protocol: &str| {
        format!(
            r#", "healthCheck": {{"protocol": "{protocol}", "path": "/h", "intervalMillis": 5000,
            "timeoutMillis": 2000, "healthyThreshold": 2, "unhealthyThreshold": 2}}"#
        )
    };
    let rc = compile(&mesh(&hc("tcp"), &[""]), &Overrides::default());
    let blue = cluster(&rc, "cds_egress_m_blue_http_8080");
    assert_eq!(
        blue.health_check.as_ref().map(|h| &h.kind),
        Some(&ProbeKind::Tcp)
    );
    for p in ["http2", "grpc"] {
        let rc = compile(&mesh(&hc(p), &[""]), &Overrides::default());
        assert_eq!(
            cluster(&rc, "cds_egress_m_blue_http_8080").health_check,
            None,
            "{p}"
        );
    }
}

#[test]
fn route_retry_policies_map_app_mesh_events_to_envoy_conditions() {
    let rc = compile(
        &mesh(
            "",
            &[
                r#", "retryPolicy": {"maxRetries": 3, "perRetryTimeout": {"unit": "ms", "value": 250},
                    "httpRetryEvents": ["server-error", "client-error"]}"#,
                r#", "retryPolicy": {"maxRetries": 1, "perRetryTimeout": {"unit": "s", "value": 0},
                    "httpRetryEvents": ["gateway-error", "stream-error"],
                    "tcpRetryEvents": ["connection-error"]}"#,
                "",
            ],
        ),
        &Overrides::default(),
    );
    let first = route_retry(&rc, "svc", "/0").expect("policy");
    assert_eq!(
        first,
        RetryPolicy {
            retry_on: RetryOn {
                five_xx: true,
                retriable_4xx: true,
                ..RetryOn::default()
            },
            num_retries: 3,
            per_try_timeout: Some(Duration::from_millis(250)),
            ..RetryPolicy::default()
        }
    );
    let second = route_retry(&rc, "svc:8080", "/1").expect("policy");
    assert_eq!(
        second.retry_on.envoy_names(),
        ["gateway-error", "refused-stream", "connect-failure"]
    );
    assert_eq!(second.num_retries, 1);
    assert_eq!(
        second.per_try_timeout, None,
        "zero means no per-try timeout"
    );
    // No policy, and a virtual-node provider: the default retries what never reached the app.
    assert_eq!(
        route_retry(&rc, "svc", "/2"),
        Some(RetryPolicy::UNSET_ROUTE_DEFAULT)
    );
    let direct = route_retry(&rc, "direct", "/").expect("policy");
    assert_eq!(direct, RetryPolicy::UNSET_ROUTE_DEFAULT);
    assert!(direct.retry_on.would_retry(&Outcome::ConnectFailure));
    assert!(!direct.retry_on.would_retry(&Outcome::Response {
        status: 503,
        overloaded: false
    }));
}

#[test]
fn ingress_listeners_never_retry_and_gateways_use_the_targets_routes() {
    let rc = compile(
        &MeshSet::load_dir_validated(
            &Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/walkthrough"),
        )
        .expect("walkthrough"),
        &Overrides::default(),
    );
    let get = |path: &str| {
        http::Request::get(path)
            .body(())
            .expect("request")
            .into_parts()
            .0
    };
    for l in &rc.listeners {
        let action = l.routing.route(&get("/paths/green"));
        match l.role {
            Role::Ingress => assert_eq!(action.expect("routed").retry, None),
            Role::Gateway => assert_eq!(
                action.expect("routed").retry,
                Some(RetryPolicy::UNSET_ROUTE_DEFAULT)
            ),
            Role::Egress => {}
        }
    }
    // The walkthrough's nodes have http health checks on /ping.
    let green = cluster(&rc, "cds_egress_color-mesh_green_http_8080");
    assert_eq!(
        green.health_check.as_ref().map(|h| &h.kind),
        Some(&ProbeKind::Http {
            path: "/ping".into()
        })
    );
}
