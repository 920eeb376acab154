//! Outlier detection settings, detection types and the max-ejection-percent rule.

use std::time::Duration;

/// Whether a successful active health check brings an ejected host back at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HealthCheckUneject {
    /// Never: the host waits for its ejection time.
    Never,
    /// Only a host ejected for local-origin failures (the check proves it reachable).
    LocalOrigin,
    /// Any ejected host (Envoy's `successful_active_health_check_uneject_host: true`).
    Any,
}

/// A cluster's outlier detection settings (Envoy's names; durations > 0).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutlierConfig {
    /// Consecutive upstream 5xx that eject a host (0 = off).
    pub consecutive_5xx: u32,
    /// Consecutive 502/503/504 that eject a host (0 = off).
    pub consecutive_gateway_failure: u32,
    /// Consecutive local-origin failures that eject a host (0 = off; split mode only).
    pub consecutive_local_origin_failure: u32,
    /// Whether a consecutive-5xx detection ejects (else it is only logged).
    pub enforcing_consecutive_5xx: bool,
    /// Whether a gateway-failure detection ejects.
    pub enforcing_consecutive_gateway_failure: bool,
    /// Whether a local-origin detection ejects.
    pub enforcing_consecutive_local_origin_failure: bool,
    /// Count local-origin failures apart from upstream 5xx.
    pub split_external_local_origin_errors: bool,
    /// Time between sweeps (unejection, backoff decay, success rate).
    pub interval: Duration,
    /// Ejection time of a first ejection.
    pub base_ejection_time: Duration,
    /// Longest ejection time.
    pub max_ejection_time: Duration,
    /// Share of hosts that may be ejected at once, 0–100 ([`ejection_allowed`]).
    pub max_ejection_percent: u32,
    /// What a successful active health check does to an ejected host.
    pub uneject_on_health_check: HealthCheckUneject,
}

impl OutlierConfig {
    /// Envoy's defaults: 5 consecutive 5xx (enforced), 5 gateway failures (detected, not
    /// enforced), no split, interval 10 s, base 30 s, max 300 s, 10 %.
    pub const ENVOY_DEFAULT: OutlierConfig = OutlierConfig {
        consecutive_5xx: 5,
        consecutive_gateway_failure: 5,
        consecutive_local_origin_failure: 5,
        enforcing_consecutive_5xx: true,
        enforcing_consecutive_gateway_failure: false,
        enforcing_consecutive_local_origin_failure: true,
        split_external_local_origin_errors: false,
        interval: Duration::from_secs(10),
        base_ejection_time: Duration::from_secs(30),
        max_ejection_time: Duration::from_secs(300),
        max_ejection_percent: 10,
        uneject_on_health_check: HealthCheckUneject::Any,
    };

    /// App Mesh's `outlierDetection`: `maxServerErrors` consecutive upstream 5xx **or**
    /// local-origin failures eject (both enforced, counted apart); gateway-failure detection is
    /// off (App Mesh cannot set it, and Envoy would only log it); `max_ejection_time` is
    /// `max(300 s, base)` as Envoy's default; a health check unejects local-origin ejections.
    pub fn app_mesh(
        max_server_errors: u32,
        interval: Duration,
        base_ejection_duration: Duration,
        max_ejection_percent: u32,
    ) -> OutlierConfig {
        OutlierConfig {
            consecutive_5xx: max_server_errors,
            consecutive_gateway_failure: 0,
            consecutive_local_origin_failure: max_server_errors,
            enforcing_consecutive_5xx: true,
            enforcing_consecutive_gateway_failure: false,
            enforcing_consecutive_local_origin_failure: true,
            split_external_local_origin_errors: true,
            interval,
            base_ejection_time: base_ejection_duration,
            max_ejection_time: base_ejection_duration.max(Duration::from_secs(300)),
            max_ejection_percent: max_ejection_percent.min(100),
            uneject_on_health_check: HealthCheckUneject::LocalOrigin,
        }
    }

    /// How long an ejection with this backoff lasts: `min(base × backoff, max)`.
    pub fn ejection_time(&self, backoff: u32) -> Duration {
        self.base_ejection_time
            .saturating_mul(backoff)
            .min(self.max_ejection_time)
    }

    pub(super) fn threshold(&self, kind: EjectionType) -> u32 {
        match kind {
            EjectionType::Consecutive5xx => self.consecutive_5xx,
            EjectionType::ConsecutiveGatewayFailure => self.consecutive_gateway_failure,
            EjectionType::ConsecutiveLocalOriginFailure => self.consecutive_local_origin_failure,
        }
    }

    pub(super) fn enforcing(&self, kind: EjectionType) -> bool {
        match kind {
            EjectionType::Consecutive5xx => self.enforcing_consecutive_5xx,
            EjectionType::ConsecutiveGatewayFailure => self.enforcing_consecutive_gateway_failure,
            EjectionType::ConsecutiveLocalOriginFailure => {
                self.enforcing_consecutive_local_origin_failure
            }
        }
    }
}

/// Why a host was detected as an outlier.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EjectionType {
    /// Consecutive upstream 5xx.
    Consecutive5xx,
    /// Consecutive upstream 502/503/504.
    ConsecutiveGatewayFailure,
    /// Consecutive local-origin failures (connect failure, reset, timeout).
    ConsecutiveLocalOriginFailure,
}

impl EjectionType {
    /// Envoy's event-log name: `CONSECUTIVE_5XX`, `CONSECUTIVE_GATEWAY_FAILURE`,
    /// `CONSECUTIVE_LOCAL_ORIGIN_FAILURE`.
    pub fn as_str(self) -> &'static str {
        match self {
            EjectionType::Consecutive5xx => "CONSECUTIVE_5XX",
            EjectionType::ConsecutiveGatewayFailure => "CONSECUTIVE_GATEWAY_FAILURE",
            EjectionType::ConsecutiveLocalOriginFailure => "CONSECUTIVE_LOCAL_ORIGIN_FAILURE",
        }
    }

    /// The stat suffix: `consecutive_5xx`, `consecutive_gateway_failure`,
    /// `consecutive_local_origin_failure`.
    pub fn stat_suffix(self) -> &'static str {
        match self {
            EjectionType::Consecutive5xx => "consecutive_5xx",
            EjectionType::ConsecutiveGatewayFailure => "consecutive_gateway_failure",
            EjectionType::ConsecutiveLocalOriginFailure => "consecutive_local_origin_failure",
        }
    }

    pub(super) fn index(self) -> usize {
        match self {
            EjectionType::Consecutive5xx => 0,
            EjectionType::ConsecutiveGatewayFailure => 1,
            EjectionType::ConsecutiveLocalOriginFailure => 2,
        }
    }
}

/// The max-ejection-percent rule: with `ejected` hosts out of `hosts`, may one more be ejected?
/// Yes when `(ejected + 1) × 100 ≤ max_percent × hosts` (Envoy), or when none is ejected and at
/// least one other host stays in rotation (`ejected == 0 && hosts ≥ 2`). Never with no host.
pub fn ejection_allowed(ejected: usize, hosts: usize, max_percent: u32) -> bool {
    if hosts == 0 {
        return false;
    }
    let within = (ejected as u128 + 1) * 100 <= u128::from(max_percent) * hosts as u128;
    within || (ejected == 0 && hosts >= 2)
}
