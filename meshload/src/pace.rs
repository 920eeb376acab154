//! Precise waits for the `-qps` schedule.
//!
//! tokio's timer has millisecond granularity and rounds up, so `sleep_until(t)` wakes up to ~1 ms
//! late, and with latency measured from the scheduled time that lateness would show up as
//! latency. Deadlines are absolute (start + i/qps), so there is no drift whatever the timer does;
//! to also remove the sub-millisecond lateness, the wait sleeps with tokio until about 1 ms before
//! the deadline and then yields to the scheduler until the deadline passes.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::watch;

/// Below this remaining time, stop sleeping on the timer and yield-spin instead.
const SPIN: Duration = Duration::from_micros(1_100);

/// Waits until `deadline`. Returns false if the run was stopped meanwhile.
pub async fn sleep_until(
    deadline: Instant,
    stop: &AtomicBool,
    stop_rx: &mut watch::Receiver<bool>,
) -> bool {
    let now = Instant::now();
    if deadline > now + SPIN {
        let wake = tokio::time::Instant::from_std(deadline - SPIN);
        tokio::select! {
            _ = tokio::time::sleep_until(wake) => {}
            _ = stop_rx.changed() => return false,
        }
    }
    while Instant::now() < deadline {
        if stop.load(Ordering::Relaxed) {
            return false;
        }
        tokio::task::yield_now().await;
    }
    !stop.load(Ordering::Relaxed)
}
