//! Bad input in retry policies, outlier detection, health checks and durations: refused with
//! file, resource, path and the allowed range; the boundaries themselves are accepted.

use super::*;

/// A virtual node whose only (http) listener gets `extra` members.
fn vn(extra: &str) -> String {
    format!(
        r#"{{"meshName": "m", "virtualNodeName": "green", "spec": {{"listeners": [{{"portMapping":
        {{"port": 8080, "protocol": "http"}}, {extra}}}], "serviceDiscovery": {{"dns": {{"hostname": "g.local"}}}}}}}}"#
    )
}

/// An `outlierDetection` with the given interval and base ejection duration.
fn outlier(interval: &str, base: &str, percent: i64) -> String {
    vn(&format!(
        r#""outlierDetection": {{"maxServerErrors": 1, "interval": {interval},
            "baseEjectionDuration": {base}, "maxEjectionPercent": {percent}}}"#
    ))
}

/// A `healthCheck` with the given protocol and extra members.
fn health(protocol: &str, extra: &str) -> String {
    vn(&format!(
        r#""healthCheck": {{"protocol": "{protocol}", "intervalMillis": 5000, "timeoutMillis": 2000,
            "healthyThreshold": 2, "unhealthyThreshold": 10{extra}}}"#
    ))
}

/// A route `r/x` with the given `retryPolicy` members.
fn retry(policy: &str) -> String {
    format!(
        r#"{{"meshName": "m", "virtualRouterName": "r", "routeName": "x", "spec": {{"httpRoute": {{
            "match": {{"prefix": "/"}}, "action": {{"weightedTargets": [{{"virtualNode": "a", "weight": 1}}]}},
            "retryPolicy": {{{policy}}}}}}}}}"#
    )
}

const OD: &str = "f.json: virtualnode/green: spec.listeners[0].outlierDetection";
const HC: &str = "f.json: virtualnode/green: spec.listeners[0].healthCheck";
const RP: &str = "f.json: route/r/x: spec.httpRoute.retryPolicy";

#[test]
fn outlier_intervals_and_ejection_times_must_be_above_zero() {
    let s = |v: i64| format!(r#"{{"unit": "s", "value": {v}}}"#);
    let ms = |v: i64| format!(r#"{{"unit": "ms", "value": {v}}}"#);
    assert_one_error(
        &outlier(&ms(0), &s(30), 10),
        &format!(
            "{OD}.interval.value: must be between 1 and 315576000000000 for unit \"ms\", got 0"
        ),
    );
    assert_one_error(
        &outlier(&s(10), &s(0), 10),
        &format!("{OD}.baseEjectionDuration.value: must be between 1 and 315576000000 for unit \"s\", got 0"),
    );
    // The smallest and largest values, and both ends of the percentage, are accepted.
    for text in [
        outlier(&ms(1), &ms(1), 0),
        outlier(&s(315_576_000_000), &ms(315_576_000_000_000), 100),
    ] {
        assert_eq!(errors_of(&text), Vec::<String>::new(), "{text}");
    }
    assert_one_error(
        &outlier(&s(315_576_000_001), &s(1), 100),
        &format!("{OD}.interval.value: must be between 1 and 315576000000 for unit \"s\", got 315576000001"),
    );
    assert_one_error(
        &outlier(&s(1), &s(1), -1),
        &format!("{OD}.maxEjectionPercent: must be between 0 and 100, got -1"),
    );
}

#[test]
fn durations_beyond_ten_thousand_years_are_refused_everywhere() {
    // A timer this long would overflow the clock; zero still means "disabled" for timeouts.
    let timeout = |v: &str| {
        vn(&format!(
            r#""timeout": {{"http": {{"perRequest": {{"unit": "s", "value": {v}}},
                "idle": {{"unit": "ms", "value": 0}}}}}}"#
        ))
    };
    assert_eq!(errors_of(&timeout("0")), Vec::<String>::new());
    assert_eq!(errors_of(&timeout("315576000000")), Vec::<String>::new());
    assert_one_error(
        &timeout("9223372036854775807"),
        "f.json: virtualnode/green: spec.listeners[0].timeout.http.perRequest.value: must be \
         between 0 and 315576000000 for unit \"s\", got 9223372036854775807",
    );
    assert_one_error(
        &retry(
            r#""maxRetries": 1, "perRetryTimeout": {"unit": "ms", "value": 315576000000001},
               "httpRetryEvents": ["server-error"]"#,
        ),
        &format!("{RP}.perRetryTimeout.value: must be between 0 and 315576000000000 for unit \"ms\", got 315576000000001"),
    );
}

#[test]
fn http_health_checks_need_a_path_others_do_not() {
    for protocol in ["http", "http2"] {
        assert_one_error(
            &health(protocol, ""),
            &format!("{HC}.path: is required for an {protocol} health check: the request path to probe, e.g. \"/ping\""),
        );
        assert_one_error(
            &health(protocol, r#", "path": """#),
            &format!("{HC}.path: must start with \"/\", got \"\""),
        );
        assert_eq!(
            errors_of(&health(protocol, r#", "path": "/ping""#)),
            Vec::<String>::new()
        );
    }
    for protocol in ["tcp", "grpc"] {
        assert_eq!(errors_of(&health(protocol, "")), Vec::<String>::new());
    }
}

#[test]
fn health_check_ranges_accept_their_bounds() {
    let hc = |interval: i64, timeout: i64, healthy: i64, unhealthy: i64| {
        vn(&format!(
            r#""healthCheck": {{"protocol": "tcp", "intervalMillis": {interval},
                "timeoutMillis": {timeout}, "healthyThreshold": {healthy},
                "unhealthyThreshold": {unhealthy}}}"#
        ))
    };
    assert_eq!(errors_of(&hc(5000, 2000, 2, 2)), Vec::<String>::new());
    assert_eq!(
        errors_of(&hc(300_000, 60_000, 10, 10)),
        Vec::<String>::new()
    );
    assert_eq!(
        errors_of(&hc(4999, 1999, 11, 1)),
        [
            format!("{HC}.intervalMillis: must be between 5000 and 300000, got 4999"),
            format!("{HC}.timeoutMillis: must be between 2000 and 60000, got 1999"),
            format!("{HC}.healthyThreshold: must be between 2 and 10, got 11"),
            format!("{HC}.unhealthyThreshold: must be between 2 and 10, got 1"),
        ]
    );
}

#[test]
fn a_retry_policy_needs_an_event_and_sane_numbers() {
    let none = "at least one retry event must be set: httpRetryEvents (server-error, \
                gateway-error, client-error, stream-error) or tcpRetryEvents (connection-error)";
    assert_eq!(
        errors_of(&retry(
            r#""maxRetries": 1, "perRetryTimeout": {"unit": "s", "value": 1},
               "httpRetryEvents": [], "tcpRetryEvents": []"#
        )),
        [
            format!("{RP}.tcpRetryEvents: must be exactly [\"connection-error\"], got 0 items"),
            format!("{RP}.httpRetryEvents: must have 1 to 25 items, got 0"),
            format!("{RP}: {none}"),
        ]
    );
    assert_one_error(
        &retry(r#""maxRetries": 1, "perRetryTimeout": {"unit": "s", "value": 1}"#),
        &format!("{RP}: {none}"),
    );
    assert_eq!(
        errors_of(&retry(
            r#""maxRetries": -1, "perRetryTimeout": {"unit": "s", "value": -1},
               "tcpRetryEvents": ["connection-error"]"#
        )),
        [
            format!("{RP}.perRetryTimeout.value: must be between 0 and 315576000000 for unit \"s\", got -1"),
            format!("{RP}.maxRetries: must be between 0 and 4294967295, got -1"),
        ]
    );
    // Zero retries and a zero per-try timeout (none) are valid.
    assert_eq!(
        errors_of(&retry(
            r#""maxRetries": 0, "perRetryTimeout": {"unit": "ms", "value": 0},
               "httpRetryEvents": ["server-error", "gateway-error", "client-error", "stream-error"]"#
        )),
        Vec::<String>::new()
    );
}
