//! Reading a response from upstream: the head (httparse, into `http` types), then the body
//! frame by frame as its framing says (`mesh_core::h1`), from the connection's buffer.

use std::mem::MaybeUninit;
use std::task::{ready, Context, Poll};

use bytes::{Buf, Bytes, BytesMut};
use http::header::{HeaderName, HeaderValue};
use http::{HeaderMap, Response, StatusCode, Version};
use http_body::{Frame, SizeHint};
use mesh_core::h1::{field_offsets, response_framing, ChunkedDecoder, FieldAt, Framing, Step};
use tokio::io::{AsyncRead, AsyncReadExt};

use super::write::BodySender;
use super::{Error, Upstream, MAX_RESPONSE_HEADERS};
use crate::body::RequestBody;

/// Response header fields accepted (hyper's and Envoy's default limit is 100).
const MAX_HEADERS: usize = 100;
/// Bytes asked of the socket per read.
const READ_CHUNK: usize = 16 * 1024;

/// Makes room for a read: at least a little, growing by [`READ_CHUNK`].
fn room(buf: &mut BytesMut) {
    if buf.capacity() - buf.len() < 1024 {
        buf.reserve(READ_CHUNK);
    }
}

/// Reads more bytes into `buf`; `Ok(0)` is end of file.
pub(super) fn poll_fill<R: AsyncRead + Unpin>(
    io: &mut R,
    buf: &mut BytesMut,
    cx: &mut Context<'_>,
) -> Poll<std::io::Result<usize>> {
    room(buf);
    tokio_util::io::poll_read_buf(std::pin::Pin::new(io), cx, buf)
}

/// A parsed head: an interim response to skip (its length), or the final one (taken from the
/// buffer) with whether the connection may carry another request after it.
enum Parsed {
    Interim(usize),
    Final(Box<Response<Reader>>, bool),
}

/// Parses the head at the front of `buf`; `None` when it is not complete yet. A final head is
/// taken off the buffer, and its header values share its bytes (no copy).
fn parse(buf: &mut BytesMut, head_request: bool) -> Result<Option<Parsed>, Error> {
    let mut at: [FieldAt; MAX_HEADERS] = [(0, 0, 0, 0); MAX_HEADERS];
    let (len, n, code, http10, framing, close) = {
        // Uninitialised: httparse writes only the fields it finds.
        let mut fields = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
        let mut resp = httparse::Response::new(&mut []);
        let len = match httparse::ParserConfig::default().parse_response_with_uninit_headers(
            &mut resp,
            buf,
            &mut fields,
        ) {
            Ok(httparse::Status::Complete(len)) => len,
            Ok(httparse::Status::Partial) => return Ok(None),
            Err(httparse::Error::TooManyHeaders) => {
                return Err(Error::Protocol("too many response headers"))
            }
            Err(_) => return Err(Error::Protocol("malformed response head")),
        };
        let code = resp.code.unwrap_or(0);
        if (100..200).contains(&code) && code != 101 {
            return Ok(Some(Parsed::Interim(len)));
        }
        if len > MAX_RESPONSE_HEADERS {
            return Err(Error::Protocol("response headers too large"));
        }
        let (framing, close) = response_framing(&resp, head_request)
            .map_err(|_| Error::Protocol("invalid response framing"))?;
        // Offsets into the head, from the addresses httparse's slices point at.
        field_offsets(buf, resp.headers, &mut at);
        let n = resp.headers.len();
        (len, n, code, resp.version == Some(0), framing, close)
    };
    let head = buf.split_to(len).freeze();
    // Room for the headers meshd adds (x-envoy-upstream-service-time) without growing.
    let mut headers = HeaderMap::with_capacity(n + 2);
    for &(ns, ne, vs, ve) in &at[..n] {
        let name = HeaderName::from_bytes(&head[usize::from(ns)..usize::from(ne)])
            .map_err(|_| Error::Protocol("invalid response header name"))?;
        let value = HeaderValue::from_maybe_shared(head.slice(usize::from(vs)..usize::from(ve)))
            .map_err(|_| Error::Protocol("invalid response header value"))?;
        headers.append(name, value);
    }
    let mut r = Response::new(Reader {
        framing,
        chunks: ChunkedDecoder::default(),
        sending: None,
    });
    *r.status_mut() = StatusCode::from_u16(code).map_err(|_| Error::Protocol("invalid status"))?;
    *r.version_mut() = if http10 {
        Version::HTTP_10
    } else {
        Version::HTTP_11
    };
    *r.headers_mut() = headers;
    let reusable = !close && framing != Framing::UntilClose && code != 101;
    Ok(Some(Parsed::Final(Box::new(r), reusable)))
}

/// Reads until the final response head is complete (interim 1xx responses are skipped) and
/// returns it, with whether the connection may carry another request after its body.
pub(super) async fn head<R: AsyncRead + Unpin>(
    rd: &mut R,
    buf: &mut BytesMut,
    head_request: bool,
) -> Result<(Response<Reader>, bool), Error> {
    loop {
        if !buf.is_empty() {
            match parse(buf, head_request)? {
                Some(Parsed::Interim(len)) => {
                    buf.advance(len);
                    continue;
                }
                Some(Parsed::Final(resp, reusable)) => return Ok((*resp, reusable)),
                None if buf.len() >= MAX_RESPONSE_HEADERS => {
                    return Err(Error::Protocol("response headers too large"))
                }
                None => {}
            }
        }
        room(buf);
        if rd.read_buf(buf).await? == 0 {
            return Err(Error::Closed);
        }
    }
}

/// A response body's framing state; its bytes come from the connection it was read on
/// ([`Reader::poll_frame`]).
pub struct Reader {
    framing: Framing,
    chunks: ChunkedDecoder,
    /// The rest of a request body the upstream answered before it ended, and whether the
    /// response lets the connection be reused once it is all sent.
    sending: Option<Box<(BodySender<RequestBody>, bool)>>,
}

impl Reader {
    /// Sends the rest of the request body while the response is read.
    pub(super) fn keep_sending(&mut self, sender: BodySender<RequestBody>, reusable: bool) {
        self.sending = Some(Box::new((sender, reusable)));
    }

    /// Whether the body has ended (or never had bytes).
    pub fn is_end_stream(&self) -> bool {
        matches!(self.framing, Framing::None | Framing::Length(0))
    }

    /// What is known of the body's length.
    pub fn size_hint(&self) -> SizeHint {
        match self.framing {
            Framing::None => SizeHint::with_exact(0),
            Framing::Length(n) => SizeHint::with_exact(n),
            _ => SizeHint::new(),
        }
    }

    /// The next body frame, read from `conn` (the connection the head came from). Data frames
    /// share the connection's buffer (no copy). An error leaves the connection unusable.
    pub fn poll_frame(
        &mut self,
        conn: &mut Upstream,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Error>>> {
        if let Some(sending) = self.sending.as_mut() {
            let (sender, reusable) = &mut **sending;
            match sender.poll_send(&mut conn.io, cx) {
                Poll::Ready(Ok(())) => {
                    conn.reusable = *reusable;
                    self.sending = None;
                }
                Poll::Ready(Err(e)) => {
                    tracing::debug!(error = %e, "sending the request body upstream failed while its response streamed");
                    self.sending = None;
                }
                Poll::Pending => {}
            }
        }
        let polled = self.poll_inner(conn, cx);
        match &polled {
            Poll::Ready(Some(Err(_))) => {
                conn.reusable = false;
                self.framing = Framing::None;
                self.sending = None;
            }
            // The response ended before the request: the rest of the body is never sent.
            Poll::Ready(None) if self.sending.take().is_some() => conn.reusable = false,
            _ => {}
        }
        polled
    }

    fn poll_inner(
        &mut self,
        conn: &mut Upstream,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Error>>> {
        loop {
            let buf = &mut conn.buf;
            match self.framing {
                Framing::None | Framing::Length(0) => return Poll::Ready(None),
                Framing::Length(n) if !buf.is_empty() => {
                    let k = (buf.len() as u64).min(n);
                    self.framing = Framing::Length(n - k);
                    let data = buf.split_to(k as usize).freeze();
                    return Poll::Ready(Some(Ok(Frame::data(data))));
                }
                Framing::Length(_) => {}
                Framing::Chunked => match self.chunks.step(buf) {
                    Err(_) => return Poll::Ready(Some(Err(Error::Protocol("invalid chunk")))),
                    Ok(Step::Partial) => {}
                    Ok(Step::Skip(n)) => {
                        buf.advance(n);
                        continue;
                    }
                    Ok(Step::Data(n)) => {
                        return Poll::Ready(Some(Ok(Frame::data(buf.split_to(n).freeze()))))
                    }
                    Ok(Step::End { used, trailers }) => {
                        buf.advance(used);
                        self.framing = Framing::None;
                        return Poll::Ready(trailers.map(|t| Ok(Frame::trailers(t))));
                    }
                },
                Framing::UntilClose if !buf.is_empty() => {
                    return Poll::Ready(Some(Ok(Frame::data(buf.split().freeze()))));
                }
                Framing::UntilClose => {}
            }
            match ready!(conn.poll_fill(cx)) {
                Ok(0) if self.framing == Framing::UntilClose => {
                    self.framing = Framing::None;
                    conn.reusable = false;
                    return Poll::Ready(None);
                }
                Ok(0) => return Poll::Ready(Some(Err(Error::Closed))),
                Ok(_) => {}
                Err(e) => return Poll::Ready(Some(Err(Error::Io(e)))),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_bytes(raw: &[u8]) -> Result<Option<Parsed>, Error> {
        parse(&mut BytesMut::from(raw), false)
    }

    /// Status, framing, the bytes left after the head, reusable.
    fn final_head(raw: &[u8]) -> (u16, Framing, usize, bool) {
        let mut buf = BytesMut::from(raw);
        match parse(&mut buf, false) {
            Ok(Some(Parsed::Final(r, reusable))) => {
                (r.status().as_u16(), r.body().framing, buf.len(), reusable)
            }
            _ => panic!("not a final head: {raw:?}"),
        }
    }

    #[test]
    fn heads_parse_into_status_framing_and_reuse() {
        let raw = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nX-A: b c\r\n\r\nok";
        assert_eq!(final_head(raw), (200, Framing::Length(2), 2, true));
        let Ok(Some(Parsed::Final(r, _))) = parse_bytes(raw) else {
            panic!("final");
        };
        let fields: Vec<(&str, &[u8])> = r
            .headers()
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_bytes()))
            .collect();
        assert_eq!(fields, [("content-length", &b"2"[..]), ("x-a", b"b c")]);
        let raw = b"HTTP/1.1 503 Nope\r\nconnection: close\r\ncontent-length: 0\r\n\r\n";
        assert!(!final_head(raw).3);
        let raw = b"HTTP/1.1 200 OK\r\n\r\n";
        assert_eq!(final_head(raw).1, Framing::UntilClose);
        assert!(matches!(
            parse_bytes(b"HTTP/1.1 100 Continue\r\n\r\n"),
            Ok(Some(Parsed::Interim(25)))
        ));
        assert!(matches!(
            parse_bytes(b"HTTP/1.1 200 OK\r\ncontent-le"),
            Ok(None)
        ));
        for bad in [
            &b"HTTP/1.1 200 OK\r\ncontent-length: x\r\n\r\n"[..],
            b"HTTP/1.1 200 OK\r\nbad header\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nx: a\r\n b\r\n\r\n",
            b"garbage\r\n\r\n",
        ] {
            assert!(
                matches!(parse_bytes(bad), Err(Error::Protocol(_))),
                "{bad:?}"
            );
        }
    }
}
