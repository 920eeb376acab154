//! How `-n`, `-t`, `-qps` and `-c` split the work across connections, exactly as fortio's
//! `periodic.go` (`runQPSSetup`, `runMaxQPSSetup`), including the thread lowering and the
//! "(x per thread + y)" leftover for thread 0.
//!
//! One deviation, documented: in max-QPS mode with `-n` smaller than `-c`, fortio would make extra
//! calls; meshload lowers the connection count to `-n` (as oha does).

use std::time::Duration;

use crate::config::Config;
use crate::gofmt::{duration, g};

/// The stop rule of a run.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Stop {
    /// Each connection makes its planned number of calls.
    Calls,
    /// Connections stop once the duration has passed.
    Duration(Duration),
    /// Until Ctrl-C.
    Interrupted,
}

/// The work of each connection.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// Connections actually used (after lowering).
    pub threads: usize,
    /// Calls planned per connection (thread 0 gets the leftover); 0 when unbounded.
    pub calls: Vec<u64>,
    /// Target rate per connection; `None` in max-QPS mode.
    pub per_thread_qps: Option<f64>,
    /// Whether the pacing formula spreads calls over the whole duration (fortio `hasDuration`).
    pub has_duration: bool,
    /// Stop rule.
    pub stop: Stop,
    /// The "Starting at …" line.
    pub starting: String,
    /// Warnings (thread lowering).
    pub warnings: Vec<String>,
    /// Whether the "Starting at" line is printed at every log level (the "until interrupted" form).
    pub starting_always: bool,
}

impl Plan {
    /// Computes the plan for `cfg` with `gomax` processors (for the message only).
    pub fn new(cfg: &Config, gomax: usize) -> Plan {
        let mut c = cfg.connections as u64;
        let n = cfg.exactly;
        let t = cfg.duration;
        let mut warnings = Vec::new();
        if cfg.qps <= 0.0 {
            // Max QPS.
            if n > 0 {
                if n < c {
                    warnings.push(format!(
                        "Lowering number of threads - total call {n} -> lowering from {c} to {n} threads"
                    ));
                    c = n;
                }
                let per = n / c;
                let left = n % c;
                let mut calls = vec![per; c as usize];
                calls[0] += left;
                return Plan {
                    threads: c as usize,
                    calls,
                    per_thread_qps: None,
                    has_duration: t.is_some(),
                    stop: Stop::Calls,
                    starting: format!(
                        "Starting at max qps with {c} thread(s) [gomax {gomax}] for exactly {n} calls ({per} per thread + {left})"
                    ),
                    warnings,
                    starting_always: false,
                };
            }
            let (stop, tail, always) = match t {
                Some(d) => (Stop::Duration(d), format!(" for {}", duration(d)), false),
                None => (Stop::Interrupted, " until interrupted".to_owned(), true),
            };
            return Plan {
                threads: c as usize,
                calls: vec![0; c as usize],
                per_thread_qps: None,
                has_duration: t.is_some(),
                stop,
                starting: format!("Starting at max qps with {c} thread(s) [gomax {gomax}]{tail}"),
                warnings,
                starting_always: always,
            };
        }
        let qps = cfg.qps;
        if n == 0 && t.is_none() {
            return Plan {
                threads: c as usize,
                calls: vec![0; c as usize],
                per_thread_qps: Some(qps / c as f64),
                has_duration: false,
                stop: Stop::Interrupted,
                starting: format!(
                    "Starting at {} qps with {c} thread(s) [gomax {gomax}] until interrupted",
                    g(qps)
                ),
                warnings,
                starting_always: true,
            };
        }
        let mut num_calls = if n > 0 {
            n
        } else {
            (qps * t.map_or(0.0, |d| d.as_secs_f64())) as u64
        };
        if num_calls < 2 {
            warnings.push(format!(
                "Increasing the number of calls to the minimum of 2 with 1 thread. total duration will increase (was {num_calls})"
            ));
            num_calls = 2;
            c = 1;
        }
        if 2 * c > num_calls {
            let lowered = num_calls / 2;
            warnings.push(format!(
                "Lowering number of threads - total call {num_calls} -> lowering from {c} to {lowered} threads"
            ));
            c = lowered;
        }
        let per = num_calls / c;
        let mut calls = vec![per; c as usize];
        let (stop, starting) = if n > 0 {
            let left = num_calls - per * c;
            calls[0] += left;
            (
                Stop::Calls,
                format!(
                    "Starting at {} qps with {c} thread(s) [gomax {gomax}] : exactly {n}, {per} calls each (total {} + {left})",
                    g(qps),
                    per * c
                ),
            )
        } else {
            let d = t.unwrap_or_default();
            (
                Stop::Duration(d),
                format!(
                    "Starting at {} qps with {c} thread(s) [gomax {gomax}] for {} : {per} calls each (total {})",
                    g(qps),
                    duration(d),
                    per * c
                ),
            )
        };
        Plan {
            threads: c as usize,
            calls,
            per_thread_qps: Some(qps / c as f64),
            has_duration: t.is_some(),
            stop,
            starting,
            warnings,
            starting_always: false,
        }
    }

    /// fortio's pacing target for call `i` (0-based) of a connection that plans `num_calls`:
    /// seconds after the connection's start.
    pub fn target_elapsed(&self, i: u64, num_calls: u64) -> f64 {
        let q = self.per_thread_qps.unwrap_or(1.0);
        if self.has_duration && num_calls > 1 {
            (i as f64 + i as f64 / (num_calls - 1) as f64) / q
        } else {
            i as f64 / q
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{parse, Parsed};

    fn plan(args: &[&str]) -> Plan {
        let mut v: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        v.push("http://h/".into());
        let Ok(Parsed::Run(f)) = parse(&v) else {
            panic!("parse")
        };
        Plan::new(&Config::from_flags(&f).unwrap(), 2)
    }

    #[test]
    fn max_qps_exact_split() {
        let p = plan(&["-qps", "0", "-n", "20", "-c", "3"]);
        assert_eq!(p.calls, vec![8, 6, 6]);
        assert_eq!(
            p.starting,
            "Starting at max qps with 3 thread(s) [gomax 2] for exactly 20 calls (6 per thread + 2)"
        );
    }

    #[test]
    fn qps_duration_drops_leftover() {
        let p = plan(&["-qps", "100", "-t", "10s", "-c", "3"]);
        assert_eq!(p.calls, vec![333, 333, 333]);
        assert_eq!(
            p.starting,
            "Starting at 100 qps with 3 thread(s) [gomax 2] for 10s : 333 calls each (total 999)"
        );
        let p = plan(&[]);
        assert_eq!(p.calls, vec![10; 4]);
    }

    #[test]
    fn qps_lowers_threads() {
        let p = plan(&["-qps", "10", "-t", "1s", "-c", "8"]);
        assert_eq!(p.threads, 5);
        let p = plan(&["-qps", "1", "-t", "1s"]);
        assert_eq!((p.threads, p.calls.clone()), (1, vec![2]));
        let p = plan(&["-qps", "50", "-n", "20", "-c", "3"]);
        assert_eq!(p.calls, vec![8, 6, 6]);
        assert!(p
            .starting
            .ends_with(": exactly 20, 6 calls each (total 18 + 2)"));
    }

    #[test]
    fn max_qps_lowers_connections_below_n() {
        let p = plan(&["-qps", "0", "-n", "2", "-c", "4"]);
        assert_eq!(p.calls, vec![1, 1]);
    }

    #[test]
    fn pacing_ends_exactly_at_duration() {
        let p = plan(&["-qps", "10", "-t", "1s", "-c", "1"]);
        assert_eq!(p.target_elapsed(0, 10), 0.0);
        assert!((p.target_elapsed(9, 10) - 1.0).abs() < 1e-9);
    }
}
