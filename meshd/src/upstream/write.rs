//! Writing a request upstream: the head as HTTP/1.1 bytes, then the body framed as its head
//! says (RFC 9112 §6).

use std::io::Write as _;

use bytes::Bytes;
use http::header::{CONTENT_LENGTH, TRANSFER_ENCODING};
use http_body::Body;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use tokio::io::{AsyncWrite, AsyncWriteExt};

use super::Error;
use crate::body::BoxError;

/// How the request body goes on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum BodyFraming {
    /// No body.
    None,
    /// As many bytes as Content-Length says, as they come.
    Length,
    /// Chunked transfer coding.
    Chunked,
}

/// Appends the request head to `out` and says how the body follows it. The request line is
/// always HTTP/1.1 (as Envoy sends upstream), the target origin-form. A request with
/// Transfer-Encoding is sent chunked (its Content-Length, if any, is dropped: RFC 9112 §6.3);
/// one with Content-Length as is; a body without either gets Content-Length when its size is
/// known, else chunked.
pub(super) fn head<B: Body>(
    parts: &http::request::Parts,
    body: &B,
    out: &mut Vec<u8>,
) -> BodyFraming {
    out.extend_from_slice(parts.method.as_str().as_bytes());
    out.push(b' ');
    let target = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    out.extend_from_slice(if target.is_empty() { "/" } else { target }.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\n");
    let (mut te, mut cl) = (false, false);
    for k in parts.headers.keys() {
        te |= k == TRANSFER_ENCODING;
        cl |= k == CONTENT_LENGTH;
    }
    for (name, value) in &parts.headers {
        if te && name == CONTENT_LENGTH {
            continue;
        }
        mesh_core::h1::push_field(out, name.as_str().as_bytes(), value.as_bytes());
    }
    let framing = if te {
        BodyFraming::Chunked
    } else if body.is_end_stream() {
        BodyFraming::None
    } else if cl {
        BodyFraming::Length
    } else if let Some(n) = body.size_hint().exact() {
        let _ = write!(out, "content-length: {n}\r\n");
        BodyFraming::Length
    } else {
        out.extend_from_slice(b"transfer-encoding: chunked\r\n");
        BodyFraming::Chunked
    };
    out.extend_from_slice(b"\r\n");
    framing
}

/// Writes all of `bytes`.
pub(super) async fn all<W: AsyncWrite + Unpin>(w: &mut W, bytes: &[u8]) -> std::io::Result<()> {
    w.write_all(bytes).await
}

/// A request body on its way upstream, framed as its head said. It is polled by the attempt
/// while the response head is awaited, then (when the upstream answered before the body
/// ended, e.g. an echo that streams back what it reads) by the response body's reader, so
/// the two directions go on together without a task of their own.
pub(crate) struct BodySender<B> {
    body: B,
    chunked: bool,
    /// Bytes taken from the body and not written yet, from `pos`.
    out: Bytes,
    pos: usize,
    /// The body ended; `out` holds its last bytes.
    ended: bool,
}

impl<B> BodySender<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    pub(super) fn new(body: B, framing: BodyFraming) -> Self {
        BodySender {
            body,
            chunked: framing == BodyFraming::Chunked,
            out: Bytes::new(),
            pos: 0,
            ended: false,
        }
    }

    /// Writes what the body has to `w`; ready when all of it was written.
    pub(super) fn poll_send<W: AsyncWrite + Unpin>(
        &mut self,
        w: &mut W,
        cx: &mut Context<'_>,
    ) -> Poll<Result<(), Error>> {
        loop {
            while self.pos < self.out.len() {
                let n = ready!(Pin::new(&mut *w).poll_write(cx, &self.out[self.pos..]))?;
                if n == 0 {
                    return Poll::Ready(Err(Error::Closed));
                }
                self.pos += n;
            }
            if self.ended {
                return Poll::Ready(Ok(()));
            }
            let next = match ready!(Pin::new(&mut self.body).poll_frame(cx)) {
                Some(Err(e)) => return Poll::Ready(Err(Error::Body(e.into()))),
                None => {
                    self.ended = true;
                    if self.chunked {
                        Bytes::from_static(b"0\r\n\r\n")
                    } else {
                        Bytes::new()
                    }
                }
                Some(Ok(frame)) => match frame.into_data() {
                    Ok(data) if data.is_empty() => Bytes::new(),
                    Ok(data) if self.chunked => {
                        let mut chunk = Vec::with_capacity(data.len() + 20);
                        let _ = write!(chunk, "{:x}\r\n", data.len());
                        chunk.extend_from_slice(&data);
                        chunk.extend_from_slice(b"\r\n");
                        chunk.into()
                    }
                    Ok(data) => data,
                    Err(frame) => match (self.chunked, frame.into_trailers()) {
                        (true, Ok(trailers)) => {
                            self.ended = true;
                            let mut last = b"0\r\n".to_vec();
                            for (name, value) in &trailers {
                                mesh_core::h1::push_field(
                                    &mut last,
                                    name.as_str().as_bytes(),
                                    value.as_bytes(),
                                );
                            }
                            last.extend_from_slice(b"\r\n");
                            last.into()
                        }
                        _ => Bytes::new(),
                    },
                },
            };
            self.out = next;
            self.pos = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;
    use std::convert::Infallible;
    use std::pin::Pin;
    use std::task::{Context, Poll};

    use http_body::{Frame, SizeHint};
    use http_body_util::{Empty, Full};

    use super::*;

    /// A body of given frames whose size is unknown (as a client's chunked body).
    struct Frames(VecDeque<Frame<Bytes>>);

    impl Body for Frames {
        type Data = Bytes;
        type Error = Infallible;
        fn poll_frame(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
            Poll::Ready(self.0.pop_front().map(Ok))
        }
        fn size_hint(&self) -> SizeHint {
            SizeHint::new()
        }
    }

    fn parts(headers: &[(&str, &str)]) -> http::request::Parts {
        let mut req = http::Request::post("http://ignored/p?q=1");
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        req.body(()).expect("request").into_parts().0
    }

    #[test]
    fn heads_are_origin_form_http11_with_the_framing_the_body_needs() {
        let mut out = Vec::new();
        let f = head(&parts(&[("host", "a")]), &Empty::<Bytes>::new(), &mut out);
        assert_eq!(f, BodyFraming::None);
        assert_eq!(out, b"POST /p?q=1 HTTP/1.1\r\nhost: a\r\n\r\n");

        out.clear();
        let f = head(&parts(&[]), &Full::new(Bytes::from("abc")), &mut out);
        assert_eq!(f, BodyFraming::Length);
        assert_eq!(out, b"POST /p?q=1 HTTP/1.1\r\ncontent-length: 3\r\n\r\n");

        out.clear();
        let f = head(
            &parts(&[]),
            &Frames(VecDeque::from([Frame::data(Bytes::from("x"))])),
            &mut out,
        );
        assert_eq!(f, BodyFraming::Chunked);
        assert!(out.ends_with(b"transfer-encoding: chunked\r\n\r\n"));

        out.clear();
        let h = parts(&[("content-length", "3"), ("transfer-encoding", "chunked")]);
        let f = head(&h, &Full::new(Bytes::from("abc")), &mut out);
        assert_eq!(f, BodyFraming::Chunked);
        assert_eq!(
            out, b"POST /p?q=1 HTTP/1.1\r\ntransfer-encoding: chunked\r\n\r\n",
            "content-length never goes with transfer-encoding"
        );
    }

    async fn send(out: &mut Vec<u8>, body: Frames) {
        let mut s = BodySender::new(body, BodyFraming::Chunked);
        std::future::poll_fn(|cx| s.poll_send(out, cx))
            .await
            .expect("written");
    }

    #[tokio::test]
    async fn chunked_bodies_carry_their_trailers() {
        let mut trailers = http::HeaderMap::new();
        trailers.insert("x-sum", "7".parse().expect("value"));
        let b = Frames(VecDeque::from([
            Frame::data(Bytes::from("hello")),
            Frame::data(Bytes::new()),
            Frame::trailers(trailers),
        ]));
        let mut out = Vec::new();
        send(&mut out, b).await;
        assert_eq!(out, b"5\r\nhello\r\n0\r\nx-sum: 7\r\n\r\n");

        let b = Frames(VecDeque::from([Frame::data(Bytes::from("ab"))]));
        out.clear();
        send(&mut out, b).await;
        assert_eq!(out, b"2\r\nab\r\n0\r\n\r\n");
    }
}
