//! A route's fault injection on the request path (Envoy's `envoy.filters.http.fault`):
//! [`mesh_core::fault`] decides, this applies it. A delayed request waits here before it goes
//! upstream (flag `DI`, `http.<prefix>.fault.delays_injected`); an aborted one gets the
//! route's status at once (flag `FI`, `http.<prefix>.fault.aborts_injected`, body
//! `fault filter abort`), never sent upstream and never retried.

use http::StatusCode;
use mesh_core::accesslog::{Flags, ResponseFlag};
use mesh_core::fault::FaultPolicy;
use mesh_core::stats::HttpStats;

use super::reply::LocalReply;

/// Applies `policy` to one request: draws (from the same thread-local generator as the
/// balancer's and the retry jitter's), sleeps the delay if drawn, and returns the abort reply
/// if drawn. An abort status outside 100–999 becomes 503.
pub(super) async fn inject(
    policy: &FaultPolicy,
    stats: &HttpStats,
    flags: &mut Flags,
) -> Option<LocalReply> {
    let injected = policy.decide(fastrand::u64(..), fastrand::u64(..));
    if let Some(delay) = injected.delay {
        stats.fault.delays_injected.inc();
        flags.insert(ResponseFlag::DelayInjected);
        tokio::time::sleep(delay).await;
    }
    let status = injected.abort?;
    stats.fault.aborts_injected.inc();
    flags.insert(ResponseFlag::FaultInjected);
    Some(LocalReply::FaultAbort {
        status: StatusCode::from_u16(status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE),
    })
}
