//! Debian's `prometheus` scrapes the fleet's stats listeners, its targets written by
//! `meshstat --fleet DIR --targets` (file_sd, as `examples/fleet/prometheus.yml` reads them), and
//! its HTTP API (`/api/v1/query`) returns the breaker counters each meshd's `/stats` shows.

use std::net::TcpListener;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use mesh_tests::{eventually, http_get, Proc};
use serde_json::Value;

use super::{cluster, Fleet};
use mesh_tests::meshstat_ok;

/// How many ports a Prometheus start may try (a port picked free may be taken before it binds).
const PORT_TRIES: usize = 5;

/// A running Prometheus, killed by PID when dropped.
struct Prometheus {
    _proc: Proc,
    base: String,
}

/// Starts `prometheus` with `config`, its storage in `dir`, on a free loopback port (it takes no
/// port 0: a port is found free by binding it and releasing it; should another process take it
/// first, Prometheus exits and the next try takes another). Fails the test saying why when the
/// binary is missing or never gets ready.
fn start_prometheus(config: &Path, dir: &Path) -> Prometheus {
    let found = Command::new("prometheus").arg("--version").output();
    assert!(
        found.as_ref().is_ok_and(|o| o.status.success()),
        "prometheus cannot be run ({}): install Debian's package (`apt-get install -y \
         --no-install-recommends prometheus`; .ci/run does)",
        found
            .err()
            .map_or("it failed".to_owned(), |e| e.to_string())
    );
    let mut last = String::new();
    for attempt in 0..PORT_TRIES {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let storage = dir.join(format!("tsdb-{attempt}"));
        let mut cmd = Command::new("prometheus");
        cmd.arg(format!("--config.file={}", config.display()))
            .arg(format!("--storage.tsdb.path={}", storage.display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--log.level=warn");
        let (mut proc, stdout) = Proc::spawn("prometheus", cmd, dir);
        std::thread::spawn(move || {
            let _ = std::io::copy(&mut std::io::BufReader::new(stdout), &mut std::io::sink());
        });
        let base = format!("http://127.0.0.1:{port}");
        let ready = eventually(
            "prometheus to answer /-/ready",
            Duration::from_secs(30),
            || {
                if let Some(code) = proc.wait_exit(Duration::from_millis(1)) {
                    return Some(Err(code));
                }
                let r = mesh_tests::agent().get(&format!("{base}/-/ready")).call();
                r.is_ok_and(|r| r.status() == 200).then_some(Ok(()))
            },
        );
        match ready {
            Ok(()) => return Prometheus { _proc: proc, base },
            Err(code) => last = format!("exit {code}: {}", proc.stderr()),
        }
    }
    panic!("prometheus did not start in {PORT_TRIES} tries; last: {last}");
}

impl Prometheus {
    /// `GET /api/v1/query?query=<q>`: instance → (node label, value) of each series.
    fn query(&self, q: &str) -> Vec<(String, String, u64)> {
        let url = format!("{}/api/v1/query?query={}", self.base, encode(q));
        let r = http_get(&url);
        assert_eq!(r.status, 200, "{url}: {}", r.body);
        let v: Value = serde_json::from_str(&r.body).expect("query JSON");
        let mut out: Vec<(String, String, u64)> = v["data"]["result"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|s| {
                        let m = &s["metric"];
                        let value = s["value"][1].as_str()?.parse::<f64>().ok()?;
                        Some((
                            m["instance"].as_str()?.to_owned(),
                            m["node"].as_str()?.to_owned(),
                            value as u64,
                        ))
                    })
                    .collect()
            })
            .unwrap_or_default();
        out.sort();
        out
    }
}

fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

#[test]
fn prometheus_scrapes_the_fleet_and_reads_the_breaker_counters() {
    let f = Fleet::start();
    f.a.refuse(2);
    f.b.refuse(3);

    // The targets, as the README tells users to write them.
    let targets = f.dir.path().join("targets.json");
    let r = meshstat_ok(&[
        "--fleet",
        f.config.to_str().expect("utf-8"),
        "--stats-port",
        &f.port.to_string(),
        "--targets",
    ]);
    std::fs::write(&targets, r.stdout).expect("targets");
    // examples/fleet/prometheus.yml with the targets file and a short interval for the test.
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/fleet/prometheus.yml");
    let yml = std::fs::read_to_string(&example).expect("examples/fleet/prometheus.yml");
    assert!(yml.contains("/etc/prometheus/meshd-targets.json"), "{yml}");
    let yml = yml
        .replace(
            "/etc/prometheus/meshd-targets.json",
            &targets.display().to_string(),
        )
        .replace("scrape_interval: 15s", "scrape_interval: 200ms")
        .replace("scrape_timeout: 10s", "scrape_timeout: 200ms");
    let config = f.dir.path().join("prometheus.yml");
    std::fs::write(&config, yml).expect("prometheus.yml");
    let prom = start_prometheus(&config, f.dir.path());

    for stat in [
        "upstream_rq_pending_overflow",
        "circuit_breakers.default.rq_pending_refused",
    ] {
        let metric = format!("envoy_cluster_{}", stat.replace('.', "_"));
        let mut want: Vec<(String, String, u64)> = f
            .vms()
            .iter()
            .map(|vm| {
                let v = vm
                    .meshd
                    .stat(&format!("cluster.{}.{stat}", cluster(vm.name)));
                (vm.stats.to_string(), vm.name.to_owned(), v)
            })
            .collect();
        want.sort();
        assert_eq!(
            want.iter().map(|w| w.2).collect::<Vec<_>>(),
            [2, 3],
            "{stat}"
        );
        // Scrapes come every 200 ms; the first ones may not have landed yet.
        let got = eventually(
            &format!("prometheus to return {metric} of both meshd"),
            Duration::from_secs(30),
            || {
                let got = prom.query(&metric);
                (got == want).then_some(got)
            },
        );
        assert_eq!(got, want, "{metric}");
    }
}
