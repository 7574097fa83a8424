//! The web server's settings, `web.toml` in the config directory (hand-editable; read at
//! start). Its keys are named as deluge-web's `web.conf` names them:
//!
//! ```toml
//! https = false            # serve HTTPS instead of plain HTTP
//! cert = "ssl/daemon.cert" # the certificate (chain), PEM; relative to the config directory
//! pkey = "ssl/daemon.pkey" # its private key, PEM, mode 0600
//! ```
//!
//! The defaults are the daemon's own key pair, the one Deluge RPC uses (generated at first
//! start). A missing file is the defaults; a file that cannot be used (not TOML, an
//! unknown key, an empty path) is refused with the file, line and key named.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::store::{Persist, Rejected};

/// The settings file's name.
pub const WEB_CONFIG_FILE: &str = "web.toml";

/// `web.toml` could not be used.
#[derive(Debug, thiserror::Error)]
#[error("{}: {reason}", path.display())]
#[non_exhaustive]
pub struct WebConfigError {
    /// The file.
    pub path: PathBuf,
    /// Why (with the line and key when the TOML names them).
    pub reason: String,
}

/// `web.toml`: whether the web server speaks HTTPS, and with which key pair.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WebConfig {
    /// HTTPS instead of plain HTTP (deluge-web's `https`).
    pub https: bool,
    /// The certificate chain, PEM (deluge-web's `cert`); relative: to the config directory.
    pub cert: PathBuf,
    /// Its private key, PEM (deluge-web's `pkey`); relative: to the config directory.
    pub pkey: PathBuf,
}

/// The daemon's own certificate, relative to the config directory (deluge-web's default).
const DAEMON_CERT: &str = "ssl/daemon.cert";
/// The daemon's own key, relative to the config directory.
const DAEMON_PKEY: &str = "ssl/daemon.pkey";

impl Default for WebConfig {
    fn default() -> Self {
        WebConfig {
            https: false,
            cert: PathBuf::from(DAEMON_CERT),
            pkey: PathBuf::from(DAEMON_PKEY),
        }
    }
}

impl Persist for WebConfig {
    const SEALED: bool = false;

    fn validate(&self) -> Result<(), String> {
        for (key, path) in [("cert", &self.cert), ("pkey", &self.pkey)] {
            if path.as_os_str().is_empty() {
                return Err(format!(
                    "{key} is empty: give a PEM file (default {:?})",
                    match key {
                        "cert" => DAEMON_CERT,
                        _ => DAEMON_PKEY,
                    }
                ));
            }
        }
        Ok(())
    }
}

impl WebConfig {
    /// Reads `web.toml` in `config_dir` through the store (without changing it): the
    /// defaults when it does not exist, refused with the file and the reason when it
    /// cannot be used.
    pub fn read(config_dir: &Path) -> Result<WebConfig, WebConfigError> {
        let path = config_dir.join(WEB_CONFIG_FILE);
        match crate::store::read::<WebConfig>(&path) {
            Ok(config) => Ok(config),
            Err(Rejected::Missing) => Ok(WebConfig::default()),
            Err(Rejected::Bad(reason)) => Err(WebConfigError { path, reason }),
        }
    }

    /// The certificate and key files, relative paths resolved against `config_dir`.
    pub fn key_pair_paths(&self, config_dir: &Path) -> (PathBuf, PathBuf) {
        (config_dir.join(&self.cert), config_dir.join(&self.pkey))
    }

    /// Whether the key pair is the daemon's own (generated at first start when missing).
    pub fn is_daemon_pair(&self, config_dir: &Path) -> bool {
        let own = (config_dir.join(DAEMON_CERT), config_dir.join(DAEMON_PKEY));
        self.key_pair_paths(config_dir) == own
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_file_is_the_daemon_pair_over_http() {
        let dir = tempfile::tempdir().unwrap();
        let config = WebConfig::read(dir.path()).unwrap();
        assert_eq!(config, WebConfig::default());
        assert!(!config.https);
        assert!(config.is_daemon_pair(dir.path()));
        let (cert, key) = config.key_pair_paths(dir.path());
        assert_eq!(cert, dir.path().join("ssl/daemon.cert"));
        assert_eq!(key, dir.path().join("ssl/daemon.pkey"));
    }

    #[test]
    fn keys_as_deluge_web_names_them() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join(WEB_CONFIG_FILE);
        std::fs::write(&file, "https = true\ncert = \"/etc/x/fullchain.pem\"\n").unwrap();
        let config = WebConfig::read(dir.path()).unwrap();
        assert!(config.https);
        assert_eq!(config.cert, Path::new("/etc/x/fullchain.pem"));
        assert_eq!(config.pkey, Path::new("ssl/daemon.pkey"));
        assert!(!config.is_daemon_pair(dir.path()));
        let (cert, key) = config.key_pair_paths(dir.path());
        assert_eq!(cert, Path::new("/etc/x/fullchain.pem"));
        assert_eq!(key, dir.path().join("ssl/daemon.pkey"));
    }

    #[test]
    fn bad_files_are_refused_naming_file_line_and_key() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join(WEB_CONFIG_FILE);
        for (text, want) in [
            ("https = true\nkey = \"a\"\n", "line 2"),
            ("https = \"yes\"\n", "line 1"),
            ("pkey = \"\"\n", "pkey is empty"),
        ] {
            std::fs::write(&file, text).unwrap();
            let e = WebConfig::read(dir.path()).unwrap_err().to_string();
            assert!(e.starts_with(&file.display().to_string()), "{e}");
            assert!(e.contains(want), "{text:?}: {e}");
        }
    }
}
