//! HTTP/1.1 framing of the downstream connection, free of I/O: a request head parsed (with
//! `httparse`) into an [`http::Request`] and the [`Framing`] of its body, chunked decoding,
//! and a response head serialised with the framing of its body.
//!
//! The smuggling defences live here (RFC 9112 §6): a `transfer-encoding` other than exactly
//! `chunked`, or on HTTP/1.0, is refused; `content-length` must be digits only, and several
//! must agree (they are folded into one); with both, chunked wins, `content-length` is dropped
//! and the connection closes after the response. httparse refuses obs-fold, a space before the
//! colon, and NUL or CR in a value.

use std::mem::MaybeUninit;

use bytes::{Buf, Bytes, BytesMut};
use http::header::{HeaderName, HeaderValue, CONNECTION, CONTENT_LENGTH, TRANSFER_ENCODING};
use http::{HeaderMap, Method, Request, StatusCode, Version};
use mesh_core::h1::{
    content_length, field_offsets, has_token, offset_in, ChunkedDecoder, FieldAt, Step,
};

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

/// What one pass over the raw header lines found.
#[derive(Default)]
struct Scan {
    content_length: Option<u64>,
    chunked: bool,
    te: bool,
    close: bool,
    keep_alive: bool,
    expect_continue: bool,
}

impl Scan {
    /// Checks one raw header line (the smuggling defences) and notes what framing and
    /// persistence need.
    fn field(&mut self, name: &str, value: &[u8]) -> Result<(), HeadError> {
        let name = name.as_bytes();
        if name.eq_ignore_ascii_case(b"content-length") {
            let n = content_length(value).ok_or(HeadError::Malformed)?;
            match self.content_length {
                Some(m) if m != n => return Err(HeadError::Malformed),
                _ => self.content_length = Some(n),
            }
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            // Only exactly one `chunked` coding, in total, is accepted.
            for t in value.split(|b| *b == b',') {
                if self.chunked || !t.trim_ascii().eq_ignore_ascii_case(b"chunked") {
                    return Err(HeadError::Malformed);
                }
                self.chunked = true;
            }
            self.te = true;
        } else if name.eq_ignore_ascii_case(b"connection") {
            self.close |= has_token(value, b"close");
            self.keep_alive |= has_token(value, b"keep-alive");
        } else if name.eq_ignore_ascii_case(b"expect") {
            self.expect_continue |= value.eq_ignore_ascii_case(b"100-continue");
        }
        Ok(())
    }
}

/// Parses a request head from the start of `buf`: `Ok(None)` when it is not complete yet.
/// A complete head is taken off the buffer; its URI and header values share its bytes (no
/// copy).
pub fn parse_head(buf: &mut BytesMut) -> Result<Option<Head>, HeadError> {
    let mut at: [FieldAt; MAX_HEADERS] = [(0, 0, 0, 0); MAX_HEADERS];
    let mut scan = Scan::default();
    let (len, n, method, version, path) = {
        // Uninitialised: httparse writes only the lines it finds.
        let mut slots = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
        let mut req = httparse::Request::new(&mut []);
        let len = match httparse::ParserConfig::default()
            .parse_request_with_uninit_headers(&mut req, buf, &mut slots)
        {
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
        if len > usize::from(u16::MAX) {
            return Err(HeadError::TooLarge);
        }
        // Offsets into the head, from the addresses httparse's slices point at.
        for f in req.headers.iter() {
            scan.field(f.name, f.value)?;
        }
        field_offsets(buf, req.headers, &mut at);
        let p = usize::from(offset_in(buf, path.as_bytes()));
        (len, req.headers.len(), method, version, p..p + path.len())
    };
    if scan.te && (version == Version::HTTP_10 || !scan.chunked) {
        return Err(HeadError::Malformed);
    }
    let head = buf.split_to(len).freeze();
    let uri = http::Uri::from_maybe_shared(head.slice(path)).map_err(|_| HeadError::Malformed)?;
    // Room for the headers the request path adds (x-request-id, x-forwarded-for) without
    // growing the map.
    let mut headers = HeaderMap::with_capacity(n + 2);
    let mut length_kept = false;
    for &(ns, ne, vs, ve) in &at[..n] {
        let name = HeaderName::from_bytes(&head[usize::from(ns)..usize::from(ne)])
            .map_err(|_| HeadError::Malformed)?;
        if name == CONTENT_LENGTH {
            // Equal lengths are folded into one; with chunked, none travels on.
            if length_kept || scan.chunked {
                continue;
            }
            length_kept = true;
        }
        let value = HeaderValue::from_maybe_shared(head.slice(usize::from(vs)..usize::from(ve)))
            .map_err(|_| HeadError::Malformed)?;
        headers.append(name, value);
    }
    let mut keep_alive = match version {
        Version::HTTP_11 => !scan.close,
        _ => !scan.close && scan.keep_alive,
    };
    let framing = if scan.chunked {
        if scan.content_length.is_some() {
            // Both framings: chunked wins, the length never travels on, and the connection
            // closes after this exchange (RFC 9112 §6.3).
            keep_alive = false;
        }
        Framing::Chunked
    } else {
        Framing::Length(scan.content_length.unwrap_or(0))
    };
    let mut request = Request::new(());
    *request.method_mut() = method;
    *request.uri_mut() = uri;
    *request.version_mut() = version;
    *request.headers_mut() = headers;
    Ok(Some(Head {
        request,
        framing,
        keep_alive,
        expect_continue: version == Version::HTTP_11 && scan.expect_continue,
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

/// Decodes a request body from the connection's buffer (chunked framing by
/// [`mesh_core::h1::ChunkedDecoder`], shared with the upstream client).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decoder {
    /// This many bytes of a length-delimited body are still to come.
    Length(u64),
    /// A chunked body, somewhere in its framing.
    Chunked(ChunkedDecoder),
    /// The body ended.
    Done,
}

impl Decoder {
    /// The decoder for a body framed so.
    pub fn new(framing: Framing) -> Decoder {
        match framing {
            Framing::Length(0) => Decoder::Done,
            Framing::Length(n) => Decoder::Length(n),
            Framing::Chunked => Decoder::Chunked(ChunkedDecoder::default()),
        }
    }

    /// Whether the body has ended.
    pub fn is_done(&self) -> bool {
        *self == Decoder::Done
    }

    /// Decodes the next piece from `buf`, taking what it uses.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Decoded, ChunkError> {
        loop {
            match self {
                Decoder::Done => return Ok(Decoded::End),
                Decoder::Length(n) => {
                    if buf.is_empty() {
                        return Ok(Decoded::NeedMore);
                    }
                    let take = (buf.len() as u64).min(*n) as usize;
                    let left = *n - take as u64;
                    *self = if left == 0 {
                        Decoder::Done
                    } else {
                        Decoder::Length(left)
                    };
                    return Ok(Decoded::Data(buf.split_to(take).freeze()));
                }
                Decoder::Chunked(chunks) => match chunks.step(buf).map_err(|_| ChunkError)? {
                    Step::Partial => return Ok(Decoded::NeedMore),
                    Step::Skip(n) => buf.advance(n),
                    Step::Data(n) => return Ok(Decoded::Data(buf.split_to(n).freeze())),
                    Step::End { used, trailers } => {
                        buf.advance(used);
                        *self = Decoder::Done;
                        return Ok(trailers.map_or(Decoded::End, Decoded::Trailers));
                    }
                },
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
    // One allocation for a typical head (the buffer is released while the connection idles).
    out.reserve(1024);
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
    let mut has_date = false;
    let mut length = None;
    let mut chunked = false;
    for (name, value) in &parts.headers {
        if name == CONTENT_LENGTH {
            if length.is_some() {
                continue;
            }
            length = content_length(value.as_bytes());
        } else if name == TRANSFER_ENCODING {
            if no_body || version == Version::HTTP_10 {
                continue;
            }
            chunked = has_token(value.as_bytes(), b"chunked");
        } else if name == CONNECTION {
            has_connection = true;
        } else if name == http::header::DATE {
            has_date = true;
        }
        mesh_core::h1::push_field(out, name.as_str().as_bytes(), value.as_bytes());
    }
    let encoding = if no_body {
        Encoding::None
    } else if chunked {
        Encoding::Chunked
    } else if let Some(n) = length {
        Encoding::Length(n)
    } else if let Some(n) = exact {
        out.extend_from_slice(b"content-length: ");
        out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
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
    if !has_date {
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
