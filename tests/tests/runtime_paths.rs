//! The data-path pieces the Istio compile lowers onto (endpoint lists, clusters without
//! endpoints and with `|`/`.` in their names, fault injection, retriable status codes, zero
//! timeouts), end to end through meshd's own server.
//!
//! No App Mesh config can express these, so each test builds the vocabulary-free
//! `RuntimeConfig` the way the compile will and serves it with meshd's `Server` and admin
//! endpoint in the test process: real listeners, real demo-app upstreams, real HTTP clients,
//! and the real `meshstat` binary reading the admin endpoint.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mesh_core::accesslog::Format;
use mesh_core::breaker::Thresholds;
use mesh_core::fault::FaultPolicy;
use mesh_core::pool::PoolSettings;
use mesh_core::retry::{RetryBudget, RetryOn, RetryPolicy};
use mesh_core::runtime::{
    AccessLog, Bind, Cluster, Endpoints, HttpMatch, Listener, PathMatch, Role, Route, Routing,
    RuntimeConfig, VirtualHost, WeightedCluster,
};
use mesh_tests::{http, http_get, meshstat_ok, parse_stats, DemoApp, TempDir};

/// meshd's server and admin endpoint, serving one egress listener, in this process.
struct InProcess {
    rt: tokio::runtime::Runtime,
    admin: SocketAddr,
    stats_listener: SocketAddr,
    listener: SocketAddr,
    log: std::path::PathBuf,
    _dir: TempDir,
}

impl InProcess {
    fn start(routes: Vec<Route>, clusters: Vec<Cluster>, request_timeout: Duration) -> InProcess {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = dir.path().join("access.log");
        let fields = [
            ("response_code", "%RESPONSE_CODE%"),
            ("response_flags", "%RESPONSE_FLAGS%"),
            ("details", "%RESPONSE_CODE_DETAILS%"),
            ("upstream_cluster", "%UPSTREAM_CLUSTER%"),
            ("path", "%REQ(:PATH)%"),
        ];
        let listener = Listener {
            node: "app".into(),
            mesh: "demo".into(),
            role: Role::Egress,
            bind: Bind::Addr(SocketAddr::from(([127, 0, 0, 1], 0))),
            routing: Arc::new(Routing::Hosts(vec![Arc::new(VirtualHost {
                name: "pyserver.demo.svc".into(),
                domains: vec!["pyserver.demo.svc".into()],
                routes,
            })])),
            admission_cluster: None,
            access_log: Some(AccessLog {
                path: log.clone(),
                format: Format::Json(
                    fields
                        .iter()
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                        .collect(),
                ),
            }),
            request_timeout,
            stream_idle_timeout: Duration::from_secs(300),
        };
        let mut clusters = clusters;
        clusters.sort_by(|a, b| a.name.cmp(&b.name));
        let config = RuntimeConfig {
            listeners: vec![listener],
            clusters,
        };
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        let (admin, stats_listener, listener) = rt.block_on(async {
            let events = meshd::resilience::EventLog::open(None).expect("event log");
            let server = meshd::server::Server::new(
                Duration::from_millis(200),
                Duration::from_secs(10),
                events,
            );
            server.apply(config).await.expect("config applies");
            let admin = Arc::new(meshd::admin::Admin {
                server: server.clone(),
                stats: Arc::default(),
                started: std::time::Instant::now(),
                in_force: Arc::new(arc_swap::ArcSwap::from_pointee(
                    meshd::config::InForce::empty(),
                )),
                allow_hosts: Vec::new(),
                stats_addr: Default::default(),
            });
            let socket = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("admin socket");
            let admin_addr = socket.local_addr().expect("admin addr");
            tokio::spawn(admin.clone().serve(socket));
            let stats_addr =
                meshd::admin::stats_listener::start(admin, SocketAddr::from(([127, 0, 0, 1], 0)))
                    .await
                    .expect("stats listener");
            let (_, _, listener) = server
                .listener_addrs()
                .into_iter()
                .find(|(n, r, _)| n == "app" && *r == Role::Egress)
                .expect("the egress listener is bound");
            (admin_addr, stats_addr, listener)
        });
        InProcess {
            rt,
            admin,
            stats_listener,
            listener,
            log,
            _dir: dir,
        }
    }

    fn get(&self, path: &str) -> mesh_tests::Reply {
        http(
            "GET",
            &format!("http://{}{path}", self.listener),
            &[("host", "pyserver.demo.svc")],
            None,
        )
    }

    fn stats(&self) -> std::collections::BTreeMap<String, u64> {
        parse_stats(&http_get(&format!("http://{}/stats", self.admin)).body)
    }

    fn stat(&self, name: &str) -> u64 {
        self.stats().get(name).copied().unwrap_or(0)
    }

    /// The access log's lines as JSON, once `n` are written.
    fn log_lines(&self, n: usize) -> Vec<serde_json::Value> {
        mesh_tests::eventually("access-log lines", Duration::from_secs(10), || {
            let text = std::fs::read_to_string(&self.log).ok()?;
            let lines: Vec<serde_json::Value> = text
                .lines()
                .map(|l| serde_json::from_str(l).expect("JSON line"))
                .collect();
            (lines.len() >= n).then_some(lines)
        })
    }
}

impl Drop for InProcess {
    fn drop(&mut self) {
        // The server's tasks end with the runtime.
        let rt = std::mem::replace(
            &mut self.rt,
            tokio::runtime::Builder::new_current_thread()
                .build()
                .expect("runtime"),
        );
        rt.shutdown_timeout(Duration::from_secs(1));
    }
}

fn cluster(name: &str, endpoints: Endpoints) -> Cluster {
    Cluster {
        name: name.into(),
        endpoints,
        thresholds: Thresholds::ENVOY_DEFAULT,
        settings: PoolSettings::default(),
        outlier_detection: None,
        health_check: None,
        retry_budget: RetryBudget::DEFAULT,
    }
}

fn route(prefix: &str, cluster: &str) -> Route {
    Route {
        name: format!("route{prefix}"),
        matcher: HttpMatch {
            path: PathMatch::Prefix(prefix.into()),
            method: None,
            headers: Vec::new(),
            hostname: None,
            query: Vec::new(),
        },
        targets: vec![WeightedCluster {
            cluster: cluster.into(),
            weight: 1,
        }],
        timeout: None,
        idle_timeout: None,
        retry: None,
        fault: None,
    }
}

fn list(entries: &[(&str, u16)]) -> Endpoints {
    Endpoints::List(entries.iter().map(|(h, p)| (h.to_string(), *p)).collect())
}

const V1: &str = "outbound|8080|v1|pyserver.demo.svc";
const V2: &str = "outbound|8080|v2|pyserver.demo.svc";

#[test]
fn an_endpoint_list_is_the_union_of_its_entries_and_an_empty_one_names_its_cluster() {
    let blue = DemoApp::start("blue", &[]);
    let green = DemoApp::start_on("green", "127.0.0.2:0", &[]);
    let (bp, gp) = (blue.addr.port(), green.addr.port());
    let mut v1 = cluster(
        V1,
        list(&[
            ("127.0.0.1", bp),
            ("127.0.0.2", gp),
            // The same host again, by name: one host; and a name that never resolves: none.
            ("localhost", bp),
            ("no-such-host.invalid", 80),
        ]),
    );
    v1.settings.lb_policy = mesh_core::balance::Policy::Random;
    let p = InProcess::start(
        vec![route("/v2", V2), route("/", V1)],
        vec![v1, cluster(V2, list(&[]))],
        Duration::from_secs(15),
    );

    // Both literal entries are hosts, the name adds its addresses once, the bad name nothing.
    let hosts = |name: &str| -> Vec<String> {
        let r = meshstat_ok(&["--admin", &p.admin.to_string(), "hosts", "-o", "json"]);
        r.stdout
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).expect("json"))
            .filter(|v| v["cluster"] == name)
            .map(|v| v["host"].as_str().expect("host").to_owned())
            .collect()
    };
    let want = [format!("127.0.0.1:{bp}"), format!("127.0.0.2:{gp}")];
    let got = mesh_tests::eventually("both hosts", Duration::from_secs(10), || {
        let h = hosts(V1);
        want.iter().all(|w| h.contains(w)).then_some(h)
    });
    assert_eq!(
        got.iter().filter(|h| **h == want[0]).count(),
        1,
        "one host per address: {got:?}"
    );
    assert!(got.iter().all(|h| !h.ends_with(":80")), "{got:?}");
    assert!(hosts(V2).is_empty());

    // Requests reach both (random balancing over the union).
    let mut colors = std::collections::BTreeSet::new();
    for _ in 0..40 {
        let r = p.get("/v1");
        if r.status == 200 {
            colors.insert(r.body.clone());
        }
    }
    assert!(colors.iter().any(|b| b.contains("blue")), "{colors:?}");
    assert!(colors.iter().any(|b| b.contains("green")), "{colors:?}");

    // The empty list: 503 UH, Envoy's body, details naming the cluster.
    let r = p.get("/v2");
    assert_eq!((r.status, r.body.as_str()), (503, "no healthy upstream"));
    let line = p
        .log_lines(41)
        .into_iter()
        .find(|l| l["path"] == "/v2")
        .expect("the /v2 line");
    assert_eq!(line["response_flags"], "UH");
    assert_eq!(
        line["details"],
        format!("no_healthy_upstream{{no_endpoints:{V2}}}")
    );
    assert_eq!(line["upstream_cluster"], V2);

    // /stats with the name whole; meshstat reads it back by the name.
    let stats = p.stats();
    assert_eq!(
        stats.get(&format!("cluster.{V2}.upstream_cx_none_healthy")),
        Some(&1),
        "{stats:?}"
    );
    assert!(stats.contains_key(&format!("cluster.{V1}.upstream_rq_total")));
    let admin = p.admin.to_string();
    let r = meshstat_ok(&["--admin", &admin, "why", "-o", "json"]);
    let finding = r
        .stdout
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).expect("json"))
        .find(|v| v["kind"] == "no_healthy_host")
        .unwrap_or_else(|| panic!("no no_healthy_host finding:\n{}", r.stdout));
    assert_eq!(finding["cluster"], V2);
    assert_eq!(
        (finding["requests"].as_u64(), finding["hosts"].as_u64()),
        (Some(1), Some(0)),
        "{finding}"
    );
    let r = meshstat_ok(&["--admin", &admin, "why"]);
    assert!(
        r.stdout
            .contains(&format!("cluster {V2}: 1 request found no usable host"))
            && r.stdout.contains("no endpoints"),
        "{}",
        r.stdout
    );
    let r = meshstat_ok(&["--admin", &admin, "clusters"]);
    assert!(
        r.stdout
            .lines()
            .any(|l| l.starts_with(&format!("{V1} host 127.0.0.2:{gp}"))),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout
            .lines()
            .any(|l| l.starts_with(&format!("{V2} limit "))),
        "{}",
        r.stdout
    );
    let r = meshstat_ok(&["--admin", &admin, "upstream_cx_none_healthy"]);
    assert!(
        r.stdout
            .lines()
            .any(|l| l.contains(V2) && l.trim_end().ends_with('1')),
        "{}",
        r.stdout
    );
    let r = meshstat_ok(&["log", "-o", "json", &p.log.display().to_string()]);
    assert!(
        r.stdout.contains(&format!("\"upstream_cluster\":\"{V2}\"")),
        "{}",
        r.stdout
    );

    // Prometheus text: the name whole in the label value.
    let prom = http_get(&format!("http://{}/stats/prometheus", p.stats_listener)).body;
    assert!(
        prom.contains(&format!(
            "envoy_cluster_upstream_cx_none_healthy{{envoy_cluster_name=\"{V2}\"}} 1"
        )),
        "{prom}"
    );
}

#[test]
fn fault_abort_and_delay_are_exact_at_100_percent_and_binomial_at_50() {
    let blue = DemoApp::start("blue", &[]);
    let v1 = cluster(V1, list(&[("127.0.0.1", blue.addr.port())]));
    let mut abort = route("/abort", V1);
    abort.fault = Some(FaultPolicy {
        delay: None,
        abort: Some((418, 100.0)),
    });
    // Would retry a 418 if an abort were ever retried.
    abort.retry = Some(RetryPolicy {
        retry_on: RetryOn::parse_envoy("418,5xx").expect("valid"),
        num_retries: 3,
        ..RetryPolicy::default()
    });
    let mut delay = route("/delay", V1);
    let d = Duration::from_millis(1200);
    delay.fault = Some(FaultPolicy {
        delay: Some((d, 100.0)),
        abort: None,
    });
    // Shorter than the delay: counted from the start, it would expire before the request
    // goes upstream.
    delay.timeout = Some(Duration::from_millis(1000));
    let mut half = route("/half", V1);
    half.fault = Some(FaultPolicy {
        delay: None,
        abort: Some((503, 50.0)),
    });
    let p = InProcess::start(
        vec![abort, delay, half, route("/", V1)],
        vec![v1],
        Duration::from_secs(15),
    );

    for _ in 0..5 {
        let r = p.get("/abort");
        assert_eq!((r.status, r.body.as_str()), (418, "fault filter abort"));
    }
    assert_eq!(p.stat("http.egress.fault.aborts_injected"), 5);
    assert_eq!(p.stat(&format!("cluster.{V1}.upstream_rq_total")), 0);
    assert_eq!(p.stat(&format!("cluster.{V1}.upstream_rq_retry")), 0);
    assert_eq!(
        blue.stats()["requests_total"].as_u64(),
        Some(0),
        "{}",
        blue.stats()
    );

    let t = Instant::now();
    let r = p.get("/delay?sleep=50");
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(t.elapsed() >= d);
    assert_eq!(p.stat("http.egress.fault.delays_injected"), 1);

    let n = 400;
    let aborted = (0..n)
        .filter(|_| {
            let r = p.get("/half");
            assert!(r.status == 200 || r.status == 503, "{}", r.status);
            r.status == 503 && r.body == "fault filter abort"
        })
        .count();
    // Binomial(400, 0.5): mean 200, standard deviation 10; 5 deviations either way.
    assert!((150..=250).contains(&aborted), "{aborted} of {n} aborted");
    assert_eq!(
        p.stat("http.egress.fault.aborts_injected"),
        5 + aborted as u64
    );

    let lines = p.log_lines(5 + 1 + n);
    let flags = |path: &str| -> Vec<String> {
        lines
            .iter()
            .filter(|l| l["path"].as_str().is_some_and(|x| x.starts_with(path)))
            .map(|l| l["response_flags"].as_str().unwrap_or("").to_owned())
            .collect()
    };
    assert!(
        flags("/abort").iter().all(|f| f == "FI"),
        "{:?}",
        flags("/abort")
    );
    assert_eq!(flags("/delay"), ["DI"]);
    let abort_line = lines.iter().find(|l| l["path"] == "/abort").expect("line");
    assert_eq!(abort_line["details"], "fault_filter_abort");
}

#[test]
fn a_retriable_status_code_is_retried_and_another_is_not() {
    let blue = DemoApp::start("blue", &[]);
    let v1 = cluster(V1, list(&[("127.0.0.1", blue.addr.port())]));
    let mut r503 = route("/", V1);
    r503.retry = Some(RetryPolicy {
        retry_on: RetryOn::parse_envoy("503").expect("valid"),
        num_retries: 2,
        ..RetryPolicy::default()
    });
    let p = InProcess::start(vec![r503], vec![v1], Duration::from_secs(15));

    let r = p.get("/?status=503");
    assert_eq!(r.status, 503);
    assert_eq!(p.stat(&format!("cluster.{V1}.upstream_rq_retry")), 2);
    assert_eq!(
        p.stat(&format!("cluster.{V1}.upstream_rq_retry_limit_exceeded")),
        1
    );
    assert_eq!(
        blue.stats()["requests_total"].as_u64(),
        Some(3),
        "{}",
        blue.stats()
    );

    let r = p.get("/?status=500");
    assert_eq!(r.status, 500);
    assert_eq!(p.stat(&format!("cluster.{V1}.upstream_rq_retry")), 2);
    assert_eq!(
        blue.stats()["requests_total"].as_u64(),
        Some(4),
        "{}",
        blue.stats()
    );
}

#[test]
fn zero_timeouts_mean_no_timeout() {
    let blue = DemoApp::start("blue", &[]);
    let v1 = cluster(V1, list(&[("127.0.0.1", blue.addr.port())]));
    let mut zero = route("/zero", V1);
    zero.timeout = Some(Duration::ZERO);
    // The listener's timeout is zero too: neither may cut a slow response.
    let p = InProcess::start(vec![zero, route("/", V1)], vec![v1], Duration::ZERO);
    for path in ["/zero?sleep=300", "/other?sleep=300"] {
        let r = p.get(path);
        assert_eq!(r.status, 200, "{path}: {}", r.body);
    }
    assert_eq!(p.stat(&format!("cluster.{V1}.upstream_rq_timeout")), 0);
}
