//! fortio's statistics: the `Counter` (count, sum, min, max, population std-dev) and the
//! fixed-bucket `Histogram` of `fortio/stats/stats.go`, used for the histogram lines and the JSON
//! `Data[]` so they match fortio exactly. Latency percentiles come from HdrHistogram instead
//! (see [`crate::latency`]); this module's interpolated percentiles serve the secondary
//! histograms (errors, connection times), as fortio computes them.

use std::fmt::Write as _;

use crate::gofmt::{g, g_prec};

/// Upper bounds of fortio's buckets, in units of the histogram's divider (`-r`).
pub const BUCKET_BOUNDS: [f64; 56] = [
    0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0, 11.0, 12.0, 14.0, 16.0, 18.0, 20.0,
    25.0, 30.0, 35.0, 40.0, 45.0, 50.0, 60.0, 70.0, 80.0, 90.0, 100.0, 120.0, 140.0, 160.0, 180.0,
    200.0, 250.0, 300.0, 350.0, 400.0, 450.0, 500.0, 600.0, 700.0, 800.0, 900.0, 1000.0, 2000.0,
    3000.0, 4000.0, 5000.0, 7500.0, 10000.0, 20000.0, 30000.0, 40000.0, 50000.0, 75000.0, 100000.0,
];

/// Number of buckets: one per bound plus one for values above the last bound.
pub const NUM_BUCKETS: usize = BUCKET_BOUNDS.len() + 1;

/// fortio's `Counter`: running count, sum, sum of squares, min and max.
#[derive(Debug, Clone, Copy, Default)]
pub struct Counter {
    /// Number of values recorded.
    pub count: u64,
    /// Sum of the values.
    pub sum: f64,
    /// Sum of the squares of the values.
    pub sum_sq: f64,
    /// Smallest value (0 when empty).
    pub min: f64,
    /// Largest value (0 when empty).
    pub max: f64,
}

impl Counter {
    /// Records one value.
    #[inline]
    pub fn record(&mut self, v: f64) {
        if self.count == 0 {
            self.min = v;
            self.max = v;
        } else {
            self.min = self.min.min(v);
            self.max = self.max.max(v);
        }
        self.count += 1;
        self.sum += v;
        self.sum_sq += v * v;
    }

    /// Adds another counter's data to this one.
    pub fn merge(&mut self, o: &Counter) {
        if o.count == 0 {
            return;
        }
        if self.count == 0 {
            *self = *o;
            return;
        }
        self.count += o.count;
        self.sum += o.sum;
        self.sum_sq += o.sum_sq;
        self.min = self.min.min(o.min);
        self.max = self.max.max(o.max);
    }

    /// Mean (0 when empty).
    pub fn avg(&self) -> f64 {
        if self.count == 0 {
            0.0
        } else {
            self.sum / self.count as f64
        }
    }

    /// Population standard deviation, as fortio computes it.
    pub fn stddev(&self) -> f64 {
        if self.count == 0 {
            return 0.0;
        }
        let n = self.count as f64;
        let var = (self.sum_sq - self.sum * self.sum / n) / n;
        if var > 0.0 {
            var.sqrt()
        } else {
            0.0
        }
    }

    /// fortio's `Counter.Print` line: `name : count N avg A +/- S min M max X sum T`.
    pub fn line(&self, name: &str) -> String {
        format!(
            "{name} : count {} avg {} +/- {} min {} max {} sum {}",
            self.count,
            g_prec(self.avg(), 8),
            g_prec(self.stddev(), 4),
            g(self.min),
            g(self.max),
            g_prec(self.sum, 9)
        )
    }
}

/// fortio's fixed-bucket histogram: a [`Counter`] plus counts in [`NUM_BUCKETS`] buckets of
/// `(v - offset) / divider`.
#[derive(Debug, Clone)]
pub struct Histogram {
    /// Exact summary of the recorded values.
    pub counter: Counter,
    /// Subtracted from values before bucketing.
    pub offset: f64,
    /// Values are divided by this before bucketing (`-r`).
    pub divider: f64,
    /// Count per bucket.
    pub buckets: [u64; NUM_BUCKETS],
}

/// One exported bucket (`Start`, `End`, cumulative `Percent`, `Count`).
#[derive(Debug, Clone, PartialEq)]
pub struct Bucket {
    /// Lower end (the minimum for the first listed bucket).
    pub start: f64,
    /// Upper end (the maximum for the last listed bucket).
    pub end: f64,
    /// Cumulative percentage up to and including this bucket.
    pub percent: f64,
    /// Values in this bucket.
    pub count: u64,
}

/// A histogram as exported to JSON (`HistogramData`), with its percentiles.
#[derive(Debug, Clone)]
pub struct HistogramData {
    /// Summary values.
    pub counter: Counter,
    /// Non-empty buckets.
    pub data: Vec<Bucket>,
    /// `(percentile, value)` pairs; empty means the field is omitted.
    pub percentiles: Vec<(f64, f64)>,
}

impl Histogram {
    /// An empty histogram with fortio's `NewHistogram(offset, divider)`.
    pub fn new(offset: f64, divider: f64) -> Self {
        Histogram {
            counter: Counter::default(),
            offset,
            divider,
            buckets: [0; NUM_BUCKETS],
        }
    }

    /// Bucket index of a value: buckets are `]prev, cur]`; a value within 1e-12 of a bound
    /// belongs to the bucket that bound closes.
    #[inline]
    pub fn bucket_of(&self, v: f64) -> usize {
        let scaled = (v - self.offset) / self.divider - 1e-12;
        BUCKET_BOUNDS.partition_point(|&b| b < scaled)
    }

    /// Records one value.
    #[inline]
    pub fn record(&mut self, v: f64) {
        self.counter.record(v);
        let idx = self.bucket_of(v);
        self.buckets[idx] += 1;
    }

    /// Adds another histogram (same offset and divider) to this one.
    pub fn merge(&mut self, o: &Histogram) {
        self.counter.merge(&o.counter);
        for (a, b) in self.buckets.iter_mut().zip(o.buckets.iter()) {
            *a += b;
        }
    }

    /// fortio's `Export`: the non-empty buckets with cumulative percentages.
    pub fn export(&self) -> Vec<Bucket> {
        let mut out: Vec<Bucket> = Vec::new();
        let total = self.counter.count as f64;
        let mut prev = BUCKET_BOUNDS[0];
        let mut cum = 0u64;
        for (i, &n) in self.buckets.iter().enumerate() {
            let bound = BUCKET_BOUNDS.get(i).copied();
            if n == 0 {
                if let Some(b) = bound {
                    prev = b;
                }
                continue;
            }
            cum += n;
            let start = if out.is_empty() {
                self.counter.min
            } else {
                self.divider * prev + self.offset
            };
            let end = match bound {
                Some(b) => {
                    prev = b;
                    self.divider * b + self.offset
                }
                None => self.counter.max,
            };
            out.push(Bucket {
                start,
                end,
                percent: 100.0 * cum as f64 / total,
                count: n,
            });
        }
        if let Some(last) = out.last_mut() {
            last.end = self.counter.max;
        }
        out
    }

    /// Exports with fortio's interpolated percentiles.
    pub fn data(&self, percentiles: &[f64]) -> HistogramData {
        let data = self.export();
        let percentiles = if data.is_empty() {
            Vec::new()
        } else {
            percentiles
                .iter()
                .map(|&p| (p, interpolate(&self.counter, &data, p)))
                .collect()
        };
        HistogramData {
            counter: self.counter,
            data,
            percentiles,
        }
    }
}

/// fortio's `CalcPercentile`: linear interpolation inside the bucket holding `p`.
pub fn interpolate(counter: &Counter, data: &[Bucket], p: f64) -> f64 {
    if counter.count == 0 {
        return 0.0;
    }
    if p >= 100.0 {
        return counter.max;
    }
    let mut pp = 100.0 / counter.count as f64;
    if p <= pp {
        return counter.min;
    }
    for b in data {
        if p <= b.percent {
            return b.start + (p - pp) / (b.percent - pp) * (b.end - b.start);
        }
        pp = b.percent;
    }
    counter.max
}

/// The histogram lines fortio prints: a header, then one `>= a <= b , mid , pct, n` line per
/// bucket (`>` instead of `>=` after the first).
pub fn histogram_lines(out: &mut String, data: &[Bucket]) {
    out.push_str("# range, mid point, percentile, count\n");
    for (i, b) in data.iter().enumerate() {
        let sep = if i == 0 { ">=" } else { ">" };
        let _ = writeln!(
            out,
            "{sep} {} <= {} , {} , {:.2}, {}",
            g_prec(b.start, 6),
            g_prec(b.end, 6),
            g_prec((b.start + b.end) / 2.0, 6),
            b.percent,
            b.count
        );
    }
}

/// `# target P% V` lines.
pub fn target_lines(out: &mut String, percentiles: &[(f64, f64)]) {
    for (p, v) in percentiles {
        let _ = writeln!(out, "# target {}% {}", g(*p), g_prec(*v, 6));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_left_open_right_closed() {
        let h = Histogram::new(0.0, 0.001);
        assert_eq!(h.bucket_of(0.0), 0);
        assert_eq!(h.bucket_of(0.0005), 1);
        assert_eq!(h.bucket_of(0.001), 1);
        assert_eq!(h.bucket_of(0.006), 6);
        assert_eq!(h.bucket_of(0.0061), 7);
        assert_eq!(h.bucket_of(0.013), 13);
        assert_eq!(h.bucket_of(100.0), 55);
        assert_eq!(h.bucket_of(101.0), 56);
    }

    #[test]
    fn counter_line_matches_fortio_sample() {
        let mut c = Counter::default();
        for v in [241.0, 283.0, 270.0, 280.0] {
            c.record(v);
        }
        assert_eq!(
            c.line("Sizes"),
            "Sizes : count 4 avg 268.5 +/- 16.59 min 241 max 283 sum 1074"
        );
        assert_eq!(
            Counter::default().line("Error cases"),
            "Error cases : count 0 avg 0 +/- 0 min 0 max 0 sum 0"
        );
    }

    #[test]
    fn percentile_interpolation_matches_istio_sample() {
        // From the Istio circuit-breaking sample: 40% cumulative before ]0.009,0.01] which ends
        // at 60%, so p50 = 0.0095.
        let counter = Counter {
            count: 20,
            sum: 0.2,
            sum_sq: 0.0,
            min: 0.002,
            max: 0.0194349,
        };
        let data = vec![
            Bucket {
                start: 0.002,
                end: 0.009,
                percent: 40.0,
                count: 8,
            },
            Bucket {
                start: 0.009,
                end: 0.01,
                percent: 60.0,
                count: 4,
            },
            Bucket {
                start: 0.01,
                end: 0.018,
                percent: 95.0,
                count: 7,
            },
            Bucket {
                start: 0.018,
                end: 0.0194349,
                percent: 100.0,
                count: 1,
            },
        ];
        assert_eq!(g_prec(interpolate(&counter, &data, 50.0), 6), "0.0095");
        assert_eq!(g_prec(interpolate(&counter, &data, 99.0), 6), "0.0191479");
    }

    #[test]
    fn export_starts_at_min_and_ends_at_max() {
        let mut h = Histogram::new(0.0, 0.001);
        for v in [0.0021, 0.0025, 0.0095, 0.0194] {
            h.record(v);
        }
        let d = h.export();
        assert_eq!(d.len(), 3);
        assert_eq!(d[0].start, 0.0021);
        assert_eq!(d[0].count, 2);
        assert_eq!(g_prec(d[1].start, 6), "0.009");
        assert_eq!(d[2].end, 0.0194);
        assert_eq!(d[2].percent, 100.0);
        let mut s = String::new();
        histogram_lines(&mut s, &d);
        assert!(
            s.contains(">= 0.0021 <= 0.003 , 0.00255 , 50.00, 2\n"),
            "{s}"
        );
        assert!(s.contains("> 0.009 <= 0.01 , 0.0095 , 75.00, 1\n"), "{s}");
    }
}
