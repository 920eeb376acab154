//! Ejection events and their event-log line (Envoy's `outlier_log_path` JSON shape, plus the
//! facts Envoy leaves out).

use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime};

use serde::Serialize;

use super::EjectionType;

/// What happened to the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutlierAction {
    /// A detection: the host was ejected (`enforced`) or would have been.
    Eject,
    /// The host returned to rotation.
    Uneject,
}

/// Why a detection did not eject the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotEnforced {
    /// The max-ejection-percent rule refused (`ejections_overflow`).
    MaxEjectionPercent,
    /// Enforcement of this detection type is off (detected and logged only).
    EnforcementDisabled,
}

impl NotEnforced {
    /// `max_ejection_percent` or `enforcement_disabled`.
    pub fn as_str(self) -> &'static str {
        match self {
            NotEnforced::MaxEjectionPercent => "max_ejection_percent",
            NotEnforced::EnforcementDisabled => "enforcement_disabled",
        }
    }
}

/// Why an ejected host returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnejectCause {
    /// Its ejection time passed (checked at each interval).
    Time,
    /// An active health check succeeded.
    HealthCheck,
}

impl UnejectCause {
    /// `ejection_time_elapsed` or `active_health_check`.
    pub fn as_str(self) -> &'static str {
        match self {
            UnejectCause::Time => "ejection_time_elapsed",
            UnejectCause::HealthCheck => "active_health_check",
        }
    }
}

/// One ejection-state change (or refused ejection) of one host, for the event log, tracing
/// and `meshstat`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutlierEvent {
    /// The host.
    pub host: SocketAddr,
    /// Eject or uneject.
    pub action: OutlierAction,
    /// The detection (for an uneject: the ejection that ended).
    pub kind: EjectionType,
    /// Times the host has been ejected, this ejection included.
    pub num_ejections: u32,
    /// Whether the host was taken out (always `false` for an uneject, as Envoy logs it).
    pub enforced: bool,
    /// For a detection that did not eject: why.
    pub not_enforced: Option<NotEnforced>,
    /// For an enforced ejection: how long it lasts (returned at the first sweep after it).
    /// For an uneject: how long the host was out. Zero otherwise.
    pub duration: Duration,
    /// For an uneject: why.
    pub uneject_cause: Option<UnejectCause>,
    /// Time since the host's previous action (its last uneject for an ejection, its ejection
    /// for an uneject); `None` for a host never ejected before.
    pub since_last_action: Option<Duration>,
    /// When it happened.
    pub at: Instant,
}

impl OutlierEvent {
    pub(super) fn ejected(
        host: SocketAddr,
        kind: EjectionType,
        num_ejections: u32,
        duration: Duration,
        since_last_action: Option<Duration>,
        at: Instant,
    ) -> OutlierEvent {
        OutlierEvent {
            host,
            action: OutlierAction::Eject,
            kind,
            num_ejections,
            enforced: true,
            not_enforced: None,
            duration,
            uneject_cause: None,
            since_last_action,
            at,
        }
    }

    pub(super) fn not_enforced(
        host: SocketAddr,
        kind: EjectionType,
        num_ejections: u32,
        why: NotEnforced,
        since_last_action: Option<Duration>,
        at: Instant,
    ) -> OutlierEvent {
        OutlierEvent {
            enforced: false,
            not_enforced: Some(why),
            duration: Duration::ZERO,
            ..OutlierEvent::ejected(
                host,
                kind,
                num_ejections,
                Duration::ZERO,
                since_last_action,
                at,
            )
        }
    }

    pub(super) fn unejected(
        host: SocketAddr,
        kind: EjectionType,
        num_ejections: u32,
        out_for: Duration,
        cause: UnejectCause,
        at: Instant,
    ) -> OutlierEvent {
        OutlierEvent {
            host,
            action: OutlierAction::Uneject,
            kind,
            num_ejections,
            enforced: false,
            not_enforced: None,
            duration: out_for,
            uneject_cause: Some(cause),
            since_last_action: Some(out_for),
            at,
        }
    }

    /// The event-log line (JSON, no trailing newline) for cluster `cluster`, stamped
    /// `timestamp` (the wall-clock time of [`at`](OutlierEvent::at), which the caller knows).
    ///
    /// Envoy's `OutlierDetectionEvent` fields as its logger prints them (`type`, `timestamp`
    /// RFC 3339 in UTC with milliseconds, `secs_since_last_action` as a string when known,
    /// `cluster_name`, `upstream_url` = `ip:port`, `action` `EJECT`/`UNEJECT`,
    /// `num_ejections`, `enforced`, `eject_consecutive_event: {}` for an ejection), then
    /// meshd's additions: `ejection_duration_ms` (an enforced ejection), `not_enforced_reason`,
    /// `ejected_for_ms` and `uneject_reason` (an uneject).
    pub fn to_json(&self, cluster: &str, timestamp: SystemTime) -> String {
        let eject = self.action == OutlierAction::Eject;
        let line = LogLine {
            r#type: self.kind.as_str(),
            timestamp: humantime::format_rfc3339_millis(timestamp).to_string(),
            secs_since_last_action: self.since_last_action.map(|d| d.as_secs().to_string()),
            cluster_name: cluster,
            upstream_url: self.host.to_string(),
            action: if eject { "EJECT" } else { "UNEJECT" },
            num_ejections: self.num_ejections,
            enforced: self.enforced,
            eject_consecutive_event: eject.then_some(Empty {}),
            ejection_duration_ms: (eject && self.enforced).then(|| millis(self.duration)),
            not_enforced_reason: self.not_enforced.map(NotEnforced::as_str),
            ejected_for_ms: (!eject).then(|| millis(self.duration)),
            uneject_reason: self.uneject_cause.map(UnejectCause::as_str),
        };
        serde_json::to_string(&line).unwrap_or_default()
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

#[derive(Serialize)]
struct Empty {}

#[derive(Serialize)]
struct LogLine<'a> {
    r#type: &'static str,
    timestamp: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    secs_since_last_action: Option<String>,
    cluster_name: &'a str,
    upstream_url: String,
    action: &'static str,
    num_ejections: u32,
    enforced: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    eject_consecutive_event: Option<Empty>,
    #[serde(skip_serializing_if = "Option::is_none")]
    ejection_duration_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    not_enforced_reason: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    ejected_for_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    uneject_reason: Option<&'static str>,
}
