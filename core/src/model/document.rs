//! Reading resource documents: CLI-input JSON, describe-output wrappers, or an array of either.
//!
//! Kind detection needs no `kind` field (reference §15.1): a one-key object whose key is a
//! describe wrapper (`virtualNode`, `mesh`, …) is describe output; otherwise the most specific
//! name key decides (`gatewayRouteName` before `virtualGatewayName`, `routeName` before
//! `virtualRouterName`, …; `meshName` alone is a mesh).
//!
//! Paths in errors are relative to the resource object (inside a wrapper or array element),
//! because the error also names the resource. When the resource cannot be named, the path
//! starts at the document root (`[2].virtualNode.spec…`).

use std::path::Path;

use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use super::error::{polish_serde_message, ConfigError};
use super::resource::{Kind, Resource, ResourceKey};
use super::validate::{integer_bounds, last_segment};

/// Name keys in detection order: the most specific first.
const DETECTION_ORDER: [Kind; 7] = [
    Kind::GatewayRoute,
    Kind::Route,
    Kind::VirtualGateway,
    Kind::VirtualRouter,
    Kind::VirtualNode,
    Kind::VirtualService,
    Kind::Mesh,
];

/// Parses one file's text: a resource object or a JSON array of them, each in CLI-input or
/// describe-output form. Returns every resource, or every error found (one per resource that
/// failed to parse; invalid JSON is one error carrying line and column). Only shape and types
/// are checked here; ranges and rules are `validate_resource`'s and `MeshSet`'s job.
///
/// An array is parsed one element at a time, so a large file never exists in memory as one JSON
/// tree (a tree takes about ten times the text's size).
///
/// A file named `*.yaml` or `*.yml` is YAML: every document (`---` separated) is a resource or
/// an array of them, read as its JSON equivalent.
pub fn parse_document(file: &Path, text: &str) -> Result<Vec<Resource>, Vec<ConfigError>> {
    if is_yaml(file) {
        return parse_yaml_document(file, text);
    }
    let invalid = |e: serde_json::Error| {
        vec![ConfigError::new(
            file,
            None,
            "",
            format!("invalid JSON: {e}"),
        )]
    };
    if text.trim_start().starts_with('[') {
        let items: Vec<&serde_json::value::RawValue> =
            serde_json::from_str(text).map_err(invalid)?;
        let mut resources = Vec::with_capacity(items.len());
        let mut errors = Vec::new();
        for (index, raw) in items.iter().enumerate() {
            let value: Value = serde_json::from_str(raw.get()).map_err(invalid)?;
            match parse_one(file, &value, Some(index)) {
                Ok(r) => resources.push(r),
                Err(e) => errors.push(e),
            }
        }
        return if errors.is_empty() {
            Ok(resources)
        } else {
            Err(errors)
        };
    }
    let value: Value = serde_json::from_str(text).map_err(invalid)?;
    parse_value(file, &value)
}

/// [`parse_document`] for a YAML text whatever the file's name (stdin): every document (`---`
/// separated) is a resource or an array of them, read as its JSON equivalent.
pub fn parse_yaml_document(file: &Path, text: &str) -> Result<Vec<Resource>, Vec<ConfigError>> {
    let docs = crate::istio::yaml_documents(text)
        .map_err(|e| vec![ConfigError::new(file, None, "", e)])?;
    let mut resources = Vec::new();
    let mut errors = Vec::new();
    for doc in &docs {
        match parse_value(file, doc) {
            Ok(r) => resources.extend(r),
            Err(e) => errors.extend(e),
        }
    }
    if errors.is_empty() {
        Ok(resources)
    } else {
        Err(errors)
    }
}

/// Whether `file` is named as YAML (`*.yaml`, `*.yml`).
pub fn is_yaml(file: &Path) -> bool {
    file.extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("yaml") || e.eq_ignore_ascii_case("yml"))
}

/// Like [`parse_document`] for an already parsed JSON value (e.g. a control-API request body).
pub fn parse_value(file: &Path, value: &Value) -> Result<Vec<Resource>, Vec<ConfigError>> {
    let mut resources = Vec::new();
    let mut errors = Vec::new();
    match value {
        Value::Array(items) => {
            for (index, item) in items.iter().enumerate() {
                match parse_one(file, item, Some(index)) {
                    Ok(r) => resources.push(r),
                    Err(e) => errors.push(e),
                }
            }
        }
        Value::Object(_) => match parse_one(file, value, None) {
            Ok(r) => resources.push(r),
            Err(e) => errors.push(e),
        },
        other => errors.push(ConfigError::new(
            file,
            None,
            "",
            format!(
                "expected a resource object or an array of resources, got {}",
                json_type(other)
            ),
        )),
    }
    if errors.is_empty() {
        Ok(resources)
    } else {
        Err(errors)
    }
}

/// Keys meshctl adds beside a describe wrapper (`served`, `servedWhy`, `live`): not part of the
/// resource, ignored when parsing.
const READ_ONLY_ANNOTATIONS: [&str; 3] = ["served", "servedWhy", "live"];

/// Parses one resource object (CLI input or describe wrapper).
fn parse_one(file: &Path, value: &Value, index: Option<usize>) -> Result<Resource, ConfigError> {
    let root = index.map(|i| format!("[{i}]")).unwrap_or_default();
    let Value::Object(map) = value else {
        return Err(ConfigError::new(
            file,
            None,
            root,
            format!("expected a resource object, got {}", json_type(value)),
        ));
    };

    // Istio objects carry `apiVersion` and `kind`; App Mesh documents never do.
    if map.contains_key("apiVersion") || map.contains_key("kind") {
        return crate::istio::parse_object(value)
            .map(Resource::from)
            .map_err(|(label, path, message)| {
                let path = if label.is_some() {
                    path
                } else {
                    join(&root, &path)
                };
                ConfigError::new(file, label, path, message)
            });
    }

    // meshctl's read-only annotations beside a describe wrapper (`get -o json`, `describe -o
    // json`) are ignored, so that its output applies back as it is.
    let mut keys = map
        .keys()
        .filter(|k| !READ_ONLY_ANNOTATIONS.contains(&k.as_str()));
    if let (Some(key), None) = (keys.next(), keys.next()) {
        if let (Some(kind), Some(inner)) = (Kind::from_wrapper_key(key), map.get(key)) {
            return parse_kind(file, kind, inner, &join(&root, key));
        }
    }

    let Some(kind) = DETECTION_ORDER
        .into_iter()
        .find(|k| map.contains_key(k.name_key()))
    else {
        let wrappers: Vec<&str> = map
            .keys()
            .filter(|k| Kind::from_wrapper_key(k).is_some())
            .map(String::as_str)
            .collect();
        let message = if wrappers.is_empty() {
            let keys: Vec<&str> = DETECTION_ORDER.iter().map(|k| k.name_key()).collect();
            format!(
                "cannot tell the resource kind: expected a name key ({}) or a describe wrapper \
                 such as {{\"virtualNode\": {{...}}}}",
                keys.join(", ")
            )
        } else {
            let keys: Vec<&str> = map.keys().map(String::as_str).collect();
            format!(
                "a describe wrapper must be the only key of its object, found {}",
                keys.join(", ")
            )
        };
        return Err(ConfigError::new(file, None, root, message));
    };
    parse_kind(file, kind, value, &root)
}

/// Deserializes `value` as a resource of `kind`; `root` locates it in the document and is used
/// in the error path only when the resource cannot be named.
fn parse_kind(file: &Path, kind: Kind, value: &Value, root: &str) -> Result<Resource, ConfigError> {
    let result = match kind {
        Kind::Mesh => de(value).map(Resource::Mesh),
        Kind::VirtualNode => de(value).map(Resource::VirtualNode),
        Kind::VirtualGateway => de(value).map(Resource::VirtualGateway),
        Kind::GatewayRoute => de(value).map(Resource::GatewayRoute),
        Kind::VirtualRouter => de(value).map(Resource::VirtualRouter),
        Kind::Route => de(value).map(Resource::Route),
        Kind::VirtualService => de(value).map(Resource::VirtualService),
        // Istio objects are recognised by `apiVersion`/`kind` before kind detection.
        _ => Err((String::new(), format!("{kind} is not an App Mesh kind"))),
    };
    result.map_err(|(path, message)| {
        let label = label_of(kind, value);
        let path = if label.is_some() {
            path
        } else {
            join(root, &path)
        };
        ConfigError::new(file, label, path, message)
    })
}

/// Deserializes with path tracking; the error is `(path, message)`.
fn de<T: DeserializeOwned>(value: &Value) -> Result<T, (String, String)> {
    serde_path_to_error::deserialize::<_, T>(value).map_err(|e| {
        let path = e.path().to_string();
        let path = if path == "." { String::new() } else { path };
        let raw = e.inner().to_string();
        let message =
            out_of_range_integer(&path, &raw).unwrap_or_else(|| polish_serde_message(&raw));
        (path, message)
    })
}

/// The message for a number that cannot be read as an `i64` where an integer is expected (2⁶³
/// and above, below −2⁶³, fractions): the field's allowed range as validation states it, so
/// `maxConnections: 4294967296` and `maxConnections: 9223372036854775808` read alike.
fn out_of_range_integer(path: &str, raw: &str) -> Option<String> {
    if !raw.ends_with("expected i64") {
        return None;
    }
    let rest = raw
        .strip_prefix("invalid value: integer `")
        .or_else(|| raw.strip_prefix("invalid type: floating point `"))?;
    let got = rest.split('`').next()?;
    let (lo, hi) = integer_bounds(last_segment(path));
    // Outside the range it is the range that matters; inside, that it is not an integer.
    let inside = got
        .parse::<f64>()
        .is_ok_and(|f| f >= lo as f64 && f <= hi as f64);
    let what = if inside { "an integer " } else { "" };
    Some(format!("must be {what}between {lo} and {hi}, got {got}"))
}

/// `<kind>/<name>` (or `<kind>/<parent>/<name>`) read from the raw object, when the name keys
/// hold strings.
fn label_of(kind: Kind, value: &Value) -> Option<String> {
    let map = value.as_object()?;
    let name = str_field(map, kind.name_key())?;
    let parent = match kind.parent_kind() {
        Some(parent_kind) => Some(str_field(map, parent_kind.name_key())?),
        None => None,
    };
    let mesh = str_field(map, Kind::Mesh.name_key()).unwrap_or("");
    Some(ResourceKey::new(kind, mesh, parent, name).to_string())
}

fn str_field<'a>(map: &'a Map<String, Value>, key: &str) -> Option<&'a str> {
    map.get(key).and_then(Value::as_str)
}

fn join(root: &str, path: &str) -> String {
    match (root.is_empty(), path.is_empty()) {
        (true, _) => path.to_string(),
        (false, true) => root.to_string(),
        (false, false) if path.starts_with('[') => format!("{root}{path}"),
        (false, false) => format!("{root}.{path}"),
    }
}

/// "a string", "an array", … for messages.
pub(crate) fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}
