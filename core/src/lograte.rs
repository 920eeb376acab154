//! At most one log line per interval for an event that may recur thousands of times a second (a
//! cluster refusing requests): the first event logs, later ones within the interval are only
//! counted, and the next line says how many were not logged. Time is passed in (milliseconds on
//! any monotonic clock), so the decision is a pure function of the calls.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// One rate-limited log line (see the module docs). Lock-free; shared by every thread.
#[derive(Debug)]
pub struct Every {
    interval_ms: u64,
    /// When the last line was logged, plus one (0: never).
    last: AtomicU64,
    /// Events since then that were not logged.
    missed: AtomicU64,
}

impl Every {
    /// A limiter allowing one line per `interval`.
    pub const fn new(interval: Duration) -> Self {
        Every {
            interval_ms: interval.as_millis() as u64,
            last: AtomicU64::new(0),
            missed: AtomicU64::new(0),
        }
    }

    /// Records an event at `now_ms`. `Some(missed)` when it is to be logged (the first event,
    /// then the first one at least an interval after the last logged one; of events at the same
    /// moment on several threads exactly one logs), with the number of events not logged since
    /// the last line; `None` when it is only counted.
    pub fn check(&self, now_ms: u64) -> Option<u64> {
        let stamp = now_ms.saturating_add(1);
        let last = self.last.load(Ordering::Relaxed);
        let due = last == 0 || stamp.saturating_sub(last) >= self.interval_ms;
        if due
            && self
                .last
                .compare_exchange(last, stamp, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            return Some(self.missed.swap(0, Ordering::Relaxed));
        }
        self.missed.fetch_add(1, Ordering::Relaxed);
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logs_the_first_then_one_per_interval_and_counts_the_rest() {
        let e = Every::new(Duration::from_secs(10));
        assert_eq!(e.check(0), Some(0));
        assert_eq!(e.check(1), None);
        assert_eq!(e.check(9_999), None);
        assert_eq!(e.check(10_000), Some(2));
        assert_eq!(e.check(10_001), None);
        assert_eq!(e.check(25_000), Some(1));
        assert_eq!(e.check(25_000), None);
    }

    #[test]
    fn of_many_threads_at_once_exactly_one_logs() {
        let e = std::sync::Arc::new(Every::new(Duration::from_secs(10)));
        let logged: u64 = (0..8)
            .map(|_| {
                let e = e.clone();
                std::thread::spawn(move || (0..1000).filter(|_| e.check(5).is_some()).count())
            })
            .map(|t| t.join().expect("thread") as u64)
            .sum();
        assert_eq!(logged, 1);
        assert_eq!(e.check(10_005), Some(7_999));
    }
}
