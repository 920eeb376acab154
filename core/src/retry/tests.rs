use super::*;

fn on(f: impl FnOnce(&mut RetryOn)) -> RetryOn {
    let mut r = RetryOn::default();
    f(&mut r);
    r
}

fn resp(status: u16) -> Outcome {
    Outcome::Response {
        status,
        overloaded: false,
    }
}

const NOT_SENT: Outcome = Outcome::Reset {
    request_sent: false,
};
const SENT: Outcome = Outcome::Reset { request_sent: true };

/// A cluster with a `max_retries` breaker and counters; `ctx` borrows them.
struct Cluster {
    max_retries: Arc<Resource>,
    stats: RetryStats,
    active: u64,
    budget: RetryBudget,
}

impl Cluster {
    fn new(max_retries: u64) -> Cluster {
        Cluster {
            max_retries: Arc::new(Resource::new(max_retries)),
            stats: RetryStats::default(),
            active: 100,
            budget: RetryBudget::DEFAULT,
        }
    }

    fn ctx(&self) -> RetryContext<'_> {
        RetryContext {
            active_requests: self.active,
            budget: self.budget,
            max_retries: &self.max_retries,
            stats: &self.stats,
        }
    }
}

fn policy(retry_on: RetryOn, num_retries: u32) -> RetryPolicy {
    RetryPolicy {
        retry_on,
        num_retries,
        ..RetryPolicy::default()
    }
}

#[test]
fn server_error_retries_every_5xx_and_every_local_failure_but_never_overload() {
    let r = on(|r| r.five_xx = true);
    for status in [500, 501, 502, 503, 504, 509, 511, 599] {
        assert!(r.would_retry(&resp(status)), "{status}");
    }
    for status in [200, 204, 301, 404, 409, 429, 600] {
        assert!(!r.would_retry(&resp(status)), "{status}");
    }
    for o in [
        Outcome::ConnectFailure,
        Outcome::ConnectTimeout,
        SENT,
        NOT_SENT,
        Outcome::PerTryTimeout,
    ] {
        assert!(r.would_retry(&o), "{o:?}");
    }
    let overloaded = Outcome::Response {
        status: 503,
        overloaded: true,
    };
    for o in [overloaded, Outcome::LocalOverflow, Outcome::GlobalTimeout] {
        assert!(!r.would_retry(&o), "{o:?}");
    }
}

#[test]
fn gateway_error_retries_502_to_504_and_local_failures() {
    let r = on(|r| r.gateway_error = true);
    for status in [502, 503, 504] {
        assert!(r.would_retry(&resp(status)), "{status}");
    }
    for status in [500, 501, 505, 409] {
        assert!(!r.would_retry(&resp(status)), "{status}");
    }
    assert!(r.would_retry(&Outcome::ConnectFailure));
    assert!(r.would_retry(&SENT));
    assert!(r.would_retry(&Outcome::PerTryTimeout));
}

#[test]
fn client_stream_and_connection_errors_retry_only_their_own_outcomes() {
    let client = on(|r| r.retriable_4xx = true);
    assert!(client.would_retry(&resp(409)));
    assert!(!client.would_retry(&resp(408)));
    assert!(!client.would_retry(&resp(503)));
    assert!(!client.would_retry(&Outcome::ConnectFailure));

    let stream = on(|r| r.refused_stream = true);
    assert!(stream.would_retry(&NOT_SENT));
    assert!(!stream.would_retry(&SENT));
    assert!(!stream.would_retry(&Outcome::ConnectFailure));
    assert!(!stream.would_retry(&Outcome::PerTryTimeout));
    assert!(!stream.would_retry(&resp(503)));

    let connect = on(|r| r.connect_failure = true);
    assert!(connect.would_retry(&Outcome::ConnectFailure));
    assert!(connect.would_retry(&Outcome::ConnectTimeout));
    assert!(!connect.would_retry(&NOT_SENT));
    assert!(!connect.would_retry(&Outcome::PerTryTimeout));
    assert!(!connect.would_retry(&resp(502)));

    assert!(!RetryOn::default().would_retry(&resp(503)));
    assert!(RetryOn::default().is_empty());
    assert_eq!(
        on(|r| {
            r.five_xx = true;
            r.connect_failure = true;
        })
        .envoy_names(),
        ["5xx", "connect-failure"]
    );
}

#[test]
fn overloaded_header_is_read_from_the_response() {
    let mut h = http::HeaderMap::new();
    assert_eq!(Outcome::from_response(503, &h), resp(503));
    h.insert("x-envoy-overloaded", http::HeaderValue::from_static("true"));
    assert_eq!(
        Outcome::from_response(503, &h),
        Outcome::Response {
            status: 503,
            overloaded: true
        }
    );
    assert!(!on(|r| r.five_xx = true).would_retry(&Outcome::from_response(503, &h)));
}

#[test]
fn backoff_ceilings_follow_envoys_code() {
    let b = Backoff::ENVOY_DEFAULT;
    let ms: Vec<u128> = (1..=7).map(|n| b.ceiling(n).as_millis()).collect();
    assert_eq!(ms, [25, 50, 100, 200, 250, 250, 250]);
    assert_eq!(b.ceiling(0), Duration::from_millis(25));
    assert_eq!(b.ceiling(u32::MAX), Duration::from_millis(250));
    // Uneven cap: doubling stops at the cap.
    let b = Backoff::new(Duration::from_millis(25), Some(Duration::from_millis(60)));
    let ms: Vec<u128> = (1..=4).map(|n| b.ceiling(n).as_millis()).collect();
    assert_eq!(ms, [25, 50, 60, 60]);
}

#[test]
fn backoff_delays_stay_in_range_and_cover_it() {
    let b = Backoff::ENVOY_DEFAULT;
    let mut rng = fastrand::Rng::with_seed(42);
    for n in 1..=6 {
        let ceiling = b.ceiling(n);
        let mut lo = Duration::MAX;
        let mut hi = Duration::ZERO;
        for _ in 0..2000 {
            let d = b.delay(n, rng.u64(..));
            assert!(d < ceiling, "retry {n}: {d:?} ≥ {ceiling:?}");
            lo = lo.min(d);
            hi = hi.max(d);
        }
        assert_eq!(lo, Duration::ZERO, "retry {n}");
        assert_eq!(hi, ceiling - Duration::from_millis(1), "retry {n}");
    }
    // Exact arithmetic: random % ceiling in ms.
    assert_eq!(b.delay(1, 24), Duration::from_millis(24));
    assert_eq!(b.delay(1, 25), Duration::ZERO);
    assert_eq!(b.delay(3, 1_000_099), Duration::from_millis(99));
}

#[test]
fn backoff_rounds_and_defaults_like_envoy() {
    let b = Backoff::new(Duration::from_micros(10), None);
    assert_eq!(b.base, Duration::from_millis(1));
    assert_eq!(b.max, Duration::from_millis(10));
    let b = Backoff::new(Duration::from_millis(100), Some(Duration::from_millis(50)));
    assert_eq!(b.max, Duration::from_millis(100));
    assert_eq!(b.delay(9, u64::MAX), Duration::from_millis(u64::MAX % 100));
}

#[test]
fn budget_is_a_share_of_active_requests_with_a_floor() {
    let b = RetryBudget::DEFAULT;
    assert_eq!(b.limit(0), 3);
    assert_eq!(b.limit(14), 3); // 2.8 → 2, floor 3
    assert_eq!(b.limit(15), 3);
    assert_eq!(b.limit(20), 4);
    assert_eq!(b.limit(24), 4); // 4.8 truncates
    assert_eq!(b.limit(100), 20);
    assert_eq!(b.limit(u64::MAX), u64::MAX / 5);
    assert!(b.allows(100, 19));
    assert!(!b.allows(100, 20));
    assert!(b.allows(0, 2));
    assert!(!b.allows(0, 3));
    assert_eq!(b.remaining(100, 5), 15);
    assert_eq!(b.remaining(100, 50), 0);
    let none = RetryBudget {
        budget_percent: 0,
        min_retry_concurrency: 0,
    };
    assert!(!none.allows(1000, 0));
    let all = RetryBudget {
        budget_percent: 100,
        min_retry_concurrency: 0,
    };
    assert!(all.allows(10, 9));
    assert!(!all.allows(10, 10));
}

#[test]
fn retries_until_success_counting_attempts_and_stats() {
    let c = Cluster::new(10);
    let mut s = RetryState::new(policy(on(|r| r.five_xx = true), 3));
    assert_eq!(s.attempts(), 1);
    let d = s.record(&resp(503), &c.ctx(), 30);
    assert_eq!(
        d,
        Decision::Retry {
            after: Duration::from_millis(5)
        }
    );
    assert_eq!(
        c.max_retries.current(),
        1,
        "the retry holds a max_retries slot"
    );
    assert_eq!(s.attempts(), 2);
    let d = s.record(&Outcome::ConnectFailure, &c.ctx(), 30);
    assert_eq!(
        d,
        Decision::Retry {
            after: Duration::from_millis(30)
        }
    );
    assert_eq!(c.max_retries.current(), 1, "the previous slot was released");
    assert_eq!(s.record(&resp(200), &c.ctx(), 0), Decision::NoRetry);
    assert_eq!(c.max_retries.current(), 0);
    assert_eq!(s.attempts(), 3);
    assert_eq!(s.retries(), 2);
    assert_eq!(c.stats.upstream_rq_retry.get(), 2);
    assert_eq!(c.stats.upstream_rq_retry_backoff_exponential.get(), 2);
    assert_eq!(c.stats.upstream_rq_retry_success.get(), 1);
    assert_eq!(c.stats.upstream_rq_retry_limit_exceeded.get(), 0);
}

#[test]
fn running_out_of_retries_is_limit_exceeded() {
    let c = Cluster::new(10);
    let mut s = RetryState::new(policy(on(|r| r.gateway_error = true), 2));
    assert!(matches!(
        s.record(&resp(502), &c.ctx(), 0),
        Decision::Retry { .. }
    ));
    assert!(matches!(
        s.record(&resp(502), &c.ctx(), 0),
        Decision::Retry { .. }
    ));
    assert_eq!(s.record(&resp(502), &c.ctx(), 0), Decision::LimitExceeded);
    assert_eq!(s.attempts(), 3);
    assert_eq!(c.stats.upstream_rq_retry_limit_exceeded.get(), 1);
    assert_eq!(c.stats.upstream_rq_retry_success.get(), 0);
    assert_eq!(
        c.max_retries.current(),
        0,
        "no slot held after the last attempt"
    );
    // Zero retries: the first retryable failure is URX, as Envoy.
    let mut s = RetryState::new(policy(on(|r| r.gateway_error = true), 0));
    assert_eq!(s.record(&resp(504), &c.ctx(), 0), Decision::LimitExceeded);
}

#[test]
fn decision_order_is_would_retry_then_limit_then_budget() {
    // Not retryable: NoRetry even with no retries left and a full breaker.
    let c = Cluster::new(0);
    let mut s = RetryState::new(policy(on(|r| r.five_xx = true), 0));
    assert_eq!(s.record(&resp(404), &c.ctx(), 0), Decision::NoRetry);
    // Retryable, no retries left, breaker full: URX wins over UO.
    assert_eq!(s.record(&resp(500), &c.ctx(), 0), Decision::LimitExceeded);
    assert_eq!(c.stats.upstream_rq_retry_overflow.get(), 0);
    // Retries left but the breaker is full: UO, and the retry is used up.
    let mut s = RetryState::new(policy(on(|r| r.five_xx = true), 1));
    assert_eq!(
        s.record(&resp(500), &c.ctx(), 0),
        Decision::Overflow(RetryOverflow::MaxRetries)
    );
    assert_eq!(s.record(&resp(500), &c.ctx(), 0), Decision::LimitExceeded);
    assert_eq!(c.stats.upstream_rq_retry_overflow.get(), 1);
    assert_eq!(c.stats.upstream_rq_retry_budget_overflow.get(), 0);
    assert_eq!(
        c.max_retries.refused(),
        1,
        "the breaker counted its refusal"
    );
}

#[test]
fn budget_refuses_before_the_breaker_and_counts_retries_in_backoff() {
    let mut c = Cluster::new(1000);
    c.active = 10; // limit max(2, 3) = 3
    let mut held: Vec<RetryState> = (0..3)
        .map(|_| {
            let mut s = RetryState::new(policy(on(|r| r.five_xx = true), 5));
            assert!(matches!(
                s.record(&resp(503), &c.ctx(), 0),
                Decision::Retry { .. }
            ));
            s // in backoff: its slot is held
        })
        .collect();
    assert_eq!(c.max_retries.current(), 3);
    let mut s = RetryState::new(policy(on(|r| r.five_xx = true), 5));
    assert_eq!(
        s.record(&resp(503), &c.ctx(), 0),
        Decision::Overflow(RetryOverflow::Budget)
    );
    assert_eq!(c.stats.upstream_rq_retry_overflow.get(), 1);
    assert_eq!(c.stats.upstream_rq_retry_budget_overflow.get(), 1);
    assert_eq!(c.max_retries.refused(), 0, "the breaker was not asked");
    // More active requests raise the limit: 20 active → 4.
    c.active = 20;
    let mut s = RetryState::new(policy(on(|r| r.five_xx = true), 5));
    assert!(matches!(
        s.record(&resp(503), &c.ctx(), 0),
        Decision::Retry { .. }
    ));
    held.push(s);
    assert_eq!(c.max_retries.current(), 4);
    drop(held);
    assert_eq!(
        c.max_retries.current(),
        0,
        "dropping the states frees every slot"
    );
}

#[test]
fn never_retried_outcomes_stop_even_after_a_retry() {
    let c = Cluster::new(10);
    for last in [
        Outcome::LocalOverflow,
        Outcome::GlobalTimeout,
        Outcome::Response {
            status: 503,
            overloaded: true,
        },
    ] {
        let mut s = RetryState::new(policy(
            RetryOn {
                five_xx: true,
                gateway_error: true,
                retriable_4xx: true,
                refused_stream: true,
                connect_failure: true,
                reset: true,
                retriable_status_codes: [503].into_iter().collect(),
            },
            5,
        ));
        assert!(matches!(
            s.record(&resp(500), &c.ctx(), 0),
            Decision::Retry { .. }
        ));
        assert_eq!(s.record(&last, &c.ctx(), 0), Decision::NoRetry, "{last:?}");
        assert_eq!(c.max_retries.current(), 0);
    }
}

#[test]
fn per_try_timeouts_are_counted_and_retried_under_5xx() {
    let c = Cluster::new(10);
    let mut p = policy(on(|r| r.five_xx = true), 1);
    p.per_try_timeout = Some(Duration::from_millis(500));
    let mut s = RetryState::new(p);
    assert_eq!(s.per_try_timeout(), Some(Duration::from_millis(500)));
    assert!(matches!(
        s.record(&Outcome::PerTryTimeout, &c.ctx(), 0),
        Decision::Retry { .. }
    ));
    assert_eq!(
        s.record(&Outcome::PerTryTimeout, &c.ctx(), 0),
        Decision::LimitExceeded
    );
    assert_eq!(c.stats.upstream_rq_per_try_timeout.get(), 2);
}

#[test]
fn abandoned_requests_are_not_retried() {
    let c = Cluster::new(10);
    let mut s = RetryState::new(policy(on(|r| r.five_xx = true), 3));
    s.abandon(&c.stats);
    s.abandon(&c.stats);
    assert_eq!(s.record(&resp(503), &c.ctx(), 0), Decision::NoRetry);
    assert_eq!(c.stats.retry_or_shadow_abandoned.get(), 1);
}

#[test]
fn backoff_grows_with_each_retry_of_one_request() {
    let c = Cluster::new(10);
    let mut s = RetryState::new(policy(on(|r| r.five_xx = true), 6));
    let afters: Vec<Duration> = (0..6)
        .map(|_| match s.record(&resp(500), &c.ctx(), u64::MAX) {
            Decision::Retry { after } => after,
            d => panic!("expected a retry, got {d:?}"),
        })
        .collect();
    let ms: Vec<u64> = afters.iter().map(|d| d.as_millis() as u64).collect();
    let m = u64::MAX;
    assert_eq!(ms, [m % 25, m % 50, m % 100, m % 200, m % 250, m % 250]);
}

#[test]
fn unset_route_default_retries_only_what_the_upstream_never_processed() {
    let d = RetryPolicy::UNSET_ROUTE_DEFAULT;
    assert_eq!(d.num_retries, 2);
    assert!(d.retry_on.would_retry(&Outcome::ConnectFailure));
    assert!(d.retry_on.would_retry(&NOT_SENT));
    assert!(!d.retry_on.would_retry(&SENT));
    assert!(!d.retry_on.would_retry(&resp(503)));
    assert!(!d.retry_on.would_retry(&Outcome::PerTryTimeout));
}

#[test]
fn stats_use_envoy_names_and_keep_refusals_on_reset() {
    let s = RetryStats::default();
    s.upstream_rq_retry.inc();
    s.upstream_rq_retry_overflow.inc();
    s.upstream_rq_per_try_timeout.inc();
    let mut out = Vec::new();
    s.visit("cluster.c.", &mut |n, t, v| out.push((n, t, v)));
    assert_eq!(out.len(), 8);
    assert!(out.contains(&("cluster.c.upstream_rq_retry".into(), StatType::Counter, 1)));
    s.reset();
    assert_eq!(s.upstream_rq_retry.get(), 0);
    assert_eq!(s.upstream_rq_retry_overflow.get(), 1);
    assert_eq!(s.upstream_rq_per_try_timeout.get(), 1);
}
