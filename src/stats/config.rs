//! The Stats plugin's preferences (`stats.conf`) and their validation.
//!
//! `stats.conf` is a file people edit by hand, so it is read by [`read_file`], never
//! recovered: a bad value, a wrong type, an unknown key or broken TOML is refused with
//! the file, line, key and what is allowed ([`ConfigFileError`]), and the file is left
//! exactly as it was written (never moved aside, never replaced by its `.bak`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::store::Persist;

/// Preferences of the Stats plugin.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct StatsConfig {
    /// Seconds between polls of the session (1..=60, default 2).
    pub update_interval: u64,
    /// Points kept per history series and resolution (10..=10000, default 150).
    pub length: u64,
    /// Most seconds between fsync'd checkpoints while totals change (5..=3600, default 30).
    pub save_interval: u64,
}

impl Default for StatsConfig {
    fn default() -> Self {
        StatsConfig {
            update_interval: 2,
            length: 150,
            save_interval: 30,
        }
    }
}

/// One settable preference of the Stats plugin.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ConfigKey {
    /// `update_interval`: seconds between polls.
    UpdateInterval,
    /// `length`: points kept per history series.
    Length,
    /// `save_interval`: most seconds between fsync'd checkpoints.
    SaveInterval,
}

impl ConfigKey {
    /// Every key, in the order Deluge's preferences page shows them.
    pub const ALL: [ConfigKey; 3] = [
        ConfigKey::UpdateInterval,
        ConfigKey::Length,
        ConfigKey::SaveInterval,
    ];

    /// The key's name in `stats.conf` and `stats.set_config`.
    pub fn as_str(self) -> &'static str {
        match self {
            ConfigKey::UpdateInterval => "update_interval",
            ConfigKey::Length => "length",
            ConfigKey::SaveInterval => "save_interval",
        }
    }

    /// The key named `name`, if it is one.
    pub fn from_name(name: &str) -> Option<ConfigKey> {
        ConfigKey::ALL.into_iter().find(|k| k.as_str() == name)
    }

    /// The values allowed, inclusive.
    pub fn range(self) -> (u64, u64) {
        match self {
            ConfigKey::UpdateInterval => (1, 60),
            ConfigKey::Length => (10, 10_000),
            ConfigKey::SaveInterval => (5, 3600),
        }
    }

    /// What the key means, for messages.
    fn meaning(self) -> &'static str {
        match self {
            ConfigKey::UpdateInterval => "seconds between polls",
            ConfigKey::Length => "points kept per history series",
            ConfigKey::SaveInterval => "most seconds between fsync'd checkpoints",
        }
    }

    /// `value` if it is in the key's range (a value too large for `i64` counts as
    /// `i64::MAX`).
    pub fn check(self, value: i64) -> Result<u64, ConfigError> {
        let (min, max) = self.range();
        if value < min as i64 || value > max as i64 {
            return Err(ConfigError {
                key: self,
                value,
                min,
                max,
            });
        }
        Ok(value as u64)
    }
}

impl std::fmt::Display for ConfigKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A preference value out of its range: names the key and what is allowed. Nothing of the
/// change it came in was applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{key} = {value} is out of range {min}..={max}")]
#[non_exhaustive]
pub struct ConfigError {
    /// The key at fault.
    pub key: ConfigKey,
    /// The value refused.
    pub value: i64,
    /// The smallest value allowed.
    pub min: u64,
    /// The largest value allowed.
    pub max: u64,
}

/// A typed change of preferences: `None` leaves a value as it is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ConfigChange {
    /// New `update_interval` (1..=60 s).
    pub update_interval: Option<u64>,
    /// New `length` (10..=10000 points).
    pub length: Option<u64>,
    /// New `save_interval` (5..=3600 s).
    pub save_interval: Option<u64>,
}

impl ConfigChange {
    /// No change (set fields with the builder methods).
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets `update_interval`.
    pub fn update_interval(self, seconds: u64) -> Self {
        self.with(ConfigKey::UpdateInterval, seconds)
    }

    /// Sets `length`.
    pub fn length(self, points: u64) -> Self {
        self.with(ConfigKey::Length, points)
    }

    /// Sets `save_interval`.
    pub fn save_interval(self, seconds: u64) -> Self {
        self.with(ConfigKey::SaveInterval, seconds)
    }

    /// Sets `key` to `value`.
    pub fn with(mut self, key: ConfigKey, value: u64) -> Self {
        *self.slot(key) = Some(value);
        self
    }

    /// The new value of `key`, if this change sets it.
    pub fn get(&self, key: ConfigKey) -> Option<u64> {
        match key {
            ConfigKey::UpdateInterval => self.update_interval,
            ConfigKey::Length => self.length,
            ConfigKey::SaveInterval => self.save_interval,
        }
    }

    fn slot(&mut self, key: ConfigKey) -> &mut Option<u64> {
        match key {
            ConfigKey::UpdateInterval => &mut self.update_interval,
            ConfigKey::Length => &mut self.length,
            ConfigKey::SaveInterval => &mut self.save_interval,
        }
    }
}

impl StatsConfig {
    fn field(&mut self, key: ConfigKey) -> &mut u64 {
        match key {
            ConfigKey::UpdateInterval => &mut self.update_interval,
            ConfigKey::Length => &mut self.length,
            ConfigKey::SaveInterval => &mut self.save_interval,
        }
    }

    /// The value of `key`.
    pub fn get(&self, key: ConfigKey) -> u64 {
        match key {
            ConfigKey::UpdateInterval => self.update_interval,
            ConfigKey::Length => self.length,
            ConfigKey::SaveInterval => self.save_interval,
        }
    }

    /// A copy with `change` applied, or the first value out of range; all or nothing.
    pub fn with_change(&self, change: ConfigChange) -> Result<StatsConfig, ConfigError> {
        let mut next = self.clone();
        for key in ConfigKey::ALL {
            if let Some(value) = change.get(key) {
                *next.field(key) = key.check(i64::try_from(value).unwrap_or(i64::MAX))?;
            }
        }
        Ok(next)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<StatsConfig, ConfigFileError> {
        parse_file(text, Path::new("/cfg/stats.conf"))
    }

    #[test]
    fn good_files_and_defaults() {
        assert_eq!(parse("").unwrap(), StatsConfig::default());
        let c = parse("# mine\nupdate_interval = 5\nlength = 300\n").unwrap();
        assert_eq!((c.update_interval, c.length, c.save_interval), (5, 300, 30));
    }

    #[test]
    fn a_near_miss_key_gets_a_suggestion() {
        let e = parse("length = 150\nupdate_intervall = 3\n").unwrap_err();
        assert_eq!(e.line, Some(2));
        assert_eq!(e.key.as_deref(), Some("update_intervall"));
        let text = e.to_string();
        assert!(text.starts_with("/cfg/stats.conf line 2: unknown key `update_intervall` (did you mean `update_interval`?)"), "{text}");
        assert!(text.contains("`save_interval` (5..=3600"), "{text}");
        let far = parse("colour = 1\n").unwrap_err().to_string();
        assert!(!far.contains("did you mean"), "{far}");
        assert_eq!(suggest("Save-Interval"), Some("save_interval"));
    }

    #[test]
    fn wrong_types_and_values_name_line_and_key() {
        let e = parse("update_interval = 2\n\nlength = \"long\"\n").unwrap_err();
        assert_eq!((e.line, e.key.as_deref()), (Some(3), Some("length")));
        assert!(
            e.message
                .contains("must be a whole number from 10 to 10000"),
            "{e}"
        );
        assert!(e.message.contains("not a string"), "{e}");
        let e = parse("save_interval = 2.5\n").unwrap_err();
        assert!(e.message.contains("not a decimal number"), "{e}");
        let e = parse("update_interval = 0\n").unwrap_err();
        assert_eq!(e.line, Some(1));
        assert!(
            e.to_string()
                .contains("`update_interval` = 0 is out of range: allowed 1..=60"),
            "{e}"
        );
        let e = parse("length = 150\nupdate_interval = = 2\n").unwrap_err();
        assert_eq!(e.line, Some(2), "{e}");
        assert!(e.message.starts_with("not valid TOML"), "{e}");
    }
}

impl Persist for StatsConfig {
    const SEALED: bool = false;

    fn validate(&self) -> Result<(), String> {
        for key in ConfigKey::ALL {
            let value = i64::try_from(self.get(key)).unwrap_or(i64::MAX);
            key.check(value).map_err(|e| e.to_string())?;
        }
        Ok(())
    }
}

/// A hand-edited `stats.conf` that cannot be used, and why: it names the file, the line
/// and the key, and says what is allowed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}{}: {message}", path.display(), line.map(|l| format!(" line {l}")).unwrap_or_default())]
#[non_exhaustive]
pub struct ConfigFileError {
    /// The file.
    pub path: PathBuf,
    /// The 1-based line at fault, when there is one.
    pub line: Option<usize>,
    /// The key at fault, when there is one.
    pub key: Option<String>,
    /// What is wrong and what is allowed.
    pub message: String,
}

/// Every settable key with its range and meaning: `update_interval` (1..=60, seconds
/// between polls), ...
fn allowed() -> String {
    ConfigKey::ALL
        .iter()
        .map(|k| {
            let (lo, hi) = k.range();
            format!("`{k}` ({lo}..={hi}, {})", k.meaning())
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Levenshtein distance (keys are short).
fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != *cb)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}

/// The known key closest to `key`, if it is a near miss (edit distance ≤ 2, ignoring case).
pub fn suggest(key: &str) -> Option<&'static str> {
    let lower = key.to_ascii_lowercase();
    ConfigKey::ALL
        .iter()
        .map(|k| (distance(&lower, k.as_str()), k.as_str()))
        .filter(|(d, _)| *d <= 2)
        .min()
        .map(|(_, k)| k)
}

fn toml_kind(value: &toml::Value) -> &'static str {
    match value {
        toml::Value::String(_) => "a string",
        toml::Value::Integer(_) => "an integer",
        toml::Value::Float(_) => "a decimal number",
        toml::Value::Boolean(_) => "a boolean",
        toml::Value::Datetime(_) => "a date",
        toml::Value::Array(_) => "an array",
        toml::Value::Table(_) => "a table",
    }
}

/// Parses the text of a hand-edited `stats.conf` (at `path`, for messages): every key
/// must be known, an integer and in range; a missing key takes its default.
pub fn parse_file(text: &str, path: &Path) -> Result<StatsConfig, ConfigFileError> {
    let error = |line, key: Option<&str>, message: String| ConfigFileError {
        path: path.to_path_buf(),
        line,
        key: key.map(String::from),
        message,
    };
    let table: BTreeMap<String, toml::Spanned<toml::Value>> =
        toml::from_str(text).map_err(|e| {
            let line = e.span().map(|s| crate::store::line_col(text, s.start).0);
            error(
                line,
                None,
                format!("not valid TOML: {}", e.message().trim().replace('\n', "; ")),
            )
        })?;
    let mut config = StatsConfig::default();
    for (key, value) in &table {
        let line = Some(crate::store::line_col(text, value.span().start).0);
        let Some(config_key) = ConfigKey::from_name(key) else {
            let hint = suggest(key)
                .map(|k| format!(" (did you mean `{k}`?)"))
                .unwrap_or_default();
            return Err(error(
                line,
                Some(key),
                format!("unknown key `{key}`{hint}; the keys are {}", allowed()),
            ));
        };
        let (lo, hi) = config_key.range();
        let what = config_key.meaning();
        let n = match value.get_ref() {
            toml::Value::Integer(n) => *n,
            other => {
                return Err(error(
                    line,
                    Some(key),
                    format!(
                        "`{key}` must be a whole number from {lo} to {hi} ({what}), not {} \
                         (write e.g. `{key} = {}`)",
                        toml_kind(other),
                        StatsConfig::default().get(config_key)
                    ),
                ))
            }
        };
        if n < lo as i64 || n > hi as i64 {
            return Err(error(
                line,
                Some(key),
                format!("`{key}` = {n} is out of range: allowed {lo}..={hi} ({what})"),
            ));
        }
        *config.field(config_key) = n as u64;
    }
    Ok(config)
}

/// Reads a hand-edited `stats.conf` without changing it: `Ok(None)` if it does not exist.
pub fn read_file(path: &Path) -> Result<Option<StatsConfig>, ConfigFileError> {
    let error = |message: String| ConfigFileError {
        path: path.to_path_buf(),
        line: None,
        key: None,
        message,
    };
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(error(format!("cannot be read: {e}"))),
    };
    let text = String::from_utf8(bytes).map_err(|e| error(format!("is not UTF-8 text: {e}")))?;
    parse_file(&text, path).map(Some)
}
