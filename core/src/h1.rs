//! HTTP/1.1 message framing (RFC 9112 §6), free of I/O, shared by meshd's upstream client and
//! meshload's fast client: how long a response body is, whether the connection stays open
//! after it, and a chunked-body decoder that works on whatever bytes have arrived.
//!
//! Parsing itself is httparse's (the parser inside hyper): response heads, chunk-size lines,
//! trailer sections. What is here is only the rules around it.

use http::header::{HeaderName, HeaderValue};
use http::HeaderMap;

/// How a message body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// No body (HEAD, 1xx, 204, 304).
    None,
    /// Exactly this many bytes.
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
    /// Until the peer closes the connection (the connection cannot be reused).
    UntilClose,
}

/// Why a message's framing cannot be trusted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FramingError {
    /// A Content-Length that is not a decimal number, or several that differ.
    #[error("invalid content-length")]
    ContentLength,
    /// A chunk-size line, chunk end or trailer section that breaks RFC 9112 §7.1.
    #[error("invalid chunked encoding")]
    Chunked,
}

/// Where a header line's name and value lie in the buffer httparse parsed them from:
/// `(name start, name end, value start, value end)`. A head is at most 64 KiB, so `u16` holds
/// them. With these a caller takes the head off its buffer (`split_to(..).freeze()`) and slices
/// names and values from it without copying.
pub type FieldAt = (u16, u16, u16, u16);

/// The offset of `part`, a slice httparse returned, in `buf`, the bytes it parsed (`buf` holds
/// `part` and is at most `u16::MAX` bytes long).
pub fn offset_in(buf: &[u8], part: &[u8]) -> u16 {
    (part.as_ptr() as usize - buf.as_ptr() as usize) as u16
}

/// Records in `at` where each of `fields` (parsed from `buf`) lies in `buf`.
pub fn field_offsets(buf: &[u8], fields: &[httparse::Header<'_>], at: &mut [FieldAt]) {
    for (slot, f) in at.iter_mut().zip(fields) {
        let name = offset_in(buf, f.name.as_bytes());
        let value = offset_in(buf, f.value);
        *slot = (
            name,
            name + f.name.len() as u16,
            value,
            value + f.value.len() as u16,
        );
    }
}

/// Appends one header line, `name: value` and CRLF (the name and value as they are: a
/// `HeaderName`/`HeaderValue` holds no CR or LF).
pub fn push_field(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

/// Whether the comma-separated header `value` holds `token` (case-insensitive).
pub fn has_token(value: &[u8], token: &[u8]) -> bool {
    value
        .split(|&b| b == b',')
        .any(|t| t.trim_ascii().eq_ignore_ascii_case(token))
}

/// A Content-Length value: ASCII digits (optional surrounding whitespace), no sign, no
/// overflow; `None` otherwise.
pub fn content_length(v: &[u8]) -> Option<u64> {
    let v = v.trim_ascii();
    if v.is_empty() {
        return None;
    }
    v.iter().try_fold(0u64, |n, &b| {
        if b.is_ascii_digit() {
            n.checked_mul(10)?.checked_add(u64::from(b - b'0'))
        } else {
            None
        }
    })
}

/// A response's framing and whether the connection must close after it (RFC 9112 §6.3 and
/// §9.3): no body for a HEAD request, 1xx, 204 and 304; a final `chunked` transfer coding (not
/// for HTTP/1.0); else Content-Length (several must agree); else until close. HTTP/1.0 closes
/// unless `Connection: keep-alive`; `Connection: close` always closes. Transfer-Encoding wins
/// over Content-Length (a caller that refuses messages carrying both checks that itself).
pub fn response_framing(
    resp: &httparse::Response<'_, '_>,
    head_request: bool,
) -> Result<(Framing, bool), FramingError> {
    let status = resp.code.unwrap_or(0);
    let http10 = resp.version == Some(0);
    let mut length: Option<u64> = None;
    let mut te: Option<&[u8]> = None;
    let mut close = false;
    let mut keep_alive = false;
    for h in resp.headers.iter() {
        // Names are compared only when their length matches one of the three needed.
        let name = h.name.as_bytes();
        match name.len() {
            14 if name.eq_ignore_ascii_case(b"content-length") => {
                let v = content_length(h.value).ok_or(FramingError::ContentLength)?;
                if length.is_some_and(|l| l != v) {
                    return Err(FramingError::ContentLength);
                }
                length = Some(v);
            }
            17 if name.eq_ignore_ascii_case(b"transfer-encoding") => te = Some(h.value),
            10 if name.eq_ignore_ascii_case(b"connection") => {
                close |= has_token(h.value, b"close");
                keep_alive |= has_token(h.value, b"keep-alive");
            }
            _ => {}
        }
    }
    let close = close || (http10 && !keep_alive);
    if head_request || (100..200).contains(&status) || status == 204 || status == 304 {
        return Ok((Framing::None, close));
    }
    if let Some(te) = te {
        let last = te.rsplit(|&b| b == b',').next().unwrap_or(b"").trim_ascii();
        return Ok(if !http10 && last.eq_ignore_ascii_case(b"chunked") {
            (Framing::Chunked, close)
        } else {
            (Framing::UntilClose, true)
        });
    }
    Ok(match length {
        Some(n) => (Framing::Length(n), close),
        None => (Framing::UntilClose, true),
    })
}

/// The largest chunk-size line or trailer section accepted (Envoy's header limit).
pub const MAX_CHUNK_FRAMING: usize = 60 * 1024;

/// What [`ChunkedDecoder::step`] found at the front of the buffer.
#[derive(Debug, PartialEq, Eq)]
pub enum Step {
    /// The next bytes are incomplete framing: read more and call again.
    Partial,
    /// Drop this many framing bytes from the front of the buffer, then call again.
    Skip(usize),
    /// The next this-many bytes of the buffer are body data (the caller takes all of them).
    Data(usize),
    /// The body ended with these `used` bytes (the last chunk's trailer section, parsed into
    /// `trailers` when not empty).
    End {
        /// Bytes to drop from the front of the buffer.
        used: usize,
        /// The trailer fields, if any.
        trailers: Option<HeaderMap>,
    },
}

/// Decodes a chunked body incrementally: feed it the unconsumed bytes each time, act on the
/// [`Step`]. Never reads past the body's end, so bytes after it stay in the caller's buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ChunkedDecoder {
    state: ChunkState,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum ChunkState {
    /// A chunk-size line is next.
    #[default]
    Size,
    /// This many data bytes of the current chunk are left.
    Data(u64),
    /// The CRLF after a chunk's data is next.
    DataEnd,
    /// The trailer section (after the last chunk) is next.
    Trailers,
    /// The body ended.
    Done,
}

impl ChunkedDecoder {
    /// Whether the last chunk and trailer section were read.
    pub fn is_done(&self) -> bool {
        self.state == ChunkState::Done
    }

    /// The next step for the unconsumed bytes `buf`.
    pub fn step(&mut self, buf: &[u8]) -> Result<Step, FramingError> {
        match self.state {
            ChunkState::Size => match httparse::parse_chunk_size(buf) {
                Ok(httparse::Status::Complete((used, 0))) => {
                    self.state = ChunkState::Trailers;
                    Ok(Step::Skip(used))
                }
                Ok(httparse::Status::Complete((used, size))) => {
                    self.state = ChunkState::Data(size);
                    Ok(Step::Skip(used))
                }
                Ok(httparse::Status::Partial) if buf.len() < MAX_CHUNK_FRAMING => Ok(Step::Partial),
                _ => Err(FramingError::Chunked),
            },
            ChunkState::Data(left) => {
                if buf.is_empty() {
                    return Ok(Step::Partial);
                }
                let n = (buf.len() as u64).min(left);
                self.state = if n == left {
                    ChunkState::DataEnd
                } else {
                    ChunkState::Data(left - n)
                };
                Ok(Step::Data(n as usize))
            }
            ChunkState::DataEnd => match buf {
                [b'\r', b'\n', ..] => {
                    self.state = ChunkState::Size;
                    Ok(Step::Skip(2))
                }
                [] | [b'\r'] => Ok(Step::Partial),
                _ => Err(FramingError::Chunked),
            },
            ChunkState::Trailers => {
                if let [b'\r', b'\n', ..] = buf {
                    self.state = ChunkState::Done;
                    return Ok(Step::End {
                        used: 2,
                        trailers: None,
                    });
                }
                let mut headers = [httparse::EMPTY_HEADER; 100];
                match httparse::parse_headers(buf, &mut headers) {
                    Ok(httparse::Status::Complete((used, fields))) => {
                        let mut trailers = HeaderMap::with_capacity(fields.len());
                        for f in fields {
                            let name = HeaderName::from_bytes(f.name.as_bytes())
                                .map_err(|_| FramingError::Chunked)?;
                            let value = HeaderValue::from_bytes(f.value)
                                .map_err(|_| FramingError::Chunked)?;
                            trailers.append(name, value);
                        }
                        self.state = ChunkState::Done;
                        Ok(Step::End {
                            used,
                            trailers: Some(trailers),
                        })
                    }
                    Ok(httparse::Status::Partial) if buf.len() < MAX_CHUNK_FRAMING => {
                        Ok(Step::Partial)
                    }
                    _ => Err(FramingError::Chunked),
                }
            }
            ChunkState::Done => Ok(Step::End {
                used: 0,
                trailers: None,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(raw: &[u8], head_request: bool) -> Result<(Framing, bool), FramingError> {
        let mut headers = [httparse::EMPTY_HEADER; 16];
        let mut resp = httparse::Response::new(&mut headers);
        assert!(resp.parse(raw).is_ok_and(|s| s.is_complete()));
        response_framing(&resp, head_request)
    }

    #[test]
    fn framing_follows_rfc_9112() {
        let r = |s: &str| parse(s.as_bytes(), false);
        assert_eq!(
            r("HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\n"),
            Ok((Framing::Length(5), false))
        );
        assert_eq!(
            r("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\nContent-Length: 9\r\n\r\n"),
            Ok((Framing::Chunked, false))
        );
        assert_eq!(
            r("HTTP/1.1 200 OK\r\n\r\n"),
            Ok((Framing::UntilClose, true))
        );
        assert_eq!(
            r("HTTP/1.1 204 No Content\r\ncontent-length: 7\r\n\r\n"),
            Ok((Framing::None, false))
        );
        assert_eq!(
            r("HTTP/1.1 200 OK\r\nConnection: Keep-Alive, Close\r\ncontent-length: 0\r\n\r\n"),
            Ok((Framing::Length(0), true))
        );
        assert_eq!(
            r("HTTP/1.0 200 OK\r\ncontent-length: 1\r\n\r\n"),
            Ok((Framing::Length(1), true))
        );
        assert_eq!(
            r("HTTP/1.0 200 OK\r\nconnection: keep-alive\r\ncontent-length: 1\r\n\r\n"),
            Ok((Framing::Length(1), false))
        );
        assert_eq!(
            parse(b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\n", true),
            Ok((Framing::None, false))
        );
        assert!(r("HTTP/1.1 200 OK\r\ncontent-length: 5\r\ncontent-length: 6\r\n\r\n").is_err());
        assert!(r("HTTP/1.1 200 OK\r\ncontent-length: -5\r\n\r\n").is_err());
        assert!(r("HTTP/1.1 200 OK\r\ncontent-length: 99999999999999999999\r\n\r\n").is_err());
        assert_eq!(
            r("HTTP/1.1 200 OK\r\nContent-Length:  12 \r\n\r\n"),
            Ok((Framing::Length(12), false))
        );
    }

    /// Decodes `wire` fed `piece` bytes at a time; returns the data and the trailers.
    fn decode(
        wire: &[u8],
        piece: usize,
    ) -> Result<(Vec<u8>, Option<HeaderMap>, usize), FramingError> {
        let mut d = ChunkedDecoder::default();
        let (mut avail, mut pos, mut data) = (0usize, 0usize, Vec::new());
        for _ in 0..10_000 {
            match d.step(&wire[pos..avail])? {
                Step::Partial => {
                    assert!(avail < wire.len(), "needs bytes the wire does not have");
                    avail = (avail + piece).min(wire.len());
                }
                Step::Skip(n) => pos += n,
                Step::Data(n) => {
                    data.extend_from_slice(&wire[pos..pos + n]);
                    pos += n;
                }
                Step::End { used, trailers } => return Ok((data, trailers, pos + used)),
            }
        }
        panic!("decoder did not finish");
    }

    #[test]
    fn chunked_bodies_decode_in_any_pieces_and_stop_at_their_end() {
        let wire = b"5\r\nhello\r\n1;ext=1\r\n \r\n0\r\n\r\nNEXT";
        for piece in [1, 2, 3, 7, 100] {
            let (data, trailers, end) = decode(wire, piece).expect("valid");
            assert_eq!(data, b"hello ");
            assert!(trailers.is_none());
            assert_eq!(&wire[end..], b"NEXT", "piece {piece}");
        }
        let wire = b"3\r\nabc\r\n0\r\nx-sum: 7\r\n\r\n";
        for piece in [1, 5, 100] {
            let (data, trailers, end) = decode(wire, piece).expect("valid");
            assert_eq!(data, b"abc");
            let t = trailers.expect("trailers");
            assert_eq!(t.get("x-sum").map(|v| v.as_bytes()), Some(&b"7"[..]));
            assert_eq!(end, wire.len());
        }
    }

    #[test]
    fn broken_chunked_framing_is_an_error() {
        for wire in [
            &b"zz\r\nhello\r\n0\r\n\r\n"[..],
            b"5\r\nhelloXX0\r\n\r\n",
            b"ffffffffffffffffff\r\n",
            b"0\r\nbad header\r\n\r\n",
        ] {
            assert_eq!(
                decode(wire, 4).map(|_| ()),
                Err(FramingError::Chunked),
                "{wire:?}"
            );
        }
    }
}
