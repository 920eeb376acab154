//! Every kind of error names file, resource, path and what is allowed.

use super::*;

/// A virtual node whose only listener gets `extra` members.
fn vn(extra: &str) -> String {
    r#"{"meshName": "m", "virtualNodeName": "green", "spec": {"listeners": [{"portMapping":
        {"port": 8080, "protocol": "http"}, EXTRA}], "serviceDiscovery": {"dns": {"hostname": "g.local"}}}}"#
        .replace("EXTRA", extra)
}

/// A route `r/x` with the given `httpRoute` members and extra `spec` members.
fn route(http_route: &str, spec_extra: &str) -> String {
    format!(
        r#"{{"meshName": "m", "virtualRouterName": "r", "routeName": "x",
            "spec": {{"httpRoute": {{{http_route}}}{spec_extra}}}}}"#
    )
}

const TARGETS: &str = r#""action": {"weightedTargets": [{"virtualNode": "a", "weight": 1}]}"#;

/// A gateway route `g/x` with the given `httpRoute` members.
fn gateway_route(http_route: &str) -> String {
    format!(
        r#"{{"meshName": "m", "virtualGatewayName": "g", "gatewayRouteName": "x",
            "spec": {{"httpRoute": {{{http_route}}}}}}}"#
    )
}

const GW_TARGET: &str = r#""target": {"virtualService": {"virtualServiceName": "s"}}"#;

const PATH_POOL: &str = "f.json: virtualnode/green: spec.listeners[0].connectionPool";

#[test]
fn display_is_one_line_and_omits_unknown_parts() {
    let e = ConfigError::new(
        Path::new("a.json"),
        Some("virtualnode/green".into()),
        "spec",
        "bad",
    );
    assert_eq!(e.to_string(), "a.json: virtualnode/green: spec: bad");
    let e = ConfigError::new(Path::new("a.json"), None, "", "bad");
    assert_eq!(e.to_string(), "a.json: bad");
    let boxed: Box<dyn std::error::Error> = Box::new(e);
    assert_eq!(boxed.to_string(), "a.json: bad");
}

#[test]
fn unknown_field_names_its_path_and_the_allowed_fields() {
    assert_one_error(
        &vn(r#""connectionPool": {"http": {"maxConection": 1}}"#),
        &format!("{PATH_POOL}.http.maxConection: unknown field \"maxConection\", expected one of maxConnections, maxPendingRequests"),
    );
    assert_one_error(
        r#"{"meshName": "m", "virtualNodeName": "green", "spec": {}, "bogus": 1}"#,
        "f.json: virtualnode/green: bogus: unknown field \"bogus\", expected one of clientToken, \
         meshName, meshOwner, metadata, spec, status, tags, virtualNodeName",
    );
}

#[test]
fn unions_need_exactly_one_known_key() {
    assert_one_error(
        &vn(r#""connectionPool": {"http": {"maxConnections": 1}, "tcp": {"maxConnections": 1}}"#),
        &format!("{PATH_POOL}: exactly one of http, http2, grpc, tcp must be set, found http, tcp"),
    );
    assert_one_error(
        &vn(r#""connectionPool": {}"#),
        &format!("{PATH_POOL}: exactly one of http, http2, grpc, tcp must be set, found none"),
    );
    assert_one_error(
        &vn(r#""connectionPool": {"htp": {}}"#),
        &format!("{PATH_POOL}.htp: unknown field \"htp\", expected one of http, http2, grpc, tcp"),
    );
    assert_one_error(
        &vn(r#""connectionPool": 5"#),
        &format!("{PATH_POOL}: expected an object with exactly one of http, http2, grpc, tcp, got integer 5"),
    );
    assert_one_error(
        r#"{"meshName": "m", "virtualServiceName": "s", "spec": {"provider": {"virtualNode":
            {"virtualNodeName": "a"}, "virtualRouter": {"virtualRouterName": "b"}}}}"#,
        "f.json: virtualservice/s: spec.provider: exactly one of virtualNode, virtualRouter must \
         be set, found virtualNode, virtualRouter",
    );
}

#[test]
fn wrong_types_say_what_was_expected() {
    assert_one_error(
        &vn(r#""connectionPool": {"http": {"maxConnections": "ten"}}"#),
        &format!("{PATH_POOL}.http.maxConnections: expected an integer, got string \"ten\""),
    );
    assert_one_error(
        &vn(r#""connectionPool": {"http": {"maxConnections": 1.5}}"#),
        &format!(
            "{PATH_POOL}.http.maxConnections: must be an integer between 1 and 4294967295, got 1.5"
        ),
    );
    assert_one_error(
        r#"{"meshName": "m", "virtualNodeName": "green", "spec": {"listeners": {}}}"#,
        "f.json: virtualnode/green: spec.listeners: expected an array, got an object",
    );
    assert_one_error(
        r#"{"meshName": "m", "virtualNodeName": "green"}"#,
        "f.json: virtualnode/green: missing required field \"spec\"",
    );
    assert_one_error(
        &vn(r#""connectionPool": {"http": {"maxConnections": 18446744073709551615}}"#),
        &format!("{PATH_POOL}.http.maxConnections: must be between 1 and 4294967295, got 18446744073709551615"),
    );
    // Without a usable name the resource part is left out.
    assert_one_error(
        r#"{"meshName": "m", "spec": {}, "virtualNodeName": 5}"#,
        "f.json: virtualNodeName: expected a string, got integer 5",
    );
}

#[test]
fn enums_list_their_values() {
    assert_one_error(
        &vn(
            r#""healthCheck": {"protocol": "htp", "intervalMillis": 5000, "timeoutMillis": 2000,
            "healthyThreshold": 2, "unhealthyThreshold": 2}"#,
        ),
        "f.json: virtualnode/green: spec.listeners[0].healthCheck.protocol: must be one of http, \
         http2, grpc, tcp, got \"htp\"",
    );
    assert_one_error(
        &route(
            &format!(
                r#""match": {{"prefix": "/"}}, {TARGETS}, "retryPolicy": {{"maxRetries": 1,
                "perRetryTimeout": {{"unit": "s", "value": 1}}, "httpRetryEvents": ["server-eror"]}}"#
            ),
            "",
        ),
        "f.json: route/r/x: spec.httpRoute.retryPolicy.httpRetryEvents[0]: must be one of \
         server-error, gateway-error, client-error, stream-error, got \"server-eror\"",
    );
    assert_one_error(
        &route(
            &format!(
                r#""match": {{"prefix": "/"}}, {TARGETS}, "retryPolicy": {{"maxRetries": 1,
                "perRetryTimeout": {{"unit": "s", "value": 1}}, "tcpRetryEvents": ["reset"]}}"#
            ),
            "",
        ),
        "f.json: route/r/x: spec.httpRoute.retryPolicy.tcpRetryEvents[0]: must be one of \
         connection-error, got \"reset\"",
    );
}

#[test]
fn listener_ranges_and_rules() {
    let errors = errors_of(&vn(r#""connectionPool": {"tcp": {"maxConnections": 0}},
           "healthCheck": {"protocol": "http", "intervalMillis": 1, "timeoutMillis": 60001,
             "healthyThreshold": 1, "unhealthyThreshold": 11, "port": 9090},
           "outlierDetection": {"maxServerErrors": 0, "maxEjectionPercent": 101,
             "interval": {"unit": "s", "value": 1}, "baseEjectionDuration": {"unit": "s", "value": -1}},
           "timeout": {"tcp": {}}"#));
    let l = "f.json: virtualnode/green: spec.listeners[0]";
    assert_eq!(
        errors,
        [
            format!("{l}.connectionPool: must be keyed by the listener protocol \"http\" (portMapping.protocol), found \"tcp\""),
            format!("{l}.connectionPool.tcp.maxConnections: must be between 1 and 4294967295, got 0"),
            format!("{l}.healthCheck.intervalMillis: must be between 5000 and 300000, got 1"),
            format!("{l}.healthCheck.timeoutMillis: must be between 2000 and 60000, got 60001"),
            format!("{l}.healthCheck.healthyThreshold: must be between 2 and 10, got 1"),
            format!("{l}.healthCheck.unhealthyThreshold: must be between 2 and 10, got 11"),
            format!("{l}.healthCheck.port: must match the listener's portMapping.port 8080, got 9090"),
            format!("{l}.healthCheck.path: is required for an http health check: the request path to probe, e.g. \"/ping\""),
            format!("{l}.outlierDetection.maxServerErrors: must be between 1 and 4294967295, got 0"),
            format!("{l}.outlierDetection.maxEjectionPercent: must be between 0 and 100, got 101"),
            format!("{l}.outlierDetection.baseEjectionDuration.value: must be between 1 and 315576000000 for unit \"s\", got -1"),
            format!("{l}.timeout: must be keyed by the listener protocol \"http\" (portMapping.protocol), found \"tcp\""),
        ]
    );
}

#[test]
fn node_rules() {
    assert_eq!(
        errors_of(
            r#"{"meshName": "m", "virtualNodeName": "green", "spec": {"listeners": [
            {"portMapping": {"port": 70000, "protocol": "http"}},
            {"portMapping": {"port": 70000, "protocol": "tcp"}}],
            "backends": [{"virtualService": {"virtualServiceName": "a"}},
                         {"virtualService": {"virtualServiceName": "a"}}],
            "logging": {"accessLog": {"file": {"path": ""}}}}}"#
        ),
        [
            "f.json: virtualnode/green: spec.listeners[0].portMapping.port: must be between 1 and 65535, got 70000",
            "f.json: virtualnode/green: spec.listeners[1].portMapping.port: must be between 1 and 65535, got 70000",
            "f.json: virtualnode/green: spec.listeners[1].portMapping.port: port 70000 is used by another listener; listener ports must be unique",
            "f.json: virtualnode/green: spec.serviceDiscovery: required when listeners are set: one of dns, awsCloudMap (callers must find the node)",
            "f.json: virtualnode/green: spec.backends[1].virtualService.virtualServiceName: backend \"a\" is listed twice",
            "f.json: virtualnode/green: spec.logging.accessLog.file.path: must not be empty (1 to 255 characters)",
        ]
    );
    assert_one_error(
        r#"{"meshName": "m", "virtualNodeName": "", "spec": {}}"#,
        "f.json: virtualnode/: virtualNodeName: must not be empty (1 to 255 characters)",
    );
    let long = "n".repeat(256);
    assert_one_error(
        &format!(r#"{{"meshName": "{long}", "spec": {{}}}}"#),
        &format!("f.json: mesh/{long}: meshName: must be 1 to 255 characters long, got 256"),
    );
}

#[test]
fn gateway_rules() {
    assert_one_error(
        r#"{"meshName": "m", "virtualGatewayName": "g", "spec": {"listeners": [{"portMapping":
            {"port": 80, "protocol": "http"}, "connectionPool": {"tcp": {"maxConnections": 1}}}]}}"#,
        "f.json: virtualgateway/g: spec.listeners[0].connectionPool.tcp: unknown field \"tcp\", \
         expected one of http, http2, grpc",
    );
    assert_one_error(
        r#"{"meshName": "m", "virtualGatewayName": "g", "spec": {"listeners": [{"portMapping":
            {"port": 80, "protocol": "tcp"}}]}}"#,
        "f.json: virtualgateway/g: spec.listeners[0].portMapping.protocol: must be one of http, \
         http2, grpc, got \"tcp\"",
    );
    assert_one_error(
        r#"{"meshName": "m", "virtualGatewayName": "g", "spec": {"listeners": []}}"#,
        "f.json: virtualgateway/g: spec.listeners: must have at least one listener, got 0",
    );
    assert_one_error(
        r#"{"meshName": "m", "virtualGatewayName": "g", "spec": {"listeners": [{"portMapping":
            {"port": 80, "protocol": "http2"}, "connectionPool": {"http": {"maxConnections": 1}}}]}}"#,
        "f.json: virtualgateway/g: spec.listeners[0].connectionPool: must be keyed by the listener \
         protocol \"http2\" (portMapping.protocol), found \"http\"",
    );
}

#[test]
fn gateway_route_rules() {
    assert_eq!(
        errors_of(&gateway_route(&format!(
            r#""match": {{"prefix": "/aws-appmesh/x"}}, "action": {{{GW_TARGET},
               "rewrite": {{"prefix": {{"defaultPrefix": "DISABLED", "value": "x"}},
               "path": {{"exact": "/y"}}}}}}"#
        ))),
        [
            "f.json: gatewayroute/g/x: spec.httpRoute.match.prefix: prefixes starting with \"/aws-appmesh\" are reserved by App Mesh",
            "f.json: gatewayroute/g/x: spec.httpRoute.action.rewrite.prefix: exactly one of defaultPrefix, value must be set, found defaultPrefix, value",
            "f.json: gatewayroute/g/x: spec.httpRoute.action.rewrite.prefix.value: must start with \"/\", got \"x\"",
            "f.json: gatewayroute/g/x: spec.httpRoute.action.rewrite.path: a path rewrite needs match.path",
        ]
    );
    assert_eq!(
        errors_of(&gateway_route(&format!(
            r#""match": {{"prefix": "/a", "path": {{"exact": "/b"}},
               "hostname": {{"suffix": ""}}, "port": 0}}, "action": {{{GW_TARGET}}}"#
        ))),
        [
            "f.json: gatewayroute/g/x: spec.httpRoute.match: only one of prefix, path may be set, found prefix, path",
            "f.json: gatewayroute/g/x: spec.httpRoute.match.hostname.suffix: must not be empty (1 to 253 characters)",
            "f.json: gatewayroute/g/x: spec.httpRoute.match.port: must be between 1 and 65535, got 0",
        ]
    );
    assert_one_error(
        r#"{"meshName": "m", "virtualGatewayName": "g", "gatewayRouteName": "x", "spec": {}}"#,
        "f.json: gatewayroute/g/x: spec: exactly one of grpcRoute, http2Route, httpRoute must be \
         set, found none",
    );
}

#[test]
fn route_rules() {
    let errors = errors_of(&route(
        r#""match": {"prefix": "a", "path": {"regex": "(a"},
            "headers": [{"name": "h", "match": {"range": {"start": 5, "end": 5}}}]},
           "action": {"weightedTargets": []},
           "retryPolicy": {"maxRetries": -1, "perRetryTimeout": {"unit": "s", "value": 1},
             "tcpRetryEvents": ["connection-error", "connection-error"]}"#,
        r#", "priority": 1001"#,
    ));
    let p = "f.json: route/r/x: spec";
    assert_eq!(
        errors,
        [
            format!("{p}.priority: must be between 0 and 1000, got 1001"),
            format!("{p}.httpRoute.match: exactly one of prefix, path must be set, found prefix, path"),
            format!("{p}.httpRoute.match.prefix: must start with \"/\", got \"a\""),
            format!("{p}.httpRoute.match.path.regex: invalid regular expression \"(a\": unclosed group"),
            format!("{p}.httpRoute.match.headers[0].match.range: end must be greater than start (the range is [start, end)), got start 5 end 5"),
            format!("{p}.httpRoute.action.weightedTargets: must have 1 to 10 items, got 0"),
            format!("{p}.httpRoute.retryPolicy.maxRetries: must be between 0 and 4294967295, got -1"),
            format!("{p}.httpRoute.retryPolicy.tcpRetryEvents: must be exactly [\"connection-error\"], got 2 items"),
        ]
    );
    let errors = errors_of(&route(
        &format!(
            r#""match": {{"prefix": "/", "scheme": "http", "headers": []}}, {TARGETS},
               "retryPolicy": {{"maxRetries": 1, "perRetryTimeout": {{"unit": "s", "value": 1}}}}"#
        ),
        r#", "tcpRoute": {"action": {"weightedTargets": [{"virtualNode": "a", "weight": 101}]}}"#,
    ));
    assert_eq!(
        errors,
        [
            format!("{p}: exactly one of grpcRoute, http2Route, httpRoute, tcpRoute must be set, found httpRoute, tcpRoute"),
            format!("{p}.httpRoute.match.headers: must have 1 to 10 items, got 0"),
            format!("{p}.httpRoute.match.scheme: is allowed only in an http2Route"),
            format!("{p}.httpRoute.retryPolicy: at least one retry event must be set: httpRetryEvents (server-error, gateway-error, client-error, stream-error) or tcpRetryEvents (connection-error)"),
            format!("{p}.tcpRoute.action.weightedTargets[0].weight: must be between 0 and 100, got 101"),
        ]
    );
    assert_one_error(
        &route(
            r#""match": {"prefix": "/"}, "action": {"weightedTargets": [
                {"virtualNode": "a", "weight": 0}, {"virtualNode": "b", "weight": 0}]}"#,
            "",
        ),
        "f.json: route/r/x: spec.httpRoute.action.weightedTargets: the weights add up to 0, so no \
         target can receive traffic; give at least one target a weight between 1 and 100",
    );
    assert_one_error(
        r#"{"meshName": "m", "virtualRouterName": "r", "routeName": "x", "spec": {"grpcRoute":
            {"match": {"methodName": "Get"}, "action": {"weightedTargets": [{"virtualNode": "a", "weight": 1}]}}}}"#,
        "f.json: route/r/x: spec.grpcRoute.match.methodName: requires match.serviceName",
    );
}

#[test]
fn document_level_errors() {
    assert_one_error(
        r#"{"spec": {}}"#,
        "f.json: cannot tell the resource kind: expected a name key (gatewayRouteName, routeName, \
         virtualGatewayName, virtualRouterName, virtualNodeName, virtualServiceName, meshName) or \
         a describe wrapper such as {\"virtualNode\": {...}}",
    );
    assert_one_error(
        r#"{"virtualNode": {}, "x": 1}"#,
        "f.json: a describe wrapper must be the only key of its object, found virtualNode, x",
    );
    assert_one_error(
        r#"{"meshName": "m", "virtualNodeName": "a""#,
        "f.json: invalid JSON: EOF while parsing an object at line 1 column 40",
    );
    assert_one_error(
        r#""hello""#,
        "f.json: expected a resource object or an array of resources, got a string",
    );
    // In an array every element is reported; unnamed ones by their position in the document.
    assert_eq!(
        errors_of(
            r#"[{"spec": {}}, {"virtualNode": {"meshName": "m", "spec": {"listeners": 1}}}, 3,
                {"virtualNode": {"meshName": "m", "virtualNodeName": "ok", "spec": {"x": 1}}}]"#
        ),
        [
            "f.json: [0]: cannot tell the resource kind: expected a name key (gatewayRouteName, routeName, virtualGatewayName, virtualRouterName, virtualNodeName, virtualServiceName, meshName) or a describe wrapper such as {\"virtualNode\": {...}}",
            "f.json: [1].virtualNode.spec.listeners: expected an array, got integer 1",
            "f.json: [2]: expected a resource object, got a number",
            "f.json: virtualnode/ok: spec.x: unknown field \"x\", expected one of backendDefaults, backends, listeners, logging, serviceDiscovery",
        ]
    );
    assert!(parse_document(Path::new("f.json"), "[]").is_ok_and(|l| l.is_empty()));
}

#[test]
fn no_panic_on_odd_input() {
    for text in [
        "",
        "null",
        "0",
        "[[]]",
        "{}",
        r#"{"mesh": 1}"#,
        r#"{"meshName": null}"#,
        r#"{"virtualNode": {"virtualNode": {}}}"#,
        "\u{feff}{}",
        r#"{"meshName": "m", "spec": []}"#,
        r#"{"routeName": "x"}"#,
        r#"{"meshName":"m","metadata":{"createdAt":{}},"spec":{}}"#,
    ] {
        let errors = errors_of(text);
        assert!(!errors.is_empty(), "{text:?} should not parse");
        assert!(errors.iter().all(|e| !e.contains('\n')), "{errors:?}");
    }
}

#[test]
fn input_form_of_describe_output_drops_metadata_and_status() {
    let r = one(
        r#"{"virtualService": {"meshName": "m", "metadata": {"version": 3}, "spec": {},
            "status": {"status": "ACTIVE"}, "virtualServiceName": "s"}}"#,
    );
    assert_eq!(
        r.to_input_json().to_string(),
        r#"{"meshName":"m","spec":{},"virtualServiceName":"s"}"#
    );
    let value: serde_json::Value = serde_json::from_str(r#"[{"meshName": "m"}]"#).expect("json");
    let list = parse_value(Path::new("body"), &value).expect("parses");
    assert_eq!(list[0].key(), ResourceKey::new(Kind::Mesh, "m", None, "m"));
}
