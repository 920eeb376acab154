//! Per-resource rules shared by virtual node and virtual gateway listeners and clients:
//! health checks, timeouts, TLS, client policies and logging.

use super::common::{
    AccessLog, BackendDefaults, ClientPolicy, ClientTlsCertificate, HealthCheckPolicy, HttpTimeout,
    ListenerTls, ListenerTlsCertificate, ListenerTlsValidationContextTrust, Logging, LoggingFormat,
    PortProtocol, SubjectAlternativeNames, TcpTimeout, TlsFileCertificate,
    TlsValidationContextTrust,
};
use super::validate::{at, idx, join_protocols, Checker};

pub(crate) fn check_http_timeout(c: &mut Checker, path: &str, t: &HttpTimeout) {
    if let Some(d) = &t.per_request {
        c.duration(&at(path, "perRequest"), d);
    }
    if let Some(d) = &t.idle {
        c.duration(&at(path, "idle"), d);
    }
}

pub(crate) fn check_tcp_timeout(c: &mut Checker, path: &str, t: &TcpTimeout) {
    if let Some(d) = &t.idle {
        c.duration(&at(path, "idle"), d);
    }
}

pub(crate) fn check_health(
    c: &mut Checker,
    p: &str,
    hc: &HealthCheckPolicy,
    listener_port: i64,
    allowed: &[PortProtocol],
) {
    c.range(&at(p, "intervalMillis"), hc.interval_millis, 5000, 300_000);
    c.range(&at(p, "timeoutMillis"), hc.timeout_millis, 2000, 60_000);
    c.range(&at(p, "healthyThreshold"), hc.healthy_threshold, 2, 10);
    c.range(&at(p, "unhealthyThreshold"), hc.unhealthy_threshold, 2, 10);
    if !allowed.contains(&hc.protocol) {
        c.push(
            at(p, "protocol"),
            format!(
                "must be one of {}, got \"{}\"",
                join_protocols(allowed),
                hc.protocol
            ),
        );
    }
    if let Some(port) = hc.port {
        let pp = at(p, "port");
        c.port(&pp, port);
        if (1..=65535).contains(&port) && port != listener_port {
            c.push(
                pp,
                format!("must match the listener's portMapping.port {listener_port}, got {port}"),
            );
        }
    }
    let http = matches!(hc.protocol, PortProtocol::Http | PortProtocol::Http2);
    match (&hc.path, http) {
        (Some(path), true) if !path.starts_with('/') => c.push(
            at(p, "path"),
            format!("must start with \"/\", got \"{path}\""),
        ),
        // App Mesh refuses an http or http2 check without a path (aws-app-mesh-roadmap#199).
        (None, true) => c.push(
            at(p, "path"),
            format!(
                "is required for an {} health check: the request path to probe, e.g. \"/ping\"",
                hc.protocol
            ),
        ),
        _ => {}
    }
}

pub(crate) fn check_listener_tls(c: &mut Checker, p: &str, tls: &ListenerTls) {
    let cp = at(p, "certificate");
    match &tls.certificate {
        ListenerTlsCertificate::Acm(acm) => {
            c.len(
                &at(&cp, "acm.certificateArn"),
                &acm.certificate_arn,
                1,
                2048,
            );
        }
        ListenerTlsCertificate::File(f) => check_file_cert(c, &at(&cp, "file"), f),
        ListenerTlsCertificate::Sds(s) => {
            c.len(&at(&cp, "sds.secretName"), &s.secret_name, 1, 2048)
        }
    }
    if let Some(v) = &tls.validation {
        let vp = at(p, "validation");
        match &v.trust {
            ListenerTlsValidationContextTrust::File(f) => {
                c.len(
                    &at(&vp, "trust.file.certificateChain"),
                    &f.certificate_chain,
                    1,
                    255,
                );
            }
            ListenerTlsValidationContextTrust::Sds(s) => {
                c.len(&at(&vp, "trust.sds.secretName"), &s.secret_name, 1, 2048);
            }
        }
        if let Some(san) = &v.subject_alternative_names {
            check_san(c, &at(&vp, "subjectAlternativeNames"), san);
        }
    }
}

pub(crate) fn check_file_cert(c: &mut Checker, p: &str, f: &TlsFileCertificate) {
    c.len(&at(p, "certificateChain"), &f.certificate_chain, 1, 255);
    c.len(&at(p, "privateKey"), &f.private_key, 1, 255);
}

pub(crate) fn check_san(c: &mut Checker, p: &str, san: &SubjectAlternativeNames) {
    let ep = at(p, "match.exact");
    for (i, name) in san.r#match.exact.iter().enumerate() {
        c.len(&idx(&ep, i), name, 1, 254);
    }
}

pub(crate) fn check_client_policy(c: &mut Checker, p: &str, cp: &ClientPolicy) {
    let Some(tls) = &cp.tls else { return };
    let tp = at(p, "tls");
    for (i, port) in tls.ports.as_deref().unwrap_or(&[]).iter().enumerate() {
        c.port(&idx(&at(&tp, "ports"), i), *port);
    }
    match &tls.certificate {
        Some(ClientTlsCertificate::File(f)) => check_file_cert(c, &at(&tp, "certificate.file"), f),
        Some(ClientTlsCertificate::Sds(s)) => {
            c.len(
                &at(&tp, "certificate.sds.secretName"),
                &s.secret_name,
                1,
                2048,
            );
        }
        None => {}
    }
    let vp = at(&tp, "validation");
    match &tls.validation.trust {
        TlsValidationContextTrust::Acm(acm) => {
            c.items(
                &at(&vp, "trust.acm.certificateAuthorityArns"),
                &acm.certificate_authority_arns,
                1,
                3,
            );
        }
        TlsValidationContextTrust::File(f) => {
            c.len(
                &at(&vp, "trust.file.certificateChain"),
                &f.certificate_chain,
                1,
                255,
            );
        }
        TlsValidationContextTrust::Sds(s) => {
            c.len(&at(&vp, "trust.sds.secretName"), &s.secret_name, 1, 2048);
        }
    }
    if let Some(san) = &tls.validation.subject_alternative_names {
        check_san(c, &at(&vp, "subjectAlternativeNames"), san);
    }
}

pub(crate) fn check_backend_defaults(c: &mut Checker, p: &str, bd: &BackendDefaults) {
    if let Some(cp) = &bd.client_policy {
        check_client_policy(c, &at(p, "clientPolicy"), cp);
    }
}

pub(crate) fn check_logging(c: &mut Checker, p: &str, logging: &Logging) {
    let Some(AccessLog::File(file)) = &logging.access_log else {
        return;
    };
    let fp = at(p, "accessLog.file");
    c.len(&at(&fp, "path"), &file.path, 1, 255);
    match &file.format {
        Some(LoggingFormat::Json(pairs)) => {
            let jp = at(&fp, "format.json");
            c.items(&jp, pairs, 1, 100);
            for (i, pair) in pairs.iter().enumerate() {
                let pp = idx(&jp, i);
                c.len(&at(&pp, "key"), &pair.key, 1, 100);
                c.len(&at(&pp, "value"), &pair.value, 1, 100);
            }
        }
        Some(LoggingFormat::Text(text)) => c.len(&at(&fp, "format.text"), text, 1, 1000),
        None => {}
    }
}
