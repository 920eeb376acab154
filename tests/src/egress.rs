//! The walkthrough plus a node `front` whose backend is the virtual service `color-paths`, all
//! served by one meshd: `front`'s egress listener is where an app's outbound calls enter the
//! mesh (Host-routed, or as its HTTP proxy).

use std::net::SocketAddr;
use std::path::Path;

use crate::{walkthrough_config, DemoApp, Meshd, TempDir};

/// A running walkthrough with `front`.
pub struct Front {
    /// The one app behind `green` and `red` (it answers `green`).
    pub app: DemoApp,
    /// The config directory's temp dir.
    pub dir: TempDir,
    /// meshd serving `front`, `green` and `red` (listeners on free ports).
    pub meshd: Meshd,
    /// `front`'s egress listener.
    pub egress: SocketAddr,
}

/// Starts it; `front` logs to `log` when given.
pub fn front(log: Option<&Path>) -> Front {
    let app = DemoApp::start("green", &[]);
    let (dir, config) = walkthrough_config();
    let logging = log.map_or(String::new(), |p| {
        format!(
            r#", "logging": {{"accessLog": {{"file": {{"path": {}}}}}}}"#,
            serde_json::Value::from(p.display().to_string())
        )
    });
    std::fs::write(
        config.join("vn-front.json"),
        format!(
            r#"{{"meshName": "color-mesh", "virtualNodeName": "front",
                "spec": {{"backends": [{{"virtualService": {{"virtualServiceName": "color-paths"}}}}]{logging}}}}}"#
        ),
    )
    .expect("write front");
    let a = app.addr.to_string();
    let meshd = Meshd::start(
        &config,
        &[
            "--node",
            "front",
            "--node",
            "green",
            "--node",
            "red",
            "--egress",
            "front=127.0.0.1:0",
            "--listen",
            "green=127.0.0.1:0",
            "--listen",
            "red=127.0.0.1:0",
            "--app",
            &format!("green={a}"),
            "--app",
            &format!("red={a}"),
        ],
    );
    let egress = meshd.listener("front-egress");
    Front {
        app,
        dir,
        meshd,
        egress,
    }
}
