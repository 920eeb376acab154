//! meshload against a real HTTPS server (the demo-app with a certificate made for the test):
//! both clients, certificate checks (-cacert, -k, none), HTTP/2 by ALPN, and mTLS (-cert/-key).

use std::path::{Path, PathBuf};
use std::process::Command;

use mesh_tests::{bin, run_bounded, DemoApp, Run, TempDir};
use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
use serde_json::Value;

/// A CA, a server certificate for 127.0.0.1 and localhost, and a client certificate, as PEM
/// files in a temporary directory.
struct Pki {
    dir: TempDir,
}

impl Pki {
    fn new() -> Pki {
        let dir = tempfile::tempdir().expect("tempdir");
        let ca_key = KeyPair::generate().expect("ca key");
        let mut ca = CertificateParams::new(Vec::<String>::new()).expect("ca params");
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca_cert = ca.self_signed(&ca_key).expect("ca cert");
        let issuer = Issuer::new(ca, ca_key);
        let write = |name: &str, text: String| {
            std::fs::write(dir.path().join(name), text).expect("write pem");
        };
        write("ca.pem", ca_cert.pem());
        for (name, sans) in [
            (
                "server",
                vec!["127.0.0.1".to_owned(), "localhost".to_owned()],
            ),
            ("client", vec!["meshload-client".to_owned()]),
        ] {
            let key = KeyPair::generate().expect("key");
            let cert = CertificateParams::new(sans)
                .expect("params")
                .signed_by(&key, &issuer)
                .expect("sign");
            write(&format!("{name}.pem"), cert.pem());
            write(&format!("{name}.key"), key.serialize_pem());
        }
        Pki { dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn app(&self, extra: &[&str]) -> DemoApp {
        let cert = self.path("server.pem");
        let key = self.path("server.key");
        let mut args = vec![
            "--tls-cert",
            cert.to_str().expect("utf-8 path"),
            "--tls-key",
            key.to_str().expect("utf-8 path"),
        ];
        args.extend_from_slice(extra);
        DemoApp::start("tls", &args)
    }
}

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

fn meshload(args: &[&str]) -> Run {
    let mut cmd = Command::new(bin("meshload"));
    cmd.args(["-loglevel", "Warning", "-qps", "0"]).args(args);
    run_bounded(cmd, &format!("meshload {args:?}"))
}

fn json_ok(args: &[&str]) -> Value {
    let mut all = vec!["-json", "-"];
    all.extend_from_slice(args);
    let r = meshload(&all);
    assert_eq!(r.code, 0, "meshload {args:?}:\n{}", r.stderr);
    serde_json::from_str(&r.stdout).expect("JSON result")
}

#[test]
fn https_with_the_ca_both_clients_and_h2_by_alpn() {
    let pki = Pki::new();
    let app = pki.app(&[]);
    let url = format!("https://{}/?size=1000", app.addr);
    let ca = pki.path("ca.pem");

    let v = json_ok(&["-c", "2", "-n", "10", "-cacert", s(&ca), &url]);
    assert_eq!(v["RetCodes"]["200"], 10, "{v}");
    assert_eq!(v["SocketCount"], 2);
    assert_eq!(v["CACert"], s(&ca));
    let head = v["HeaderSizes"]["Min"].as_u64().expect("head");
    assert_eq!(v["Sizes"]["Min"], head + 1000, "fast client over TLS");

    let v = json_ok(&["-c", "2", "-n", "10", "-stdclient", "-cacert", s(&ca), &url]);
    assert_eq!(v["RetCodes"]["200"], 10, "{v}");
    assert_eq!(app.stats()["requests_http2"], 0);

    let v = json_ok(&["-c", "2", "-n", "10", "-h2", "-cacert", s(&ca), &url]);
    assert_eq!(v["RetCodes"]["200"], 10, "{v}");
    assert_eq!(app.stats()["requests_http2"], 10, "h2 negotiated by ALPN");
}

#[test]
fn certificates_are_checked_unless_insecure() {
    let pki = Pki::new();
    let app = pki.app(&[]);
    let url = format!("https://{}/", app.addr);

    // Mozilla's roots do not know the test CA: the warm-up call fails the handshake.
    let r = meshload(&["-c", "1", "-t", "1s", &url]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(
        r.stderr.contains("Aborting because of error -1"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.contains("Unable to connect to") && r.stderr.contains("certificate"),
        "{}",
        r.stderr
    );

    for flag in ["-k", "-https-insecure"] {
        let v = json_ok(&["-c", "1", "-n", "3", flag, &url]);
        assert_eq!(v["RetCodes"]["200"], 3, "{flag}: {v}");
        assert_eq!(v["Insecure"], true);
    }

    // The name must match too: the certificate is for 127.0.0.1 and localhost only.
    let port = app.addr.port();
    let ca = pki.path("ca.pem");
    for (host, code) in [("wrong.invalid", "-1"), ("localhost", "200")] {
        let url = format!("https://{host}:{port}/");
        let v = json_ok(&[
            "-c",
            "1",
            "-n",
            "2",
            "-resolve",
            "127.0.0.1",
            "-cacert",
            s(&ca),
            &url,
        ]);
        assert_eq!(v["RetCodes"][code], 2, "{host}: {v}");
    }
}

#[test]
fn mtls_client_certificate() {
    let pki = Pki::new();
    let ca = pki.path("ca.pem");
    let app = pki.app(&["--tls-client-ca", s(&ca)]);
    let url = format!("https://{}/", app.addr);
    let (cert, key) = (pki.path("client.pem"), pki.path("client.key"));

    let v = json_ok(&[
        "-c",
        "1",
        "-n",
        "3",
        "-cacert",
        s(&ca),
        "-cert",
        s(&cert),
        "-key",
        s(&key),
        &url,
    ]);
    assert_eq!(v["RetCodes"]["200"], 3, "{v}");
    assert_eq!(v["MTLS"], true);

    // Without a client certificate the server refuses the connection.
    let v = json_ok(&["-c", "1", "-n", "2", "-cacert", s(&ca), &url]);
    assert_eq!(v["RetCodes"]["-1"], 2, "{v}");
}

#[test]
fn bad_tls_files_are_usage_errors() {
    let pki = Pki::new();
    let missing = pki.path("missing.pem");
    let key = pki.path("client.key");
    for (args, what) in [
        (
            vec!["-cacert", s(&missing)],
            format!("-cacert {}", s(&missing)),
        ),
        (vec!["-cacert", s(&key)], format!("-cacert {}", s(&key))),
        (vec!["-key", s(&key)], format!("-key {}", s(&key))),
    ] {
        let mut all = args.clone();
        all.push("https://127.0.0.1:1/");
        let r = meshload(&all);
        assert_eq!(r.code, 2, "{args:?}: {}", r.stderr);
        let line = r.stderr.lines().last().unwrap_or_default();
        assert!(line.starts_with(&format!("meshload: {what} : ")), "{line}");
    }
}
