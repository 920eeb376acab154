//! `why` on the captures of a meshd whose cluster has two hosts, one ejected
//! (`testdata/stats.txt`, `testdata/clusters.json`), and on variants derived from them.

use serde_json::{json, Value};

use super::*;
use crate::admin::kind_by_name;
use crate::log::Summary;
use crate::logparse::parse;

const EGRESS: &str = "cds_egress_m_svc_http_42527";
const INGRESS: &str = "cds_ingress_m_client_http_9090";

fn captured() -> (Vec<Stat>, Vec<Value>) {
    let stats = include_str!("../../testdata/stats.txt")
        .lines()
        .filter_map(|l| {
            let (name, value) = l.rsplit_once(": ")?;
            Some(Stat {
                name: name.to_owned(),
                value: value.parse().ok()?,
                kind: kind_by_name(name),
            })
        })
        .collect();
    let v: Value =
        serde_json::from_str(include_str!("../../testdata/clusters.json")).expect("fixture");
    (
        stats,
        v["cluster_statuses"].as_array().expect("array").clone(),
    )
}

/// Sets `cluster.<cluster>.<suffix>`, adding it when absent.
fn set(stats: &mut Vec<Stat>, cluster: &str, suffix: &str, value: u64) {
    let name = format!("cluster.{cluster}.{suffix}");
    match stats.iter_mut().find(|s| s.name == name) {
        Some(s) => s.value = value,
        None => stats.push(Stat {
            kind: kind_by_name(&name),
            name,
            value,
        }),
    }
}

fn text(found: &[Finding]) -> Vec<String> {
    found.iter().map(sentence).collect()
}

fn kinds(found: &[Finding]) -> Vec<String> {
    found
        .iter()
        .map(|f| {
            let v = serde_json::to_value(f).expect("json");
            format!("{} {}", v["kind"].as_str().unwrap_or("?"), v["cluster"])
        })
        .collect()
}

#[test]
fn the_captured_ejection_is_dead_hosts_and_retries_did_not_multiply_the_load() {
    let (stats, clusters) = captured();
    let found = findings("a:1", &stats, &clusters, &[]);
    assert_eq!(
        text(&found),
        [
            format!("a:1: cluster {EGRESS}: outlier detection ejected hosts 1 time (consecutive_5xx 1); 1 ejected now: 127.0.0.3:42527 (ejected consecutive_5xx, 972ms left)."),
            format!("a:1: cluster {EGRESS}: 3 of the 15 requests sent upstream were retries (20.0%, at most 1 retry in flight at once): 3 succeeded, 0 requests ran out of retries (URX), none was held back by the retry budget or max_retries."),
            format!("a:1: cluster {EGRESS}: verdict: dead hosts (1 ejection)."),
        ]
    );
    let j: Vec<Value> = found
        .iter()
        .map(|f| serde_json::to_value(f).expect("json"))
        .collect();
    assert_eq!(j[0]["kind"], "ejections");
    assert_eq!(j[0]["by_type"], json!({"consecutive_5xx": 1}));
    assert_eq!(j[0]["ejected"][0]["host"], "127.0.0.3:42527");
    assert_eq!(j[0]["ejected"][0]["ejection_time_left_ms"], 972);
    assert_eq!(j[1]["kind"], "retries");
    assert_eq!(
        (j[1]["retries"].as_u64(), j[1]["requests"].as_u64()),
        (Some(3), Some(15))
    );
    assert_eq!(j[1]["retry_percent"], 20.0);
    assert_eq!(j[1]["budget_overflow"], 0);
    assert_eq!(j[2]["kind"], "verdict");
    assert_eq!(j[2]["verdict"], "dead hosts");
    assert_eq!(j[2]["ejections"], 1);
    // The ingress cluster has nothing to say; a pattern selects clusters.
    assert!(findings(
        "a:1",
        &stats,
        &clusters,
        &[Regex::new("ingress").expect("re")]
    )
    .is_empty());
    assert_eq!(
        nothing("a:1", 1),
        "a:1: no limit refused a request and no host failed (clusters checked: 1)"
    );
}

#[test]
fn a_host_failing_its_health_check_is_dead_hosts() {
    let (mut stats, mut clusters) = captured();
    // The .3 host fails its check (timed out) instead of being ejected.
    let h = &mut clusters[0]["host_statuses"][1];
    h["health_status"] =
        json!({"eds_health_status": "HEALTHY", "failed_active_health_check": true});
    h["mesh_outlier"]["ejected"] = json!(false);
    h["mesh_outlier"]["ejection_time_left_ms"] = Value::Null;
    h["mesh_health_check"] = json!({"state": "unhealthy", "consecutive_successes": 0, "consecutive_failures": 3, "timed_out": true});
    clusters[0]["host_statuses"][0]["mesh_health_check"] = json!({"state": "healthy", "consecutive_successes": 5, "consecutive_failures": 0, "timed_out": false});
    for (k, v) in [
        ("outlier_detection.ejections_active", 0),
        ("outlier_detection.ejections_enforced_total", 0),
        ("outlier_detection.ejections_enforced_consecutive_5xx", 0),
        ("upstream_rq_retry", 0),
        ("upstream_rq_retry_success", 0),
        ("health_check.attempt", 10),
        ("health_check.success", 7),
        ("health_check.failure", 3),
        ("health_check.network_failure", 3),
        ("health_check.healthy", 1),
    ] {
        set(&mut stats, EGRESS, k, v);
    }
    let found = findings(
        "a:1",
        &stats,
        &clusters,
        &[Regex::new("egress").expect("re")],
    );
    assert_eq!(
        text(&found),
        [
            format!("a:1: cluster {EGRESS}: 3 of 10 health checks failed (3 could not connect or timed out); 1 host fails now: 127.0.0.3:42527 (failed_hc hc_timeout)."),
            format!("a:1: cluster {EGRESS}: verdict: dead hosts (3 failed health checks)."),
        ]
    );
    let v = serde_json::to_value(&found[0]).expect("json");
    assert_eq!(v["kind"], "health_check");
    assert_eq!(v["failing"][0]["reason"], "hc_timeout");
}

#[test]
fn uo_refusals_without_ejections_are_overload() {
    let (mut stats, mut clusters) = captured();
    clusters[1]["circuit_breakers"]["thresholds"][0]["max_pending_requests"] = json!(5);
    clusters[1]["mesh_breaker_occupancy"]["max_pending_requests"] =
        json!({"active": 5, "limit": 5, "open": true, "refused": 7, "peak": 5});
    set(
        &mut stats,
        INGRESS,
        "circuit_breakers.default.rq_pending_refused",
        7,
    );
    set(&mut stats, INGRESS, "upstream_rq_pending_overflow", 7);
    let found = findings(
        "a:1",
        &stats,
        &clusters,
        &[Regex::new("ingress").expect("re")],
    );
    assert_eq!(
        text(&found),
        [
            format!("a:1: cluster {INGRESS} refused 7 requests at its max_pending_requests limit: the queue of requests waiting for a connection was full (configured 5, peak in flight 5). They got 503 with flag UO from this meshd (x-mesh-overflow: max_pending_requests {INGRESS}). The limit is at capacity right now."),
            format!("a:1: cluster {INGRESS}: verdict: overload (7 requests refused by its limits (UO))."),
        ]
    );
    let v = serde_json::to_value(&found[0]).expect("json");
    assert_eq!(
        (
            v["kind"].as_str(),
            v["limit"].as_str(),
            v["refused"].as_u64(),
            v["configured"].as_u64(),
            v["peak"].as_u64()
        ),
        (
            Some("limit"),
            Some("max_pending_requests"),
            Some(7),
            Some(5),
            Some(5)
        )
    );
}

#[test]
fn refusals_held_back_retries_and_no_usable_host_are_overload_and_dead_hosts() {
    let (mut stats, mut clusters) = captured();
    // Both hosts out: .2 ejected for connect failures too.
    let h = &mut clusters[0]["host_statuses"][0];
    h["health_status"]["failed_outlier_check"] = json!(true);
    h["mesh_outlier"] = json!({"ejected": true, "num_ejections": 1, "consecutive_5xx": 0,
        "consecutive_gateway_failure": 0, "consecutive_local_origin_failure": 0,
        "ejection_type": "CONSECUTIVE_LOCAL_ORIGIN_FAILURE", "ejection_time_left_ms": 29500});
    h["stats"] = json!([{"name": "cx_connect_fail", "value": "5"}]);
    for (k, v) in [
        ("circuit_breakers.default.rq_refused", 4),
        ("circuit_breakers.default.rq_retry_refused", 1),
        ("upstream_rq_retry_overflow", 3),
        ("upstream_rq_retry_budget_overflow", 2),
        ("upstream_rq_retry_limit_exceeded", 2),
        ("upstream_rq_per_try_timeout", 1),
        ("upstream_rq_timeout", 1),
        ("upstream_cx_none_healthy", 6),
        ("upstream_cx_connect_fail", 5),
        ("upstream_cx_connect_timeout", 1),
        ("outlier_detection.ejections_active", 2),
        ("outlier_detection.ejections_enforced_total", 2),
        (
            "outlier_detection.ejections_enforced_consecutive_local_origin_failure",
            1,
        ),
        ("outlier_detection.ejections_overflow", 1),
    ] {
        set(&mut stats, EGRESS, k, v);
    }
    let found = findings("a:1", &stats, &clusters, &[]);
    assert_eq!(
        kinds(&found),
        [
            format!("limit \"{EGRESS}\""),
            format!("limit \"{EGRESS}\""),
            format!("no_healthy_host \"{EGRESS}\""),
            format!("connect_fail \"{EGRESS}\""),
            format!("ejections \"{EGRESS}\""),
            format!("timeouts \"{EGRESS}\""),
            format!("retries \"{EGRESS}\""),
            format!("verdict \"{EGRESS}\""),
        ]
    );
    let t = text(&found);
    assert_eq!(t[1], format!("a:1: cluster {EGRESS} refused 1 request at its max_retries limit: the retries in flight were at their limit, so failed requests were not retried (configured 2147483647, peak in flight 1). They got the failed attempt's response, with flag UO from this meshd."));
    assert_eq!(t[2], format!("a:1: cluster {EGRESS}: 6 requests found no usable host (503 UH); 2 of 2 hosts are out of rotation now: 127.0.0.2:42527 (ejected consecutive_local_origin_failure, 29.5s left), 127.0.0.3:42527 (ejected consecutive_5xx, 972ms left)."));
    assert_eq!(t[3], format!("a:1: cluster {EGRESS}: 5 connections to its hosts failed to open (UF: refused, unreachable or timed out; 1 timed out): 5 to 127.0.0.2:42527."));
    assert_eq!(t[4], format!("a:1: cluster {EGRESS}: outlier detection ejected hosts 2 times (consecutive_5xx 1, consecutive_local_origin_failure 1); 2 ejected now: 127.0.0.2:42527 (ejected consecutive_local_origin_failure, 29.5s left), 127.0.0.3:42527 (ejected consecutive_5xx, 972ms left); 1 more detection ejected nothing, held back by the max ejection percent."));
    assert_eq!(t[5], format!("a:1: cluster {EGRESS}: 1 request timed out (504 UT): no complete answer within the request timeout."));
    assert_eq!(t[6], format!("a:1: cluster {EGRESS}: 3 of the 15 requests sent upstream were retries (20.0%, at most 1 retry in flight at once): 3 succeeded, 2 requests ran out of retries (URX), 3 retries were held back (2 by the retry budget, 1 by max_retries) so they did not multiply the load (UO); 1 attempt hit the per-try timeout."));
    assert_eq!(t[7], format!("a:1: cluster {EGRESS}: verdict: overload and dead hosts (overload: 4 requests refused by its limits (UO), 3 retries held back (UO); dead hosts: 6 requests found no usable host (UH), 5 connections failed (UF), 2 ejections)."));
    let v = serde_json::to_value(&found[7]).expect("json");
    assert_eq!(v["verdict"], "overload and dead hosts");
    assert_eq!(
        (
            v["refused"].as_u64(),
            v["retry_overflow"].as_u64(),
            v["no_healthy_host"].as_u64()
        ),
        (Some(4), Some(3), Some(6))
    );
}

#[test]
fn retries_that_ran_out_alone_are_a_failing_upstream() {
    let (mut stats, mut clusters) = captured();
    clusters.truncate(1);
    let h = &mut clusters[0]["host_statuses"][1];
    h["health_status"] = json!({"eds_health_status": "HEALTHY"});
    h["mesh_outlier"]["ejected"] = json!(false);
    for (k, v) in [
        ("outlier_detection.ejections_active", 0),
        ("outlier_detection.ejections_enforced_total", 0),
        ("upstream_rq_retry_limit_exceeded", 1),
    ] {
        set(&mut stats, EGRESS, k, v);
    }
    let found = findings("a:1", &stats, &clusters, &[]);
    assert_eq!(
        sentence(found.last().expect("verdict")),
        format!("a:1: cluster {EGRESS}: verdict: failing upstream (3 retries, 1 request out of retries (URX); no limit refused and no host left the rotation: the upstream answered errors or too slowly, and if it is a meshd, `meshstat why --admin <upstream>` says whether it refused (UO)).")
    );
}

fn summary(lines: &[&str]) -> Summary {
    let mut s = Summary::default();
    for l in lines {
        s.lines += 1;
        match parse(l) {
            Some(e) => s.add(&e),
            None => s.unparsed += 1,
        }
    }
    s
}

const LINE: &str = r#"[2026-11-28T05:20:35.726Z] "GET / HTTP/1.1" 503 FLAGS 0 19 1 - "-" "curl/8" "id" "svc" "127.0.0.3:42527""#;

#[test]
fn logs_count_the_flags_and_give_the_same_verdict_words() {
    let with = |f: &str| LINE.replace("FLAGS", f);
    let s = summary(&[
        &with("UO"),
        &with("UH"),
        &with("URX"),
        &with("UF,URX"),
        &with("-"),
        "junk",
    ]);
    let c = verdict::LogCounts::of("x.log", &s);
    assert_eq!(c.verdict, Some("overload and dead hosts"));
    assert_eq!(
        c.sentences(),
        [
            "x.log: 1 of 5 requests have flag UO (a limit of the meshd that wrote this log refused them or their retry), 2 have URX (retries ran out)",
            "x.log: 1 have UH (no usable host), 1 UF (connection failed), 0 UC and 0 UR (connection closed or reset before the response), 0 UT (timed out)",
            "x.log: verdict: overload and dead hosts (1 UO, 1 UH, 1 UF, 2 URX). The 2 URX requests ran out of retries: overload if the upstream answered 503 with x-envoy-overloaded, failing hosts otherwise; this log alone can't tell which: the upstream meshd's log or `meshstat why --admin <upstream>` shows UO there.",
            "x.log: 1 line not parsed",
        ]
    );
    let v = serde_json::to_value(&c).expect("json");
    assert_eq!(v["kind"], "log");
    assert_eq!(
        (
            v["UO"].as_u64(),
            v["URX"].as_u64(),
            v["UH"].as_u64(),
            v["UC"].as_u64()
        ),
        (Some(1), Some(2), Some(1), Some(0))
    );
    let only = |f: &str| verdict::LogCounts::of("x", &summary(&[&with(f)])).verdict;
    assert_eq!(only("UC"), Some("dead hosts"));
    assert_eq!(only("UO"), Some("overload"));
    assert_eq!(only("URX"), Some("failing upstream"));
    assert_eq!(only("-"), None);
    assert_eq!(
        verdict::LogCounts::of("x", &summary(&[&with("-")]))
            .sentences()
            .len(),
        1
    );
}
