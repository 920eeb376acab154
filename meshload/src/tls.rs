//! TLS for `https://` targets, with fortio's flags: `-cacert FILE` (trust these roots instead of
//! Mozilla's), `-k` / `-https-insecure` (accept any server certificate), `-cert FILE -key FILE`
//! (a client certificate, for mTLS). rustls with the ring provider; the client configuration is
//! built once, before the run, so a bad file is a usage error naming it.
//!
//! ALPN offers `h2` (then `http/1.1`) with `-h2` and `http/1.1` otherwise; the server name (SNI and certificate
//! check) is the URL's host, also with `-resolve`.

use std::net::SocketAddr;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

use crate::error::UsageError;

/// The TLS flags as given (empty strings when absent).
#[derive(Debug, Clone, Default)]
pub struct TlsFlags {
    /// `-k` / `-https-insecure`.
    pub insecure: bool,
    /// `-cacert`.
    pub cacert: String,
    /// `-cert`.
    pub cert: String,
    /// `-key`.
    pub key: String,
}

/// Everything a connection needs for TLS.
#[derive(Clone)]
pub struct Tls {
    /// The flags it was built from (reported in the JSON result).
    pub flags: TlsFlags,
    connector: TlsConnector,
    server_name: ServerName<'static>,
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tls")
            .field("flags", &self.flags)
            .field("server_name", &self.server_name)
            .finish_non_exhaustive()
    }
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// `-k`: any certificate is accepted; signatures are still checked, so the handshake is real.
#[derive(Debug)]
struct AcceptAny(Arc<CryptoProvider>);

impl ServerCertVerifier for AcceptAny {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

fn bad(flag: &str, value: &str, why: impl std::fmt::Display) -> UsageError {
    UsageError::new(format!("-{flag} {value}"), why.to_string())
}

fn certs(flag: &str, path: &str) -> Result<Vec<CertificateDer<'static>>, UsageError> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| bad(flag, path, e))?;
    if certs.is_empty() {
        return Err(bad(flag, path, "no PEM certificate in the file"));
    }
    Ok(certs)
}

impl Tls {
    /// Builds the client configuration for `host`; `h2` decides the ALPN offer.
    pub fn new(flags: TlsFlags, host: &str, h2: bool) -> Result<Tls, UsageError> {
        let provider = provider();
        let builder = ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| UsageError::new("tls", e.to_string()))?;
        let builder = if flags.insecure {
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AcceptAny(provider)))
        } else {
            let mut roots = RootCertStore::empty();
            if flags.cacert.is_empty() {
                roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
            } else {
                for cert in certs("cacert", &flags.cacert)? {
                    roots
                        .add(cert)
                        .map_err(|e| bad("cacert", &flags.cacert, e))?;
                }
            }
            builder.with_root_certificates(roots)
        };
        let mut config = match (flags.cert.is_empty(), flags.key.is_empty()) {
            (true, true) => builder.with_no_client_auth(),
            (false, false) => {
                let chain = certs("cert", &flags.cert)?;
                let key = PrivateKeyDer::from_pem_file(&flags.key)
                    .map_err(|e| bad("key", &flags.key, e))?;
                builder
                    .with_client_auth_cert(chain, key)
                    .map_err(|e| bad("key", &flags.key, e))?
            }
            (true, false) => return Err(bad("key", &flags.key, "needs -cert too")),
            (false, true) => return Err(bad("cert", &flags.cert, "needs -key too")),
        };
        config.alpn_protocols = if h2 {
            vec![b"h2".to_vec(), b"http/1.1".to_vec()]
        } else {
            vec![b"http/1.1".to_vec()]
        };
        let server_name = ServerName::try_from(host.to_owned())
            .map_err(|e| UsageError::new(format!("host {host}"), e.to_string()))?;
        Ok(Tls {
            flags,
            connector: TlsConnector::from(Arc::new(config)),
            server_name,
        })
    }

    /// Opens a TCP connection (no delay) to `addr` and performs the TLS handshake.
    pub async fn connect(&self, addr: SocketAddr) -> std::io::Result<TlsStream<TcpStream>> {
        let tcp = TcpStream::connect(addr).await?;
        tcp.set_nodelay(true)?;
        self.connector.connect(self.server_name.clone(), tcp).await
    }
}
