//! HTTP/1.1 over meshd's Unix socket (hyper's client connection on a `UnixStream`).

use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use serde_json::Value;

use crate::Error;

/// A connection target: meshd's control socket.
#[derive(Debug, Clone)]
pub struct Client {
    socket: PathBuf,
}

/// A reply: status and JSON body.
#[derive(Debug)]
pub struct Reply {
    /// HTTP status.
    pub status: StatusCode,
    /// The body (`Null` when empty).
    pub body: Value,
}

impl Client {
    /// A client for `socket`.
    pub fn new(socket: &Path) -> Self {
        Client {
            socket: socket.to_path_buf(),
        }
    }

    /// Sends one request. `path_and_query` starts with `/v1/`.
    pub async fn call(
        &self,
        method: Method,
        path_and_query: &str,
        body: Option<Vec<u8>>,
    ) -> Result<Reply, Error> {
        let stream = self.connect().await?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| self.broken(e))?;
        tokio::spawn(conn);
        let mut req = Request::builder()
            .method(method)
            .uri(path_and_query)
            .header(http::header::HOST, "meshd");
        if body.is_some() {
            req = req.header(http::header::CONTENT_TYPE, "application/json");
        }
        let req = req
            .body(Full::new(Bytes::from(body.unwrap_or_default())))
            .map_err(|e| Error::Usage(format!("bad request : {e}")))?;
        let resp = sender.send_request(req).await.map_err(|e| self.broken(e))?;
        let status = resp.status();
        let bytes = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| self.broken(e))?
            .to_bytes();
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).map_err(|e| {
                Error::Runtime(format!(
                    "meshd at {} : answered with something that is not JSON ({e})",
                    self.socket.display()
                ))
            })?
        };
        Ok(Reply { status, body })
    }

    async fn connect(&self) -> Result<tokio::net::UnixStream, Error> {
        let path = self.socket.display();
        let start =
            format!("start meshd (`systemctl start meshd`, or `meshd --socket {path}`) or point --socket / MESHD_SOCKET at its socket");
        match std::fs::metadata(&self.socket) {
            Ok(m) if !m.file_type().is_socket() => {
                return Err(Error::Runtime(format!(
                    "cannot connect to meshd at {path} : it is not a socket; check --socket / MESHD_SOCKET"
                )))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(Error::Runtime(format!(
                    "cannot connect to meshd at {path} : no such socket, meshd is not running; {start}"
                )))
            }
            _ => {}
        }
        tokio::net::UnixStream::connect(&self.socket)
            .await
            .map_err(|e| {
                let why = match e.kind() {
                    std::io::ErrorKind::PermissionDenied => {
                        "permission denied; run as root or as a member of the socket's group (meshd --socket-group)".to_string()
                    }
                    std::io::ErrorKind::ConnectionRefused => {
                        format!("connection refused, meshd is not running (stale socket); {start}")
                    }
                    _ => format!("{e}; {start}"),
                };
                Error::Runtime(format!("cannot connect to meshd at {path} : {why}"))
            })
    }

    fn broken(&self, e: impl std::fmt::Display) -> Error {
        Error::Runtime(format!(
            "meshd at {} : the connection failed ({e})",
            self.socket.display()
        ))
    }
}

/// `k=v&k=v` with form encoding, skipping absent values.
pub fn query(pairs: &[(&str, Option<&str>)]) -> String {
    let mut q = form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        if let Some(v) = v {
            q.append_pair(k, v);
        }
    }
    q.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_encodes_and_skips_absent_values() {
        let q = query(&[
            ("kind", Some("route")),
            ("name", Some("r/a b")),
            ("mesh", None),
        ]);
        assert_eq!(q, "kind=route&name=r%2Fa+b");
    }
}
