//! Why a quota cannot be used: each message names the quota and the field, and says what
//! is allowed.

use crate::units::ParseBytesError;
use crate::SourceNameError;

/// A quota that cannot be used, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum QuotaError {
    /// The name is empty, longer than 64 characters or holds a control character.
    #[error(
        "quota {quota:?}: a name is 1 to 64 characters with no control characters \
         (it has {chars})"
    )]
    Name {
        /// The quota's name as given.
        quota: String,
        /// How many characters it has.
        chars: usize,
    },
    /// Two quotas of one file have the same name.
    #[error("quota {quota:?}: the name is used by more than one quota; names must be unique")]
    Duplicate {
        /// The name used twice.
        quota: String,
    },
    /// `source` is not a source name.
    #[error("quota {quota:?}: source: {error}")]
    Source {
        /// The quota's name.
        quota: String,
        /// Why the name was refused.
        error: SourceNameError,
    },
    /// A number outside its range.
    #[error("quota {quota:?}: {field} {value} is out of range {range}")]
    OutOfRange {
        /// The quota's name.
        quota: String,
        /// The field (`reset_day`, `days`, `limit`, `thresholds`, ...).
        field: &'static str,
        /// The value given.
        value: u64,
        /// What is allowed, as text (`1..=31`).
        range: &'static str,
    },
    /// A byte amount that does not parse.
    #[error("quota {quota:?}: {field}: {error} (an integer of bytes, or a text like \"1 TiB\")")]
    Bytes {
        /// The quota's name.
        quota: String,
        /// The field (`limit`, `upload_limit`, `download_limit`).
        field: &'static str,
        /// Why the text was refused.
        error: ParseBytesError,
    },
    /// The thresholds are not strictly increasing.
    #[error("quota {quota:?}: thresholds must be strictly increasing ({previous} then {next})")]
    Thresholds {
        /// The quota's name.
        quota: String,
        /// The earlier threshold.
        previous: u16,
        /// The one after it, not greater.
        next: u16,
    },
    /// A field given that only another choice of a field takes.
    #[error("quota {quota:?}: {field} is only allowed with {needs}")]
    Misplaced {
        /// The quota's name.
        quota: String,
        /// The field given.
        field: &'static str,
        /// The setting it belongs with (`period = "month"`).
        needs: &'static str,
    },
    /// A field that a choice requires is absent.
    #[error("quota {quota:?}: {choice} needs {field}")]
    Missing {
        /// The quota's name.
        quota: String,
        /// The choice made (`period = "rolling"`).
        choice: &'static str,
        /// What it needs (`days (1..=400)`).
        field: &'static str,
    },
    /// `command` is empty or holds a control character.
    #[error("quota {quota:?}: command must be a non-empty path with no control characters")]
    Command {
        /// The quota's name.
        quota: String,
    },
}
