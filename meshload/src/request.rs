//! The request every call sends, prepared once: as bytes for the fast client, as parts for hyper.
//!
//! fortio's `{uuid}` token, in the URL's path or query or in the body, becomes a new random UUID
//! on every request (each occurrence its own). The prepared bytes hold a 36-byte placeholder at
//! each such spot, so the Content-Length is right once and for all; a connection copies the bytes
//! once and overwrites the spots in place before each send, so even then a call allocates
//! nothing on the fast client.

use bytes::{BufMut, Bytes, BytesMut};
use http::header::{CONNECTION, CONTENT_LENGTH, CONTENT_TYPE, HOST, USER_AGENT};
use http::{HeaderMap, HeaderValue, Method, Request, Uri, Version};
use http_body_util::Full;
use uuid::Uuid;

use crate::config::Config;

/// fortio's per-request UUID token.
pub const UUID_TOKEN: &str = "{uuid}";
/// What a token is prepared as: any 36 bytes, overwritten before each send.
const PLACEHOLDER: &str = "00000000-0000-0000-0000-000000000000";

/// The request every call sends, prepared once.
#[derive(Debug, Clone)]
pub struct Template {
    method: Method,
    /// Path and query (with `{uuid}` tokens) and, for h2, the authority.
    uri_text: String,
    uri: Uri,
    version: Version,
    headers: HeaderMap,
    /// Body with `{uuid}` tokens.
    body: Bytes,
    /// The method is HEAD: responses have no body.
    pub head: bool,
    /// The whole HTTP/1.x request as the fast client writes it: head and body, tokens as
    /// placeholders.
    wire: Bytes,
    /// Offsets in `wire` of the 36-byte placeholders to fill with a UUID each time.
    uuid_spots: Vec<usize>,
}

/// Offsets where `{uuid}` tokens land once each is replaced by 36 bytes, in text starting at
/// `base`.
fn spots(text: &[u8], base: usize) -> Vec<usize> {
    let grow = PLACEHOLDER.len() - UUID_TOKEN.len();
    let token = UUID_TOKEN.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while let Some(p) = text[i..].windows(token.len()).position(|w| w == token) {
        out.push(base + i + p + out.len() * grow);
        i += p + token.len();
    }
    out
}

fn with_placeholders(text: &[u8]) -> Vec<u8> {
    let token = UUID_TOKEN.as_bytes();
    let mut out = Vec::with_capacity(text.len());
    let mut i = 0;
    while i < text.len() {
        if text[i..].starts_with(token) {
            out.extend_from_slice(PLACEHOLDER.as_bytes());
            i += token.len();
        } else {
            out.push(text[i]);
            i += 1;
        }
    }
    out
}

/// The request line, headers (in `headers`' order, then Content-Length) and body, as bytes.
fn serialize(
    method: &Method,
    target: &[u8],
    version: Version,
    headers: &HeaderMap,
    body: &[u8],
) -> Bytes {
    let mut w = BytesMut::with_capacity(256 + body.len());
    w.put_slice(method.as_str().as_bytes());
    w.put_u8(b' ');
    w.put_slice(target);
    w.put_slice(if version == Version::HTTP_10 {
        b" HTTP/1.0\r\n"
    } else {
        b" HTTP/1.1\r\n"
    });
    for (k, v) in headers {
        w.put_slice(k.as_str().as_bytes());
        w.put_slice(b": ");
        w.put_slice(v.as_bytes());
        w.put_slice(b"\r\n");
    }
    // As hyper: a length for any body, and for methods whose requests carry one.
    let wants_length =
        !body.is_empty() || matches!(*method, Method::POST | Method::PUT | Method::PATCH);
    if wants_length && !headers.contains_key(CONTENT_LENGTH) {
        w.put_slice(b"content-length: ");
        w.put_slice(body.len().to_string().as_bytes());
        w.put_slice(b"\r\n");
    }
    w.put_slice(b"\r\n");
    w.put_slice(body);
    w.freeze()
}

/// `text` with each `{uuid}` token replaced by its own new UUID.
fn fresh(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 64);
    let mut rest = text;
    while let Some(p) = rest.find(UUID_TOKEN) {
        out.push_str(&rest[..p]);
        out.push_str(
            Uuid::new_v4()
                .hyphenated()
                .encode_lower(&mut Uuid::encode_buffer()),
        );
        rest = &rest[p + UUID_TOKEN.len()..];
    }
    out.push_str(rest);
    out
}

impl Template {
    /// Prepares the request for `cfg`.
    pub fn new(cfg: &Config) -> Template {
        let mut headers = HeaderMap::new();
        let authority = cfg
            .host_override
            .clone()
            .or_else(|| cfg.uri.authority().map(|a| a.as_str().to_owned()))
            .unwrap_or_default();
        let path = cfg
            .uri
            .path_and_query()
            .map(|p| p.as_str().to_owned())
            .unwrap_or_else(|| "/".to_owned());
        let uri_text = if cfg.h2 {
            format!("http://{authority}{path}")
        } else {
            path.clone()
        };
        if !cfg.h2 {
            if let Ok(v) = HeaderValue::from_str(&authority) {
                headers.insert(HOST, v);
            }
        }
        if !cfg.no_user_agent {
            headers.insert(
                USER_AGENT,
                HeaderValue::from_static(concat!("meshload/", env!("CARGO_PKG_VERSION"))),
            );
        }
        if !cfg.content_type.is_empty() {
            if let Ok(v) = HeaderValue::from_str(&cfg.content_type) {
                headers.insert(CONTENT_TYPE, v);
            }
        }
        for (k, v) in &cfg.headers {
            headers.append(k.clone(), v.clone());
        }
        if !cfg.h2 {
            if !cfg.keepalive {
                headers.insert(CONNECTION, HeaderValue::from_static("close"));
            } else if cfg.http10 {
                headers.insert(CONNECTION, HeaderValue::from_static("keep-alive"));
            }
        }
        let version = if cfg.h2 {
            Version::HTTP_2
        } else if cfg.http10 {
            Version::HTTP_10
        } else {
            Version::HTTP_11
        };
        let target = with_placeholders(path.as_bytes());
        let body = with_placeholders(&cfg.payload);
        let wire = serialize(&cfg.method, &target, version, &headers, &body);
        let target_at = cfg.method.as_str().len() + 1;
        let mut uuid_spots = spots(path.as_bytes(), target_at);
        uuid_spots.extend(spots(&cfg.payload, wire.len() - body.len()));
        Template {
            head: cfg.method == Method::HEAD,
            method: cfg.method.clone(),
            uri: uri_text.parse().unwrap_or_default(),
            uri_text,
            version,
            headers,
            body: cfg.payload.clone(),
            wire,
            uuid_spots,
        }
    }

    /// The request's bytes for the fast client, with placeholders where `{uuid}` tokens were.
    pub fn wire(&self) -> &[u8] {
        &self.wire
    }

    /// Whether each request needs its own UUIDs.
    pub fn has_uuids(&self) -> bool {
        !self.uuid_spots.is_empty()
    }

    /// Writes a new UUID at every placeholder of `wire`, a copy of [`Template::wire`].
    pub fn fill_uuids(&self, wire: &mut [u8]) {
        for &at in &self.uuid_spots {
            if let Some(spot) = wire.get_mut(at..at + PLACEHOLDER.len()) {
                Uuid::new_v4().hyphenated().encode_lower(spot);
            }
        }
    }

    /// A fresh request for hyper (cheap clones of prepared parts; new URI and body strings when
    /// they hold `{uuid}` tokens).
    pub fn request(&self) -> Request<Full<Bytes>> {
        let (uri, body) = if self.has_uuids() {
            let uri = fresh(&self.uri_text).parse().unwrap_or_default();
            let body = match std::str::from_utf8(&self.body) {
                Ok(text) if text.contains(UUID_TOKEN) => Bytes::from(fresh(text)),
                _ => self.body.clone(),
            };
            (uri, body)
        } else {
            (self.uri.clone(), self.body.clone())
        };
        let mut req = Request::new(Full::new(body));
        *req.method_mut() = self.method.clone();
        *req.uri_mut() = uri;
        *req.version_mut() = self.version;
        *req.headers_mut() = self.headers.clone();
        req
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_sit_where_the_tokens_were() {
        let text = b"/a/{uuid}/b?x={uuid}";
        let replaced = with_placeholders(text);
        assert_eq!(replaced.len(), text.len() + 2 * 30);
        for at in spots(text, 0) {
            assert_eq!(&replaced[at..at + 36], PLACEHOLDER.as_bytes());
        }
        assert_eq!(spots(b"no token", 5), Vec::<usize>::new());
        let f = fresh("{uuid}-{uuid}");
        let (a, b) = f.split_at(36);
        assert!(Uuid::parse_str(a).is_ok() && Uuid::parse_str(&b[1..]).is_ok());
        assert_ne!(a, &b[1..]);
    }
}
