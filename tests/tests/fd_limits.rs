//! meshd out of file descriptors: a real meshd whose fd limit is lowered with util-linux's
//! `prlimit` to just above what it holds, real clients that exhaust it. meshd must back off
//! instead of spinning, log the condition a bounded number of times, count it, keep serving the
//! connections it has, and accept again once clients close.

use std::net::TcpStream;
use std::os::unix::net::UnixStream;
use std::process::Command;
use std::time::{Duration, Instant};

use mesh_tests::{bin, eventually, run_bounded, walkthrough_config, DemoApp, Meshd};

/// File descriptors meshd is given above those it holds when the limit is set: that many client
/// connections are accepted, the rest wait in the listen backlog.
const HEADROOM: usize = 8;
/// Connections opened to the listener beyond the free descriptors: they wait in the backlog.
const WAITING: usize = 4;
/// How long meshd's CPU use is measured while exhausted (a measurement window, printed, never
/// asserted).
const WINDOW: Duration = Duration::from_secs(3);
/// meshd's accept loops log an exhausted socket at most once per this interval
/// (`meshd::accept::LOG_INTERVAL`).
const LOG_INTERVAL: Duration = Duration::from_secs(10);
/// The accept loops that are exhausted in this test: the listener, the admin endpoint and the
/// control socket.
const LOOPS: u64 = 3;

/// The numbers of `pid`'s open file descriptors.
fn open_fds(pid: u32) -> Vec<usize> {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .expect("read /proc/PID/fd")
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect()
}

/// utime + stime of `pid`, in clock ticks (proc(5): fields 14 and 15 of /proc/PID/stat).
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("read /proc/PID/stat");
    // The command name (field 2) is in parentheses and may hold spaces: split after it.
    let rest = &stat[stat.rfind(')').expect("comm field") + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // `rest` starts at field 3, so fields 14 and 15 are at indexes 11 and 12.
    fields[11].parse::<u64>().expect("utime") + fields[12].parse::<u64>().expect("stime")
}

fn clock_ticks_per_second() -> u64 {
    let r = run_bounded(
        {
            let mut c = Command::new("getconf");
            c.arg("CLK_TCK");
            c
        },
        "getconf CLK_TCK",
    );
    r.stdout.trim().parse().expect("CLK_TCK")
}

fn prlimit_nofile(pid: u32, n: usize) {
    let mut cmd = Command::new("prlimit");
    cmd.arg("--pid")
        .arg(pid.to_string())
        .arg(format!("--nofile={n}:{n}"));
    let r = run_bounded(cmd, "prlimit");
    assert_eq!(r.code, 0, "prlimit failed: {}", r.stderr);
}

/// A keep-alive client: requests reuse one connection, so they still reach a meshd that cannot
/// accept new ones.
fn keep_alive_agent() -> ureq::Agent {
    ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(20))
        .max_idle_connections_per_host(1)
        .build()
}

fn get(agent: &ureq::Agent, url: &str) -> (u16, String) {
    match agent.get(url).call() {
        Ok(r) => (r.status(), r.into_string().unwrap_or_default()),
        Err(ureq::Error::Status(code, r)) => (code, r.into_string().unwrap_or_default()),
        Err(e) => panic!("GET {url}: {e}"),
    }
}

fn stat(body: &str, name: &str) -> Option<u64> {
    body.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(": ")?.parse().ok())
}

fn exhausted_lines(log: &str) -> usize {
    log.lines()
        .filter(|l| l.contains("Too many open files"))
        .count()
}

#[test]
fn out_of_fds_backs_off_logs_rarely_counts_keeps_serving_and_recovers() {
    let r = run_bounded(
        {
            let mut c = Command::new("prlimit");
            c.arg("--version");
            c
        },
        "prlimit --version",
    );
    assert_eq!(r.code, 0, "this test needs util-linux's prlimit");

    let app = DemoApp::start("green", &[]);
    let (_dir, config) = walkthrough_config();
    let meshd = Meshd::start(
        &config,
        &[
            "--node",
            "green",
            "--listen",
            "green=127.0.0.1:0",
            "--app",
            &format!("green={}", app.addr),
        ],
    );
    let pid = meshd.proc.pid();
    let listener = meshd.listener("green-ingress");
    let green = format!("http://{listener}/");
    let stats_url = meshd.url("/stats");

    // Connections held from before the exhaustion: one to the admin endpoint, one through the
    // listener (whose request also leaves an idle upstream connection in meshd's pool).
    let admin = keep_alive_agent();
    let client = keep_alive_agent();
    assert_eq!(get(&admin, &stats_url).0, 200);
    assert_eq!(get(&client, &green).0, 200);

    // RLIMIT_NOFILE bounds descriptor numbers: the limit leaves HEADROOM numbers free above the
    // highest one in use (and whatever holes lie below it).
    let limit = open_fds(pid).into_iter().max().expect("meshd has fds") + 1 + HEADROOM;
    prlimit_nofile(pid, limit);
    let log_before = exhausted_lines(&meshd.proc.stderr());

    // Exhaust it: more connections than free descriptors to the listener, one waiting on the admin endpoint and one
    // on the control socket.
    let free = limit - open_fds(pid).len();
    let mut held: Vec<TcpStream> = (0..free + WAITING)
        .map(|_| TcpStream::connect(listener).expect("connect listener"))
        .collect();
    eventually(
        "meshd to hold as many fds as its limit",
        Duration::from_secs(20),
        || (open_fds(pid).iter().filter(|&&n| n < limit).count() == limit).then_some(()),
    );
    held.push(TcpStream::connect(meshd.admin).expect("connect admin"));
    let waiting_control = UnixStream::connect(&meshd.socket).expect("connect control socket");
    let started = Instant::now();
    eventually(
        "meshd to log that it is out of fds",
        Duration::from_secs(20),
        || (exhausted_lines(&meshd.proc.stderr()) > log_before).then_some(()),
    );

    // CPU while exhausted: a measurement, printed, not asserted.
    let (t0, c0) = (Instant::now(), cpu_ticks(pid));
    std::thread::sleep(WINDOW);
    let (t1, c1) = (Instant::now(), cpu_ticks(pid));
    let cpu = (c1 - c0) as f64 / clock_ticks_per_second() as f64 / (t1 - t0).as_secs_f64();
    println!(
        "meshd CPU while out of fds: {:.1} % of one core over {:.1} s",
        cpu * 100.0,
        (t1 - t0).as_secs_f64()
    );

    // Logged once per socket and interval, not per failure. The bound grows with the time
    // exhausted so that a slow run cannot fail it: it is the rate limit, not a timing.
    let exhausted_for = started.elapsed().as_secs() / LOG_INTERVAL.as_secs();
    let log = meshd.proc.stderr();
    let lines = exhausted_lines(&log) - log_before;
    println!("\"Too many open files\" log lines while exhausted: {lines}");
    let bound = LOOPS * (2 + exhausted_for);
    assert!(
        lines as u64 <= bound,
        "{lines} log lines about the exhaustion in {:?}, expected at most {bound}",
        started.elapsed()
    );

    // Counted, per listener, and for the admin endpoint and the control socket; read on the
    // admin connection held from before.
    let counter = format!(
        "listener.{}.downstream_cx_overflow",
        listener.to_string().replace(':', "_")
    );
    for name in [
        counter.as_str(),
        "listener.admin.downstream_cx_overflow",
        "listener.control.downstream_cx_overflow",
    ] {
        eventually(name, Duration::from_secs(20), || {
            let (status, body) = get(&admin, &stats_url);
            assert_eq!(status, 200);
            (stat(&body, name)? > 0).then_some(())
        });
    }
    let (_, body) = get(&admin, &format!("{stats_url}/prometheus"));
    assert!(
        body.contains(&format!(
            "envoy_listener_downstream_cx_overflow{{envoy_listener_address=\"{}\"}}",
            listener.to_string().replace(':', "_")
        )),
        "{body}"
    );

    // The connection held from before is still served (its upstream connection is pooled).
    assert_eq!(get(&client, &green).0, 200);

    // Clients close: meshd accepts again, on every socket.
    drop(held);
    drop(waiting_control);
    assert_eq!(get(&keep_alive_agent(), &green).0, 200);
    assert_eq!(get(&keep_alive_agent(), &meshd.url("/ready")).0, 200);
    let mut ctl = Command::new(bin("meshctl"));
    ctl.arg("--socket").arg(&meshd.socket).args(["get", "vn"]);
    let r = run_bounded(ctl, "meshctl get");
    assert_eq!(r.code, 0, "{}", r.stderr);
}
