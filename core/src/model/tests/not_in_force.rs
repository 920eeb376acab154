//! Settings meshd does not implement: security settings refused with "not supported yet",
//! every other one accepted and named by `not_in_force`; limits above 2³²−1 refused.

use super::examples::*;
use super::reference_docs::*;
use super::*;

/// A virtual node `green` whose only http listener gets `listener` members and whose spec gets
/// `spec` members.
fn node(listener: &str, spec: &str) -> String {
    format!(
        r#"{{"meshName": "m", "virtualNodeName": "green", "spec": {{"listeners": [{{"portMapping":
            {{"port": 8080, "protocol": "http"}}{listener}}}],
            "serviceDiscovery": {{"dns": {{"hostname": "g.local"}}}}{spec}}}}}"#
    )
}

/// A virtual gateway `gw` with one http listener getting `listener` members, and `spec` members.
fn gateway(listener: &str, spec: &str) -> String {
    format!(
        r#"{{"meshName": "m", "virtualGatewayName": "gw", "spec": {{"listeners": [{{"portMapping":
            {{"port": 8088, "protocol": "http"}}{listener}}}]{spec}}}}}"#
    )
}

const CERT: &str =
    r#""certificate": {"file": {"certificateChain": "/c.pem", "privateKey": "/k.pem"}}"#;
const TRUST: &str = r#""validation": {"trust": {"file": {"certificateChain": "/ca.pem"}}}"#;

const LISTENER_TLS: &str = "is not supported yet: meshd does not terminate TLS, so this listener \
     would serve plain text; allowed today: \"mode\": \"DISABLED\", or no tls (plain text, which \
     is what meshd serves)";
const CLIENT_TLS: &str = "meshd would connect to the backend in plain text; allowed today: \
     \"enforce\": false, or no tls (plain text, which is what meshd sends)";

/// `(path, reason)` of every setting of the one resource of `text` that is not in force.
fn listed(text: &str) -> Vec<(String, String)> {
    resource_not_in_force(Path::new("f.json"), &one(text))
        .into_iter()
        .map(|n| (n.path, n.reason))
        .collect()
}

fn paths(text: &str) -> Vec<String> {
    listed(text).into_iter().map(|(p, _)| p).collect()
}

#[test]
fn listener_tls_strict_and_permissive_are_refused_naming_what_is_allowed() {
    for mode in ["STRICT", "PERMISSIVE"] {
        assert_one_error(
            &node(&format!(r#", "tls": {{"mode": "{mode}", {CERT}}}"#), ""),
            &format!(
                "f.json: virtualnode/green: spec.listeners[0].tls.mode: TLS mode {mode} {LISTENER_TLS}"
            ),
        );
        assert_one_error(
            &gateway(&format!(r#", "tls": {{"mode": "{mode}", {CERT}, {TRUST}}}"#), ""),
            &format!(
                "f.json: virtualgateway/gw: spec.listeners[0].tls.mode: TLS mode {mode} {LISTENER_TLS}"
            ),
        );
    }
    // DISABLED is what meshd does: accepted, and not listed as not in force.
    let disabled = node(&format!(r#", "tls": {{"mode": "DISABLED", {CERT}}}"#), "");
    assert_eq!(errors_of(&disabled), Vec::<String>::new());
    assert_eq!(listed(&disabled), vec![]);
}

#[test]
fn client_policies_that_enforce_tls_are_refused() {
    let tls = |enforce: &str| format!(r#"{{"clientPolicy": {{"tls": {{{enforce}{TRUST}}}}}}}"#);
    // App Mesh's enforce defaults to true.
    assert_one_error(
        &node("", &format!(r#", "backendDefaults": {}"#, tls(""))),
        &format!(
            "f.json: virtualnode/green: spec.backendDefaults.clientPolicy.tls: TLS to backends is \
             not supported yet (enforce defaults to true): {CLIENT_TLS}"
        ),
    );
    assert_one_error(
        &gateway("", &format!(r#", "backendDefaults": {}"#, tls(""))),
        &format!(
            "f.json: virtualgateway/gw: spec.backendDefaults.clientPolicy.tls: TLS to backends is \
             not supported yet (enforce defaults to true): {CLIENT_TLS}"
        ),
    );
    let backend = |enforce: &str| {
        node(
            "",
            &format!(
                r#", "backends": [{{"virtualService": {{"virtualServiceName": "a",
                    "clientPolicy": {{"tls": {{{enforce}"ports": [443], {TRUST}}}}}}}}}]"#
            ),
        )
    };
    assert_one_error(
        &backend(r#""enforce": true, "#),
        &format!(
            "f.json: virtualnode/green: spec.backends[0].virtualService.clientPolicy.tls.enforce: \
             TLS to backends is not supported yet (enforce is true): {CLIENT_TLS}"
        ),
    );
    // "enforce": false is plain text, as meshd does: accepted and in force.
    let off = backend(r#""enforce": false, "#);
    assert_eq!(errors_of(&off), Vec::<String>::new());
    assert_eq!(listed(&off), vec![]);
    // An empty client policy promises nothing.
    let empty = node("", r#", "backendDefaults": {"clientPolicy": {}}"#);
    assert_eq!(errors_of(&empty), Vec::<String>::new());
}

#[test]
fn a_refused_setting_stops_a_directory_from_loading() {
    let dir = TempDir::new("strict");
    let file = dir.write(
        "vn.json",
        &node(&format!(r#", "tls": {{"mode": "STRICT", {CERT}}}"#), ""),
    );
    let errors = MeshSet::load_dir(dir.path()).expect_err("refused");
    assert_eq!(
        lines(&errors),
        format!(
            "{}: virtualnode/green: spec.listeners[0].tls.mode: TLS mode STRICT {LISTENER_TLS}",
            file.display()
        )
    );
}

#[test]
fn limits_above_two_to_the_32_minus_one_are_refused_whatever_their_size() {
    let pool = |pool: &str| node(&format!(r#", "connectionPool": {pool}"#), "");
    let max = "4294967295";
    let accepted = pool(&format!(
        r#"{{"http": {{"maxConnections": {max}, "maxPendingRequests": {max}}}}}"#
    ));
    assert_eq!(errors_of(&accepted), Vec::<String>::new());
    let p = "f.json: virtualnode/green: spec.listeners[0].connectionPool.http";
    for (value, shown) in [
        ("4294967296", "4294967296"),
        ("9223372036854775807", "9223372036854775807"),
        ("9223372036854775808", "9223372036854775808"),
        ("18446744073709551616", "1.8446744073709552e+19"),
        ("-1", "-1"),
        ("-9223372036854775809", "-9.223372036854776e+18"),
        ("0", "0"),
    ] {
        for field in ["maxConnections", "maxPendingRequests"] {
            let other = if field == "maxConnections" {
                "maxPendingRequests"
            } else {
                "maxConnections"
            };
            assert_one_error(
                &pool(&format!(
                    r#"{{"http": {{"{field}": {value}, "{other}": 1}}}}"#
                )),
                &format!("{p}.{field}: must be between 1 and 4294967295, got {shown}"),
            );
        }
    }
    assert_one_error(
        &pool(r#"{"http": {"maxConnections": 1e3}}"#),
        &format!("{p}.maxConnections: must be an integer between 1 and 4294967295, got 1000.0"),
    );
}

#[test]
fn every_bounded_integer_reads_alike_in_range_and_beyond_i64() {
    let http2 = r#"{"meshName": "m", "virtualNodeName": "n", "spec": {"listeners": [{"portMapping":
        {"port": 80, "protocol": "http2"}, "connectionPool": {"http2": {"maxRequests": @N@}}}],
        "serviceDiscovery": {"dns": {"hostname": "n"}}}}"#;
    let tcp = r#"{"meshName": "m", "virtualNodeName": "n", "spec": {"listeners": [{"portMapping":
        {"port": 80, "protocol": "tcp"}, "connectionPool": {"tcp": {"maxConnections": @N@}}}],
        "serviceDiscovery": {"dns": {"hostname": "n"}}}}"#;
    let gw = r#"{"meshName": "m", "virtualGatewayName": "g", "spec": {"listeners": [{"portMapping":
        {"port": 80, "protocol": "grpc"}, "connectionPool": {"grpc": {"maxRequests": @N@}}}]}}"#;
    let od = r#"{"meshName": "m", "virtualNodeName": "n", "spec": {"listeners": [{"portMapping":
        {"port": 80, "protocol": "http"}, "outlierDetection": {"maxServerErrors": @N@,
        "maxEjectionPercent": 10, "interval": {"unit": "s", "value": 1},
        "baseEjectionDuration": {"unit": "s", "value": 1}}}], "serviceDiscovery": {"dns": {"hostname": "n"}}}}"#;
    let retry = r#"{"meshName": "m", "virtualRouterName": "r", "routeName": "x", "spec": {"grpcRoute":
        {"match": {}, "action": {"weightedTargets": [{"virtualNode": "a", "weight": 1}]},
         "retryPolicy": {"maxRetries": @N@, "perRetryTimeout": {"unit": "s", "value": 1},
         "grpcRetryEvents": ["cancelled"]}}}}"#;
    let cases = [
        (
            http2,
            "spec.listeners[0].connectionPool.http2.maxRequests",
            1,
        ),
        (
            tcp,
            "spec.listeners[0].connectionPool.tcp.maxConnections",
            1,
        ),
        (gw, "spec.listeners[0].connectionPool.grpc.maxRequests", 1),
        (od, "spec.listeners[0].outlierDetection.maxServerErrors", 1),
        (retry, "spec.grpcRoute.retryPolicy.maxRetries", 0),
    ];
    for (doc, path, lo) in cases {
        assert_eq!(
            errors_of(&doc.replace("@N@", "4294967295")),
            Vec::<String>::new()
        );
        for big in ["4294967296", "9223372036854775808"] {
            let errors = errors_of(&doc.replace("@N@", big));
            assert_eq!(errors.len(), 1, "{errors:?}");
            assert!(
                errors[0].ends_with(&format!(
                    ": {path}: must be between {lo} and 4294967295, got {big}"
                )),
                "{errors:?}"
            );
        }
    }
    // Other bounded fields give their own range beyond i64 too.
    let errors = errors_of(&node("", "").replace("8080", "99999999999999999999"));
    assert_eq!(
        errors,
        [
            "f.json: virtualnode/green: spec.listeners[0].portMapping.port: must be between 1 and \
          65535, got 1e+20"
        ]
    );
}

#[test]
fn header_names_that_cannot_be_matched_are_refused() {
    let route = r#"{"meshName": "m", "virtualRouterName": "r", "routeName": "x", "spec": {"httpRoute":
        {"match": {"prefix": "/", "headers": [{"name": "x canary", "match": {"exact": "1"}}]},
         "action": {"weightedTargets": [{"virtualNode": "a", "weight": 1}]}}}}"#;
    assert_one_error(
        route,
        "f.json: route/r/x: spec.httpRoute.match.headers[0].name: must be an HTTP header name \
         (letters, digits and !#$%&'*+-.^_`|~), got \"x canary\"",
    );
    assert_eq!(
        errors_of(&route.replace("x canary", "X-Canary")),
        Vec::<String>::new()
    );
}

#[test]
fn the_walkthrough_is_in_force_whole() {
    // Its listeners' http health checks run on every caller's egress cluster to the node.
    let set = MeshSet::load_dir_validated(&walkthrough_dir()).expect("walkthrough loads");
    assert_eq!(not_in_force(&set), Vec::<NotInForce>::new());
}

#[test]
fn every_setting_not_compiled_is_named() {
    // Its http health check and outlier detection are in force.
    assert_eq!(paths(VN_FULL), ["spec.serviceDiscovery.dns.ipPreference"]);
    let grpc_check = node(
        r#", "healthCheck": {"protocol": "grpc", "intervalMillis": 5000, "timeoutMillis": 2000,
            "healthyThreshold": 2, "unhealthyThreshold": 2}"#,
        "",
    );
    assert_eq!(
        paths(&grpc_check),
        ["spec.listeners[0].healthCheck.protocol"]
    );
    assert_eq!(
        listed(VN_CLOUD_MAP),
        [
            (
                "spec.listeners[0].portMapping.protocol".to_string(),
                "tcp listeners are not served yet (only http): meshd does not bind this \
                 listener, and callers speak HTTP/1.1 to it"
                    .to_string()
            ),
            (
                "spec.listeners[1].portMapping.protocol".to_string(),
                "grpc listeners are not served yet (only http): meshd does not bind this \
                 listener, and callers speak HTTP/1.1 to it"
                    .to_string()
            ),
            (
                "spec.listeners[2].portMapping.protocol".to_string(),
                "http2 listeners are not served yet (only http): meshd does not bind this \
                 listener, and callers speak HTTP/1.1 to it"
                    .to_string()
            ),
            (
                "spec.serviceDiscovery.awsCloudMap".to_string(),
                "Cloud Map discovery is not implemented (meshd discovers hosts by DNS only): \
                 callers find no host for this node, and its listeners bind 0.0.0.0"
                    .to_string()
            ),
        ]
    );
    // The gateway's listener is http2: not bound, so its health check goes with it.
    assert_eq!(paths(VG_FULL), ["spec.listeners[0].portMapping.protocol"]);
    assert_eq!(
        paths(&gateway(
            r#", "healthCheck": {"protocol": "http", "intervalMillis": 5000, "timeoutMillis": 2000,
                "healthyThreshold": 2, "unhealthyThreshold": 2}"#,
            ""
        )),
        ["spec.listeners[0].healthCheck"]
    );
    assert_eq!(
        paths(GR_HTTP_FULL),
        [
            "spec.http2Route",
            "spec.http2Route.match.port",
            "spec.http2Route.action.target.port",
        ]
    );
    assert_eq!(paths(GR_GRPC_FULL), ["spec.grpcRoute"]);
    assert_eq!(
        paths(ROUTE_HTTP2_FULL),
        [
            "spec.http2Route",
            "spec.http2Route.match.port",
            "spec.http2Route.match.scheme",
        ]
    );
    assert_eq!(paths(ROUTE_GRPC_FULL), ["spec.grpcRoute"]);
    assert_eq!(paths(ROUTE_TCP_FULL), ["spec.tcpRoute"]);
    assert_eq!(
        paths(MESH_FULL),
        [
            "spec.egressFilter.type",
            "spec.serviceDiscovery.ipPreference"
        ]
    );
    // What is compiled is not listed: pools, per-request and idle timeouts, DNS ENDPOINTS,
    // DROP_ALL, supported log operators, http route matches, priorities and target ports.
    let in_force = node(
        r#", "connectionPool": {"http": {"maxConnections": 1, "maxPendingRequests": 1}},
            "timeout": {"http": {"perRequest": {"unit": "s", "value": 1}, "idle": {"unit": "s", "value": 9}}}"#,
        r#", "logging": {"accessLog": {"file": {"path": "/dev/stdout",
            "format": {"text": "%START_TIME% %REQ(:METHOD)% %RESPONSE_CODE% %UPSTREAM_HOST%\n"}}}}"#,
    )
    .replace(r#""hostname": "g.local""#, r#""hostname": "g.local", "responseType": "ENDPOINTS""#);
    assert_eq!(errors_of(&in_force), Vec::<String>::new());
    assert_eq!(listed(&in_force), vec![]);
    assert_eq!(
        listed(r#"{"meshName": "m", "spec": {"egressFilter": {"type": "DROP_ALL"}}}"#),
        vec![]
    );
    assert_eq!(listed(ROUTE_INPUT), vec![]);
    assert_eq!(listed(GR_INPUT), vec![]);
    assert_eq!(listed(VS_INPUT), vec![]);
    assert_eq!(listed(VR_INPUT), vec![]);
    let route = r#"{"meshName": "m", "virtualRouterName": "r", "routeName": "x", "spec": {"httpRoute":
        {"match": {"prefix": "/"}, "action": {"weightedTargets": [{"virtualNode": "a", "weight": 1}]},
         "retryPolicy": {"maxRetries": 2, "perRetryTimeout": {"unit": "ms", "value": 100},
         "httpRetryEvents": ["server-error"]},
         "timeout": {"perRequest": {"unit": "s", "value": 2}, "idle": {"unit": "s", "value": 2}}}}}"#;
    // Retries are in force.
    assert_eq!(listed(route), vec![]);
}

#[test]
fn dns_load_balancer_mode_and_unsupported_log_operators_are_named() {
    let lb = node("", "").replace(
        r#""hostname": "g.local""#,
        r#""hostname": "g.local", "responseType": "LOADBALANCER""#,
    );
    assert_eq!(paths(&lb), ["spec.serviceDiscovery.dns.responseType"]);
    let text = node(
        "",
        r#", "logging": {"accessLog": {"file": {"path": "/dev/stdout",
            "format": {"text": "%DOWNSTREAM_REMOTE_ADDRESS% %REQ(X-TEAM)% %RESPONSE_CODE%\n"}}}}"#,
    );
    assert_eq!(
        listed(&text),
        [(
            "spec.logging.accessLog.file.format.text".to_string(),
            "operators %DOWNSTREAM_REMOTE_ADDRESS% %REQ(X-TEAM)% are not supported yet and logged \
             as \"-\""
                .to_string()
        )]
    );
    let json = gateway(
        "",
        r#", "logging": {"accessLog": {"file": {"path": "/dev/stdout", "format": {"json": [
            {"key": "code", "value": "%RESPONSE_CODE%"}, {"key": "peer", "value": "%DOWNSTREAM_PEER_URI_SAN%"}]}}}}"#,
    );
    assert_eq!(
        listed(&json),
        [(
            "spec.logging.accessLog.file.format.json[1].value".to_string(),
            "operator %DOWNSTREAM_PEER_URI_SAN% is not supported yet and logged as \"-\""
                .to_string()
        )]
    );
}
