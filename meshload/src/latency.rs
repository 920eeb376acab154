//! Latency percentiles from HdrHistogram (3 significant digits, constant memory), kept twice:
//! corrected (from each request's scheduled send time, coordinated omission included, as wrk2)
//! and raw (from the actual send). In max-QPS mode both are the same.

use std::time::Duration;

use hdrhistogram::Histogram;

/// Values are nanoseconds; the lowest discernible value is 1 µs (about 0.1 % error above 1 ms).
const LOWEST_NS: u64 = 1_000;

/// The pair of HDR histograms of one connection or run.
#[derive(Debug, Clone)]
pub struct Latency {
    /// From the scheduled send time.
    pub corrected: Histogram<u64>,
    /// From the actual send time.
    pub raw: Histogram<u64>,
}

fn empty() -> Histogram<u64> {
    // Auto-resizing: memory grows only with the largest value seen (log-scale), never with the
    // number of requests.
    let mut h = Histogram::new_with_bounds(LOWEST_NS, 2 * LOWEST_NS, 3)
        .unwrap_or_else(|_| Histogram::new(3).unwrap_or_else(|_| unreachable!()));
    h.auto(true);
    h
}

fn ns(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

impl Default for Latency {
    fn default() -> Self {
        Self::new()
    }
}

impl Latency {
    /// Empty histograms.
    pub fn new() -> Latency {
        Latency {
            corrected: empty(),
            raw: empty(),
        }
    }

    /// Records one call.
    #[inline]
    pub fn record(&mut self, corrected: Duration, raw: Duration) {
        let _ = self.corrected.record(ns(corrected));
        let _ = self.raw.record(ns(raw));
    }

    /// Records a call's corrected latency only (max-QPS mode, where raw is the same).
    #[inline]
    pub fn record_corrected(&mut self, corrected: Duration) {
        let _ = self.corrected.record(ns(corrected));
    }

    /// Adds another pair.
    pub fn merge(&mut self, o: &Latency) {
        let _ = self.corrected.add(&o.corrected);
        let _ = self.raw.add(&o.raw);
    }
}

/// The value at percentile `p` (0–100) in seconds; the maximum for 100 and above.
pub fn percentile(h: &Histogram<u64>, p: f64) -> f64 {
    if h.is_empty() {
        return 0.0;
    }
    let v = if p >= 100.0 {
        h.max()
    } else {
        h.value_at_quantile(p / 100.0)
    };
    v as f64 / 1e9
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_within_hdr_precision() {
        let mut l = Latency::new();
        for i in 1..=1000u64 {
            l.record(Duration::from_micros(i * 10), Duration::from_micros(i));
        }
        let p50 = percentile(&l.corrected, 50.0);
        assert!((p50 - 0.005).abs() < 0.005 * 0.002, "{p50}");
        let p99 = percentile(&l.raw, 99.0);
        assert!((p99 - 0.00099).abs() < 0.00099 * 0.002, "{p99}");
        let mut m = Latency::new();
        m.merge(&l);
        assert_eq!(m.corrected.len(), 1000);
    }
}
