//! meshd's command line.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;

/// `NAME=IP:PORT`, as `--listen`, `--app` and `--egress` take it.
#[derive(Debug, Clone)]
pub struct NodeAddr {
    /// The node.
    pub node: String,
    /// The address.
    pub addr: SocketAddr,
}

impl std::str::FromStr for NodeAddr {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (node, addr) = s
            .split_once('=')
            .ok_or_else(|| format!("expected NAME=IP:PORT, got {s:?}"))?;
        if node.is_empty() {
            return Err(format!("expected NAME=IP:PORT, got {s:?} (empty name)"));
        }
        let addr = addr
            .parse()
            .map_err(|e| format!("{addr:?} is not an IP:PORT address: {e}"))?;
        Ok(NodeAddr {
            node: node.to_owned(),
            addr,
        })
    }
}

/// An octal file mode such as `0660`.
fn parse_mode(s: &str) -> Result<u32, String> {
    u32::from_str_radix(s.trim_start_matches("0o"), 8)
        .ok()
        .filter(|m| *m <= 0o777)
        .ok_or_else(|| format!("expected an octal mode such as 0660, got {s:?}"))
}

/// The mesh proxy daemon: serves the virtual nodes and gateways of its config directory with
/// Envoy's circuit breakers, exact limits, Envoy stats and access logs.
#[derive(Debug, Parser)]
#[command(
    name = "meshd",
    version,
    after_help = "Examples:
  meshd --config-dir /etc/meshd
  meshd --check-config --config-dir /etc/meshd --node green   # ExecStartPre=: exit 0 or 2
  meshd --config-dir examples/walkthrough --node green --app green=127.0.0.1:9080
  meshd --config-dir /etc/meshd --node client --access-log /dev/stdout --access-log-encoding JSON
  curl -s localhost:9901/stats | grep cx_open

Every *.json file in the config directory holds one App Mesh resource (CLI input or describe
output), an Istio object (DestinationRule, VirtualService, ServiceEntry, WorkloadEntry) or an
array of them; every *.yaml or *.yml file one or more of them as YAML documents (8 MiB per
file, 16 MiB per directory at most). A WorkloadEntry is served like a virtual node: by its
address or --node; --access-log logs its requests. The directory is
watched, and SIGHUP re-reads it: a valid change applies at once, without restart and without
cutting in-flight requests; an invalid one is logged (file, JSON path, reason) and the running
config keeps serving. A missing or empty directory while serving is a fault: the running config
keeps serving and the directory's return is applied. At start, an invalid, missing or empty
directory serves the last good config saved in --state-dir (unless --strict-config); with no
last good config, a missing or unreadable directory exits 1.

Which nodes are served, and why, is logged at start and after every reload that changes it;
/ready and `meshctl get` show it too.

Exit codes: 0 stopped by a signal (a second SIGTERM/SIGINT cuts the drain short), 1 runtime
failure (e.g. a port in use, no config directory), 2 invalid flags, variables or
invalid config at startup (with no last good config to serve, or --strict-config), or a
--node that names no node of the config."
)]
pub struct Args {
    /// Directory of mesh resources (*.json, *.yaml, *.yml), watched for changes.
    #[arg(long, env = "MESHD_CONFIG_DIR", default_value = "/etc/meshd")]
    pub config_dir: PathBuf,

    /// meshd's own state: the apply journal (which makes a multi-file apply atomic across a
    /// crash) and the last-good snapshot of the config, one pair per config directory. Never
    /// inside the config directory.
    #[arg(
        long,
        env = "MESHD_STATE_DIR",
        default_value = "/var/lib/meshd",
        value_name = "DIR"
    )]
    pub state_dir: PathBuf,

    /// Exit 2 at start when the config directory is invalid, instead of serving the last good
    /// config saved in the state directory (for CI checks of a config directory).
    #[arg(long, env = "MESHD_STRICT_CONFIG")]
    pub strict_config: bool,

    /// Admin HTTP endpoint (/stats, /clusters, ...). Port 0 picks a free port.
    #[arg(long, env = "MESHD_ADMIN", default_value = "127.0.0.1:9901")]
    pub admin: SocketAddr,

    /// A host name the admin endpoint accepts in `Host` besides IP addresses and `localhost`
    /// (repeatable, or comma-separated in the variable), e.g. the name Prometheus scrapes this
    /// machine by. Other names are refused (DNS rebinding).
    #[arg(
        long = "admin-allow-host",
        env = "MESHD_ADMIN_ALLOW_HOST",
        value_delimiter = ',',
        value_name = "NAME"
    )]
    pub admin_allow_hosts: Vec<String>,

    /// Write the admin endpoint's bound address to this file once meshd is ready.
    #[arg(long, value_name = "FILE")]
    pub admin_address_path: Option<PathBuf>,

    /// A read-only HTTP endpoint for the fleet's scrapers (Prometheus, `meshstat --fleet`):
    /// GET `/stats`, `/stats/prometheus`, `/clusters`, `/ready` only, with the admin's
    /// browser and `Host` checks; e.g. the VM's address and the fleet's port 9902. Off by
    /// default; port 0 picks a free port (shown in the admin's `/listeners`).
    #[arg(long, env = "MESHD_STATS_LISTEN", value_name = "IP:PORT")]
    pub stats_listen: Option<SocketAddr>,

    /// Control socket for meshctl.
    #[arg(long, env = "MESHD_SOCKET", default_value = "/run/meshd/meshd.sock")]
    pub socket: PathBuf,

    /// Group of the control socket: its members may change the mesh. Default: meshd's group.
    #[arg(long, env = "MESHD_SOCKET_GROUP", value_name = "GROUP")]
    pub socket_group: Option<String>,

    /// Permissions of the control socket, in octal. Who may change the mesh is still checked
    /// per call (root, meshd's user, the socket's group), whatever the mode.
    #[arg(long, env = "MESHD_SOCKET_MODE", default_value = "0660", value_name = "MODE",
          value_parser = parse_mode)]
    pub socket_mode: u32,

    /// Close a control-socket connection that sends no complete request head within this time.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration, value_name = "DURATION")]
    pub control_timeout: Duration,

    /// Serve this virtual node or gateway (repeatable, or comma-separated in the variable, e.g.
    /// from the systemd unit's EnvironmentFile /etc/default/meshd). Default: the virtual nodes
    /// whose DNS hostname (or --listen address) is an address of this machine, and the gateways
    /// whose --listen address is. Every other node is remote: used for routing, never bound.
    #[arg(
        long = "node",
        env = "MESHD_NODE",
        value_delimiter = ',',
        value_name = "NAME"
    )]
    pub nodes: Vec<String>,

    /// Bind a node's listener here instead of its DNS hostname and port (repeatable).
    #[arg(long = "listen", value_name = "NAME=IP:PORT")]
    pub listen: Vec<NodeAddr>,

    /// A node's local app address instead of 127.0.0.1:<listener port> (repeatable).
    #[arg(long = "app", value_name = "NAME=IP:PORT")]
    pub app: Vec<NodeAddr>,

    /// A node's egress listener instead of 127.0.0.1:15001 (repeatable).
    #[arg(long = "egress", value_name = "NAME=IP:PORT")]
    pub egress: Vec<NodeAddr>,

    /// The access log of Istio workloads (WorkloadEntries), as Istio's
    /// meshConfig.accessLogFile: a file, or /dev/stdout. App Mesh nodes set theirs in
    /// `spec.logging`.
    #[arg(long, env = "MESHD_ACCESS_LOG", value_name = "FILE")]
    pub access_log: Option<std::path::PathBuf>,

    /// Its encoding, as Istio's meshConfig.accessLogEncoding: TEXT (Envoy's default format)
    /// or JSON (Istio's keys, plus upstream_request_attempt_count).
    #[arg(long, env = "MESHD_ACCESS_LOG_ENCODING", default_value = "TEXT", value_parser = ["TEXT", "JSON"], ignore_case = true)]
    pub access_log_encoding: String,

    /// How long a client may take to send a complete request head: slower clients are
    /// disconnected and counted in `http.<prefix>.downstream_rq_header_timeout` (slowloris).
    /// The same timer closes a kept-alive connection that waits this long for its next request
    /// (counted in `downstream_cx_idle_timeout`).
    #[arg(long, env = "MESHD_REQUEST_HEADERS_TIMEOUT", default_value = "30s", value_parser = humantime::parse_duration, value_name = "DURATION")]
    pub request_headers_timeout: Duration,

    /// Append every outlier ejection and unejection here, one JSON line each (Envoy's
    /// `outlier_log_path` events). They are logged either way.
    #[arg(long, env = "MESHD_OUTLIER_LOG", value_name = "FILE")]
    pub outlier_log: Option<PathBuf>,

    /// How often DNS names of upstream hosts are resolved again.
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    pub dns_refresh: Duration,

    /// How long to wait for more changes in the config directory before applying them.
    #[arg(long, default_value = "200ms", value_parser = humantime::parse_duration)]
    pub debounce: Duration,

    /// On SIGTERM or SIGINT, how long requests in flight may take to finish. meshd closes its
    /// listeners at once (new connections are refused), closes idle keep-alive connections, ends
    /// each busy one after its response, and exits 0 when the last request is done; at this
    /// deadline (or at a second SIGTERM/SIGINT) it cuts what still runs (logged with flag LR;
    /// the `drain finished` line says how many were cut) and exits 0. The default is Envoy's
    /// --drain-time-s, well inside systemd's 90 s TimeoutStopSec.
    #[arg(long, env = "MESHD_DRAIN_TIMEOUT", default_value = "10s", value_name = "DURATION",
          value_parser = humantime::parse_duration)]
    pub drain_timeout: Duration,

    /// Worker threads serving connections (Envoy's --concurrency). Default: the cores meshd may
    /// use (its CPU affinity and cgroup quota).
    #[arg(long, env = "MESHD_CONCURRENCY", value_name = "N",
          value_parser = clap::value_parser!(u32).range(1..))]
    pub concurrency: Option<u32>,

    /// Log level (trace, debug, info, warn, error, off) or filter (tracing's EnvFilter
    /// syntax, e.g. `info,meshd::config=debug`). Without the flag: MESHD_LOG, else RUST_LOG,
    /// else info. Under systemd (JOURNAL_STREAM set) logs go to the journal with their fields
    /// (NODE, CLUSTER, LISTENER, FLAG, ...).
    #[arg(
        long = "log-level",
        visible_alias = "log",
        env = "MESHD_LOG",
        value_name = "LEVEL"
    )]
    pub log: Option<String>,

    /// Validate the config directory, print which nodes this machine would serve (with the
    /// same flags as the daemon), and exit: 0 valid, 2 invalid. For `ExecStartPre=`.
    #[arg(long)]
    pub check_config: bool,
}

/// For a flag value clap refused: the `MESHD_*` variable it came from, when the flag was not
/// on the command line but its variable is set (clap's message names only the flag).
pub fn env_source(e: &clap::Error) -> Option<String> {
    use clap::error::{ContextKind, ContextValue};
    use clap::CommandFactory;
    let Some(ContextValue::String(arg)) = e.get(ContextKind::InvalidArg) else {
        return None;
    };
    let long = arg.split_whitespace().next()?.strip_prefix("--")?;
    let cmd = Args::command();
    let var = cmd
        .get_arguments()
        .find(|a| a.get_long() == Some(long))?
        .get_env()?
        .to_str()?
        .to_owned();
    let on_command_line = std::env::args_os().any(|a| {
        a.to_str()
            .is_some_and(|a| a == format!("--{long}") || a.starts_with(&format!("--{long}=")))
    });
    (std::env::var_os(&var).is_some() && !on_command_line).then_some(var)
}
