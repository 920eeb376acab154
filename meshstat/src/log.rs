//! `meshstat log`: filters and summarises access logs (files or stdin), or follows them.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use mesh_core::accesslog::ResponseFlag;
use regex::Regex;
use serde_json::json;

use crate::error::{Error, Result};
use crate::logparse::{parse, Entry};
use crate::output::Out;

/// Which lines to keep.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// Keep lines carrying any of these flags.
    pub flags: Vec<String>,
    /// Keep lines whose code matches any of these (`503`, `5xx`).
    pub codes: Vec<String>,
    /// Keep lines whose path matches this.
    pub path: Option<Regex>,
    /// Keep lines that started at or after this instant.
    pub since: Option<SystemTime>,
}

impl Filter {
    /// Checks the flags and codes given on the command line.
    pub fn new(
        flags: &[String],
        codes: &[String],
        path: Option<&str>,
        since: Option<&str>,
    ) -> Result<Filter> {
        let mut f = Filter::default();
        for fl in flags.iter().flat_map(|s| s.split(',')) {
            let fl = fl.trim();
            if ResponseFlag::from_short(fl).is_none() {
                let known: Vec<&str> = ResponseFlag::ALL.iter().map(|f| f.short()).collect();
                return Err(Error::usage(
                    format!("--flag {fl}"),
                    format!(
                        "unknown response flag (known: {}; see `meshstat flags`)",
                        known.join(" ")
                    ),
                ));
            }
            f.flags.push(fl.to_owned());
        }
        for c in codes.iter().flat_map(|s| s.split(',')) {
            let c = c.trim().to_ascii_lowercase();
            let ok = c.len() == 3
                && (c.bytes().all(|b| b.is_ascii_digit())
                    || (c.as_bytes()[0].is_ascii_digit() && &c[1..] == "xx"));
            if !ok {
                return Err(Error::usage(
                    format!("--code {c}"),
                    "expected a code like 503 or a class like 5xx",
                ));
            }
            f.codes.push(c);
        }
        if let Some(p) = path {
            f.path = crate::error::compile(&[p.to_owned()])?.pop();
        }
        if let Some(s) = since {
            f.since = Some(parse_since(s)?);
        }
        Ok(f)
    }

    /// Whether `e` passes every filter.
    pub fn keep(&self, e: &Entry) -> bool {
        if !self.flags.is_empty() && !e.flags.iter().any(|f| self.flags.contains(f)) {
            return false;
        }
        if !self.codes.is_empty() {
            let code = format!("{:03}", e.code);
            let class = format!("{}xx", &code[..1]);
            if !self.codes.iter().any(|c| *c == code || *c == class) {
                return false;
            }
        }
        if let Some(p) = &self.path {
            if !e.path.as_deref().is_some_and(|x| p.is_match(x)) {
                return false;
            }
        }
        if let Some(since) = self.since {
            if e.time().is_none_or(|t| t < since) {
                return false;
            }
        }
        true
    }
}

/// `--since`: an RFC 3339 time (`2026-01-02T03:04:05Z`) or a duration back from now (`10m`).
pub fn parse_since(s: &str) -> Result<SystemTime> {
    if let Ok(t) = humantime::parse_rfc3339_weak(s) {
        return Ok(t);
    }
    match humantime::parse_duration(s) {
        Ok(d) => SystemTime::now()
            .checked_sub(d)
            .ok_or_else(|| Error::usage(format!("--since {s}"), "too far back")),
        Err(e) => Err(Error::usage(
            format!("--since {s}"),
            format!("neither an RFC 3339 time nor a duration like 10m ({e})"),
        )),
    }
}

/// What the lines read so far add up to.
#[derive(Debug)]
pub struct Summary {
    /// Lines read (not counting empty ones).
    pub lines: u64,
    /// Lines that did not parse.
    pub unparsed: u64,
    /// The first unparsed line's place (`file:line`).
    pub first_unparsed: Option<String>,
    /// Lines parsed and kept by the filter.
    pub kept: u64,
    by_code: BTreeMap<u16, u64>,
    by_flag: BTreeMap<String, u64>,
    by_host: BTreeMap<String, u64>,
    durations: hdrhistogram::Histogram<u64>,
}

impl Default for Summary {
    fn default() -> Self {
        Summary {
            lines: 0,
            unparsed: 0,
            first_unparsed: None,
            kept: 0,
            by_code: BTreeMap::new(),
            by_flag: BTreeMap::new(),
            by_host: BTreeMap::new(),
            durations: hdrhistogram::Histogram::new(3)
                .unwrap_or_else(|e| panic!("histogram with 3 significant digits: {e}")),
        }
    }
}

impl Summary {
    /// Adds a kept entry.
    pub fn add(&mut self, e: &Entry) {
        self.kept += 1;
        *self.by_code.entry(e.code).or_default() += 1;
        if e.flags.is_empty() {
            *self.by_flag.entry("-".into()).or_default() += 1;
        }
        for f in &e.flags {
            *self.by_flag.entry(f.clone()).or_default() += 1;
        }
        if let Some(h) = &e.upstream_host {
            *self.by_host.entry(h.clone()).or_default() += 1;
        }
        if let Some(d) = e.duration_ms {
            self.durations.saturating_record(d);
        }
    }

    /// How many kept lines carry flag `f`.
    pub fn flag_count(&self, f: &str) -> u64 {
        self.by_flag.get(f).copied().unwrap_or(0)
    }

    fn share(&self, n: u64) -> String {
        if self.kept == 0 {
            "0.0%".into()
        } else {
            format!("{:.1}%", n as f64 * 100.0 / self.kept as f64)
        }
    }

    /// The summary as text lines.
    pub fn text(&self) -> Vec<String> {
        let mut out = vec![format!(
            "requests {} (lines {}, unparsed {}, filtered out {})",
            self.kept,
            self.lines,
            self.unparsed,
            self.lines - self.unparsed - self.kept
        )];
        out.push("by code:".into());
        for (c, n) in &self.by_code {
            out.push(format!("  {c:<5} {n:>8}  {:>6}", self.share(*n)));
        }
        out.push("by flag:".into());
        let mut flags: Vec<(&String, &u64)> = self.by_flag.iter().collect();
        flags.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
        for (f, n) in flags {
            let long = ResponseFlag::from_short(f).map_or("", |x| x.long());
            out.push(
                format!("  {f:<5} {n:>8}  {:>6}  {long}", self.share(*n))
                    .trim_end()
                    .to_owned(),
            );
        }
        let h = &self.durations;
        if !h.is_empty() {
            out.push(format!(
                "duration ms: p50 {} p90 {} p99 {} max {} (of {})",
                h.value_at_quantile(0.5),
                h.value_at_quantile(0.9),
                h.value_at_quantile(0.99),
                h.max(),
                h.len()
            ));
        }
        if !self.by_host.is_empty() {
            out.push("top upstream hosts:".into());
            for (host, n) in self.top_hosts(5) {
                out.push(format!("  {host:<21} {n:>8}  {:>6}", self.share(n)));
            }
        }
        out
    }

    fn top_hosts(&self, k: usize) -> Vec<(String, u64)> {
        let mut hosts: Vec<(String, u64)> =
            self.by_host.iter().map(|(h, n)| (h.clone(), *n)).collect();
        hosts.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        hosts.truncate(k);
        hosts
    }

    /// The summary as one JSON object.
    pub fn json(&self) -> serde_json::Value {
        let h = &self.durations;
        let pct = |q: f64| (!h.is_empty()).then(|| h.value_at_quantile(q));
        json!({
            "requests": self.kept,
            "lines": self.lines,
            "unparsed": self.unparsed,
            "by_code": self.by_code.iter().map(|(c, n)| (c.to_string(), json!(n))).collect::<serde_json::Map<_, _>>(),
            "by_flag": self.by_flag,
            "duration_ms": {"p50": pct(0.5), "p90": pct(0.9), "p99": pct(0.99), "max": (!h.is_empty()).then(|| h.max())},
            "top_upstream_hosts": self.top_hosts(5).into_iter().map(|(h, n)| json!({"host": h, "requests": n})).collect::<Vec<_>>(),
        })
    }
}

/// How `log` prints what it keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Only the summary.
    Summary,
    /// The kept lines as they are, then nothing else.
    Lines,
    /// Each kept line as a JSON record.
    Json,
}

/// Reads lines from `input`, feeding `summary` and printing kept lines per `mode`.
pub fn scan(
    name: &str,
    input: impl BufRead,
    filter: &Filter,
    mode: Mode,
    summary: &mut Summary,
    out: &mut Out,
) -> Result<()> {
    for (i, line) in input.split(b'\n').enumerate() {
        let line = line.map_err(|source| Error::File {
            path: PathBuf::from(name),
            source,
        })?;
        let text = String::from_utf8_lossy(&line);
        one_line(name, i + 1, &text, filter, mode, summary, out)?;
    }
    Ok(())
}

fn one_line(
    name: &str,
    lineno: usize,
    text: &str,
    filter: &Filter,
    mode: Mode,
    summary: &mut Summary,
    out: &mut Out,
) -> Result<()> {
    let text = text.trim_end_matches(['\r', '\n']);
    if text.trim().is_empty() {
        return Ok(());
    }
    summary.lines += 1;
    let Some(e) = parse(text) else {
        summary.unparsed += 1;
        if summary.first_unparsed.is_none() {
            summary.first_unparsed = Some(format!("{name}:{lineno}"));
        }
        return Ok(());
    };
    if !filter.keep(&e) {
        return Ok(());
    }
    summary.add(&e);
    match mode {
        Mode::Summary => Ok(()),
        Mode::Lines => out.line(text),
        Mode::Json => {
            let mut v = serde_json::to_value(&e).unwrap_or_default();
            v["file"] = json!(name);
            out.line(&v.to_string())
        }
    }
}

/// Opens a log file, or stdin for `-`.
pub fn open(path: &str) -> Result<Box<dyn BufRead>> {
    if path == "-" {
        return Ok(Box::new(BufReader::new(std::io::stdin())));
    }
    let f = std::fs::File::open(path).map_err(|source| Error::File {
        path: PathBuf::from(path),
        source,
    })?;
    Ok(Box::new(BufReader::new(f)))
}

/// `tail -f`: prints kept lines of `path` as they are appended, from its current end (or from
/// the start with `from_start`), until the output closes or `stop` says so. A truncated or
/// replaced file is read again from its start.
pub fn follow(
    path: &Path,
    filter: &Filter,
    mode: Mode,
    from_start: bool,
    out: &mut Out,
    mut stop: impl FnMut() -> bool,
) -> Result<Summary> {
    let name = path.display().to_string();
    let file_err = |source| Error::File {
        path: path.to_owned(),
        source,
    };
    let mut f = std::fs::File::open(path).map_err(file_err)?;
    let mut pos = if from_start {
        0
    } else {
        f.seek(SeekFrom::End(0)).map_err(file_err)?
    };
    let mut summary = Summary::default();
    let mut pending = Vec::new();
    let mut lineno = 0;
    let mode = if mode == Mode::Summary {
        Mode::Lines
    } else {
        mode
    };
    while !stop() {
        let len = std::fs::metadata(path).map(|m| m.len()).unwrap_or(pos);
        if len < pos {
            f = std::fs::File::open(path).map_err(file_err)?;
            pos = 0;
            pending.clear();
        }
        f.seek(SeekFrom::Start(pos)).map_err(file_err)?;
        let mut buf = Vec::new();
        let n = (&mut f)
            .take(1 << 20)
            .read_to_end(&mut buf)
            .map_err(file_err)?;
        pos += n as u64;
        pending.extend_from_slice(&buf);
        while let Some(i) = pending.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = pending.drain(..=i).collect();
            lineno += 1;
            let text = String::from_utf8_lossy(&line);
            one_line(&name, lineno, &text, filter, mode, &mut summary, out)?;
        }
        out.flush()?;
        if n == 0 {
            std::thread::sleep(Duration::from_millis(200));
        }
    }
    Ok(summary)
}
