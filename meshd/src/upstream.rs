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

/// A pool connection wrapper (the orphan rule keeps us from implementing the core trait on
/// hyper's type directly).
pub struct Upstream(pub Conn);

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
            .max_buf_size(crate::accept::MAX_CONN_BUF)
            .handshake(TokioIo::new(tcp))
            .await
            .map_err(std::io::Error::other)?;
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(%addr, error = %e, "upstream connection ended");
            }
            drop(guard);
        });
        Ok(Upstream(sender))
    }
}

/// A cluster of real upstream hosts.
pub type TcpCluster = mesh_core::pool::Cluster<Http1Connector>;
/// A checkout from a [`TcpCluster`].
pub type TcpCheckout = mesh_core::pool::Checkout<Http1Connector>;
