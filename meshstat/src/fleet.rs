//! `--fleet CONFIG_DIR|FILE`: where the fleet's stats endpoints are (each meshd's read-only
//! `--stats-listen`), found from the config directory every VM shares, or from a list file.
//!
//! - **A config directory** (read with [`mesh_core::model::MeshSet::load_dir`]): every virtual
//!   node's `serviceDiscovery.dns.hostname`, resolved here, **every address a meshd** (a node
//!   with three replicas behind one name is three endpoints, as meshd's own DNS discovery makes
//!   them three hosts), at `--stats-port` ([`DEFAULT_STATS_PORT`]). A virtual gateway has no
//!   hostname in App Mesh's model, nor has a node without DNS discovery: such a resource is
//!   one stderr line saying to name it in a list file, unless a list file does.
//! - **A list file**: one `HOST:PORT` or `NAME[,NAME...]=HOST:PORT` a line (`#` comments and
//!   blank lines skipped). A name says which node(s) the meshd there serves; a node named in a
//!   list file is read there instead of where the directory would put it (e.g. a gateway, or a
//!   node on another port). A host name is resolved like a node's hostname.
//!
//! meshstat dials every endpoint by IP address, so the `Host` it sends is an IP literal, which
//! the stats listener's DNS-rebinding check always lets through. Endpoints at one address are
//! one meshd (one VM serving several nodes): merged, names joined with `,`. Each endpoint's
//! label, the source of its lines, is `<names>@<ip>:<port>`, `<hostname>@<ip>:<port>` for an
//! unnamed list entry given by name, or `<ip>:<port>`.

use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};

use mesh_core::model::{MeshSet, ServiceDiscovery};

use crate::error::{Error, Result};

/// The port of every node's stats listener unless `--stats-port` says otherwise: 9902, next to
/// the admin's 9901 (Envoy's admin port is 9901 in Envoy's examples; meshd's too).
pub const DEFAULT_STATS_PORT: u16 = 9902;

/// One meshd's stats endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// The nodes it serves, as the config or the list file names them (may be empty).
    pub names: Vec<String>,
    /// The host name it was found by, when not an IP literal.
    pub hostname: Option<String>,
    /// Where it is dialled.
    pub addr: SocketAddr,
}

impl Endpoint {
    /// The source label of its lines: `<names>@<addr>`, `<hostname>@<addr>` or `<addr>`.
    pub fn label(&self) -> String {
        if !self.names.is_empty() {
            format!("{}@{}", self.names.join(","), self.addr)
        } else if let Some(h) = &self.hostname {
            format!("{h}@{}", self.addr)
        } else {
            self.addr.to_string()
        }
    }
}

/// The located fleet.
#[derive(Debug, Default)]
pub struct Fleet {
    /// Every endpoint found, in config and file order.
    pub endpoints: Vec<Endpoint>,
    /// How many nodes could not be located (each already reported on stderr).
    pub unlocated: usize,
}

/// What to look for: a node's stats endpoint by host and port, or a resource with no address.
#[derive(Debug, Clone)]
struct Want {
    /// What it is, for messages: `virtual node green`, `fleet.txt:3`.
    what: String,
    names: Vec<String>,
    /// `None`: no address known (a gateway, a node without DNS discovery).
    host: Option<(String, u16)>,
}

/// Finds the stats endpoints of `paths` (config directories or list files), directory nodes at
/// `port`. A missing path, an invalid directory or a bad list line is an [`Error::Usage`]; a
/// node that cannot be located is one stderr line and counted in [`Fleet::unlocated`].
pub fn locate(paths: &[PathBuf], port: u16) -> Result<Fleet> {
    let mut from_dirs = Vec::new();
    let mut from_files = Vec::new();
    for p in paths {
        let shown = format!("--fleet {}", p.display());
        let meta = std::fs::metadata(p).map_err(|e| Error::usage(&shown, e.to_string()))?;
        if meta.is_dir() {
            from_dirs.extend(from_dir(p, port)?);
        } else {
            from_files.extend(from_list(p)?);
        }
    }
    // A node a list file names is read where the list says.
    let listed: Vec<&String> = from_files.iter().flat_map(|w| &w.names).collect();
    from_dirs.retain(|w| !w.names.iter().any(|n| listed.contains(&n)));
    let wants: Vec<Want> = from_dirs.into_iter().chain(from_files).collect();
    if wants.is_empty() {
        return Err(Error::usage(
            "--fleet",
            "no virtual node or gateway and no stats endpoint found",
        ));
    }
    let resolved: Vec<std::result::Result<Vec<SocketAddr>, String>> = std::thread::scope(|s| {
        let handles: Vec<_> = wants.iter().map(|w| s.spawn(|| resolve(w))).collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err("resolver thread failed".into()))
            })
            .collect()
    });
    let mut fleet = Fleet::default();
    for (w, r) in wants.iter().zip(resolved) {
        let addrs = match r {
            Ok(a) => a,
            Err(why) => {
                eprintln!("meshstat: {} : {why}", w.what);
                fleet.unlocated += 1;
                continue;
            }
        };
        let hostname = w
            .host
            .as_ref()
            .filter(|(h, _)| h.trim_matches(['[', ']']).parse::<IpAddr>().is_err())
            .map(|(h, _)| h.clone());
        for addr in addrs {
            match fleet.endpoints.iter_mut().find(|e| e.addr == addr) {
                Some(e) => {
                    for n in &w.names {
                        if !e.names.contains(n) {
                            e.names.push(n.clone());
                        }
                    }
                }
                None => fleet.endpoints.push(Endpoint {
                    names: w.names.clone(),
                    hostname: hostname.clone(),
                    addr,
                }),
            }
        }
    }
    Ok(fleet)
}

/// Every address of `w`'s host (sorted, deduplicated), or why there is none.
fn resolve(w: &Want) -> std::result::Result<Vec<SocketAddr>, String> {
    let Some((host, port)) = &w.host else {
        let name = w.names.first().map_or("NAME", String::as_str);
        return Err(format!(
            "has no DNS hostname in the config: name its stats endpoint in a list file \
             ({name}=HOST:PORT) given as another --fleet"
        ));
    };
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    let mut addrs: Vec<SocketAddr> = (bare, *port)
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve {host} : {e}"))?
        .collect();
    addrs.sort();
    addrs.dedup();
    if addrs.is_empty() {
        return Err(format!("{host} resolves to no address"));
    }
    Ok(addrs)
}

fn from_dir(dir: &Path, port: u16) -> Result<Vec<Want>> {
    let set = MeshSet::load_dir(dir).map_err(|errors| {
        let first = errors.first().map(ToString::to_string).unwrap_or_default();
        let more = match errors.len() {
            0 | 1 => String::new(),
            n => format!(" (and {} more)", n - 1),
        };
        Error::usage(
            format!("--fleet {}", dir.display()),
            format!("invalid config: {first}{more}"),
        )
    })?;
    let mut wants = Vec::new();
    for n in set.virtual_nodes() {
        let host = match &n.spec.service_discovery {
            Some(ServiceDiscovery::Dns(d)) => Some((d.hostname.clone(), port)),
            _ => None,
        };
        let shown = host
            .as_ref()
            .map_or(String::new(), |(h, _)| format!(" ({h})"));
        let what = match &host {
            Some((h, p)) if h.parse::<IpAddr>().is_ok() => {
                format!("{}@{h}:{p}", n.virtual_node_name)
            }
            _ => format!("virtual node {}{shown}", n.virtual_node_name),
        };
        wants.push(Want {
            what,
            names: vec![n.virtual_node_name.clone()],
            host,
        });
    }
    for g in set.virtual_gateways() {
        wants.push(Want {
            what: format!("virtual gateway {}", g.virtual_gateway_name),
            names: vec![g.virtual_gateway_name.clone()],
            host: None,
        });
    }
    Ok(wants)
}

fn from_list(file: &Path) -> Result<Vec<Want>> {
    let text = std::fs::read_to_string(file)
        .map_err(|e| Error::usage(format!("--fleet {}", file.display()), e.to_string()))?;
    let mut wants = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let at = format!("{}:{}", file.display(), i + 1);
        let (names, hostport) = match line.split_once('=') {
            Some((n, a)) => (
                n.split(',')
                    .map(|s| s.trim().to_owned())
                    .collect::<Vec<_>>(),
                a.trim(),
            ),
            None => (Vec::new(), line),
        };
        let parsed = hostport
            .rsplit_once(':')
            .and_then(|(h, p)| Some((h, p.parse::<u16>().ok()?)))
            .filter(|(h, _)| valid_host(h));
        let (Some((host, port)), true) = (parsed, names.iter().all(|n| valid_name(n))) else {
            return Err(Error::usage(
                at,
                format!("not HOST:PORT or NAME=HOST:PORT: {line:?}"),
            ));
        };
        wants.push(Want {
            what: match names.is_empty() {
                true => hostport.to_owned(),
                false => format!("{}@{hostport}", names.join(",")),
            },
            names,
            host: Some((host.to_owned(), port)),
        });
    }
    Ok(wants)
}

/// A host name or IP literal (IPv6 in brackets), nothing a URL would read differently.
fn valid_host(h: &str) -> bool {
    if let Some(v6) = h.strip_prefix('[').and_then(|r| r.strip_suffix(']')) {
        return v6.parse::<std::net::Ipv6Addr>().is_ok();
    }
    !h.is_empty()
        && h.len() <= 253
        && h.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.' || c == '_')
}

/// An App Mesh resource name (1–255 of letters, digits, `-`, `_`, `.`).
fn valid_name(n: &str) -> bool {
    !n.is_empty()
        && n.len() <= 255
        && n.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.')
}

/// The endpoints as Prometheus file_sd JSON: one target group per meshd, labelled `node` with
/// the nodes it serves (joined by `,`) when known.
pub fn file_sd(endpoints: &[Endpoint]) -> String {
    let groups: Vec<serde_json::Value> = endpoints
        .iter()
        .map(|e| {
            let mut labels = serde_json::Map::new();
            if !e.names.is_empty() {
                labels.insert("node".into(), e.names.join(",").into());
            }
            serde_json::json!({"targets": [e.addr.to_string()], "labels": labels})
        })
        .collect();
    let mut s = serde_json::to_string_pretty(&groups).unwrap_or_else(|_| "[]".into());
    s.push('\n');
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(text: &str) -> Result<Vec<Want>> {
        let dir = tempdir();
        let p = dir.join("fleet.txt");
        std::fs::write(&p, text).expect("write");
        let r = from_list(&p);
        let _ = std::fs::remove_dir_all(&dir);
        r
    }

    fn tempdir() -> PathBuf {
        use std::sync::atomic::{AtomicUsize, Ordering};
        static N: AtomicUsize = AtomicUsize::new(0);
        let d = std::env::temp_dir().join(format!(
            "meshstat-fleet-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&d).expect("mkdir");
        d
    }

    #[test]
    fn list_lines_name_nodes_and_addresses() {
        let w = list("# fleet\n\na=10.0.0.1:9902\ngw,red=[::1]:9902 # two nodes\nb.m.local:1\n")
            .expect("valid");
        type Line = (Vec<String>, Option<(String, u16)>);
        let got: Vec<Line> = w.into_iter().map(|w| (w.names, w.host)).collect();
        assert_eq!(
            got,
            vec![
                (vec!["a".into()], Some(("10.0.0.1".into(), 9902))),
                (
                    vec!["gw".into(), "red".into()],
                    Some(("[::1]".into(), 9902))
                ),
                (vec![], Some(("b.m.local".into(), 1))),
            ]
        );
        for bad in [
            "10.0.0.1",
            "a=",
            "a=10.0.0.1:x",
            "=1.2.3.4:5",
            "http://a:1",
            "a b:1",
            "x=[::1:2",
        ] {
            assert!(list(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn endpoints_at_one_address_merge_and_labels_name_them() {
        let dir = tempdir();
        let p = dir.join("fleet.txt");
        std::fs::write(
            &p,
            "gw=127.0.0.1:9902\ngreen=127.0.0.1:9902\n127.0.0.2:9902\n",
        )
        .expect("write");
        let f = locate(&[p], DEFAULT_STATS_PORT).expect("located");
        let _ = std::fs::remove_dir_all(&dir);
        let labels: Vec<String> = f.endpoints.iter().map(Endpoint::label).collect();
        assert_eq!(labels, ["gw,green@127.0.0.1:9902", "127.0.0.2:9902"]);
        assert_eq!(f.unlocated, 0);
        let sd: serde_json::Value = serde_json::from_str(&file_sd(&f.endpoints)).expect("json");
        assert_eq!(
            sd,
            serde_json::json!([
                {"targets": ["127.0.0.1:9902"], "labels": {"node": "gw,green"}},
                {"targets": ["127.0.0.2:9902"], "labels": {}},
            ])
        );
    }
}
