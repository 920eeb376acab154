//! HTTP/1.1 framing of the downstream connection, free of I/O: a request head parsed (with
//! `httparse`) into an [`http::Request`] and the [`Framing`] of its body, chunked decoding,
//! and a response head serialised with the framing of its body.
//!
//! The smuggling defences live here (RFC 9112 §6): a `transfer-encoding` other than exactly
//! `chunked`, or on HTTP/1.0, is refused; `content-length` must be digits only, and several
//! must agree (they are folded into one); with both, chunked wins, `content-length` is dropped
//! and the connection closes after the response. httparse refuses obs-fold, a space before the
//! colon, and NUL or CR in a value.

use bytes::{Buf, Bytes, BytesMut};
use http::header::{
    HeaderName, HeaderValue, CONNECTION, CONTENT_LENGTH, EXPECT, TRANSFER_ENCODING,
};
use http::{HeaderMap, Method, Request, StatusCode, Version};

/// Most header lines a request head may have (hyper's default); more gets 431.
pub const MAX_HEADERS: usize = 100;

/// The longest URI meshd accepts (what `http::Uri` can hold); longer gets 414.
pub const MAX_URI: usize = u16::MAX as usize - 1;

/// How a request body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// Exactly this many bytes (0: no body).
    Length(u64),
    /// Chunked transfer coding.
    Chunked,
}

/// A parsed request head.
#[derive(Debug)]
pub struct Head {
    /// The request without its body.
    pub request: Request<()>,
    /// How its body is delimited.
    pub framing: Framing,
    /// Whether the client lets the connection stay open after this exchange.
    pub keep_alive: bool,
    /// `expect: 100-continue` (HTTP/1.1 only).
    pub expect_continue: bool,
    /// Bytes of the buffer the head took.
    pub len: usize,
}

/// Why a request head is refused; each maps to the status meshd answers with before closing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum HeadError {
    /// Malformed (400).
    #[error("malformed request head")]
    Malformed,
    /// Too many header lines, or a head larger than the buffer (431).
    #[error("request head too large")]
    TooLarge,
    /// The request line alone is too long (414).
    #[error("request URI too long")]
    UriTooLong,
}

impl HeadError {
    /// The status of the answer.
    pub fn status(self) -> StatusCode {
        match self {
            HeadError::Malformed => StatusCode::BAD_REQUEST,
            HeadError::TooLarge => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            HeadError::UriTooLong => StatusCode::URI_TOO_LONG,
        }
    }
}

/// Whether a comma-separated header value has `token` (case-insensitive).
fn has_token(v: &HeaderValue, token: &str) -> bool {
    v.as_bytes()
        .split(|b| *b == b',')
        .any(|t| t.trim_ascii().eq_ignore_ascii_case(token.as_bytes()))
}

/// Parses a request head from the start of `buf`: `Ok(None)` when it is not complete yet.
pub fn parse_head(buf: &[u8]) -> Result<Option<Head>, HeadError> {
    let mut slots = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut slots);
    let len = match req.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => return Err(HeadError::TooLarge),
        Err(_) => return Err(HeadError::Malformed),
    };
    let version = match req.version {
        Some(0) => Version::HTTP_10,
        Some(1) => Version::HTTP_11,
        _ => return Err(HeadError::Malformed),
    };
    let method = Method::from_bytes(req.method.unwrap_or("").as_bytes())
        .map_err(|_| HeadError::Malformed)?;
    let path = req.path.unwrap_or("");
    if path.len() > MAX_URI {
        return Err(HeadError::UriTooLong);
    }
    let uri = http::Uri::try_from(path).map_err(|_| HeadError::Malformed)?;
    let mut headers = HeaderMap::with_capacity(req.headers.len());
    let mut content_length: Option<u64> = None;
    let mut chunked = false;
    let mut te = false;
    for h in req.headers.iter() {
        let name = HeaderName::from_bytes(h.name.as_bytes()).map_err(|_| HeadError::Malformed)?;
        let value = HeaderValue::from_bytes(h.value).map_err(|_| HeadError::Malformed)?;
        if name == CONTENT_LENGTH {
            let v = value.as_bytes();
            if v.is_empty() || v.len() > 19 || !v.iter().all(u8::is_ascii_digit) {
                return Err(HeadError::Malformed);
            }
            let n: u64 = std::str::from_utf8(v)
                .ok()
                .and_then(|s| s.parse().ok())
                .ok_or(HeadError::Malformed)?;
            match content_length {
                Some(m) if m != n => return Err(HeadError::Malformed),
                Some(_) => continue, // equal: folded into one
                None => content_length = Some(n),
            }
        } else if name == TRANSFER_ENCODING {
            // Only exactly one `chunked` coding, in total, is accepted.
            for t in value.as_bytes().split(|b| *b == b',') {
                let t = t.trim_ascii();
                if chunked || !t.eq_ignore_ascii_case(b"chunked") {
                    return Err(HeadError::Malformed);
                }
                chunked = true;
            }
            te = true;
        }
        headers.append(name, value);
    }
    if te && (version == Version::HTTP_10 || !chunked) {
        return Err(HeadError::Malformed);
    }
    let close = headers
        .get_all(CONNECTION)
        .iter()
        .any(|v| has_token(v, "close"));
    let mut keep_alive = match version {
        Version::HTTP_11 => !close,
        _ => {
            !close
                && headers
                    .get_all(CONNECTION)
                    .iter()
                    .any(|v| has_token(v, "keep-alive"))
        }
    };
    let framing = if chunked {
        if content_length.is_some() {
            // Both framings: chunked wins, the length never travels on, and the connection
            // closes after this exchange (RFC 9112 §6.3).
            headers.remove(CONTENT_LENGTH);
            keep_alive = false;
        }
        Framing::Chunked
    } else {
        Framing::Length(content_length.unwrap_or(0))
    };
    let expect_continue = version == Version::HTTP_11
        && headers
            .get(EXPECT)
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"));
    let mut request = Request::new(());
    *request.method_mut() = method;
    *request.uri_mut() = uri;
    *request.version_mut() = version;
    *request.headers_mut() = headers;
    Ok(Some(Head {
        request,
        framing,
        keep_alive,
        expect_continue,
        len,
    }))
}

/// Which error an incomplete head that filled the whole buffer is: 414 while the request line
/// itself is not complete, else 431.
pub fn too_large(buf: &[u8]) -> HeadError {
    if buf.contains(&b'\n') {
        HeadError::TooLarge
    } else {
        HeadError::UriTooLong
    }
}

/// A piece of a request body decoded from the buffer.
#[derive(Debug, PartialEq, Eq)]
pub enum Decoded {
    /// Body bytes.
    Data(Bytes),
    /// The body's trailers (chunked only; its end follows).
    Trailers(HeaderMap),
    /// The body ended.
    End,
    /// More bytes are needed.
    NeedMore,
}

/// The client's body broke chunked framing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("invalid chunked request body")]
pub struct ChunkError;

/// Longest chunk-size line and trailer section kept while waiting for their end.
const MAX_CHUNK_LINE: usize = 4096;
const MAX_TRAILERS: usize = 60 * 1024;

/// Decodes a request body from the connection's buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decoder {
    /// This many bytes of a length-delimited body are still to come.
    Length(u64),
    /// Chunked: waiting for a chunk-size line.
    ChunkSize,
    /// Chunked: this many bytes of the current chunk are still to come.
    ChunkData(u64),
    /// Chunked: the CRLF after a chunk's data.
    ChunkEnd,
    /// Chunked: trailers after the last chunk.
    Trailers,
    /// The body ended.
    Done,
}

impl Decoder {
    /// The decoder for a body framed so.
    pub fn new(framing: Framing) -> Decoder {
        match framing {
            Framing::Length(0) => Decoder::Done,
            Framing::Length(n) => Decoder::Length(n),
            Framing::Chunked => Decoder::ChunkSize,
        }
    }

    /// Whether the body has ended.
    pub fn is_done(&self) -> bool {
        *self == Decoder::Done
    }

    /// Decodes the next piece from `buf`, taking what it uses.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Decoded, ChunkError> {
        loop {
            match *self {
                Decoder::Done => return Ok(Decoded::End),
                Decoder::Length(n) => {
                    if buf.is_empty() {
                        return Ok(Decoded::NeedMore);
                    }
                    let take = (buf.len() as u64).min(n) as usize;
                    let left = n - take as u64;
                    *self = if left == 0 {
                        Decoder::Done
                    } else {
                        Decoder::Length(left)
                    };
                    return Ok(Decoded::Data(buf.split_to(take).freeze()));
                }
                Decoder::ChunkSize => match httparse::parse_chunk_size(buf) {
                    Ok(httparse::Status::Complete((used, size))) => {
                        buf.advance(used);
                        *self = if size == 0 {
                            Decoder::Trailers
                        } else {
                            Decoder::ChunkData(size)
                        };
                    }
                    Ok(httparse::Status::Partial) if buf.len() < MAX_CHUNK_LINE => {
                        return Ok(Decoded::NeedMore)
                    }
                    _ => return Err(ChunkError),
                },
                Decoder::ChunkData(n) => {
                    if buf.is_empty() {
                        return Ok(Decoded::NeedMore);
                    }
                    let take = (buf.len() as u64).min(n) as usize;
                    let left = n - take as u64;
                    *self = if left == 0 {
                        Decoder::ChunkEnd
                    } else {
                        Decoder::ChunkData(left)
                    };
                    return Ok(Decoded::Data(buf.split_to(take).freeze()));
                }
                Decoder::ChunkEnd => {
                    if buf.len() < 2 {
                        return Ok(Decoded::NeedMore);
                    }
                    if &buf[..2] != b"\r\n" {
                        return Err(ChunkError);
                    }
                    buf.advance(2);
                    *self = Decoder::ChunkSize;
                }
                Decoder::Trailers => {
                    if buf.starts_with(b"\r\n") {
                        buf.advance(2);
                        *self = Decoder::Done;
                        return Ok(Decoded::End);
                    }
                    let mut slots = [httparse::EMPTY_HEADER; MAX_HEADERS];
                    match httparse::parse_headers(buf, &mut slots) {
                        Ok(httparse::Status::Complete((used, hs))) => {
                            let mut map = HeaderMap::with_capacity(hs.len());
                            for h in hs {
                                let name = HeaderName::from_bytes(h.name.as_bytes())
                                    .map_err(|_| ChunkError)?;
                                let value =
                                    HeaderValue::from_bytes(h.value).map_err(|_| ChunkError)?;
                                map.append(name, value);
                            }
                            buf.advance(used);
                            *self = Decoder::Done;
                            return Ok(Decoded::Trailers(map));
                        }
                        Ok(httparse::Status::Partial) if buf.len() < MAX_TRAILERS => {
                            return Ok(Decoded::NeedMore)
                        }
                        _ => return Err(ChunkError),
                    }
                }
            }
        }
    }

    /// The exact number of body bytes still to come, when known.
    pub fn remaining(&self) -> Option<u64> {
        match self {
            Decoder::Length(n) => Some(*n),
            Decoder::Done => Some(0),
            _ => None,
        }
    }
}

/// How a response body is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// No body is written (HEAD, 1xx, 204, 304).
    None,
    /// Exactly this many bytes.
    Length(u64),
    /// Chunked transfer coding.
    Chunked,
    /// Until the connection closes (HTTP/1.0 without a length).
    Close,
}

/// Serialises a response head into `out` and says how to write its body: a length from a
/// `content-length` header or an exact size hint, else chunked for HTTP/1.1 and
/// close-delimited for HTTP/1.0. `close` adds `connection: close` (HTTP/1.1);
/// `keep_alive_10` adds `connection: keep-alive` for an HTTP/1.0 client that keeps the
/// connection. `date` is added unless the response has one.
pub fn encode_head(
    parts: &http::response::Parts,
    request: (&Method, Version),
    exact: Option<u64>,
    close: bool,
    date: &[u8],
    out: &mut Vec<u8>,
) -> Encoding {
    let (method, version) = request;
    let status = parts.status;
    out.extend_from_slice(if version == Version::HTTP_10 {
        b"HTTP/1.0 "
    } else {
        b"HTTP/1.1 "
    });
    out.extend_from_slice(status.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(status.canonical_reason().unwrap_or("").as_bytes());
    out.extend_from_slice(b"\r\n");
    let no_body = *method == Method::HEAD
        || status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED;
    let mut has_connection = false;
    let mut length = None;
    let mut chunked = false;
    for (name, value) in &parts.headers {
        if name == CONTENT_LENGTH {
            if length.is_some() {
                continue;
            }
            length = std::str::from_utf8(value.as_bytes())
                .ok()
                .and_then(|s| s.trim().parse::<u64>().ok());
        } else if name == TRANSFER_ENCODING {
            if no_body || version == Version::HTTP_10 {
                continue;
            }
            chunked = has_token(value, "chunked");
        } else if name == CONNECTION {
            has_connection = true;
        }
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    let encoding = if no_body {
        Encoding::None
    } else if chunked {
        Encoding::Chunked
    } else if let Some(n) = length {
        Encoding::Length(n)
    } else if let Some(n) = exact {
        out.extend_from_slice(b"content-length: ");
        out.extend_from_slice(n.to_string().as_bytes());
        out.extend_from_slice(b"\r\n");
        Encoding::Length(n)
    } else if version == Version::HTTP_11 {
        out.extend_from_slice(b"transfer-encoding: chunked\r\n");
        Encoding::Chunked
    } else {
        Encoding::Close
    };
    let close = close || encoding == Encoding::Close;
    if !has_connection {
        if close && version == Version::HTTP_11 {
            out.extend_from_slice(b"connection: close\r\n");
        } else if !close && version == Version::HTTP_10 {
            out.extend_from_slice(b"connection: keep-alive\r\n");
        }
    }
    if !parts.headers.contains_key(http::header::DATE) {
        out.extend_from_slice(b"date: ");
        out.extend_from_slice(date);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
    encoding
}

/// Appends one chunk of `len` bytes' size line (the data and its CRLF follow).
pub fn chunk_header(len: usize, out: &mut Vec<u8>) {
    out.extend_from_slice(format!("{len:x}\r\n").as_bytes());
}

/// The last chunk and the end of an empty trailer section.
pub const LAST_CHUNK: &[u8] = b"0\r\n\r\n";

#[cfg(test)]
#[path = "codec_tests.rs"]
mod tests;
