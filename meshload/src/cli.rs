//! Command line: fortio's Go-`flag` syntax on top of clap.
//!
//! Go's `flag` package treats `-qps` and `--qps` alike, takes values as `-x v` or `-x=v`, wants
//! bools switched off as `-keepalive=false`, and stops at the first non-flag argument (the URL).
//! [`normalize`] rewrites such an argv into clap's `--name=value` form (and puts `--` before the
//! URL, so a URL can never be mistaken for a flag); clap then parses it into [`Flags`]. Values stay
//! strings here: [`crate::config`] converts and validates them, with errors in meshload's
//! `what : why` form.

use clap::Parser;

use crate::error::UsageError;

/// Flags that take a value (Go: non-bool flags).
const VALUE_FLAGS: &[&str] = &[
    "c",
    "qps",
    "n",
    "t",
    "H",
    "payload",
    "payload-size",
    "payload-file",
    "content-type",
    "X",
    "timeout",
    "p",
    "r",
    "offset",
    "json",
    "labels",
    "abort-on",
    "resolve",
    "connection-reuse",
    "cacert",
    "data-dir",
    "unix-socket",
    "cert",
    "key",
    "loglevel",
    "runid",
    "gomaxprocs",
    "plot",
    "o",
];

/// Bool flags (`-x` means true, `-x=false` turns it off).
const BOOL_FLAGS: &[&str] = &[
    "keepalive",
    "uniform",
    "jitter",
    "nocatchup",
    "allow-initial-errors",
    "h2",
    "stdclient",
    "k",
    "https-insecure",
    "a",
    "http1.0",
    "quiet",
];

const EXAMPLES: &str = "\
Flags take one or two dashes, values as `-x v` or `-x=v`, bools as `-keepalive=false` (Go style).

Examples:
  meshload -c 3 -qps 0 -n 20 -loglevel Warning http://127.0.0.1:9080/
  meshload -c 10 -qps 100 -t 100s http://productpage:9080/
  meshload load -c 20 -qps 500 -t 30s -json result.json -plot latency.svg http://color-green:8080/
  meshload -qps 0 -t 10s -o json http://127.0.0.1:8080/ | jq .latency

Latency in -qps mode is measured from each request's scheduled send time (coordinated omission
corrected, as wrk2); the raw time from the actual send is reported next to it.";

/// fortio `load` flags, as strings (see [`crate::config::Config::from_flags`] for the rules).
#[derive(Parser, Debug, Clone)]
#[command(
    name = "meshload",
    version,
    about = "A fortio-compatible HTTP load generator whose latency numbers are right.",
    after_help = EXAMPLES,
    args_override_self = true
)]
pub struct Flags {
    /// Number of connections/goroutines (fortio "threads")
    #[arg(short = 'c', long = "c", value_name = "N", default_value = "4")]
    pub c: String,
    /// Total queries per second across all connections; 0 = as fast as possible
    #[arg(long = "qps", value_name = "QPS", default_value = "8")]
    pub qps: String,
    /// Run for exactly this many calls instead of a duration
    #[arg(short = 'n', long = "n", value_name = "CALLS", default_value = "0")]
    pub n: String,
    /// How long to run (Go duration, plus d); 0 = until interrupted
    #[arg(short = 't', long = "t", value_name = "DURATION", default_value = "5s")]
    pub t: String,
    /// Extra header "Key: Value" (repeatable)
    #[arg(short = 'H', long = "H", value_name = "HEADER", action = clap::ArgAction::Append)]
    pub headers: Vec<String>,
    /// Request body; switches the method to POST
    #[arg(long = "payload", value_name = "STRING", default_value = "")]
    pub payload: String,
    /// Random body of this many bytes; switches the method to POST
    #[arg(long = "payload-size", value_name = "BYTES", default_value = "0")]
    pub payload_size: String,
    /// Body read from a file (- = stdin); switches the method to POST
    #[arg(long = "payload-file", value_name = "PATH", default_value = "")]
    pub payload_file: String,
    /// Content-Type header; switches the method to POST
    #[arg(long = "content-type", value_name = "TYPE", default_value = "")]
    pub content_type: String,
    /// Method override (default GET, or POST with a body)
    #[arg(short = 'X', long = "X", value_name = "METHOD", default_value = "")]
    pub method: String,
    /// Connect and request timeout
    #[arg(long = "timeout", value_name = "DURATION", default_value = "3s")]
    pub timeout: String,
    /// Percentiles to report
    #[arg(
        short = 'p',
        long = "p",
        value_name = "LIST",
        default_value = "50,75,90,99,99.9"
    )]
    pub percentiles: String,
    /// Histogram resolution in seconds (bucket divider)
    #[arg(
        short = 'r',
        long = "r",
        value_name = "SECONDS",
        default_value = "0.001"
    )]
    pub resolution: String,
    /// Offset subtracted from durations before bucketing
    #[arg(long = "offset", value_name = "DURATION", default_value = "0")]
    pub offset: String,
    /// Write fortio's JSON result to this file (- = stdout)
    #[arg(long = "json", value_name = "PATH", default_value = "")]
    pub json: String,
    /// Free text stored in the JSON result (default: URL and host name)
    #[arg(long = "labels", value_name = "TEXT", default_value = "")]
    pub labels: String,
    /// Abort the run when a response has this status (-1 = socket errors)
    #[arg(long = "abort-on", value_name = "CODE", default_value = "0")]
    pub abort_on: String,
    /// Save the JSON result as <data-dir>/<run ID>.json (ignored with -json)
    #[arg(long = "a", value_name = "BOOL", default_value = "false", num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    pub a: String,
    /// Connect to this Unix domain socket instead of the URL's host (http:// URLs)
    #[arg(long = "unix-socket", value_name = "PATH", default_value = "")]
    pub unix_socket: String,
    /// Directory for -a
    #[arg(long = "data-dir", value_name = "DIR", default_value = ".")]
    pub data_dir: String,
    /// https: trust the CA certificates in this PEM file instead of Mozilla's roots
    #[arg(long = "cacert", value_name = "FILE", default_value = "")]
    pub cacert: String,
    /// https: client certificate (PEM) for mTLS, with -key
    #[arg(long = "cert", value_name = "FILE", default_value = "")]
    pub cert: String,
    /// https: client private key (PEM) for mTLS, with -cert
    #[arg(long = "key", value_name = "FILE", default_value = "")]
    pub key: String,
    /// https: accept any server certificate (same as -https-insecure)
    #[arg(long = "k", value_name = "BOOL", default_value = "false", num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    pub k: String,
    /// https: accept any server certificate
    #[arg(long = "https-insecure", value_name = "BOOL", default_value = "false", num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    pub https_insecure: String,
    /// Connect to this IP instead of resolving the URL's host (which stays in the Host header)
    #[arg(long = "resolve", value_name = "IP", default_value = "")]
    pub resolve: String,
    /// Close each connection after a random number of calls in [MIN,MAX] (or exactly N); fast
    /// client only
    #[arg(long = "connection-reuse", value_name = "MIN:MAX", default_value = "")]
    pub connection_reuse: String,
    /// Log level: Debug, Verbose, Info, Warning, Error, Critical, Fatal
    #[arg(long = "loglevel", value_name = "LEVEL", default_value = "Info")]
    pub loglevel: String,
    /// Run id stored in the JSON result
    #[arg(long = "runid", value_name = "ID", default_value = "0")]
    pub runid: String,
    /// Threads running the connections (0 = one per core), as fortio's Go runtime setting
    #[arg(long = "gomaxprocs", value_name = "N", default_value = "0")]
    pub gomaxprocs: String,
    /// Write an SVG latency percentile plot (corrected and raw) to this file
    #[arg(long = "plot", value_name = "FILE.svg", default_value = "")]
    pub plot: String,
    /// Summary format on stdout: text (none) or json
    #[arg(short = 'o', long = "o", value_name = "FORMAT", default_value = "text")]
    pub output: String,
    /// Keep connections alive between requests
    #[arg(long = "keepalive", value_name = "BOOL", default_value = "true", num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    pub keepalive: String,
    /// Stagger each connection's start uniformly over one interval
    #[arg(long = "uniform", value_name = "BOOL", default_value = "false", num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    pub uniform: String,
    /// Add +/-10% jitter to each sleep
    #[arg(long = "jitter", value_name = "BOOL", default_value = "false", num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    pub jitter: String,
    /// Skip slots that are already late instead of catching up
    #[arg(long = "nocatchup", value_name = "BOOL", default_value = "false", num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    pub nocatchup: String,
    /// Do not abort when a warm-up request fails
    #[arg(long = "allow-initial-errors", value_name = "BOOL", default_value = "false", num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    pub allow_initial_errors: String,
    /// Speak HTTP/2 (h2c, prior knowledge); implies -stdclient
    #[arg(long = "h2", value_name = "BOOL", default_value = "false", num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    pub h2: String,
    /// Use the hyper client (HTTP/1.1 or, with -h2, HTTP/2) instead of the fast raw HTTP/1.x one:
    /// slower; response sizes are then bodies only, as with fortio's std client
    #[arg(long = "stdclient", value_name = "BOOL", default_value = "false", num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    pub stdclient: String,
    /// Send HTTP/1.0 requests
    #[arg(long = "http1.0", value_name = "BOOL", default_value = "false", num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    pub http10: String,
    /// Same as -loglevel Error
    #[arg(long = "quiet", value_name = "BOOL", default_value = "false", num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    pub quiet: String,
    /// Target URL (http:// is assumed when missing)
    #[arg(value_name = "URL")]
    pub url: Option<String>,
}

/// What parsing produced: flags to run with, or text to print (help, version) before exiting 0.
#[derive(Debug)]
pub enum Parsed {
    /// Run the load test.
    Run(Box<Flags>),
    /// Print this on stdout and exit 0.
    Print(String),
}

/// Rewrites a Go-style argv (without the program name) into clap's form. Drops a leading `load`
/// (fortio's command form).
pub fn normalize(args: &[String]) -> Result<Vec<String>, UsageError> {
    let mut out = Vec::with_capacity(args.len() + 1);
    let mut it = args.iter().peekable();
    if it.peek().map(|s| s.as_str()) == Some("load") {
        it.next();
    }
    while let Some(arg) = it.next() {
        if arg == "--" {
            out.push("--".to_owned());
            out.extend(it.by_ref().cloned());
            break;
        }
        let Some(body) = arg.strip_prefix('-').filter(|b| !b.is_empty()) else {
            // First non-flag argument: the URL; everything after it is positional too.
            out.push("--".to_owned());
            out.push(arg.clone());
            out.extend(it.by_ref().cloned());
            break;
        };
        let body = body.strip_prefix('-').unwrap_or(body);
        let (name, value) = match body.split_once('=') {
            Some((n, v)) => (n, Some(v)),
            None => (body, None),
        };
        if VALUE_FLAGS.contains(&name) {
            let value = match value {
                Some(v) => v.to_owned(),
                None => it
                    .next()
                    .cloned()
                    .ok_or_else(|| UsageError::new(format!("-{name}"), "flag needs an argument"))?,
            };
            out.push(format!("--{name}={value}"));
        } else if BOOL_FLAGS.contains(&name) {
            out.push(match value {
                Some(v) => format!("--{name}={v}"),
                None => format!("--{name}"),
            });
        } else if matches!(name, "h" | "help") && value.is_none() {
            out.push("--help".to_owned());
        } else if matches!(name, "version" | "V") && value.is_none() {
            out.push("--version".to_owned());
        } else {
            return Err(UsageError::new(
                format!("-{name}"),
                "flag provided but not defined (see meshload --help)",
            ));
        }
    }
    Ok(out)
}

/// Parses the process arguments (without the program name).
pub fn parse(args: &[String]) -> Result<Parsed, UsageError> {
    let norm = normalize(args)?;
    let argv = std::iter::once("meshload".to_owned()).chain(norm);
    match Flags::try_parse_from(argv) {
        Ok(f) => Ok(Parsed::Run(Box::new(f))),
        Err(e) => match e.kind() {
            clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion => {
                Ok(Parsed::Print(e.render().to_string()))
            }
            _ => {
                let text = e.render().to_string();
                let first = text
                    .lines()
                    .next()
                    .unwrap_or("invalid arguments")
                    .trim_start_matches("error: ")
                    .to_owned();
                Err(UsageError::new("arguments", first))
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(args: &[&str]) -> Vec<String> {
        args.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn rewrites_go_flags() {
        let n = normalize(&v(&[
            "load",
            "-c",
            "3",
            "--qps=0",
            "-keepalive=false",
            "-h2",
            "-qps",
            "-5",
            "-H",
            "A: b",
            "http://x/",
        ]))
        .unwrap();
        assert_eq!(
            n,
            v(&[
                "--c=3",
                "--qps=0",
                "--keepalive=false",
                "--h2",
                "--qps=-5",
                "--H=A: b",
                "--",
                "http://x/"
            ])
        );
    }

    #[test]
    fn parses_into_flags() {
        let Parsed::Run(f) = parse(&v(&[
            "-c", "3", "-n", "20", "-t=2s", "-H", "a: 1", "-H", "b: 2", "-http1.0", "u",
        ]))
        .unwrap() else {
            panic!("expected flags")
        };
        assert_eq!(f.c, "3");
        assert_eq!(f.n, "20");
        assert_eq!(f.t, "2s");
        assert_eq!(f.headers, vec!["a: 1", "b: 2"]);
        assert_eq!(f.http10, "true");
        assert_eq!(f.keepalive, "true");
        assert_eq!(f.qps, "8");
        assert_eq!(f.url.as_deref(), Some("u"));
    }

    #[test]
    fn rejects_unknown_and_extra() {
        assert!(parse(&v(&["-bogus", "u"])).is_err());
        assert!(parse(&v(&["u", "extra"])).is_err());
        assert!(parse(&v(&["-c"])).is_err());
        assert!(matches!(parse(&v(&["-h"])), Ok(Parsed::Print(_))));
    }
}
