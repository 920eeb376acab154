use super::*;

const SEC: Duration = Duration::from_secs(1);

fn addr(i: u8) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, i], 8080))
}

fn config(healthy: u32, unhealthy: u32) -> HealthCheckConfig {
    HealthCheckConfig::app_mesh(
        ProbeKind::Http {
            path: "/ping".into(),
        },
        5 * SEC,
        2 * SEC,
        healthy,
        unhealthy,
    )
}

/// A checker with one host; returns both.
fn one_host(c: HealthCheckConfig) -> (HealthChecker, Arc<HostHealth>) {
    let checker = HealthChecker::new(c);
    let host = checker.set_hosts(&[addr(1)]).added.remove(0);
    (checker, host)
}

const FAIL: CheckResult = CheckResult::Failure { status: 503 };

/// Records `results` in order and returns the states after each.
fn run(checker: &HealthChecker, host: &HostHealth, results: &[CheckResult]) -> Vec<HealthState> {
    let t = Instant::now();
    results
        .iter()
        .map(|r| {
            checker.record(host, *r, t);
            host.state()
        })
        .collect()
}

#[test]
fn a_new_host_is_used_until_its_first_check_which_decides_at_once() {
    use HealthState::*;
    let (checker, host) = one_host(config(3, 3));
    assert_eq!(host.state(), Unchecked);
    assert!(!host.is_failed());
    assert_eq!(checker.healthy_hosts(), 1);
    assert_eq!(run(&checker, &host, &[CheckResult::Success]), [Healthy]);

    let (checker, host) = one_host(config(3, 3));
    let t = Instant::now();
    let u = checker.record(&host, CheckResult::NetworkFailure, t);
    assert_eq!(
        u.transition,
        Some(HealthTransition {
            host: addr(1),
            from: Unchecked,
            to: Unhealthy,
            result: CheckResult::NetworkFailure,
            at: t,
        })
    );
    assert!(host.is_failed());
    assert_eq!(checker.healthy_hosts(), 0);
}

#[test]
fn thresholds_count_consecutive_results() {
    use HealthState::*;
    let (checker, host) = one_host(config(2, 3));
    let states = run(
        &checker,
        &host,
        &[
            CheckResult::Success, // first: healthy at once
            FAIL,
            CheckResult::Timeout,
            CheckResult::Success, // resets the failures
            FAIL,
            CheckResult::NetworkFailure,
            CheckResult::Timeout, // third in a row
            CheckResult::Success,
            FAIL, // resets the successes
            CheckResult::Success,
            CheckResult::Success, // second in a row
        ],
    );
    assert_eq!(
        states,
        [
            Healthy, Healthy, Healthy, Healthy, Healthy, Healthy, Unhealthy, Unhealthy, Unhealthy,
            Unhealthy, Healthy
        ]
    );
    let s = checker.stats();
    assert_eq!(s.attempt.get(), 11);
    assert_eq!(s.success.get(), 5);
    assert_eq!(s.failure.get(), 6);
    assert_eq!(s.network_failure.get(), 3);
}

#[test]
fn an_unexpected_status_counts_toward_the_threshold_like_any_failure() {
    use HealthState::*;
    let (checker, host) = one_host(config(2, 2));
    let states = run(&checker, &host, &[CheckResult::Success, FAIL, FAIL]);
    assert_eq!(states, [Healthy, Healthy, Unhealthy]);
    assert_eq!(checker.stats().network_failure.get(), 0);
}

#[test]
fn transitions_and_outlier_hints_are_reported() {
    let (checker, host) = one_host(config(2, 2));
    let t = Instant::now();
    let u = checker.record(&host, CheckResult::Success, t);
    assert_eq!(
        u.transition.map(|x| (x.from, x.to)),
        Some((HealthState::Unchecked, HealthState::Healthy))
    );
    assert!(u.uneject_outlier);
    let u = checker.record(&host, CheckResult::Success, t);
    assert_eq!(u.transition, None);
    assert!(u.uneject_outlier, "every success of a healthy host");
    checker.record(&host, FAIL, t);
    checker.record(&host, FAIL, t);
    let u = checker.record(&host, CheckResult::Success, t);
    assert_eq!(u.transition, None);
    assert!(!u.uneject_outlier, "still failed by the health check");
    assert!(!checker.record(&host, FAIL, t).uneject_outlier);
}

#[test]
fn a_timed_out_failed_host_shows_active_hc_timeout() {
    let (checker, host) = one_host(config(2, 2));
    let t = Instant::now();
    checker.record(&host, CheckResult::Success, t);
    checker.record(&host, CheckResult::Timeout, t);
    let v = host.view();
    assert!(!v.timed_out, "healthy hosts do not show it");
    assert_eq!(v.failures, 1);
    checker.record(&host, CheckResult::Timeout, t + SEC);
    let v = host.view();
    assert!(v.timed_out);
    assert_eq!(v.last, Some((CheckResult::Timeout, t + SEC)));
    checker.record(&host, FAIL, t);
    assert!(!host.view().timed_out, "another failure clears it");
}

#[test]
fn first_delay_and_interval_jitter_stay_in_range() {
    let c = config(2, 2);
    assert_eq!(c.initial_jitter, SEC);
    let mut rng = fastrand::Rng::with_seed(9);
    let (mut lo, mut hi) = (Duration::MAX, Duration::ZERO);
    for _ in 0..5000 {
        let d = c.first_delay(rng.u64(..));
        assert!(d < SEC);
        lo = lo.min(d);
        hi = hi.max(d);
        let n = c.next_delay(rng.u64(..));
        assert!(n >= 5 * SEC && n < 5500 * Duration::from_millis(1), "{n:?}");
    }
    assert!(lo < Duration::from_millis(10) && hi > Duration::from_millis(990));
    assert_eq!(c.first_delay(1234), Duration::from_millis(234));
    assert_eq!(c.next_delay(499), Duration::from_millis(5499));
    assert_eq!(c.next_delay(500), 5 * SEC);
    // No jitter configured: exact intervals.
    let mut c = config(2, 2);
    c.initial_jitter = Duration::ZERO;
    c.interval_jitter_percent = 0;
    assert_eq!(c.first_delay(u64::MAX), Duration::ZERO);
    assert_eq!(c.next_delay(u64::MAX), 5 * SEC);
    // A short interval bounds the initial jitter.
    let c = HealthCheckConfig::app_mesh(ProbeKind::Tcp, Duration::from_millis(300), SEC, 2, 2);
    assert_eq!(c.initial_jitter, Duration::from_millis(300));
}

#[test]
fn probes_target_the_host_with_its_name() {
    let c = config(2, 2);
    let p = c.probe(addr(2), "green.local");
    assert_eq!(p.target, addr(2));
    assert_eq!(p.host, "green.local:8080");
    assert_eq!(p.timeout, 2 * SEC);
    assert_eq!(
        p.kind,
        ProbeKind::Http {
            path: "/ping".into()
        }
    );
    assert_eq!(c.probe(addr(2), "").host, "127.0.0.2:8080");
    assert_eq!(p.classify(200), CheckResult::Success);
    assert_eq!(p.classify(201), CheckResult::Failure { status: 201 });
    assert_eq!(p.classify(204), CheckResult::Failure { status: 204 });
    assert_eq!(p.classify(503), FAIL);
}

#[test]
fn hosts_come_and_go_keeping_state() {
    let checker = HealthChecker::new(config(2, 2));
    let c = checker.set_hosts(&[addr(1), addr(2)]);
    assert_eq!(c.added.len(), 2);
    assert!(c.removed.is_empty());
    let h1 = checker.host(addr(1)).expect("host");
    checker.record(&h1, FAIL, Instant::now());
    assert_eq!(checker.healthy_hosts(), 1);
    let c = checker.set_hosts(&[addr(1), addr(3)]);
    assert_eq!(
        c.added.iter().map(|h| h.addr()).collect::<Vec<_>>(),
        [addr(3)]
    );
    assert_eq!(c.removed.len(), 1);
    assert!(c.removed[0].is_removed());
    assert!(checker.host(addr(1)).expect("kept").is_failed());
    assert_eq!(checker.healthy_hosts(), 1);
    assert_eq!(checker.hosts().len(), 2);
    assert!(checker.set_hosts(&[addr(3), addr(1)]).added.is_empty());
}

#[test]
fn lowering_a_threshold_on_reload_still_transitions() {
    let (checker, host) = one_host(config(5, 5));
    let t = Instant::now();
    checker.record(&host, FAIL, t);
    for _ in 0..3 {
        checker.record(&host, CheckResult::Success, t);
    }
    assert_eq!(host.state(), HealthState::Unhealthy);
    checker.reconfigure(config(2, 2));
    checker.record(&host, CheckResult::Success, t);
    assert_eq!(host.state(), HealthState::Healthy, "4 ≥ 2");
}

#[test]
fn stats_use_envoy_names() {
    let (checker, host) = one_host(config(2, 2));
    checker.record(&host, CheckResult::NetworkFailure, Instant::now());
    let mut out = Vec::new();
    checker.visit("cluster.c.health_check.", &mut |n, t, v| {
        out.push((n, t, v))
    });
    let want: Vec<(String, StatType, u64)> = [
        ("attempt", StatType::Counter, 1),
        ("success", StatType::Counter, 0),
        ("failure", StatType::Counter, 1),
        ("network_failure", StatType::Counter, 1),
        ("healthy", StatType::Gauge, 0),
    ]
    .into_iter()
    .map(|(n, t, v)| (format!("cluster.c.health_check.{n}"), t, v))
    .collect();
    assert_eq!(out, want);
    checker.stats().reset();
    assert_eq!(checker.stats().attempt.get(), 0);
    assert_eq!(checker.stats().failure.get(), 1, "faults are kept");
}
