//! The pending queue: requests waiting for a connection, served strictly in arrival order.
//!
//! A freed resource (a connection going idle, a connection slot freed by a closed connection, a
//! raised limit) goes to the oldest waiter directly (hand-off): it never passes through the idle
//! queue or the breaker where a newer request could take it first. A new request joins the
//! back of the queue whenever it is not empty, even if it could take a resource that is about to
//! be handed off.
//!
//! The lock is taken only while requests are queued: a request that is served at once, and a
//! release that finds no waiter, read one atomic (`len`) and touch no lock. The Dekker pattern
//! that keeps a wakeup from being lost: a releaser publishes its resource, then reads `len`; an
//! enqueuer publishes itself (`len`), then looks for resources; both with SeqCst fences, so at
//! least one of them sees the other.
//!
//! Nothing that may free a connection slot is dropped while the lock is held (a slot's drop
//! hands it on, which takes the lock): such values go to a `Trash` dropped after unlocking.
//!
//! A waiter holds its `max_pending_requests` slot in the queue, and whoever hands it something
//! drops that slot then, before the waiter's task even runs: a request arriving at that moment
//! (the client of the response that just freed the connection, say) finds the room the queue
//! really has. Before, the slot was released only once the waiter's task ran, and such a request
//! was refused with fewer requests in flight than the limits allow.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::{fence, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::oneshot;

use super::host::Host;
use super::slot::{CxSlot, Pooled, SlotSink};
use super::{Checkout, CheckoutError, CheckoutOptions, Cluster, Connector, Hosts};
use crate::breaker::{Limit, Permit};

/// How [`Cluster::enqueue`] went.
enum Enqueued<T> {
    /// Something freed up and nobody is ahead: no need to queue.
    Now(Grant<T>),
    /// `max_pending_requests` is reached.
    Refused,
    /// Queued (its waiter holds its pending slot until it is handed something).
    Queued,
}

/// What a waiter is given.
pub(super) enum Grant<T> {
    /// An idle connection to this host: attach to it.
    Conn(Arc<Host<T>>, Pooled<T>),
    /// A connection slot: open a connection to the balancer's pick.
    Slot(CxSlot),
}

struct Waiter<T> {
    id: u64,
    avoid: Vec<SocketAddr>,
    fresh: bool,
    tx: oneshot::Sender<Grant<T>>,
    /// Its `max_pending_requests` slot: released the moment it is handed a connection or a
    /// slot (by whoever hands it, before its task runs), so that a request arriving just then
    /// finds the queue's room as it really is. Dropping it is one atomic operation.
    _pending: Permit,
}

/// Values to drop once the queue's lock is released.
pub(super) type Trash<T> = Vec<Pooled<T>>;

/// The waiters of one cluster, oldest first.
pub(super) struct Queue<T> {
    waiters: Mutex<VecDeque<Waiter<T>>>,
    len: AtomicUsize,
    next_id: AtomicU64,
}

impl<T> Default for Queue<T> {
    fn default() -> Self {
        Queue {
            waiters: Mutex::new(VecDeque::new()),
            len: AtomicUsize::new(0),
            next_id: AtomicU64::new(0),
        }
    }
}

impl<T> Queue<T> {
    /// Whether requests are queued (SeqCst: see the module docs).
    pub(super) fn is_empty(&self) -> bool {
        self.len.load(Ordering::SeqCst) == 0
    }

    fn lock(&self) -> MutexGuard<'_, VecDeque<Waiter<T>>> {
        self.waiters.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A queued request's place: counts `upstream_rq_cancelled` and gives back whatever it was
/// handed if its future is dropped while it waits.
struct WaitGuard<'a, C: Connector> {
    cluster: &'a Arc<Cluster<C>>,
    id: u64,
    rx: oneshot::Receiver<Grant<C::Conn>>,
    done: bool,
}

impl<C: Connector> Drop for WaitGuard<'_, C> {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        self.cluster.info.counters.upstream_rq_cancelled.inc();
        let q = &self.cluster.queue;
        let mut waiters = q.lock();
        if let Some(i) = waiters.iter().position(|w| w.id == self.id) {
            drop(waiters.remove(i));
            q.len.fetch_sub(1, Ordering::SeqCst);
            return;
        }
        drop(waiters);
        // Already handed something: pass it on.
        if let Ok(grant) = self.rx.try_recv() {
            self.cluster.give_back(grant);
        }
    }
}

impl<C: Connector> SlotSink for Cluster<C> {
    fn slot_freed(self: Arc<Self>, permit: Permit) {
        let cx = &self.info.breakers.connections;
        if cx.current() > cx.max() {
            return; // the limit was lowered: this slot is one too many
        }
        if self.queue.is_empty() {
            drop(permit);
            fence(Ordering::SeqCst);
            if !self.queue.is_empty() {
                self.dispatch(None);
            }
            return;
        }
        let slot = self.slot(permit);
        self.dispatch(Some(Grant::Slot(slot)));
    }
}

impl<C: Connector> Cluster<C> {
    /// Queues the request (a `max_pending_requests` slot) and waits for a connection or a
    /// connection slot, in arrival order.
    pub(super) async fn wait(
        self: &Arc<Self>,
        hosts: &Hosts<C::Conn>,
        opts: CheckoutOptions<'_>,
    ) -> Result<Checkout<C>, CheckoutError> {
        let (tx, rx) = oneshot::channel();
        let id = self.queue.next_id.fetch_add(1, Ordering::Relaxed);
        match self.enqueue(hosts, opts, id, tx) {
            Enqueued::Now(grant) => return self.serve(grant, opts).await,
            Enqueued::Refused => {
                self.info.counters.upstream_rq_pending_overflow.inc();
                return Err(CheckoutError::Overflow(Limit::PendingRequests));
            }
            Enqueued::Queued => {}
        }
        let mut wait = WaitGuard {
            cluster: self,
            id,
            rx,
            done: false,
        };
        let grant = (&mut wait.rx).await;
        wait.done = true;
        match grant {
            Ok(grant) => self.serve(grant, opts).await,
            // The sender is dropped only with the cluster, which this call holds.
            Err(_) => Err(CheckoutError::Overflow(Limit::PendingRequests)),
        }
    }

    /// The locked part of [`Cluster::wait`].
    fn enqueue(
        self: &Arc<Self>,
        hosts: &Hosts<C::Conn>,
        opts: CheckoutOptions<'_>,
        id: u64,
        tx: oneshot::Sender<Grant<C::Conn>>,
    ) -> Enqueued<C::Conn> {
        let mut trash = Trash::new();
        let mut waiters = self.queue.lock();
        if waiters.is_empty() {
            // Nobody is ahead: whatever freed up since the fast path is this request's.
            let now = self
                .find(hosts, &mut trash)
                .and_then(|g| fit(g, opts.avoid, opts.fresh, hosts));
            if let Some(grant) = now {
                drop(waiters);
                return Enqueued::Now(grant);
            }
        }
        let Some(pending) = self.info.breakers.pending.try_acquire() else {
            return Enqueued::Refused;
        };
        self.info.counters.upstream_rq_pending_total.inc();
        waiters.push_back(Waiter {
            id,
            avoid: opts.avoid.to_vec(),
            fresh: opts.fresh,
            tx,
            _pending: pending,
        });
        self.queue.len.fetch_add(1, Ordering::SeqCst);
        fence(Ordering::SeqCst);
        self.dispatch_locked(&mut waiters, hosts, None, &mut trash);
        // Served at once only if everything ahead was: it was the last in line.
        let served = waiters.back().is_none_or(|w| w.id != id);
        drop(waiters);
        if !served {
            // Queued because no connection could be opened within `max_connections`.
            self.info.counters.upstream_cx_overflow.inc();
        }
        Enqueued::Queued
    }

    /// Uses what a waiter was given.
    async fn serve(
        self: &Arc<Self>,
        grant: Grant<C::Conn>,
        opts: CheckoutOptions<'_>,
    ) -> Result<Checkout<C>, CheckoutError> {
        match grant {
            Grant::Conn(host, conn) => self.attach(host, conn),
            Grant::Slot(slot) => {
                let hosts = self.hosts.load_full();
                match self.pick(&hosts, opts.avoid) {
                    Some(i) => self.open(hosts[i].clone(), slot).await,
                    None => {
                        drop(slot);
                        self.info.counters.upstream_cx_none_healthy.inc();
                        Err(CheckoutError::NoHealthyUpstream)
                    }
                }
            }
        }
    }

    /// Offers a connection that may carry another request: to the oldest waiter, else to its
    /// host's idle queue.
    pub(super) fn offer(self: &Arc<Self>, host: Arc<Host<C::Conn>>, conn: Pooled<C::Conn>) {
        if !self.queue.is_empty() {
            self.dispatch(Some(Grant::Conn(host, conn)));
            return;
        }
        host.idle.push(conn);
        if !host.poolable() {
            host.close_idle(); // it left the rotation meanwhile (`set_health`, `set_hosts`)
        }
        fence(Ordering::SeqCst);
        if !self.queue.is_empty() {
            self.dispatch(None);
        }
    }

    /// Passes on what a cancelled waiter was handed.
    fn give_back(self: &Arc<Self>, grant: Grant<C::Conn>) {
        match grant {
            Grant::Conn(host, conn) => self.offer(host, conn),
            Grant::Slot(slot) => drop(slot), // its drop hands it on
        }
    }

    /// Serves waiters, oldest first, with `given` and whatever else is free.
    pub(super) fn dispatch(self: &Arc<Self>, given: Option<Grant<C::Conn>>) {
        let hosts = self.hosts.load_full();
        let mut trash = Trash::new();
        let mut waiters = self.queue.lock();
        self.dispatch_locked(&mut waiters, &hosts, given, &mut trash);
        drop(waiters);
        drop(trash);
        drop(hosts);
    }

    fn dispatch_locked(
        self: &Arc<Self>,
        waiters: &mut VecDeque<Waiter<C::Conn>>,
        hosts: &Hosts<C::Conn>,
        mut given: Option<Grant<C::Conn>>,
        trash: &mut Trash<C::Conn>,
    ) {
        while let Some(front) = waiters.front() {
            let Some(grant) = given.take().or_else(|| self.find(hosts, trash)) else {
                break;
            };
            let Some(grant) = fit(grant, &front.avoid, front.fresh, hosts) else {
                continue; // the connection closed meanwhile and its slot went elsewhere
            };
            let Some(w) = waiters.pop_front() else { break };
            self.queue.len.fetch_sub(1, Ordering::SeqCst);
            if let Err(grant) = w.tx.send(grant) {
                given = Some(grant); // its future is gone: the next one
            }
        }
        match given {
            Some(Grant::Conn(host, conn)) if host.poolable() => host.idle.push(conn),
            Some(Grant::Conn(_, conn)) => trash.push(conn),
            // No waiter is left (so none can be handed it): the breaker gets it back, and its
            // drop takes no lock.
            Some(Grant::Slot(slot)) => drop(slot),
            None => {}
        }
    }

    /// A free resource for the oldest waiter: an idle connection of any host, else a slot.
    fn find(
        self: &Arc<Self>,
        hosts: &Hosts<C::Conn>,
        trash: &mut Trash<C::Conn>,
    ) -> Option<Grant<C::Conn>> {
        let now = self.now();
        for host in hosts.iter() {
            if let Some(conn) = self.pop_idle(host, now, trash) {
                return Some(Grant::Conn(host.clone(), conn));
            }
        }
        self.try_slot().map(Grant::Slot)
    }
}

/// Turns an idle connection a waiter cannot use (it wants a new one, or avoids that host while
/// another usable host exists) into its slot. `None` if the connection closed meanwhile (its slot
/// went elsewhere).
fn fit<T>(
    grant: Grant<T>,
    avoid: &[SocketAddr],
    fresh: bool,
    hosts: &Hosts<T>,
) -> Option<Grant<T>> {
    match grant {
        Grant::Conn(host, conn) => {
            let avoided = avoid.contains(&host.info.addr)
                && hosts
                    .iter()
                    .any(|h| h.info.usable() && !avoid.contains(&h.info.addr));
            if fresh || avoided {
                conn.into_slot().map(Grant::Slot)
            } else {
                Some(Grant::Conn(host, conn))
            }
        }
        slot => Some(slot),
    }
}
