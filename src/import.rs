//! Other clients' all-time totals: Deluge's Stats plugin (`stats.totals`) and
//! Transmission (`stats.json`), parsed into [`Counters`] for `stats.import_totals`.
//!
//! ```
//! use torrent_stats::import::{ImportError, ImportFormat};
//!
//! let file = br#"{"downloaded-bytes": 2000, "uploaded-bytes": 1000}"#;
//! let counters = ImportFormat::Transmission.parse(file).unwrap();
//! assert_eq!((counters.total_upload, counters.total_payload_upload), (1000, 1000));
//! // The same file always has the same fingerprint, so it is never imported twice.
//! let fingerprint = ImportFormat::Transmission.fingerprint(file);
//! assert!(fingerprint.starts_with("transmission:"), "{fingerprint}");
//! assert_eq!(fingerprint, ImportFormat::Transmission.fingerprint(file));
//! let err = ImportFormat::Transmission.parse(br#"{"uploaded-bytes": 1}"#).unwrap_err();
//! assert!(matches!(err, ImportError::Missing { key: "downloaded-bytes" }));
//! ```

use std::fmt;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use crate::checksum::fnv1a64;
use crate::stats::totals::{Counters, MAX_TOTAL};

/// Largest file [`read_file`] reads: both formats are a few hundred bytes.
pub(crate) const MAX_FILE: u64 = 16 << 20;

/// A file format [`parse`](ImportFormat::parse) understands.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ImportFormat {
    /// Deluge's Stats plugin `stats.totals`: Deluge's config file, a
    /// `{"file": N, "format": N}` header object, then an object with `total_upload`,
    /// `total_download`, `total_payload_upload` and `total_payload_download`.
    Deluge,
    /// Transmission's `stats.json`: one object whose `uploaded-bytes` and
    /// `downloaded-bytes` count payload only; they become both the total and the payload
    /// counters.
    Transmission,
}

impl ImportFormat {
    /// The source name recorded with an import: `"deluge"`, `"transmission"`.
    pub fn as_str(self) -> &'static str {
        match self {
            ImportFormat::Deluge => "deluge",
            ImportFormat::Transmission => "transmission",
        }
    }

    /// The file, for messages: `"Deluge stats.totals"`, `"Transmission stats.json"`.
    pub fn file_kind(self) -> &'static str {
        match self {
            ImportFormat::Deluge => "Deluge stats.totals",
            ImportFormat::Transmission => "Transmission stats.json",
        }
    }

    /// The counters in a file of this format.
    pub fn parse(self, bytes: &[u8]) -> Result<Counters, ImportError> {
        match self {
            ImportFormat::Deluge => parse_deluge(bytes),
            ImportFormat::Transmission => parse_transmission(bytes),
        }
    }

    /// `fingerprint` with this format's source name.
    pub fn fingerprint(self, bytes: &[u8]) -> String {
        fingerprint(self.as_str(), bytes)
    }
}

impl fmt::Display for ImportFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a file could not be read or imported. Each value names the key and the problem.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// The file could not be read.
    #[error("reading {}", .path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The file is larger than `MAX_FILE`.
    #[error("{} is {size} bytes: too large for a totals file", .path.display())]
    FileTooLarge {
        /// The file.
        path: PathBuf,
        /// Its size, bytes.
        size: u64,
    },
    /// The file holds nothing.
    #[error("the file is empty")]
    Empty,
    /// The bytes are not JSON.
    #[error("not JSON (expected {})", expected_shape(*.format))]
    NotJson {
        /// The format that was expected.
        format: ImportFormat,
        /// serde_json's error (with its line and column).
        #[source]
        source: serde_json::Error,
    },
    /// JSON, but not the objects the format has.
    #[error("expected {}", expected_shape(*.format))]
    Shape {
        /// The format that was expected.
        format: ImportFormat,
    },
    /// A Deluge file with more than its header and config objects.
    #[error("more than two JSON objects (expected a header and the totals)")]
    TooManyObjects,
    /// A Deluge file whose first object is not the `{"file": N, "format": N}` header.
    #[error("the first JSON object is not Deluge's {{\"file\": N, \"format\": N}} header")]
    NotDelugeHeader,
    /// A counter is missing.
    #[error("{key} is missing")]
    Missing {
        /// The key.
        key: &'static str,
    },
    /// A counter is not an integer (a float, a string, ...).
    #[error("{key} is {value}, not an integer byte count")]
    NotInteger {
        /// The key.
        key: &'static str,
        /// The value as JSON.
        value: String,
    },
    /// A counter is negative.
    #[error("{key} is {value}, a negative byte count")]
    Negative {
        /// The key.
        key: &'static str,
        /// The value.
        value: i64,
    },
    /// A counter is above [`MAX_TOTAL`].
    #[error("{key} is {value}, more than the largest total ({MAX_TOTAL})")]
    TooLarge {
        /// The key.
        key: &'static str,
        /// The value.
        value: u64,
    },
}

impl ImportError {
    /// The key at fault, for the errors about one counter.
    pub fn key(&self) -> Option<&'static str> {
        match self {
            ImportError::Missing { key }
            | ImportError::NotInteger { key, .. }
            | ImportError::Negative { key, .. }
            | ImportError::TooLarge { key, .. } => Some(key),
            _ => None,
        }
    }
}

fn expected_shape(format: ImportFormat) -> &'static str {
    match format {
        ImportFormat::Deluge => "Deluge's header object and then the totals object",
        ImportFormat::Transmission => "one JSON object",
    }
}

/// `"<source>:<16 hex digits>"`: identifies the file's exact content, so the same file is
/// never imported twice.
pub(crate) fn fingerprint(source: &str, bytes: &[u8]) -> String {
    format!("{source}:{:016x}", fnv1a64(bytes))
}

/// Reads a file to import, refusing one larger than `MAX_FILE`.
pub fn read_file(path: &Path) -> Result<Vec<u8>, ImportError> {
    let io = |source| ImportError::Io {
        path: path.to_path_buf(),
        source,
    };
    let meta = std::fs::metadata(path).map_err(io)?;
    if meta.len() > MAX_FILE {
        return Err(ImportError::FileTooLarge {
            path: path.to_path_buf(),
            size: meta.len(),
        });
    }
    std::fs::read(path).map_err(io)
}

/// A byte count at `key` of `obj`: present, an integer, not negative, not too large.
fn count(obj: &Map<String, Value>, key: &'static str) -> Result<u64, ImportError> {
    let Some(v) = obj.get(key) else {
        return Err(ImportError::Missing { key });
    };
    let not_integer = || ImportError::NotInteger {
        key,
        value: v.to_string(),
    };
    let Value::Number(n) = v else {
        return Err(not_integer());
    };
    if let Some(u) = n.as_u64() {
        if u > MAX_TOTAL {
            return Err(ImportError::TooLarge { key, value: u });
        }
        return Ok(u);
    }
    match n.as_i64() {
        Some(value) => Err(ImportError::Negative { key, value }),
        None => Err(not_integer()),
    }
}

/// The counters of Deluge's Stats plugin `stats.totals`: Deluge's config file, a
/// `{"file": N, "format": N}` header object and then the config object (a config saved
/// without the header by old Deluge versions is accepted too).
pub(crate) fn parse_deluge(bytes: &[u8]) -> Result<Counters, ImportError> {
    let mut objects = Vec::new();
    for value in serde_json::Deserializer::from_slice(bytes).into_iter::<Value>() {
        let value = value.map_err(|source| ImportError::NotJson {
            format: ImportFormat::Deluge,
            source,
        })?;
        objects.push(value);
        if objects.len() > 2 {
            return Err(ImportError::TooManyObjects);
        }
    }
    let config = match objects.as_slice() {
        [Value::Object(header), Value::Object(config)] => {
            if !(header.contains_key("file") && header.contains_key("format")) {
                return Err(ImportError::NotDelugeHeader);
            }
            config
        }
        // A config saved without the header (old Deluge versions).
        [Value::Object(config)] if config.contains_key("total_upload") => config,
        [] => return Err(ImportError::Empty),
        _ => {
            return Err(ImportError::Shape {
                format: ImportFormat::Deluge,
            })
        }
    };
    Ok(Counters {
        total_upload: count(config, "total_upload")?,
        total_download: count(config, "total_download")?,
        total_payload_upload: count(config, "total_payload_upload")?,
        total_payload_download: count(config, "total_payload_download")?,
    })
}

/// The counters of Transmission's `stats.json`: one object whose `uploaded-bytes` and
/// `downloaded-bytes` (payload only) become both the total and the payload counters.
pub(crate) fn parse_transmission(bytes: &[u8]) -> Result<Counters, ImportError> {
    let format = ImportFormat::Transmission;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ImportError::Empty);
    }
    let value: Value =
        serde_json::from_slice(bytes).map_err(|source| ImportError::NotJson { format, source })?;
    let Value::Object(stats) = value else {
        return Err(ImportError::Shape { format });
    };
    let up = count(&stats, "uploaded-bytes")?;
    let down = count(&stats, "downloaded-bytes")?;
    Ok(Counters {
        total_upload: up,
        total_download: down,
        total_payload_upload: up,
        total_payload_download: down,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints() {
        assert_eq!(fingerprint("deluge", b""), "deluge:cbf29ce484222325");
        assert_eq!(
            ImportFormat::Deluge.fingerprint(b"a"),
            "deluge:af63dc4c8601ec8c"
        );
    }

    #[test]
    fn parses_deluge_files() {
        let file = br#"{
    "file": 1,
    "format": 1
}{
    "total_upload": 100,
    "total_download": 200,
    "total_payload_upload": 90,
    "total_payload_download": 180,
    "stats": {}
}"#;
        let c = parse_deluge(file).unwrap();
        assert_eq!(
            (
                c.total_upload,
                c.total_download,
                c.total_payload_upload,
                c.total_payload_download
            ),
            (100, 200, 90, 180)
        );
        assert_eq!(ImportFormat::Deluge.parse(file).unwrap(), c);
        let err = |text: &str| parse_deluge(text.as_bytes()).unwrap_err();
        let header = r#"{"file": 1, "format": 1}"#;
        let all = r#""total_upload": 1, "total_download": 2, "total_payload_upload": 3"#;
        let e = err(&format!("{header}{{{all}}}"));
        assert!(matches!(
            e,
            ImportError::Missing {
                key: "total_payload_download"
            }
        ));
        assert_eq!(e.to_string(), "total_payload_download is missing");
        let e = err(&format!(
            "{header}{{{all}, \"total_payload_download\": -4}}"
        ));
        assert!(matches!(e, ImportError::Negative { value: -4, .. }), "{e}");
        assert!(
            e.to_string()
                .contains("total_payload_download is -4, a negative"),
            "{e}"
        );
        let e = err(&format!(
            "{header}{{{all}, \"total_payload_download\": 1.5}}"
        ));
        assert!(matches!(e, ImportError::NotInteger { .. }), "{e}");
        assert!(e.to_string().contains("not an integer"), "{e}");
        let e = err(&format!(
            "{header}{{{all}, \"total_payload_download\": \"7\"}}"
        ));
        assert!(e.to_string().contains("is \"7\", not an integer"), "{e}");
        assert_eq!(e.key(), Some("total_payload_download"));
        let e = err(&format!(
            "{header}{{{all}, \"total_payload_download\": {}}}",
            MAX_TOTAL + 1
        ));
        assert!(matches!(e, ImportError::TooLarge { .. }), "{e}");
        assert!(matches!(err(""), ImportError::Empty));
        assert!(err("").to_string().contains("empty"));
        let e = err("format = 1\n");
        assert!(matches!(e, ImportError::NotJson { .. }), "{e}");
        assert!(e.to_string().contains("not JSON"), "{e}");
        assert!(std::error::Error::source(&e).is_some());
        assert!(matches!(
            err(&format!("{header}{header}{header}")),
            ImportError::TooManyObjects
        ));
        assert!(err(&format!("{header}{header}{header}"))
            .to_string()
            .contains("more than two"));
        assert!(matches!(
            err(&format!("{{\"x\": 1}}{{{all}}}")),
            ImportError::NotDelugeHeader
        ));
        assert!(matches!(err("[1]"), ImportError::Shape { .. }));
    }

    #[test]
    fn parses_transmission_files() {
        let c = parse_transmission(
            br#"{"downloaded-bytes": 2000, "files-added": 3, "seconds-active": 50,
                 "session-count": 4, "uploaded-bytes": 1000}"#,
        )
        .unwrap();
        assert_eq!((c.total_upload, c.total_payload_upload), (1000, 1000));
        assert_eq!((c.total_download, c.total_payload_download), (2000, 2000));
        let e = parse_transmission(br#"{"uploaded-bytes": 1}"#).unwrap_err();
        assert!(e.to_string().contains("downloaded-bytes is missing"), "{e}");
        assert_eq!(e.key(), Some("downloaded-bytes"));
        assert!(matches!(
            parse_transmission(b"[1]"),
            Err(ImportError::Shape { .. })
        ));
        assert!(matches!(
            parse_transmission(b" \n"),
            Err(ImportError::Empty)
        ));
        assert!(matches!(
            parse_transmission(b"{"),
            Err(ImportError::NotJson { .. })
        ));
    }

    #[test]
    fn reads_files_up_to_the_limit() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("stats.json");
        assert!(matches!(read_file(&path), Err(ImportError::Io { .. })));
        std::fs::write(&path, b"{}").unwrap();
        assert_eq!(read_file(&path).unwrap(), b"{}");
        let big = std::fs::File::create(&path).unwrap();
        big.set_len(MAX_FILE + 1).unwrap();
        let e = read_file(&path).unwrap_err();
        assert!(matches!(e, ImportError::FileTooLarge { .. }), "{e}");
        assert!(e.to_string().contains("too large"), "{e}");
    }
}
