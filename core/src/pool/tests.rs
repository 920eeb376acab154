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
