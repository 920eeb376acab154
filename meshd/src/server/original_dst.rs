//! Transparent capture: where a connection redirected to an egress listener (by `meshctl capture
//! enable`'s nftables rule, or App Mesh-style iptables REDIRECT) was going.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};

use nix::sys::socket::{getsockopt, sockopt};

/// The connection's original destination when it was redirected to this listener (conntrack's
/// `SO_ORIGINAL_DST`), `None` when it came here directly (conntrack then reports the listener's
/// own address, or there is no conntrack entry at all) or is IPv6 (capture redirects IPv4 only).
pub fn original_dst(tcp: &tokio::net::TcpStream) -> Option<SocketAddr> {
    let local = tcp.local_addr().ok()?;
    let raw = getsockopt(tcp, sockopt::OriginalDst).ok()?;
    let addr = SocketAddr::V4(SocketAddrV4::new(
        Ipv4Addr::from(u32::from_be(raw.sin_addr.s_addr)),
        u16::from_be(raw.sin_port),
    ));
    (addr != local).then_some(addr)
}
