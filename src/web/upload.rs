//! `POST /upload`: deluge-web's torrent file upload. A `multipart/form-data` body whose
//! `file` fields are torrent files → `{"success": bool, "files": [paths]}`; the paths are
//! what `web.add_torrents` then takes (as `path`), and only those: a path this server did
//! not issue, or one that expired, is refused there.
//!
//! The files go to a private directory (`<tmp>/delugeweb-<random>`, mode 0700; each file
//! 0600), removed when the web server stops. At most [`MAX_UPLOADS`] files and
//! [`MAX_UPLOAD_BYTES`] bytes are kept, each for [`UPLOAD_TTL`]: the oldest go first.
//!
//! Like deluge-web's, an upload needs no login (@ctrl/deluge sends its cookie to `/json`
//! only): the files can only be added through a logged-in `web.add_torrents`, and the
//! space they take is bounded. A browser's cross-site form cannot upload: the same
//! `Origin` / `Sec-Fetch-Site` check as `/json` refuses it (403).

use std::collections::VecDeque;
use std::fs;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::extract::multipart::{Multipart, MultipartRejection};
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use super::WebState;
use crate::torrent::MAX_TORRENT_FILE;

/// Uploaded files kept at once.
pub const MAX_UPLOADS: usize = 16;
/// Bytes of uploaded files kept at once.
pub const MAX_UPLOAD_BYTES: u64 = 64 << 20;
/// How long an uploaded file stays usable.
pub const UPLOAD_TTL: Duration = Duration::from_secs(3600);

/// An upload that could not be kept.
#[derive(Debug, thiserror::Error)]
pub enum UploadError {
    /// A file over [`MAX_TORRENT_FILE`].
    #[error("a torrent file is at most {MAX_TORRENT_FILE} bytes; this one is {0}")]
    TooLarge(usize),
    /// The directory or file could not be written.
    #[error("keeping the upload in {path}: {source}")]
    Io {
        /// Where.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

struct Kept {
    path: PathBuf,
    size: u64,
    at: Instant,
}

#[derive(Default)]
struct Inner {
    dir: Option<PathBuf>,
    files: VecDeque<Kept>,
}

/// The uploaded files, in their private directory.
#[derive(Default)]
pub struct Uploads {
    inner: Mutex<Inner>,
}

impl std::fmt::Debug for Uploads {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Uploads").finish_non_exhaustive()
    }
}

impl Uploads {
    /// Keeps `bytes` as a new file; its path.
    pub fn store(&self, bytes: &[u8]) -> Result<PathBuf, UploadError> {
        if bytes.len() > MAX_TORRENT_FILE {
            return Err(UploadError::TooLarge(bytes.len()));
        }
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let size = bytes.len() as u64;
        let now = Instant::now();
        while let Some(oldest) = inner.files.front() {
            let total: u64 = inner.files.iter().map(|k| k.size).sum();
            let full = inner.files.len() >= MAX_UPLOADS || total + size > MAX_UPLOAD_BYTES;
            if !full && now.duration_since(oldest.at) < UPLOAD_TTL {
                break;
            }
            if let Some(old) = inner.files.pop_front() {
                let _ = fs::remove_file(&old.path);
            }
        }
        let dir = match &inner.dir {
            Some(dir) => dir.clone(),
            None => {
                let dir = private_dir()?;
                inner.dir = Some(dir.clone());
                dir
            }
        };
        let io = |path: &PathBuf| {
            let path = path.clone();
            move |source| UploadError::Io { path, source }
        };
        let name = crate::auth::random_hex(8).map_err(io(&dir))?;
        let path = dir.join(format!("tmp{name}.torrent"));
        let mut file = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .map_err(io(&path))?;
        file.write_all(bytes).map_err(io(&path))?;
        inner.files.push_back(Kept {
            path: path.clone(),
            size,
            at: now,
        });
        Ok(path)
    }

    /// The bytes of a file this server issued and still keeps; `None` for any other path.
    pub fn read(&self, path: &str) -> Option<std::io::Result<Vec<u8>>> {
        let inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let kept = inner.files.iter().find(|k| k.path.as_os_str() == path)?;
        if kept.at.elapsed() >= UPLOAD_TTL {
            return None;
        }
        Some(fs::read(&kept.path))
    }
}

impl Drop for Uploads {
    fn drop(&mut self) {
        let inner = self.inner.get_mut().unwrap_or_else(|e| e.into_inner());
        if let Some(dir) = &inner.dir {
            let _ = fs::remove_dir_all(dir);
        }
    }
}

/// A new `<tmp>/delugeweb-<random>`, mode 0700.
fn private_dir() -> Result<PathBuf, UploadError> {
    let tmp = std::env::temp_dir();
    let io = |source| UploadError::Io {
        path: tmp.clone(),
        source,
    };
    let name = crate::auth::random_hex(8).map_err(io)?;
    let dir = tmp.join(format!("delugeweb-{name}"));
    fs::DirBuilder::new()
        .mode(0o700)
        .create(&dir)
        .map_err(|source| UploadError::Io {
            path: dir.clone(),
            source,
        })?;
    Ok(dir)
}

/// `{"success": false, "files": [], "error": why}` with HTTP `status`.
fn refuse(status: StatusCode, why: impl Into<String>) -> Response {
    let body = json!({"success": false, "files": [], "error": why.into()});
    (status, Json(body)).into_response()
}

/// The handler.
pub(super) async fn handle(
    State(state): State<WebState>,
    headers: HeaderMap,
    multipart: Result<Multipart, MultipartRejection>,
) -> Response {
    if let Err(why) = super::json::same_origin(&headers) {
        return refuse(StatusCode::FORBIDDEN, why);
    }
    let mut multipart = match multipart {
        Ok(m) => m,
        Err(e) => return refuse(e.status(), format!("expected multipart/form-data: {e}")),
    };
    let mut files = Vec::new();
    loop {
        let field = match multipart.next_field().await {
            Ok(Some(field)) => field,
            Ok(None) => break,
            Err(e) => return refuse(e.status(), format!("bad multipart body: {e}")),
        };
        if field.name() != Some("file") {
            continue;
        }
        let bytes = match field.bytes().await {
            Ok(b) => b,
            Err(e) => return refuse(e.status(), format!("bad multipart body: {e}")),
        };
        let uploads = state.uploads.clone();
        let kept = tokio::task::spawn_blocking(move || uploads.store(&bytes)).await;
        match kept {
            Ok(Ok(path)) => files.push(path.display().to_string()),
            Ok(Err(e @ UploadError::TooLarge(_))) => {
                return refuse(StatusCode::PAYLOAD_TOO_LARGE, e.to_string())
            }
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "upload not kept");
                return refuse(StatusCode::INTERNAL_SERVER_ERROR, e.to_string());
            }
            Err(e) => return refuse(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
        }
    }
    tracing::debug!(count = files.len(), "uploaded torrent files");
    let mut response = Json(json!({"success": !files.is_empty(), "files": files})).into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn kept_files_are_private_bounded_and_only_issued_paths_read() {
        let uploads = Uploads::default();
        let first = uploads.store(b"d4:infod4:name1:xee").unwrap();
        let dir = first.parent().unwrap().to_path_buf();
        let name = dir.file_name().unwrap().to_str().unwrap();
        assert!(name.starts_with("delugeweb-"), "{name}");
        let mode = |p: &std::path::Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!((mode(&dir), mode(&first)), (0o700, 0o600));
        let read = uploads.read(first.to_str().unwrap()).unwrap().unwrap();
        assert_eq!(read, b"d4:infod4:name1:xee");
        assert!(uploads.read("/etc/passwd").is_none());
        assert!(uploads.read(dir.join("../x").to_str().unwrap()).is_none());
        assert!(matches!(
            uploads.store(&vec![0; MAX_TORRENT_FILE + 1]),
            Err(UploadError::TooLarge(_))
        ));
        for _ in 0..MAX_UPLOADS {
            uploads.store(b"x").unwrap();
        }
        assert!(
            uploads.read(first.to_str().unwrap()).is_none(),
            "oldest evicted"
        );
        assert!(!first.exists(), "and deleted");
        drop(uploads);
        assert!(!dir.exists(), "the directory goes with the server");
    }
}
