//! Which nodes this meshd serves (binds the listeners of), chosen again at every start, reload
//! and apply.
//!
//! * **Named** (`--node NAME`, repeatable, or `MESHD_NODE=a,b`): exactly those. A named virtual
//!   node binds its DNS hostname's local address when it has one, else `0.0.0.0:<port>` (as
//!   Envoy on EC2 binds its listeners); `--listen` wins over both.
//! * **Not named**: the virtual nodes whose `serviceDiscovery.dns.hostname` (Istio
//!   WorkloadEntries whose `address`) resolves to an
//!   address of this machine (its interfaces' addresses, loopback and the unspecified address),
//!   and the nodes and gateways whose `--listen` address is local. A gateway has no hostname:
//!   it is served only when named or given a `--listen`.
//!
//! Every other node is remote: validated, used for routing and discovery (through DNS), never
//! bound. A name that does not resolve is remote.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};

use mesh_core::istio::IstioSpec;
use mesh_core::model::{MeshSet, Resource};
use mesh_core::runtime::Overrides;

/// Why a node is served here or not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reason {
    /// Named by `--node`/`MESHD_NODE`; `bind` says where its listener binds.
    Named {
        /// The hostname and what it resolved to, when it has one.
        host: Option<(String, Vec<IpAddr>)>,
        /// The address bound (without port), or `None` when `--listen` decides.
        bind: Option<IpAddr>,
    },
    /// `--listen` gives it an address of this machine.
    ListenLocal(SocketAddr),
    /// `--listen` gives it an address of another machine.
    ListenRemote(SocketAddr),
    /// Its hostname resolves to a local address.
    Local {
        /// The hostname.
        host: String,
        /// The local address it resolves to.
        addr: IpAddr,
    },
    /// Its hostname resolves to addresses of other machines only.
    Remote {
        /// The hostname.
        host: String,
        /// What it resolves to.
        addrs: Vec<IpAddr>,
    },
    /// Its hostname does not resolve here.
    Unresolved {
        /// The hostname.
        host: String,
    },
    /// `--node` is given and does not name it.
    NotNamed,
    /// A gateway, or a node without a DNS hostname: served only where named (or `--listen`).
    NoHostname,
}

/// One node or gateway and whether this meshd serves it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Choice {
    /// Served here (its listeners bound by this meshd).
    pub here: bool,
    /// Its DNS hostname (where it is served when remote), if it has one.
    pub hostname: Option<String>,
    /// Why.
    pub reason: Reason,
    /// [`Reason::words`], for logs, `/ready` and meshctl.
    pub why: String,
}

/// The nodes of a config and which of them this meshd serves.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Selection {
    /// Every virtual node and gateway by name.
    pub nodes: BTreeMap<String, Choice>,
    /// Names given with `--node`/`MESHD_NODE` that are not in the config.
    pub missing: Vec<String>,
    /// Whether the nodes were named (`--node`) rather than chosen by address.
    pub named: bool,
}

/// The addresses of this machine: its interfaces' (getifaddrs). Loopback and unspecified
/// addresses count as local too (see [`is_local`]).
pub fn local_addrs() -> BTreeSet<IpAddr> {
    let mut out = BTreeSet::new();
    match nix::ifaddrs::getifaddrs() {
        Ok(ifs) => {
            for i in ifs {
                let Some(a) = i.address else { continue };
                if let Some(v4) = a.as_sockaddr_in() {
                    out.insert(IpAddr::V4(v4.ip()));
                } else if let Some(v6) = a.as_sockaddr_in6() {
                    out.insert(IpAddr::V6(v6.ip()));
                }
            }
        }
        Err(e) => {
            tracing::warn!(error = %e, "cannot list this machine's addresses (getifaddrs) : {e}")
        }
    }
    out
}

/// Whether `ip` is an address of this machine.
pub fn is_local(ip: IpAddr, local: &BTreeSet<IpAddr>) -> bool {
    ip.is_loopback() || ip.is_unspecified() || local.contains(&ip)
}

/// Resolves `host` (the system resolver: /etc/hosts, then DNS); empty when it does not resolve.
fn resolve(host: &str) -> Vec<IpAddr> {
    let mut addrs: Vec<IpAddr> = match (host, 0u16).to_socket_addrs() {
        Ok(a) => a.map(|a| a.ip()).collect(),
        Err(_) => Vec::new(),
    };
    let mut seen = BTreeSet::new();
    addrs.retain(|a| seen.insert(*a));
    addrs
}

/// Chooses the served nodes of `set` given the flags (`flags.nodes` = the names given with
/// `--node`, `None` = choose by address), and returns the compiler's overrides for it.
/// Resolves hostnames: blocking, call it off the proxy.
pub fn select(set: &MeshSet, flags: &Overrides) -> (Selection, Overrides) {
    let selection = choose(set, flags);
    let overrides = selection.overrides(flags);
    (selection, overrides)
}

fn choose(set: &MeshSet, flags: &Overrides) -> Selection {
    let local = local_addrs();
    let mut cache: HashMap<String, Vec<IpAddr>> = HashMap::new();
    let mut lookup = |h: &str| -> Vec<IpAddr> {
        cache
            .entry(h.to_owned())
            .or_insert_with(|| resolve(h))
            .clone()
    };
    let named = flags.nodes.as_ref();
    let mut nodes = BTreeMap::new();
    let by_listen = |name: &str| {
        flags.listen.get(name).map(|a| {
            if is_local(a.ip(), &local) {
                Reason::ListenLocal(*a)
            } else {
                Reason::ListenRemote(*a)
            }
        })
    };
    // Virtual nodes by their DNS hostname, Istio WorkloadEntries by their address.
    let workloads: Vec<(String, Option<String>)> = set
        .virtual_nodes()
        .map(|vn| {
            let hostname = vn.dns().map(|d| d.hostname.clone());
            (vn.virtual_node_name.clone(), hostname)
        })
        .chain(workload_entries(set))
        .collect();
    for (name, hostname) in &workloads {
        let (name, hostname) = (name.as_str(), hostname.clone());
        let reason = match named {
            Some(n) if !n.contains(name) => Reason::NotNamed,
            Some(_) => {
                let host = hostname.as_ref().map(|h| (h.clone(), lookup(h)));
                let bind = match (flags.listen.contains_key(name), &host) {
                    (true, _) => None,
                    (false, Some((_, addrs))) => Some(
                        addrs
                            .iter()
                            .copied()
                            .find(|a| is_local(*a, &local))
                            .unwrap_or(IpAddr::from([0, 0, 0, 0])),
                    ),
                    (false, None) => Some(IpAddr::from([0, 0, 0, 0])),
                };
                Reason::Named { host, bind }
            }
            None => match (by_listen(name), &hostname) {
                (Some(r), _) => r,
                (None, None) => Reason::NoHostname,
                (None, Some(h)) => {
                    let addrs = lookup(h);
                    match addrs.iter().find(|a| is_local(**a, &local)) {
                        Some(a) => Reason::Local {
                            host: h.clone(),
                            addr: *a,
                        },
                        None if addrs.is_empty() => Reason::Unresolved { host: h.clone() },
                        None => Reason::Remote {
                            host: h.clone(),
                            addrs,
                        },
                    }
                }
            },
        };
        nodes.insert(name.to_owned(), choice(hostname, reason));
    }
    for vg in set.virtual_gateways() {
        let name = vg.virtual_gateway_name.as_str();
        let reason = match named {
            Some(n) if n.contains(name) => Reason::Named {
                host: None,
                bind: None,
            },
            Some(_) => Reason::NotNamed,
            None => by_listen(name).unwrap_or(Reason::NoHostname),
        };
        nodes.insert(name.to_owned(), choice(None, reason));
    }
    let missing = named
        .map(|n| {
            n.iter()
                .filter(|x| !nodes.contains_key(*x))
                .cloned()
                .collect()
        })
        .unwrap_or_default();
    Selection {
        nodes,
        missing,
        named: named.is_some(),
    }
}

/// Every Istio WorkloadEntry as `(name, address)`: a local workload the way a virtual node is.
fn workload_entries(set: &MeshSet) -> impl Iterator<Item = (String, Option<String>)> + '_ {
    set.resources().filter_map(|r| match r {
        Resource::Istio(i) => match &i.spec {
            IstioSpec::WorkloadEntry(we) => Some((i.metadata.name.clone(), we.address.clone())),
            _ => None,
        },
        _ => None,
    })
}

fn choice(hostname: Option<String>, reason: Reason) -> Choice {
    let here = matches!(
        reason,
        Reason::Named { .. } | Reason::ListenLocal(_) | Reason::Local { .. }
    );
    Choice {
        here,
        hostname,
        why: reason.words(),
        reason,
    }
}

fn addr_list(addrs: &[IpAddr]) -> String {
    addrs
        .iter()
        .map(IpAddr::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

impl Reason {
    /// A few words for logs and meshctl: `green.m.local → 198.18.1.2 is local`.
    pub fn words(&self) -> String {
        match self {
            Reason::Named { host, bind } => {
                let mut s = String::from("named by --node");
                if let Some((h, addrs)) = host {
                    match addrs.is_empty() {
                        true => {
                            let _ = write!(s, "; {h} does not resolve here");
                        }
                        false => {
                            let _ = write!(s, "; {h} → {}", addr_list(addrs));
                        }
                    }
                }
                if let Some(ip) = bind {
                    let _ = write!(s, "; binds {ip}");
                }
                s
            }
            Reason::ListenLocal(a) => format!("--listen {a} is local"),
            Reason::ListenRemote(a) => format!("--listen {a} is not an address of this machine"),
            Reason::Local { host, addr } => format!("{host} → {addr} is local"),
            Reason::Remote { host, addrs } => format!("{host} → {}", addr_list(addrs)),
            Reason::Unresolved { host } => format!("{host} does not resolve here"),
            Reason::NotNamed => "not named by --node".into(),
            Reason::NoHostname => "no DNS hostname; served only where named by --node".into(),
        }
    }
}

/// How many remote nodes the log line names before "and N more".
const REMOTE_IN_LOG: usize = 10;

impl Selection {
    /// Whether `node` is served here.
    pub fn serves(&self, node: &str) -> bool {
        self.nodes.get(node).is_some_and(|c| c.here)
    }

    /// The choice made for `node`, if the config has it.
    pub fn choice(&self, node: &str) -> Option<&Choice> {
        self.nodes.get(node)
    }

    /// `here` or `elsewhere`.
    pub fn served_word(&self, node: &str) -> &'static str {
        if self.serves(node) {
            "here"
        } else {
            "elsewhere"
        }
    }

    /// Where a node another meshd serves takes effect (its hostname, or who serves a gateway);
    /// `None` when it is served here.
    pub fn elsewhere(&self, node: &str) -> Option<String> {
        match self.nodes.get(node) {
            Some(c) if c.here => None,
            Some(Choice {
                hostname: Some(h), ..
            }) => Some(h.clone()),
            _ => Some("the meshd that names it with --node".into()),
        }
    }

    /// The config's nodes, for an error: `a, b, gw`.
    pub fn known(&self) -> String {
        if self.nodes.is_empty() {
            return "none".into();
        }
        self.nodes.keys().cloned().collect::<Vec<_>>().join(", ")
    }

    /// `/ready`'s lines after `LIVE`: `serving: green` and `remote: red, blue`.
    pub fn ready_lines(&self) -> String {
        let (here, remote): (Vec<&String>, Vec<&String>) =
            self.nodes.keys().partition(|n| self.serves(n));
        let join = |v: Vec<&String>| v.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ");
        format!("serving: {}\nremote: {}\n", join(here), join(remote))
    }

    /// The served nodes' names.
    pub fn served(&self) -> BTreeSet<String> {
        self.nodes
            .iter()
            .filter(|(_, c)| c.here)
            .map(|(n, _)| n.clone())
            .collect()
    }

    /// The compiler's overrides: the flags with the served nodes and their bind addresses.
    pub fn overrides(&self, flags: &Overrides) -> Overrides {
        let mut o = flags.clone();
        o.nodes = Some(self.served());
        o.bind_ip = self
            .nodes
            .iter()
            .filter_map(|(n, c)| match &c.reason {
                Reason::Named { bind: Some(ip), .. } => Some((n.clone(), *ip)),
                Reason::Local { addr, .. } => Some((n.clone(), *addr)),
                _ => None,
            })
            .collect();
        o
    }

    /// The log line: `serving nodes green (green.m.local → 198.18.1.2 is local); remote: red
    /// (red.m.local → 198.18.1.3)`.
    pub fn summary(&self) -> String {
        let (here, remote): (Vec<_>, Vec<_>) = self.nodes.iter().partition(|(_, c)| c.here);
        let mut s = if here.is_empty() {
            String::from("serving no node: none is local")
        } else {
            String::from("serving ")
        };
        if here.is_empty() && self.named {
            s = String::from("serving no node: none of the named nodes is in the config");
        }
        let list = |items: &[(&String, &Choice)]| -> String {
            items
                .iter()
                .map(|(n, c)| format!("{n} ({})", c.why))
                .collect::<Vec<_>>()
                .join(", ")
        };
        s.push_str(&list(&here));
        if !remote.is_empty() {
            let shown = remote.len().min(REMOTE_IN_LOG);
            let _ = write!(s, "; remote: {}", list(&remote[..shown]));
            if remote.len() > shown {
                let _ = write!(s, " and {} more", remote.len() - shown);
            }
        }
        if self.nodes.is_empty() {
            s = String::from("serving no node: the config has no virtual node or gateway");
        }
        s
    }
}

/// Logs the selection when it differs from the last one logged (at start: always), and the
/// `--node` names the config does not have.
pub fn log_if_changed(last: &mut Option<Selection>, now: &Selection) {
    if last.as_ref() == Some(now) {
        return;
    }
    if !now.missing.is_empty() && last.as_ref().map(|l| &l.missing) != Some(&now.missing) {
        tracing::warn!(
            missing = now.missing.join(","),
            known = now.known(),
            "--node names {} but the config has no such node; serving the rest (the nodes there: {})",
            now.missing.join(", "),
            now.known()
        );
    }
    tracing::info!(
        served = now.served().into_iter().collect::<Vec<_>>().join(","),
        "{}",
        now.summary()
    );
    *last = Some(now.clone());
}

#[cfg(test)]
#[path = "nodes_tests.rs"]
mod tests;
