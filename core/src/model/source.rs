//! Reading a config directory: which entries are resource files, how large they may be, and
//! which entries are skipped and why.
//!
//! Guarantees of [`read_config_dir`]:
//! * only names accepted by [`is_resource_file_name`] are considered; subdirectories are not
//!   read;
//! * every other entry that looks like a resource file but cannot be read as one (a non-UTF-8
//!   name, a dangling symlink, a symlink loop, a directory or FIFO named `*.json`) is returned in
//!   [`Listing::skipped`] with the reason, never dropped in silence;
//! * a file above [`MAX_FILE_BYTES`], or files adding up to more than [`MAX_DIR_BYTES`], or a
//!   file that is not UTF-8, is an error naming the file and the limit; nothing larger than the
//!   limits is ever held in memory (a file growing while it is read is cut at the limit + 1);
//! * a symlinked file is read through its link, and its target is reported so that a watcher
//!   can follow edits of the target.

use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use super::document::parse_document;
use super::error::ConfigError;
use super::resource::Resource;
use super::set::is_resource_file_name;

/// The largest resource file accepted (8 MiB: about 36 000 routes in one file).
pub const MAX_FILE_BYTES: u64 = 8 << 20;

/// The largest total size of the resource files of one directory (16 MiB: about 70 000 routes,
/// which meshd holds in about 200 MB).
pub const MAX_DIR_BYTES: u64 = 16 << 20;

/// One resource file as read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceFile {
    /// The file's path in the config directory (the link, for a symlinked file).
    pub path: PathBuf,
    /// Its content.
    pub text: String,
    /// Its modification time (of the target, for a symlinked file), when the system has one.
    pub modified: Option<SystemTime>,
    /// For a symlinked file: the file it resolves to.
    pub link_target: Option<PathBuf>,
}

/// A directory entry that looks like a resource file but was not read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    /// The entry (a lossy rendering for a non-UTF-8 name).
    pub path: PathBuf,
    /// Why it was not read.
    pub reason: String,
}

/// What a config directory holds.
#[derive(Debug, Clone, Default)]
pub struct Listing {
    /// The resource files, sorted by path.
    pub files: Vec<SourceFile>,
    /// Entries not read, each with its reason.
    pub skipped: Vec<Skipped>,
    /// Files that exist but cannot be used (too large, not UTF-8, unreadable).
    pub errors: Vec<ConfigError>,
}

/// Reads the resource files of `dir` (see the module docs for what is guaranteed). An error is
/// returned only when the directory itself cannot be read (missing, not a directory, no
/// permission); a directory without resource files is an empty [`Listing`].
pub fn read_config_dir(dir: &Path) -> std::io::Result<Listing> {
    let mut listing = Listing::default();
    let mut candidates = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        let path = entry.path();
        let Some(name) = name.to_str() else {
            let lossy = name.to_string_lossy();
            // Only names that would be resource files once decoded are worth a word.
            if lossy.ends_with(".json") && !lossy.starts_with('.') {
                listing.skipped.push(Skipped {
                    path: dir.join(lossy.as_ref()),
                    reason: "the file name is not valid UTF-8; rename it".to_string(),
                });
            }
            continue;
        };
        if !is_resource_file_name(name) {
            continue;
        }
        match std::fs::metadata(&path) {
            Ok(m) if m.is_file() => candidates.push(path),
            Ok(m) if m.is_dir() => listing.skipped.push(Skipped {
                path,
                reason: "a directory, not a file (subdirectories are not read)".to_string(),
            }),
            Ok(_) => listing.skipped.push(Skipped {
                path,
                reason: "not a regular file (a FIFO, socket or device)".to_string(),
            }),
            Err(e) => {
                let reason = match std::fs::symlink_metadata(&path) {
                    Ok(l) if l.file_type().is_symlink() => {
                        let target = std::fs::read_link(&path)
                            .map(|t| t.display().to_string())
                            .unwrap_or_default();
                        if e.raw_os_error() == Some(ELOOP) {
                            format!("a symlink loop (-> {target})")
                        } else {
                            format!("a dangling symlink (-> {target}: {e})")
                        }
                    }
                    _ => format!("cannot read: {e}"),
                };
                listing.skipped.push(Skipped { path, reason });
            }
        }
    }
    candidates.sort();
    let mut total: u64 = 0;
    for path in candidates {
        match read_capped(&path) {
            Ok(file) => {
                total += file.text.len() as u64;
                if total > MAX_DIR_BYTES {
                    listing.errors.push(ConfigError::new(
                        dir,
                        None,
                        "",
                        format!(
                            "the resource files add up to more than {} MiB, the limit for one \
                             config directory (reached at {})",
                            MAX_DIR_BYTES >> 20,
                            path.display()
                        ),
                    ));
                    break;
                }
                listing.files.push(file);
            }
            Err(message) => listing
                .errors
                .push(ConfigError::new(&path, None, "", message)),
        }
    }
    Ok(listing)
}

/// Linux's errno for "Too many levels of symbolic links" (std's `ErrorKind::FilesystemLoop` is
/// not stable yet; mesh runs on Linux only).
const ELOOP: i32 = 40;

/// Reads one file, refusing one above [`MAX_FILE_BYTES`] without reading more than the limit.
fn read_capped(path: &Path) -> Result<SourceFile, String> {
    let file = std::fs::File::open(path).map_err(|e| format!("cannot read: {e}"))?;
    let meta = file.metadata().map_err(|e| format!("cannot read: {e}"))?;
    let too_large = |size: u64| {
        format!(
            "the file is {} bytes; the limit is {} MiB per resource file ({} bytes): split its \
             resources over several files",
            size,
            MAX_FILE_BYTES >> 20,
            MAX_FILE_BYTES
        )
    };
    if meta.len() > MAX_FILE_BYTES {
        return Err(too_large(meta.len()));
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    file.take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("cannot read: {e}"))?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(too_large(bytes.len() as u64));
    }
    let text = String::from_utf8(bytes).map_err(|e| {
        format!(
            "the file is not UTF-8 text (invalid byte at offset {}); resource files are JSON",
            e.utf8_error().valid_up_to()
        )
    })?;
    let link_target = std::fs::symlink_metadata(path)
        .ok()
        .filter(|m| m.file_type().is_symlink())
        .and_then(|_| std::fs::canonicalize(path).ok());
    Ok(SourceFile {
        path: path.to_path_buf(),
        text,
        modified: meta.modified().ok(),
        link_target,
    })
}

/// Parses every file; returns every resource with its file, or every error of every file.
pub fn parse_files(files: &[SourceFile]) -> Result<Vec<(PathBuf, Resource)>, Vec<ConfigError>> {
    let mut resources = Vec::new();
    let mut errors = Vec::new();
    for f in files {
        match parse_document(&f.path, &f.text) {
            Ok(list) => resources.extend(list.into_iter().map(|r| (f.path.clone(), r))),
            Err(list) => errors.extend(list),
        }
    }
    if errors.is_empty() {
        Ok(resources)
    } else {
        Err(errors)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::ffi::OsStrExt;

    /// A fresh directory under the system temp dir, removed on drop.
    struct Dir(PathBuf);

    impl Dir {
        fn new(tag: &str) -> Dir {
            use std::sync::atomic::{AtomicUsize, Ordering};
            static N: AtomicUsize = AtomicUsize::new(0);
            let n = N.fetch_add(1, Ordering::Relaxed);
            let p = std::env::temp_dir()
                .join(format!("mesh-core-source-{tag}-{}-{n}", std::process::id()));
            let _ = std::fs::remove_dir_all(&p);
            std::fs::create_dir_all(&p).expect("mkdir");
            Dir(p)
        }
    }

    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    const MESH: &str = r#"{"meshName": "m", "spec": {}}"#;

    fn reasons(l: &Listing) -> Vec<(String, String)> {
        let mut v: Vec<(String, String)> = l
            .skipped
            .iter()
            .map(|s| {
                let name = s.path.file_name().map(|n| n.to_string_lossy().into_owned());
                (name.unwrap_or_default(), s.reason.clone())
            })
            .collect();
        v.sort();
        v
    }

    #[test]
    fn odd_entries_are_skipped_with_a_reason() {
        let d = Dir::new("odd");
        std::fs::write(d.0.join("mesh.json"), MESH).expect("write");
        std::os::unix::fs::symlink(d.0.join("gone.json"), d.0.join("dangling.json")).expect("link");
        std::os::unix::fs::symlink(d.0.join("b.json"), d.0.join("a.json")).expect("link");
        std::os::unix::fs::symlink(d.0.join("a.json"), d.0.join("b.json")).expect("link");
        std::fs::create_dir(d.0.join("sub.json")).expect("mkdir");
        let bad = std::ffi::OsStr::from_bytes(b"\xff.json");
        std::fs::write(d.0.join(bad), MESH).expect("write");
        // Not resource files at all: not mentioned.
        std::fs::write(d.0.join("notes.txt"), "x").expect("write");
        std::fs::write(d.0.join(".hidden.json"), "x").expect("write");

        let l = read_config_dir(&d.0).expect("reads");
        assert_eq!(l.files.len(), 1);
        assert!(l.errors.is_empty());
        let r = reasons(&l);
        assert_eq!(r.len(), 5, "{r:?}");
        assert!(
            r[0].0 == "a.json" && r[0].1.starts_with("a symlink loop"),
            "{r:?}"
        );
        assert!(
            r[1].0 == "b.json" && r[1].1.starts_with("a symlink loop"),
            "{r:?}"
        );
        assert!(
            r[2].0 == "dangling.json" && r[2].1.starts_with("a dangling symlink"),
            "{r:?}"
        );
        assert!(
            r[3].0 == "sub.json" && r[3].1.starts_with("a directory"),
            "{r:?}"
        );
        assert!(r[4].1.contains("not valid UTF-8"), "{r:?}");
    }

    #[test]
    fn a_symlinked_file_is_read_through_its_link() {
        let d = Dir::new("link");
        let elsewhere = Dir::new("target");
        let target = elsewhere.0.join("mesh.json");
        std::fs::write(&target, MESH).expect("write");
        std::os::unix::fs::symlink(&target, d.0.join("mesh.json")).expect("link");
        let l = read_config_dir(&d.0).expect("reads");
        assert_eq!(l.files.len(), 1);
        assert_eq!(l.files[0].path, d.0.join("mesh.json"));
        assert_eq!(
            l.files[0].link_target.as_deref(),
            Some(std::fs::canonicalize(&target).expect("canon").as_path())
        );
        assert_eq!(l.files[0].text, MESH);
    }

    #[test]
    fn limits_name_the_file_and_the_limit() {
        let d = Dir::new("big");
        let mut text = MESH.to_string();
        text.push_str(&" ".repeat(MAX_FILE_BYTES as usize));
        std::fs::write(d.0.join("big.json"), &text).expect("write");
        std::fs::write(d.0.join("latin1.json"), b"{\"meshName\": \"caf\xe9\"}").expect("write");
        let l = read_config_dir(&d.0).expect("reads");
        assert!(l.files.is_empty());
        let lines: Vec<String> = l.errors.iter().map(ToString::to_string).collect();
        assert_eq!(lines.len(), 2, "{lines:?}");
        assert!(lines[0].contains("big.json") && lines[0].contains("8 MiB per resource file"));
        assert!(lines[1].contains("latin1.json") && lines[1].contains("not UTF-8"));

        // Many files under the per-file limit can still exceed the directory's.
        let d = Dir::new("many");
        let mut six = MESH.to_string();
        six.push_str(&" ".repeat(6 << 20));
        for i in 0..3 {
            std::fs::write(d.0.join(format!("m{i}.json")), &six).expect("write");
        }
        let l = read_config_dir(&d.0).expect("reads");
        assert_eq!(l.errors.len(), 1);
        assert!(
            l.errors[0].to_string().contains("16 MiB"),
            "{}",
            l.errors[0]
        );
    }

    #[test]
    fn a_missing_directory_is_an_error_and_an_empty_one_is_not() {
        let d = Dir::new("empty");
        assert!(read_config_dir(&d.0).expect("reads").files.is_empty());
        assert!(read_config_dir(&d.0.join("nope")).is_err());
    }
}
