//! Fault injection on a route (Envoy's `envoy.filters.http.fault`, as Istio lowers a
//! `VirtualService`'s `http[].fault`): delay some requests before they go upstream, abort some
//! with a status of the route's choosing.
//!
//! [`FaultPolicy::decide`] is pure: the caller passes two uniformly random values (meshd: from
//! the same per-request generator that jitters retry backoff) and gets what to inject. Delay and
//! abort are decided independently, each with its own percentage, as Envoy does: a request may
//! be both delayed and then aborted.
//!
//! A percentage is applied as Envoy's `FractionalPercent` per million: the request is hit when
//! `random % 1_000_000 < round(percent × 10_000)`, so 100 % always hits and 0 % never does.
//!
//! What meshd does with a decision (meshd/src/proxy.rs): a delayed request waits before its
//! first attempt (flag `DI`, `http.<prefix>.fault.delays_injected`), and the route's timeout
//! starts after the delay; an aborted request gets the status at once with the body
//! `fault filter abort` (flag `FI`, `http.<prefix>.fault.aborts_injected`), never sent upstream
//! and never retried.

use std::time::Duration;

/// A route's fault injection. Percentages are in `0.0..=100.0` (out of range is clamped; NaN is
/// 0).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct FaultPolicy {
    /// A fixed delay before the request goes upstream, and the percentage of requests delayed.
    pub delay: Option<(Duration, f64)>,
    /// A status answered at once instead of going upstream, and the percentage of requests
    /// aborted.
    pub abort: Option<(u16, f64)>,
}

/// What to inject into one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Injected {
    /// Wait this long before the first attempt.
    pub delay: Option<Duration>,
    /// Then answer this status instead of going upstream.
    pub abort: Option<u16>,
}

/// Envoy's `FractionalPercent` denominator: a million.
const MILLION: u64 = 1_000_000;

/// Whether a request with `random` falls within `percent` (per million, rounded).
pub fn hits(percent: f64, random: u64) -> bool {
    let p = if percent.is_nan() {
        0.0
    } else {
        percent.clamp(0.0, 100.0)
    };
    // In 0..=1_000_000 after the clamp, so the cast is exact.
    let per_million = (p * 10_000.0).round() as u64;
    random % MILLION < per_million
}

impl FaultPolicy {
    /// What to inject: the delay when `delay_random` hits its percentage, the abort when
    /// `abort_random` hits its own. A zero delay is no delay.
    pub fn decide(&self, delay_random: u64, abort_random: u64) -> Injected {
        Injected {
            delay: self
                .delay
                .filter(|(d, pct)| !d.is_zero() && hits(*pct, delay_random))
                .map(|(d, _)| d),
            abort: self
                .abort
                .filter(|(_, pct)| hits(*pct, abort_random))
                .map(|(s, _)| s),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEC: Duration = Duration::from_secs(1);

    #[test]
    fn a_hundred_percent_always_hits_and_zero_never() {
        let all = FaultPolicy {
            delay: Some((SEC, 100.0)),
            abort: Some((503, 100.0)),
        };
        let none = FaultPolicy {
            delay: Some((SEC, 0.0)),
            abort: Some((503, 0.0)),
        };
        for r in [0, 1, 999_999, 1_000_000, u64::MAX, 123_456_789] {
            assert_eq!(
                all.decide(r, r),
                Injected {
                    delay: Some(SEC),
                    abort: Some(503)
                }
            );
            assert_eq!(none.decide(r, r), Injected::default());
        }
        assert_eq!(FaultPolicy::default().decide(0, 0), Injected::default());
    }

    #[test]
    fn the_percentage_is_per_million_and_each_fault_has_its_own_draw() {
        let p = FaultPolicy {
            delay: Some((SEC, 50.0)),
            abort: Some((418, 0.0001)),
        };
        assert_eq!(p.decide(499_999, 0).delay, Some(SEC));
        assert_eq!(p.decide(500_000, 0).delay, None);
        assert_eq!(p.decide(1_499_999, 1).delay, Some(SEC));
        // 0.0001 % is one in a million.
        assert_eq!(p.decide(0, 0).abort, Some(418));
        assert_eq!(p.decide(0, 1).abort, None);
        // Independent: delayed but not aborted, and the reverse.
        assert_eq!(
            p.decide(500_000, 0),
            Injected {
                delay: None,
                abort: Some(418)
            }
        );
    }

    #[test]
    fn out_of_range_percentages_are_clamped_and_a_zero_delay_is_none() {
        assert!(hits(250.0, 999_999));
        assert!(!hits(-3.0, 0));
        assert!(!hits(f64::NAN, 0));
        let p = FaultPolicy {
            delay: Some((Duration::ZERO, 100.0)),
            abort: None,
        };
        assert_eq!(p.decide(0, 0), Injected::default());
    }

    #[test]
    fn over_many_draws_fifty_percent_hits_about_half() {
        let mut rng = fastrand::Rng::with_seed(13);
        let n = 100_000;
        let hit = (0..n).filter(|_| hits(50.0, rng.u64(..))).count();
        // Seeded, so deterministic; 5 standard deviations (±791) of a fair binomial.
        assert!(hit.abs_diff(n / 2) < 800, "{hit}");
    }
}
