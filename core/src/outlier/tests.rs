use super::*;
use std::time::SystemTime;

use crate::stats::{StatType, Visit};

const SEC: Duration = Duration::from_secs(1);

fn addr(i: u8) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, i], 5000))
}

fn resp(status: u16) -> Outcome {
    Outcome::Response {
        status,
        overloaded: false,
    }
}

const OVERLOADED: Outcome = Outcome::Response {
    status: 503,
    overloaded: true,
};

/// App Mesh settings: 3 errors, interval 1 s, base 10 s, 100 %.
fn app_mesh() -> OutlierConfig {
    OutlierConfig::app_mesh(3, SEC, 10 * SEC, 100)
}

/// A detector over hosts 127.0.0.1..=n.
fn detector(config: OutlierConfig, n: u8) -> OutlierDetector {
    let d = OutlierDetector::new(config);
    d.set_hosts(&(1..=n).map(addr).collect::<Vec<_>>());
    d
}

/// Records `outcome` `times` times against host `i`, collecting events.
fn hit(
    d: &OutlierDetector,
    i: u8,
    outcome: Outcome,
    times: usize,
    now: Instant,
) -> Vec<OutlierEvent> {
    let h = d.host(addr(i)).expect("host");
    (0..times)
        .flat_map(|_| d.record(&h, &outcome, now))
        .collect()
}

#[test]
fn consecutive_5xx_ejects_exactly_at_the_threshold() {
    let t = Instant::now();
    let d = detector(app_mesh(), 2);
    assert!(hit(&d, 1, resp(500), 2, t).is_empty());
    let h = d.host(addr(1)).expect("host");
    assert!(!h.is_ejected());
    assert_eq!(d.view(&h, t).consecutive_5xx, 2);
    // A success resets the count.
    assert!(hit(&d, 1, resp(200), 1, t).is_empty());
    assert!(hit(&d, 1, resp(503), 2, t).is_empty());
    let events = hit(&d, 1, resp(500), 1, t);
    assert_eq!(events.len(), 1);
    let e = events[0];
    assert_eq!(
        (e.action, e.kind, e.enforced, e.num_ejections, e.duration),
        (
            OutlierAction::Eject,
            EjectionType::Consecutive5xx,
            true,
            1,
            10 * SEC
        )
    );
    assert_eq!(e.host, addr(1));
    assert_eq!(e.since_last_action, None);
    assert!(h.is_ejected());
    assert_eq!(
        d.view(&h, t).consecutive_5xx,
        0,
        "the detection resets its counter"
    );
    assert_eq!(d.stats().ejections_active.get(), 1);
    assert_eq!(d.stats().ejections_enforced_total.get(), 1);
    assert_eq!(d.stats().enforced(EjectionType::Consecutive5xx).get(), 1);
    assert_eq!(d.stats().detected(EjectionType::Consecutive5xx).get(), 1);
    // More failures while ejected change nothing.
    assert!(hit(&d, 1, resp(500), 10, t).is_empty());
    assert_eq!(d.stats().ejections_enforced_total.get(), 1);
}

#[test]
fn gateway_failures_are_counted_apart_and_envoy_only_logs_them() {
    let t = Instant::now();
    let d = detector(OutlierConfig::ENVOY_DEFAULT, 10);
    // 500 resets the gateway count but not the 5xx count.
    assert!(hit(&d, 1, resp(502), 4, t).is_empty());
    // The 500 resets the gateway count (no gateway detection) and is the fifth 5xx.
    let events = hit(&d, 1, resp(500), 1, t);
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].kind, EjectionType::Consecutive5xx);
    let d = detector(OutlierConfig::ENVOY_DEFAULT, 10);
    let h = d.host(addr(1)).expect("host");
    assert!(hit(&d, 1, resp(502), 4, t).is_empty());
    let events = hit(&d, 1, resp(504), 1, t);
    // Gateway detection first (not enforced by default), then the 5xx ejection.
    assert_eq!(events.len(), 2);
    assert_eq!(events[0].kind, EjectionType::ConsecutiveGatewayFailure);
    assert!(!events[0].enforced);
    assert_eq!(
        events[0].not_enforced,
        Some(NotEnforced::EnforcementDisabled)
    );
    assert_eq!(events[1].kind, EjectionType::Consecutive5xx);
    assert!(events[1].enforced);
    assert!(h.is_ejected());
    let s = d.stats();
    assert_eq!(s.detected(EjectionType::ConsecutiveGatewayFailure).get(), 1);
    assert_eq!(s.enforced(EjectionType::ConsecutiveGatewayFailure).get(), 0);
    // Enforced gateway failures eject with their own type.
    let mut c = OutlierConfig::ENVOY_DEFAULT;
    c.consecutive_gateway_failure = 2;
    c.enforcing_consecutive_gateway_failure = true;
    let d = detector(c, 10);
    let events = hit(&d, 1, resp(503), 2, t);
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].kind, EjectionType::ConsecutiveGatewayFailure);
    assert_eq!(
        d.stats()
            .enforced(EjectionType::ConsecutiveGatewayFailure)
            .get(),
        1
    );
}

#[test]
fn local_origin_failures_count_apart_from_upstream_5xx() {
    let t = Instant::now();
    let d = detector(app_mesh(), 2);
    let h = d.host(addr(1)).expect("host");
    hit(&d, 1, resp(500), 2, t);
    hit(&d, 1, Outcome::ConnectFailure, 2, t);
    let v = d.view(&h, t);
    assert_eq!(
        (v.consecutive_5xx, v.consecutive_local_origin_failure),
        (2, 2)
    );
    assert!(!h.is_ejected(), "2 + 2 does not make 3 of either");
    // A response (even a 5xx) proves the host reachable: the local count restarts.
    hit(&d, 1, resp(404), 1, t);
    assert_eq!(d.view(&h, t).consecutive_local_origin_failure, 0);
    let events: Vec<_> = [
        Outcome::ConnectTimeout,
        Outcome::Reset { request_sent: true },
        Outcome::PerTryTimeout,
    ]
    .iter()
    .flat_map(|o| d.record(&h, o, t))
    .collect();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].kind, EjectionType::ConsecutiveLocalOriginFailure);
    assert!(h.is_ejected());
    assert_eq!(
        d.stats()
            .enforced(EjectionType::ConsecutiveLocalOriginFailure)
            .get(),
        1
    );
}

#[test]
fn without_the_split_local_failures_count_as_503_and_504() {
    let t = Instant::now();
    let mut c = OutlierConfig::ENVOY_DEFAULT;
    c.consecutive_5xx = 3;
    let d = detector(c, 10);
    let h = d.host(addr(1)).expect("host");
    hit(&d, 1, Outcome::ConnectFailure, 1, t);
    hit(&d, 1, Outcome::GlobalTimeout, 1, t);
    let v = d.view(&h, t);
    assert_eq!((v.consecutive_5xx, v.consecutive_gateway_failure), (2, 2));
    assert_eq!(v.consecutive_local_origin_failure, 0);
    let events = hit(&d, 1, resp(500), 1, t);
    assert_eq!(events[0].kind, EjectionType::Consecutive5xx);
}

#[test]
fn overload_and_local_overflow_never_count() {
    let t = Instant::now();
    let d = detector(app_mesh(), 2);
    let h = d.host(addr(1)).expect("host");
    assert!(hit(&d, 1, OVERLOADED, 100, t).is_empty());
    assert!(hit(&d, 1, Outcome::LocalOverflow, 100, t).is_empty());
    assert!(!h.is_ejected());
    // Nor do they reset a run of real failures.
    hit(&d, 1, resp(502), 2, t);
    hit(&d, 1, Outcome::ConnectFailure, 2, t);
    hit(&d, 1, OVERLOADED, 5, t);
    hit(&d, 1, Outcome::LocalOverflow, 5, t);
    let v = d.view(&h, t);
    assert_eq!(
        (v.consecutive_5xx, v.consecutive_local_origin_failure),
        (2, 2)
    );
    assert_eq!(hit(&d, 1, resp(502), 1, t).len(), 1);
    // And they are not traffic for the success rate.
    d.tick(t + SEC);
    assert_eq!(d.view(&h, t + SEC).success_rate, Some(0.0));
}

#[test]
fn ejection_time_grows_with_backoff_and_is_capped() {
    let t0 = Instant::now();
    let mut c = app_mesh();
    c.max_ejection_time = 25 * SEC;
    let d = detector(c, 2);
    let h = d.host(addr(1)).expect("host");
    let mut now = t0;
    let mut out_for = Vec::new();
    for round in 1..=4u32 {
        let e = hit(&d, 1, resp(500), 3, now);
        assert_eq!(e.len(), 1, "round {round}");
        assert_eq!(e[0].num_ejections, round);
        let ejected_at = now;
        // Ticks every second until it returns.
        loop {
            now += SEC;
            let events = d.tick(now);
            if let Some(u) = events.first() {
                assert_eq!(u.action, OutlierAction::Uneject);
                assert_eq!(u.uneject_cause, Some(UnejectCause::Time));
                assert_eq!(u.duration, now - ejected_at);
                assert_eq!(e[0].duration, now - ejected_at, "announced duration kept");
                break;
            }
            assert!(h.is_ejected());
        }
        out_for.push((now - ejected_at).as_secs());
        // Fails again within the same interval: no decay in between.
    }
    assert_eq!(out_for, [10, 20, 25, 25]);
    assert_eq!(d.stats().ejections_active.get(), 0);
}

#[test]
fn backoff_decays_one_step_per_healthy_interval() {
    let t0 = Instant::now();
    let d = detector(app_mesh(), 2);
    let h = d.host(addr(1)).expect("host");
    let mut now = t0;
    // Two back-to-back ejections: backoff 2.
    for _ in 0..2 {
        hit(&d, 1, resp(500), 3, now);
        while h.is_ejected() {
            now += SEC;
            d.tick(now);
        }
    }
    assert_eq!(d.view(&h, now).backoff, 2);
    // The tick that unejected did not decay; each later tick in rotation does.
    now += SEC;
    d.tick(now);
    assert_eq!(d.view(&h, now).backoff, 1);
    // Ejected now: backoff 2 again → 20 s.
    let e = hit(&d, 1, resp(500), 3, now);
    assert_eq!(e[0].duration, 20 * SEC);
    assert!(e[0].since_last_action.is_some());
    while h.is_ejected() {
        now += SEC;
        d.tick(now);
    }
    for _ in 0..5 {
        now += SEC;
        d.tick(now);
    }
    assert_eq!(d.view(&h, now).backoff, 0, "never below zero");
    assert_eq!(hit(&d, 1, resp(500), 3, now)[0].duration, 10 * SEC);
    assert_eq!(
        d.view(&h, now).num_ejections,
        4,
        "times ejected never decays"
    );
}

#[test]
fn ejection_is_checked_only_at_ticks_and_time_left_counts_down() {
    let t0 = Instant::now();
    let d = detector(app_mesh(), 2);
    let h = d.host(addr(1)).expect("host");
    hit(&d, 1, Outcome::ConnectFailure, 3, t0);
    let v = d.view(&h, t0 + 4 * SEC);
    assert_eq!(v.time_left, Some(6 * SEC));
    assert_eq!(
        v.ejection_type,
        Some(EjectionType::ConsecutiveLocalOriginFailure)
    );
    assert!(d.tick(t0 + 9 * SEC).is_empty());
    // Past due but not yet swept: still ejected, nothing left.
    assert_eq!(
        d.view(&h, t0 + Duration::from_millis(10_500)).time_left,
        Some(Duration::ZERO)
    );
    assert_eq!(d.tick(t0 + 11 * SEC).len(), 1);
    let v = d.view(&h, t0 + 11 * SEC);
    assert_eq!((v.ejected, v.time_left), (false, None));
    assert_eq!(v.consecutive_local_origin_failure, 0);
}

#[test]
fn percent_rule_with_one_two_three_and_ten_hosts() {
    // (hosts, max %) → hosts that can be ejected at once.
    let cases = [
        (1, 0, 0),
        (1, 10, 0),
        (1, 99, 0),
        (1, 100, 1),
        (2, 0, 1),
        (2, 10, 1),
        (2, 50, 1),
        (2, 100, 2),
        (3, 10, 1),
        (3, 34, 1),
        (3, 67, 2),
        (3, 100, 3),
        (10, 10, 1),
        (10, 19, 1),
        (10, 20, 2),
        (10, 50, 5),
        (10, 100, 10),
    ];
    for (hosts, pct, most) in cases {
        let mut ejected = 0;
        while ejection_allowed(ejected, hosts, pct) {
            ejected += 1;
            assert!(ejected <= hosts);
        }
        assert_eq!(ejected, most, "{hosts} hosts at {pct} %");
    }
    assert!(!ejection_allowed(0, 0, 100));
    // Envoy ≥ 1.31 would eject nothing with 2, 3 or 9 hosts at 10 %; here one goes.
    assert!(ejection_allowed(0, 9, 10));
}

#[test]
fn the_detector_applies_the_percent_rule_and_counts_overflow() {
    let t = Instant::now();
    let d = detector(OutlierConfig::app_mesh(2, SEC, 10 * SEC, 10), 3);
    assert!(hit(&d, 1, resp(500), 2, t)[0].enforced);
    let refused = hit(&d, 2, resp(500), 2, t);
    assert_eq!(refused.len(), 1);
    assert!(!refused[0].enforced);
    assert_eq!(
        refused[0].not_enforced,
        Some(NotEnforced::MaxEjectionPercent)
    );
    assert_eq!(d.stats().ejections_overflow.get(), 1);
    assert!(!d.host(addr(2)).expect("host").is_ejected());
    // The refused detection reset the count: two more failures detect again.
    assert!(hit(&d, 2, resp(500), 1, t).is_empty());
    assert_eq!(hit(&d, 2, resp(500), 1, t).len(), 1);
    assert_eq!(d.stats().ejections_overflow.get(), 2);
    // A single host is never ejected below 100 %.
    let d = detector(OutlierConfig::app_mesh(2, SEC, 10 * SEC, 99), 1);
    assert!(!hit(&d, 1, resp(500), 2, t)[0].enforced);
    let d = detector(OutlierConfig::app_mesh(2, SEC, 10 * SEC, 100), 1);
    assert!(hit(&d, 1, resp(500), 2, t)[0].enforced);
}

#[test]
fn health_check_success_unejects_local_origin_ejections_only() {
    let t = Instant::now();
    let d = detector(app_mesh(), 3);
    hit(&d, 1, Outcome::ConnectFailure, 3, t);
    hit(&d, 2, resp(500), 3, t);
    let (h1, h2, h3) = (
        d.host(addr(1)).expect("host"),
        d.host(addr(2)).expect("host"),
        d.host(addr(3)).expect("host"),
    );
    assert!(d.health_check_succeeded(&h3, t).is_none(), "not ejected");
    let e = d.health_check_succeeded(&h1, t + SEC).expect("unejected");
    assert_eq!(e.uneject_cause, Some(UnejectCause::HealthCheck));
    assert_eq!(e.duration, SEC);
    assert!(!h1.is_ejected());
    assert!(d.health_check_succeeded(&h2, t + SEC).is_none());
    assert!(h2.is_ejected());
    assert_eq!(d.stats().ejections_active.get(), 1);
    let mut c = app_mesh();
    c.uneject_on_health_check = HealthCheckUneject::Any;
    d.reconfigure(c);
    assert!(d.health_check_succeeded(&h2, t + SEC).is_some());
    c.uneject_on_health_check = HealthCheckUneject::Never;
    d.reconfigure(c);
    hit(&d, 1, Outcome::ConnectFailure, 3, t);
    assert!(d.health_check_succeeded(&h1, t + SEC).is_none());
}

#[test]
fn removed_hosts_leave_the_counts_and_are_ignored() {
    let t = Instant::now();
    let d = detector(app_mesh(), 3);
    let h1 = d.host(addr(1)).expect("host");
    hit(&d, 1, resp(500), 3, t);
    assert_eq!(d.stats().ejections_active.get(), 1);
    d.set_hosts(&[addr(2), addr(3), addr(4)]);
    assert_eq!(d.stats().ejections_active.get(), 0);
    assert!(!h1.is_ejected());
    assert!(d.host(addr(1)).is_none());
    assert!(d.record(&h1, &resp(500), t).is_empty());
    // Kept hosts keep their state.
    hit(&d, 2, resp(500), 2, t);
    d.set_hosts(&[addr(3), addr(2)]);
    let h2 = d.host(addr(2)).expect("host");
    assert_eq!(d.view(&h2, t).consecutive_5xx, 2);
    assert_eq!(d.hosts().len(), 2);
    assert_eq!(hit(&d, 2, resp(500), 1, t).len(), 1);
}

#[test]
fn success_rate_is_the_last_complete_interval() {
    let t = Instant::now();
    let d = detector(app_mesh(), 2);
    let h = d.host(addr(1)).expect("host");
    assert_eq!(d.view(&h, t).success_rate, None);
    hit(&d, 1, resp(200), 3, t);
    hit(&d, 1, resp(500), 1, t);
    assert_eq!(d.view(&h, t).success_rate, None, "the interval is not over");
    d.tick(t + SEC);
    assert_eq!(d.view(&h, t).success_rate, Some(75.0));
    d.tick(t + 2 * SEC);
    assert_eq!(
        d.view(&h, t).success_rate,
        None,
        "no traffic in the last interval"
    );
}

#[test]
fn event_lines_have_envoys_shape() {
    let t = Instant::now();
    let d = detector(OutlierConfig::app_mesh(1, SEC, 2 * SEC, 10), 3);
    let eject = hit(&d, 1, resp(500), 1, t)[0];
    let ts = SystemTime::UNIX_EPOCH + Duration::from_millis(1_700_000_000_123);
    assert_eq!(
        eject.to_json("cds_egress_m_n_http_80", ts),
        r#"{"type":"CONSECUTIVE_5XX","timestamp":"2023-11-14T22:13:20.123Z","cluster_name":"cds_egress_m_n_http_80","upstream_url":"127.0.0.1:5000","action":"EJECT","num_ejections":1,"enforced":true,"eject_consecutive_event":{},"ejection_duration_ms":2000}"#
    );
    let refused = hit(&d, 2, Outcome::ConnectFailure, 1, t)[0];
    assert_eq!(
        refused.to_json("c", ts),
        r#"{"type":"CONSECUTIVE_LOCAL_ORIGIN_FAILURE","timestamp":"2023-11-14T22:13:20.123Z","cluster_name":"c","upstream_url":"127.0.0.2:5000","action":"EJECT","num_ejections":0,"enforced":false,"eject_consecutive_event":{},"not_enforced_reason":"max_ejection_percent"}"#
    );
    let back = d.tick(t + 3 * SEC)[0];
    assert_eq!(
        back.to_json("c", ts),
        r#"{"type":"CONSECUTIVE_5XX","timestamp":"2023-11-14T22:13:20.123Z","secs_since_last_action":"3","cluster_name":"c","upstream_url":"127.0.0.1:5000","action":"UNEJECT","num_ejections":1,"enforced":false,"ejected_for_ms":3000,"uneject_reason":"ejection_time_elapsed"}"#
    );
    let again = hit(&d, 1, resp(500), 1, t + 5 * SEC)[0];
    assert!(again
        .to_json("c", ts)
        .contains(r#""secs_since_last_action":"2","#));
}

#[test]
fn stats_use_envoy_names() {
    let d = detector(app_mesh(), 2);
    hit(&d, 1, resp(500), 3, Instant::now());
    let mut out = Vec::new();
    d.stats()
        .visit("cluster.c.outlier_detection.", &mut |n, t, v| {
            out.push((n, t, v))
        });
    let get = |name: &str| {
        out.iter()
            .find(|(n, _, _)| n == &format!("cluster.c.outlier_detection.{name}"))
            .map(|(_, t, v)| (*t, *v))
    };
    assert_eq!(get("ejections_active"), Some((StatType::Gauge, 1)));
    assert_eq!(
        get("ejections_enforced_total"),
        Some((StatType::Counter, 1))
    );
    assert_eq!(get("ejections_overflow"), Some((StatType::Counter, 0)));
    assert_eq!(
        get("ejections_enforced_consecutive_5xx"),
        Some((StatType::Counter, 1))
    );
    assert_eq!(
        get("ejections_enforced_consecutive_gateway_failure"),
        Some((StatType::Counter, 0))
    );
    assert_eq!(
        get("ejections_detected_consecutive_local_origin_failure"),
        Some((StatType::Counter, 0))
    );
    assert_eq!(out.len(), 9);
    d.stats().ejections_overflow.inc();
    d.stats().reset();
    // Ejections record host faults: a reset keeps them (`kept_on_reset`).
    assert_eq!(d.stats().ejections_enforced_total.get(), 1);
    assert_eq!(d.stats().ejections_overflow.get(), 1);
    assert_eq!(d.stats().ejections_active.get(), 1, "gauges stay");
}
