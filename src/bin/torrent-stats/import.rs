//! `torrent-stats import deluge|transmission PATH`: add another client's all-time totals.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use serde_json::{json, Map, Value};
use torrent_stats::stats::totals::MAX_TOTAL;
use torrent_stats::stats::Counters;

use crate::rpc_args::{self, RpcArgs};

/// `torrent-stats import`.
#[derive(clap::Subcommand)]
pub enum Command {
    /// Add the totals of Deluge's Stats plugin (its `stats.totals`, e.g.
    /// ~/.config/deluge/stats.totals) to the all-time totals (needs an ADMIN account).
    ///
    /// All four counters are imported: total_upload, total_download, total_payload_upload
    /// and total_payload_download. The same file can be imported only once.
    Deluge(FileArgs),
    /// Add Transmission's cumulative totals (its `stats.json`, e.g.
    /// ~/.config/transmission-daemon/stats.json) to the all-time totals (needs an ADMIN
    /// account).
    ///
    /// Transmission counts payload only: its uploaded-bytes and downloaded-bytes are added
    /// to both the total and the payload counters. The same file can be imported only once.
    Transmission(FileArgs),
}

/// Options of `torrent-stats import deluge|transmission`.
#[derive(clap::Args)]
pub struct FileArgs {
    /// The file to import.
    path: PathBuf,
    #[command(flatten)]
    rpc: RpcArgs,
}

/// Largest file read: both formats are a few hundred bytes.
const MAX_FILE: u64 = 16 << 20;

/// 64-bit FNV-1a.
fn fnv1a64(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// `"<source>:<16 hex digits>"`: identifies the file's exact content.
fn fingerprint(source: &str, bytes: &[u8]) -> String {
    format!("{source}:{:016x}", fnv1a64(bytes))
}

/// A byte count at `key` of `obj`: present, an integer, not negative, not too large.
fn count(obj: &Map<String, Value>, key: &str) -> anyhow::Result<u64> {
    let Some(v) = obj.get(key) else {
        bail!("{key} is missing");
    };
    let Value::Number(n) = v else {
        bail!("{key} is {v}, not an integer byte count");
    };
    if let Some(u) = n.as_u64() {
        if u > MAX_TOTAL {
            bail!("{key} is {u}, more than the largest total ({MAX_TOTAL})");
        }
        return Ok(u);
    }
    if n.as_i64().is_some() {
        bail!("{key} is {n}, a negative byte count");
    }
    bail!("{key} is {n}, not an integer byte count")
}

/// Deluge's config file: a `{"file": N, "format": N}` header object, then the config.
fn parse_deluge(bytes: &[u8]) -> anyhow::Result<Counters> {
    let mut objects = Vec::new();
    for value in serde_json::Deserializer::from_slice(bytes).into_iter::<Value>() {
        let value = value.context("not JSON (expected Deluge's two JSON objects)")?;
        objects.push(value);
        if objects.len() > 2 {
            bail!("more than two JSON objects (expected a header and the totals)");
        }
    }
    let config = match objects.as_slice() {
        [Value::Object(header), Value::Object(config)] => {
            if !(header.contains_key("file") && header.contains_key("format")) {
                bail!(
                    "the first JSON object is not Deluge's {{\"file\": N, \"format\": N}} header"
                );
            }
            config
        }
        // A config saved without the header (old Deluge versions).
        [Value::Object(config)] if config.contains_key("total_upload") => config,
        [] => bail!("the file is empty"),
        _ => bail!("expected Deluge's header object and then the totals object"),
    };
    Ok(Counters {
        total_upload: count(config, "total_upload")?,
        total_download: count(config, "total_download")?,
        total_payload_upload: count(config, "total_payload_upload")?,
        total_payload_download: count(config, "total_payload_download")?,
    })
}

/// Transmission's `stats.json`: one object; its byte counts are payload.
fn parse_transmission(bytes: &[u8]) -> anyhow::Result<Counters> {
    let value: Value = serde_json::from_slice(bytes).context("not a JSON object")?;
    let Value::Object(stats) = value else {
        bail!("not a JSON object");
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

fn read(path: &Path) -> anyhow::Result<Vec<u8>> {
    let meta = std::fs::metadata(path).with_context(|| format!("reading {}", path.display()))?;
    if meta.len() > MAX_FILE {
        bail!(
            "{} is {} bytes: too large for a totals file",
            path.display(),
            meta.len()
        );
    }
    std::fs::read(path).with_context(|| format!("reading {}", path.display()))
}

pub fn run(command: Command) -> anyhow::Result<()> {
    let (source, args, what) = match command {
        Command::Deluge(args) => ("deluge", args, "Deluge stats.totals"),
        Command::Transmission(args) => ("transmission", args, "Transmission stats.json"),
    };
    let bytes = read(&args.path)?;
    let parsed = match source {
        "deluge" => parse_deluge(&bytes),
        _ => parse_transmission(&bytes),
    };
    let totals = parsed.with_context(|| {
        format!(
            "{} is not a usable {what} file; nothing was imported",
            args.path.display()
        )
    })?;
    let fingerprint = fingerprint(source, &bytes);
    rpc_args::block_on(async move {
        let mut conn = args.rpc.connect().await?;
        let after = conn
            .call(
                "stats.import_totals",
                vec![
                    json!(source),
                    json!(fingerprint),
                    serde_json::to_value(totals)?,
                ],
            )
            .await
            .context("nothing was imported")?;
        let after = rpc_args::counters("stats.import_totals", after)?;
        if args.rpc.json {
            #[derive(serde::Serialize)]
            struct Out<'a> {
                source: &'a str,
                fingerprint: &'a str,
                imported: Counters,
                totals: Counters,
            }
            let out = Out {
                source,
                fingerprint: &fingerprint,
                imported: totals,
                totals: after,
            };
            println!("{}", serde_json::to_string_pretty(&out)?);
            return Ok(());
        }
        println!("Added from {} ({fingerprint}):", args.path.display());
        crate::totals::print_counters(&totals);
        println!("All-time totals now:");
        crate::totals::print_counters(&after);
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv1a64_known_values() {
        assert_eq!(fnv1a64(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a64(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a64(b"foobar"), 0x8594_4171_f739_67e8);
        assert_eq!(fingerprint("deluge", b""), "deluge:cbf29ce484222325");
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
        let err = |text: &str| format!("{:#}", parse_deluge(text.as_bytes()).unwrap_err());
        let header = r#"{"file": 1, "format": 1}"#;
        let all = r#""total_upload": 1, "total_download": 2, "total_payload_upload": 3"#;
        assert!(err(&format!("{header}{{{all}}}")).contains("total_payload_download is missing"));
        assert!(err(&format!(
            "{header}{{{all}, \"total_payload_download\": -4}}"
        ))
        .contains("total_payload_download is -4, a negative"));
        assert!(err(&format!(
            "{header}{{{all}, \"total_payload_download\": 1.5}}"
        ))
        .contains("not an integer"));
        assert!(err(&format!(
            "{header}{{{all}, \"total_payload_download\": \"7\"}}"
        ))
        .contains("not an integer"));
        assert!(err("").contains("empty"));
        assert!(err("format = 1\n").contains("not JSON"));
        assert!(err(&format!("{header}{header}{header}")).contains("more than two"));
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
        assert!(parse_transmission(b"[1]").is_err());
    }
}
