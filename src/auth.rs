//! The daemon's auth file: `<config>/auth`, one `user:password:level` per line; every
//! transport (Deluge RPC, the web server) logs users in against it.
//!
//! The level is a number or a name (`NONE`, `READONLY`, `NORMAL`, `ADMIN`); a line
//! without one gets NORMAL; `#` starts a comment. At first start a `localclient` ADMIN
//! account with a random 40-hex-digit password is created (mode 0600), as Deluge does.
//! The file is read again whenever its modification time, size or mode changes, and by
//! [`AuthFile::reload`] (the daemon's SIGHUP).
//!
//! The file holds passwords: if group or other users may read or write it (mode bits
//! `0o077`), it is refused with the fix in the message (`chmod 600 FILE`): at open (the
//! daemon does not start) and on every later read, where the accounts read last stay in
//! use and the error is logged once per change of the file.

use std::collections::HashMap;
use std::fs;
use std::io::{Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::SystemTime;

use crate::export::AuthLevel;

/// The auth file could not be created or read.
#[derive(Debug, thiserror::Error)]
#[error("{op} {path}: {source}")]
pub struct AuthError {
    /// What was being done.
    pub op: &'static str,
    /// The path involved.
    pub path: PathBuf,
    /// The underlying error.
    #[source]
    pub source: std::io::Error,
}

impl AuthError {
    fn io(op: &'static str, path: &Path, source: std::io::Error) -> Self {
        AuthError {
            op,
            path: path.to_path_buf(),
            source,
        }
    }
}

/// The account every local tool uses by default.
pub const LOCALCLIENT: &str = "localclient";

#[derive(Debug, Clone, PartialEq, Eq)]
struct Account {
    password: String,
    level: AuthLevel,
}

#[derive(Debug, Default)]
struct Cache {
    /// Modification time, size and mode of the file last looked at.
    stamp: Option<(SystemTime, u64, u32)>,
    accounts: HashMap<String, Account>,
}

/// Refuses a secret file (`auth`, the TLS key) that group or other users may access: the
/// error says how to fix it.
pub(crate) fn check_private(path: &Path) -> Result<(), AuthError> {
    let meta = fs::metadata(path).map_err(|e| AuthError::io("stat", path, e))?;
    let mode = meta.permissions().mode() & 0o7777;
    if mode & 0o077 != 0 {
        return Err(AuthError {
            op: "refusing",
            path: path.to_path_buf(),
            source: std::io::Error::new(
                std::io::ErrorKind::PermissionDenied,
                format!(
                    "it holds secrets and other users may access it (mode {mode:04o}); \
                     fix it with `chmod 600 {}`",
                    path.display()
                ),
            ),
        });
    }
    Ok(())
}

/// The auth file, re-read when it changes.
#[derive(Debug)]
pub struct AuthFile {
    path: PathBuf,
    cache: Mutex<Cache>,
    /// Checks that found the file unusable: logged at most once per interval, as every
    /// login attempt (an attacker's too) makes one.
    unusable: crate::throttle::Tally,
}

/// Why [`AuthFile::check`] refused a login. The messages are Deluge's wording, sent as
/// `BadLoginError`'s message.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum LoginError {
    /// No account of that name.
    #[error("Username does not exist")]
    UnknownUser,
    /// The account exists; the password is another.
    #[error("Password does not match")]
    WrongPassword,
}

/// Parses a level given as a number or a name.
pub(crate) fn parse_level(text: &str) -> Option<AuthLevel> {
    let t = text.trim();
    if let Ok(n) = t.parse::<u8>() {
        return Some(AuthLevel::from_u8(n));
    }
    match t.to_ascii_uppercase().as_str() {
        "NONE" => Some(AuthLevel::None),
        "READONLY" => Some(AuthLevel::ReadOnly),
        "NORMAL" | "DEFAULT" => Some(AuthLevel::Normal),
        "ADMIN" => Some(AuthLevel::Admin),
        _ => None,
    }
}

/// `bytes` random bytes from the kernel, as lower-case hex.
pub(crate) fn random_hex(bytes: usize) -> Result<String, std::io::Error> {
    let mut buf = vec![0u8; bytes];
    fs::File::open("/dev/urandom")?.read_exact(&mut buf)?;
    Ok(buf.iter().map(|b| format!("{b:02x}")).collect())
}

impl AuthFile {
    /// Opens `<config_dir>/auth`, creating it with a `localclient` ADMIN account if missing.
    pub fn open(config_dir: &Path) -> Result<Self, AuthError> {
        let path = config_dir.join("auth");
        fs::create_dir_all(config_dir).map_err(|e| AuthError::io("create", config_dir, e))?;
        if !path.exists() {
            let password = random_hex(20).map_err(|e| AuthError::io("random", &path, e))?;
            let mut file = crate::store::no_follow(
                fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600),
            )
            .open(&path)
            .map_err(|e| AuthError::io("create", &path, e))?;
            writeln!(
                file,
                "{LOCALCLIENT}:{password}:{}",
                AuthLevel::Admin.as_u8()
            )
            .and_then(|()| file.sync_all())
            .map_err(|e| AuthError::io("write", &path, e))?;
            tracing::info!(file = %path.display(), "created auth file with a localclient account");
        }
        let auth = AuthFile {
            path,
            cache: Mutex::new(Cache::default()),
            unusable: crate::throttle::Tally::new(std::time::Duration::from_secs(10)),
        };
        auth.refresh(true)?;
        Ok(auth)
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Reads the file if it changed (or if `force`). A file others may access is refused
    /// (the accounts read last stay); the error is returned once per change of the file,
    /// `Ok` after that, so a caller that logs it does not log it at every login.
    fn refresh(&self, force: bool) -> Result<(), AuthError> {
        let meta = fs::metadata(&self.path).map_err(|e| AuthError::io("stat", &self.path, e))?;
        let stamp = (
            meta.modified().unwrap_or(SystemTime::UNIX_EPOCH),
            meta.len(),
            meta.permissions().mode(),
        );
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        if cache.stamp == Some(stamp) && !force {
            return Ok(());
        }
        // Looked at: whatever the outcome, not again until it changes.
        cache.stamp = Some(stamp);
        check_private(&self.path)?;
        let text = match fs::read_to_string(&self.path) {
            Ok(text) => text,
            Err(e) => {
                cache.stamp = None; // retried at the next login
                return Err(AuthError::io("read", &self.path, e));
            }
        };
        cache.accounts = parse(&text, &self.path);
        Ok(())
    }

    /// Reads the file again now (the daemon does this on SIGHUP). If it cannot be used (it
    /// is readable by others, or unreadable), the accounts read last stay and the error
    /// says why and how to fix it.
    pub fn reload(&self) -> Result<(), AuthError> {
        self.refresh(true)
    }

    /// Checks a login; the error says why it failed, in Deluge's wording.
    pub fn check(&self, user: &str, password: &str) -> Result<AuthLevel, LoginError> {
        if let Err(e) = self.refresh(false) {
            if let Some(times) = self.unusable.hit() {
                tracing::error!(error = %e, times, "auth file not (re)read; the accounts read last stay in use");
            }
        }
        let cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        let account = cache.accounts.get(user).ok_or(LoginError::UnknownUser)?;
        if constant_time_eq(account.password.as_bytes(), password.as_bytes()) {
            Ok(account.level)
        } else {
            Err(LoginError::WrongPassword)
        }
    }

    /// Every account's name and level, sorted by name (no passwords).
    pub fn accounts(&self) -> Vec<(String, AuthLevel)> {
        let _ = self.refresh(false);
        let cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        let mut list: Vec<(String, AuthLevel)> = cache
            .accounts
            .iter()
            .map(|(name, a)| (name.clone(), a.level))
            .collect();
        list.sort();
        list
    }

    /// The password of `user`, for local tools (`localclient`).
    pub fn password_of(&self, user: &str) -> Option<String> {
        let _ = self.refresh(false);
        let cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        cache.accounts.get(user).map(|a| a.password.clone())
    }
}

/// The password of `user` in `<config_dir>/auth`, read without creating or changing
/// anything (for local tools); `Ok(None)` if the file has no such account.
pub fn read_password(config_dir: &Path, user: &str) -> Result<Option<String>, AuthError> {
    let path = config_dir.join("auth");
    let text = fs::read_to_string(&path).map_err(|e| AuthError::io("read", &path, e))?;
    Ok(parse(&text, &path).remove(user).map(|a| a.password))
}

fn parse(text: &str, path: &Path) -> HashMap<String, Account> {
    let mut accounts = HashMap::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let mut parts = line.splitn(3, ':');
        let (Some(user), Some(password)) = (parts.next(), parts.next()) else {
            tracing::warn!(file = %path.display(), line = n + 1, "auth line without a password ignored");
            continue;
        };
        let level = match parts.next() {
            None => AuthLevel::Normal,
            Some(l) => match parse_level(l) {
                Some(level) => level,
                None => {
                    tracing::warn!(file = %path.display(), line = n + 1, level = l, "unknown auth level; line ignored");
                    continue;
                }
            },
        };
        accounts.insert(
            user.to_string(),
            Account {
                password: password.to_string(),
                level,
            },
        );
    }
    accounts
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn creates_localclient_and_rereads_changes() {
        let dir = tempfile::tempdir().unwrap();
        let auth = AuthFile::open(dir.path()).unwrap();
        let mode = fs::metadata(auth.path()).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let pw = auth.password_of(LOCALCLIENT).unwrap();
        assert_eq!(pw.len(), 40);
        assert_eq!(auth.check(LOCALCLIENT, &pw), Ok(AuthLevel::Admin));
        assert_eq!(
            auth.check(LOCALCLIENT, "wrong"),
            Err(LoginError::WrongPassword)
        );
        assert_eq!(auth.check("nobody", &pw), Err(LoginError::UnknownUser));
        assert_eq!(
            LoginError::WrongPassword.to_string(),
            "Password does not match"
        );
        assert_eq!(
            LoginError::UnknownUser.to_string(),
            "Username does not exist"
        );

        let text = format!(
            "# accounts\n{LOCALCLIENT}:{pw}:10\nalice:pw1:READONLY\nbob:pw2\ncarol:pw3:bogus\ndave:pa:ss:5\n"
        );
        fs::write(auth.path(), text).unwrap();
        assert_eq!(auth.check("alice", "pw1"), Ok(AuthLevel::ReadOnly));
        assert_eq!(auth.check("bob", "pw2"), Ok(AuthLevel::Normal));
        assert!(auth.check("carol", "pw3").is_err());
        assert!(
            auth.check("dave", "pa").is_err(),
            "level 'ss:5' is not a level"
        );
        // reopening keeps the file
        let again = AuthFile::open(dir.path()).unwrap();
        assert_eq!(again.check("alice", "pw1"), Ok(AuthLevel::ReadOnly));
    }

    #[test]
    fn a_file_others_can_read_is_refused_with_the_fix() {
        let dir = tempfile::tempdir().unwrap();
        let auth = AuthFile::open(dir.path()).unwrap();
        let pw = auth.password_of(LOCALCLIENT).unwrap();
        let path = auth.path().to_path_buf();
        fs::write(&path, format!("{LOCALCLIENT}:{pw}:10\nmallory:x:10\n")).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        let err = auth.reload().unwrap_err().to_string();
        assert!(
            err.contains(&format!("chmod 600 {}", path.display())),
            "{err}"
        );
        assert!(err.contains("mode 0644"), "{err}");
        // The accounts read last stay; the new line is not used.
        assert_eq!(auth.check(LOCALCLIENT, &pw), Ok(AuthLevel::Admin));
        assert!(auth.check("mallory", "x").is_err());
        let open = AuthFile::open(dir.path()).unwrap_err().to_string();
        assert!(open.contains("chmod 600"), "{open}");
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(auth.check("mallory", "x"), Ok(AuthLevel::Admin));
    }
}
