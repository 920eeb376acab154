//! Stats with Envoy's names and types.
//!
//! Every stat is a plain atomic in a struct owned by what it measures (a cluster, a host, a
//! listener), so recording is one relaxed atomic add with no lookup and no lock. Rendering for
//! the admin endpoint walks the structs through [`Visit`], which yields `(name, type, value)`.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

/// The type of a stat, as Envoy reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum StatType {
    /// Only grows (until reset).
    Counter,
    /// Goes up and down.
    Gauge,
}

impl StatType {
    /// `counter` or `gauge`, as in Prometheus `# TYPE` lines and meshstat's JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            StatType::Counter => "counter",
            StatType::Gauge => "gauge",
        }
    }
}

/// A monotonically increasing count.
#[derive(Debug, Default)]
pub struct Counter(AtomicU64);

impl Counter {
    /// Adds one.
    #[inline]
    pub fn inc(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
    /// Adds `n`.
    #[inline]
    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }
    /// The current value.
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
    /// Back to zero (`POST /reset_counters`).
    pub fn reset(&self) {
        self.0.store(0, Ordering::Relaxed);
    }
}

/// A value that goes up and down; never shown below zero.
#[derive(Debug, Default)]
pub struct Gauge(AtomicI64);

impl Gauge {
    /// Adds one.
    #[inline]
    pub fn inc(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
    /// Subtracts one.
    #[inline]
    pub fn dec(&self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
    /// Sets the value.
    pub fn set(&self, v: u64) {
        self.0
            .store(i64::try_from(v).unwrap_or(i64::MAX), Ordering::Relaxed);
    }
    /// The current value (0 if it ever went negative).
    pub fn get(&self) -> u64 {
        u64::try_from(self.0.load(Ordering::Relaxed)).unwrap_or(0)
    }
}

/// A Prometheus metric name made from a stat name: `[A-Za-z0-9_]` kept, everything else `_`
/// (Envoy's rule). meshd renders with it and meshstat maps names back with it.
pub fn prometheus_name(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// The `_`-separated words that mark a counter as recording a fault or a refusal (see
/// [`kept_on_reset`]).
pub const FAULT_WORDS: [&str; 18] = [
    "refused",
    "overflow",
    "fail",
    "failure",
    "fault",
    "timeout",
    "error",
    "errors",
    "reset",
    "dropped",
    "skipped",
    "eject",
    "ejections",
    "exceeded",
    "abandoned",
    "no",
    "none",
    "large",
];

/// Whether `POST /reset_counters` leaves this counter alone. The rule, in one place: a counter
/// whose name (the part after its last `.`) has a `_`-separated word in [`FAULT_WORDS`] records
/// a fault or a refusal (`*_refused`, `*_overflow`, `*_connect_fail`, `config_reload_failure`,
/// `*_timeout`, `*_error`, `*_rx_reset`, `dropped_lines`, `no_route`, `*_none_healthy`,
/// `*_too_large`, `*_failure_eject`, `update_failure`) and is never reset, so that evidence of
/// faults and refusals survives a reset and only a restart (which `server.uptime` shows) starts
/// it again. Every other counter (totals, successes, response codes) is reset.
pub fn kept_on_reset(name: &str) -> bool {
    let leaf = name.rsplit('.').next().unwrap_or(name);
    leaf.split('_').any(|w| FAULT_WORDS.contains(&w))
}

/// Something that can list its stats. `emit` is called once per stat with its full name.
pub trait Visit {
    /// Calls `emit(name, type, value)` for every stat, names prefixed with `prefix`.
    fn visit(&self, prefix: &str, emit: &mut dyn FnMut(String, StatType, u64));
}

/// Declares a struct of counters named like their Envoy stats, with `visit` and `reset`.
macro_rules! counters {
    ($(#[$meta:meta])* $name:ident { $($(#[$fmeta:meta])* $field:ident),* $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Default)]
        pub struct $name {
            $($(#[$fmeta])* pub $field: Counter,)*
        }
        impl $name {
            /// Calls `emit` for every counter of this struct.
            pub fn visit_counters(&self, prefix: &str, emit: &mut dyn FnMut(String, StatType, u64)) {
                $(emit(format!("{prefix}{}", stringify!($field)), StatType::Counter, self.$field.get());)*
            }
            /// Resets every counter of this struct to zero, except those that record faults
            /// and refusals ([`kept_on_reset`]).
            pub fn reset(&self) {
                $(if !kept_on_reset(stringify!($field)) {
                    self.$field.reset();
                })*
            }
        }
    };
}

/// Per-status-code counters (`upstream_rq_503`, `upstream_rq_5xx`, …) without a lookup: one slot
/// per code 100–599. Only codes seen at least once are listed, as Envoy creates them lazily.
#[derive(Debug)]
pub struct CodeStats {
    codes: Box<[Counter]>,
    classes: [Counter; 5],
}

impl Default for CodeStats {
    fn default() -> Self {
        CodeStats {
            codes: (0..500).map(|_| Counter::default()).collect(),
            classes: Default::default(),
        }
    }
}

impl CodeStats {
    /// Counts one response with this status code (codes outside 100–599 are ignored).
    #[inline]
    pub fn record(&self, code: u16) {
        if (100..600).contains(&code) {
            self.codes[usize::from(code - 100)].inc();
            self.classes[usize::from(code / 100 - 1)].inc();
        }
    }

    /// How many responses had this code.
    pub fn code(&self, code: u16) -> u64 {
        if (100..600).contains(&code) {
            self.codes[usize::from(code - 100)].get()
        } else {
            0
        }
    }

    /// How many responses were in class `class` (1 to 5, as in `5xx`).
    pub fn class(&self, class: u16) -> u64 {
        match class {
            1..=5 => self.classes[usize::from(class - 1)].get(),
            _ => 0,
        }
    }

    /// Emits `<prefix><stem>_<code>` for seen codes and `<prefix><stem>_<N>xx` for seen classes.
    pub fn visit(&self, prefix: &str, stem: &str, emit: &mut dyn FnMut(String, StatType, u64)) {
        for (i, c) in self.codes.iter().enumerate() {
            let v = c.get();
            if v > 0 {
                emit(format!("{prefix}{stem}_{}", i + 100), StatType::Counter, v);
            }
        }
        for (i, c) in self.classes.iter().enumerate() {
            let v = c.get();
            if v > 0 {
                emit(format!("{prefix}{stem}_{}xx", i + 1), StatType::Counter, v);
            }
        }
    }

    /// Resets every code counter (response codes are traffic counts, not faults: no name of
    /// theirs has a word of [`FAULT_WORDS`]).
    pub fn reset(&self) {
        self.codes.iter().for_each(Counter::reset);
        self.classes.iter().for_each(Counter::reset);
    }
}

counters! {
    /// Counters of one upstream cluster (`cluster.<name>.*`). The gauges `upstream_cx_active`,
    /// `upstream_rq_active` and `upstream_rq_pending_active` are read from the breakers, which
    /// count exactly the same things.
    ClusterCounters {
        upstream_cx_total,
        upstream_cx_http1_total,
        upstream_cx_connect_fail,
        upstream_cx_connect_timeout,
        upstream_cx_overflow,
        upstream_cx_idle_timeout,
        upstream_cx_destroy,
        upstream_cx_destroy_local,
        upstream_cx_destroy_remote,
        upstream_cx_max_requests,
        upstream_cx_none_healthy,
        upstream_cx_protocol_error,
        upstream_cx_rx_bytes_total,
        upstream_cx_tx_bytes_total,
        upstream_rq_total,
        upstream_rq_completed,
        upstream_rq_pending_total,
        upstream_rq_pending_overflow,
        upstream_rq_pending_failure_eject,
        upstream_rq_active_overflow,
        upstream_rq_cancelled,
        upstream_rq_timeout,
        upstream_rq_rx_reset,
        upstream_rq_tx_reset,
        upstream_rq_resent_on_new_cx,
        /// DNS lookups of the cluster's name started (Envoy's DNS cluster stat).
        update_attempt,
        /// Lookups that answered, also with no address (the cluster then has no hosts).
        update_success,
        /// Lookups that failed (server unreachable, SERVFAIL, timeout): the last hosts stay.
        update_failure,
    }
}

counters! {
    /// Counters of one upstream host, shown in `/clusters` (`cluster::host::stat::value`).
    HostCounters {
        cx_connect_fail,
        cx_total,
        rq_error,
        rq_success,
        rq_timeout,
        rq_total,
    }
}

counters! {
    /// Counters of one HTTP listener (`http.<stat_prefix>.*`, Envoy's connection manager stats).
    HttpCounters {
        downstream_cx_total,
        downstream_cx_http1_total,
        downstream_cx_protocol_error,
        downstream_cx_drain_close,
        downstream_cx_idle_timeout,
        downstream_cx_captured,
        downstream_cx_destroy,
        downstream_rq_total,
        downstream_rq_http1_total,
        downstream_rq_completed,
        downstream_rq_rx_reset,
        downstream_rq_tx_reset,
        downstream_rq_header_timeout,
        downstream_rq_idle_timeout,
        downstream_rq_too_large,
        no_route,
        rq_total,
    }
}

counters! {
    /// Fault injection counters of one HTTP listener (`http.<stat_prefix>.fault.*`, Envoy's
    /// fault filter stats).
    FaultCounters {
        delays_injected,
        aborts_injected,
    }
}

/// Stats of one HTTP listener: counters plus active gauges and response classes.
#[derive(Debug, Default)]
pub struct HttpStats {
    /// The counters.
    pub counters: HttpCounters,
    /// `downstream_cx_active`
    pub downstream_cx_active: Gauge,
    /// `downstream_rq_active`
    pub downstream_rq_active: Gauge,
    /// `downstream_rq_<N>xx` (classes) — per-code counters are not listed for listeners.
    pub codes: CodeStats,
    /// `fault.delays_injected`, `fault.aborts_injected`.
    pub fault: FaultCounters,
}

impl Visit for HttpStats {
    fn visit(&self, prefix: &str, emit: &mut dyn FnMut(String, StatType, u64)) {
        self.counters.visit_counters(prefix, emit);
        self.fault.visit_counters(&format!("{prefix}fault."), emit);
        emit(
            format!("{prefix}downstream_cx_active"),
            StatType::Gauge,
            self.downstream_cx_active.get(),
        );
        emit(
            format!("{prefix}downstream_cx_http1_active"),
            StatType::Gauge,
            self.downstream_cx_active.get(),
        );
        emit(
            format!("{prefix}downstream_rq_active"),
            StatType::Gauge,
            self.downstream_rq_active.get(),
        );
        for class in 1..=5u16 {
            emit(
                format!("{prefix}downstream_rq_{class}xx"),
                StatType::Counter,
                self.codes.class(class),
            );
        }
    }
}

impl HttpStats {
    /// Resets every counter but those that record faults and refusals ([`kept_on_reset`]);
    /// gauges stay.
    pub fn reset(&self) {
        self.counters.reset();
        self.fault.reset();
        self.codes.reset();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn collect(v: &dyn Visit, prefix: &str) -> Vec<(String, u64)> {
        let mut out = Vec::new();
        v.visit(prefix, &mut |n, _, val| out.push((n, val)));
        out
    }

    #[test]
    fn codes_are_listed_only_once_seen() {
        let c = CodeStats::default();
        c.record(503);
        c.record(503);
        c.record(200);
        c.record(42); // ignored
        let mut out = Vec::new();
        c.visit("cluster.x.", "upstream_rq", &mut |n, _, v| out.push((n, v)));
        assert_eq!(
            out,
            vec![
                ("cluster.x.upstream_rq_200".to_string(), 1),
                ("cluster.x.upstream_rq_503".to_string(), 2),
                ("cluster.x.upstream_rq_2xx".to_string(), 1),
                ("cluster.x.upstream_rq_5xx".to_string(), 2),
            ]
        );
        assert_eq!(c.class(5), 2);
    }

    #[test]
    fn reset_keeps_exactly_the_fault_and_refusal_counters() {
        let c = ClusterCounters::default();
        let h = HostCounters::default();
        let l = HttpStats::default();
        let mut names = Vec::new();
        let mut all = |n: String, _: StatType, _: u64| names.push(n);
        c.visit_counters("cluster.c.", &mut all);
        h.visit_counters("", &mut all);
        l.visit("http.ingress.", &mut all);
        names.extend(
            [
                "server.config_reload_failure",
                "server.config_reload_success",
                "server.config_dir_fault",
                "server.config_files_skipped",
                "cluster.c.circuit_breakers.default.rq_pending_refused",
                "access_log.x.dropped_lines",
                "access_log.x.write_errors",
                "access_log.x.written_lines",
                "cluster.c.upstream_rq_503",
            ]
            .map(String::from),
        );
        let kept: Vec<&str> = names
            .iter()
            .filter(|n| kept_on_reset(n))
            .map(|n| n.rsplit('.').next().unwrap_or(n))
            .collect();
        assert_eq!(
            kept,
            [
                "upstream_cx_connect_fail",
                "upstream_cx_connect_timeout",
                "upstream_cx_overflow",
                "upstream_cx_idle_timeout",
                "upstream_cx_none_healthy",
                "upstream_cx_protocol_error",
                "upstream_rq_pending_overflow",
                "upstream_rq_pending_failure_eject",
                "upstream_rq_active_overflow",
                "upstream_rq_timeout",
                "upstream_rq_rx_reset",
                "upstream_rq_tx_reset",
                "update_failure",
                "cx_connect_fail",
                "rq_error",
                "rq_timeout",
                "downstream_cx_protocol_error",
                "downstream_cx_idle_timeout",
                "downstream_rq_rx_reset",
                "downstream_rq_tx_reset",
                "downstream_rq_header_timeout",
                "downstream_rq_idle_timeout",
                "downstream_rq_too_large",
                "no_route",
                "config_reload_failure",
                "config_dir_fault",
                "config_files_skipped",
                "rq_pending_refused",
                "dropped_lines",
                "write_errors",
            ]
        );

        // The structs apply the rule: totals go back to zero, faults stay.
        c.upstream_rq_total.add(5);
        c.upstream_cx_overflow.add(2);
        l.counters.no_route.inc();
        l.counters.downstream_rq_total.inc();
        l.codes.record(503);
        c.reset();
        l.reset();
        assert_eq!(c.upstream_rq_total.get(), 0);
        assert_eq!(c.upstream_cx_overflow.get(), 2);
        assert_eq!(l.counters.no_route.get(), 1);
        assert_eq!(l.counters.downstream_rq_total.get(), 0);
        assert_eq!(l.codes.class(5), 0);
    }

    #[test]
    fn http_stats_use_envoy_names() {
        let s = HttpStats::default();
        s.downstream_cx_active.inc();
        s.counters.downstream_rq_total.add(3);
        let out = collect(&s, "http.ingress.");
        assert!(out.contains(&("http.ingress.downstream_cx_active".into(), 1)));
        assert!(out.contains(&("http.ingress.downstream_rq_total".into(), 3)));
        assert!(out.contains(&("http.ingress.downstream_rq_5xx".into(), 0)));
        s.fault.aborts_injected.inc();
        let out = collect(&s, "http.ingress.");
        assert!(out.contains(&("http.ingress.fault.aborts_injected".into(), 1)));
        assert!(out.contains(&("http.ingress.fault.delays_injected".into(), 0)));
        s.reset();
        assert!(collect(&s, "")
            .iter()
            .all(|(n, v)| *v == 0 || n.ends_with("_active")));
    }
}
