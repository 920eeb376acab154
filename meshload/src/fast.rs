//! fortio's "fast client": HTTP/1.x on a raw socket, the request written as bytes prepared once,
//! the response read into one reused buffer per connection.
//!
//! Parsing is httparse's (the parser inside hyper): the response head, chunk-size lines and
//! trailers. What is left here is message framing (RFC 9112 §6.3: no body for HEAD, 1xx, 204 and
//! 304; chunked; Content-Length; otherwise until close) and counting bytes. Body bytes are read
//! into the same buffer and discarded, so a call allocates nothing however large the response.
//!
//! One exchange at a time per connection (no pipelining), as fortio and wrk without scripts.

use std::io;
use std::mem::MaybeUninit;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UnixStream};
use tokio_rustls::client::TlsStream;

use mesh_core::h1::{response_framing, Framing};

use crate::client::{Failure, Reply, Target};
use crate::tls::Tls;

/// Initial read buffer per connection (fortio's `-httpbufferkb` is 128 KiB; bodies are streamed
/// through this buffer, so only a response head must fit).
const INITIAL_BUF: usize = 16 * 1024;
/// Largest response head (or chunk-size line, or trailer block) accepted: Envoy's default
/// header limit.
const MAX_HEAD: usize = 64 * 1024;
/// Response headers parsed per head; more is a protocol error.
const MAX_HEADERS: usize = 128;

/// What a parsed response head says.
#[derive(Debug, Clone, Copy)]
struct Head {
    len: usize,
    status: u16,
    framing: Framing,
    close: bool,
}

/// The socket: plain TCP, or TLS for `https://`.
enum Stream {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
    Unix(UnixStream),
}

impl Stream {
    async fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(s) => s.read(buf).await,
            Stream::Tls(s) => s.read(buf).await,
            Stream::Unix(s) => s.read(buf).await,
        }
    }

    /// Writes what the socket takes now without waiting (plain TCP only; 0 for TLS, whose
    /// records are written by [`Stream::write_all`]).
    fn try_write(&self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(s) => s.try_write(buf),
            Stream::Unix(s) => s.try_write(buf),
            Stream::Tls(_) => Ok(0),
        }
    }

    async fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        match self {
            Stream::Plain(s) => s.write_all(buf).await,
            Stream::Unix(s) => s.write_all(buf).await,
            Stream::Tls(s) => {
                s.write_all(buf).await?;
                s.flush().await
            }
        }
    }
}

/// One HTTP/1.x connection.
pub struct Conn {
    stream: Stream,
    buf: Vec<u8>,
    start: usize,
    end: usize,
    /// Set once the peer closed or a response said the connection ends.
    closed: bool,
}

/// Opens a TCP connection with TCP_NODELAY (and with `tls` performs the TLS handshake), or
/// connects to a Unix socket.
pub async fn connect(target: &Target, tls: Option<&Tls>) -> io::Result<Conn> {
    let stream = match (target, tls) {
        (Target::Tcp(addr), Some(tls)) => Stream::Tls(Box::new(tls.connect(*addr).await?)),
        (Target::Tcp(addr), None) => {
            let tcp = TcpStream::connect(addr).await?;
            tcp.set_nodelay(true)?;
            Stream::Plain(tcp)
        }
        (Target::Unix(path), _) => Stream::Unix(UnixStream::connect(path).await?),
    };
    Ok(Conn {
        stream,
        buf: vec![0; INITIAL_BUF],
        start: 0,
        end: 0,
        closed: false,
    })
}

impl Conn {
    /// Whether another request may be sent on this connection.
    pub fn reusable(&self) -> bool {
        !self.closed
    }

    /// Reads more bytes after `end`, first making room when the buffer is full: moving the
    /// unconsumed bytes to the front, or growing the buffer up to [`MAX_HEAD`] when all of it is
    /// one unparsed head. Returns the number read; 0 is EOF.
    async fn fill(&mut self) -> io::Result<usize> {
        if self.end == self.buf.len() {
            if self.start > 0 {
                self.buf.copy_within(self.start..self.end, 0);
                self.end -= self.start;
                self.start = 0;
            } else if self.buf.len() < MAX_HEAD {
                self.buf.resize((self.buf.len() * 2).min(MAX_HEAD), 0);
            } else {
                return Err(io::Error::new(io::ErrorKind::InvalidData, "head too large"));
            }
        }
        let n = self.stream.read(&mut self.buf[self.end..]).await?;
        self.end += n;
        if n == 0 {
            self.closed = true;
        }
        Ok(n)
    }

    /// Reads until a complete response head is buffered and parses it.
    async fn read_head(&mut self, head_request: bool, got_any: &mut bool) -> Result<Head, Failure> {
        loop {
            if self.end > self.start {
                // Uninitialised: httparse writes only the headers it finds, so a call does not
                // pay for filling MAX_HEADERS slots.
                let mut headers =
                    [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
                let mut resp = httparse::Response::new(&mut []);
                let parsed = httparse::ParserConfig::default().parse_response_with_uninit_headers(
                    &mut resp,
                    &self.buf[self.start..self.end],
                    &mut headers,
                );
                match parsed {
                    Ok(httparse::Status::Complete(len)) => {
                        let status = resp.code.unwrap_or(0);
                        let (framing, close) =
                            response_framing(&resp, head_request).map_err(|_| Failure::InBody)?;
                        return Ok(Head {
                            len,
                            status,
                            framing,
                            close,
                        });
                    }
                    Ok(httparse::Status::Partial) => {}
                    Err(_) => return Err(Failure::InBody),
                }
            }
            match self.fill().await {
                Ok(0) | Err(_) if !*got_any => return Err(Failure::BeforeResponse),
                Ok(0) | Err(_) => return Err(Failure::InBody),
                Ok(_) => *got_any = true,
            }
        }
    }

    /// Consumes `n` body bytes, reading as needed.
    async fn skip(&mut self, mut n: u64) -> Result<(), Failure> {
        loop {
            let have = (self.end - self.start) as u64;
            if have >= n {
                self.start += n as usize;
                return Ok(());
            }
            n -= have;
            self.start = 0;
            self.end = 0;
            match self.fill().await {
                Ok(0) | Err(_) => return Err(Failure::InBody),
                Ok(_) => {}
            }
        }
    }

    /// Reads a chunked body; returns the data bytes (without chunk framing).
    async fn chunked(&mut self) -> Result<u64, Failure> {
        let mut total = 0u64;
        loop {
            let size = loop {
                match httparse::parse_chunk_size(&self.buf[self.start..self.end]) {
                    Ok(httparse::Status::Complete((used, size))) => {
                        self.start += used;
                        break size;
                    }
                    Ok(httparse::Status::Partial) => match self.fill().await {
                        Ok(0) | Err(_) => return Err(Failure::InBody),
                        Ok(_) => {}
                    },
                    Err(_) => return Err(Failure::InBody),
                }
            };
            if size == 0 {
                break;
            }
            self.skip(size).await?;
            total += size;
            while self.end - self.start < 2 {
                match self.fill().await {
                    Ok(0) | Err(_) => return Err(Failure::InBody),
                    Ok(_) => {}
                }
            }
            if &self.buf[self.start..self.start + 2] != b"\r\n" {
                return Err(Failure::InBody);
            }
            self.start += 2;
        }
        // Trailer section: header lines up to an empty line. (The parse is scoped so that its
        // header array is not kept in this future's state across the read.)
        loop {
            let parsed = {
                let mut headers = [httparse::EMPTY_HEADER; 32];
                match httparse::parse_headers(&self.buf[self.start..self.end], &mut headers) {
                    Ok(httparse::Status::Complete((used, _))) => Ok(Some(used)),
                    Ok(httparse::Status::Partial) => Ok(None),
                    Err(e) => Err(e),
                }
            };
            match parsed {
                Ok(Some(used)) => {
                    self.start += used;
                    return Ok(total);
                }
                Ok(None) => match self.fill().await {
                    Ok(0) | Err(_) => return Err(Failure::InBody),
                    Ok(_) => {}
                },
                Err(_) => return Err(Failure::InBody),
            }
        }
    }

    /// Reads until the peer closes; returns the bytes read.
    async fn until_close(&mut self) -> Result<u64, Failure> {
        let mut total = (self.end - self.start) as u64;
        loop {
            self.start = 0;
            self.end = 0;
            match self.fill().await {
                Ok(0) => return Ok(total),
                Ok(n) => total += n as u64,
                Err(_) => return Err(Failure::InBody),
            }
        }
    }

    /// Writes `request` (complete bytes) and reads the whole response. `head_request` tells that
    /// the method was HEAD (no response body whatever the headers say).
    pub async fn exchange(&mut self, request: &[u8], head_request: bool) -> Result<Reply, Failure> {
        // Bytes left from an earlier response are not part of this one (no pipelining).
        self.start = 0;
        self.end = 0;
        // A request fits the socket buffer almost always: write it at once, and fall back to
        // waiting for writability only for the rest.
        let written = match self.stream.try_write(request) {
            Ok(n) => Some(n),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Some(0),
            Err(_) => None,
        };
        let ok = match written {
            Some(n) if n == request.len() => true,
            Some(n) => self.stream.write_all(&request[n..]).await.is_ok(),
            None => false,
        };
        if !ok {
            self.closed = true;
            return Err(Failure::BeforeResponse);
        }
        let mut got_any = false;
        let result = self.response(head_request, &mut got_any).await;
        if result.is_err() {
            self.closed = true;
        }
        result
    }

    async fn response(&mut self, head_request: bool, got_any: &mut bool) -> Result<Reply, Failure> {
        let mut header_size = 0u64;
        let head = loop {
            let head = self.read_head(head_request, got_any).await?;
            self.start += head.len;
            header_size += head.len as u64;
            // Interim responses (100 Continue, 103 Early Hints) precede the final one; 101
            // switches protocols, after which this client has nothing more to read.
            if (100..200).contains(&head.status) && head.status != 101 {
                continue;
            }
            break head;
        };
        let body_size = match head.framing {
            Framing::None => 0,
            Framing::Length(n) => {
                self.skip(n).await?;
                n
            }
            Framing::Chunked => self.chunked().await?,
            Framing::UntilClose => self.until_close().await?,
        };
        let close = head.close || head.status == 101 || head.framing == Framing::UntilClose;
        if close {
            self.closed = true;
        }
        Ok(Reply {
            status: head.status,
            header_size,
            body_size,
            close,
        })
    }
}
