//! demo-app: the upstream every example and test uses.
//!
//! Speaks HTTP/1.x, and HTTP/2 without TLS (h2c, prior knowledge) on the same port. Serves its
//! color on every path, `/ping` for health checks, and on request sleeps and/or answers
//! a given status. It prints `listening on IP:PORT` as its first stdout line once bound, so callers
//! can bind port 0 and read the address back. `/_demo/stats` reports the peak concurrency it saw,
//! which lets tests check a proxy's limits from the upstream's side.

use std::convert::Infallible;
use std::io::Write;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use clap::Parser;
use http::{Request, Response, StatusCode};
use http_body_util::{combinators::BoxBody, BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;

/// A tiny HTTP/1.1 (and h2c) app that serves its color.
#[derive(Parser, Debug)]
#[command(
    name = "demo-app",
    version,
    after_help = "Query parameters on any path:\n  sleep=MS     wait MS milliseconds before answering\n  status=CODE  answer with this status\n  size=N       answer with N bytes instead of the color\n  echo=1       stream the request body back\n  headers=1    answer with the request headers it received, one per line\n\nExamples:\n  demo-app --color green --listen 127.0.0.1:8080\n  curl '127.0.0.1:8080/?sleep=500&status=503'\n  curl 127.0.0.1:8080/_demo/stats"
)]
struct Args {
    /// Color (text) served on every path.
    #[arg(long, default_value = "green")]
    color: String,
    /// Address to listen on; port 0 picks a free port (printed on stdout).
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Answer every Nth request (1-based count over all paths but /ping) with --fail-status.
    #[arg(long, default_value_t = 0)]
    fail_every: u64,
    /// Status used by --fail-every.
    #[arg(long, default_value_t = 503)]
    fail_status: u16,
    /// Sleep this many milliseconds before every answer (added to ?sleep=).
    #[arg(long, default_value_t = 0)]
    sleep_ms: u64,
    /// Serve HTTPS (HTTP/1.1 and h2 by ALPN) with this PEM certificate chain (needs --tls-key);
    /// plain HTTP on the same port keeps working.
    #[arg(long, requires = "tls_key")]
    tls_cert: Option<std::path::PathBuf>,
    /// PEM private key for --tls-cert.
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<std::path::PathBuf>,
    /// With --tls-cert: require client certificates signed by a CA in this PEM file (mTLS).
    #[arg(long, requires = "tls_cert")]
    tls_client_ca: Option<std::path::PathBuf>,
}

/// The TLS acceptor for --tls-cert/--tls-key (and --tls-client-ca).
fn tls_acceptor(args: &Args) -> anyhow::Result<Option<tokio_rustls::TlsAcceptor>> {
    use anyhow::Context;
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let (Some(cert), Some(key)) = (&args.tls_cert, &args.tls_key) else {
        return Ok(None);
    };
    let certs = |path: &std::path::Path| -> anyhow::Result<Vec<CertificateDer<'static>>> {
        CertificateDer::pem_file_iter(path)
            .and_then(|it| it.collect::<Result<Vec<_>, _>>())
            .with_context(|| format!("--tls-cert/--tls-client-ca {}", path.display()))
    };
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()?;
    let builder = match &args.tls_client_ca {
        Some(ca) => {
            let mut roots = rustls::RootCertStore::empty();
            for c in certs(ca)? {
                roots.add(c)?;
            }
            let verifier =
                rustls::server::WebPkiClientVerifier::builder_with_provider(roots.into(), provider)
                    .build()?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let key = PrivateKeyDer::from_pem_file(key)
        .with_context(|| format!("--tls-key {}", key.display()))?;
    let mut config = builder.with_single_cert(certs(cert)?, key)?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Some(tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(
        config,
    ))))
}

#[derive(Default)]
struct Counters {
    requests_total: AtomicU64,
    requests_http2: AtomicU64,
    requests_active: AtomicU64,
    requests_max: AtomicU64,
    connections_total: AtomicU64,
    connections_active: AtomicU64,
    connections_max: AtomicU64,
}

/// Decrements a gauge when dropped, so no path can leak a count.
struct Active<'a>(&'a AtomicU64);

impl<'a> Active<'a> {
    fn enter(gauge: &'a AtomicU64, max: &AtomicU64) -> Self {
        let now = gauge.fetch_add(1, Ordering::SeqCst) + 1;
        max.fetch_max(now, Ordering::SeqCst);
        Active(gauge)
    }
}

impl Drop for Active<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

type Body = BoxBody<Bytes, hyper::Error>;

fn full(b: impl Into<Bytes>) -> Body {
    Full::new(b.into()).map_err(|never| match never {}).boxed()
}

fn query_param<'a>(query: &'a str, key: &str) -> Option<&'a str> {
    query.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        (k == key).then_some(v)
    })
}

async fn handle(
    args: Arc<Args>,
    counters: Arc<Counters>,
    req: Request<Incoming>,
) -> Result<Response<Body>, Infallible> {
    let path = req.uri().path().to_owned();
    if path == "/ping" {
        return Ok(Response::new(full("pong\n")));
    }
    if path == "/_demo/stats" {
        let c = &counters;
        let body = format!(
            "{{\"requests_total\":{},\"requests_http2\":{},\"requests_active\":{},\"requests_max\":{},\"connections_total\":{},\"connections_active\":{},\"connections_max\":{}}}\n",
            c.requests_total.load(Ordering::SeqCst),
            c.requests_http2.load(Ordering::SeqCst),
            c.requests_active.load(Ordering::SeqCst),
            c.requests_max.load(Ordering::SeqCst),
            c.connections_total.load(Ordering::SeqCst),
            c.connections_active.load(Ordering::SeqCst),
            c.connections_max.load(Ordering::SeqCst),
        );
        let mut resp = Response::new(full(body));
        resp.headers_mut().insert(
            http::header::CONTENT_TYPE,
            "application/json".parse().expect("static"),
        );
        return Ok(resp);
    }
    let _active = Active::enter(&counters.requests_active, &counters.requests_max);
    let n = counters.requests_total.fetch_add(1, Ordering::SeqCst) + 1;
    if req.version() == http::Version::HTTP_2 {
        counters.requests_http2.fetch_add(1, Ordering::SeqCst);
    }
    let query = req.uri().query().unwrap_or("").to_owned();
    let sleep = query_param(&query, "sleep")
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(0)
        + args.sleep_ms;
    if sleep > 0 {
        tokio::time::sleep(Duration::from_millis(sleep)).await;
    }
    let mut status = query_param(&query, "status")
        .and_then(|v| v.parse::<u16>().ok())
        .and_then(|c| StatusCode::from_u16(c).ok())
        .unwrap_or(StatusCode::OK);
    if args.fail_every > 0 && n.is_multiple_of(args.fail_every) {
        status = StatusCode::from_u16(args.fail_status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
    }
    let body = if query_param(&query, "echo").is_some() {
        req.into_body().boxed()
    } else if query_param(&query, "headers").is_some() {
        let mut text = String::new();
        for (k, v) in req.headers() {
            text.push_str(k.as_str());
            text.push_str(": ");
            text.push_str(&String::from_utf8_lossy(v.as_bytes()));
            text.push('\n');
        }
        full(text)
    } else if let Some(size) = query_param(&query, "size").and_then(|v| v.parse::<usize>().ok()) {
        full(vec![b'x'; size])
    } else {
        full(format!("{}\n", args.color))
    };
    let mut resp = Response::new(body);
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        "x-demo-color",
        args.color
            .parse()
            .unwrap_or_else(|_| "invalid".parse().expect("static")),
    );
    Ok(resp)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Arc::new(Args::parse());
    let tls = match tls_acceptor(&args) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("demo-app: {e:#}");
            std::process::exit(2);
        }
    };
    let listener = match TcpListener::bind(args.listen).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("demo-app: cannot listen on {} : {e}", args.listen);
            std::process::exit(1);
        }
    };
    let addr = listener.local_addr()?;
    {
        let mut out = std::io::stdout().lock();
        writeln!(out, "listening on {addr}")?;
        out.flush()?;
    }
    let counters = Arc::new(Counters::default());
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(s) => s,
            Err(_) => continue,
        };
        let _ = stream.set_nodelay(true);
        let args = args.clone();
        let counters = counters.clone();
        let tls = tls.clone();
        tokio::spawn(async move {
            let conns = counters.clone();
            conns.connections_total.fetch_add(1, Ordering::SeqCst);
            let _conn = Active::enter(&conns.connections_active, &conns.connections_max);
            let svc = service_fn(move |req| handle(args.clone(), counters.clone(), req));
            // HTTP/1.x, or h2c when the client opens with HTTP/2's preface (prior knowledge).
            let mut builder = auto::Builder::new(TokioExecutor::new());
            builder.http1().timer(TokioTimer::new());
            // With TLS configured, a connection whose first byte opens a TLS record (0x16,
            // handshake) gets TLS; anything else is served plain, so /_demo/stats stays
            // reachable with any HTTP client.
            let mut first = [0u8; 1];
            let is_tls =
                tls.is_some() && matches!(stream.peek(&mut first).await, Ok(1) if first[0] == 0x16);
            match tls.filter(|_| is_tls) {
                Some(tls) => {
                    let Ok(stream) = tls.accept(stream).await else {
                        return;
                    };
                    let _ = builder.serve_connection(TokioIo::new(stream), svc).await;
                }
                None => {
                    let _ = builder.serve_connection(TokioIo::new(stream), svc).await;
                }
            }
        });
    }
}
