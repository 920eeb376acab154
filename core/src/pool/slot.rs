//! Connection slots: one `max_connections` permit per connection (opening, busy or idle), freed
//! exactly once, and handed to the oldest queued request when freed.

use std::sync::{Arc, Mutex, Weak};

use tokio::time::Instant;

use super::host::HostInfo;
use super::ClusterInfo;
use crate::breaker::Permit;

/// The side of a cluster that takes a freed connection slot (hands it to the oldest queued
/// request, or gives it back to the breaker).
pub(super) trait SlotSink: Send + Sync {
    fn slot_freed(self: Arc<Self>, permit: Permit);
}

/// One `max_connections` slot. Dropping it hands it to the oldest queued request of its cluster,
/// if one waits; otherwise the breaker gets it back.
pub(super) struct CxSlot {
    permit: Option<Permit>,
    sink: Weak<dyn SlotSink>,
}

impl CxSlot {
    pub(super) fn new(permit: Permit, sink: Weak<dyn SlotSink>) -> Self {
        CxSlot {
            permit: Some(permit),
            sink,
        }
    }
}

impl Drop for CxSlot {
    fn drop(&mut self) {
        if let Some(p) = self.permit.take() {
            match self.sink.upgrade() {
                Some(sink) => sink.slot_freed(p),
                None => drop(p),
            }
        }
    }
}

/// The slot of one connection, shared by the pool's handle ([`Pooled`]) and the connector's
/// [`ConnGuard`]: whichever ends first (the pool closing it, or the socket closing) frees it,
/// exactly once, and ends the connection's accounting (`cx_active`, `upstream_cx_destroy`).
pub(super) struct ConnSlot {
    slot: Mutex<Option<CxSlot>>,
    info: Arc<ClusterInfo>,
    host: Arc<HostInfo>,
}

impl ConnSlot {
    /// Counts a new connection to `host` holding `slot`.
    pub(super) fn open(slot: CxSlot, info: Arc<ClusterInfo>, host: Arc<HostInfo>) -> Arc<Self> {
        host.cx_active.inc();
        Arc::new(ConnSlot {
            slot: Mutex::new(Some(slot)),
            info,
            host,
        })
    }

    /// Ends the connection's accounting and returns its slot, for another connection (the
    /// caller closes this one). `None` if it already ended.
    pub(super) fn take(&self) -> Option<CxSlot> {
        let slot = self.slot.lock().unwrap_or_else(|p| p.into_inner()).take()?;
        self.host.cx_active.dec();
        self.info.counters.upstream_cx_destroy.inc();
        Some(slot)
    }

    /// Ends the connection's accounting and frees its slot (to the oldest queued request).
    /// Idempotent.
    pub(super) fn free(&self) {
        drop(self.take());
    }
}

/// Holds one connection slot for exactly the life of one connection, and keeps the gauges
/// right when it ends. The [`Connector`](super::Connector) keeps it for as long as the socket
/// is open; dropping it frees the slot (if the pool did not already).
pub struct ConnGuard {
    pub(super) slot: Arc<ConnSlot>,
}

impl std::fmt::Debug for ConnGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnGuard")
            .field("host", &self.slot.host.addr)
            .finish()
    }
}

impl Drop for ConnGuard {
    fn drop(&mut self) {
        self.slot.free();
    }
}

/// A connection as the pool holds it. Dropping it closes the connection and frees its slot at
/// once (not when the connector's task notices).
pub(super) struct Pooled<T> {
    pub(super) conn: Option<T>,
    pub(super) slot: Arc<ConnSlot>,
    /// Requests it carried.
    pub(super) uses: u32,
    /// When it last went idle (or opened).
    pub(super) since: Instant,
}

impl<T> Pooled<T> {
    /// Closes the connection and returns its slot for a connection elsewhere (`None` if the
    /// socket already closed and freed it).
    pub(super) fn into_slot(mut self) -> Option<CxSlot> {
        // The slot first: closing a connection may drop its guard, which must find it gone.
        let slot = self.slot.take();
        drop(self.conn.take());
        slot
    }
}

impl<T> Drop for Pooled<T> {
    fn drop(&mut self) {
        drop(self.conn.take());
        self.slot.free();
    }
}
