//! The pure framing: heads, the smuggling defences, chunked decoding, response heads.

use super::*;

fn head(raw: &[u8]) -> Result<Option<Head>, HeadError> {
    parse_head(&mut BytesMut::from(raw))
}

fn ok(raw: &[u8]) -> Head {
    match head(raw) {
        Ok(Some(h)) => h,
        other => panic!("{:?}: {other:?}", String::from_utf8_lossy(raw)),
    }
}

#[test]
fn a_head_is_parsed_with_its_framing_and_length() {
    let raw = b"POST /a?b=1 HTTP/1.1\r\nhost: app\r\ncontent-length: 3\r\n\r\nabc";
    let h = ok(raw);
    assert_eq!(h.len, raw.len() - 3);
    assert_eq!(h.framing, Framing::Length(3));
    assert!(h.keep_alive);
    assert_eq!(
        h.request.uri().path_and_query().map(|p| p.as_str()),
        Some("/a?b=1")
    );
    assert_eq!(
        head(b"GET / HTTP/1.1\r\nhost: a\r\n")
            .ok()
            .map(|h| h.is_none()),
        Some(true)
    );
}

#[test]
fn keep_alive_follows_the_version_and_connection() {
    assert!(!ok(b"GET / HTTP/1.1\r\nconnection: Close\r\n\r\n").keep_alive);
    assert!(!ok(b"GET / HTTP/1.0\r\n\r\n").keep_alive);
    assert!(ok(b"GET / HTTP/1.0\r\nconnection: keep-alive\r\n\r\n").keep_alive);
    assert!(ok(b"GET / HTTP/1.1\r\nexpect: 100-continue\r\n\r\n").expect_continue);
    assert!(!ok(b"GET / HTTP/1.0\r\nexpect: 100-continue\r\n\r\n").expect_continue);
}

#[test]
fn both_framings_are_chunked_without_the_length_and_close() {
    let h = ok(b"POST / HTTP/1.1\r\ncontent-length: 5\r\ntransfer-encoding: chunked\r\n\r\n");
    assert_eq!(h.framing, Framing::Chunked);
    assert!(!h.keep_alive);
    assert!(!h.request.headers().contains_key(CONTENT_LENGTH));
}

#[test]
fn smuggling_shapes_are_malformed() {
    for raw in [
        &b"POST / HTTP/1.1\r\ncontent-length: 3\r\ncontent-length: 4\r\n\r\n"[..],
        b"POST / HTTP/1.1\r\ncontent-length: +3\r\n\r\n",
        b"POST / HTTP/1.1\r\ncontent-length: 3,3\r\n\r\n",
        b"POST / HTTP/1.1\r\ntransfer-encoding: gzip\r\n\r\n",
        b"POST / HTTP/1.1\r\ntransfer-encoding: chunked, chunked\r\n\r\n",
        b"POST / HTTP/1.1\r\ntransfer-encoding: chunked\r\ntransfer-encoding: chunked\r\n\r\n",
        b"POST / HTTP/1.0\r\ntransfer-encoding: chunked\r\n\r\n",
        b"GET / HTTP/1.1\r\nx: 1\r\n folded\r\n\r\n",
        b"GET / HTTP/1.1\r\nx : 1\r\n\r\n",
    ] {
        assert_eq!(
            head(raw).err(),
            Some(HeadError::Malformed),
            "{:?}",
            String::from_utf8_lossy(raw)
        );
    }
    let h = ok(b"POST / HTTP/1.1\r\ncontent-length: 3\r\ncontent-length: 3\r\n\r\n");
    assert_eq!(
        h.request.headers().get_all(CONTENT_LENGTH).iter().count(),
        1
    );
}

#[test]
fn too_many_headers_are_too_large_and_a_long_request_line_is_414() {
    let mut raw = String::from("GET / HTTP/1.1\r\n");
    for i in 0..=MAX_HEADERS {
        raw.push_str(&format!("x-{i}: 1\r\n"));
    }
    raw.push_str("\r\n");
    assert_eq!(head(raw.as_bytes()).err(), Some(HeadError::TooLarge));
    assert_eq!(too_large(b"GET /aaaa"), HeadError::UriTooLong);
    assert_eq!(too_large(b"GET / HTTP/1.1\r\nx: aaa"), HeadError::TooLarge);
}

fn decode_all(
    framing: Framing,
    input: &[u8],
) -> Result<(Vec<u8>, Option<HeaderMap>, bool), ChunkError> {
    let mut d = Decoder::new(framing);
    let mut buf = BytesMut::from(input);
    let (mut body, mut trailers) = (Vec::new(), None);
    loop {
        match d.decode(&mut buf)? {
            Decoded::Data(b) => body.extend_from_slice(&b),
            Decoded::Trailers(t) => trailers = Some(t),
            Decoded::End => return Ok((body, trailers, true)),
            Decoded::NeedMore => return Ok((body, trailers, false)),
        }
        if d.is_done() {
            return Ok((body, trailers, true));
        }
    }
}

#[test]
fn chunked_bodies_decode_with_extensions_and_trailers() {
    let (body, t, done) = decode_all(
        Framing::Chunked,
        b"3;ext=1\r\nabc\r\n2\r\nde\r\n0\r\nx-t: 1\r\n\r\nGET",
    )
    .unwrap();
    assert_eq!(body, b"abcde");
    assert!(done);
    assert_eq!(
        t.and_then(|t| t.get("x-t").cloned())
            .as_ref()
            .map(|v| v.as_bytes()),
        Some(&b"1"[..])
    );
    let (body, t, done) = decode_all(Framing::Chunked, b"1\r\na\r\n0\r\n\r\n").unwrap();
    assert_eq!(
        (body.as_slice(), t.is_none(), done),
        (&b"a"[..], true, true)
    );
    let (body, _, done) = decode_all(Framing::Chunked, b"5\r\nab").unwrap();
    assert_eq!((body.as_slice(), done), (&b"ab"[..], false));
}

#[test]
fn broken_chunks_are_errors() {
    assert!(decode_all(Framing::Chunked, b"zz\r\nabc\r\n").is_err());
    assert!(decode_all(Framing::Chunked, b"3\r\nabcXX0\r\n\r\n").is_err());
}

#[test]
fn a_length_body_stops_at_its_length() {
    let mut d = Decoder::new(Framing::Length(3));
    let mut buf = BytesMut::from(&b"abcGET"[..]);
    assert_eq!(
        d.decode(&mut buf),
        Ok(Decoded::Data(Bytes::from_static(b"abc")))
    );
    assert!(d.is_done());
    assert_eq!(&buf[..], b"GET");
}

fn response(status: u16, headers: &[(&str, &str)]) -> http::response::Parts {
    let mut r = http::Response::builder().status(status);
    for (k, v) in headers {
        r = r.header(*k, *v);
    }
    r.body(()).unwrap().into_parts().0
}

fn encode(
    parts: &http::response::Parts,
    method: Method,
    v: Version,
    exact: Option<u64>,
    close: bool,
) -> (String, Encoding) {
    let mut out = Vec::new();
    let e = encode_head(parts, (&method, v), exact, close, b"DATE", &mut out);
    (String::from_utf8(out).unwrap(), e)
}

#[test]
fn response_framing_follows_hyper() {
    let (h, e) = encode(
        &response(200, &[]),
        Method::GET,
        Version::HTTP_11,
        Some(2),
        false,
    );
    assert_eq!(
        h,
        "HTTP/1.1 200 OK\r\ncontent-length: 2\r\ndate: DATE\r\n\r\n"
    );
    assert_eq!(e, Encoding::Length(2));
    let (h, e) = encode(
        &response(200, &[]),
        Method::GET,
        Version::HTTP_11,
        None,
        true,
    );
    assert!(
        h.contains("transfer-encoding: chunked\r\n") && h.contains("connection: close\r\n"),
        "{h}"
    );
    assert_eq!(e, Encoding::Chunked);
    let (h, e) = encode(
        &response(200, &[]),
        Method::GET,
        Version::HTTP_10,
        None,
        false,
    );
    assert!(
        h.starts_with("HTTP/1.0 200 OK\r\n") && !h.contains("keep-alive"),
        "{h}"
    );
    assert_eq!(e, Encoding::Close);
    let (h, e) = encode(
        &response(200, &[("content-length", "7")]),
        Method::HEAD,
        Version::HTTP_11,
        Some(0),
        false,
    );
    assert!(h.contains("content-length: 7\r\n"), "{h}");
    assert_eq!(e, Encoding::None);
    let (h, e) = encode(
        &response(204, &[("date", "X")]),
        Method::GET,
        Version::HTTP_11,
        None,
        false,
    );
    assert_eq!(h, "HTTP/1.1 204 No Content\r\ndate: X\r\n\r\n");
    assert_eq!(e, Encoding::None);
    let (h, _) = encode(
        &response(200, &[]),
        Method::GET,
        Version::HTTP_10,
        Some(1),
        false,
    );
    assert!(h.contains("connection: keep-alive\r\n"), "{h}");
}
