//! The calendar ledger of a daemon's config dir (`ledger.sqlite3`), read from the tests
//! through the library as the daemon opens it: its `ledger.toml`'s time zone and
//! retention. Reading while the daemon runs is fine (WAL); the reads of one answer are
//! repeated until two agree, since the daemon may commit between them.

use std::path::Path;

use anyhow::{anyhow, bail, Result};
use torrent_stats::ledger::{Accounting, Ledger, LedgerSettings, FILE};

/// Opens the ledger of config dir `cfg`, `None` if the daemon has not created it yet.
pub fn open(cfg: &Path) -> Result<Option<Ledger>> {
    if !cfg.join(FILE).exists() {
        return Ok(None);
    }
    let settings = LedgerSettings::read(cfg).map_err(|e| anyhow!(e))?;
    let zone = settings.zone()?;
    Ok(Some(Ledger::open(cfg, zone, settings.retention())?))
}

/// Source `name`'s accounting (its daily, monthly and yearly sums, the totals it accounts
/// for and its adjustments) as one committed state of the file: read until two reads in a
/// row agree.
pub fn accounting(ledger: &Ledger, name: &str) -> Result<Accounting> {
    let mut last = ledger.accounting(Some(name))?;
    for _ in 0..50 {
        let now = ledger.accounting(Some(name))?;
        if now == last {
            return Ok(now);
        }
        last = now;
    }
    bail!("the ledger changed under 50 reads in a row: {last:?}")
}
