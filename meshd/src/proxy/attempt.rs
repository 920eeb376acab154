//! The bookkeeping around one attempt of the request loop ([`super::attempts`]): its per-try
//! timeout, the host a failure is about, and a retried attempt's response counted and dropped.

use std::net::SocketAddr;
use std::time::Duration;

use mesh_core::pool::{CheckoutError, ClusterInfo, HostInfo};
use mesh_core::retry::Outcome;

use super::{Completion, Failure, Sent};

/// Runs an attempt under its per-try timeout, if it has one.
pub(super) async fn within(
    per_try: Option<Duration>,
    attempt: impl std::future::Future<Output = Result<Sent, Failure>>,
) -> Result<Sent, Failure> {
    match per_try {
        None => attempt.await,
        Some(d) => tokio::time::timeout(d, attempt)
            .await
            .unwrap_or(Err(Failure::PerTryTimeout)),
    }
}

/// The host a failed checkout was about.
pub(super) fn failed_host(result: &Result<Sent, Failure>) -> Option<SocketAddr> {
    match result {
        Err(Failure::Checkout(
            CheckoutError::ConnectFailed { addr, .. } | CheckoutError::ConnectTimeout { addr },
        )) => Some(*addr),
        Err(Failure::Reset(addr, ..)) => Some(*addr),
        _ => None,
    }
}

/// An attempt that is retried: its response is dropped (closing its connection) and counted.
pub(super) fn discard(result: Result<Sent, Failure>, info: &ClusterInfo) {
    match result {
        Ok((checkout, resp, _)) => {
            let code = resp.status().as_u16();
            info.codes.record(code);
            info.counters.upstream_rq_completed.inc();
            count_host(checkout.host(), code);
        }
        Err(Failure::Reset(..)) => info.counters.upstream_rq_rx_reset.inc(),
        Err(Failure::PerTryTimeout) => info.counters.upstream_rq_tx_reset.inc(),
        Err(_) => {}
    }
}

/// Counts the response against its host (`rq_error` for 5xx, else `rq_success`).
pub(super) fn count_host(host: &HostInfo, code: u16) {
    if code >= 500 {
        host.counters.rq_error.inc();
    } else {
        host.counters.rq_success.inc();
    }
}

/// What an attempt ended with, for the retry decision and outlier detection; `None` when the
/// request cannot go on at all (no usable host, the client's body failed).
pub(super) fn outcome_of(result: &Result<Sent, Failure>, done: &Completion) -> Option<Outcome> {
    Some(match result {
        Ok((_, resp, _)) => Outcome::from_response(resp.status().as_u16(), resp.headers()),
        Err(Failure::Checkout(CheckoutError::Overflow(_))) => Outcome::LocalOverflow,
        Err(Failure::Checkout(CheckoutError::NoHealthyUpstream) | Failure::NoEndpoints) => {
            return None
        }
        Err(Failure::Checkout(CheckoutError::ConnectFailed { .. })) => Outcome::ConnectFailure,
        Err(Failure::Checkout(CheckoutError::ConnectTimeout { .. })) => Outcome::ConnectTimeout,
        Err(Failure::Reset(_, _, sent)) => {
            if done
                .progress
                .as_ref()
                .and_then(|p| p.request_error())
                .is_some()
            {
                return None;
            }
            Outcome::Reset {
                request_sent: *sent,
            }
        }
        Err(Failure::PerTryTimeout) => Outcome::PerTryTimeout,
        Err(Failure::Expired(_)) => Outcome::GlobalTimeout,
    })
}
