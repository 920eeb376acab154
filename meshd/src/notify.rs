//! systemd's service notifications (sd_notify(3)), for `Type=notify` / `Type=notify-reload`
//! units with `WatchdogSec=`. Without `NOTIFY_SOCKET` every function here does nothing.
//!
//! * `READY=1` once every listener is bound and the config is in force (and again after each
//!   reload), with a one-line `STATUS=` (nodes served, listeners, clusters, last reload).
//! * `RELOADING=1` with `MONOTONIC_USEC=` before each reload (SIGHUP or a change in the
//!   directory), then `READY=1` when it is done, whatever its result.
//! * `STOPPING=1` when the drain starts.
//! * `WATCHDOG=1` every `WATCHDOG_USEC / 2`, from a task on the serving runtime that first
//!   checks the config thread answers (every apply runs there): a wedged runtime or a wedged
//!   config path stops the pings, and systemd restarts meshd.
//!
//! The socket is a Unix datagram socket: a path, or an abstract name written `@name`.

use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::sync::OnceLock;
use std::time::Duration;

use crate::config::Applier;

struct Target {
    sock: UnixDatagram,
    addr: SocketAddr,
}

/// The socket, read from `NOTIFY_SOCKET` once.
fn target() -> Option<&'static Target> {
    static TARGET: OnceLock<Option<Target>> = OnceLock::new();
    TARGET
        .get_or_init(|| {
            let path = std::env::var_os("NOTIFY_SOCKET")?;
            let path = path.to_string_lossy().into_owned();
            let addr = match path.strip_prefix('@') {
                Some(name) => {
                    use std::os::linux::net::SocketAddrExt;
                    SocketAddr::from_abstract_name(name.as_bytes())
                }
                None => SocketAddr::from_pathname(&path),
            };
            let made = addr.and_then(|addr| {
                Ok(Target {
                    sock: UnixDatagram::unbound()?,
                    addr,
                })
            });
            match made {
                Ok(t) => Some(t),
                Err(e) => {
                    tracing::warn!(socket = %path, error = %e, "cannot notify systemd");
                    None
                }
            }
        })
        .as_ref()
}

/// Sends `state` (newline-separated `KEY=VALUE` lines) to systemd, if it listens.
pub fn send(state: &str) {
    let Some(t) = target() else { return };
    if let Err(e) = t.sock.send_to_addr(state.as_bytes(), &t.addr) {
        tracing::warn!(error = %e, "cannot notify systemd");
    }
}

/// `READY=1` with `status` as `STATUS=`.
pub fn ready(status: &str) {
    send(&format!("READY=1\nSTATUS={}", one_line(status)));
}

/// `RELOADING=1` with the `MONOTONIC_USEC=` systemd requires of `Type=notify-reload`.
pub fn reloading() {
    send(&format!("RELOADING=1\nMONOTONIC_USEC={}", monotonic_usec()));
}

/// `STOPPING=1`.
pub fn stopping() {
    send("STOPPING=1\nSTATUS=draining");
}

fn one_line(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// CLOCK_MONOTONIC in microseconds (0 if it cannot be read, which Linux never does).
fn monotonic_usec() -> u64 {
    let mut t = nix::libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one `timespec` through the pointer, which points to a live,
    // properly aligned local of exactly that type; nothing else is read or kept.
    let r = unsafe { nix::libc::clock_gettime(nix::libc::CLOCK_MONOTONIC, &mut t) };
    if r != 0 {
        return 0;
    }
    let us = i128::from(t.tv_sec) * 1_000_000 + i128::from(t.tv_nsec) / 1_000;
    u64::try_from(us).unwrap_or(0)
}

/// The one-line status: what this meshd serves and how the last reload went.
pub fn status_line(applier: &Applier, last_reload: Option<(&str, bool)>) -> String {
    let in_force = applier.in_force();
    let served = in_force
        .selection
        .nodes
        .iter()
        .filter(|(_, c)| c.here)
        .map(|(n, _)| n.as_str())
        .collect::<Vec<_>>();
    let view = applier.server().view.load();
    let nodes = if served.is_empty() {
        "no nodes".to_owned()
    } else {
        format!("{} node(s) ({})", served.len(), served.join(", "))
    };
    let reload = match last_reload {
        None => String::from("none yet"),
        Some((trigger, true)) => format!("ok ({trigger})"),
        Some((trigger, false)) => format!("failed, previous config kept ({trigger})"),
    };
    let snapshot = match &in_force.from_snapshot {
        Some(at) => format!("; serving the last good snapshot of {at}"),
        None => String::new(),
    };
    format!(
        "serving {nodes}, {} listener(s), {} cluster(s); last reload: {reload}{snapshot}",
        view.listeners.len(),
        view.clusters.len()
    )
}

/// The watchdog interval systemd asks for (`WATCHDOG_USEC`, for this process if
/// `WATCHDOG_PID` is set), halved as sd_watchdog_enabled(3) recommends.
pub fn watchdog_interval() -> Option<Duration> {
    if let Some(pid) = std::env::var_os("WATCHDOG_PID") {
        if pid.to_str()?.parse::<u32>().ok()? != std::process::id() {
            return None;
        }
    }
    let usec: u64 = std::env::var("WATCHDOG_USEC").ok()?.parse().ok()?;
    (usec > 0).then(|| Duration::from_micros(usec / 2))
}

/// Starts the watchdog task on the current (serving) runtime, if systemd asks for one.
pub fn spawn_watchdog() {
    let (Some(every), Some(_)) = (watchdog_interval(), target()) else {
        return;
    };
    tracing::info!(
        interval_ms = u64::try_from(every.as_millis()).unwrap_or(u64::MAX),
        "systemd watchdog on: a ping every {} ms",
        every.as_millis()
    );
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            // Every apply runs on the config thread: if it cannot run a no-op within the
            // interval, the config path is wedged and systemd should restart meshd.
            let alive = tokio::time::timeout(every, crate::config::worker::run(|| ())).await;
            match alive {
                Ok(()) => send("WATCHDOG=1"),
                Err(_) => tracing::warn!(
                    "config thread busy for a whole watchdog interval: no WATCHDOG=1 this time"
                ),
            }
        }
    });
}
