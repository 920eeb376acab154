//! DNS discovery across VMs (network namespaces made by examples/vms/vms.sh, dnsmasq serving the
//! zone): a caller's meshd in VM 1 sends its app's requests (a steady load from inside VM 1,
//! through meshd's egress listener) to a service whose replicas are demo apps in other VMs and
//! whose hosts are whatever the zone's DNS answers for `svc.mesh.test`. And the harness itself:
//! it tears everything down, also when the test body panics, and says why when it cannot run.

use std::collections::BTreeSet;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use mesh_tests::vms::{vms_sh, Load, VmMeshd, Vms, EGRESS};
use mesh_tests::{eventually, run_bounded};
use serde_json::json;

/// The service's name in the zone.
const SVC: &str = "svc.mesh.test";
/// The replicas' port (each replica has its own VM, so a fixed port cannot collide).
const PORT: u16 = 8080;
/// How often the caller's meshd re-resolves in these tests.
const REFRESH: &str = "200ms";
/// Bound for anything that must follow a DNS change within a few refreshes.
const FOLLOW: Duration = Duration::from_secs(20);

/// One config for every VM: node `svc` (port 8080, discovered as `svc.mesh.test`) providing
/// the virtual service `svc.mesh.test`, and node `client` (`client.mesh.test`) calling it.
fn write_config(dir: &Path) -> PathBuf {
    let config = dir.join("config");
    std::fs::create_dir_all(&config).expect("mkdir");
    let docs = [
        ("mesh.json", json!({"meshName": "m", "spec": {}})),
        (
            "vn-svc.json",
            json!({"meshName": "m", "virtualNodeName": "svc", "spec": {
                "listeners": [{"portMapping": {"port": PORT, "protocol": "http"}}],
                "serviceDiscovery": {"dns": {"hostname": SVC}}}}),
        ),
        (
            "vn-client.json",
            json!({"meshName": "m", "virtualNodeName": "client", "spec": {
                "listeners": [{"portMapping": {"port": 9090, "protocol": "http"}}],
                "serviceDiscovery": {"dns": {"hostname": "client.mesh.test"}},
                "backends": [{"virtualService": {"virtualServiceName": SVC}}]}}),
        ),
        (
            "vs-svc.json",
            json!({"meshName": "m", "virtualServiceName": SVC, "spec": {
                "provider": {"virtualNode": {"virtualNodeName": "svc"}}}}),
        ),
    ];
    for (name, doc) in docs {
        std::fs::write(config.join(name), doc.to_string()).expect("write");
    }
    config
}

fn hosts_of(vms: &Vms, vm: &[usize]) -> Vec<SocketAddr> {
    let mut v: Vec<SocketAddr> = vm
        .iter()
        .map(|i| SocketAddr::from((vms.addr(*i), PORT)))
        .collect();
    v.sort();
    v
}

fn addrs(vms: &Vms, vm: &[usize]) -> Vec<Ipv4Addr> {
    vm.iter().map(|i| vms.addr(*i)).collect()
}

/// The caller: meshd in VM 1 serving `client`, re-resolving every 200 ms; `svc` resolves to
/// the VMs `replicas`. Returns meshd and its egress cluster to the service.
fn caller(vms: &Vms, replicas: &[usize]) -> (VmMeshd, String) {
    vms.dns_set("client.mesh.test", &[vms.addr(1)]);
    vms.dns_set(SVC, &addrs(vms, replicas));
    let config = write_config(vms.dir.path());
    let m = vms.meshd(1, &config, &["client"], &["--dns-refresh", REFRESH]);
    let cluster = m.cluster("cds_egress_");
    follow(&m, &cluster, &hosts_of(vms, replicas), "the first lookup");
    (m, cluster)
}

/// Waits (bounded) until `/clusters` lists exactly `want` for `cluster`.
fn follow(m: &VmMeshd, cluster: &str, want: &[SocketAddr], what: &str) {
    eventually(
        &format!("{cluster}'s hosts to become {want:?} after {what}"),
        FOLLOW,
        || (m.hosts(cluster) == want).then_some(()),
    );
}

/// Sets the service's records to the VMs `vm` and waits until `/clusters` follows; prints how
/// many lookups that took at most (counted from before the change, for the report).
fn scale(vms: &Vms, m: &VmMeshd, cluster: &str, vm: &[usize]) {
    let attempts = || m.stat(&format!("cluster.{cluster}.update_attempt"));
    let before = attempts();
    vms.dns_set(SVC, &addrs(vms, vm));
    let what = format!("scaling to {}", vm.len());
    follow(m, cluster, &hosts_of(vms, vm), &what);
    eprintln!(
        "{what}: /clusters followed within {} lookup(s)",
        attempts() - before
    );
}

fn count_lines(log: &str, needle: &str) -> usize {
    log.lines().filter(|l| l.contains(needle)).count()
}

/// Scaling by DNS alone: 1 → 3 → 2 replicas while VM 1's app sends a steady load through its
/// meshd. `/clusters` follows each change, every replica added gets requests, the removed one
/// gets none once it is out, and not one request fails (also after the removed replica stops).
#[test]
fn scaling_by_dns_records_drops_no_request() {
    let vms = Vms::up(4);
    let mut apps: Vec<_> = [(2, "a"), (3, "b"), (4, "c")]
        .iter()
        .map(|(i, color)| vms.demo_app(*i, color, PORT).0)
        .collect();
    let (m, cluster) = caller(&vms, &[2]);
    let load = Load::start(&vms.ns(1), &format!("http://{EGRESS}/"), SVC);
    load.wait_more(50);

    scale(&vms, &m, &cluster, &[2, 3, 4]);
    eventually("every replica to answer", FOLLOW, || {
        let c = load.colors();
        ["a", "b", "c"]
            .iter()
            .all(|k| c.get(*k).copied().unwrap_or(0) > 0)
            .then_some(())
    });

    scale(&vms, &m, &cluster, &[2, 4]);
    load.wait_more(100);
    let b = load.colors().get("b").copied().unwrap_or(0);
    // The removed replica stops, as a scaled-down VM would.
    apps.remove(1).kill();
    load.wait_more(200);
    let r = load.finish();
    assert!(r.failures.is_empty(), "failed requests: {:?}", r.failures);
    assert_eq!(
        r.colors.get("b").copied().unwrap_or(0),
        b,
        "requests reached the removed replica: {:?}",
        r.colors
    );
    assert_eq!(
        m.stat(&format!("cluster.{cluster}.update_failure")),
        0,
        "{}",
        m.log()
    );
    assert!(r.ok >= 400, "{r:?}");
}

/// The DNS server stops: lookups fail, the last hosts stay and keep serving, every failure is
/// counted (`update_failure`, and `update_attempt` with it) and logged once for the episode;
/// the server returns: lookups succeed again (`update_success`) and one line says so.
#[test]
fn dns_failure_keeps_the_last_hosts_counted_and_logged_once() {
    let vms = Vms::up(3);
    let _apps: Vec<_> = [(2, "a"), (3, "b")]
        .iter()
        .map(|(i, color)| vms.demo_app(*i, color, PORT).0)
        .collect();
    let (m, cluster) = caller(&vms, &[2, 3]);
    let stat = |name: &str| m.stat(&format!("cluster.{cluster}.{name}"));
    let load = Load::start(&vms.ns(1), &format!("http://{EGRESS}/"), SVC);
    load.wait_more(50);
    assert_eq!(stat("update_failure"), 0);
    assert!(stat("update_success") >= 1, "{}", m.log());

    vms.dns_stop();
    eventually("3 failed lookups counted", Duration::from_secs(40), || {
        (stat("update_failure") >= 3).then_some(())
    });
    let success = stat("update_success");
    load.wait_more(100);
    assert_eq!(m.hosts(&cluster), hosts_of(&vms, &[2, 3]), "the last hosts");
    assert_eq!(
        stat("update_success"),
        success,
        "no success while DNS is down"
    );
    let log = m.log();
    assert_eq!(
        count_lines(&log, "DNS lookup failed"),
        1,
        "one warning for the episode:\n{log}"
    );
    assert!(
        count_lines(&log, "DNS lookup failed") == count_lines(&log, "WARN"),
        "no other warning:\n{log}"
    );

    vms.dns_start();
    eventually("a lookup to succeed again", FOLLOW, || {
        (stat("update_success") > success).then_some(())
    });
    eventually("the recovery line", FOLLOW, || {
        (count_lines(&m.log(), "DNS lookup succeeds again") == 1).then_some(())
    });
    load.wait_more(50);
    let r = load.finish();
    assert!(r.failures.is_empty(), "failed requests: {:?}", r.failures);
    assert_eq!(r.colors.keys().cloned().collect::<BTreeSet<_>>().len(), 2);
    let log = m.log();
    assert_eq!(count_lines(&log, "DNS lookup failed"), 1, "{log}");
    assert_eq!(count_lines(&log, "DNS lookup succeeds again"), 1, "{log}");
    // One read of all three (they were three reads, and a lookup ending between them made
    // success + failure exceed the attempts read before it).
    let all = m.stats();
    let (attempt, ok, failed) = ["update_attempt", "update_success", "update_failure"]
        .map(|n| {
            all.get(&format!("cluster.{cluster}.{n}"))
                .copied()
                .unwrap_or(0)
        })
        .into();
    // A lookup may be in flight at the read: attempted, not yet answered.
    assert!(
        attempt >= ok + failed && attempt <= ok + failed + 1,
        "update_attempt {attempt}, update_success {ok}, update_failure {failed}"
    );
}

/// A name that resolves to no address (NXDOMAIN: the record was deleted) is an answer, not a
/// failure: as Envoy's STRICT_DNS clusters, the cluster is emptied and requests get 503 "no
/// healthy upstream"; one warning says so, one line says when the name resolves again.
#[test]
fn a_name_without_address_empties_the_cluster() {
    let vms = Vms::up(2);
    let _app = vms.demo_app(2, "a", PORT).0;
    let (m, cluster) = caller(&vms, &[2]);
    let stat = |name: &str| m.stat(&format!("cluster.{cluster}.{name}"));
    let get = || {
        let url = format!("http://{EGRESS}/");
        mesh_tests::vms::in_vm(&vms.ns(1), || {
            mesh_tests::vms::try_http(&mesh_tests::agent(), &url, Some(SVC)).expect("answer")
        })
    };
    assert_eq!(get().status, 200);

    vms.dns_set(SVC, &[]);
    follow(&m, &cluster, &[], "deleting the record");
    let r = get();
    assert_eq!(r.status, 503, "{r:?}");
    assert!(r.body.contains("no healthy upstream"), "{r:?}");
    assert_eq!(stat("membership_total"), 0);
    assert_eq!(
        stat("update_failure"),
        0,
        "an empty answer is not a failure"
    );
    let log = m.log();
    assert_eq!(count_lines(&log, "resolves to no address"), 1, "{log}");

    vms.dns_set(SVC, &[vms.addr(2)]);
    follow(&m, &cluster, &hosts_of(&vms, &[2]), "restoring the record");
    assert_eq!(get().status, 200);
    eventually("the line saying the name resolves again", FOLLOW, || {
        (count_lines(&m.log(), "DNS name resolves again") == 1).then_some(())
    });
    assert_eq!(count_lines(&m.log(), "resolves to no address"), 1);
}

fn leftovers(id: &str) -> Vec<String> {
    let prefix = format!("mvm-{id}-");
    let mut left = Vec::new();
    for dir in ["/run/netns", "/etc/netns"] {
        for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with(&prefix) {
                left.push(format!("{dir}/{name}"));
            }
        }
    }
    if Path::new(&format!("/run/mvm/{id}")).exists() {
        left.push(format!("/run/mvm/{id}"));
    }
    left
}

fn alive(pid: u32) -> bool {
    // A zombie is dead; one not reaped yet still has /proc/PID.
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| !s.split(") ").nth(1).is_some_and(|r| r.starts_with('Z')))
        .unwrap_or(false)
}

/// Dropping the harness removes every namespace, /etc/netns directory and state directory of
/// its ID and kills what ran inside (dnsmasq, and a process the test started and never
/// stopped), after a normal end and when the test body panics.
#[test]
fn teardown_leaves_nothing_also_after_a_panic() {
    for panics in [false, true] {
        let mut id = String::new();
        let mut pids = Vec::new();
        let mut stray = None;
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let vms = Vms::up(2);
            id = vms.id().to_owned();
            let dnsmasq = std::fs::read_to_string(format!("/run/mvm/{id}/dnsmasq.pid"))
                .expect("dnsmasq pid file");
            pids.push(dnsmasq.trim().parse::<u32>().expect("pid"));
            // Started in VM 2 and never stopped by the test: `down` kills it.
            let mut sleep = std::process::Command::new("sleep");
            sleep.arg("600");
            let child = vms.command(2, &sleep).spawn().expect("sleep in VM 2");
            pids.push(child.id());
            stray = Some(child);
            assert!(leftovers(&id).len() >= 5, "{:?}", leftovers(&id));
            assert!(pids.iter().all(|p| alive(*p)));
            if panics {
                panic!("the test body fails");
            }
        }));
        assert_eq!(result.is_err(), panics);
        assert!(!id.is_empty());
        assert_eq!(leftovers(&id), Vec::<String>::new(), "panicked: {panics}");
        let mut stray = stray.expect("started");
        let status = eventually("the stray process to end", Duration::from_secs(10), || {
            stray.try_wait().expect("wait")
        });
        assert!(!status.success(), "killed, not ended: {status:?}");
        for pid in pids {
            assert!(!alive(pid), "process {pid} survived the teardown");
        }
    }
}

/// The harness says why it cannot run, in one line with exit 2, never a silent pass: not root,
/// no `ip`, no dnsmasq.
#[test]
fn harness_refuses_to_run_without_root_ip_or_dnsmasq() {
    let script = mesh_tests::vms::script();
    let mut cmd = std::process::Command::new("setpriv");
    cmd.args([
        "--reuid",
        "nobody",
        "--regid",
        "nogroup",
        "--clear-groups",
        "bash",
    ])
    .arg(&script)
    .args(["up", "--id", "never", "--count", "1"]);
    let r = run_bounded(cmd, "vms.sh up as nobody");
    assert_eq!(r.code, 2, "{r:?}");
    assert_eq!(
        r.stderr.trim(),
        "vms.sh: up: must run as root (network namespaces need CAP_SYS_ADMIN)"
    );

    // A PATH with only what the script needs before its checks: no ip, then no dnsmasq.
    let dir = tempfile::tempdir().expect("tempdir");
    for tool in ["id", "cat", "cksum", "cut"] {
        let found = ["/usr/bin", "/bin"]
            .iter()
            .map(|d| Path::new(d).join(tool))
            .find(|p| p.exists())
            .unwrap_or_else(|| panic!("no {tool}"));
        std::os::unix::fs::symlink(found, dir.path().join(tool)).expect("symlink");
    }
    let up = |expect: &str| {
        let bash = ["/usr/bin/bash", "/bin/bash"]
            .into_iter()
            .find(|p| Path::new(p).exists())
            .expect("bash");
        let mut cmd = std::process::Command::new(bash);
        cmd.arg(&script)
            .args(["up", "--id", "never", "--count", "1"])
            .env("PATH", dir.path());
        let r = run_bounded(cmd, "vms.sh up with a short PATH");
        assert_eq!(r.code, 2, "{r:?}");
        assert_eq!(r.stderr.trim(), expect);
    };
    up("vms.sh: up: no 'ip' command: install iproute2");
    let ip = ["/usr/sbin/ip", "/sbin/ip", "/usr/bin/ip", "/bin/ip"]
        .iter()
        .find(|p| Path::new(p).exists())
        .expect("ip is installed here");
    std::os::unix::fs::symlink(ip, dir.path().join("ip")).expect("symlink");
    up("vms.sh: up: no 'dnsmasq' command: install dnsmasq-base");
    // Nothing was made for the id.
    assert_eq!(leftovers("never"), Vec::<String>::new());
    let r = vms_sh(&["down", "--id", "never"]);
    assert_eq!(r.code, 0, "down is idempotent: {r:?}");
}
