//! Which host serves a request: the balancer picks, the pool serves that host; unusable hosts
//! are skipped and lose their idle connections; hosts to avoid.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use super::support::{addr, cluster, limits, Mode};
use crate::balance::Policy;
use crate::breaker::Thresholds;
use crate::pool::{CheckoutError, CheckoutOptions, HealthFlag, PoolSettings};

fn rq_totals<C: crate::pool::Connector>(c: &crate::pool::Cluster<C>) -> Vec<u64> {
    c.hosts()
        .iter()
        .map(|h| h.counters.rq_total.get())
        .collect()
}

/// The core of issue 11's measurement: bursts of 5 requests held at once in front of 8 hosts.
/// The pool used to reuse any idle connection before the round-robin pick, so after the first
/// burst only the 5 hosts that had connections got requests. Now each host gets ⌊150/8⌋ or
/// ⌈150/8⌉ of 30 bursts' 150 requests.
#[tokio::test]
async fn bursts_reach_every_host_in_round_robin_shares() {
    let (c, _) = cluster(
        8,
        Thresholds::APP_MESH_DEFAULT,
        PoolSettings::default(),
        Mode::Instant,
    );
    for _ in 0..30 {
        let mut burst = Vec::new();
        for _ in 0..5 {
            burst.push(c.checkout().await.expect("served"));
        }
        for co in burst {
            co.release(true);
        }
    }
    let totals = rq_totals(&c);
    assert!(totals.iter().all(|n| (18..=19).contains(n)), "{totals:?}");
    assert_eq!(totals.iter().sum::<u64>(), 150);
}

/// `max_connections` full, the picked host has no connection but another host has an idle one:
/// that one is closed and its slot opens a connection to the picked host.
#[tokio::test]
async fn a_full_limit_closes_another_hosts_idle_connection_for_the_pick() {
    let (c, ctl) = cluster(2, limits(1, 1, 100), PoolSettings::default(), Mode::Instant);
    c.checkout().await.expect("host 0").release(true);
    let second = c.checkout().await.expect("host 1, on host 0's slot");
    assert_eq!(second.host().addr, addr(1));
    assert!(!second.reused());
    assert_eq!(ctl.connects(), [addr(0), addr(1)]);
    let info = c.info();
    assert_eq!(info.breakers.connections.current(), 1);
    assert_eq!(info.counters.upstream_cx_overflow.get(), 0, "it was opened");
    assert_eq!(info.counters.upstream_cx_destroy.get(), 1);
    let hosts = c.hosts();
    assert_eq!((hosts[0].cx_active.get(), hosts[1].cx_active.get()), (0, 1));
}

#[tokio::test]
async fn an_unusable_host_is_skipped_and_loses_its_idle_connections() {
    let (c, _) = cluster(
        3,
        Thresholds::APP_MESH_DEFAULT,
        PoolSettings::default(),
        Mode::Instant,
    );
    let warm: Vec<_> = futures_of(&c, 3).await;
    for co in warm {
        co.release(true);
    }
    assert_eq!(c.info().breakers.connections.current(), 3);

    assert_eq!(
        c.set_health(addr(1), HealthFlag::FailedOutlierCheck, true),
        Some(false)
    );
    let hosts = c.hosts();
    assert_eq!(hosts[1].health_flags(), "/failed_outlier_check");
    assert_eq!(
        hosts[1].cx_active.get(),
        0,
        "its idle connection closed at once"
    );
    assert_eq!(c.info().breakers.connections.current(), 2);

    let before = rq_totals(&c);
    for _ in 0..6 {
        c.checkout().await.expect("served").release(true);
    }
    let after: Vec<u64> = rq_totals(&c)
        .iter()
        .zip(&before)
        .map(|(a, b)| a - b)
        .collect();
    assert_eq!(after, [3, 0, 3]);

    // Back in the rotation once the flag clears.
    assert_eq!(
        c.set_health(addr(1), HealthFlag::FailedOutlierCheck, false),
        Some(true)
    );
    for _ in 0..3 {
        c.checkout().await.expect("served").release(true);
    }
    assert_eq!(rq_totals(&c)[1], before[1] + 1);
    assert_eq!(
        c.set_health(addr(9), HealthFlag::FailedActiveHc, true),
        None
    );
}

#[tokio::test]
async fn a_busy_connection_of_a_host_that_became_unusable_closes_at_release() {
    let (c, _) = cluster(
        2,
        limits(10, 10, 10),
        PoolSettings::default(),
        Mode::Instant,
    );
    let busy = c.checkout().await.expect("host 0");
    c.set_health(addr(0), HealthFlag::FailedActiveHc, true);
    busy.release(true);
    assert_eq!(c.hosts()[0].cx_active.get(), 0);
    assert_eq!(c.info().breakers.connections.current(), 0);
}

#[tokio::test]
async fn no_usable_host_is_no_healthy_upstream() {
    let (c, _) = cluster(2, limits(1, 5, 10), PoolSettings::default(), Mode::Instant);
    let held = c.checkout().await.expect("slot");
    // A request queues; then every host leaves the rotation.
    let c2 = c.clone();
    let queued = tokio::spawn(async move { c2.checkout().await.map(drop) });
    super::support::settle().await;
    c.set_health(addr(0), HealthFlag::FailedOutlierCheck, true);
    c.set_health(addr(1), HealthFlag::FailedActiveHc, true);
    assert!(matches!(
        c.checkout().await,
        Err(CheckoutError::NoHealthyUpstream)
    ));
    drop(held); // its slot goes to the queued request, which finds no usable host
    assert!(matches!(
        queued.await.expect("task"),
        Err(CheckoutError::NoHealthyUpstream)
    ));
    assert_eq!(c.info().counters.upstream_cx_none_healthy.get(), 2);
    assert_eq!(c.info().breakers.connections.current(), 0);
    assert_eq!(c.info().breakers.pending.current(), 0);
    c.set_hosts(&[]);
    assert!(matches!(
        c.checkout().await,
        Err(CheckoutError::NoHealthyUpstream)
    ));
}

#[tokio::test]
async fn hosts_to_avoid_are_avoided_while_another_is_usable() {
    let (c, _) = cluster(
        2,
        limits(10, 10, 10),
        PoolSettings::default(),
        Mode::Instant,
    );
    let avoid = [addr(0)];
    let opts = CheckoutOptions {
        avoid: &avoid,
        fresh: false,
    };
    for _ in 0..4 {
        let co = c.checkout_with(opts).await.expect("served");
        assert_eq!(co.host().addr, addr(1));
        co.release(true);
    }
    c.set_health(addr(1), HealthFlag::FailedOutlierCheck, true);
    let mut co = c
        .checkout_with(opts)
        .await
        .expect("the avoided host, the only usable one");
    assert_eq!((co.host().addr, co.conn().addr), (addr(0), addr(0)));
}

/// A queued retry that avoids the host whose connection frees gets that connection's slot and
/// opens one to another host.
#[tokio::test]
async fn a_queued_request_avoiding_the_freed_host_opens_elsewhere() {
    let (c, ctl) = cluster(2, limits(1, 5, 10), PoolSettings::default(), Mode::Instant);
    let held = c.checkout().await.expect("host 0");
    assert_eq!(held.host().addr, addr(0));
    let c2 = c.clone();
    let retry = tokio::spawn(async move {
        let avoid = [addr(0)];
        let co = c2
            .checkout_with(CheckoutOptions {
                avoid: &avoid,
                fresh: false,
            })
            .await?;
        Ok::<SocketAddr, CheckoutError>(co.host().addr)
    });
    super::support::settle().await;
    held.release(true);
    assert_eq!(retry.await.expect("task").expect("served"), addr(1));
    assert_eq!(ctl.connects(), [addr(0), addr(1)]);
}

#[tokio::test]
async fn least_request_sends_to_the_less_busy_host() {
    let settings = PoolSettings {
        lb_policy: Policy::LeastRequest,
        ..PoolSettings::default()
    };
    let (c, _) = cluster(2, limits(100, 10, 100), settings, Mode::Instant);
    let mut held = Vec::new();
    for _ in 0..10 {
        held.push(c.checkout().await.expect("served"));
    }
    let mut per_host: BTreeMap<SocketAddr, usize> = BTreeMap::new();
    for co in &held {
        *per_host.entry(co.host().addr).or_default() += 1;
    }
    // With two hosts both are always compared: each request goes to the idler one.
    assert_eq!(per_host.values().copied().collect::<Vec<_>>(), [5, 5]);
}

#[tokio::test]
async fn a_removed_host_closes_its_idle_connections() {
    let (c, _) = cluster(
        2,
        limits(10, 10, 10),
        PoolSettings::default(),
        Mode::Instant,
    );
    let both = futures_of(&c, 2).await;
    for co in both {
        co.release(true);
    }
    c.set_hosts(&[(addr(1), String::new())]);
    assert_eq!(c.info().breakers.connections.current(), 1);
    let co = c.checkout().await.expect("the host left");
    assert!(co.reused());
    assert_eq!(co.host().addr, addr(1));
}

/// `n` checkouts held at once.
async fn futures_of(
    c: &std::sync::Arc<crate::pool::Cluster<super::support::TestConnector>>,
    n: usize,
) -> Vec<crate::pool::Checkout<super::support::TestConnector>> {
    let mut v = Vec::new();
    for _ in 0..n {
        v.push(c.checkout().await.expect("served"));
    }
    v
}

#[tokio::test]
async fn new_hosts_may_start_flagged_until_their_first_check() {
    let (c, _) = cluster(
        1,
        limits(10, 10, 10),
        PoolSettings::default(),
        Mode::Instant,
    );
    let both = [(addr(0), String::new()), (addr(1), String::new())];
    c.set_hosts_with(&both, &[HealthFlag::FailedActiveHc]);
    let hosts = c.hosts();
    assert_eq!(
        hosts[0].health_flags(),
        "healthy",
        "a host that stays keeps its state"
    );
    assert_eq!(hosts[1].health_flags(), "/failed_active_hc");
    for _ in 0..4 {
        let co = c.checkout().await.expect("served");
        assert_eq!(co.host().addr, addr(0));
    }
    c.set_health(addr(1), HealthFlag::FailedActiveHc, false);
    let picked: Vec<_> = futures_of(&c, 2)
        .await
        .iter()
        .map(|co| co.host().addr)
        .collect();
    assert!(picked.contains(&addr(1)), "{picked:?}");
}
