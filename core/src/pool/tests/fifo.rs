//! The pending queue: strictly FIFO, with hand-off, and `upstream_cx_overflow` as Envoy counts
//! it. Current-thread runtime: a task runs only when the test yields, so every interleaving
//! here is chosen by the test.

use std::sync::{Arc, Mutex};
use std::task::Poll;

use super::support::{cluster, limits, poll_once, settle, Mode};
use crate::breaker::Limit;
use crate::pool::{CheckoutError, PoolSettings};

/// Spawns `n` waiters, one after the other (each queued before the next starts); each records
/// its number in `order` when served, then releases (`reuse`) its connection.
macro_rules! queue_waiters {
    ($c:expr, $n:expr, $reuse:expr, $order:expr) => {{
        let mut handles = Vec::new();
        for i in 0..$n {
            let (c, order) = ($c.clone(), $order.clone());
            handles.push(tokio::spawn(async move {
                let co = c.checkout().await?;
                order.lock().expect("lock").push(i);
                co.release($reuse);
                Ok::<(), CheckoutError>(())
            }));
            settle().await;
            assert_eq!($c.info().breakers.pending.current(), i as u64 + 1);
        }
        handles
    }};
}

#[tokio::test]
async fn a_released_connection_goes_to_the_oldest_waiter_not_to_a_newcomer() {
    let (c, _) = cluster(
        1,
        limits(1, 10, 100),
        PoolSettings::default(),
        Mode::Instant,
    );
    let held = c.checkout().await.expect("the one connection");
    let order = Arc::new(Mutex::new(Vec::new()));
    let waiters = queue_waiters!(c, 5, true, order);

    // The connection goes idle while five wait; a newcomer arrives before any waiter runs.
    held.release(true);
    let newcomer = c.checkout();
    tokio::pin!(newcomer);
    assert!(
        poll_once(newcomer.as_mut()).await.is_pending(),
        "the newcomer queues behind the five"
    );
    for w in waiters {
        w.await.expect("task").expect("served");
    }
    assert_eq!(*order.lock().expect("lock"), [0, 1, 2, 3, 4]);
    let last = newcomer.await.expect("served last, on the same connection");
    assert!(last.reused());
    assert_eq!(c.info().counters.upstream_cx_total.get(), 1);
    assert_eq!(c.info().breakers.pending.current(), 0);
}

#[tokio::test]
async fn a_freed_slot_goes_to_the_oldest_waiter_which_opens_its_connection() {
    let (c, ctl) = cluster(
        1,
        limits(1, 10, 100),
        PoolSettings::default(),
        Mode::Instant,
    );
    let held = c.checkout().await.expect("the one connection");
    let order = Arc::new(Mutex::new(Vec::new()));
    // Each waiter closes its connection after its request: every hand-off is a slot.
    let waiters = queue_waiters!(c, 3, false, order);
    ctl.set(Mode::Gated);

    held.release(false); // closed: its slot goes to waiter 0, which starts to connect
    settle().await;
    assert_eq!(ctl.connects().len(), 2);
    let newcomer = c.checkout();
    tokio::pin!(newcomer);
    assert!(poll_once(newcomer.as_mut()).await.is_pending());
    assert_eq!(
        (
            c.info().breakers.connections.current(),
            ctl.connects().len()
        ),
        (1, 2),
        "the newcomer opened nothing: waiter 0 holds the only slot while it connects"
    );
    ctl.allow(4);
    for w in waiters {
        w.await.expect("task").expect("served");
    }
    assert_eq!(*order.lock().expect("lock"), [0, 1, 2]);
    newcomer.await.expect("served after the three");
    assert_eq!(c.info().counters.upstream_cx_total.get(), 5);
}

#[tokio::test]
async fn a_cancelled_waiter_leaves_the_queue_and_the_order_holds() {
    let (c, _) = cluster(
        1,
        limits(1, 10, 100),
        PoolSettings::default(),
        Mode::Instant,
    );
    let held = c.checkout().await.expect("slot");
    let order = Arc::new(Mutex::new(Vec::new()));
    let mut waiters = queue_waiters!(c, 3, true, order);
    let middle = waiters.remove(1);
    middle.abort();
    settle().await;
    assert_eq!(c.info().breakers.pending.current(), 2);
    assert_eq!(c.info().counters.upstream_rq_cancelled.get(), 1);
    held.release(true);
    for w in waiters {
        w.await.expect("task").expect("served");
    }
    assert_eq!(*order.lock().expect("lock"), [0, 2]);
}

#[tokio::test]
async fn a_waiter_cancelled_after_its_hand_off_passes_the_connection_on() {
    let (c, _) = cluster(
        1,
        limits(1, 10, 100),
        PoolSettings::default(),
        Mode::Instant,
    );
    let held = c.checkout().await.expect("slot");
    let order = Arc::new(Mutex::new(Vec::new()));
    let mut waiters = queue_waiters!(c, 2, true, order);
    held.release(true); // handed to waiter 0, which has not run yet
    waiters.remove(0).abort();
    for w in waiters {
        w.await
            .expect("task")
            .expect("served with the connection waiter 0 gave back");
    }
    assert_eq!(*order.lock().expect("lock"), [1]);
    assert_eq!(c.info().counters.upstream_cx_total.get(), 1);
    assert_eq!(c.info().counters.upstream_rq_cancelled.get(), 1);
    assert_eq!(c.info().breakers.pending.current(), 0);
}

#[tokio::test]
async fn a_request_waiting_for_a_connect_holds_a_connection_slot_not_a_pending_slot() {
    let (c, ctl) = cluster(1, limits(2, 1, 100), PoolSettings::default(), Mode::Gated);
    let a = tokio::spawn({
        let c = c.clone();
        async move { c.checkout().await.map(drop) }
    });
    let b = tokio::spawn({
        let c = c.clone();
        async move { c.checkout().await.map(drop) }
    });
    settle().await;
    let info = c.info();
    assert_eq!(
        (
            info.breakers.connections.current(),
            info.breakers.pending.current()
        ),
        (2, 0)
    );
    let third = c.checkout();
    tokio::pin!(third);
    assert!(poll_once(third.as_mut()).await.is_pending(), "queued");
    assert_eq!(info.breakers.pending.current(), 1);
    assert!(matches!(
        c.checkout().await,
        Err(CheckoutError::Overflow(Limit::PendingRequests))
    ));
    ctl.allow(3);
    a.await.expect("task").expect("a");
    b.await.expect("task").expect("b");
    third.await.expect("served once a connection frees");
}

/// `upstream_cx_overflow` counts requests that were queued because no connection could be
/// opened for them (Envoy counts it for a queued request that wants a connection), not those
/// the pending limit refused: with 5/1 limits a burst of 10 counts 1, where meshd used to count
/// 5 (every request that found no free connection slot).
#[tokio::test]
async fn upstream_cx_overflow_counts_queued_requests_only() {
    let (c, _) = cluster(1, limits(5, 1, 100), PoolSettings::default(), Mode::Instant);
    for round in 1..=2u64 {
        let mut served = Vec::new();
        let mut queued = Vec::new();
        let mut refused = 0;
        for _ in 0..10 {
            let mut f = Box::pin(c.checkout());
            match poll_once(f.as_mut()).await {
                Poll::Ready(Ok(co)) => served.push(co),
                Poll::Ready(Err(CheckoutError::Overflow(Limit::PendingRequests))) => refused += 1,
                Poll::Ready(Err(e)) => panic!("unexpected {e}"),
                Poll::Pending => queued.push(f),
            }
        }
        assert_eq!((served.len(), queued.len(), refused), (5, 1, 4));
        let counters = &c.info().counters;
        assert_eq!(counters.upstream_cx_overflow.get(), round);
        assert_eq!(counters.upstream_rq_pending_overflow.get(), 4 * round);
        for co in served {
            co.release(true);
        }
        for f in queued {
            f.await.expect("served").release(true);
        }
    }
    // The second burst reused the five connections of the first.
    assert_eq!(c.info().counters.upstream_cx_total.get(), 5);
}

#[tokio::test]
async fn a_failed_connect_of_a_waiter_frees_its_slot() {
    let (c, ctl) = cluster(1, limits(1, 5, 10), PoolSettings::default(), Mode::Instant);
    let held = c.checkout().await.expect("slot");
    let c2 = c.clone();
    let waiter = tokio::spawn(async move { c2.checkout().await.map(drop) });
    settle().await;
    ctl.set(Mode::Fail);
    held.release(false); // its slot goes to the waiter, whose connect is refused
    assert!(matches!(
        waiter.await.expect("task"),
        Err(CheckoutError::ConnectFailed { .. })
    ));
    let info = c.info();
    assert_eq!(info.counters.upstream_cx_connect_fail.get(), 1);
    assert_eq!(info.breakers.connections.current(), 0);
    assert_eq!(info.breakers.pending.current(), 0);
    ctl.set(Mode::Instant);
    c.checkout().await.expect("the slot is free again");
}

#[tokio::test]
async fn an_idle_connection_closed_by_its_peer_is_never_handed_out() {
    let (c, ctl) = cluster(1, limits(1, 5, 10), PoolSettings::default(), Mode::Instant);
    c.checkout().await.expect("first").release(true);
    // The upstream closes the idle connection (its guard stays with it until the pool looks).
    ctl.conns.lock().expect("lock")[0].store(false, std::sync::atomic::Ordering::SeqCst);
    let co = c
        .checkout()
        .await
        .expect("a new connection on the freed slot");
    assert!(!co.reused());
    assert_eq!(c.info().counters.upstream_cx_total.get(), 2);
    assert_eq!(c.info().breakers.connections.current(), 1);
}

#[tokio::test]
async fn a_waiter_handed_a_connection_frees_its_pending_slot_at_once() {
    // 1 connection, 1 pending: the client whose response frees the connection sends its next
    // request before the waiter handed that connection has run. That request must queue (the
    // waiter no longer waits), not be refused for a full queue.
    let (c, _) = cluster(1, limits(1, 1, 100), PoolSettings::default(), Mode::Instant);
    let held = c.checkout().await.expect("the one connection");
    let waiter = {
        let c = c.clone();
        tokio::spawn(async move { c.checkout().await.map(|co| co.release(true)) })
    };
    settle().await;
    assert_eq!(c.info().breakers.pending.current(), 1);

    held.release(true); // handed to the waiter, whose task has not run yet
    assert_eq!(c.info().breakers.pending.current(), 0);
    let next = c.checkout();
    tokio::pin!(next);
    assert!(
        poll_once(next.as_mut()).await.is_pending(),
        "the next request queues behind the waiter"
    );
    waiter.await.expect("task").expect("the waiter is served");
    let next = next
        .await
        .expect("then the next request, on the same connection");
    assert!(next.reused());
    assert_eq!(c.info().counters.upstream_rq_pending_overflow.get(), 0);
}
