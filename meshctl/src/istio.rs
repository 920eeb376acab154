//! What meshctl does for Istio's kinds: `vs` naming both virtual service kinds, the tables
//! kubectl users expect (NAME, NAMESPACE, HOST(S), …), and YAML output.

use http::{Method, StatusCode};
use mesh_core::model::Kind;
use serde_json::Value;

use crate::client::{query, Client};
use crate::Error;

/// The kinds a word names: `vs`, `virtualservice(s)` name App Mesh's and Istio's virtual
/// services; `virtualservice.appmesh.k8s.aws` and `virtualservice.networking.istio.io` one each.
pub fn kinds_for(word: &str) -> Result<Vec<Kind>, Error> {
    if matches!(
        word.to_ascii_lowercase().as_str(),
        "vs" | "virtualservice" | "virtualservices"
    ) {
        return Ok(vec![Kind::VirtualService, Kind::IstioVirtualService]);
    }
    Ok(vec![crate::kind(word)?])
}

/// Finds the one resource named `name` among `kinds` (`GET /v1/resource`): its kind and the
/// reply body. Found under both virtual service kinds: a usage error saying how to pick one.
pub async fn find_one(
    client: &Client,
    kinds: &[Kind],
    name: &str,
    mesh: Option<&str>,
    verb: &str,
) -> Result<(Kind, Value), Error> {
    let mut found = Vec::new();
    let mut first_error = None;
    for &k in kinds {
        let q = query(&[
            ("kind", Some(k.as_str())),
            ("name", Some(name)),
            ("mesh", mesh),
        ]);
        let reply = client
            .call(Method::GET, &format!("/v1/resource?{q}"), None)
            .await?;
        if kinds.len() > 1 && reply.status == StatusCode::NOT_FOUND {
            continue;
        }
        match crate::check(reply, &format!("{verb} {k}/{name}")) {
            Ok(body) => found.push((k, body)),
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    if let Some(e) = first_error {
        return Err(e);
    }
    match found.len() {
        0 => Err(Error::Runtime(format!(
            "{verb} : no App Mesh virtual service and no Istio VirtualService is named \
             \"{name}\"; `meshctl get vs` lists them"
        ))),
        1 => Ok(found.remove(0)),
        _ => Err(Error::Usage(format!(
            "{verb} : \"{name}\" is both an App Mesh virtual service and an Istio \
             VirtualService; pick one: `meshctl {verb} virtualservice.appmesh.k8s.aws {name}` \
             or `meshctl {verb} virtualservice.networking.istio.io {name}`"
        ))),
    }
}

/// Whether a listed entry is an Istio object (`{apiVersion, kind, metadata, spec}`).
pub fn is_istio_entry(entry: &Value) -> bool {
    entry
        .get("resource")
        .is_some_and(|r| r.get("apiVersion").is_some())
}

fn text(v: Option<&Value>) -> String {
    match v {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(items)) => items
            .iter()
            .map(|i| text(Some(i)))
            .collect::<Vec<_>>()
            .join(","),
        Some(Value::Null) | None => "-".into(),
        Some(other) => other.to_string(),
    }
}

/// One table per Istio kind among `entries`, kubectl's columns: DestinationRule NAME,
/// NAMESPACE, HOST, SUBSETS; VirtualService NAME, NAMESPACE, GATEWAYS, HOSTS; ServiceEntry
/// NAME, NAMESPACE, HOSTS, LOCATION, RESOLUTION; WorkloadEntry NAME, NAMESPACE, ADDRESS.
/// `wide` adds FILE. NAME is `<kind>/<name>`, so the two virtual service kinds stay apart.
pub fn tables(entries: &[Value], wide: bool) -> String {
    let mut out = String::new();
    for kind in [
        Kind::DestinationRule,
        Kind::IstioVirtualService,
        Kind::ServiceEntry,
        Kind::WorkloadEntry,
    ] {
        let header: &[&str] = match kind {
            Kind::DestinationRule => &["NAME", "NAMESPACE", "HOST", "SUBSETS"],
            Kind::IstioVirtualService => &["NAME", "NAMESPACE", "GATEWAYS", "HOSTS"],
            Kind::ServiceEntry => &["NAME", "NAMESPACE", "HOSTS", "LOCATION", "RESOLUTION"],
            _ => &["NAME", "NAMESPACE", "ADDRESS"],
        };
        let mut rows: Vec<Vec<String>> = vec![header.iter().map(|s| s.to_string()).collect()];
        if wide {
            rows[0].push("FILE".into());
        }
        for e in entries {
            let Some(r) = e.get("resource") else { continue };
            let istio_kind = r.get("kind").and_then(Value::as_str).unwrap_or("");
            if !istio_kind.eq_ignore_ascii_case(kind.wrapper_key()) {
                continue;
            }
            let meta = r.get("metadata");
            let spec = r.get("spec");
            let s = |k: &str| text(spec.and_then(|s| s.get(k)));
            let mut row = vec![
                format!("{kind}/{}", text(meta.and_then(|m| m.get("name")))),
                meta.and_then(|m| m.get("namespace"))
                    .and_then(Value::as_str)
                    .unwrap_or("default")
                    .to_string(),
            ];
            match kind {
                Kind::DestinationRule => {
                    let subsets: Vec<String> = spec
                        .and_then(|s| s.get("subsets"))
                        .and_then(Value::as_array)
                        .into_iter()
                        .flatten()
                        .map(|x| text(x.get("name")))
                        .collect();
                    row.push(s("host"));
                    row.push(if subsets.is_empty() {
                        "-".into()
                    } else {
                        subsets.join(",")
                    });
                }
                Kind::IstioVirtualService => {
                    let gw = s("gateways");
                    row.push(if gw == "-" { "mesh".into() } else { gw });
                    row.push(s("hosts"));
                }
                Kind::ServiceEntry => {
                    row.push(s("hosts"));
                    let loc = s("location");
                    row.push(if loc == "-" {
                        "MESH_EXTERNAL".into()
                    } else {
                        loc
                    });
                    row.push(s("resolution"));
                }
                _ => row.push(s("address")),
            }
            if wide {
                row.push(text(e.get("file")));
            }
            rows.push(row);
        }
        if rows.len() > 1 {
            if !out.is_empty() {
                out.push('\n');
            }
            out.push_str(&crate::output::align(rows));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vs_names_both_virtual_service_kinds_and_the_long_names_one_each() {
        let both = vec![Kind::VirtualService, Kind::IstioVirtualService];
        for word in ["vs", "VirtualService", "virtualservices"] {
            assert_eq!(kinds_for(word).expect(word), both);
        }
        assert_eq!(
            kinds_for("virtualservice.appmesh.k8s.aws").expect("app mesh"),
            [Kind::VirtualService]
        );
        assert_eq!(
            kinds_for("virtualservice.networking.istio.io").expect("istio"),
            [Kind::IstioVirtualService]
        );
        assert_eq!(kinds_for("dr").expect("dr"), [Kind::DestinationRule]);
        assert!(kinds_for("gateway.networking.istio.io").is_err());
    }
}
