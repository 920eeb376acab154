//! Retries: a compiled retry policy, the retry budget, jittered exponential backoff, and the
//! per-request [`RetryState`] that a request loop drives attempt by attempt.
//!
//! Everything here is pure: no clock, no socket, no task. The caller passes the outcome of each
//! attempt, the cluster's load and a random value; [`RetryState::record`] answers whether to try
//! again and after how long.
//!
//! # What is retried
//!
//! A policy holds Envoy's `retry_on` conditions ([`RetryOn`]). App Mesh's route `retryPolicy`
//! events map onto them as App Mesh configures Envoy (appmesh-istio.md §7.2, §10.3; envoy.md
//! §6.2); the mapping is done in `runtime` when the route is compiled:
//!
//! | App Mesh event | Envoy `retry_on` | retried outcomes ([`Outcome`]) |
//! |---|---|---|
//! | `server-error` | `5xx` | any 5xx response; connect failure or timeout; reset; per-try timeout |
//! | `gateway-error` | `gateway-error` | 502, 503, 504; connect failure or timeout; reset; per-try timeout |
//! | `client-error` | `retriable-4xx` | 409 |
//! | `stream-error` | `refused-stream` | a reset before any byte of the request was written |
//! | `connection-error` | `connect-failure` | connect failure, connect timeout |
//! | (Istio: integers in `retryOn`) | `retriable-status-codes` | a response whose status is in the set |
//!
//! [`RetryOn::parse_envoy`] reads an Envoy/Istio `retry_on` list.
//!
//! `stream-error` is HTTP/2's REFUSED_STREAM in Envoy: the upstream did not process the request.
//! meshd speaks HTTP/1.1 upstream, where the same fact is a connection that closed or reset
//! before any request byte was written ([`Outcome::Reset`] with `request_sent: false`), so that
//! is what it retries (Envoy's `reset-before-request`, which is equally safe).
//!
//! Never retried, whatever the policy (envoy.md §6.2 and the issue): a local overflow (503 `UO`:
//! a retry would add load where a limit just said there is too much), a response carrying
//! `x-envoy-overloaded` (the upstream meshd or Envoy refused for overload), and the global route
//! timeout (504 `UT`: the request's time is up).
//!
//! # Retry budget
//!
//! Every retry needs room in two places, checked in this order after the per-request limit:
//! 1. the cluster's **retry budget** ([`RetryBudget`]): retries in flight must stay below
//!    `max(budget_percent % × active requests, min_retry_concurrency)`;
//! 2. the cluster's `max_retries` breaker ([`crate::breaker::Limit::Retries`]): a slot is taken
//!    and held by the [`RetryState`] from the decision to retry until the next outcome is
//!    recorded (so retries waiting in backoff count as in flight) or the state is dropped.
//!
//! Refused by either → [`Decision::Overflow`] (flag `UO`, `upstream_rq_retry_overflow`).
//!
//! The budget is Envoy's `retry_budget` model, not Linkerd's (a ratio of retries to requests over
//! a time window with a minimum rate). Why: it is a pure function of two counts meshd already
//! keeps exactly (requests in flight, retries in flight: the `max_retries` breaker's counter), so
//! it needs no window, no clock and no lock on the request path; it bounds the extra concurrency
//! retries add to an overloaded cluster to a fixed share (1.2× with the default), which is what
//! matters during an incident (P17, P18 in user-pain.md); and it is what Envoy and Istio users
//! already configure (`budget_percent`, `min_retry_concurrency`). Unlike Envoy before 1.29,
//! retries waiting in backoff count against it. Defaults are Envoy's: 20 % and 3. App Mesh has
//! no budget setting, so every cluster has the default budget: retries are always bounded.
//!
//! # Backoff
//!
//! Fully jittered exponential backoff as Envoy's code computes it (envoy.md §6.4): retry N waits
//! a uniformly random time in `[0, min(2^(N−1) × base, max))`, base 25 ms and max 10 × base by
//! default: 0–24 ms, 0–49 ms, 0–99 ms, 0–199 ms, then 0–249 ms.
//!
//! # How meshd drives it
//!
//! One [`RetryState`] per downstream request, from the route's policy; one [`Outcome`] per
//! attempt; the same outcome feeds [`crate::outlier::OutlierDetector::record`]:
//!
//! ```
//! use std::sync::Arc;
//! use std::time::Duration;
//! use mesh_core::breaker::Resource;
//! use mesh_core::retry::{Decision, Outcome, RetryBudget, RetryContext, RetryOn, RetryPolicy,
//!     RetryState, RetryStats};
//!
//! let policy = RetryPolicy {
//!     retry_on: RetryOn { five_xx: true, ..RetryOn::default() },
//!     num_retries: 2,
//!     ..RetryPolicy::default()
//! };
//! let max_retries = Arc::new(Resource::new(3)); // the cluster's `Limit::Retries` breaker
//! let stats = RetryStats::default(); // the cluster's retry counters
//! let mut rng = fastrand::Rng::with_seed(7);
//! let mut state = RetryState::new(policy);
//! let answers = [502, 503, 200]; // what each attempt gets (meshd: a real upstream)
//! let mut attempt = 0;
//! let last = loop {
//!     // meshd: pick a host, send the attempt with `state.per_try_timeout()`, classify it.
//!     let outcome = Outcome::Response { status: answers[attempt], overloaded: false };
//!     attempt += 1;
//!     let ctx = RetryContext {
//!         active_requests: 10, // the cluster's requests in progress now
//!         budget: RetryBudget::DEFAULT,
//!         max_retries: &max_retries,
//!         stats: &stats,
//!     };
//!     match state.record(&outcome, &ctx, rng.u64(..)) {
//!         // meshd: sleep `after` (bounded by the request timeout), then try another host.
//!         Decision::Retry { after } => assert!(after < Duration::from_millis(50)),
//!         // the client gets this attempt's response; URX or UO is added to its flags.
//!         decision => break (outcome, decision),
//!     }
//! };
//! assert_eq!(last.1, Decision::NoRetry);
//! assert_eq!(state.attempts(), 3); // the access log's attempt count
//! assert_eq!(stats.upstream_rq_retry.get(), 2);
//! assert_eq!(stats.upstream_rq_retry_success.get(), 1);
//! drop(state); // releases the `max_retries` slot if a retry still held it
//! assert_eq!(max_retries.current(), 0);
//! ```

use std::sync::Arc;
use std::time::Duration;

use crate::breaker::{Permit, Resource};
use crate::stats::{kept_on_reset, Counter, StatType, Visit};

mod on;
pub use on::{RetryOn, StatusCodes};

/// What one upstream attempt ended with: what [`RetryState::record`] decides on and what
/// [`crate::outlier::OutlierDetector::record`] counts against the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The upstream answered with response headers.
    Response {
        /// The status code.
        status: u16,
        /// The response carried `x-envoy-overloaded` (another proxy refused for overload):
        /// never retried, never a host failure.
        overloaded: bool,
    },
    /// Opening the connection failed (refused, unreachable, reset during connect): flag `UF`.
    ConnectFailure,
    /// Opening the connection took longer than the connect timeout: flag `UF`.
    ConnectTimeout,
    /// The connection closed or reset before the response headers: flag `UC`/`UR`.
    Reset {
        /// Whether any byte of the request had been written upstream.
        request_sent: bool,
    },
    /// The attempt's per-try timeout expired before the response headers.
    PerTryTimeout,
    /// A local limit refused the attempt (503 `UO`): never retried, never a host failure.
    LocalOverflow,
    /// The request's own timeout expired (504 `UT`): never retried.
    GlobalTimeout,
}

impl Outcome {
    /// The outcome of a response with `status` and `headers` (reads `x-envoy-overloaded`).
    pub fn from_response(status: u16, headers: &http::HeaderMap) -> Outcome {
        // A `HeaderName`, not a `&str`: the lookup then skips parsing the name each time.
        static X_ENVOY_OVERLOADED: http::HeaderName =
            http::HeaderName::from_static("x-envoy-overloaded");
        Outcome::Response {
            status,
            overloaded: headers.contains_key(&X_ENVOY_OVERLOADED),
        }
    }

    /// Whether the failure originated on this side (connect, reset, timeout) rather than in an
    /// upstream response. Local overflow is neither: it never reached a host.
    pub fn is_local_origin(&self) -> bool {
        matches!(
            self,
            Outcome::ConnectFailure
                | Outcome::ConnectTimeout
                | Outcome::Reset { .. }
                | Outcome::PerTryTimeout
                | Outcome::GlobalTimeout
        )
    }
}

/// Jittered exponential backoff between retries (Envoy's `retry_back_off`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// `base_interval` (at least 1 ms).
    pub base: Duration,
    /// `max_interval` (at least `base`).
    pub max: Duration,
}

impl Backoff {
    /// Envoy's default: base 25 ms, max 250 ms.
    pub const ENVOY_DEFAULT: Backoff = Backoff {
        base: Duration::from_millis(25),
        max: Duration::from_millis(250),
    };

    /// A backoff with Envoy's rules: `base` below 1 ms becomes 1 ms; `max` defaults to 10 ×
    /// `base` and is raised to `base` when smaller.
    pub fn new(base: Duration, max: Option<Duration>) -> Backoff {
        let base = base.max(Duration::from_millis(1));
        let max = max.unwrap_or_else(|| base.saturating_mul(10)).max(base);
        Backoff { base, max }
    }

    /// The exclusive upper bound of retry `n`'s delay (`n` ≥ 1): `min(2^(n−1) × base, max)`.
    pub fn ceiling(&self, n: u32) -> Duration {
        let doublings = n.saturating_sub(1).min(63);
        let factor = 1u32.checked_shl(doublings).unwrap_or(u32::MAX);
        self.base.saturating_mul(factor).min(self.max)
    }

    /// Retry `n`'s delay: `random` modulo the ceiling, in whole milliseconds as Envoy computes
    /// it. Always below [`Backoff::ceiling`].
    pub fn delay(&self, n: u32, random: u64) -> Duration {
        let ceiling_ms = u64::try_from(self.ceiling(n).as_millis()).unwrap_or(u64::MAX);
        Duration::from_millis(random % ceiling_ms.max(1))
    }
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff::ENVOY_DEFAULT
    }
}

/// A route's compiled retry policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// What is retried.
    pub retry_on: RetryOn,
    /// Retries allowed per request (`num_retries`; App Mesh `maxRetries`). Attempts are at most
    /// `num_retries + 1`.
    pub num_retries: u32,
    /// Timeout of each attempt, the first included (App Mesh `perRetryTimeout`); `None` = only
    /// the request's timeout applies.
    pub per_try_timeout: Option<Duration>,
    /// Delay between attempts.
    pub backoff: Backoff,
}

impl Default for RetryPolicy {
    /// No condition (never retries), Envoy's `num_retries` default of 1, no per-try timeout,
    /// Envoy's backoff.
    fn default() -> Self {
        RetryPolicy {
            retry_on: RetryOn::default(),
            num_retries: 1,
            per_try_timeout: None,
            backoff: Backoff::ENVOY_DEFAULT,
        }
    }
}

impl RetryPolicy {
    /// The policy of a route that sets none. App Mesh gives such routes 2 retries on
    /// connect failure, refused stream, reset and 503; meshd keeps only the retries that cannot
    /// repeat work the upstream did (connect failure, and a reset before any request byte was
    /// written), because a retried 503 or reset multiplies load on a struggling service (P17 in
    /// user-pain.md). Still 2 retries, within the cluster's budget.
    pub const UNSET_ROUTE_DEFAULT: RetryPolicy = RetryPolicy {
        retry_on: RetryOn {
            five_xx: false,
            gateway_error: false,
            retriable_4xx: false,
            refused_stream: true,
            connect_failure: true,
            reset: false,
            retriable_status_codes: StatusCodes::EMPTY,
        },
        num_retries: 2,
        per_try_timeout: None,
        backoff: Backoff::ENVOY_DEFAULT,
    };
}

/// A cluster's retry budget (Envoy's `circuit_breakers.thresholds.retry_budget`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryBudget {
    /// Retries in flight allowed, as a whole percentage of the cluster's active requests.
    pub budget_percent: u32,
    /// Retries in flight always allowed, whatever the percentage gives.
    pub min_retry_concurrency: u32,
}

impl RetryBudget {
    /// Envoy's defaults: 20 % of active requests, at least 3.
    pub const DEFAULT: RetryBudget = RetryBudget {
        budget_percent: 20,
        min_retry_concurrency: 3,
    };

    /// Retries allowed in flight with `active_requests` in progress:
    /// `max(⌊budget_percent × active_requests / 100⌋, min_retry_concurrency)`.
    pub fn limit(&self, active_requests: u64) -> u64 {
        let share = u128::from(active_requests) * u128::from(self.budget_percent) / 100;
        u64::try_from(share)
            .unwrap_or(u64::MAX)
            .max(u64::from(self.min_retry_concurrency))
    }

    /// Whether one more retry may start: `retries_in_flight < limit(active_requests)`.
    pub fn allows(&self, active_requests: u64, retries_in_flight: u64) -> bool {
        retries_in_flight < self.limit(active_requests)
    }

    /// Retries that may still start now (the `retry_budget_remaining` gauge).
    pub fn remaining(&self, active_requests: u64, retries_in_flight: u64) -> u64 {
        self.limit(active_requests)
            .saturating_sub(retries_in_flight)
    }
}

impl Default for RetryBudget {
    fn default() -> Self {
        RetryBudget::DEFAULT
    }
}

/// Which cluster-wide limit refused a retry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryOverflow {
    /// The retry budget: too many retries in flight for the cluster's active requests.
    Budget,
    /// The `max_retries` breaker.
    MaxRetries,
}

impl RetryOverflow {
    /// `retry_budget` or `max_retries`, for the `x-mesh-overflow` header and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            RetryOverflow::Budget => "retry_budget",
            RetryOverflow::MaxRetries => "max_retries",
        }
    }
}

/// What the request loop does after an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Try again after this delay (on another host when one exists).
    Retry {
        /// The backoff delay.
        after: Duration,
    },
    /// Done: the outcome is not retryable (success included). The client gets it.
    NoRetry,
    /// Retryable, but the request used all its retries: the client gets the outcome with flag
    /// `URX`.
    LimitExceeded,
    /// Retryable, but the cluster's budget or `max_retries` refused: flag `UO`.
    Overflow(RetryOverflow),
}

/// Retry counters of one cluster (`cluster.<name>.*`, Envoy's names).
#[derive(Debug, Default)]
pub struct RetryStats {
    /// `upstream_rq_retry`: retries started.
    pub upstream_rq_retry: Counter,
    /// `upstream_rq_retry_success`: requests whose retry ended the retrying (Envoy counts any
    /// non-retryable outcome after a retry, not only 2xx).
    pub upstream_rq_retry_success: Counter,
    /// `upstream_rq_retry_overflow`: retries refused by the budget or `max_retries` (UO).
    pub upstream_rq_retry_overflow: Counter,
    /// `upstream_rq_retry_budget_overflow` (meshd's): the part of the overflow the budget
    /// refused; the rest is the breaker's `rq_retry_refused`.
    pub upstream_rq_retry_budget_overflow: Counter,
    /// `upstream_rq_retry_limit_exceeded`: requests that ran out of retries (URX).
    pub upstream_rq_retry_limit_exceeded: Counter,
    /// `upstream_rq_retry_backoff_exponential`: retries delayed by the exponential backoff.
    pub upstream_rq_retry_backoff_exponential: Counter,
    /// `upstream_rq_per_try_timeout`: attempts that hit their per-try timeout.
    pub upstream_rq_per_try_timeout: Counter,
    /// `retry_or_shadow_abandoned`: requests whose retries were given up because the request
    /// could not be replayed ([`RetryState::abandon`]).
    pub retry_or_shadow_abandoned: Counter,
}

impl RetryStats {
    fn counters(&self) -> [(&'static str, &Counter); 8] {
        [
            ("upstream_rq_retry", &self.upstream_rq_retry),
            ("upstream_rq_retry_success", &self.upstream_rq_retry_success),
            (
                "upstream_rq_retry_overflow",
                &self.upstream_rq_retry_overflow,
            ),
            (
                "upstream_rq_retry_budget_overflow",
                &self.upstream_rq_retry_budget_overflow,
            ),
            (
                "upstream_rq_retry_limit_exceeded",
                &self.upstream_rq_retry_limit_exceeded,
            ),
            (
                "upstream_rq_retry_backoff_exponential",
                &self.upstream_rq_retry_backoff_exponential,
            ),
            (
                "upstream_rq_per_try_timeout",
                &self.upstream_rq_per_try_timeout,
            ),
            ("retry_or_shadow_abandoned", &self.retry_or_shadow_abandoned),
        ]
    }

    /// Resets every counter except those that record faults and refusals
    /// ([`kept_on_reset`]).
    pub fn reset(&self) {
        for (name, c) in self.counters() {
            if !kept_on_reset(name) {
                c.reset();
            }
        }
    }
}

impl Visit for RetryStats {
    fn visit(&self, prefix: &str, emit: &mut dyn FnMut(String, StatType, u64)) {
        for (name, c) in self.counters() {
            emit(format!("{prefix}{name}"), StatType::Counter, c.get());
        }
    }
}

/// What [`RetryState::record`] needs of the cluster the attempt went to.
#[derive(Debug, Clone, Copy)]
pub struct RetryContext<'a> {
    /// The cluster's requests in progress now (Envoy: `upstream_rq_active` +
    /// `upstream_rq_pending_active`); the budget is a share of it.
    pub active_requests: u64,
    /// The cluster's budget.
    pub budget: RetryBudget,
    /// The cluster's `max_retries` breaker: its count is the retries in flight, and a retry
    /// holds one of its slots.
    pub max_retries: &'a Arc<Resource>,
    /// The cluster's counters.
    pub stats: &'a RetryStats,
}

/// One request's retry bookkeeping: attempts made, retries left, the `max_retries` slot of the
/// retry in flight.
///
/// Guarantees: at most `num_retries + 1` attempts; every retry was admitted by the budget and
/// holds a `max_retries` slot until the next [`record`](RetryState::record) or drop; decisions
/// follow Envoy's order (would retry → per-request limit (URX) → budget and breaker (UO)).
#[derive(Debug)]
pub struct RetryState {
    policy: RetryPolicy,
    retries_left: u32,
    retries: u32,
    armed: bool,
    abandoned: bool,
    permit: Option<Permit>,
}

impl RetryState {
    /// The state of a request about to make its first attempt.
    pub fn new(policy: RetryPolicy) -> RetryState {
        RetryState {
            policy,
            retries_left: policy.num_retries,
            retries: 0,
            armed: false,
            abandoned: false,
            permit: None,
        }
    }

    /// The policy.
    pub fn policy(&self) -> &RetryPolicy {
        &self.policy
    }

    /// The timeout of the next attempt, if the policy sets one.
    pub fn per_try_timeout(&self) -> Option<Duration> {
        self.policy.per_try_timeout
    }

    /// Attempts made or started: 1 for the first, +1 per retry (the access log's attempt count
    /// and `x-envoy-attempt-count`).
    pub fn attempts(&self) -> u32 {
        self.retries + 1
    }

    /// Retries started.
    pub fn retries(&self) -> u32 {
        self.retries
    }

    /// Gives up retrying: the request cannot be replayed (its body went upstream unbuffered, or
    /// outgrew the replay buffer). Every later [`record`](RetryState::record) answers
    /// [`Decision::NoRetry`]. Counts `retry_or_shadow_abandoned` once.
    pub fn abandon(&mut self, stats: &RetryStats) {
        if !self.abandoned {
            self.abandoned = true;
            stats.retry_or_shadow_abandoned.inc();
        }
    }

    /// Records the outcome of the attempt just made and decides what comes next (Envoy's
    /// `shouldRetry`, envoy.md §6.3):
    /// 1. the `max_retries` slot of the previous retry is released;
    /// 2. not retryable under the policy (or abandoned) → [`Decision::NoRetry`], counting
    ///    `upstream_rq_retry_success` when this attempt was a retry;
    /// 3. no retry left → [`Decision::LimitExceeded`] (`upstream_rq_retry_limit_exceeded`);
    /// 4. the budget refuses, or no `max_retries` slot is free → [`Decision::Overflow`]
    ///    (`upstream_rq_retry_overflow`; the retry is used up);
    /// 5. else [`Decision::Retry`] after `policy.backoff.delay(n, random)` for retry `n`,
    ///    holding the slot (`upstream_rq_retry`, `upstream_rq_retry_backoff_exponential`).
    ///
    /// A per-try timeout also counts `upstream_rq_per_try_timeout`.
    pub fn record(&mut self, outcome: &Outcome, ctx: &RetryContext<'_>, random: u64) -> Decision {
        drop(self.permit.take());
        let was_retry = std::mem::take(&mut self.armed);
        if *outcome == Outcome::PerTryTimeout {
            ctx.stats.upstream_rq_per_try_timeout.inc();
        }
        if self.abandoned || !self.policy.retry_on.would_retry(outcome) {
            if was_retry {
                ctx.stats.upstream_rq_retry_success.inc();
            }
            return Decision::NoRetry;
        }
        if self.retries_left == 0 {
            ctx.stats.upstream_rq_retry_limit_exceeded.inc();
            return Decision::LimitExceeded;
        }
        self.retries_left -= 1;
        if !ctx
            .budget
            .allows(ctx.active_requests, ctx.max_retries.current())
        {
            ctx.stats.upstream_rq_retry_overflow.inc();
            ctx.stats.upstream_rq_retry_budget_overflow.inc();
            return Decision::Overflow(RetryOverflow::Budget);
        }
        let Some(permit) = ctx.max_retries.try_acquire() else {
            ctx.stats.upstream_rq_retry_overflow.inc();
            return Decision::Overflow(RetryOverflow::MaxRetries);
        };
        self.permit = Some(permit);
        self.retries += 1;
        self.armed = true;
        ctx.stats.upstream_rq_retry.inc();
        ctx.stats.upstream_rq_retry_backoff_exponential.inc();
        Decision::Retry {
            after: self.policy.backoff.delay(self.retries, random),
        }
    }
}

#[cfg(test)]
mod tests;
