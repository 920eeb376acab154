//! One Istio object and how it is read: `apiVersion` + `kind` decide the spec type, the
//! metadata names it, and errors carry the path inside the object.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::destination_rule::DestinationRuleSpec;
use super::service_entry::{ServiceEntrySpec, WorkloadEntrySpec};
use super::virtual_service::VirtualServiceSpec;
use crate::model::Kind;

/// Istio's networking API group; `apiVersion` is `networking.istio.io/<v1|v1beta1|v1alpha3>`.
pub const API_GROUP: &str = "networking.istio.io";

/// The versions accepted.
const VERSIONS: [&str; 3] = ["v1", "v1beta1", "v1alpha3"];

/// `metadata`: what names the object. Kubernetes server-side fields are refused like any
/// unknown field (strip them from `kubectl get -o yaml` output).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ObjectMeta {
    /// The name, unique per kind and namespace.
    pub name: String,
    /// The namespace; `default` when left out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Labels (a WorkloadEntry's merge with its spec labels, metadata winning, as in Istio).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<BTreeMap<String, String>>,
    /// Annotations (kept, not interpreted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
}

/// The spec of an Istio object, by kind. (The variants differ in size; the whole object is
/// boxed in `Resource::Istio`, so this enum is never moved around by value in bulk.)
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum IstioSpec {
    /// `DestinationRule`.
    DestinationRule(DestinationRuleSpec),
    /// `VirtualService`.
    VirtualService(VirtualServiceSpec),
    /// `ServiceEntry`.
    ServiceEntry(ServiceEntrySpec),
    /// `WorkloadEntry`.
    WorkloadEntry(WorkloadEntrySpec),
}

/// One Istio object. Serializes as `{apiVersion, kind, metadata, spec}`.
#[derive(Debug, Clone, PartialEq)]
pub struct IstioResource {
    /// `networking.istio.io/v1` (or v1beta1, v1alpha3), kept as written.
    pub api_version: String,
    /// Its name, namespace and labels.
    pub metadata: ObjectMeta,
    /// The typed spec.
    pub spec: IstioSpec,
}

impl IstioResource {
    /// Istio's kind name: `DestinationRule`, `VirtualService`, `ServiceEntry`, `WorkloadEntry`.
    pub fn kind_name(&self) -> &'static str {
        match self.spec {
            IstioSpec::DestinationRule(_) => "DestinationRule",
            IstioSpec::VirtualService(_) => "VirtualService",
            IstioSpec::ServiceEntry(_) => "ServiceEntry",
            IstioSpec::WorkloadEntry(_) => "WorkloadEntry",
        }
    }

    /// meshd's kind.
    pub fn kind(&self) -> Kind {
        match self.spec {
            IstioSpec::DestinationRule(_) => Kind::DestinationRule,
            IstioSpec::VirtualService(_) => Kind::IstioVirtualService,
            IstioSpec::ServiceEntry(_) => Kind::ServiceEntry,
            IstioSpec::WorkloadEntry(_) => Kind::WorkloadEntry,
        }
    }

    /// The namespace, `default` when unset.
    pub fn namespace(&self) -> &str {
        self.metadata.namespace.as_deref().unwrap_or("default")
    }

    /// `{apiVersion, kind, metadata, spec}`, absent optionals left out.
    pub fn to_json(&self) -> Value {
        let spec = match &self.spec {
            IstioSpec::DestinationRule(s) => serde_json::to_value(s),
            IstioSpec::VirtualService(s) => serde_json::to_value(s),
            IstioSpec::ServiceEntry(s) => serde_json::to_value(s),
            IstioSpec::WorkloadEntry(s) => serde_json::to_value(s),
        };
        let mut m = serde_json::Map::new();
        m.insert("apiVersion".into(), Value::String(self.api_version.clone()));
        m.insert("kind".into(), Value::String(self.kind_name().into()));
        // Plain structs with string keys: serializing cannot fail.
        m.insert(
            "metadata".into(),
            serde_json::to_value(&self.metadata).unwrap_or(Value::Null),
        );
        m.insert("spec".into(), spec.unwrap_or(Value::Null));
        Value::Object(m)
    }
}

/// Reads one Istio object from a JSON value. The error is `(label, path, message)`: the label
/// (`destinationrule/<name>`, when the name can be read) and the path inside the object
/// (`spec.trafficPolicy.connectionPool.tcp.maxConnections`).
pub fn parse_object(value: &Value) -> Result<IstioResource, (Option<String>, String, String)> {
    let Some(map) = value.as_object() else {
        return Err((None, String::new(), "expected an object".into()));
    };
    let kind_text = map.get("kind").and_then(Value::as_str).unwrap_or("");
    let kind = match kind_text {
        "DestinationRule" => Kind::DestinationRule,
        "VirtualService" => Kind::IstioVirtualService,
        "ServiceEntry" => Kind::ServiceEntry,
        "WorkloadEntry" => Kind::WorkloadEntry,
        "" => {
            return Err((
                None,
                "kind".into(),
                "missing: an Istio object needs a kind (DestinationRule, VirtualService, \
                 ServiceEntry or WorkloadEntry)"
                    .into(),
            ))
        }
        other => {
            return Err((
                None,
                "kind".into(),
                format!(
                    "kind {:?} is not supported; meshd reads DestinationRule, VirtualService, \
                     ServiceEntry and WorkloadEntry",
                    other
                ),
            ))
        }
    };
    let name = map
        .get("metadata")
        .and_then(|m| m.get("name"))
        .and_then(Value::as_str);
    let label = name.map(|n| format!("{kind}/{n}"));
    let err = |path: &str, message: String| (label.clone(), path.to_string(), message);
    let api_version = match map.get("apiVersion") {
        Some(Value::String(v)) => v.clone(),
        Some(_) => return Err(err("apiVersion", "expected a string".into())),
        None => {
            return Err(err(
                "apiVersion",
                format!("missing: expected {API_GROUP}/v1"),
            ))
        }
    };
    let version_ok = api_version
        .strip_prefix(API_GROUP)
        .and_then(|v| v.strip_prefix('/'))
        .is_some_and(|v| VERSIONS.contains(&v));
    if !version_ok {
        return Err(err(
            "apiVersion",
            format!(
                "must be {API_GROUP}/v1, {API_GROUP}/v1beta1 or {API_GROUP}/v1alpha3, got {:?}",
                api_version
            ),
        ));
    }
    for key in map.keys() {
        if !["apiVersion", "kind", "metadata", "spec", "status"].contains(&key.as_str()) {
            return Err(err(
                key,
                format!(
                    "unknown field {:?}, expected one of apiVersion, kind, metadata, spec",
                    key
                ),
            ));
        }
    }
    let metadata: ObjectMeta = match map.get("metadata") {
        Some(m) => de(m).map_err(|(p, msg)| err(&join("metadata", &p), msg))?,
        None => {
            return Err(err(
                "metadata",
                "missing: metadata.name names the object".into(),
            ))
        }
    };
    let empty = Value::Object(serde_json::Map::new());
    let spec_value = map.get("spec").unwrap_or(&empty);
    let spec = match kind {
        Kind::DestinationRule => de(spec_value).map(IstioSpec::DestinationRule),
        Kind::IstioVirtualService => de(spec_value).map(IstioSpec::VirtualService),
        Kind::ServiceEntry => de(spec_value).map(IstioSpec::ServiceEntry),
        _ => de(spec_value).map(IstioSpec::WorkloadEntry),
    }
    .map_err(|(p, msg)| err(&join("spec", &p), msg))?;
    Ok(IstioResource {
        api_version,
        metadata,
        spec,
    })
}

fn join(root: &str, path: &str) -> String {
    if path.is_empty() {
        root.to_string()
    } else if path.starts_with('[') {
        format!("{root}{path}")
    } else {
        format!("{root}.{path}")
    }
}

fn de<T: serde::de::DeserializeOwned>(value: &Value) -> Result<T, (String, String)> {
    serde_path_to_error::deserialize::<_, T>(value).map_err(|e| {
        let path = e.path().to_string();
        let path = if path == "." { String::new() } else { path };
        (
            path,
            crate::model::polish_serde_message(&e.inner().to_string()),
        )
    })
}

/// The documents of a YAML text (`---` separated) as JSON values; empty documents are left
/// out. Any syntax error, a tab used for indentation, a duplicate key or a key that is not a
/// string is an error with the line and column.
pub fn yaml_documents(text: &str) -> Result<Vec<Value>, String> {
    let mut out = Vec::new();
    for doc in serde_yaml_ng::Deserializer::from_str(text) {
        let v = serde_yaml_ng::Value::deserialize(doc).map_err(|e| yaml_error(&e))?;
        if v.is_null() {
            continue;
        }
        out.push(to_json(v)?);
    }
    Ok(out)
}

fn yaml_error(e: &serde_yaml_ng::Error) -> String {
    let text = e.to_string();
    match e.location() {
        Some(l) if !text.contains(" at line ") => {
            format!(
                "invalid YAML at line {} column {}: {text}",
                l.line(),
                l.column()
            )
        }
        _ => format!("invalid YAML: {text}"),
    }
}

fn to_json(v: serde_yaml_ng::Value) -> Result<Value, String> {
    use serde_yaml_ng::Value as Y;
    Ok(match v {
        Y::Null => Value::Null,
        Y::Bool(b) => Value::Bool(b),
        Y::Number(n) => {
            if let Some(i) = n.as_i64() {
                Value::from(i)
            } else if let Some(u) = n.as_u64() {
                Value::from(u)
            } else {
                n.as_f64()
                    .and_then(serde_json::Number::from_f64)
                    .map(Value::Number)
                    .ok_or_else(|| format!("invalid YAML: the number {n} has no JSON form"))?
            }
        }
        Y::String(s) => Value::String(s),
        Y::Sequence(items) => {
            Value::Array(items.into_iter().map(to_json).collect::<Result<_, _>>()?)
        }
        Y::Mapping(m) => {
            let mut out = serde_json::Map::new();
            for (k, v) in m {
                let key = match k {
                    Y::String(s) => s,
                    Y::Number(n) => n.to_string(),
                    Y::Bool(b) => b.to_string(),
                    other => {
                        return Err(format!(
                            "invalid YAML: a mapping key must be a string, got {other:?}"
                        ))
                    }
                };
                out.insert(key, to_json(v)?);
            }
            Value::Object(out)
        }
        Y::Tagged(t) => to_json(t.value)?,
    })
}

/// `values` as one YAML text, documents separated by `---` (what meshd writes for a `*.yaml`
/// file it changes; comments of a hand-written file are not kept).
pub fn to_yaml(values: &[Value]) -> String {
    values
        .iter()
        // JSON values always have a YAML form.
        .map(|v| serde_yaml_ng::to_string(v).unwrap_or_default())
        .collect::<Vec<_>>()
        .join("---\n")
}
