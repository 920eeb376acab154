//! DNS discovery: a cluster's hosts are every address its node's hostname resolves to, looked up
//! at once and then every `--dns-refresh`, as Envoy's STRICT_DNS clusters do.
//!
//! - Every lookup is counted in `cluster.<c>.update_attempt`, and then in `update_success` (it
//!   answered) or `update_failure` (it did not), Envoy's names.
//! - An answer with addresses replaces the hosts (the pool drains a removed host: no new
//!   request, its requests in flight finish).
//! - An answer without address (the name does not exist, or has no A/AAAA record: getaddrinfo's
//!   `EAI_NONAME`/`EAI_NODATA`) is an answer: the cluster has no hosts and requests get 503
//!   `no healthy upstream`, as in Envoy, which treats NXDOMAIN and NODATA as a successful
//!   resolution with no address.
//! - A failed lookup (server unreachable or timing out, SERVFAIL: `EAI_AGAIN`, `EAI_FAIL`, ...)
//!   keeps the last hosts, as Envoy does.
//!
//! Each episode is logged once: a warning when lookups start failing or the name stops
//! resolving, one info line when it is over, never one line per refresh. A change of the hosts
//! is logged at info.
//!
//! An endpoint list (`Endpoints::List`: Envoy's STRICT_DNS cluster with several endpoints, as
//! Istio writes a `ServiceEntry`'s or a subset's endpoints) resolves every entry the same way,
//! each with its own discovery: a literal IP is its address without any lookup, a name is
//! looked up (counted and logged as above, per name), and the cluster's hosts are the union of
//! what every entry has now. A failed lookup keeps that entry's last hosts; an empty list is a
//! cluster with no hosts (503 `UH`, see `LocalReply::NoEndpoints`).
//!
//! getaddrinfo gives no TTLs, so they are not honoured: the name is looked up every refresh
//! whatever its TTL (what a caching resolver between meshd and the zone keeps is its own).

use std::net::SocketAddr;
use std::sync::{Arc, Weak};
use std::time::Duration;

use arc_swap::ArcSwap;
use mesh_core::runtime::Endpoints;

use crate::resilience::Upstream;

/// What one lookup found.
#[derive(Debug, PartialEq, Eq)]
enum Answer {
    /// These addresses (sorted, without duplicates).
    Addrs(Vec<SocketAddr>),
    /// The name exists nowhere or has no address: why, as the resolver says it.
    NoAddress(String),
    /// The lookup failed: why.
    Failed(String),
}

/// Looks `hostname` up (getaddrinfo, on the blocking pool): every address it has, with `port`.
async fn lookup(hostname: &str, port: u16) -> Answer {
    let host = hostname.to_owned();
    tokio::task::spawn_blocking(move || lookup_blocking(&host, port))
        .await
        .unwrap_or_else(|e| Answer::Failed(format!("lookup task: {e}")))
}

fn lookup_blocking(hostname: &str, port: u16) -> Answer {
    use dns_lookup::{AddrInfoHints, LookupErrorKind, SockType};
    let hints = AddrInfoHints {
        socktype: SockType::Stream.into(),
        ..AddrInfoHints::default()
    };
    match dns_lookup::getaddrinfo(Some(hostname), None, Some(hints)) {
        Ok(found) => {
            let mut addrs: Vec<SocketAddr> = found
                .filter_map(Result::ok)
                .map(|a| SocketAddr::new(a.sockaddr.ip(), port))
                .collect();
            addrs.sort();
            addrs.dedup();
            if addrs.is_empty() {
                Answer::NoAddress("no address in the answer".to_owned())
            } else {
                Answer::Addrs(addrs)
            }
        }
        Err(e) => {
            let kind = e.kind();
            let why = std::io::Error::from(e).to_string();
            match kind {
                LookupErrorKind::NoName | LookupErrorKind::NoData => Answer::NoAddress(why),
                _ => Answer::Failed(why),
            }
        }
    }
}

/// Where a cluster's discovery stands, for logging each episode once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// No lookup answered yet.
    Starting,
    /// The last lookup gave addresses.
    Resolved,
    /// The name has no address: the cluster has no hosts.
    NoAddress,
    /// Lookups fail (this many in a row): the last hosts stay.
    Failing(u64),
}

/// One cluster's discovery: what it last had and the episode it is in.
struct Discovery {
    state: State,
    hosts: Vec<SocketAddr>,
}

impl Discovery {
    fn new() -> Discovery {
        Discovery {
            state: State::Starting,
            hosts: Vec::new(),
        }
    }

    /// Counts and logs `answer` for `cl`; returns the hosts to set, if they are to be set.
    fn apply(&mut self, cl: &Upstream, hostname: &str, answer: Answer) -> Option<Vec<SocketAddr>> {
        let counters = &cl.pool.info().counters;
        let cluster = cl.pool.info().name.as_str();
        match answer {
            Answer::Addrs(addrs) => {
                counters.update_success.inc();
                match self.state {
                    State::Failing(failed) => tracing::info!(
                        cluster,
                        hostname,
                        failed,
                        hosts = addrs.len(),
                        "DNS lookup succeeds again for {hostname} (cluster {cluster}) after {failed} failure(s): {} host(s)",
                        addrs.len()
                    ),
                    State::NoAddress => tracing::info!(
                        cluster,
                        hostname,
                        hosts = addrs.len(),
                        "DNS name resolves again: {hostname} (cluster {cluster}), {} host(s)",
                        addrs.len()
                    ),
                    State::Starting | State::Resolved => {}
                }
                if addrs != self.hosts && self.state != State::Starting {
                    let list = |v: Vec<String>| v.join(",");
                    let added = list(diff(&addrs, &self.hosts));
                    let removed = list(diff(&self.hosts, &addrs));
                    tracing::info!(
                        cluster,
                        hostname,
                        hosts = addrs.len(),
                        added,
                        removed,
                        "DNS hosts changed for {hostname} (cluster {cluster}): now {} (added: {added}; removed: {removed})",
                        addrs.len()
                    );
                }
                self.state = State::Resolved;
                self.hosts = addrs.clone();
                Some(addrs)
            }
            Answer::NoAddress(why) => {
                counters.update_success.inc();
                if self.state != State::NoAddress {
                    tracing::warn!(
                        cluster, hostname, error = %why,
                        "DNS name resolves to no address: {hostname} (cluster {cluster}), {why}: the cluster has no hosts"
                    );
                }
                self.state = State::NoAddress;
                self.hosts.clear();
                Some(Vec::new())
            }
            Answer::Failed(why) => {
                counters.update_failure.inc();
                self.state = match self.state {
                    State::Failing(n) => State::Failing(n + 1),
                    _ => {
                        tracing::warn!(
                            cluster, hostname, hosts = self.hosts.len(), error = %why,
                            "DNS lookup failed for {hostname} (cluster {cluster}), {why}: keeping the last {} host(s) until a lookup succeeds",
                            self.hosts.len()
                        );
                        State::Failing(1)
                    }
                };
                None
            }
        }
    }
}

/// The addresses of `a` that are not in `b`.
fn diff(a: &[SocketAddr], b: &[SocketAddr]) -> Vec<String> {
    a.iter()
        .filter(|x| !b.contains(x))
        .map(ToString::to_string)
        .collect()
}

/// One entry of an endpoint list: its literal address, or its name's discovery.
enum Entry {
    Literal(SocketAddr),
    Name(Discovery),
}

/// Resolves every entry of `list` (reusing the discoveries of entries it had before, so a
/// failed lookup keeps that entry's last hosts); `None` when the cluster was dropped. Returns
/// the union of every entry's hosts, sorted, without duplicates.
async fn resolve_list(
    cluster: &Weak<Upstream>,
    list: &[(String, u16)],
    entries: &mut Vec<((String, u16), Entry)>,
) -> Option<Vec<(SocketAddr, String)>> {
    let mut old = std::mem::take(entries);
    for (host, port) in list {
        let key = (host.clone(), *port);
        let entry = match old.iter().position(|(k, _)| *k == key) {
            Some(i) => old.swap_remove(i).1,
            None => match host.parse::<std::net::IpAddr>() {
                Ok(ip) => Entry::Literal(SocketAddr::new(ip, *port)),
                Err(_) => Entry::Name(Discovery::new()),
            },
        };
        entries.push((key, entry));
    }
    for ((host, port), entry) in entries.iter_mut() {
        if let Entry::Name(d) = entry {
            cluster.upgrade()?.pool.info().counters.update_attempt.inc();
            let answer = lookup(host, *port).await;
            let cl = cluster.upgrade()?;
            d.apply(&cl, host, answer);
        }
    }
    let mut hosts: Vec<(SocketAddr, String)> = Vec::new();
    for ((host, _), entry) in entries.iter() {
        match entry {
            Entry::Literal(a) => hosts.push((*a, String::new())),
            Entry::Name(d) => hosts.extend(d.hosts.iter().map(|a| (*a, host.clone()))),
        }
    }
    hosts.sort();
    hosts.dedup_by(|a, b| a.0 == b.0);
    Some(hosts)
}

/// Resolves a cluster's endpoints now and then every `refresh`, until the cluster is dropped.
/// `eps` may change (a reload): a new name starts a new discovery.
pub(super) fn spawn(cluster: Weak<Upstream>, eps: Arc<ArcSwap<Endpoints>>, refresh: Duration) {
    tokio::spawn(async move {
        let mut discovery = Discovery::new();
        let mut current: Option<(String, u16)> = None;
        let mut entries = Vec::new();
        loop {
            let endpoints = eps.load_full();
            let hosts = match &*endpoints {
                Endpoints::Static(a) => Some(vec![(*a, String::new())]),
                Endpoints::Dns { hostname, port } => {
                    let name = (hostname.clone(), *port);
                    if current.as_ref() != Some(&name) {
                        discovery = Discovery::new();
                        current = Some(name);
                    }
                    match cluster.upgrade() {
                        Some(cl) => cl.pool.info().counters.update_attempt.inc(),
                        None => return,
                    }
                    let answer = lookup(hostname, *port).await;
                    let Some(cl) = cluster.upgrade() else { return };
                    discovery
                        .apply(&cl, hostname, answer)
                        .map(|v| v.into_iter().map(|a| (a, hostname.clone())).collect())
                }
                Endpoints::List(list) => match resolve_list(&cluster, list, &mut entries).await {
                    Some(hosts) => Some(hosts),
                    None => return,
                },
                Endpoints::LocalListener { .. } | Endpoints::Slots => None,
            };
            let Some(cl) = cluster.upgrade() else { return };
            if let Some(h) = hosts {
                cl.set_hosts(&h);
            }
            drop(cl);
            tokio::time::sleep(refresh).await;
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_literal_address_and_localhost_resolve() {
        assert_eq!(
            lookup_blocking("127.0.0.7", 80),
            Answer::Addrs(vec![SocketAddr::from(([127, 0, 0, 7], 80))])
        );
        match lookup_blocking("localhost", 80) {
            Answer::Addrs(a) => assert!(a.contains(&SocketAddr::from(([127, 0, 0, 1], 80)))),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_name_that_cannot_exist_has_no_address_or_fails() {
        // `.invalid` never resolves (RFC 6761): NXDOMAIN from a DNS server, or a failed lookup
        // where this machine has none; never addresses.
        let a = lookup_blocking("no-such-host.invalid", 80);
        assert!(
            matches!(a, Answer::NoAddress(_) | Answer::Failed(_)),
            "{a:?}"
        );
    }
}
