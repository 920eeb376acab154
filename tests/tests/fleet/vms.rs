//! The fleet view as users run it, across namespace VMs (examples/vms/vms.sh, dnsmasq serving the
//! zone): one config directory on every VM, node `svc` at `svc.mesh.test` with two replicas (VMs
//! 1 and 2, each a meshd with its stats listener on the VM's address and the fleet's port 9902),
//! and `meshstat --fleet /etc/meshd` run from VM 3, where only the zone's DNS says where the
//! replicas are.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use mesh_tests::vms::{in_vm, try_http, VmMeshd, Vms};
use mesh_tests::{bin, run_bounded};
use serde_json::json;

use super::by_source;

/// The service's name in the zone.
const SVC: &str = "svc.mesh.test";

fn write_config(dir: &Path) -> std::path::PathBuf {
    let config = dir.join("config");
    std::fs::create_dir_all(&config).expect("mkdir");
    std::fs::write(
        config.join("mesh.json"),
        json!({"meshName": "m", "spec": {}}).to_string(),
    )
    .expect("mesh");
    let node = json!({"meshName": "m", "virtualNodeName": "svc", "spec": {
        "listeners": [{"portMapping": {"port": 8080, "protocol": "http"}}],
        "serviceDiscovery": {"dns": {"hostname": SVC}}}});
    std::fs::write(config.join("vn-svc.json"), node.to_string()).expect("node");
    config
}

/// meshd in VM `i` serving the replica of `svc` there, its stats listener on `<VM>:9902`.
fn replica(vms: &Vms, i: usize, config: &Path) -> VmMeshd {
    let listen = format!("svc={}:8080", vms.addr(i));
    let stats = format!("{}:9902", vms.addr(i));
    vms.meshd(
        i,
        config,
        &["svc"],
        &["--listen", &listen, "--stats-listen", &stats],
    )
}

/// `meshstat --fleet <config> -o json` run in VM 3: its exit code and stats by source.
fn fleet_from_vm3(
    vms: &Vms,
    config: &Path,
) -> (i32, BTreeMap<String, BTreeMap<String, u64>>, String) {
    let mut cmd = Command::new(bin("meshstat"));
    cmd.arg("--fleet")
        .arg(config)
        .args(["-o", "json"])
        .env_remove("MESHD_ADMIN");
    let r = run_bounded(vms.command(3, &cmd), "meshstat --fleet in VM 3");
    (r.code, by_source(&r.stdout), r.stderr)
}

fn without_uptime(m: &VmMeshd) -> BTreeMap<String, u64> {
    let mut s = m.stats();
    s.remove("server.uptime");
    s
}

#[test]
fn meshstat_fleet_finds_every_replica_through_dns() {
    let vms = Vms::up(3);
    vms.dns_set(SVC, &[vms.addr(1), vms.addr(2)]);
    let config = write_config(vms.dir.path());
    let one = replica(&vms, 1, &config);
    let two = replica(&vms, 2, &config);

    // Different counts on each replica: requests from VM 3 to an app that is not there
    // (503 UF, counted in upstream_cx_connect_fail), 2 to VM 1 and 3 to VM 2.
    for (i, n) in [(1, 2), (2, 3)] {
        let url = format!("http://{}:8080/", vms.addr(i));
        in_vm(&vms.ns(3), || {
            let agent = ureq::AgentBuilder::new()
                .timeout(Duration::from_secs(5))
                .build();
            for _ in 0..n {
                let r = try_http(&agent, &url, None).expect("a replica answers");
                assert_eq!(r.status, 503, "{}", r.body);
            }
        });
    }
    let fail = "cluster.cds_ingress_m_svc_http_8080.upstream_cx_connect_fail";
    assert_eq!((one.stat(fail), two.stat(fail)), (2, 3));

    // Both replicas, found through the zone, each read exactly as its own /stats says.
    let (code, got, stderr) = fleet_from_vm3(&vms, &config);
    assert_eq!(code, 0, "{stderr}");
    let label = |i: usize| format!("svc@{}:9902", vms.addr(i));
    let want: BTreeMap<String, BTreeMap<String, u64>> = [
        (label(1), without_uptime(&one)),
        (label(2), without_uptime(&two)),
    ]
    .into();
    assert_eq!(got, want);

    // Scaled down to one replica in DNS: the fleet view follows.
    vms.dns_set(SVC, &[vms.addr(2)]);
    let (code, got, stderr) = fleet_from_vm3(&vms, &config);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(got.keys().collect::<Vec<_>>(), [&label(2)]);
    assert_eq!(got[&label(2)].get(fail), Some(&3));

    // A name the zone does not know: one stderr line naming node and name, exit 1.
    vms.dns_set(SVC, &[]);
    let (code, got, stderr) = fleet_from_vm3(&vms, &config);
    assert_eq!(code, 1);
    assert!(got.is_empty());
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.starts_with(&format!(
            "meshstat: virtual node svc ({SVC}) : cannot resolve {SVC}"
        )),
        "{stderr}"
    );
}
