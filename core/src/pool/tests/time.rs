//! The idle and connect timeouts on tokio's paused clock: time moves only when the test (or
//! tokio's auto-advance, once every task waits on a timer) moves it.

use std::time::Duration;

use tokio::time::Instant;

use super::support::{addr, cluster, limits, Mode};
use crate::pool::{idle_expired, CheckoutError, PoolSettings};

fn settings(idle: Duration, connect: Duration) -> PoolSettings {
    PoolSettings {
        idle_timeout: idle,
        connect_timeout: connect,
        ..PoolSettings::default()
    }
}

#[test]
fn idle_expiry_is_a_function_of_now() {
    let t0 = Instant::now();
    let s = Duration::from_secs(10);
    assert!(!idle_expired(t0, t0 + Duration::from_millis(9_999), s));
    assert!(idle_expired(t0, t0 + s, s));
    assert!(
        !idle_expired(t0 + s, t0, s),
        "a clock read before `since` is not expiry"
    );
    assert!(!idle_expired(t0, t0 + s, Duration::MAX), "no idle timeout");
}

#[tokio::test(start_paused = true)]
async fn an_idle_connection_is_reused_before_the_idle_timeout_and_closed_after() {
    let idle = Duration::from_secs(10);
    let (c, ctl) = cluster(
        1,
        limits(5, 5, 5),
        settings(idle, Duration::from_secs(5)),
        Mode::Instant,
    );
    c.checkout().await.expect("first").release(true);
    tokio::time::advance(idle - Duration::from_millis(1)).await;
    let again = c.checkout().await.expect("reused");
    assert!(again.reused());
    again.release(true); // idle again from now
    tokio::time::advance(idle).await;
    let fresh = c.checkout().await.expect("a new connection");
    assert!(!fresh.reused());
    let counters = &c.info().counters;
    assert_eq!(counters.upstream_cx_idle_timeout.get(), 1);
    assert_eq!(counters.upstream_cx_total.get(), 2);
    assert_eq!(ctl.connects(), [addr(0), addr(0)]);
    assert_eq!(
        c.info().breakers.connections.current(),
        1,
        "the expired one freed its slot"
    );
}

#[tokio::test(start_paused = true)]
async fn a_connect_that_never_answers_times_out_and_frees_its_slot() {
    let connect = Duration::from_secs(5);
    let (c, _) = cluster(
        1,
        limits(1, 1, 5),
        settings(Duration::from_secs(60), connect),
        Mode::Never,
    );
    let start = Instant::now();
    let r = c.checkout().await;
    assert!(
        matches!(r, Err(CheckoutError::ConnectTimeout { addr: a }) if a == addr(0)),
        "{:?}",
        r.err()
    );
    assert_eq!(
        start.elapsed(),
        connect,
        "exactly the connect timeout, on the paused clock"
    );
    let info = c.info();
    assert_eq!(info.counters.upstream_cx_connect_timeout.get(), 1);
    assert_eq!(info.counters.upstream_cx_connect_fail.get(), 1);
    assert_eq!(c.hosts()[0].counters.cx_connect_fail.get(), 1);
    assert_eq!(info.breakers.connections.current(), 0);
    assert_eq!(c.hosts()[0].cx_active.get(), 0);
}

/// A request queued behind a connect that times out gets the freed slot and its own connect
/// timeout, not the remainder of the first.
#[tokio::test(start_paused = true)]
async fn a_queued_request_gets_the_slot_of_a_timed_out_connect() {
    let connect = Duration::from_secs(5);
    let (c, ctl) = cluster(
        1,
        limits(1, 1, 5),
        settings(Duration::from_secs(60), connect),
        Mode::Never,
    );
    let start = Instant::now();
    let c2 = c.clone();
    let first = tokio::spawn(async move { c2.checkout().await.map(drop) });
    super::support::settle().await;
    let c3 = c.clone();
    let second = tokio::spawn(async move { c3.checkout().await.map(drop) });
    super::support::settle().await;
    assert_eq!(c.info().breakers.pending.current(), 1);
    assert!(matches!(
        first.await.expect("task"),
        Err(CheckoutError::ConnectTimeout { .. })
    ));
    assert!(matches!(
        second.await.expect("task"),
        Err(CheckoutError::ConnectTimeout { .. })
    ));
    assert_eq!(start.elapsed(), connect * 2);
    assert_eq!(ctl.connects().len(), 2);
    assert_eq!(c.info().breakers.connections.current(), 0);
}
