//! Sending one attempt: a connection from the pool (avoiding hosts already tried), the request
//! written, the response head read. A kept-alive connection the upstream had closed is replaced
//! here, once, without counting as a retry (see [`send`]).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use http::{Method, Request};
use http_body::Body as _;
use mesh_core::pool::{CheckoutOptions, HostInfo};

use super::outgoing::Outgoing;
use super::{Failure, Sent};
use crate::body::RequestBody;
use crate::upstream::TcpCluster;

/// Whether a request may be sent again after the connection it was written to closed before
/// a response head: it has no body (nothing of the client's is lost) and an idempotent method
/// (RFC 9110 §9.2.2: sending it twice has the effect of sending it once; RFC 9112 §9.3.1 lets a
/// proxy retry only those).
fn replayable(req: &Request<RequestBody>) -> bool {
    matches!(
        *req.method(),
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE | Method::PUT | Method::DELETE
    ) && req.body().is_end_stream()
}

/// Whether the connection was closed by the upstream (EOF or reset) before a response head.
fn closed_before_response(e: &hyper::Error) -> bool {
    if e.is_incomplete_message() {
        return true;
    }
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        if let Some(io) = s.downcast_ref::<std::io::Error>() {
            return matches!(
                io.kind(),
                std::io::ErrorKind::ConnectionReset
                    | std::io::ErrorKind::ConnectionAborted
                    | std::io::ErrorKind::BrokenPipe
                    | std::io::ErrorKind::UnexpectedEof
            );
        }
        source = s.source();
    }
    false
}

/// Gets a connection and sends the attempt's request `req` (made by `out`); `tried` is the host
/// it is in flight to.
///
/// It sends the request again once, on a newly opened connection (never another idle one,
/// which may be just as stale), when the connection it was sent on was reused from the pool and
/// the upstream had closed it: either hyper hands the request back unsent (nothing was written,
/// so anything may be sent again), or the request is [`replayable`] and the connection closed
/// before any response head (then `out` makes it again: nothing is copied before a failure).
/// Each resend counts `upstream_rq_resent_on_new_cx`. A failure on a new connection is never
/// resent.
pub(super) async fn send(
    cluster: &Arc<TcpCluster>,
    out: &mut Outgoing,
    mut req: Request<RequestBody>,
    tried: &mut Option<Arc<HostInfo>>,
    avoid: &[SocketAddr],
) -> Result<Sent, Failure> {
    let mut resends_left = 1u32;
    let mut fresh = false;
    loop {
        let checkout = cluster
            .checkout_with(CheckoutOptions { avoid, fresh })
            .await;
        let mut checkout = checkout.map_err(Failure::Checkout)?;
        *tried = Some(checkout.host().clone());
        let addr = checkout.host().addr;
        let may_resend = checkout.reused() && resends_left > 0;
        let conn = &mut checkout.conn().0;
        match conn.ready().await {
            Err(e) if may_resend => {
                tracing::debug!(cluster = %cluster.info().name, %addr, error = %e, "reused connection closed before the request was written; sending it on a new connection");
            }
            Err(e) => return Err(Failure::Reset(addr, e, false)),
            Ok(()) => {
                let again = may_resend && replayable(&req) && out.replayable();
                let sent_at = Instant::now();
                match conn.try_send_request(req).await {
                    Ok(resp) => return Ok((checkout, resp, sent_at.elapsed())),
                    Err(mut e) => match e.take_message() {
                        Some(unsent) if may_resend => req = unsent,
                        // hyper handed the request back: none of it was written.
                        Some(_) => return Err(Failure::Reset(addr, e.into_error(), false)),
                        None => match again.then(|| out.request()).flatten() {
                            Some(copy) if closed_before_response(e.error()) => {
                                tracing::debug!(cluster = %cluster.info().name, %addr, error = %e.error(), "reused connection closed before a response; sending the request again on a new connection");
                                req = copy;
                            }
                            _ => return Err(Failure::Reset(addr, e.into_error(), true)),
                        },
                    },
                }
            }
        }
        // The dead connection is closed when `checkout` drops.
        cluster.info().counters.upstream_rq_resent_on_new_cx.inc();
        resends_left -= 1;
        fresh = true;
    }
}
