//! The `-stdclient` / `-h2` connection: hyper's low-level client (`hyper::client::conn::http1`,
//! or `http2` for h2c with prior knowledge), as fortio's Go `net/http` client. Slower than
//! [`crate::fast`], but it is hyper's full HTTP stack.
//!
//! The connection future is driven inside the caller's task (see [`drive`]) instead of being
//! spawned, so each load connection is exactly one tokio task.

use std::future::Future;
use std::pin::{pin, Pin};

use bytes::Bytes;
use http::header::CONNECTION;
use http::Request;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpStream;

use crate::client::{Failure, Reply, Target};
use crate::tls::Tls;

enum Sender {
    H1(http1::SendRequest<Full<Bytes>>),
    H2(http2::SendRequest<Full<Bytes>>),
}

type Driver = Pin<Box<dyn Future<Output = ()> + Send>>;

/// An open connection: the request sender and the connection future that performs the I/O.
pub struct Conn {
    sender: Sender,
    driver: Option<Driver>,
}

/// Opens a TCP connection (no delay; with `tls` also the TLS handshake) or a Unix socket
/// connection, then the HTTP handshake:
/// HTTP/2 with `h2` (over TLS only when ALPN agreed on it, else HTTP/1.1), HTTP/1.1 otherwise.
pub async fn connect(target: &Target, h2: bool, tls: Option<&Tls>) -> std::io::Result<Conn> {
    match (target, tls) {
        (Target::Tcp(addr), Some(tls)) => {
            let stream = tls.connect(*addr).await?;
            let h2 = h2 && stream.get_ref().1.alpn_protocol() == Some(b"h2");
            handshake(TokioIo::new(stream), h2).await
        }
        (Target::Tcp(addr), None) => {
            let stream = TcpStream::connect(addr).await?;
            stream.set_nodelay(true)?;
            handshake(TokioIo::new(stream), h2).await
        }
        (Target::Unix(path), _) => {
            let stream = tokio::net::UnixStream::connect(path).await?;
            handshake(TokioIo::new(stream), h2).await
        }
    }
}

async fn handshake<IO>(io: IO, h2: bool) -> std::io::Result<Conn>
where
    IO: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let (sender, driver): (Sender, Driver) = if h2 {
        let (s, c) = http2::Builder::new(TokioExecutor::new())
            .handshake(io)
            .await
            .map_err(std::io::Error::other)?;
        (
            Sender::H2(s),
            Box::pin(async move {
                let _ = c.await;
            }),
        )
    } else {
        let (s, c) = http1::Builder::new()
            .handshake(io)
            .await
            .map_err(std::io::Error::other)?;
        (
            Sender::H1(s),
            Box::pin(async move {
                let _ = c.await;
            }),
        )
    };
    Ok(Conn {
        sender,
        driver: Some(driver),
    })
}

/// Polls `fut` together with the connection's I/O future until `fut` completes. When the
/// connection ends first, `fut` is polled alone: it then resolves or fails promptly.
async fn drive<F: Future>(driver: &mut Option<Driver>, fut: F) -> F::Output {
    let mut fut = pin!(fut);
    if let Some(d) = driver.as_mut() {
        tokio::select! {
            biased;
            out = &mut fut => return out,
            _ = d.as_mut() => {}
        }
        *driver = None;
    }
    fut.await
}

impl Conn {
    /// Whether the connection may carry another request.
    pub fn reusable(&self) -> bool {
        self.driver.is_some()
            && match &self.sender {
                Sender::H1(s) => !s.is_closed(),
                Sender::H2(s) => !s.is_closed(),
            }
    }

    /// Sends `req` and reads the whole response, counting body bytes (the header size is 0, as
    /// with fortio's std client).
    pub async fn exchange(&mut self, req: Request<Full<Bytes>>) -> Result<Reply, Failure> {
        let Conn { sender, driver } = self;
        drive(driver, async move {
            let resp = match sender {
                Sender::H1(s) => {
                    s.ready().await.map_err(|_| Failure::BeforeResponse)?;
                    s.send_request(req).await
                }
                Sender::H2(s) => {
                    s.ready().await.map_err(|_| Failure::BeforeResponse)?;
                    s.send_request(req).await
                }
            }
            .map_err(|_| Failure::BeforeResponse)?;
            let status = resp.status().as_u16();
            let close = resp
                .headers()
                .get(CONNECTION)
                .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"close"));
            let mut body = resp.into_body();
            let mut body_size = 0u64;
            while let Some(frame) = body.frame().await {
                let frame = frame.map_err(|_| Failure::InBody)?;
                if let Some(d) = frame.data_ref() {
                    body_size += d.len() as u64;
                }
            }
            Ok(Reply {
                status,
                header_size: 0,
                body_size,
                close,
            })
        })
        .await
    }
}
