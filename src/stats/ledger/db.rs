//! The ledger's SQLite file: schema, writes (one transaction per save), reads, the
//! reconciliation with the totals file at start, retention, purge and backup.
//!
//! Invariant, per source: the sum of its daily buckets equals the totals it accounts for
//! (`sources`) minus the sum of its `adjustments` (what it held before the ledger began,
//! later imports, resets). Source `*` is the combined series: every write to a source's
//! buckets adds the same bytes to it.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use jiff::tz::TimeZone;
use rusqlite::{params, Connection, OpenFlags, OptionalExtension, Transaction};
use serde::Serialize;

use super::calendar::{self, Bucket, Period};
use crate::stats::totals::Counters;

/// The ledger's file name in the config directory.
pub const FILE: &str = "ledger.sqlite3";

/// The schema this build writes and reads (`PRAGMA user_version`).
pub const SCHEMA_VERSION: i64 = 1;

/// `PRAGMA application_id` of a torrent-stats ledger ("TSLG").
const APPLICATION_ID: i64 = 0x5453_4c47;

/// The source name of the combined series.
pub const COMBINED: &str = "*";

const SCHEMA: &str = "
CREATE TABLE meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE buckets (
    source TEXT NOT NULL,
    period TEXT NOT NULL CHECK (period IN ('5min', 'hour', 'day', 'month', 'year')),
    start INTEGER NOT NULL,
    end INTEGER NOT NULL,
    label TEXT NOT NULL,
    total_upload INTEGER NOT NULL DEFAULT 0,
    total_download INTEGER NOT NULL DEFAULT 0,
    total_payload_upload INTEGER NOT NULL DEFAULT 0,
    total_payload_download INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (source, period, start)
) WITHOUT ROWID;
CREATE TABLE sources (
    source TEXT PRIMARY KEY,
    total_upload INTEGER NOT NULL,
    total_download INTEGER NOT NULL,
    total_payload_upload INTEGER NOT NULL,
    total_payload_download INTEGER NOT NULL,
    latest INTEGER NOT NULL,
    imports INTEGER NOT NULL,
    resets INTEGER NOT NULL,
    updated INTEGER NOT NULL
);
CREATE TABLE adjustments (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    source TEXT NOT NULL,
    at INTEGER NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('start', 'import', 'reset', 'lost')),
    total_upload INTEGER NOT NULL,
    total_download INTEGER NOT NULL,
    total_payload_upload INTEGER NOT NULL,
    total_payload_download INTEGER NOT NULL,
    note TEXT NOT NULL
);
CREATE INDEX adjustments_by_source ON adjustments (source, id);
CREATE TABLE quota_state (
    name TEXT PRIMARY KEY,
    state TEXT NOT NULL
);
";

/// What went wrong with the ledger.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LedgerError {
    /// A newer torrent-stats made the file.
    #[error(
        "{path}: ledger schema version {found} is newer than this torrent-stats reads \
         ({supported}); run the newer version, or move the file away to start a new ledger"
    )]
    TooNew {
        /// The file.
        path: PathBuf,
        /// Its schema version.
        found: i64,
        /// The version this build reads.
        supported: i64,
    },
    /// Another program's SQLite file.
    #[error("{path} is not a torrent-stats ledger (application id {found:#x}); move it away")]
    Foreign {
        /// The file.
        path: PathBuf,
        /// Its application id.
        found: i64,
    },
    /// SQLite failed.
    #[error("ledger {path}: {source}")]
    Sqlite {
        /// The file.
        path: PathBuf,
        /// SQLite's error.
        source: rusqlite::Error,
    },
}

/// How long the ledger keeps its finer buckets (days, months and years are kept forever).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// Hours of 5-minute buckets kept (default 48).
    pub five_min_hours: u32,
    /// Days of hourly buckets kept (default 400).
    pub hour_days: u32,
}

impl Default for Retention {
    fn default() -> Self {
        Retention {
            five_min_hours: 48,
            hour_days: 400,
        }
    }
}

/// One bucket of a calendar answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CalendarRow {
    /// Its size.
    pub period: &'static str,
    /// Its local name (`2026-12-07`, `2026-12`, `2026-10-25T02:00+01:00`).
    pub label: String,
    /// Unix seconds of its start.
    pub start: i64,
    /// Unix seconds of its end.
    pub end: i64,
    /// The bytes counted in it.
    #[serde(flatten)]
    pub totals: Counters,
}

/// Signed amounts of the four counters: an adjustment.
pub type Amount = [i64; 4];

/// One entry of "before the ledger": what a source held when the ledger began, an import,
/// a reset.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Adjustment {
    /// `start`, `import`, `reset`, or `lost` (bytes the totals file lost, after a power
    /// loss, that the buckets could not give back).
    pub kind: &'static str,
    /// Unix seconds.
    pub at: i64,
    /// The counters added to "before the ledger" (negative for a reset).
    pub amount: Amount,
    /// What it was (the import's program and fingerprint).
    pub note: String,
}

/// What a source's ledger state is at the start: its accounting and clamp.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SourceState {
    /// The all-time totals the buckets account for.
    pub accounted: Counters,
    /// The latest instant bytes went in (Unix seconds).
    pub latest: i64,
    /// Imports accounted for.
    pub imports: u64,
    /// Resets accounted for.
    pub resets: u64,
}

/// One save of one source: bucket deltas, the totals they bring the source to, and maybe
/// an adjustment.
#[derive(Debug, Clone, Default)]
pub struct Batch {
    /// The source.
    pub source: String,
    /// Bytes per bucket.
    pub rows: Vec<(Bucket, Counters)>,
    /// The source's state after this batch.
    pub state: SourceState,
    /// Adjustments recorded with it.
    pub adjustments: Vec<Adjustment>,
}

/// The invariant's three sides for one source (tests and `stats.get_status`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct Accounting {
    /// Sum of the daily buckets.
    pub days: [i64; 4],
    /// Sum of the monthly buckets.
    pub months: [i64; 4],
    /// Sum of the yearly buckets.
    pub years: [i64; 4],
    /// The totals accounted for.
    pub accounted: [i64; 4],
    /// Sum of the adjustments ("before the ledger").
    pub before: [i64; 4],
}

impl Accounting {
    /// Whether days, months and years each sum to accounted − before.
    pub fn holds(&self) -> bool {
        let expected: [i64; 4] = std::array::from_fn(|i| self.accounted[i] - self.before[i]);
        self.days == expected && self.months == expected && self.years == expected
    }
}

/// The ledger file, shared by every source's poll task.
#[derive(Debug)]
pub struct Ledger {
    path: PathBuf,
    // The reader first: fields drop in order, and the last connection to close (the
    // writer) checkpoints the log into the file and deletes it.
    reader: Mutex<Connection>,
    pub(super) writer: Mutex<Connection>,
    tz: TimeZone,
    retention: Retention,
}

pub(crate) fn fields(c: &Counters) -> [i64; 4] {
    [
        c.total_upload,
        c.total_download,
        c.total_payload_upload,
        c.total_payload_download,
    ]
    .map(|v| i64::try_from(v).unwrap_or(i64::MAX))
}

pub(super) fn counters(f: [i64; 4]) -> Counters {
    let u = |v: i64| u64::try_from(v).unwrap_or(0);
    Counters {
        total_upload: u(f[0]),
        total_download: u(f[1]),
        total_payload_upload: u(f[2]),
        total_payload_download: u(f[3]),
    }
}

pub(super) fn lock(m: &Mutex<Connection>) -> MutexGuard<'_, Connection> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

const UPSERT: &str = "INSERT INTO buckets (source, period, start, end, label, total_upload, \
    total_download, total_payload_upload, total_payload_download) \
    VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9) \
    ON CONFLICT (source, period, start) DO UPDATE SET \
    total_upload = total_upload + excluded.total_upload, \
    total_download = total_download + excluded.total_download, \
    total_payload_upload = total_payload_upload + excluded.total_payload_upload, \
    total_payload_download = total_payload_download + excluded.total_payload_download";

const SUMS: &str = "SELECT COALESCE(SUM(total_upload), 0), COALESCE(SUM(total_download), 0), \
    COALESCE(SUM(total_payload_upload), 0), COALESCE(SUM(total_payload_download), 0) FROM ";

impl Ledger {
    /// Opens (or creates) the ledger in `dir`, in time zone `tz`.
    pub fn open(dir: &Path, tz: TimeZone, retention: Retention) -> Result<Ledger, LedgerError> {
        let path = dir.join(FILE);
        let err = |source| LedgerError::Sqlite {
            path: path.clone(),
            source,
        };
        let writer = Connection::open(&path).map_err(err)?;
        writer
            .busy_timeout(std::time::Duration::from_secs(10))
            .map_err(err)?;
        let app: i64 = writer
            .pragma_query_value(None, "application_id", |r| r.get(0))
            .map_err(err)?;
        let version: i64 = writer
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .map_err(err)?;
        if app != 0 && app != APPLICATION_ID {
            return Err(LedgerError::Foreign { path, found: app });
        }
        if version > SCHEMA_VERSION {
            return Err(LedgerError::TooNew {
                path,
                found: version,
                supported: SCHEMA_VERSION,
            });
        }
        writer
            .pragma_update(None, "journal_mode", "WAL")
            .map_err(err)?;
        writer
            .pragma_update(None, "synchronous", "NORMAL")
            .map_err(err)?;
        // The log is reused after each automatic checkpoint; this keeps it from staying at
        // its largest size (about 4 MiB) for good.
        writer
            .pragma_update(None, "journal_size_limit", 1_048_576)
            .map_err(err)?;
        if version == 0 {
            let tables: i64 = writer
                .query_row("SELECT COUNT(*) FROM sqlite_master", [], |r| r.get(0))
                .map_err(err)?;
            if tables != 0 && app != APPLICATION_ID {
                return Err(LedgerError::Foreign { path, found: app });
            }
            writer
                .execute_batch(&format!(
                    "BEGIN; {SCHEMA} PRAGMA application_id = {APPLICATION_ID}; \
                     PRAGMA user_version = {SCHEMA_VERSION}; COMMIT;"
                ))
                .map_err(err)?;
            writer
                .execute(
                    "INSERT INTO meta (key, value) VALUES ('created', ?1)",
                    [jiff::Timestamp::now().to_string()],
                )
                .map_err(err)?;
        }
        writer
            .execute(
                "INSERT INTO meta (key, value) VALUES ('time_zone', ?1) \
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                [calendar::zone_name(&tz)],
            )
            .map_err(err)?;
        let reader = Connection::open_with_flags(
            &path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(err)?;
        reader
            .busy_timeout(std::time::Duration::from_secs(10))
            .map_err(err)?;
        Ok(Ledger {
            path,
            reader: Mutex::new(reader),
            writer: Mutex::new(writer),
            tz,
            retention,
        })
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The time zone of its buckets.
    pub fn time_zone(&self) -> &TimeZone {
        &self.tz
    }

    /// How long it keeps its finer buckets.
    pub fn retention(&self) -> Retention {
        self.retention
    }

    pub(super) fn err(&self, source: rusqlite::Error) -> LedgerError {
        LedgerError::Sqlite {
            path: self.path.clone(),
            source,
        }
    }

    /// A source's state, `None` for a source the ledger has not seen.
    pub fn state(&self, source: &str) -> Result<Option<SourceState>, LedgerError> {
        let db = lock(&self.writer);
        db.query_row(
            "SELECT total_upload, total_download, total_payload_upload, \
             total_payload_download, latest, imports, resets FROM sources WHERE source = ?1",
            [source],
            |r| {
                Ok(SourceState {
                    accounted: counters([r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?]),
                    latest: r.get(4)?,
                    imports: r.get::<_, i64>(5)? as u64,
                    resets: r.get::<_, i64>(6)? as u64,
                })
            },
        )
        .optional()
        .map_err(|e| self.err(e))
    }

    /// Writes one batch in one transaction; `durable` syncs it to disk (a checkpoint),
    /// else it survives a killed process but maybe not a power loss.
    pub fn write(&self, batch: &Batch, durable: bool) -> Result<(), LedgerError> {
        let mut db = lock(&self.writer);
        if durable {
            db.pragma_update(None, "synchronous", "FULL")
                .map_err(|e| self.err(e))?;
        }
        let result = (|| {
            let tx = db.transaction()?;
            write_batch(&tx, batch)?;
            if durable {
                // A synced commit must write a page: SQLite neither writes nor syncs the log
                // for a transaction that changed no page (the same totals again), and the
                // unsynced commits before it would stay unsynced.
                tx.execute(
                    "INSERT INTO meta (key, value) VALUES ('checkpoints', 1) \
                     ON CONFLICT (key) DO UPDATE SET value = value + 1",
                    [],
                )?;
            }
            tx.commit()
        })();
        if durable {
            let _ = db.pragma_update(None, "synchronous", "NORMAL");
        }
        result.map_err(|e| self.err(e))
    }

    /// Deletes every row of `source`, its bytes taken out of the combined series.
    pub fn purge(&self, source: &str) -> Result<(), LedgerError> {
        let mut db = lock(&self.writer);
        let run = |db: &mut Connection| -> rusqlite::Result<()> {
            let tx = db.transaction()?;
            tx.execute(
                "UPDATE buckets AS c SET total_upload = c.total_upload - s.total_upload, \
                 total_download = c.total_download - s.total_download, \
                 total_payload_upload = c.total_payload_upload - s.total_payload_upload, \
                 total_payload_download = c.total_payload_download - s.total_payload_download \
                 FROM buckets AS s WHERE c.source = ?1 AND s.source = ?2 \
                 AND c.period = s.period AND c.start = s.start",
                params![COMBINED, source],
            )?;
            tx.execute(
                "DELETE FROM buckets WHERE source = ?1 AND total_upload = 0 AND \
                 total_download = 0 AND total_payload_upload = 0 AND total_payload_download = 0",
                [COMBINED],
            )?;
            for table in ["buckets", "sources", "adjustments"] {
                tx.execute(&format!("DELETE FROM {table} WHERE source = ?1"), [source])?;
            }
            tx.commit()
        };
        run(&mut db).map_err(|e| self.err(e))
    }

    /// Deletes 5-minute and hourly buckets older than the retention allows at `now`.
    pub fn prune(&self, now: i64) -> Result<usize, LedgerError> {
        let db = lock(&self.writer);
        let mut gone = 0;
        for (period, keep) in [
            (
                Period::FiveMin,
                i64::from(self.retention.five_min_hours) * 3600,
            ),
            (Period::Hour, i64::from(self.retention.hour_days) * 86_400),
        ] {
            gone += db
                .execute(
                    "DELETE FROM buckets WHERE source IN (SELECT source FROM sources UNION \
                     SELECT ?1) AND period = ?2 AND end <= ?3",
                    params![COMBINED, period.as_str(), now - keep],
                )
                .map_err(|e| self.err(e))?;
        }
        Ok(gone)
    }

    /// The `period` buckets of `source` (`None`: the combined series) whose start lies in
    /// `[start, end)`, oldest first; buckets without bytes are not kept.
    pub fn calendar(
        &self,
        period: Period,
        source: Option<&str>,
        start: Option<i64>,
        end: Option<i64>,
    ) -> Result<Vec<CalendarRow>, LedgerError> {
        let db = lock(&self.reader);
        let mut stmt = db
            .prepare_cached(
                "SELECT label, start, end, total_upload, total_download, total_payload_upload, \
                 total_payload_download FROM buckets WHERE source = ?1 AND period = ?2 \
                 AND start >= ?3 AND start < ?4 ORDER BY start",
            )
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map(
                params![
                    source.unwrap_or(COMBINED),
                    period.as_str(),
                    start.unwrap_or(i64::MIN),
                    end.unwrap_or(i64::MAX)
                ],
                |r| {
                    Ok(CalendarRow {
                        period: period.as_str(),
                        label: r.get(0)?,
                        start: r.get(1)?,
                        end: r.get(2)?,
                        totals: counters([r.get(3)?, r.get(4)?, r.get(5)?, r.get(6)?]),
                    })
                },
            )
            .map_err(|e| self.err(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.err(e))
    }

    /// The bytes of `source` (`None`: combined) in `period` buckets starting in
    /// `[start, end)`.
    pub fn sum(
        &self,
        period: Period,
        source: Option<&str>,
        start: i64,
        end: i64,
    ) -> Result<Counters, LedgerError> {
        let db = lock(&self.reader);
        let mut stmt = db
            .prepare_cached(&format!(
                "{SUMS} buckets WHERE source = ?1 AND period = ?2 AND start >= ?3 AND start < ?4"
            ))
            .map_err(|e| self.err(e))?;
        stmt.query_row(
            params![source.unwrap_or(COMBINED), period.as_str(), start, end],
            |r| Ok(counters([r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?])),
        )
        .map_err(|e| self.err(e))
    }

    /// The sources the ledger holds, purged ones excepted.
    pub fn sources(&self) -> Result<Vec<String>, LedgerError> {
        let db = lock(&self.reader);
        let mut stmt = db
            .prepare_cached("SELECT source FROM sources ORDER BY source")
            .map_err(|e| self.err(e))?;
        let rows = stmt.query_map([], |r| r.get(0)).map_err(|e| self.err(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.err(e))
    }

    /// The invariant's sides for `source` (`None`: combined, against every source's).
    pub fn accounting(&self, source: Option<&str>) -> Result<Accounting, LedgerError> {
        let mut guard = lock(&self.reader);
        // One read transaction: the five sums see one state of the file.
        let db = guard.transaction().map_err(|e| self.err(e))?;
        let sums = |sql: &str, arg: &str| -> rusqlite::Result<[i64; 4]> {
            db.query_row(sql, [arg], |r| {
                Ok([r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?])
            })
        };
        let name = source.unwrap_or(COMBINED);
        let filter = if source.is_some() {
            "source = ?1"
        } else {
            "?1 = ?1"
        };
        let run = || -> rusqlite::Result<Accounting> {
            let period = |p: Period| {
                sums(
                    &format!("{SUMS} buckets WHERE source = ?1 AND period = '{p}'"),
                    name,
                )
            };
            Ok(Accounting {
                days: period(Period::Day)?,
                months: period(Period::Month)?,
                years: period(Period::Year)?,
                accounted: sums(&format!("{SUMS} sources WHERE {filter}"), name)?,
                before: sums(&format!("{SUMS} adjustments WHERE {filter}"), name)?,
            })
        };
        run().map_err(|e| self.err(e))
    }

    /// "Before the ledger" of `source`: its adjustments, oldest first.
    pub fn adjustments(&self, source: &str) -> Result<Vec<Adjustment>, LedgerError> {
        let db = lock(&self.reader);
        let mut stmt = db
            .prepare(
                "SELECT kind, at, total_upload, total_download, total_payload_upload, \
                 total_payload_download, note FROM adjustments WHERE source = ?1 ORDER BY id",
            )
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map([source], |r| {
                let kind: String = r.get(0)?;
                Ok(Adjustment {
                    kind: match kind.as_str() {
                        "start" => "start",
                        "import" => "import",
                        "reset" => "reset",
                        _ => "lost",
                    },
                    at: r.get(1)?,
                    amount: [r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?],
                    note: r.get(6)?,
                })
            })
            .map_err(|e| self.err(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.err(e))
    }

    /// A quota's saved state (JSON), if any.
    pub fn quota_state(&self, name: &str) -> Result<Option<String>, LedgerError> {
        let db = lock(&self.writer);
        db.query_row(
            "SELECT state FROM quota_state WHERE name = ?1",
            [name],
            |r| r.get(0),
        )
        .optional()
        .map_err(|e| self.err(e))
    }

    /// Every quota's saved state (name, JSON), also of quotas no longer configured.
    pub fn quota_states(&self) -> Result<Vec<(String, String)>, LedgerError> {
        let db = lock(&self.writer);
        let mut stmt = db
            .prepare("SELECT name, state FROM quota_state ORDER BY name")
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .map_err(|e| self.err(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.err(e))
    }

    /// Forgets a quota's state (a quota removed).
    pub fn delete_quota_state(&self, name: &str) -> Result<(), LedgerError> {
        let db = lock(&self.writer);
        db.execute("DELETE FROM quota_state WHERE name = ?1", [name])
            .map(drop)
            .map_err(|e| self.err(e))
    }

    /// Saves a quota's state (JSON).
    pub fn set_quota_state(&self, name: &str, state: &str) -> Result<(), LedgerError> {
        let db = lock(&self.writer);
        db.execute(
            "INSERT INTO quota_state (name, state) VALUES (?1, ?2) \
             ON CONFLICT (name) DO UPDATE SET state = excluded.state",
            [name, state],
        )
        .map(drop)
        .map_err(|e| self.err(e))
    }
}

pub(super) fn write_batch(tx: &Transaction<'_>, batch: &Batch) -> rusqlite::Result<()> {
    {
        let mut upsert = tx.prepare_cached(UPSERT)?;
        for (bucket, bytes) in &batch.rows {
            let f = fields(bytes);
            for source in [batch.source.as_str(), COMBINED] {
                upsert.execute(params![
                    source,
                    bucket.period.as_str(),
                    bucket.start,
                    bucket.end,
                    bucket.label,
                    f[0],
                    f[1],
                    f[2],
                    f[3]
                ])?;
            }
        }
    }
    let s = &batch.state;
    let a = fields(&s.accounted);
    tx.prepare_cached(
        "INSERT INTO sources (source, total_upload, total_download, total_payload_upload, \
         total_payload_download, latest, imports, resets, updated) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, unixepoch()) \
         ON CONFLICT (source) DO UPDATE SET total_upload = excluded.total_upload, \
         total_download = excluded.total_download, \
         total_payload_upload = excluded.total_payload_upload, \
         total_payload_download = excluded.total_payload_download, latest = excluded.latest, \
         imports = excluded.imports, resets = excluded.resets, updated = excluded.updated",
    )?
    .execute(params![
        batch.source,
        a[0],
        a[1],
        a[2],
        a[3],
        s.latest,
        s.imports as i64,
        s.resets as i64
    ])?;
    for adj in &batch.adjustments {
        tx.prepare_cached(
            "INSERT INTO adjustments (source, at, kind, total_upload, total_download, \
             total_payload_upload, total_payload_download, note) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        )?
        .execute(params![
            batch.source,
            adj.at,
            adj.kind,
            adj.amount[0],
            adj.amount[1],
            adj.amount[2],
            adj.amount[3],
            adj.note
        ])?;
    }
    Ok(())
}

/// Subtracts `amount` from the latest buckets of `source` and of the combined series, in
/// each period, walking back from the newest; answers what the daily buckets could not
/// give back.
pub(super) fn take_back(
    tx: &Transaction<'_>,
    source: &str,
    amount: Counters,
) -> rusqlite::Result<Counters> {
    const COLUMNS: [&str; 4] = [
        "total_upload",
        "total_download",
        "total_payload_upload",
        "total_payload_download",
    ];
    let amount = fields(&amount);
    let mut unmet = [0i64; 4];
    for period in Period::ALL {
        for (i, column) in COLUMNS.iter().enumerate() {
            let mut left = amount[i];
            let rows: Vec<(i64, i64)> = tx
                .prepare(&format!(
                    "SELECT start, {column} FROM buckets WHERE source = ?1 AND period = ?2 \
                     AND {column} > 0 ORDER BY start DESC"
                ))?
                .query_map(params![source, period.as_str()], |r| {
                    Ok((r.get(0)?, r.get(1)?))
                })?
                .collect::<Result<_, _>>()?;
            for (start, value) in rows {
                if left == 0 {
                    break;
                }
                let take = value.min(left);
                left -= take;
                for s in [source, COMBINED] {
                    tx.execute(
                        &format!(
                            "UPDATE buckets SET {column} = {column} - ?1 WHERE source = ?2 \
                             AND period = ?3 AND start = ?4"
                        ),
                        params![take, s, period.as_str(), start],
                    )?;
                }
            }
            if period == Period::Day {
                unmet[i] = left;
            }
        }
    }
    Ok(counters(unmet))
}
