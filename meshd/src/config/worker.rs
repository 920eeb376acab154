//! The thread config work runs on: parsing, validating, compiling, building the listeners'
//! tables, writing files and freeing old configs. One thread, started on first use, at a lower
//! CPU priority than the proxy's workers (nice +10), so that on a small machine a large reload
//! takes a little longer instead of delaying requests: when a proxy worker has work, the kernel
//! runs it first.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::mpsc::{channel, Sender};
use std::sync::{Mutex, OnceLock};

type Job = Box<dyn FnOnce() + Send>;

/// How much lower the config thread's priority is than the rest of meshd's (nice).
const NICENESS: i32 = 10;

fn sender() -> Sender<Job> {
    static JOBS: OnceLock<Mutex<Sender<Job>>> = OnceLock::new();
    JOBS.get_or_init(|| {
        let (tx, rx) = channel::<Job>();
        let spawned = std::thread::Builder::new()
            .name("meshd-config".into())
            .spawn(move || {
                lower_priority();
                while let Ok(job) = rx.recv() {
                    job();
                }
            });
        if let Err(e) = spawned {
            tracing::error!(error = %e, "cannot start the config thread : {e}");
        }
        Mutex::new(tx)
    })
    .lock()
    .unwrap_or_else(|p| p.into_inner())
    .clone()
}

/// Lowers the calling thread's CPU priority by [`NICENESS`] (best effort: logged if refused).
fn lower_priority() {
    // SAFETY: `gettid` and `setpriority` are plain system calls on integers: no pointers, no
    // memory is read or written. On Linux, PRIO_PROCESS with a thread id sets that one thread's
    // nice value (the calling thread's, here), leaving the proxy's threads as they are.
    let done = unsafe {
        let tid = nix::libc::gettid();
        let now = nix::libc::getpriority(nix::libc::PRIO_PROCESS, tid as nix::libc::id_t);
        nix::libc::setpriority(
            nix::libc::PRIO_PROCESS,
            tid as nix::libc::id_t,
            now.saturating_add(NICENESS),
        )
    };
    if done != 0 {
        tracing::debug!(error = %std::io::Error::last_os_error(), "config thread keeps its priority");
    }
}

/// Runs `f` on the config thread and waits for it without blocking the caller's runtime
/// thread. A panic in `f` is raised again here.
pub async fn run<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = tokio::sync::oneshot::channel();
    let job: Job = Box::new(move || {
        let _ = tx.send(catch_unwind(AssertUnwindSafe(f)));
    });
    if sender().send(job).is_err() {
        panic!("the config thread is gone");
    }
    match rx.await {
        Ok(Ok(v)) => v,
        Ok(Err(panic)) => std::panic::resume_unwind(panic),
        Err(_) => panic!("the config thread dropped a job"),
    }
}

/// Runs `f` on the config thread without waiting (e.g. freeing an old config).
pub fn spawn(f: impl FnOnce() + Send + 'static) {
    let _ = sender().send(Box::new(move || {
        let _ = catch_unwind(AssertUnwindSafe(f));
    }));
}
