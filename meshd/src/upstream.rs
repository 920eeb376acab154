//! HTTP/1.1 upstream connections for the core pool: hyper's client connection, with the pool's
//! connection slot held by the task that drives the socket, so the slot frees when it closes.

use std::net::SocketAddr;

use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use mesh_core::pool::{ConnGuard, Connection, Connector};
use tokio::net::TcpStream;

use crate::body::RequestBody;

/// An upstream HTTP/1.1 connection.
pub type Conn = SendRequest<RequestBody>;

/// Opens HTTP/1.1 connections over TCP.
#[derive(Debug, Default)]
pub struct Http1Connector;

/// Envoy's default `max_response_headers_kb`: a larger response head is a protocol error (502).
pub const MAX_RESPONSE_HEADERS: usize = 60 * 1024;

/// A pool connection: hyper's sender, and the task that drives the socket. Dropping it closes
/// the connection at once (the task is aborted, which closes the socket and frees the
/// connection slot), so a connection dropped mid-response is never left half-read.
pub struct Upstream(pub Conn, tokio::task::AbortHandle);

impl Drop for Upstream {
    fn drop(&mut self) {
        self.1.abort();
    }
}

impl Connection for Upstream {
    fn is_open(&self) -> bool {
        !self.0.is_closed()
    }
}

impl Connector for Http1Connector {
    type Conn = Upstream;

    async fn connect(&self, addr: SocketAddr, guard: ConnGuard) -> std::io::Result<Upstream> {
        let tcp = TcpStream::connect(addr).await?;
        let _ = tcp.set_nodelay(true);
        let (sender, conn) = hyper::client::conn::http1::Builder::new()
            .max_header_size(MAX_RESPONSE_HEADERS)
            .max_buf_size(crate::accept::MAX_CONN_BUF)
            .handshake(TokioIo::new(tcp))
            .await
            .map_err(std::io::Error::other)?;
        let task = tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(%addr, error = %e, "upstream connection ended");
            }
            drop(guard);
        });
        Ok(Upstream(sender, task.abort_handle()))
    }
}

/// A cluster of real upstream hosts.
pub type TcpCluster = mesh_core::pool::Cluster<Http1Connector>;
/// A checkout from a [`TcpCluster`].
pub type TcpCheckout = mesh_core::pool::Checkout<Http1Connector>;
