//! The verdict: overload, dead hosts, or both, with the numbers that decided it; for a cluster
//! from its findings, for an access log from its flag counts.
//!
//! * `overload`: a limit of this meshd refused requests (UO), or retries were held back by the
//!   retry budget or `max_retries` (UO on the failed attempt's response);
//! * `dead hosts`: requests found no usable host (UH), connections failed (UF), hosts were
//!   ejected or failed their health checks; in a log also UC/UR (connection closed or reset
//!   before the response);
//! * `overload and dead hosts`: both;
//! * `failing upstream`: neither, but requests ran out of retries (URX), attempts failed and were
//!   retried, or requests timed out (UT): errors from hosts that stayed in rotation.

use serde::Serialize;

use super::{plural, Finding};
use crate::log::Summary;

/// The verdict on one cluster (`kind: "verdict"`), with the counts behind it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Verdict {
    /// The meshd.
    pub source: String,
    /// The cluster.
    pub cluster: String,
    /// `overload`, `dead hosts`, `overload and dead hosts` or `failing upstream`.
    pub verdict: &'static str,
    /// Requests refused by the cluster's connection and request limits (UO).
    pub refused: u64,
    /// Retries held back by the retry budget or `max_retries` (UO).
    pub retry_overflow: u64,
    /// Requests that found no usable host (UH).
    pub no_healthy_host: u64,
    /// Connections that failed to open (UF).
    pub connect_fail: u64,
    /// Ejections enforced.
    pub ejections: u64,
    /// Failed health checks.
    pub health_check_failures: u64,
    /// Retries sent.
    pub retries: u64,
    /// Requests that ran out of retries (URX).
    pub retry_limit_exceeded: u64,
    /// Requests that timed out (UT).
    pub timeouts: u64,
}

fn word(overload: bool, dead: bool) -> &'static str {
    match (overload, dead) {
        (true, true) => "overload and dead hosts",
        (true, false) => "overload",
        (false, true) => "dead hosts",
        (false, false) => "failing upstream",
    }
}

/// The verdict on the cluster whose findings are `found` (`None` without findings).
pub(super) fn of(source: &str, cluster: &str, found: &[Finding]) -> Option<Verdict> {
    if found.is_empty() {
        return None;
    }
    let mut v = Verdict {
        source: source.to_owned(),
        cluster: cluster.to_owned(),
        verdict: "",
        refused: 0,
        retry_overflow: 0,
        no_healthy_host: 0,
        connect_fail: 0,
        ejections: 0,
        health_check_failures: 0,
        retries: 0,
        retry_limit_exceeded: 0,
        timeouts: 0,
    };
    let mut retry_refused = 0;
    for f in found {
        match f {
            Finding::Limit(l) if l.limit == "max_retries" => retry_refused += l.refused,
            Finding::Limit(l) => v.refused += l.refused,
            Finding::NoHealthyHost(h) => v.no_healthy_host = h.requests,
            Finding::ConnectFail(c) => v.connect_fail = c.connect_fail,
            Finding::Ejections(e) => v.ejections = e.enforced.max(e.ejected.len() as u64),
            Finding::HealthCheck(h) => {
                v.health_check_failures = h.failures.max(h.failing.len() as u64)
            }
            Finding::Retries(r) => {
                v.retry_overflow = r.overflow;
                v.retries = r.retries;
                v.retry_limit_exceeded = r.limit_exceeded;
            }
            Finding::Timeouts(t) => v.timeouts = t.requests,
            Finding::Verdict(_) => {}
        }
    }
    // An Envoy without meshd's retry counters: the max_retries refusals.
    v.retry_overflow = v.retry_overflow.max(retry_refused);
    let overload = v.refused + v.retry_overflow > 0;
    let dead = v.no_healthy_host + v.connect_fail + v.ejections + v.health_check_failures > 0;
    v.verdict = word(overload, dead);
    Some(v)
}

fn list(items: &[(u64, &str, &str)]) -> String {
    items
        .iter()
        .filter(|(n, _, _)| *n > 0)
        .map(|(n, one, many)| format!("{n} {}", plural(*n, one, many)))
        .collect::<Vec<_>>()
        .join(", ")
}

/// [`Verdict`] in words, naming the numbers that decided it.
pub fn sentence(v: &Verdict) -> String {
    let overload = list(&[
        (
            v.refused,
            "request refused by its limits (UO)",
            "requests refused by its limits (UO)",
        ),
        (
            v.retry_overflow,
            "retry held back (UO)",
            "retries held back (UO)",
        ),
    ]);
    let dead = list(&[
        (
            v.no_healthy_host,
            "request found no usable host (UH)",
            "requests found no usable host (UH)",
        ),
        (
            v.connect_fail,
            "connection failed (UF)",
            "connections failed (UF)",
        ),
        (v.ejections, "ejection", "ejections"),
        (
            v.health_check_failures,
            "failed health check",
            "failed health checks",
        ),
    ]);
    let why = match (overload.is_empty(), dead.is_empty()) {
        (false, false) => format!("overload: {overload}; dead hosts: {dead}"),
        (false, true) => overload,
        (true, false) => dead,
        (true, true) => {
            let failing = list(&[
                (v.retries, "retry", "retries"),
                (
                    v.retry_limit_exceeded,
                    "request out of retries (URX)",
                    "requests out of retries (URX)",
                ),
                (v.timeouts, "timeout (UT)", "timeouts (UT)"),
            ]);
            format!("{failing}; no limit refused and no host left the rotation: the upstream answered errors or too slowly, and if it is a meshd, `meshstat why --admin <upstream>` says whether it refused (UO)")
        }
    };
    format!(
        "{}: cluster {}: verdict: {} ({why}).",
        v.source, v.cluster, v.verdict
    )
}

/// The flags of one access log that `why` reads, with its verdict (`kind: "log"`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LogCounts {
    /// `log`, the JSON object's kind.
    pub kind: &'static str,
    /// The file.
    pub log: String,
    /// Requests (parsed lines).
    pub requests: u64,
    /// Refused by a limit of the meshd that wrote the log, or their retry was.
    #[serde(rename = "UO")]
    pub uo: u64,
    /// Retries ran out.
    #[serde(rename = "URX")]
    pub urx: u64,
    /// No usable host.
    #[serde(rename = "UH")]
    pub uh: u64,
    /// Connection failed.
    #[serde(rename = "UF")]
    pub uf: u64,
    /// Connection closed before the response.
    #[serde(rename = "UC")]
    pub uc: u64,
    /// Connection reset before the response.
    #[serde(rename = "UR")]
    pub ur: u64,
    /// Request timed out.
    #[serde(rename = "UT")]
    pub ut: u64,
    /// Lines that did not parse.
    pub unparsed: u64,
    /// The verdict, `None` when no line carries any of these flags.
    pub verdict: Option<&'static str>,
}

impl LogCounts {
    /// Counts the flags of a log summary.
    pub fn of(log: &str, s: &Summary) -> LogCounts {
        let (uo, urx) = (s.flag_count("UO"), s.flag_count("URX"));
        let (uh, uf) = (s.flag_count("UH"), s.flag_count("UF"));
        let (uc, ur) = (s.flag_count("UC"), s.flag_count("UR"));
        let ut = s.flag_count("UT");
        let any = uo + urx + uh + uf + uc + ur + ut > 0;
        LogCounts {
            kind: "log",
            log: log.to_owned(),
            requests: s.kept,
            uo,
            urx,
            uh,
            uf,
            uc,
            ur,
            ut,
            unparsed: s.unparsed,
            verdict: any.then(|| word(uo > 0, uh + uf + uc + ur > 0)),
        }
    }

    /// The counts, the verdict and what the log cannot tell, as lines.
    pub fn sentences(&self) -> Vec<String> {
        let f = &self.log;
        let mut out = vec![format!(
            "{f}: {} of {} requests have flag UO (a limit of the meshd that wrote this log refused them or their retry), {} have URX (retries ran out)",
            self.uo, self.requests, self.urx
        )];
        if self.uh + self.uf + self.uc + self.ur + self.ut > 0 {
            out.push(format!(
                "{f}: {} have UH (no usable host), {} UF (connection failed), {} UC and {} UR (connection closed or reset before the response), {} UT (timed out)",
                self.uh, self.uf, self.uc, self.ur, self.ut
            ));
        }
        if let Some(v) = self.verdict {
            let why = list(&[
                (self.uo, "UO", "UO"),
                (self.uh, "UH", "UH"),
                (self.uf, "UF", "UF"),
                (self.uc, "UC", "UC"),
                (self.ur, "UR", "UR"),
                (self.urx, "URX", "URX"),
                (self.ut, "UT", "UT"),
            ]);
            let mut s = format!("{f}: verdict: {v} ({why}).");
            if self.urx > 0 {
                s.push_str(&format!(
                    " The {} URX {} out of retries: overload if the upstream answered 503 with x-envoy-overloaded, failing hosts otherwise; this log alone can't tell which: the upstream meshd's log or `meshstat why --admin <upstream>` shows UO there.",
                    self.urx,
                    plural(self.urx, "request ran", "requests ran")
                ));
            }
            out.push(s);
        }
        if self.unparsed > 0 {
            out.push(format!(
                "{f}: {} {} not parsed",
                self.unparsed,
                plural(self.unparsed, "line", "lines")
            ));
        }
        out
    }
}
