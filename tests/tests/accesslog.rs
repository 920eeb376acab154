//! A stuck access log never slows or fails requests: meshd queues lines off the request path,
//! and when the queue is full it drops them and counts the drops.

use std::process::Command;
use std::sync::mpsc;
use std::time::Duration;

use std::path::{Path, PathBuf};

use mesh_tests::{bin, run_bounded, walkthrough_config, DemoApp, Meshd, TempDir};

/// The walkthrough with green logging into a new FIFO named `name` (no reader yet).
fn green_logging_to_fifo(name: &str) -> (TempDir, PathBuf, PathBuf) {
    let (dir, config) = walkthrough_config();
    let fifo = dir.path().join(name);
    let made = Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .expect("run mkfifo");
    assert!(made.success(), "mkfifo {}", fifo.display());
    let node = config.join("vn-green.json");
    let text = std::fs::read_to_string(&node).expect("read vn-green.json");
    let log = dir.path().join("access.log");
    let text = text.replace(&log.display().to_string(), &fifo.display().to_string());
    std::fs::write(&node, text).expect("write vn-green.json");
    (dir, config, fifo)
}

/// meshd serving green in front of `app`.
fn green(config: &Path, app: &DemoApp) -> Meshd {
    let app_arg = format!("green={}", app.addr);
    Meshd::start(
        config,
        &[
            "--node",
            "green",
            "--listen",
            "green=127.0.0.1:0",
            "--app",
            &app_arg,
        ],
    )
}

/// `meshload -c C -n N` through green's listener; returns its stderr.
fn load(meshd: &Meshd, c: &str, n: &str) -> String {
    let url = format!("http://{}/", meshd.listener("green-ingress"));
    let mut cmd = Command::new(bin("meshload"));
    cmd.args(["-c", c, "-qps", "0", "-n", n, "-loglevel", "Warning", &url]);
    let r = run_bounded(cmd, &format!("meshload -n {n} through green"));
    assert_eq!(r.code, 0, "{}", r.stderr);
    r.stderr
}

#[test]
fn a_stuck_access_log_drops_lines_and_requests_still_succeed() {
    let app = DemoApp::start("green", &[]);
    // Green logs into a FIFO that is open for reading but never read: once the pipe's buffer is
    // full, meshd's log writer blocks for good.
    let (_dir, config, fifo) = green_logging_to_fifo("stuck.log");
    // Opening a FIFO for reading waits for its writer (meshd), so it happens on a thread that
    // hands the open end back; the test holds it, unread, until it ends.
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(std::fs::File::open(fifo));
    });
    let meshd = green(&config, &app);
    let _reader = rx
        .recv_timeout(Duration::from_secs(20))
        .expect("meshd opened the FIFO")
        .expect("open the FIFO for reading");

    // More requests than the queue (8192 lines) and the pipe buffer hold.
    let stderr = load(&meshd, "8", "12000");
    assert!(
        stderr.lines().any(|l| l == "Code 200 : 12000 (100.0 %)"),
        "every request succeeds while the log is stuck:\n{stderr}"
    );

    let stats = meshd.stats();
    let stat = |suffix: &str| {
        stats
            .iter()
            .find(|(k, _)| {
                k.starts_with("access_log.") && k.contains("stuck") && k.ends_with(suffix)
            })
            .map(|(_, v)| *v)
            .unwrap_or_else(|| panic!("no access_log.*stuck*{suffix} in {stats:?}"))
    };
    let (dropped, written) = (stat(".dropped_lines"), stat(".written_lines"));
    // At most the queue, one batch and what the pipe took can be anywhere but dropped.
    assert!(
        dropped >= 12000 - 8192 - 64 - 1000,
        "dropped {dropped}, written {written}"
    );
    assert!(
        dropped + written <= 12000,
        "dropped {dropped}, written {written}"
    );
}

#[test]
fn a_fifo_log_without_a_reader_holds_up_nothing_and_its_reader_gets_the_lines() {
    let app = DemoApp::start("green", &[]);
    let (_dir, config, fifo) = green_logging_to_fifo("later.log");
    // No reader yet: meshd must still become ready and serve.
    let meshd = green(&config, &app);
    let stderr = load(&meshd, "2", "20");
    assert!(
        stderr.lines().any(|l| l == "Code 200 : 20 (100.0 %)"),
        "{stderr}"
    );

    // A reader arrives: the queued lines reach it.
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        let Ok(file) = std::fs::File::open(&fifo) else {
            return;
        };
        for line in std::io::BufReader::new(file).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    for i in 0..20 {
        let line = rx
            .recv_timeout(Duration::from_secs(20))
            .unwrap_or_else(|_| panic!("access log line {i} of 20 did not arrive"));
        assert!(line.contains("\"GET / HTTP/1.1\" 200"), "{line}");
    }
    drop(meshd);
}
