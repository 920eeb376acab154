//! Load balancing: which host of a cluster a request goes to.
//!
//! Three policies, as Envoy's:
//! - [`Policy::RoundRobin`] (the default): the usable hosts in turn, one shared position per
//!   cluster. Over `n` picks among `u` usable hosts each gets `⌊n/u⌋` or `⌈n/u⌉`, exactly: an
//!   unusable host is left out of the rotation (its turn is not given to its neighbour, so no
//!   host gets a double share).
//! - [`Policy::LeastRequest`]: two distinct usable hosts chosen at random, the one with fewer
//!   requests in flight wins (ties: the first), Envoy's `LEAST_REQUEST` with equal weights
//!   ("power of two choices"). A host never gets a request while both others it is compared
//!   with have fewer in flight.
//! - [`Policy::Random`]: one usable host chosen uniformly at random (Envoy's `RANDOM`).
//!
//! All consider only usable hosts ([`Candidate::usable`]: not ejected by outlier detection, not
//! failing active health checks). **No panic mode**: Envoy's 50 % `healthy_panic_threshold`
//! sends traffic to ejected and unhealthy hosts again once fewer than half are usable, so an
//! ejection "does nothing" exactly when most hosts fail; here an unusable host never gets a
//! request, and with no usable host the pick is `None` (the pool answers
//! `NoHealthyUpstream`: 503 `UH`, `upstream_cx_none_healthy`). How many hosts may be taken out
//! at once is outlier detection's `maxEjectionPercent`, not a second threshold here (Istio sets
//! `minHealthPercent` 0, which is the same choice).
//!
//! Hosts to avoid (a retry's hosts already tried) are left out only while another usable host
//! remains; otherwise the pick falls back to every usable host.
//!
//! Randomness is an argument (`random`), so tests are deterministic.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// How a cluster picks a host for a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Policy {
    /// Envoy's `ROUND_ROBIN` (its default and ours).
    #[default]
    RoundRobin,
    /// Envoy's `LEAST_REQUEST` with equal weights: the less busy of two random usable hosts.
    LeastRequest,
    /// Envoy's `RANDOM`: a usable host chosen uniformly at random.
    Random,
}

impl Policy {
    /// Envoy's name of the policy (`ROUND_ROBIN`, `LEAST_REQUEST`, `RANDOM`).
    pub fn envoy_name(self) -> &'static str {
        match self {
            Policy::RoundRobin => "ROUND_ROBIN",
            Policy::LeastRequest => "LEAST_REQUEST",
            Policy::Random => "RANDOM",
        }
    }
}

/// What a balancer reads of a host.
pub trait Candidate {
    /// The host's address (compared with the hosts to avoid).
    fn addr(&self) -> SocketAddr;
    /// Whether the host may get requests now.
    fn usable(&self) -> bool;
    /// Requests in flight to the host now (its `rq_active`).
    fn active_requests(&self) -> u64;
}

impl<H: Candidate + ?Sized> Candidate for Arc<H> {
    fn addr(&self) -> SocketAddr {
        (**self).addr()
    }
    fn usable(&self) -> bool {
        (**self).usable()
    }
    fn active_requests(&self) -> u64 {
        (**self).active_requests()
    }
}

/// Picks hosts for one cluster. Holds the round-robin position; lock-free.
#[derive(Debug, Default)]
pub struct Balancer {
    next: AtomicUsize,
}

impl Balancer {
    /// A balancer whose round robin starts at the first host.
    pub fn new() -> Self {
        Balancer::default()
    }

    /// The index in `hosts` of the host the next request goes to, or `None` when no host is
    /// usable. `avoid` lists hosts to leave out while another usable host remains; `random` is
    /// a uniformly random value ([`Policy::LeastRequest`] and [`Policy::Random`] use it).
    pub fn pick<H: Candidate>(
        &self,
        policy: Policy,
        hosts: &[H],
        avoid: &[SocketAddr],
        random: u64,
    ) -> Option<usize> {
        if let [only] = hosts {
            return only.usable().then_some(0);
        }
        let preferred = |h: &H| h.usable() && !avoid.contains(&h.addr());
        let mut count = hosts.iter().filter(|h| preferred(h)).count();
        let use_avoid = count > 0;
        if !use_avoid && !avoid.is_empty() {
            count = hosts.iter().filter(|h| h.usable()).count();
        }
        let eligible = |h: &H| h.usable() && !(use_avoid && avoid.contains(&h.addr()));
        if count == 0 {
            return None;
        }
        let nth = |n: usize| {
            hosts
                .iter()
                .enumerate()
                .filter(|(_, h)| eligible(h))
                .nth(n)
                .map(|(i, _)| i)
        };
        match policy {
            Policy::RoundRobin => {
                let k = self.next.fetch_add(1, Ordering::Relaxed) % count;
                if count == hosts.len() {
                    Some(k)
                } else {
                    nth(k)
                }
            }
            Policy::Random => nth(((random >> 11) % count as u64) as usize),
            Policy::LeastRequest => {
                let a = nth((random as u32 as usize) % count)?;
                if count == 1 {
                    return Some(a);
                }
                // A second host, distinct from the first.
                let first = (random as u32 as usize) % count;
                let second = (first + 1 + ((random >> 32) as usize) % (count - 1)) % count;
                let b = nth(second)?;
                if hosts[b].active_requests() < hosts[a].active_requests() {
                    Some(b)
                } else {
                    Some(a)
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct H {
        addr: SocketAddr,
        usable: bool,
        active: u64,
    }

    impl Candidate for H {
        fn addr(&self) -> SocketAddr {
            self.addr
        }
        fn usable(&self) -> bool {
            self.usable
        }
        fn active_requests(&self) -> u64 {
            self.active
        }
    }

    fn hosts(n: u16) -> Vec<H> {
        (0..n)
            .map(|i| H {
                addr: SocketAddr::from(([127, 0, 0, 1], 1000 + i)),
                usable: true,
                active: 0,
            })
            .collect()
    }

    fn counts(b: &Balancer, p: Policy, hs: &[H], avoid: &[SocketAddr], n: usize) -> Vec<usize> {
        let mut rng = fastrand::Rng::with_seed(7);
        let mut c = vec![0; hs.len()];
        for _ in 0..n {
            c[b.pick(p, hs, avoid, rng.u64(..)).expect("a usable host")] += 1;
        }
        c
    }

    #[test]
    fn round_robin_takes_the_hosts_in_turn_in_exact_shares() {
        let hs = hosts(8);
        let b = Balancer::new();
        let first: Vec<_> = (0..10)
            .map(|_| b.pick(Policy::RoundRobin, &hs, &[], 0))
            .collect();
        let expected: Vec<_> = [0, 1, 2, 3, 4, 5, 6, 7, 0, 1].map(Some).to_vec();
        assert_eq!(first, expected);
        assert_eq!(
            counts(&Balancer::new(), Policy::RoundRobin, &hs, &[], 8003),
            [1001, 1001, 1001, 1000, 1000, 1000, 1000, 1000]
        );
    }

    #[test]
    fn round_robin_leaves_unusable_hosts_out_without_doubling_a_neighbour() {
        let mut hs = hosts(8);
        hs[2].usable = false;
        hs[5].usable = false;
        let c = counts(&Balancer::new(), Policy::RoundRobin, &hs, &[], 6000);
        assert_eq!(c, [1000, 1000, 0, 1000, 1000, 0, 1000, 1000]);
    }

    #[test]
    fn no_usable_host_is_no_pick() {
        let mut hs = hosts(3);
        hs.iter_mut().for_each(|h| h.usable = false);
        for p in [Policy::RoundRobin, Policy::LeastRequest] {
            assert_eq!(Balancer::new().pick(p, &hs, &[], 1), None);
            assert_eq!(Balancer::new().pick(p, &hs[..1], &[], 1), None);
        }
    }

    #[test]
    fn avoided_hosts_are_left_out_while_another_usable_host_remains() {
        let mut hs = hosts(3);
        let avoid = [hs[0].addr];
        for p in [Policy::RoundRobin, Policy::LeastRequest] {
            assert_eq!(counts(&Balancer::new(), p, &hs, &avoid, 300)[0], 0, "{p:?}");
        }
        // Only the avoided host is usable: it is picked anyway.
        hs[1].usable = false;
        hs[2].usable = false;
        for p in [Policy::RoundRobin, Policy::LeastRequest] {
            assert_eq!(Balancer::new().pick(p, &hs, &avoid, 5), Some(0), "{p:?}");
        }
    }

    #[test]
    fn random_spreads_evenly_ignores_load_and_skips_unusable_and_avoided_hosts() {
        let mut hs = hosts(5);
        hs[0].active = 1000;
        hs[3].usable = false;
        let c = counts(&Balancer::new(), Policy::Random, &hs, &[], 40_000);
        // Deterministic (seeded): 4 usable hosts, within 3 % of 10 000 each, load ignored.
        assert_eq!(c[3], 0);
        for i in [0, 1, 2, 4] {
            assert!((9_700..=10_300).contains(&c[i]), "{c:?}");
        }
        // A retry avoids the host it tried while another usable one remains.
        let avoid = [hs[1].addr, hs[2].addr, hs[4].addr];
        let c = counts(&Balancer::new(), Policy::Random, &hs, &avoid, 100);
        assert_eq!(c[0], 100, "{c:?}");
        // No usable host: none.
        for h in &mut hs {
            h.usable = false;
        }
        assert_eq!(Balancer::new().pick(Policy::Random, &hs, &[], 12345), None);
        assert_eq!(Policy::Random.envoy_name(), "RANDOM");
    }

    #[test]
    fn least_request_spreads_evenly_over_idle_hosts() {
        let hs = hosts(4);
        let c = counts(&Balancer::new(), Policy::LeastRequest, &hs, &[], 40_000);
        // Deterministic (seeded): within 3 % of 10 000 each.
        assert!(c.iter().all(|n| (9_700..=10_300).contains(n)), "{c:?}");
    }

    #[test]
    fn least_request_prefers_the_less_busy_of_two() {
        let mut hs = hosts(4);
        for (h, a) in hs.iter_mut().zip([0, 1, 2, 3]) {
            h.active = a;
        }
        let c = counts(&Balancer::new(), Policy::LeastRequest, &hs, &[], 60_000);
        // Of the 6 pairs, the idlest host wins 3, the next 2, the next 1, the busiest none.
        let expect = [30_000, 20_000, 10_000, 0];
        for (got, want) in c.iter().zip(expect) {
            assert!(got.abs_diff(want) <= 600, "{c:?}");
        }
        assert_eq!(c[3], 0);
    }

    #[test]
    fn least_request_skips_unusable_hosts() {
        let mut hs = hosts(5);
        hs[0].usable = false;
        hs[3].usable = false;
        let c = counts(&Balancer::new(), Policy::LeastRequest, &hs, &[], 3000);
        assert_eq!((c[0], c[3]), (0, 0));
        assert!(c[1] > 800 && c[2] > 800 && c[4] > 800, "{c:?}");
        // One usable host left: always it.
        hs[1].usable = false;
        hs[2].usable = false;
        assert_eq!(
            counts(&Balancer::new(), Policy::LeastRequest, &hs, &[], 10)[4],
            10
        );
    }

    /// The mean spread (busiest minus idlest host) of in-flight requests across 8 hosts while
    /// requests arrive one per step and each finishes with probability 1/40 per step, hosts
    /// picked by `pick`.
    fn mean_spread(mut pick: impl FnMut(&[H], u64) -> usize) -> f64 {
        let mut hs = hosts(8);
        let mut rng = fastrand::Rng::with_seed(11);
        let mut sum = 0;
        for _ in 0..20_000 {
            let i = pick(&hs, rng.u64(..));
            hs[i].active += 1;
            for h in hs.iter_mut() {
                let done = (0..h.active).filter(|_| rng.u32(..40) == 0).count() as u64;
                h.active -= done;
            }
            let max = hs.iter().map(|h| h.active).max().unwrap_or(0);
            let min = hs.iter().map(|h| h.active).min().unwrap_or(0);
            sum += max - min;
        }
        sum as f64 / 20_000.0
    }

    #[test]
    fn least_request_keeps_in_flight_requests_closer_than_a_random_pick() {
        let b = Balancer::new();
        let p2c = mean_spread(|hs, r| b.pick(Policy::LeastRequest, hs, &[], r).expect("host"));
        let random = mean_spread(|hs, r| (r % hs.len() as u64) as usize);
        assert!(
            p2c * 1.5 <= random,
            "mean spread with two choices {p2c:.2}, with one random choice {random:.2}"
        );
    }
}
