//! A quota as written in `quotas.toml` (`[[quota]]` tables) and in JSON: flat, the
//! period's and the action's fields beside the others, byte amounts as an integer or a
//! text like `"1 TiB"`. Reading checks it ([`Quota::validate`]); writing gives the same
//! form, byte amounts as integers.

use std::fmt;

use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::{Direction, Measure, Quota, QuotaAction, QuotaError, QuotaPeriod, DEFAULT_THRESHOLDS};
use crate::units::parse_bytes;
use crate::SourceName;

/// The kinds of [`QuotaPeriod`], as `period` names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
enum PeriodKind {
    Day,
    Week,
    Month,
    Rolling,
}

/// The kinds of [`QuotaAction`], as `action` names them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
enum ActionKind {
    #[default]
    None,
    Pause,
    Limit,
}

/// A byte amount as given: an integer, or a text for [`parse_bytes`].
#[derive(Debug, Clone, PartialEq, Eq)]
enum Bytes {
    Count(u64),
    Text(String),
}

/// The flat form of a [`Quota`].
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct QuotaForm {
    name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    source: Option<String>,
    #[serde(default)]
    direction: Direction,
    #[serde(default)]
    measure: Measure,
    period: PeriodKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    reset_day: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    days: Option<u64>,
    limit: Bytes,
    #[serde(default = "default_thresholds")]
    thresholds: Vec<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    command: Option<String>,
    #[serde(default, skip_serializing_if = "is_none_action")]
    action: ActionKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    upload_limit: Option<Bytes>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    download_limit: Option<Bytes>,
}

fn default_thresholds() -> Vec<u64> {
    DEFAULT_THRESHOLDS.iter().map(|&t| u64::from(t)).collect()
}

fn is_none_action(a: &ActionKind) -> bool {
    *a == ActionKind::None
}

impl TryFrom<QuotaForm> for Quota {
    type Error = QuotaError;

    fn try_from(f: QuotaForm) -> Result<Quota, QuotaError> {
        let name = f.name;
        let quota = || name.clone();
        let misplaced = |field, needs| QuotaError::Misplaced {
            quota: quota(),
            field,
            needs,
        };
        let out_of_range = |field, value, range| QuotaError::OutOfRange {
            quota: quota(),
            field,
            value,
            range,
        };
        let bytes = |field, b: Bytes| match b {
            Bytes::Count(n) => Ok(n),
            Bytes::Text(t) => parse_bytes(&t).map_err(|error| QuotaError::Bytes {
                quota: quota(),
                field,
                error,
            }),
        };

        if f.reset_day.is_some() && f.period != PeriodKind::Month {
            return Err(misplaced("reset_day", "period = \"month\""));
        }
        if f.days.is_some() && f.period != PeriodKind::Rolling {
            return Err(misplaced("days", "period = \"rolling\""));
        }
        let period = match f.period {
            PeriodKind::Day => QuotaPeriod::Day,
            PeriodKind::Week => QuotaPeriod::Week,
            PeriodKind::Month => {
                let d = f.reset_day.unwrap_or(1);
                QuotaPeriod::Month {
                    reset_day: u8::try_from(d)
                        .map_err(|_| out_of_range("reset_day", d, "1..=31"))?,
                }
            }
            PeriodKind::Rolling => {
                let d = f.days.ok_or_else(|| QuotaError::Missing {
                    quota: quota(),
                    choice: "period = \"rolling\"",
                    field: "days (1..=400)",
                })?;
                QuotaPeriod::Rolling {
                    days: u16::try_from(d).map_err(|_| out_of_range("days", d, "1..=400"))?,
                }
            }
        };
        let action = action_of(&name, f.action, f.upload_limit, f.download_limit)?;
        let source = f
            .source
            .map(|s| SourceName::new(&s))
            .transpose()
            .map_err(|error| QuotaError::Source {
                quota: quota(),
                error,
            })?;
        let thresholds = f
            .thresholds
            .iter()
            .map(|&t| {
                u16::try_from(t).map_err(|_| out_of_range("thresholds", t, "1..=1000 (percent)"))
            })
            .collect::<Result<_, _>>()?;
        let q = Quota {
            limit: bytes("limit", f.limit)?,
            name,
            source,
            direction: f.direction,
            measure: f.measure,
            period,
            thresholds,
            command: f.command,
            action,
        };
        q.validate()?;
        Ok(q)
    }
}

/// A quota's action from its form: the rate limits only with `action = "limit"`.
fn action_of(
    name: &str,
    kind: ActionKind,
    upload_limit: Option<Bytes>,
    download_limit: Option<Bytes>,
) -> Result<QuotaAction, QuotaError> {
    let misplaced = |field, needs| QuotaError::Misplaced {
        quota: name.to_string(),
        field,
        needs,
    };
    let bytes = |field, b: Bytes| match b {
        Bytes::Count(n) => Ok(n),
        Bytes::Text(t) => parse_bytes(&t).map_err(|error| QuotaError::Bytes {
            quota: name.to_string(),
            field,
            error,
        }),
    };
    if kind != ActionKind::Limit {
        if upload_limit.is_some() {
            return Err(misplaced("upload_limit", "action = \"limit\""));
        }
        if download_limit.is_some() {
            return Err(misplaced("download_limit", "action = \"limit\""));
        }
    }
    Ok(match kind {
        ActionKind::None => QuotaAction::None,
        ActionKind::Pause => QuotaAction::Pause,
        ActionKind::Limit => QuotaAction::Limit {
            upload: upload_limit.map(|b| bytes("upload_limit", b)).transpose()?,
            download: download_limit
                .map(|b| bytes("download_limit", b))
                .transpose()?,
        },
    })
}

impl From<Quota> for QuotaForm {
    fn from(q: Quota) -> QuotaForm {
        let (period, reset_day, days) = match q.period {
            QuotaPeriod::Day => (PeriodKind::Day, None, None),
            QuotaPeriod::Week => (PeriodKind::Week, None, None),
            QuotaPeriod::Month { reset_day } => (PeriodKind::Month, Some(reset_day.into()), None),
            QuotaPeriod::Rolling { days } => (PeriodKind::Rolling, None, Some(days.into())),
        };
        let (action, upload_limit, download_limit) = match q.action {
            QuotaAction::None => (ActionKind::None, None, None),
            QuotaAction::Pause => (ActionKind::Pause, None, None),
            QuotaAction::Limit { upload, download } => (
                ActionKind::Limit,
                upload.map(Bytes::Count),
                download.map(Bytes::Count),
            ),
        };
        QuotaForm {
            name: q.name,
            source: q.source.map(String::from),
            direction: q.direction,
            measure: q.measure,
            period,
            reset_day,
            days,
            limit: Bytes::Count(q.limit),
            thresholds: q.thresholds.into_iter().map(u64::from).collect(),
            command: q.command,
            action,
            upload_limit,
            download_limit,
        }
    }
}

impl Serialize for Bytes {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Bytes::Count(n) => s.serialize_u64(*n),
            Bytes::Text(t) => s.serialize_str(t),
        }
    }
}

impl<'de> Deserialize<'de> for Bytes {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Bytes, D::Error> {
        d.deserialize_any(BytesVisitor)
    }
}

/// Reads a [`Bytes`] from an integer or a string.
struct BytesVisitor;

impl Visitor<'_> for BytesVisitor {
    type Value = Bytes;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a whole number of bytes, or a text like \"1 TiB\" or \"500 GB\"")
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Bytes, E> {
        Ok(Bytes::Count(v))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Bytes, E> {
        u64::try_from(v)
            .map(Bytes::Count)
            .map_err(|_| E::invalid_value(de::Unexpected::Signed(v), &self))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Bytes, E> {
        Ok(Bytes::Text(v.to_string()))
    }
}
