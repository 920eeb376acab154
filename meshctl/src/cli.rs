//! meshctl's command line (also the source of the completions and the man page).

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

/// Applies, lists, describes and deletes mesh resources (App Mesh JSON; Istio's
/// DestinationRule, VirtualService, ServiceEntry and WorkloadEntry in YAML or JSON) through
/// meshd's control socket.
#[derive(Debug, Parser)]
#[command(
    name = "meshctl",
    version,
    after_help = "Examples:
  meshctl apply -f virtualnode.json           # created | configured | unchanged
  meshctl apply -f examples/walkthrough/ --dry-run
  meshctl get                                 # every resource
  meshctl get vn -o wide
  meshctl describe virtualnode green > green.json && meshctl apply -f green.json
  meshctl describe vn green --live            # plus breaker occupancy and host health
  meshctl delete route color-paths/red
  meshctl validate -f config/                 # offline, no daemon (CI)
  meshctl apply -f vn-green.json --config-dir repo/mesh/   # offline, into a config repository
  meshctl diff -f vn-green.json --config-dir /etc/meshd    # what an apply would change
  sudo meshctl capture enable --ignore-uid meshd          # apps' outbound TCP into meshd
  meshctl validate -f config/ -o json | jq .notInForce   # accepted settings not in force yet
  meshctl apply -f reviews.yaml               # Istio objects, several documents (---)
  meshctl get dr                              # NAME NAMESPACE HOST SUBSETS
  meshctl get vs                              # App Mesh and Istio virtual services
  meshctl describe dr reviews -n bookinfo     # YAML, plus `not in force` lines on stderr
  meshctl delete se reviews-vm

Kinds: mesh, virtualnode (vn), virtualgateway (vg), gatewayroute (gr), virtualrouter (vr),
route (rt), virtualservice (vs); also virtual-node, VirtualNode, plurals.
Istio kinds: destinationrule (dr), serviceentry (se), workloadentry (we),
virtualservice.networking.istio.io. `vs` lists both virtual service kinds; where a name is
both, pick with virtualservice.appmesh.k8s.aws or virtualservice.networking.istio.io.

Exit codes: 0 ok, 1 failure (no daemon, refused, not found, in use), 2 invalid input or usage."
)]
pub struct Cli {
    /// meshd's control socket.
    #[arg(
        long,
        global = true,
        env = "MESHD_SOCKET",
        default_value = "/run/meshd/meshd.sock"
    )]
    pub socket: PathBuf,

    /// The mesh, when a name exists in several meshes; for Istio kinds the namespace
    /// (`--namespace`, `-n`).
    #[arg(
        long,
        short = 'n',
        visible_alias = "namespace",
        global = true,
        value_name = "NAME"
    )]
    pub mesh: Option<String>,

    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create or update resources: validated against the whole mesh, written to meshd's config
    /// directory and in force before this returns. All or nothing.
    Apply {
        /// A resource file (one resource or an array; CLI input or describe output; *.yaml and
        /// *.yml files are YAML, several documents each), a directory of *.json/*.yaml/*.yml
        /// files, or - for stdin (JSON or YAML). Repeatable.
        #[arg(
            short = 'f',
            long = "filename",
            required = true,
            value_name = "FILE|DIR|-"
        )]
        files: Vec<PathBuf>,
        /// Validate and show what would change, without writing.
        #[arg(long)]
        dry_run: bool,
        /// Apply to this config directory without a daemon (a config repository, or a
        /// directory another tool distributes): validated against the whole mesh there and
        /// written exactly as meshd's own apply writes it. Nothing is put in force.
        #[arg(long, value_name = "DIR")]
        config_dir: Option<PathBuf>,
        /// Output format.
        #[arg(short, long, value_enum, default_value_t = Format::Text)]
        output: Format,
    },
    /// Transparent capture of the apps' outbound TCP into meshd's egress listener (nftables,
    /// table `ip meshd_capture`; needs root): `enable` installs or replaces it in one
    /// transaction, `disable` removes it, `status` prints it (exit 1 when not enabled).
    Capture {
        /// What to do.
        #[arg(value_enum)]
        action: CaptureAction,
        /// meshd's egress listener port on 127.0.0.1 (`--egress`).
        #[arg(long, default_value_t = 15001)]
        egress_port: u16,
        /// The user or uid meshd runs as: its own connections are never captured (App Mesh's
        /// APPMESH_IGNORE_UID). Repeatable.
        #[arg(long = "ignore-uid", value_name = "USER|UID", default_value = "meshd")]
        ignore_uids: Vec<String>,
        /// Destination IPv4 addresses or CIDRs never captured (App Mesh's
        /// APPMESH_EGRESS_IGNORED_IP; default the EC2 and ECS metadata endpoints).
        #[arg(long = "ignore-ip", value_name = "CIDR", value_delimiter = ',',
              default_value = "169.254.169.254,169.254.170.2", value_parser = crate::capture::check_ip)]
        ignore_ips: Vec<String>,
        /// Destination ports never captured (22 and the egress port always are).
        #[arg(long = "ignore-port", value_name = "PORT", value_delimiter = ',')]
        ignore_ports: Vec<u16>,
    },
    /// Show what `apply -f` would change in the config directory's files, as a unified diff
    /// (nothing is written; no daemon needed). Exit 0 whether or not anything would change.
    Diff {
        /// A resource file, a directory of *.json files, or - for stdin. Repeatable.
        #[arg(
            short = 'f',
            long = "filename",
            required = true,
            value_name = "FILE|DIR|-"
        )]
        files: Vec<PathBuf>,
        /// The config directory to compare with (meshd's `--config-dir`).
        #[arg(long, value_name = "DIR", default_value = "/etc/meshd")]
        config_dir: PathBuf,
    },
    /// Check resource files offline (no daemon): each resource alone, then references among
    /// the given files. Settings that are accepted but not in force yet are listed after the
    /// `ok` line, one `not in force:` line each.
    Validate {
        /// A resource file, a directory of *.json files, or - for stdin. Repeatable.
        #[arg(
            short = 'f',
            long = "filename",
            required = true,
            value_name = "FILE|DIR|-"
        )]
        files: Vec<PathBuf>,
        /// Skip the whole-mesh reference checks (for files that refer to resources elsewhere).
        #[arg(long)]
        no_references: bool,
        /// `json`: {"valid", "resources", "files", "errors", "notInForce"} on stdout (exit 2
        /// when invalid, as in text).
        #[arg(short, long, value_enum, default_value_t = Format::Text)]
        output: Format,
    },
    /// List resources as a table.
    Get {
        /// Only this kind (vn, virtual-node, route, ...).
        kind: Option<String>,
        /// Only this name (`<router>/<route>` for routes).
        name: Option<String>,
        /// Output format.
        #[arg(short, long, value_enum, default_value_t = GetFormat::Table)]
        output: GetFormat,
    },
    /// Show one resource as App Mesh's describe JSON (round-trips through apply). Settings that
    /// are accepted but not in force yet are named on stderr, one `not in force` line each.
    Describe {
        /// The kind.
        kind: String,
        /// The name (`<router>/<route>` for routes when the bare name is ambiguous).
        name: String,
        /// Add the live state of a node or gateway this meshd serves: per cluster the breaker
        /// occupancy and the hosts, each with its health flags and, where the cluster has
        /// outlier detection or a health check, why it is out (ejection type and number, time
        /// left) and its check's state. Shown by default when stdout is a terminal.
        #[arg(long, conflicts_with = "no_live")]
        live: bool,
        /// Never add the live state.
        #[arg(long)]
        no_live: bool,
        /// `json`: the describe JSON with the live state under "live" (machine readable).
        #[arg(short, long, value_enum, default_value_t = Format::Text)]
        output: Format,
    },
    /// Every limit, retry policy and ejection setting a request from a local app to HOST
    /// passes through on this VM, in order: the egress listener, the route (timeout, retries,
    /// weighted targets), each cluster's limits with live occupancy, retry budget, pool and
    /// outlier detection, its hosts — and the server-side limits on the VMs serving HOST.
    Explain {
        /// The host as the app writes it in `Host` (`name` or `name:port`).
        host: String,
        /// `json`: the explanation as data.
        #[arg(short, long, value_enum, default_value_t = Format::Text)]
        output: Format,
    },
    /// Delete a resource; refused while another resource refers to it.
    Delete {
        /// The kind.
        kind: String,
        /// The name.
        name: String,
        /// Show what would be deleted, without deleting.
        #[arg(long)]
        dry_run: bool,
    },
    /// Print a shell completion script.
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff).
    Man,
}

/// `meshctl capture` actions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CaptureAction {
    /// Install (or replace) the capture rules.
    Enable,
    /// Remove them.
    Disable,
    /// Print them; exit 1 when capture is not enabled.
    Status,
}

/// Output of apply and describe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// For people (describe: JSON for App Mesh kinds, YAML for Istio's).
    Text,
    /// JSON.
    Json,
    /// YAML (describe; the other commands print text).
    Yaml,
}

/// Output of get.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum GetFormat {
    /// Name, mesh, version, last update.
    Table,
    /// The table plus uid, ARN and file.
    Wide,
    /// The describe JSON of every resource.
    Json,
    /// The same as YAML documents.
    Yaml,
}
