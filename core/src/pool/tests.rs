//! The pool's unit tests: exact limits here; the queue, hosts and time in their own files.

mod fifo;
mod hosts;
mod support;
use support as tests_support;
mod time;

use super::*;
use std::time::Duration;

fn cluster(cx: u64, pending: u64, rq: u64) -> Arc<Cluster<SlotConnector>> {
    let t = Thresholds {
        max_connections: cx,
        max_pending_requests: pending,
        max_requests: rq,
        max_retries: 3,
    };
    let c = Arc::new(Cluster::new(
        "test".into(),
        t,
        PoolSettings::default(),
        SlotConnector,
    ));
    c.set_hosts(&[("127.0.0.1:1".parse().expect("addr"), String::new())]);
    c
}

#[tokio::test]
async fn a_cold_burst_gets_exactly_c_served_p_queued_and_the_rest_refused() {
    let c = cluster(5, 5, 1024);
    let mut served = Vec::new();
    for _ in 0..5 {
        served.push(c.checkout().await.expect("a connection slot"));
    }
    let mut queued = Vec::new();
    for _ in 0..5 {
        let c = c.clone();
        queued.push(tokio::spawn(async move {
            c.checkout().await.map(|co| co.release(true))
        }));
    }
    // Let every queued task reach its wait.
    while c.info().breakers.pending.current() < 5 {
        tokio::task::yield_now().await;
    }
    for _ in 0..2 {
        match c.checkout().await {
            Err(CheckoutError::Overflow(Limit::PendingRequests)) => {}
            other => panic!("expected a pending overflow, got {:?}", other.err()),
        }
    }
    let info = c.info();
    assert_eq!(info.breakers.connections.current(), 5);
    assert_eq!(info.breakers.connections.open(), 1);
    assert_eq!(info.breakers.pending.current(), 5);
    assert_eq!(info.breakers.pending.refused(), 2);
    assert_eq!(info.counters.upstream_rq_pending_overflow.get(), 2);
    // Releasing the served requests lets every queued one through on the same connections.
    for s in served {
        s.release(true);
    }
    for q in queued {
        tokio::time::timeout(Duration::from_secs(5), q)
            .await
            .expect("queued request served")
            .expect("task")
            .expect("checkout");
    }
    assert_eq!(info.breakers.pending.current(), 0);
    assert_eq!(info.breakers.requests.current(), 0);
    assert_eq!(
        info.breakers.connections.current(),
        5,
        "connections stay idle"
    );
    assert_eq!(info.counters.upstream_cx_total.get(), 5);
    assert_eq!(info.counters.upstream_rq_total.get(), 10);
}

#[tokio::test]
async fn a_closed_connection_frees_its_slot_for_a_queued_request() {
    let c = cluster(1, 1, 1024);
    let first = c.checkout().await.expect("slot");
    let c2 = c.clone();
    let waiter = tokio::spawn(async move { c2.checkout().await.map(drop) });
    while c.info().breakers.pending.current() < 1 {
        tokio::task::yield_now().await;
    }
    first.release(false); // not reusable: the connection closes
    tokio::time::timeout(Duration::from_secs(5), waiter)
        .await
        .expect("woken")
        .expect("task")
        .expect("served on a new connection");
    assert_eq!(c.info().counters.upstream_cx_total.get(), 2);
}

#[tokio::test]
async fn a_cancelled_queued_request_gives_its_slot_back() {
    let c = cluster(1, 1, 1024);
    let _held = c.checkout().await.expect("slot");
    let r = tokio::time::timeout(Duration::from_millis(20), c.checkout()).await;
    assert!(r.is_err(), "queued until the timeout");
    assert_eq!(c.info().breakers.pending.current(), 0);
    assert_eq!(c.info().counters.upstream_rq_cancelled.get(), 1);
}

#[tokio::test]
async fn max_requests_refuses_at_attach() {
    let c = cluster(10, 10, 1);
    let _a = c.checkout().await.expect("first");
    match c.checkout().await {
        Err(CheckoutError::Overflow(Limit::Requests)) => {}
        other => panic!("expected max_requests overflow, got {:?}", other.err()),
    }
    assert_eq!(c.info().counters.upstream_rq_active_overflow.get(), 1);
}

#[tokio::test]
async fn no_hosts_is_no_healthy_upstream() {
    let c = cluster(1, 1, 1);
    c.set_hosts(&[]);
    assert!(matches!(
        c.checkout().await,
        Err(CheckoutError::NoHealthyUpstream)
    ));
}

#[tokio::test]
async fn max_requests_per_connection_closes_the_connection() {
    let c = cluster(1, 1, 10);
    c.reconfigure(
        c.info().breakers.thresholds(),
        PoolSettings {
            max_requests_per_connection: 1,
            ..PoolSettings::default()
        },
    );
    c.checkout().await.expect("first").release(true);
    assert_eq!(c.info().breakers.connections.current(), 0);
    assert_eq!(c.info().counters.upstream_cx_max_requests.get(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heavy_contention_never_exceeds_and_never_loses_a_wakeup() {
    let c = cluster(3, 1000, 1000);
    let peak = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let tasks: Vec<_> = (0..64)
        .map(|i| {
            let c = c.clone();
            let peak = peak.clone();
            tokio::spawn(async move {
                for j in 0..50 {
                    let co = c.checkout().await.expect("served eventually");
                    peak.fetch_max(c.info().breakers.connections.current(), Ordering::SeqCst);
                    tokio::task::yield_now().await;
                    co.release((i + j) % 7 != 0);
                }
            })
        })
        .collect();
    for t in tasks {
        tokio::time::timeout(Duration::from_secs(30), t)
            .await
            .expect("no lost wakeup")
            .expect("task");
    }
    assert!(peak.load(Ordering::SeqCst) <= 3);
    assert_eq!(c.info().breakers.pending.current(), 0);
    assert_eq!(c.info().breakers.requests.current(), 0);
}

#[tokio::test]
async fn a_lowered_limit_closes_connections_above_it() {
    let c = cluster(3, 3, 100);
    let a = c.checkout().await.expect("a");
    let b = c.checkout().await.expect("b");
    let d = c.checkout().await.expect("d");
    a.release(true);
    b.release(true);
    c.reconfigure(
        Thresholds {
            max_connections: 1,
            max_pending_requests: 1,
            max_requests: 100,
            max_retries: 3,
        },
        PoolSettings::default(),
    );
    // Two idle, one busy, limit 1: both idle ones close now, the busy one stays until done.
    assert_eq!(c.info().breakers.connections.current(), 1);
    d.release(true);
    assert_eq!(
        c.info().breakers.connections.current(),
        1,
        "at the limit, kept"
    );
    let e = c.checkout().await.expect("reuses the one left");
    assert!(e.reused());
}

/// Many tasks on two threads check out, release, close, cancel while queued and avoid hosts,
/// while hosts are ejected and restored and the limit moves: nothing deadlocks, the connection
/// limit is never exceeded, and every slot comes back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn churn_with_cancels_ejections_and_reloads_never_deadlocks_or_leaks() {
    use tests_support::{addr, cluster, limits, Mode};
    let (c, _) = cluster(
        3,
        limits(4, 1000, 1000),
        PoolSettings::default(),
        Mode::Instant,
    );
    let peak = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let tasks: Vec<_> = (0..48u64)
        .map(|i| {
            let (c, peak) = (c.clone(), peak.clone());
            tokio::spawn(async move {
                let mut rng = fastrand::Rng::with_seed(i);
                for _ in 0..60 {
                    let avoid = [addr(rng.u16(..3))];
                    let opts = CheckoutOptions {
                        avoid: if rng.bool() { &avoid } else { &[] },
                        fresh: rng.u8(..10) == 0,
                    };
                    let attempt = c.checkout_with(opts);
                    let co = if rng.u8(..8) == 0 {
                        // Cancelled if it has to wait at all.
                        match tokio::time::timeout(Duration::from_micros(1), attempt).await {
                            Ok(r) => r,
                            Err(_) => continue,
                        }
                    } else {
                        attempt.await
                    };
                    let Ok(co) = co else { continue }; // no usable host for a moment
                    peak.fetch_max(c.info().breakers.connections.current(), Ordering::SeqCst);
                    tokio::task::yield_now().await;
                    match rng.u8(..4) {
                        0 => drop(co),
                        _ => co.release(true),
                    }
                }
            })
        })
        .collect();
    let flipper = {
        let c = c.clone();
        tokio::spawn(async move {
            let mut rng = fastrand::Rng::with_seed(99);
            for k in 0..300 {
                // One host out at a time, with either flag, back in on the next step.
                let flag = HealthFlag::ALL[k % 2];
                let host = addr(rng.u16(..3));
                c.set_health(host, flag, true);
                tokio::task::yield_now().await;
                c.set_health(host, flag, false);
                if k % 50 == 0 {
                    c.reconfigure(
                        limits(2 + rng.u64(..3), 1000, 1000),
                        PoolSettings::default(),
                    );
                }
                tokio::task::yield_now().await;
            }
            c.reconfigure(limits(4, 1000, 1000), PoolSettings::default());
        })
    };
    for t in tasks {
        tokio::time::timeout(Duration::from_secs(60), t)
            .await
            .expect("no deadlock, no lost hand-off")
            .expect("task");
    }
    flipper.await.expect("flipper");
    let info = c.info();
    // It did queue, cancel and hand off under the churn.
    assert!(info.counters.upstream_rq_pending_total.get() > 0);
    assert!(info.counters.upstream_rq_cancelled.get() > 0);
    assert!(peak.load(Ordering::SeqCst) <= 4);
    assert_eq!(info.breakers.pending.current(), 0);
    assert_eq!(info.breakers.requests.current(), 0);
    assert!(c.hosts().iter().all(|h| h.rq_active.get() == 0));
    // Only idle connections remain, and each is counted once.
    let idle: u64 = c.hosts().iter().map(|h| h.cx_active.get()).sum();
    assert_eq!(idle, info.breakers.connections.current());
}
