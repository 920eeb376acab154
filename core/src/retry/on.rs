//! Envoy's `retry_on` conditions ([`RetryOn`]), the retriable status codes ([`StatusCodes`]) and
//! the parser of an Envoy/Istio `retry_on` list ([`RetryOn::parse_envoy`]).

use super::Outcome;

/// A set of HTTP status codes in `100..=599`, as a bitset (so [`RetryOn`] and the retry policy
/// stay `Copy`). Codes outside the range are never members.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct StatusCodes([u64; 8]);

impl StatusCodes {
    /// No code.
    pub const EMPTY: StatusCodes = StatusCodes([0; 8]);

    fn slot(code: u16) -> Option<(usize, u64)> {
        let i = usize::from(code.checked_sub(100)?);
        (code <= 599).then(|| (i / 64, 1u64 << (i % 64)))
    }

    /// Adds `code`; `false` (and no change) when it is outside `100..=599`.
    pub fn insert(&mut self, code: u16) -> bool {
        match Self::slot(code) {
            Some((w, bit)) => {
                self.0[w] |= bit;
                true
            }
            None => false,
        }
    }

    /// Whether `code` is in the set.
    pub fn contains(&self, code: u16) -> bool {
        Self::slot(code).is_some_and(|(w, bit)| self.0[w] & bit != 0)
    }

    /// Whether the set has no code.
    pub fn is_empty(&self) -> bool {
        *self == StatusCodes::EMPTY
    }

    /// The codes, ascending.
    pub fn iter(&self) -> impl Iterator<Item = u16> + '_ {
        (100..=599).filter(|c| self.contains(*c))
    }
}

impl std::fmt::Debug for StatusCodes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set().entries(self.iter()).finish()
    }
}

impl FromIterator<u16> for StatusCodes {
    /// The codes of `iter` within `100..=599` (others are dropped).
    fn from_iter<I: IntoIterator<Item = u16>>(iter: I) -> Self {
        let mut s = StatusCodes::EMPTY;
        for c in iter {
            s.insert(c);
        }
        s
    }
}

/// Envoy's `retry_on` conditions, as flags. Empty = never retry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RetryOn {
    /// `5xx` (App Mesh `server-error`): any 5xx, any connect failure, reset or per-try timeout.
    pub five_xx: bool,
    /// `gateway-error` (App Mesh `gateway-error`): 502/503/504, any connect failure, reset or
    /// per-try timeout.
    pub gateway_error: bool,
    /// `retriable-4xx` (App Mesh `client-error`): 409.
    pub retriable_4xx: bool,
    /// `refused-stream` (App Mesh `stream-error`) and `reset-before-request`: a reset before any
    /// request byte was written.
    pub refused_stream: bool,
    /// `connect-failure` (App Mesh `connection-error`): connect failure or connect timeout.
    pub connect_failure: bool,
    /// `reset`: any connect failure, reset or per-try timeout (no App Mesh event maps here).
    pub reset: bool,
    /// `retriable-status-codes` with Envoy's `retriable_status_codes`: a response whose status
    /// is in the set (Istio writes the codes as integers in `retryOn`). Empty = off.
    pub retriable_status_codes: StatusCodes,
}

/// The words [`RetryOn::parse_envoy`] accepts besides integers, for its error message.
const ALLOWED: &str = "5xx, gateway-error, reset, connect-failure, retriable-4xx, \
refused-stream, retriable-status-codes, reset-before-request, cancelled, deadline-exceeded, \
internal, resource-exhausted, unavailable, or a status code 100-599";

impl RetryOn {
    /// Whether no condition is set.
    pub fn is_empty(&self) -> bool {
        *self == RetryOn::default()
    }

    /// The Envoy names of the set conditions, in a fixed order (`5xx`, `gateway-error`,
    /// `retriable-4xx`, `refused-stream`, `connect-failure`, `reset`,
    /// `retriable-status-codes`), for `describe` and logs.
    pub fn envoy_names(&self) -> Vec<&'static str> {
        [
            (self.five_xx, "5xx"),
            (self.gateway_error, "gateway-error"),
            (self.retriable_4xx, "retriable-4xx"),
            (self.refused_stream, "refused-stream"),
            (self.connect_failure, "connect-failure"),
            (self.reset, "reset"),
            (
                !self.retriable_status_codes.is_empty(),
                "retriable-status-codes",
            ),
        ]
        .into_iter()
        .filter_map(|(on, name)| on.then_some(name))
        .collect()
    }

    /// Parses an Envoy/Istio `retry_on` list: comma-separated tokens, blanks around them
    /// ignored, empty tokens skipped. Accepted:
    /// - `5xx`, `gateway-error`, `reset`, `connect-failure`, `retriable-4xx`,
    ///   `refused-stream` (the fields of the same name);
    /// - `reset-before-request`: a reset before any request byte was written, which over
    ///   HTTP/1.1 upstream is what `refused-stream` retries here (sets
    ///   [`refused_stream`](RetryOn::refused_stream));
    /// - an integer `100..=599`: that status becomes retriable
    ///   ([`retriable_status_codes`](RetryOn::retriable_status_codes));
    /// - `retriable-status-codes`: accepted; the codes come as integers (Istio's form), and a
    ///   list naming it without any code retries no status;
    /// - the gRPC conditions `cancelled`, `deadline-exceeded`, `internal`,
    ///   `resource-exhausted`, `unavailable`: accepted and **inert**, since meshd does not
    ///   proxy gRPC yet (they match only a `grpc-status` trailer, which it never reads).
    ///
    /// Anything else is an error naming the token and listing what is allowed.
    pub fn parse_envoy(list: &str) -> Result<RetryOn, String> {
        let mut on = RetryOn::default();
        for token in list.split(',').map(str::trim).filter(|t| !t.is_empty()) {
            match token {
                "5xx" => on.five_xx = true,
                "gateway-error" => on.gateway_error = true,
                "reset" => on.reset = true,
                "connect-failure" => on.connect_failure = true,
                "retriable-4xx" => on.retriable_4xx = true,
                "refused-stream" | "reset-before-request" => on.refused_stream = true,
                "retriable-status-codes"
                | "cancelled"
                | "deadline-exceeded"
                | "internal"
                | "resource-exhausted"
                | "unavailable" => {}
                _ => match token.parse::<u16>() {
                    Ok(code) if on.retriable_status_codes.insert(code) => {}
                    _ => {
                        return Err(format!(
                            "unknown retry_on condition {token:?}: allowed are {ALLOWED}"
                        ))
                    }
                },
            }
        }
        Ok(on)
    }

    /// Envoy's `wouldRetry`: whether `outcome` matches a condition. Local overflow, the global
    /// timeout and overloaded responses never do.
    pub fn would_retry(&self, outcome: &Outcome) -> bool {
        let any_reset = self.five_xx || self.gateway_error || self.reset;
        match *outcome {
            Outcome::Response {
                overloaded: true, ..
            }
            | Outcome::LocalOverflow
            | Outcome::GlobalTimeout => false,
            Outcome::Response { status, .. } => {
                (self.five_xx && (500..600).contains(&status))
                    || (self.gateway_error && matches!(status, 502..=504))
                    || (self.retriable_4xx && status == 409)
                    || self.retriable_status_codes.contains(status)
            }
            Outcome::ConnectFailure | Outcome::ConnectTimeout => any_reset || self.connect_failure,
            Outcome::Reset { request_sent } => any_reset || (self.refused_stream && !request_sent),
            Outcome::PerTryTimeout => any_reset,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::breaker::Resource;
    use crate::retry::{RetryBudget, RetryContext, RetryPolicy, RetryState, RetryStats};
    use std::sync::Arc;

    fn resp(status: u16) -> Outcome {
        Outcome::Response {
            status,
            overloaded: false,
        }
    }

    #[test]
    fn status_codes_hold_100_to_599_only() {
        let mut s = StatusCodes::EMPTY;
        assert!(s.is_empty());
        for c in [100, 163, 164, 409, 503, 599] {
            assert!(s.insert(c));
        }
        for c in [0, 99, 600, 1000, u16::MAX] {
            assert!(!s.insert(c));
            assert!(!s.contains(c));
        }
        assert_eq!(s.iter().collect::<Vec<_>>(), [100, 163, 164, 409, 503, 599]);
        assert!(!s.contains(500) && !s.contains(101));
        assert_eq!(format!("{s:?}"), "{100, 163, 164, 409, 503, 599}");
        let t: StatusCodes = [503, 700].into_iter().collect();
        assert_eq!(t.iter().collect::<Vec<_>>(), [503]);
    }

    #[test]
    fn parse_envoy_reads_istio_and_envoy_lists() {
        let on = RetryOn::parse_envoy(
            "5xx, gateway-error,reset,connect-failure , retriable-4xx,refused-stream",
        )
        .expect("valid");
        assert_eq!(
            on.envoy_names(),
            [
                "5xx",
                "gateway-error",
                "retriable-4xx",
                "refused-stream",
                "connect-failure",
                "reset"
            ]
        );
        assert!(on.retriable_status_codes.is_empty());

        // Istio's default and its integer codes.
        let on = RetryOn::parse_envoy("connect-failure,refused-stream,unavailable,cancelled,503")
            .expect("valid");
        assert!(on.connect_failure && on.refused_stream && !on.five_xx);
        assert_eq!(on.retriable_status_codes.iter().collect::<Vec<_>>(), [503]);
        assert!(on.envoy_names().contains(&"retriable-status-codes"));

        let on = RetryOn::parse_envoy("reset-before-request").expect("valid");
        assert_eq!(
            on,
            RetryOn {
                refused_stream: true,
                ..RetryOn::default()
            }
        );
        // gRPC names and a bare `retriable-status-codes` are accepted and retry nothing.
        let inert = RetryOn::parse_envoy(
            "retriable-status-codes,cancelled,deadline-exceeded,internal,resource-exhausted,unavailable",
        )
        .expect("valid");
        assert!(inert.is_empty());
        assert_eq!(RetryOn::parse_envoy("").expect("valid"), RetryOn::default());
        assert_eq!(
            RetryOn::parse_envoy("100, 599,")
                .expect("valid")
                .retriable_status_codes
                .iter()
                .collect::<Vec<_>>(),
            [100, 599]
        );
    }

    #[test]
    fn parse_envoy_names_the_bad_token_and_what_is_allowed() {
        for bad in [
            "5xx,server-error",
            "600",
            "99",
            "-1",
            "5XX",
            "503x",
            "reset before",
        ] {
            let e = RetryOn::parse_envoy(bad).expect_err(bad);
            let token = bad.rsplit(',').next().unwrap_or(bad).trim();
            assert!(e.contains(&format!("{token:?}")), "{e}");
            assert!(e.contains("gateway-error") && e.contains("100-599"), "{e}");
        }
    }

    #[test]
    fn a_retriable_status_code_is_retried_like_a_5xx_and_no_other_is() {
        let on = RetryOn::parse_envoy("503").expect("valid");
        assert!(on.would_retry(&resp(503)));
        for s in [200, 404, 409, 500, 502, 504] {
            assert!(!on.would_retry(&resp(s)), "{s}");
        }
        // Never an overloaded response, a local overflow or the global timeout; no reset.
        assert!(!on.would_retry(&Outcome::Response {
            status: 503,
            overloaded: true
        }));
        assert!(!on.would_retry(&Outcome::LocalOverflow));
        assert!(!on.would_retry(&Outcome::GlobalTimeout));
        assert!(!on.would_retry(&Outcome::ConnectFailure));
        assert!(!on.would_retry(&Outcome::Reset { request_sent: true }));
        // A 4xx code works too (Istio users list e.g. 429).
        assert!(RetryOn::parse_envoy("429")
            .expect("valid")
            .would_retry(&resp(429)));
    }

    #[test]
    fn a_retriable_status_code_retry_goes_through_the_budget_and_the_limit() {
        let policy = RetryPolicy {
            retry_on: RetryOn::parse_envoy("503").expect("valid"),
            num_retries: 2,
            ..RetryPolicy::default()
        };
        let max_retries = Arc::new(Resource::new(3));
        let stats = RetryStats::default();
        let ctx = RetryContext {
            active_requests: 10,
            budget: RetryBudget::DEFAULT,
            max_retries: &max_retries,
            stats: &stats,
        };
        let mut st = RetryState::new(policy);
        assert!(matches!(
            st.record(&resp(503), &ctx, 1),
            crate::retry::Decision::Retry { .. }
        ));
        assert!(matches!(
            st.record(&resp(503), &ctx, 1),
            crate::retry::Decision::Retry { .. }
        ));
        assert_eq!(
            st.record(&resp(503), &ctx, 1),
            crate::retry::Decision::LimitExceeded
        );
        let mut st = RetryState::new(policy);
        assert_eq!(
            st.record(&resp(500), &ctx, 1),
            crate::retry::Decision::NoRetry
        );
    }
}
