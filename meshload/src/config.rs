//! Validated run configuration, built from the string [`Flags`] with fortio's defaults and rules.
//! Every rejection is a [`UsageError`] naming the flag, its value and the reason.

use std::time::Duration;

use bytes::Bytes;
use http::{HeaderName, HeaderValue, Method, Uri};

use crate::cli::Flags;
use crate::error::UsageError;
use crate::gofmt::parse_duration;

/// fortio's `-maxpayloadsizekb` default: random payloads must be smaller than this.
const MAX_PAYLOAD_SIZE: usize = 256 * 1024;

/// fortio log levels, lowest first. They decide which result lines are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum LogLevel {
    /// Everything.
    Debug,
    /// Adds the size histograms.
    Verbose,
    /// fortio's default.
    Info,
    /// Drops the connection time histogram.
    Warning,
    /// Only the essential result lines.
    Error,
    /// Same as Error for the result.
    Critical,
    /// Same as Error for the result.
    Fatal,
}

/// How the summary goes to stdout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputFormat {
    /// Nothing on stdout (the text report is on stderr, as fortio's).
    Text,
    /// A compact JSON summary on stdout, for jq.
    Json,
}

/// Everything a run needs, validated.
#[derive(Debug, Clone)]
pub struct Config {
    /// The URL as given (with `http://` added when it had no scheme).
    pub url: String,
    /// Parsed URL.
    pub uri: Uri,
    /// Host to connect to (name or IP, without brackets).
    pub host: String,
    /// Port to connect to.
    pub port: u16,
    /// `-c`: connections requested.
    pub connections: usize,
    /// `-qps`: total target rate; 0 means as fast as possible.
    pub qps: f64,
    /// `-n`: exact number of calls (0 = use the duration).
    pub exactly: u64,
    /// `-t`: run duration; `None` means until interrupted.
    pub duration: Option<Duration>,
    /// Method (after `-X` and the payload rules).
    pub method: Method,
    /// Extra headers from `-H` (a `Host:` header overrides the host).
    pub headers: Vec<(HeaderName, HeaderValue)>,
    /// Host header override from `-H "Host: x"`.
    pub host_override: Option<String>,
    /// Whether `-H "User-Agent:"` removed the default User-Agent.
    pub no_user_agent: bool,
    /// Request body.
    pub payload: Bytes,
    /// Content type (set by `-content-type`, `-H Content-Type:` or the payload default).
    pub content_type: String,
    /// `-X` as given.
    pub method_override: String,
    /// `-timeout`.
    pub timeout: Duration,
    /// `-keepalive`.
    pub keepalive: bool,
    /// `-uniform`.
    pub uniform: bool,
    /// `-jitter`.
    pub jitter: bool,
    /// `-nocatchup`.
    pub nocatchup: bool,
    /// `-allow-initial-errors`.
    pub allow_initial_errors: bool,
    /// `-abort-on` (0 = never).
    pub abort_on: i32,
    /// TLS settings for an `https://` URL.
    pub tls: Option<crate::tls::Tls>,
    /// `-unix-socket`: connect there instead of to `host` (takes precedence over `-resolve`).
    pub unix_socket: Option<std::path::PathBuf>,
    /// `-resolve`: the address to connect to instead of resolving `host`.
    pub resolve: Option<std::net::IpAddr>,
    /// `-connection-reuse MIN:MAX`: calls per connection before it is closed (`None` =
    /// unlimited).
    pub connection_reuse: Option<(u64, u64)>,
    /// `-p`.
    pub percentiles: Vec<f64>,
    /// `-r`.
    pub resolution: f64,
    /// `-offset`.
    pub offset: Duration,
    /// `-json` (`-` = stdout).
    pub json: Option<String>,
    /// `-a`: the directory (`-data-dir`) to save `<run ID>.json` in, when `-json` is not given.
    pub auto_save: Option<std::path::PathBuf>,
    /// `-labels` (defaulted).
    pub labels: String,
    /// `-loglevel`.
    pub loglevel: LogLevel,
    /// `-runid`.
    pub runid: i64,
    /// `-gomaxprocs`: threads for the connections; 0 means one per core.
    pub gomaxprocs: usize,
    /// `-h2`.
    pub h2: bool,
    /// `-stdclient` (or implied by `-h2`): hyper instead of the fast HTTP/1.x client.
    pub stdclient: bool,
    /// `-http1.0`.
    pub http10: bool,
    /// `-plot`.
    pub plot: Option<String>,
    /// `-o`.
    pub output: OutputFormat,
    /// Warnings to print before the run (e.g. missing scheme).
    pub warnings: Vec<String>,
}

fn bad(flag: &str, value: &str, why: impl Into<String>) -> UsageError {
    UsageError::new(format!("-{flag} {value}"), why)
}

/// Go's `strconv.ParseBool`.
fn go_bool(flag: &str, v: &str) -> Result<bool, UsageError> {
    match v {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Ok(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Ok(false),
        _ => Err(bad(flag, v, "not a boolean (true or false)")),
    }
}

fn int(flag: &str, v: &str) -> Result<i64, UsageError> {
    v.trim().parse().map_err(|_| bad(flag, v, "not an integer"))
}

fn float(flag: &str, v: &str) -> Result<f64, UsageError> {
    match v.trim().parse::<f64>() {
        Ok(x) if x.is_finite() => Ok(x),
        _ => Err(bad(flag, v, "not a number")),
    }
}

fn nonneg_duration(flag: &str, v: &str) -> Result<Duration, UsageError> {
    let ns = parse_duration(v).map_err(|why| bad(flag, v, why))?;
    if ns < 0 {
        return Err(bad(flag, v, "must not be negative"));
    }
    Ok(Duration::from_nanos(ns as u64))
}

fn loglevel(v: &str) -> Result<LogLevel, UsageError> {
    Ok(match v.to_ascii_lowercase().as_str() {
        "debug" => LogLevel::Debug,
        "verbose" => LogLevel::Verbose,
        "info" => LogLevel::Info,
        "warning" | "warn" => LogLevel::Warning,
        "error" => LogLevel::Error,
        "critical" => LogLevel::Critical,
        "fatal" => LogLevel::Fatal,
        _ => {
            return Err(bad(
                "loglevel",
                v,
                "expected Debug, Verbose, Info, Warning, Error, Critical or Fatal",
            ))
        }
    })
}

/// Parses `-p`: comma separated, each strictly between 0 and 100, at least one.
/// `-connection-reuse`: `N` or `MIN:MAX`, both at least 1, MIN <= MAX; empty = unlimited.
fn reuse_range(v: &str) -> Result<Option<(u64, u64)>, UsageError> {
    let v = v.trim();
    if v.is_empty() {
        return Ok(None);
    }
    let (lo, hi) = v.split_once(':').unwrap_or((v, v));
    let num = |x: &str| {
        x.trim()
            .parse::<u64>()
            .ok()
            .filter(|n| *n >= 1)
            .ok_or_else(|| {
                bad(
                    "connection-reuse",
                    v,
                    "expected N or MIN:MAX, each at least 1",
                )
            })
    };
    let (lo, hi) = (num(lo)?, num(hi)?);
    if lo > hi {
        return Err(bad("connection-reuse", v, "MIN is larger than MAX"));
    }
    Ok(Some((lo, hi)))
}

fn percentiles(v: &str) -> Result<Vec<f64>, UsageError> {
    let mut out = Vec::new();
    for part in v.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let p = float("p", part)?;
        if p <= 0.0 || p >= 100.0 {
            return Err(bad("p", v, format!("percentile {part} is not in ]0,100[")));
        }
        out.push(p);
    }
    if out.is_empty() {
        return Err(bad("p", v, "no percentiles given"));
    }
    Ok(out)
}

/// Parses the URL, adding `http://` when the scheme is missing.
fn url(raw: &str, warnings: &mut Vec<String>) -> Result<(String, Uri, String, u16), UsageError> {
    let what = || format!("url {raw}");
    let mut url = raw.to_owned();
    if !url.contains("://") {
        warnings.push("Assuming http:// on missing scheme".to_owned());
        url = format!("http://{url}");
    }
    let uri: Uri = url
        .parse()
        .map_err(|e: http::uri::InvalidUri| UsageError::new(what(), e.to_string()))?;
    match uri.scheme_str() {
        Some("http") => {}
        Some("https") => {}
        Some(other) => {
            return Err(UsageError::new(
                what(),
                format!("unsupported scheme {other:?} (http or https)"),
            ))
        }
        None => return Err(UsageError::new(what(), "missing scheme")),
    }
    let host = uri
        .host()
        .filter(|h| !h.is_empty())
        .ok_or_else(|| UsageError::new(what(), "missing host"))?;
    let host = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    let port = uri
        .port_u16()
        .unwrap_or(if uri.scheme_str() == Some("https") {
            443
        } else {
            80
        });
    Ok((url, uri, host, port))
}

/// Deterministic filler for `-payload-size` (fortio sends random bytes; any bytes will do).
fn random_payload(n: usize) -> Bytes {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            b'!' + (x % 94) as u8
        })
        .collect::<Vec<u8>>()
        .into()
}

fn short_hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .and_then(|h| h.trim().split('.').next().map(str::to_owned))
        .unwrap_or_default()
}

impl Config {
    /// Validates flags into a config.
    pub fn from_flags(f: &Flags) -> Result<Config, UsageError> {
        let mut warnings = Vec::new();
        let raw_url = f
            .url
            .as_deref()
            .ok_or_else(|| UsageError::new("url", "missing (usage: meshload [flags] URL)"))?;
        let (url, uri, host, port) = url(raw_url, &mut warnings)?;

        let c = int("c", &f.c)?;
        if c < 1 {
            return Err(bad("c", &f.c, "must be at least 1"));
        }
        let qps = float("qps", &f.qps)?;
        if qps < 0.0 {
            return Err(bad("qps", &f.qps, "must not be negative (0 = max speed)"));
        }
        let n = int("n", &f.n)?;
        if n < 0 {
            return Err(bad("n", &f.n, "must not be negative"));
        }
        let t = nonneg_duration("t", &f.t)?;
        let timeout = nonneg_duration("timeout", &f.timeout)?;
        if timeout.is_zero() {
            return Err(bad("timeout", &f.timeout, "must be positive"));
        }
        let resolution = float("r", &f.resolution)?;
        if resolution <= 0.0 {
            return Err(bad("r", &f.resolution, "must be positive"));
        }
        let resolve = match f.resolve.trim() {
            "" => None,
            ip => Some(
                ip.trim_start_matches('[')
                    .trim_end_matches(']')
                    .parse::<std::net::IpAddr>()
                    .map_err(|_| bad("resolve", &f.resolve, "not an IP address"))?,
            ),
        };
        let connection_reuse = reuse_range(&f.connection_reuse)?;
        let tls_flags = crate::tls::TlsFlags {
            insecure: go_bool("k", &f.k)? || go_bool("https-insecure", &f.https_insecure)?,
            cacert: f.cacert.clone(),
            cert: f.cert.clone(),
            key: f.key.clone(),
        };
        let abort_on = int("abort-on", &f.abort_on)?;
        let abort_on =
            i32::try_from(abort_on).map_err(|_| bad("abort-on", &f.abort_on, "out of range"))?;

        let mut content_type = f.content_type.clone();
        let mut headers = Vec::new();
        let mut host_override = None;
        let mut no_user_agent = false;
        for h in &f.headers {
            let (k, v) = h
                .split_once(':')
                .ok_or_else(|| bad("H", h, "expected \"Key: Value\""))?;
            let (k, v) = (k.trim(), v.trim());
            if k.eq_ignore_ascii_case("host") {
                host_override = Some(v.to_owned());
                continue;
            }
            if k.eq_ignore_ascii_case("user-agent") && v.is_empty() {
                no_user_agent = true;
                continue;
            }
            if k.eq_ignore_ascii_case("content-type") {
                content_type = v.to_owned();
                continue;
            }
            let name = HeaderName::from_bytes(k.as_bytes())
                .map_err(|e| bad("H", h, format!("invalid header name: {e}")))?;
            let value = HeaderValue::from_str(v)
                .map_err(|e| bad("H", h, format!("invalid header value: {e}")))?;
            headers.push((name, value));
        }

        let payload_size = int("payload-size", &f.payload_size)?;
        if payload_size < 0 || payload_size as usize >= MAX_PAYLOAD_SIZE {
            return Err(bad(
                "payload-size",
                &f.payload_size,
                format!("must be between 0 and {}", MAX_PAYLOAD_SIZE - 1),
            ));
        }
        let payload: Bytes = if !f.payload_file.is_empty() {
            let data = if f.payload_file == "-" {
                let mut buf = Vec::new();
                std::io::Read::read_to_end(&mut std::io::stdin(), &mut buf)
                    .map_err(|e| bad("payload-file", "-", e.to_string()))?;
                buf
            } else {
                std::fs::read(&f.payload_file)
                    .map_err(|e| bad("payload-file", &f.payload_file, e.to_string()))?
            };
            data.into()
        } else if payload_size > 0 {
            random_payload(payload_size as usize)
        } else {
            Bytes::from(f.payload.clone().into_bytes())
        };
        if !payload.is_empty() && content_type.is_empty() {
            content_type = "application/octet-stream".to_owned();
        }
        let method = if !f.method.is_empty() {
            Method::from_bytes(f.method.as_bytes())
                .map_err(|_| bad("X", &f.method, "not a valid method"))?
        } else if !payload.is_empty() || !content_type.is_empty() {
            Method::POST
        } else {
            Method::GET
        };

        let mut level = loglevel(&f.loglevel)?;
        if go_bool("quiet", &f.quiet)? {
            level = LogLevel::Error;
        }
        let output = match f.output.as_str() {
            "text" | "" => OutputFormat::Text,
            "json" => OutputFormat::Json,
            other => return Err(bad("o", other, "expected text or json")),
        };
        let json = (!f.json.is_empty()).then(|| f.json.clone());
        let auto_save =
            (json.is_none() && go_bool("a", &f.a)?).then(|| std::path::PathBuf::from(&f.data_dir));
        if json.as_deref() == Some("-") && output == OutputFormat::Json {
            return Err(UsageError::new(
                "-json - -o json",
                "both write to stdout; pick one",
            ));
        }
        let labels = if f.labels.is_empty() {
            let stripped = url
                .trim_start_matches("http://")
                .trim_start_matches("https://");
            format!("{stripped} , {}", short_hostname())
        } else {
            f.labels.clone()
        };
        let h2 = go_bool("h2", &f.h2)?;
        let http10 = go_bool("http1.0", &f.http10)?;
        if h2 && http10 {
            return Err(UsageError::new("-h2 -http1.0", "choose one protocol"));
        }
        let unix_socket =
            (!f.unix_socket.is_empty()).then(|| std::path::PathBuf::from(&f.unix_socket));
        if unix_socket.is_some() && uri.scheme_str() == Some("https") {
            return Err(bad(
                "unix-socket",
                &f.unix_socket,
                "works with http:// URLs only (no TLS over Unix sockets)",
            ));
        }
        let tls = if uri.scheme_str() == Some("https") {
            Some(crate::tls::Tls::new(tls_flags, &host, h2)?)
        } else {
            None
        };

        Ok(Config {
            url,
            uri,
            host,
            port,
            connections: c as usize,
            qps,
            exactly: n as u64,
            duration: (!t.is_zero()).then_some(t),
            method,
            headers,
            host_override,
            no_user_agent,
            payload,
            content_type,
            method_override: f.method.clone(),
            timeout,
            keepalive: go_bool("keepalive", &f.keepalive)?,
            uniform: go_bool("uniform", &f.uniform)?,
            jitter: go_bool("jitter", &f.jitter)?,
            nocatchup: go_bool("nocatchup", &f.nocatchup)?,
            allow_initial_errors: go_bool("allow-initial-errors", &f.allow_initial_errors)?,
            abort_on,
            tls,
            unix_socket,
            resolve,
            connection_reuse,
            percentiles: percentiles(&f.percentiles)?,
            resolution,
            offset: nonneg_duration("offset", &f.offset)?,
            json,
            auto_save,
            labels,
            loglevel: level,
            runid: int("runid", &f.runid)?,
            gomaxprocs: usize::try_from(int("gomaxprocs", &f.gomaxprocs)?).map_err(|_| {
                bad(
                    "gomaxprocs",
                    &f.gomaxprocs,
                    "must be 0 (one per core) or more",
                )
            })?,
            h2,
            stdclient: h2 || go_bool("stdclient", &f.stdclient)?,
            http10,
            plot: (!f.plot.is_empty()).then(|| f.plot.clone()),
            output,
            warnings,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{parse, Parsed};

    fn cfg(args: &[&str]) -> Result<Config, UsageError> {
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        match parse(&args)? {
            Parsed::Run(f) => Config::from_flags(&f),
            Parsed::Print(_) => panic!("help"),
        }
    }

    #[test]
    fn defaults_are_fortio_defaults() {
        let c = cfg(&["127.0.0.1:8080"]).unwrap();
        assert_eq!(c.connections, 4);
        assert_eq!(c.qps, 8.0);
        assert_eq!(c.duration, Some(Duration::from_secs(5)));
        assert_eq!(c.timeout, Duration::from_secs(3));
        assert_eq!(c.percentiles, vec![50.0, 75.0, 90.0, 99.0, 99.9]);
        assert_eq!(c.resolution, 0.001);
        assert!(c.keepalive);
        assert_eq!(c.url, "http://127.0.0.1:8080");
        assert_eq!(c.port, 8080);
        assert_eq!(c.method, Method::GET);
        assert_eq!(c.warnings.len(), 1);
    }

    #[test]
    fn payload_switches_to_post() {
        let c = cfg(&["-payload", "hi", "http://h/"]).unwrap();
        assert_eq!(c.method, Method::POST);
        assert_eq!(c.content_type, "application/octet-stream");
        let c = cfg(&["-payload-size", "10", "http://h/"]).unwrap();
        assert_eq!(c.payload.len(), 10);
    }

    #[test]
    fn rejects_bad_input_with_what_and_why() {
        let e = cfg(&["-c", "0", "http://h/"]).unwrap_err();
        assert_eq!(e.to_string(), "-c 0 : must be at least 1");
        assert!(cfg(&["-qps", "-5", "http://h/"]).is_err());
        assert!(cfg(&["-t", "5x", "http://h/"]).is_err());
        assert!(cfg(&["-p", "100", "http://h/"]).is_err());
        assert!(cfg(&["-payload-file", "/nonexistent/x", "http://h/"]).is_err());
        assert!(cfg(&["http://"]).is_err());
        assert!(cfg(&["ftp://h/"]).is_err());
        let c = cfg(&["https://h/"]).expect("https");
        assert_eq!(c.port, 443);
        assert!(c.tls.is_some());
        assert!(cfg(&["-cert", "/nonexistent", "https://h/"]).is_err());
        assert!(cfg(&["-unix-socket", "/tmp/x.sock", "https://h/"]).is_err());
        assert!(cfg(&["-unix-socket", "/tmp/x.sock", "http://h/"]).is_ok());
        assert!(cfg(&["-keepalive=maybe", "http://h/"]).is_err());
        let c = cfg(&[
            "-connection-reuse",
            "5:10",
            "-resolve",
            "[::1]",
            "http://h/",
        ])
        .expect("ok");
        assert_eq!(c.connection_reuse, Some((5, 10)));
        assert_eq!(c.resolve, "::1".parse().ok());
        assert_eq!(
            cfg(&["-connection-reuse", "3", "http://h/"])
                .expect("ok")
                .connection_reuse,
            Some((3, 3))
        );
        for bad in ["0", "5:2", "x", "1:", "-1"] {
            assert!(
                cfg(&["-connection-reuse", bad, "http://h/"]).is_err(),
                "{bad}"
            );
        }
        assert!(cfg(&["-resolve", "localhost", "http://h/"]).is_err());
    }
}
