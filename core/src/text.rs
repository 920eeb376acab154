//! Addresses as text on the request path, without `core::fmt` (whose `Display` for an IPv4
//! address cost ~1.6k instructions per request in meshd's profile). The output is exactly what
//! `Display` writes.

use std::net::{IpAddr, SocketAddr};

/// Appends `ip` as `Display` would (dotted quad; IPv6 through `Display`, which is rare here).
pub fn push_ip(out: &mut String, ip: IpAddr) {
    match ip {
        IpAddr::V4(v4) => {
            let mut b = itoa::Buffer::new();
            for (i, o) in v4.octets().iter().enumerate() {
                if i > 0 {
                    out.push('.');
                }
                out.push_str(b.format(*o));
            }
        }
        IpAddr::V6(v6) => {
            use std::fmt::Write as _;
            let _ = write!(out, "{v6}");
        }
    }
}

/// Appends `a` as `Display` would: `ip:port`, `[ip]:port` for IPv6.
pub fn push_addr(out: &mut String, a: SocketAddr) {
    match a {
        SocketAddr::V4(v4) => {
            push_ip(out, IpAddr::V4(*v4.ip()));
            out.push(':');
            out.push_str(itoa::Buffer::new().format(v4.port()));
        }
        v6 => {
            use std::fmt::Write as _;
            let _ = write!(out, "{v6}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_read_as_display_writes_them() {
        for a in [
            "10.0.0.1:80",
            "255.255.255.255:65535",
            "[::1]:8080",
            "0.0.0.0:0",
            "[fe80::1%2]:1",
        ] {
            let a: SocketAddr = a.parse().expect("address");
            let mut out = String::new();
            push_addr(&mut out, a);
            assert_eq!(out, a.to_string());
            let mut out = String::new();
            push_ip(&mut out, a.ip());
            assert_eq!(out, a.ip().to_string());
        }
    }
}
