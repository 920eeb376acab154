//! A connection checked out for one request, and how it ends.

use std::sync::Arc;

use super::host::Host;
use super::slot::Pooled;
use super::{Cluster, ClusterInfo, Connection, Connector, HostInfo};
use crate::breaker::Permit;

/// A connection checked out for one request. Call [`Checkout::release`] when the response is
/// complete and the connection may be reused; dropping it otherwise closes the connection.
/// Either way the request's `max_requests` slot is freed.
pub struct Checkout<C: Connector> {
    pub(super) conn: Option<Pooled<C::Conn>>,
    pub(super) reused: bool,
    pub(super) host: Arc<Host<C::Conn>>,
    pub(super) cluster: Arc<Cluster<C>>,
    pub(super) request: Option<Permit>,
}

impl<C: Connector> Checkout<C> {
    /// The connection.
    pub fn conn(&mut self) -> &mut C::Conn {
        self.conn
            .as_mut()
            .and_then(|p| p.conn.as_mut())
            .expect("a checkout holds its connection until released")
    }

    /// What the stats show of the host this connection goes to.
    pub fn host(&self) -> &Arc<HostInfo> {
        &self.host.info
    }

    /// Whether the connection already carried requests before this one (a request that fails
    /// on a reused connection before it was sent may safely be tried on a new one).
    pub fn reused(&self) -> bool {
        self.reused
    }

    /// The cluster's stats.
    pub fn cluster(&self) -> &Arc<ClusterInfo> {
        &self.cluster.info
    }

    /// Ends the request: a `reusable` open connection goes to the oldest queued request, or
    /// back to its host's idle queue; otherwise (or when its host is no longer usable, or it
    /// reached `max_requests_per_connection`, or `max_connections` was lowered below the
    /// connections open) it is closed.
    pub fn release(mut self, reusable: bool) {
        // The request ends first, so whoever gets the connection may attach.
        self.end_request();
        let Some(mut conn) = self.conn.take() else {
            return;
        };
        conn.uses += 1;
        let max = self.cluster.settings.load().max_requests_per_connection;
        let cx = &self.cluster.info.breakers.connections;
        if max != 0 && conn.uses >= max {
            self.cluster.info.counters.upstream_cx_max_requests.inc();
        } else if cx.current() > cx.max() {
            // The limit was lowered: close rather than keep an extra connection.
        } else if reusable
            && self.host.poolable()
            && conn.conn.as_ref().is_some_and(Connection::is_open)
        {
            conn.since = self.cluster.now();
            self.cluster.offer(self.host.clone(), conn);
            return;
        }
        drop(conn);
    }
}

impl<C: Connector> Checkout<C> {
    /// Frees the request's `max_requests` slot and counts it out of the host's `rq_active`
    /// (once).
    fn end_request(&mut self) {
        if let Some(request) = self.request.take() {
            self.host.info.rq_active.dec();
            drop(request);
        }
    }
}

impl<C: Connector> Drop for Checkout<C> {
    fn drop(&mut self) {
        self.end_request();
    }
}
