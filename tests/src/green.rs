//! The walkthrough's green node served by a real meshd in front of a real demo app, and a probe
//! that keeps requests flowing through a listener: for the config-path tests, which change the
//! config under load.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::{eventually, http_get, walkthrough_config, DemoApp, Meshd, TempDir};

/// Green's ingress cluster in the walkthrough.
pub const GREEN_CLUSTER: &str = "cds_ingress_color-mesh_green_http_8080";

/// meshd serving green of the walkthrough (copied to a temp dir) in front of a demo app.
pub struct Green {
    pub app: DemoApp,
    pub meshd: Meshd,
    pub tmp: TempDir,
    pub config: PathBuf,
}

/// The flags that make meshd serve green on a free port in front of `app`.
pub fn green_flags(app: &DemoApp) -> Vec<String> {
    vec![
        "--node".into(),
        "green".into(),
        "--listen".into(),
        "green=127.0.0.1:0".into(),
        "--app".into(),
        format!("green={}", app.addr),
    ]
}

impl Green {
    /// A demo app, a copy of the walkthrough and meshd serving green (plus `extra` flags).
    pub fn start(extra: &[&str]) -> Green {
        let app = DemoApp::start("green", &[]);
        let (tmp, config) = walkthrough_config();
        let meshd = Self::meshd(&app, &config, extra);
        Green {
            app,
            meshd,
            tmp,
            config,
        }
    }

    /// meshd serving green of `config` in front of `app`.
    pub fn meshd(app: &DemoApp, config: &Path, extra: &[&str]) -> Meshd {
        let flags = green_flags(app);
        let mut all: Vec<&str> = flags.iter().map(String::as_str).collect();
        all.extend_from_slice(extra);
        Meshd::start(config, &all)
    }

    /// green's listener.
    pub fn url(&self) -> String {
        format!("http://{}/", self.meshd.listener("green-ingress"))
    }

    /// green's `max_connections` as `/clusters` shows it.
    pub fn max_connections(&self) -> Option<u64> {
        let body = http_get(&self.meshd.url("/clusters")).body;
        let prefix = format!("{GREEN_CLUSTER}::default_priority::max_connections::");
        body.lines()
            .find_map(|l| l.strip_prefix(&prefix))
            .and_then(|v| v.parse().ok())
    }

    /// Waits (bounded) until green's `max_connections` is `want`.
    pub fn wait_max_connections(&self, want: u64, what: &str) {
        eventually(what, Duration::from_secs(15), || {
            (self.max_connections() == Some(want)).then_some(())
        });
    }
}

/// The walkthrough's green node file with `maxConnections` set to `max`.
pub fn green_json(max: u64) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/walkthrough/vn-green.json");
    let mut v: Value =
        serde_json::from_str(&std::fs::read_to_string(path).expect("vn-green")).expect("json");
    v["spec"]["listeners"][0]["connectionPool"]["http"]["maxConnections"] = json!(max);
    // Keep the log where walkthrough_config() points it: not needed here.
    v["spec"].as_object_mut().expect("spec").remove("logging");
    serde_json::to_string_pretty(&v).expect("json")
}

/// Requests through a listener in a loop until stopped, counting successes and failures and
/// keeping the slowest; bounded by `limit` requests and 60 s.
pub struct Probe {
    stop: Arc<AtomicBool>,
    ok: Arc<AtomicU64>,
    slowest_us: Arc<AtomicU64>,
    thread: Option<std::thread::JoinHandle<Vec<String>>>,
}

impl Probe {
    pub fn start(url: String, limit: u64) -> Probe {
        let stop = Arc::new(AtomicBool::new(false));
        let ok = Arc::new(AtomicU64::new(0));
        let failed = Arc::new(AtomicU64::new(0));
        let slowest_us = Arc::new(AtomicU64::new(0));
        let (s, o, f, w) = (stop.clone(), ok.clone(), failed.clone(), slowest_us.clone());
        let thread = std::thread::spawn(move || {
            let agent = ureq::AgentBuilder::new()
                .timeout(Duration::from_secs(10))
                .build();
            let deadline = Instant::now() + Duration::from_secs(60);
            let mut errors = Vec::new();
            for _ in 0..limit {
                if s.load(Ordering::SeqCst) || Instant::now() > deadline {
                    break;
                }
                let t = Instant::now();
                match agent.get(&url).call() {
                    Ok(r) if r.status() == 200 => {
                        o.fetch_add(1, Ordering::SeqCst);
                    }
                    Ok(r) => {
                        f.fetch_add(1, Ordering::SeqCst);
                        errors.push(format!("status {}", r.status()));
                    }
                    Err(e) => {
                        f.fetch_add(1, Ordering::SeqCst);
                        errors.push(e.to_string());
                    }
                }
                w.fetch_max(t.elapsed().as_micros() as u64, Ordering::SeqCst);
            }
            errors
        });
        Probe {
            stop,
            ok,
            slowest_us,
            thread: Some(thread),
        }
    }

    /// Waits until at least `n` more requests succeeded than now.
    pub fn wait_some(&self, n: u64) {
        let base = self.ok.load(Ordering::SeqCst);
        eventually("probe requests to succeed", Duration::from_secs(20), || {
            (self.ok.load(Ordering::SeqCst) >= base + n).then_some(())
        });
    }

    /// Stops the loop; returns (succeeded, failure messages, slowest request).
    pub fn finish(mut self) -> (u64, Vec<String>, Duration) {
        self.stop.store(true, Ordering::SeqCst);
        let errors = self
            .thread
            .take()
            .map(|t| t.join().expect("probe thread"))
            .unwrap_or_default();
        (
            self.ok.load(Ordering::SeqCst),
            errors,
            Duration::from_micros(self.slowest_us.load(Ordering::SeqCst)),
        )
    }
}

impl Drop for Probe {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
