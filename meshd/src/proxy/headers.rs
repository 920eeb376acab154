//! Header rules of the request path: what never crosses meshd (hop-by-hop headers, RFC 9110
//! §7.6.1) and what a request must carry (Host, RFC 9112 §3.2).

use http::header::HeaderName;
use http::{HeaderMap, Version};

/// Headers that belong to one connection and are never forwarded.
static HOP_BY_HOP: [HeaderName; 6] = [
    http::header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    http::header::TE,
    http::header::TRAILER,
    http::header::UPGRADE,
];

/// Removes hop-by-hop headers: the fixed list, and every header the message's `Connection`
/// header names (RFC 9110 §7.6.1). Most messages carry none: one pass over the (few) names
/// present decides, instead of six hashed lookups on every message; only names present are
/// removed (a typical upstream response has `connection: keep-alive`: one removal).
pub fn strip_hop_by_hop(headers: &mut HeaderMap) {
    if !headers.keys().any(|k| HOP_BY_HOP.contains(k)) {
        return;
    }
    let named: Vec<HeaderName> = headers
        .get_all(http::header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        // The usual tokens: `close` names no header, `keep-alive` is in the list already.
        .filter(|t| !t.eq_ignore_ascii_case("close") && !t.eq_ignore_ascii_case("keep-alive"))
        .filter_map(|token| HeaderName::from_bytes(token.as_bytes()).ok())
        .collect();
    let present: Vec<HeaderName> = headers
        .keys()
        .filter(|k| HOP_BY_HOP.contains(k) || named.contains(k))
        .cloned()
        .collect();
    for h in &present {
        headers.remove(h);
    }
}

/// Whether the request's Host is acceptable: exactly one for HTTP/1.1 (a server must answer 400
/// otherwise, RFC 9112 §3.2), at most one for HTTP/1.0.
pub fn host_ok(version: Version, headers: &HeaderMap) -> bool {
    let hosts = headers.get_all(http::header::HOST).iter().count();
    match version {
        Version::HTTP_10 | Version::HTTP_09 => hosts <= 1,
        _ => hosts == 1,
    }
}

/// Whether a message's framing is unambiguous: never both `Content-Length` and
/// `Transfer-Encoding` (RFC 9112 §6.1). meshd's server drops the `Content-Length` of such a
/// request (and closes after it); an upstream response keeps both, and meshd answers 502 `UPE`
/// for it, as Envoy does without `allow_chunked_length`.
pub fn framing_ok(headers: &HeaderMap) -> bool {
    // One pass over the (few) names: cheaper than two hashed lookups.
    let (mut length, mut coding) = (false, false);
    for k in headers.keys() {
        length |= k == http::header::CONTENT_LENGTH;
        coding |= k == http::header::TRANSFER_ENCODING;
    }
    !(length && coding)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_names_more_hop_by_hop_headers() {
        let mut h = HeaderMap::new();
        h.insert(
            "connection",
            "X-Secret, close,, keep-alive".parse().expect("value"),
        );
        h.insert("x-secret", "1".parse().expect("value"));
        h.insert("keep-alive", "5".parse().expect("value"));
        h.insert("x-kept", "2".parse().expect("value"));
        strip_hop_by_hop(&mut h);
        let left: Vec<&str> = h.keys().map(HeaderName::as_str).collect();
        assert_eq!(left, ["x-kept"]);
    }

    #[test]
    fn content_length_with_transfer_encoding_is_ambiguous() {
        let mut h = HeaderMap::new();
        h.insert("content-length", "3".parse().expect("value"));
        assert!(framing_ok(&h));
        h.insert("transfer-encoding", "chunked".parse().expect("value"));
        assert!(!framing_ok(&h));
        h.remove("content-length");
        assert!(framing_ok(&h));
    }

    #[test]
    fn http11_needs_exactly_one_host() {
        let mut h = HeaderMap::new();
        assert!(!host_ok(Version::HTTP_11, &h));
        assert!(host_ok(Version::HTTP_10, &h));
        h.append("host", "a".parse().expect("value"));
        assert!(host_ok(Version::HTTP_11, &h));
        h.append("host", "b".parse().expect("value"));
        assert!(!host_ok(Version::HTTP_11, &h));
        assert!(!host_ok(Version::HTTP_10, &h));
    }
}
