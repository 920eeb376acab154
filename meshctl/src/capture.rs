//! `meshctl capture enable|disable|status`: transparent capture of the apps' outbound TCP into
//! meshd's egress listener, as App Mesh's `envoy-networking.sh` does on EC2, with nftables.
//!
//! The rules live in a table of their own, `ip meshd_capture`, so they never touch anyone
//! else's: enabling writes the whole table in one `nft -f` transaction (all of it or nothing),
//! disabling deletes the table. In its `output` chain (nat hook, priority -100), IPv4 TCP that a
//! local process sends is redirected to `127.0.0.1:<egress port>`, except what meshd itself
//! sends (its uid, `--ignore-uid`), local destinations (loopback and this machine's own
//! addresses: App Mesh's `! --dst-type LOCAL`), the ignored ports (22 always, and the egress
//! port) and the ignored addresses (by default the EC2 and ECS metadata endpoints, as App Mesh).
//! IPv6 is not captured.

use std::io::Write;
use std::process::{Command, Stdio};

use crate::Error;

/// The table's family and name.
pub const TABLE: &str = "ip meshd_capture";

/// What to capture.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rules {
    /// meshd's egress listener port on 127.0.0.1.
    pub egress_port: u16,
    /// The uids whose traffic is never captured (meshd's own).
    pub ignore_uids: Vec<u32>,
    /// Destination addresses or IPv4 CIDRs never captured.
    pub ignore_ips: Vec<String>,
    /// Destination ports never captured (22 and the egress port are always added).
    pub ignore_ports: Vec<u16>,
}

/// The nft script that installs (or replaces) the table: one transaction.
pub fn script(r: &Rules) -> String {
    let t = TABLE;
    let mut ports = vec![22, r.egress_port];
    ports.extend(&r.ignore_ports);
    ports.sort_unstable();
    ports.dedup();
    let list = |v: Vec<String>| v.join(", ");
    let mut s = format!(
        "add table {t}\nflush table {t}\n\
         add chain {t} output {{ type nat hook output priority -100 ; }}\n"
    );
    for uid in &r.ignore_uids {
        s.push_str(&format!(
            "add rule {t} output meta skuid {uid} counter return\n"
        ));
    }
    s.push_str(&format!(
        "add rule {t} output fib daddr type local counter return\n"
    ));
    s.push_str(&format!(
        "add rule {t} output tcp dport {{ {} }} counter return\n",
        list(ports.iter().map(u16::to_string).collect())
    ));
    if !r.ignore_ips.is_empty() {
        s.push_str(&format!(
            "add rule {t} output ip daddr {{ {} }} counter return\n",
            list(r.ignore_ips.clone())
        ));
    }
    s.push_str(&format!(
        "add rule {t} output meta l4proto tcp counter redirect to :{}\n",
        r.egress_port
    ));
    s
}

/// Checks an `--ignore-ip` value: an IPv4 address or CIDR.
pub fn check_ip(v: &str) -> Result<String, String> {
    let (addr, prefix) = match v.split_once('/') {
        Some((a, p)) => (a, Some(p)),
        None => (v, None),
    };
    let ok = addr.parse::<std::net::Ipv4Addr>().is_ok()
        && prefix.is_none_or(|p| p.parse::<u8>().is_ok_and(|p| p <= 32));
    if ok {
        Ok(v.to_owned())
    } else {
        Err(format!(
            "{v:?} is not an IPv4 address or CIDR (capture redirects IPv4 only), e.g. 169.254.169.254 or 10.0.0.0/8"
        ))
    }
}

/// The uid of user `name`, or `name` itself when it is a number.
pub fn uid_of(name: &str) -> Result<u32, Error> {
    if let Ok(n) = name.parse() {
        return Ok(n);
    }
    match nix::unistd::User::from_name(name) {
        Ok(Some(u)) => Ok(u.uid.as_raw()),
        _ => Err(Error::Usage(format!(
            "capture : no user {name:?} on this machine : name the user or uid meshd runs as with --ignore-uid"
        ))),
    }
}

/// Runs `nft ARGS`, feeding `input` on stdin; its stdout, or its error as one line.
fn nft(args: &[&str], input: Option<&str>) -> Result<String, Error> {
    let mut child = Command::new("nft")
        .args(args)
        .stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => Error::Runtime(
                "capture : nft not found : install nftables (apt-get install nftables)".into(),
            ),
            _ => Error::Runtime(format!("capture : cannot run nft : {e}")),
        })?;
    if let (Some(text), Some(mut stdin)) = (input, child.stdin.take()) {
        stdin
            .write_all(text.as_bytes())
            .map_err(|e| Error::Runtime(format!("capture : cannot feed nft : {e}")))?;
    }
    let out = child
        .wait_with_output()
        .map_err(|e| Error::Runtime(format!("capture : nft failed : {e}")))?;
    if out.status.success() {
        return Ok(String::from_utf8_lossy(&out.stdout).into_owned());
    }
    let why = String::from_utf8_lossy(&out.stderr);
    let first = why
        .lines()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("")
        .trim();
    let hint = if why.contains("Operation not permitted") {
        " (needs root or CAP_NET_ADMIN)"
    } else {
        ""
    };
    Err(Error::Runtime(format!(
        "capture : nft refused : {first}{hint}"
    )))
}

fn installed() -> Result<Option<String>, Error> {
    match nft(&["list", "table", "ip", "meshd_capture"], None) {
        Ok(text) => Ok(Some(text)),
        Err(Error::Runtime(m)) if m.contains("No such file or directory") => Ok(None),
        Err(e) => Err(e),
    }
}

/// Installs or replaces the table.
pub fn enable(r: &Rules) -> Result<String, Error> {
    nft(&["-f", "-"], Some(&script(r)))?;
    Ok(format!(
        "capture enabled: outbound IPv4 TCP goes to 127.0.0.1:{} (nft list table {TABLE})\n",
        r.egress_port
    ))
}

/// Removes the table (nothing to do when it is absent).
pub fn disable() -> Result<String, Error> {
    if installed()?.is_none() {
        return Ok("capture was not enabled\n".into());
    }
    nft(&["delete", "table", "ip", "meshd_capture"], None)?;
    Ok("capture disabled\n".into())
}

/// The rules in force, or an error (exit 1) when capture is not enabled.
pub fn status() -> Result<String, Error> {
    match installed()? {
        Some(text) => Ok(text),
        None => Err(Error::Runtime("capture is not enabled".into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_script_excludes_meshd_local_destinations_and_ignored_ports_then_redirects() {
        let s = script(&Rules {
            egress_port: 15001,
            ignore_uids: vec![998],
            ignore_ips: vec!["169.254.169.254".into(), "10.0.0.0/8".into()],
            ignore_ports: vec![5432, 22],
        });
        let want = "add table ip meshd_capture\n\
            flush table ip meshd_capture\n\
            add chain ip meshd_capture output { type nat hook output priority -100 ; }\n\
            add rule ip meshd_capture output meta skuid 998 counter return\n\
            add rule ip meshd_capture output fib daddr type local counter return\n\
            add rule ip meshd_capture output tcp dport { 22, 5432, 15001 } counter return\n\
            add rule ip meshd_capture output ip daddr { 169.254.169.254, 10.0.0.0/8 } counter return\n\
            add rule ip meshd_capture output meta l4proto tcp counter redirect to :15001\n";
        assert_eq!(s, want);
    }

    #[test]
    fn ignored_addresses_must_be_ipv4() {
        assert!(check_ip("10.0.0.0/8").is_ok());
        assert!(check_ip("169.254.170.2").is_ok());
        for bad in ["::1", "10.0.0.0/33", "host", "1.2.3.4/x"] {
            assert!(check_ip(bad).is_err(), "{bad}");
        }
    }
}
