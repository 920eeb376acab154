//! Reading `-f FILE|DIR|-` and the offline `validate`.

use std::io::Read as _;
use std::path::{Path, PathBuf};

use mesh_core::istio::yaml_documents;
use mesh_core::model::{
    is_yaml, not_in_force, parse_document, parse_yaml_document, read_config_dir, ConfigError,
    MeshSet, NotInForce, Resource, MAX_FILE_BYTES,
};
use serde_json::Value;

use crate::Error;

/// One input document: the name errors use, its JSON and its resources.
#[derive(Debug)]
pub struct Document {
    /// The file as the user named it (`<stdin>` for `-`).
    pub file: PathBuf,
    /// The parsed JSON.
    pub value: Value,
    /// Its resources.
    pub resources: Vec<Resource>,
}

/// Reads every input: files, the `*.json`/`*.yaml`/`*.yml` files of directories (sorted, not recursive) and
/// stdin. Parse errors of all documents are returned together (exit 2).
pub fn read_inputs(inputs: &[PathBuf]) -> Result<Vec<Document>, Error> {
    // (name for errors, text) of every document, in order.
    let mut texts: Vec<(PathBuf, String)> = Vec::new();
    let mut errors = Vec::new();
    for input in inputs {
        if input.as_os_str() == "-" {
            let mut text = String::new();
            std::io::stdin()
                .read_to_string(&mut text)
                .map_err(|e| Error::Usage(format!("cannot read stdin : {e}")))?;
            texts.push((PathBuf::from("<stdin>"), text));
            continue;
        }
        let meta = std::fs::metadata(input)
            .map_err(|e| Error::Usage(format!("cannot read {} : {e}", input.display())))?;
        if meta.is_dir() {
            // Read exactly as meshd reads its config directory: the same names, limits and
            // skipped entries.
            let listing = read_config_dir(input)
                .map_err(|e| Error::Usage(format!("cannot read {} : {e}", input.display())))?;
            for s in &listing.skipped {
                eprintln!("meshctl: skipping {} : {}", s.path.display(), s.reason);
            }
            errors.extend(listing.errors);
            if listing.files.is_empty() && errors.is_empty() {
                return Err(Error::Usage(format!(
                    "{} : no resource files (*.json, *.yaml, *.yml) in this directory",
                    input.display()
                )));
            }
            texts.extend(listing.files.into_iter().map(|f| (f.path, f.text)));
        } else {
            if meta.len() > MAX_FILE_BYTES {
                errors.push(ConfigError::new(
                    input,
                    None,
                    "",
                    format!(
                        "the file is {} bytes; the limit is {} MiB per resource file: split its \
                         resources over several files",
                        meta.len(),
                        MAX_FILE_BYTES >> 20
                    ),
                ));
                continue;
            }
            let text = std::fs::read_to_string(input)
                .map_err(|e| Error::Usage(format!("cannot read {} : {e}", input.display())))?;
            texts.push((input.clone(), text));
        }
    }
    let mut docs = Vec::new();
    for (name, text) in texts {
        // stdin is YAML unless it starts as JSON does.
        let yaml = is_yaml(&name)
            || (name.as_os_str() == "<stdin>" && !text.trim_start().starts_with(['{', '[']));
        let parsed = if yaml {
            parse_yaml_document(&name, &text)
        } else {
            parse_document(&name, &text)
        };
        match parsed {
            Ok(resources) => {
                // parse_document accepted it, so it is JSON, or YAML whose documents are
                // sent as one JSON array (an array document's items spliced in).
                let value = if yaml {
                    let docs = yaml_documents(&text).unwrap_or_default();
                    Value::Array(
                        docs.into_iter()
                            .flat_map(|d| match d {
                                Value::Array(items) => items,
                                other => vec![other],
                            })
                            .collect(),
                    )
                } else {
                    serde_json::from_str(&text).unwrap_or(Value::Null)
                };
                docs.push(Document {
                    file: name,
                    value,
                    resources,
                });
            }
            Err(e) => errors.extend(e),
        }
    }
    if errors.is_empty() {
        Ok(docs)
    } else {
        Err(Error::Invalid(errors))
    }
}

/// What passed the offline checks.
#[derive(Debug)]
pub struct Validated {
    /// How many resources passed.
    pub count: usize,
    /// Their settings that are accepted but not in force yet.
    pub not_in_force: Vec<NotInForce>,
    /// Problems that do not refuse the set ([`MeshSet::warnings`]); empty when references
    /// were not checked.
    pub warnings: Vec<ConfigError>,
}

/// Checks documents offline: every resource on its own, then (unless `no_references`) the
/// whole-mesh rules among them.
pub fn validate(docs: &[Document], no_references: bool) -> Result<Validated, Error> {
    let resources: Vec<(PathBuf, Resource)> = docs
        .iter()
        .flat_map(|d| d.resources.iter().map(|r| (d.file.clone(), r.clone())))
        .collect();
    let count = resources.len();
    let set = MeshSet::from_resources(resources).map_err(Error::Invalid)?;
    let mut warnings = Vec::new();
    if !no_references {
        let errors: Vec<ConfigError> = set.validate();
        if !errors.is_empty() {
            return Err(Error::Invalid(errors));
        }
        warnings = set.warnings();
    }
    Ok(Validated {
        count,
        not_in_force: not_in_force(&set),
        warnings,
    })
}

/// Number of distinct files among the documents.
pub fn file_count(docs: &[Document]) -> usize {
    let mut files: Vec<&Path> = docs.iter().map(|d| d.file.as_path()).collect();
    files.sort();
    files.dedup();
    files.len()
}
