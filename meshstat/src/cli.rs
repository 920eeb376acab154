//! meshstat's command line.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};

/// Output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum Format {
    /// Lines for people and grep.
    #[default]
    Text,
    /// One JSON object per line, for jq.
    Json,
}

/// Stats, clusters and access logs of one or many meshd, made for grep and jq.
#[derive(Debug, Parser)]
#[command(
    name = "meshstat",
    version,
    after_help = "Examples:
  meshstat cx_open                          stats whose name contains cx_open
  meshstat 'upstream_cx_active$' pending    any of several patterns (regular expressions)
  meshstat --admin 10.0.0.1:9901 --admin 10.0.0.2:9901 --sum rq_pending_refused
  meshstat --fleet /etc/meshd why          which limit on which VM refused (stats port 9902)
  meshstat --fleet /etc/meshd --targets > /etc/prometheus/meshd-targets.json
  meshstat -o json upstream_rq | jq 'select(.value > 0)'
  meshstat clusters pyserver | grep cx_active
  meshstat hosts                            each host: state, reason, ejection time left
  meshstat hosts --out svc                  only the hosts out of rotation, of clusters matching svc
  meshstat watch 'upstream_rq_total|cx_active' --interval 2s
  meshstat log --flag UO /var/log/meshd/access.log
  kubectl logs -l app=pyclient -c envoy | meshstat log --code 5xx
  meshstat why                              overload (limits, UO) or dead hosts (UH, UF, ejections)?
  meshstat why --log /var/log/meshd/access.log
  meshstat flags

Stat types (-o json \"type\") come from meshd's /stats/prometheus # TYPE lines; a stat missing
there is typed by name (gauges end in _active, _open, _peak, _buffered or start with remaining_).
--fleet reads each meshd's read-only stats endpoint (meshd --stats-listen IP:9902) by IP address;
each line starts with <node>@<ip>:<port>. A node that cannot be located or read is one line on
stderr; the others are still shown; exit 1. --fleet replaces --admin.
Exit codes: 0 ok, 1 a meshd could not be read (or no stat matched the patterns), 2 invalid input.
A closed pipe (| head) ends quietly with 0."
)]
pub struct Cli {
    /// meshd admin endpoint, host:port (repeatable; with several, each line names its source).
    #[arg(
        long,
        global = true,
        env = "MESHD_ADMIN",
        value_delimiter = ',',
        default_value = "127.0.0.1:9901"
    )]
    pub admin: Vec<String>,

    /// Read the whole fleet instead of --admin: every node's read-only stats endpoint (meshd
    /// --stats-listen) found from a config directory (each node's serviceDiscovery DNS hostname,
    /// every address it resolves to, at --stats-port), or from a list file of HOST:PORT or
    /// NAME=HOST:PORT lines. Repeatable (a directory and a list file for its gateways).
    #[arg(long, global = true, value_name = "CONFIG_DIR|FILE")]
    pub fleet: Vec<PathBuf>,

    /// The port of every node's stats endpoint, for --fleet CONFIG_DIR.
    #[arg(long, global = true, default_value_t = crate::fleet::DEFAULT_STATS_PORT, value_name = "PORT")]
    pub stats_port: u16,

    /// With --fleet: print the stats endpoints as Prometheus file_sd JSON (one target group
    /// per meshd, labelled with its nodes) and read nothing.
    #[arg(long, requires = "fleet")]
    pub targets: bool,

    /// Output format.
    #[arg(short = 'o', long = "output", global = true, value_enum, default_value_t = Format::Text)]
    pub output: Format,

    /// How long to wait for a meshd to answer.
    #[arg(long, global = true, default_value = "5s", value_parser = humantime::parse_duration)]
    pub timeout: Duration,

    /// Add up each stat (counters and gauges) across all --admin sources.
    #[arg(long)]
    pub sum: bool,

    /// Hide stats whose value is 0.
    #[arg(long)]
    pub nonzero: bool,

    /// A pattern (regular expression) that may start with `-` or name a subcommand (repeatable).
    #[arg(short = 'e', long = "regexp", value_name = "PATTERN")]
    pub regexp: Vec<String>,

    /// Show stats whose name matches any PATTERN (regular expression, partial match as
    /// /stats?filter=). None: every stat.
    pub patterns: Vec<String>,

    #[command(subcommand)]
    pub command: Option<Command>,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// The /clusters facts: limits with occupancy, peak and refusals; hosts with counts and health.
    Clusters {
        /// Only clusters whose name matches this regular expression.
        pattern: Option<String>,
    },
    /// Every host of the matching clusters: in rotation or not, why, and until when.
    #[command(
        after_help = "One line per host: [SOURCE] CLUSTER HOST STATE REASON ejections=N left=TIME
rq_active=N rq_total=N rq_error=N cx_connect_fail=N hc=STATE, `-` where a value is absent.

STATE (several joined by `,`):
  healthy     in rotation
  ejected     taken out by outlier detection until `left` runs out
  failed_hc   fails its active health check: out until it passes again
  unchecked   has a health check that has not answered yet (meshd sends it traffic meanwhile)
REASON (one per state word that has one, joined by `,`):
  consecutive_5xx, consecutive_gateway_failure, consecutive_local_origin_failure
              the ejection type (as the outlier_detection.ejections_enforced_* stats)
  hc_failed   the health check failed (unexpected status, refused, reset)
  hc_timeout  the last health check timed out
hc is the health check's state (unchecked, healthy, unhealthy), `-` without one; ejections is `-`
without outlier detection.
-o json: one object per host with source, cluster, host, hostname, state, reason, in_rotation,
ejections, ejection_time_left_ms, consecutive_5xx, consecutive_gateway_failure,
consecutive_local_origin_failure, success_rate, health_check, hc_consecutive_failures,
hc_consecutive_successes, rq_active, rq_total, rq_error, cx_connect_fail (null when absent).

Examples:
  meshstat hosts
  meshstat hosts --out svc            hosts of clusters matching svc that are out of rotation
  meshstat -o json hosts | jq 'select(.in_rotation | not)'"
    )]
    Hosts {
        /// Only clusters whose name matches this regular expression.
        pattern: Option<String>,
        /// Only hosts out of rotation (ejected or failing their health check).
        #[arg(long)]
        out: bool,
    },
    /// Refresh matching stats: counters as a rate per second, gauges as values.
    Watch {
        /// Stats to watch (regular expressions).
        #[arg(required = true)]
        patterns: Vec<String>,
        /// Time between refreshes.
        #[arg(long, default_value = "1s", value_parser = humantime::parse_duration)]
        interval: Duration,
        /// Stop after this many refreshes (default: until interrupted).
        #[arg(long)]
        count: Option<u64>,
    },
    /// Parse access logs (Envoy default format or JSON lines): filter, summarise, follow.
    Log {
        /// Log files; `-` or none: standard input.
        files: Vec<PathBuf>,
        /// Only lines with this response flag (repeatable or comma-separated: UO,URX).
        #[arg(long = "flag", value_name = "FLAG")]
        flags: Vec<String>,
        /// Only lines with this response code or class (503, 5xx; repeatable).
        #[arg(long = "code", value_name = "CODE")]
        codes: Vec<String>,
        /// Only lines whose path matches this regular expression.
        #[arg(long)]
        path: Option<String>,
        /// Only lines that started at or after this time (RFC 3339) or this long ago (10m).
        #[arg(long)]
        since: Option<String>,
        /// Print the matching lines as they are instead of the summary.
        #[arg(long)]
        lines: bool,
        /// Keep reading the file as it grows, printing matching lines (like tail -f).
        #[arg(short = 'f', long)]
        follow: bool,
    },
    /// Overload or dead hosts? Per cluster: limits that refused, hosts out of rotation, retries.
    #[command(
        after_help = "Per cluster of each meshd, one sentence per finding (-o json: one object each, with a \"kind\"):
  limit            a limit refused requests (503 UO): which, how many, configured value, peak
  no_healthy_host  requests found no usable host (503 UH), and the hosts out of rotation now
  connect_fail     connections failed to open (UF), per host
  ejections        outlier ejections by type, and the hosts ejected now with the time left
  health_check     failed health checks, and the hosts failing now
  timeouts         requests that timed out (504 UT)
  retries          retries as a share of the requests sent upstream (upstream_rq_total), those
                   that ran out (URX) and those held back by the retry budget or max_retries (UO)
  verdict          overload (limits refused, retries held back), dead hosts (UH, UF, ejections,
                   failed health checks), overload and dead hosts, or failing upstream (only
                   retries, URX or UT: errors from hosts that stayed in rotation)
A meshd where nothing was refused or failed gets one line saying so (none with -o json).
--log FILE counts UO, URX, UH, UF, UC, UR and UT lines and gives the same verdict words
(-o json: one object with \"kind\": \"log\"). URX alone can't tell overload from failing hosts:
the upstream's own log or `meshstat why --admin <upstream>` shows whether it refused (UO).

Examples:
  meshstat why
  meshstat why svc --log /var/log/meshd/access.log
  meshstat -o json why | jq 'select(.kind == \"verdict\")'"
    )]
    Why {
        /// Only clusters whose name matches this regular expression.
        pattern: Option<String>,
        /// Also read this access log (repeatable): UO, URX, UH, UF, UC, UR, UT lines.
        #[arg(long = "log", value_name = "FILE")]
        logs: Vec<PathBuf>,
    },
    /// The table of response flags and their meanings.
    Flags,
}
