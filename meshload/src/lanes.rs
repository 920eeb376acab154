//! One OS thread per core, each with its own current-thread tokio runtime, and the connections
//! spread over them (as wrk's threads and oha's fast path). A connection's task, its timers and
//! its socket then stay on one thread: no work stealing, no cross-thread wake-ups.
//!
//! Each lane warms up its connections, reports the warm-up results, waits for the common start
//! instant (or for an abort), runs, and hands its workers back with their statistics.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use tokio::sync::oneshot;

use crate::client::Target;
use crate::error::Error;
use crate::latency::Latency;
use crate::worker::{Shared, Worker};

/// Connections per lane from which a max-QPS connection yields between calls (see
/// `Worker::batch`): with fewer, the extra turn of the event loop costs more than it saves.
const BATCH_FROM: usize = 4;

/// Warm-up result of one connection: status (-1 = socket error) and response size.
pub type Warm = (i32, u64);

struct Lane {
    warm_rx: oneshot::Receiver<Vec<Warm>>,
    start_tx: oneshot::Sender<Option<Instant>>,
    // Workers stay boxed for their whole life: each moves into and out of a task (see
    // `Worker::run`), and a box moves as one pointer.
    #[allow(clippy::vec_box)]
    done_rx: oneshot::Receiver<Vec<Box<Worker>>>,
    thread: std::thread::JoinHandle<()>,
    /// The HDR histograms shared by this lane's workers.
    latency: Arc<Mutex<Latency>>,
}

/// The running lanes.
pub struct Lanes {
    lanes: Vec<Lane>,
}

#[allow(clippy::vec_box)] // see `Lane::done_rx`
async fn lane_main(
    workers: Vec<Box<Worker>>,
    warmup: bool,
    warm_tx: oneshot::Sender<Vec<Warm>>,
    start_rx: oneshot::Receiver<Option<Instant>>,
) -> Vec<Box<Worker>> {
    let mut workers = workers;
    let mut warm = Vec::new();
    if warmup {
        let handles: Vec<_> = workers
            .into_iter()
            .map(|mut w| {
                tokio::spawn(async move {
                    let r = w.warmup().await;
                    (w, r)
                })
            })
            .collect();
        workers = Vec::with_capacity(handles.len());
        for h in handles {
            if let Ok((w, r)) = h.await {
                workers.push(w);
                warm.push(r);
            }
        }
    }
    let _ = warm_tx.send(warm);
    let Ok(Some(start)) = start_rx.await else {
        return workers;
    };
    let handles: Vec<_> = workers
        .into_iter()
        .map(|w| tokio::spawn(w.run(start)))
        .collect();
    let mut done = Vec::with_capacity(handles.len());
    for h in handles {
        if let Ok(w) = h.await {
            done.push(w);
        }
    }
    done
}

impl Lanes {
    /// Starts `lanes` threads holding the run's connections (connection i on lane i % lanes).
    pub fn spawn(
        shared: &Arc<Shared>,
        addr: Target,
        lanes: usize,
        warmup: bool,
    ) -> Result<Lanes, Error> {
        let threads = shared.plan.threads;
        let lanes = lanes.clamp(1, threads.max(1));
        let mut out = Vec::with_capacity(lanes);
        for lane in 0..lanes {
            // Boxed: a task's output is moved on every poll of it, so it must be small.
            let latency = Arc::new(Mutex::new(Latency::new()));
            let mut workers: Vec<Box<Worker>> = (lane..threads)
                .step_by(lanes)
                .map(|i| {
                    Box::new(Worker::new(
                        i,
                        shared.clone(),
                        addr.clone(),
                        latency.clone(),
                    ))
                })
                .collect();
            let batch = workers.len() >= BATCH_FROM;
            for w in &mut workers {
                w.batch = batch;
            }
            let (warm_tx, warm_rx) = oneshot::channel();
            let (start_tx, start_rx) = oneshot::channel();
            let (done_tx, done_rx) = oneshot::channel();
            let rt = tokio::runtime::Builder::new_current_thread()
                // I/O and timers only: without the signal and process drivers, parking does
                // not check for child processes on every turn.
                .enable_io()
                .enable_time()
                .build()
                .map_err(|e| Error::runtime("tokio runtime", e))?;
            let thread = std::thread::Builder::new()
                .name(format!("meshload-{lane}"))
                .spawn(move || {
                    crate::pace::precise_timers();
                    let done = rt.block_on(lane_main(workers, warmup, warm_tx, start_rx));
                    let _ = done_tx.send(done);
                    // Dropping the runtime here closes the remaining connections.
                })
                .map_err(|e| Error::runtime("thread", e))?;
            out.push(Lane {
                warm_rx,
                start_tx,
                done_rx,
                thread,
                latency,
            });
        }
        Ok(Lanes { lanes: out })
    }

    /// Waits for every lane's warm-up results.
    pub async fn warmed(&mut self) -> Vec<Warm> {
        let mut all = Vec::new();
        for l in &mut self.lanes {
            if let Ok(w) = (&mut l.warm_rx).await {
                all.extend(w);
            }
        }
        all
    }

    /// Starts every lane at `start` (`None` aborts) and waits for all workers, sorted by id.
    /// Also returns the lanes' HDR latency histograms, merged.
    #[allow(clippy::vec_box)] // see `Lane::done_rx`
    pub async fn run(self, start: Option<Instant>) -> (Vec<Box<Worker>>, Latency) {
        let mut workers = Vec::new();
        let mut latency = Latency::new();
        let mut waiting = Vec::with_capacity(self.lanes.len());
        for l in self.lanes {
            let _ = l.start_tx.send(start);
            waiting.push((l.done_rx, l.thread, l.latency));
        }
        for (done_rx, thread, lane_latency) in waiting {
            if let Ok(w) = done_rx.await {
                workers.extend(w);
            }
            let _ = thread.join();
            latency.merge(&lane_latency.lock().unwrap_or_else(PoisonError::into_inner));
        }
        workers.sort_by_key(|w| w.id);
        (workers, latency)
    }
}
