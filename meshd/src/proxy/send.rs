//! Sending one attempt: a connection from the pool (avoiding hosts already tried), the request
//! written, the response head read. A kept-alive connection the upstream had closed is replaced
//! here, once, without counting as a retry (see [`send`]).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use http::Method;
use http_body::Body as _;
use mesh_core::pool::{CheckoutOptions, HostInfo};

use super::outgoing::Outgoing;
use super::{Failure, Sent};
use crate::body::RequestBody;
use crate::upstream::{SendError, TcpCluster};

/// Whether a request may be sent again after the connection it was written to closed before
/// a response head: it has no body (nothing of the client's is lost) and an idempotent method
/// (RFC 9110 §9.2.2: sending it twice has the effect of sending it once; RFC 9112 §9.3.1 lets a
/// proxy retry only those).
fn replayable(head: &http::request::Parts, body: &RequestBody) -> bool {
    matches!(
        head.method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE | Method::PUT | Method::DELETE
    ) && body.is_end_stream()
}

/// Gets a connection and sends `out`'s head with the attempt's `body` (made by `out`); `tried` is the host
/// it is in flight to.
///
/// It sends the request again once, on a newly opened connection (never another idle one,
/// which may be just as stale), when the connection it was sent on was reused from the pool and
/// the upstream had closed it: either the request came back unsent (nothing was written, so
/// anything may be sent again), or the request is [`replayable`] and the connection closed
/// before any response head (then `out` makes it again: nothing is copied before a failure).
/// Each resend counts `upstream_rq_resent_on_new_cx`. A failure on a new connection is never
/// resent.
pub(super) async fn send(
    cluster: &Arc<TcpCluster>,
    out: &mut Outgoing,
    mut body: RequestBody,
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
        let again = may_resend && replayable(out.head(), &body) && out.replayable();
        let sent_at = Instant::now();
        match checkout.conn().send(out.head(), body).await {
            Ok(resp) => return Ok((checkout, resp, sent_at.elapsed())),
            // Nothing of the request was written: anything may be sent again.
            Err(SendError {
                error,
                unsent: Some(unsent),
            }) if may_resend => {
                tracing::debug!(cluster = %cluster.info().name, %addr, %error, "reused connection closed before the request was written; sending it on a new connection");
                body = unsent;
            }
            Err(SendError { error, unsent }) => {
                let written = unsent.is_none();
                match again.then(|| out.body()).flatten() {
                    Some(copy) if error.is_closed() => {
                        tracing::debug!(cluster = %cluster.info().name, %addr, %error, "reused connection closed before a response; sending the request again on a new connection");
                        body = copy;
                    }
                    _ => return Err(Failure::Reset(addr, error, written)),
                }
            }
        }
        // The dead connection is closed when `checkout` drops.
        cluster.info().counters.upstream_rq_resent_on_new_cx.inc();
        resends_left -= 1;
        fresh = true;
    }
}
