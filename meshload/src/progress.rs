//! The live progress line, shown only when stderr is a terminal and the run lasts more than
//! about 2 s: elapsed time, calls, current rate and non-2xx count, rewritten in place.

use std::io::Write;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::worker::Shared;

/// First update after this much run time.
const DELAY: Duration = Duration::from_secs(2);
/// Time between updates.
const EVERY: Duration = Duration::from_millis(500);

fn totals(shared: &Shared) -> (u64, u64) {
    shared.slots.iter().fold((0, 0), |(c, e), s| {
        (
            c + s.calls.load(Ordering::Relaxed),
            e + s.errors.load(Ordering::Relaxed),
        )
    })
}

/// Updates the line until aborted by the run.
pub async fn show(shared: Arc<Shared>, start: Instant) {
    tokio::time::sleep(DELAY).await;
    let mut last = (Instant::now(), totals(&shared).0);
    let mut tick = tokio::time::interval(EVERY);
    loop {
        tick.tick().await;
        let now = Instant::now();
        let (calls, errors) = totals(&shared);
        let dt = now.duration_since(last.0).as_secs_f64();
        let rate = if dt > 0.0 {
            (calls - last.1.min(calls)) as f64 / dt
        } else {
            0.0
        };
        last = (now, calls);
        let mut err = std::io::stderr().lock();
        let _ = write!(
            err,
            "\r\x1b[K{:.1}s  {calls} calls  {rate:.1} qps  {errors} non-2xx",
            now.duration_since(start).as_secs_f64()
        );
        let _ = err.flush();
    }
}

/// Erases the progress line.
pub fn clear() {
    let mut err = std::io::stderr().lock();
    let _ = write!(err, "\r\x1b[K");
    let _ = err.flush();
}
