//! Outlier detection counters and gauge (Envoy's names).

use super::EjectionType;
use crate::stats::{kept_on_reset, Counter, Gauge, StatType, Visit};

/// Outlier detection counters and gauge of one cluster (Envoy's names, under
/// `cluster.<name>.outlier_detection.`).
#[derive(Debug, Default)]
pub struct OutlierStats {
    /// `ejections_active`: hosts ejected now.
    pub ejections_active: Gauge,
    /// `ejections_enforced_total`: ejections that took a host out.
    pub ejections_enforced_total: Counter,
    /// `ejections_overflow`: detections refused by the max-ejection-percent rule.
    pub ejections_overflow: Counter,
    /// `ejections_enforced_<type>` and `ejections_detected_<type>`, by [`EjectionType`].
    enforced: [Counter; 3],
    detected: [Counter; 3],
}

const TYPES: [EjectionType; 3] = [
    EjectionType::Consecutive5xx,
    EjectionType::ConsecutiveGatewayFailure,
    EjectionType::ConsecutiveLocalOriginFailure,
];

impl OutlierStats {
    /// `ejections_enforced_<type>`.
    pub fn enforced(&self, kind: EjectionType) -> &Counter {
        &self.enforced[kind.index()]
    }

    /// `ejections_detected_<type>`.
    pub fn detected(&self, kind: EjectionType) -> &Counter {
        &self.detected[kind.index()]
    }

    /// Resets every counter except those that record faults and refusals
    /// ([`kept_on_reset`]); the gauge stays.
    pub fn reset(&self) {
        let mut all = vec![
            ("ejections_enforced_total", &self.ejections_enforced_total),
            ("ejections_overflow", &self.ejections_overflow),
        ];
        all.extend(self.enforced.iter().map(|c| ("ejections_enforced", c)));
        all.extend(self.detected.iter().map(|c| ("ejections_detected", c)));
        for (name, c) in all {
            if !kept_on_reset(name) {
                c.reset();
            }
        }
    }
}

impl Visit for OutlierStats {
    /// `prefix` ends with `outlier_detection.`.
    fn visit(&self, prefix: &str, emit: &mut dyn FnMut(String, StatType, u64)) {
        let counter = StatType::Counter;
        emit(
            format!("{prefix}ejections_active"),
            StatType::Gauge,
            self.ejections_active.get(),
        );
        emit(
            format!("{prefix}ejections_enforced_total"),
            counter,
            self.ejections_enforced_total.get(),
        );
        emit(
            format!("{prefix}ejections_overflow"),
            counter,
            self.ejections_overflow.get(),
        );
        for t in TYPES {
            let s = t.stat_suffix();
            emit(
                format!("{prefix}ejections_enforced_{s}"),
                counter,
                self.enforced(t).get(),
            );
            emit(
                format!("{prefix}ejections_detected_{s}"),
                counter,
                self.detected(t).get(),
            );
        }
    }
}
