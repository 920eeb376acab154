//! Reading `-f FILE|DIR|-` and the offline `validate`.

use std::io::Read as _;
use std::path::{Path, PathBuf};

use mesh_core::model::{
    not_in_force, parse_document, read_config_dir, ConfigError, MeshSet, NotInForce, Resource,
    MAX_FILE_BYTES,
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

/// Reads every input: files, the `*.json` files of directories (sorted, not recursive) and
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
                    "{} : no resource files (*.json) in this directory",
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
        match parse_document(&name, &text) {
            Ok(resources) => {
                // parse_document accepted it, so it is JSON.
                let value = serde_json::from_str(&text).unwrap_or(Value::Null);
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
    if !no_references {
        let errors: Vec<ConfigError> = set.validate();
        if !errors.is_empty() {
            return Err(Error::Invalid(errors));
        }
    }
    Ok(Validated {
        count,
        not_in_force: not_in_force(&set),
    })
}

/// Number of distinct files among the documents.
pub fn file_count(docs: &[Document]) -> usize {
    let mut files: Vec<&Path> = docs.iter().map(|d| d.file.as_path()).collect();
    files.sort();
    files.dedup();
    files.len()
}
