//! `torrent-stats source list|add|remove|purge`: the daemon's sources, at run time.
//!
//! `add` takes the spec as an argument or, left out, as one line on stdin, so a password
//! need not appear in the process list or the shell's history.

use std::io::BufRead;

use anyhow::{bail, Context};
use serde_json::{json, Value};
use torrent_stats::units::format_bytes;
use torrent_stats::{Counters, SourceName};

use crate::rpc_args::{self, RpcArgs};

/// `torrent-stats source`.
#[derive(clap::Subcommand)]
pub enum Command {
    /// List every source: name, kind, state, what it measures, totals, description.
    List(ListArgs),
    /// Add a source (or resume a retired one with its totals); needs an ADMIN account.
    Add(AddArgs),
    /// Retire a source: no longer polled, its totals still counted (ADMIN).
    Remove(NameArgs),
    /// Delete a retired source's files: its totals no longer count (ADMIN, --yes).
    Purge(PurgeArgs),
}

/// Options of `torrent-stats source list`.
#[derive(clap::Args)]
pub struct ListArgs {
    #[command(flatten)]
    rpc: RpcArgs,
}

/// Options of `torrent-stats source add`.
#[derive(clap::Args)]
pub struct AddArgs {
    /// Its name: 1 to 32 of a-z, 0-9, '_' and '-' (the metrics label, the key in every
    /// API).
    name: String,
    /// Its spec (`transmission://USER:PASS@HOST:PORT`, `qbittorrent://…`, `rqbit://…`,
    /// `deluge://…`, `sim:…`); left out, one line is read from stdin.
    spec: Option<String>,
    #[command(flatten)]
    rpc: RpcArgs,
}

/// Options of `torrent-stats source remove`.
#[derive(clap::Args)]
pub struct NameArgs {
    /// The source's name.
    name: String,
    #[command(flatten)]
    rpc: RpcArgs,
}

/// Options of `torrent-stats source purge`.
#[derive(clap::Args)]
pub struct PurgeArgs {
    /// The retired source's name.
    name: String,
    /// Really delete its files (without --yes nothing happens).
    #[arg(long)]
    yes: bool,
    #[command(flatten)]
    rpc: RpcArgs,
}

pub fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::List(args) => rpc_args::block_on(list(args.rpc)),
        Command::Add(args) => {
            SourceName::new(&args.name)?;
            let spec = match args.spec {
                Some(spec) => spec,
                None => read_spec()?,
            };
            rpc_args::block_on(add(args.name, spec, args.rpc))
        }
        Command::Remove(args) => {
            SourceName::new(&args.name)?;
            rpc_args::block_on(remove(args.name, args.rpc))
        }
        Command::Purge(args) => {
            SourceName::new(&args.name)?;
            if !args.yes {
                bail!(
                    "purge deletes source {}'s files and its totals leave the combined \
                     figures; nothing was changed. Run `torrent-stats source purge {} --yes` \
                     to do it",
                    args.name,
                    args.name
                );
            }
            rpc_args::block_on(purge(args.name, args.rpc))
        }
    }
}

/// One line from stdin, the spec.
fn read_spec() -> anyhow::Result<String> {
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .context("reading the spec from stdin")?;
    let spec = line.trim().to_string();
    if spec.is_empty() {
        bail!("no spec: give it after the name, or as one line on stdin");
    }
    Ok(spec)
}

/// The `stats.get_sources` rows.
#[derive(serde::Deserialize)]
pub struct Row {
    /// Name.
    pub name: String,
    /// Kind.
    pub kind: String,
    /// Description.
    pub description: String,
    /// Retired.
    pub retired: bool,
    /// All-time totals.
    pub totals: Counters,
    /// Health.
    pub health: Health,
    /// Rates of its last poll.
    #[serde(default)]
    pub rates: Rates,
}

/// The rates of a source's last poll.
#[derive(serde::Deserialize, Default)]
#[serde(default)]
pub struct Rates {
    /// Bytes/s sent (payload for a payload-only source).
    pub upload_rate: u64,
    /// Bytes/s received.
    pub download_rate: u64,
}

/// The part of a source's health the CLI shows.
#[derive(serde::Deserialize)]
pub struct Health {
    /// Answering.
    pub source_up: bool,
    /// The counters it measures.
    pub measured: Vec<String>,
    /// Why the last poll failed.
    pub last_error: Option<String>,
}

impl Row {
    /// `up`, `down` or `retired`.
    pub fn state(&self) -> &'static str {
        match (self.retired, self.health.source_up) {
            (true, _) => "retired",
            (false, true) => "up",
            (false, false) => "down",
        }
    }

    /// Its all-time (upload, download): wire bytes, or payload for a payload-only source.
    pub fn up_down(&self) -> (u64, u64) {
        if self.measures() == "wire" {
            (self.totals.total_upload, self.totals.total_download)
        } else {
            (
                self.totals.total_payload_upload,
                self.totals.total_payload_download,
            )
        }
    }

    /// `wire` or `payload`, or `?` before the first answer.
    pub fn measures(&self) -> &'static str {
        if self.health.measured.iter().any(|m| m == "total_upload") {
            "wire"
        } else if self.health.measured.is_empty() {
            "?"
        } else {
            "payload"
        }
    }
}

/// Reads `stats.get_sources`.
pub async fn fetch(conn: &mut rpc_args::Conn) -> anyhow::Result<(Value, Vec<Row>)> {
    let raw = conn.call("stats.get_sources", vec![]).await?;
    let rows = serde_json::from_value(raw.clone())
        .map_err(|e| anyhow::anyhow!("stats.get_sources returned an unexpected shape: {e}"))?;
    Ok((raw, rows))
}

/// Prints one line per source.
pub fn print_rows(rows: &[Row]) {
    println!(
        "{:<16} {:<12} {:<8} {:<8} {:>10} {:>10}  description",
        "name", "kind", "state", "measures", "uploaded", "downloaded"
    );
    for r in rows {
        let (up, down) = if r.measures() == "wire" {
            (r.totals.total_upload, r.totals.total_download)
        } else {
            (
                r.totals.total_payload_upload,
                r.totals.total_payload_download,
            )
        };
        println!(
            "{:<16} {:<12} {:<8} {:<8} {:>10} {:>10}  {}",
            r.name,
            r.kind,
            r.state(),
            r.measures(),
            format_bytes(up),
            format_bytes(down),
            r.description
        );
        if let (false, Some(e)) = (r.retired, &r.health.last_error) {
            println!("{:<16} last error: {e}", "");
        }
    }
}

async fn list(rpc: RpcArgs) -> anyhow::Result<()> {
    let mut conn = rpc.connect().await?;
    let (raw, rows) = fetch(&mut conn).await?;
    if rpc.json {
        println!("{}", serde_json::to_string_pretty(&raw)?);
        return Ok(());
    }
    print_rows(&rows);
    Ok(())
}

async fn add(name: String, spec: String, rpc: RpcArgs) -> anyhow::Result<()> {
    let mut conn = rpc.connect().await?;
    let added = conn
        .call("stats.add_source", vec![json!(name), json!(spec)])
        .await?;
    if rpc.json {
        println!("{}", serde_json::to_string_pretty(&added)?);
        return Ok(());
    }
    println!("source {name} added; it is in the daemon's sources file");
    let health = &added["health"];
    if health["source_up"] == json!(true) {
        println!(
            "it answers: {}",
            added["description"].as_str().unwrap_or("")
        );
    } else if let Some(e) = health["last_error"].as_str() {
        eprintln!(
            "warning: its first poll failed: {e}\nit is polled again every interval; \
             `torrent-stats source list` shows how it does"
        );
    }
    Ok(())
}

async fn remove(name: String, rpc: RpcArgs) -> anyhow::Result<()> {
    let mut conn = rpc.connect().await?;
    let totals = conn.call("stats.remove_source", vec![json!(name)]).await?;
    let totals = rpc_args::counters("stats.remove_source", totals)?;
    if rpc.json {
        println!(
            "{}",
            json!({"name": name, "retired": true, "totals": totals})
        );
    } else {
        println!(
            "source {name} retired: no longer polled; its totals ({} up, {} down) still \
             count. `torrent-stats source add {name} SPEC` resumes it",
            format_bytes(totals.total_upload.max(totals.total_payload_upload)),
            format_bytes(totals.total_download.max(totals.total_payload_download))
        );
    }
    Ok(())
}

async fn purge(name: String, rpc: RpcArgs) -> anyhow::Result<()> {
    let mut conn = rpc.connect().await?;
    let totals = conn.call("stats.purge_source", vec![json!(name)]).await?;
    let totals = rpc_args::counters("stats.purge_source", totals)?;
    if rpc.json {
        println!(
            "{}",
            json!({"name": name, "purged": true, "totals": totals})
        );
    } else {
        println!("source {name} purged: its files are deleted; its totals no longer count");
    }
    Ok(())
}
