//! `torrent-stats config get|set`: the Stats plugin's preferences.

use anyhow::{bail, Context};
use serde_json::{Map, Value};

use crate::rpc_args::{self, Conn, RpcArgs};

/// `torrent-stats config`.
#[derive(clap::Subcommand)]
pub enum Command {
    /// Print the preferences (stats.get_config).
    Get(GetArgs),
    /// Change preferences: all of them or none (stats.set_config).
    ///
    /// Keys: update_interval (1..=60 s), length (10..=10000 points), save_interval
    /// (5..=3600 s). Values are integers.
    Set(SetArgs),
}

/// Options of `torrent-stats config get`.
#[derive(clap::Args)]
pub struct GetArgs {
    #[command(flatten)]
    rpc: RpcArgs,
}

/// Options of `torrent-stats config set`.
#[derive(clap::Args)]
pub struct SetArgs {
    /// KEY=VALUE pairs, e.g. `update_interval=5 save_interval=60`.
    #[arg(required = true, value_name = "KEY=VALUE")]
    changes: Vec<String>,
    #[command(flatten)]
    rpc: RpcArgs,
}

pub fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Get(args) => rpc_args::block_on(async move {
            let mut conn = args.rpc.connect().await?;
            print_config(&mut conn, args.rpc.json).await
        }),
        Command::Set(args) => {
            let changes = parse_changes(&args.changes)?;
            rpc_args::block_on(async move {
                let mut conn = args.rpc.connect().await?;
                conn.call("stats.set_config", vec![Value::Object(changes)])
                    .await
                    .context("no preference was changed")?;
                print_config(&mut conn, args.rpc.json).await
            })
        }
    }
}

/// `KEY=VALUE...` as one dict of integers; a repeated key is an error.
fn parse_changes(pairs: &[String]) -> anyhow::Result<Map<String, Value>> {
    let mut changes = Map::new();
    for pair in pairs {
        let Some((key, value)) = pair.split_once('=') else {
            bail!("{pair:?} is not KEY=VALUE (e.g. update_interval=5)");
        };
        let key = key.trim();
        if key.is_empty() {
            bail!("{pair:?} has no key (expected KEY=VALUE)");
        }
        let n: i64 = value
            .trim()
            .parse()
            .map_err(|_| anyhow::anyhow!("{key}: {value:?} is not an integer"))?;
        if changes.insert(key.to_string(), Value::from(n)).is_some() {
            bail!("{key} is given more than once");
        }
    }
    Ok(changes)
}

async fn print_config(conn: &mut Conn, json: bool) -> anyhow::Result<()> {
    let config = conn.call("stats.get_config", vec![]).await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&config)?);
        return Ok(());
    }
    let Value::Object(map) = config else {
        bail!("stats.get_config returned {config}, not a dict");
    };
    for (key, value) in map {
        println!("{key} = {value}");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(s: &[&str]) -> Vec<String> {
        s.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn parses_pairs_and_rejects_bad_ones() {
        let m = parse_changes(&strings(&["update_interval=5", "length = 20"])).unwrap();
        assert_eq!(m["update_interval"], 5);
        assert_eq!(m["length"], 20);
        assert_eq!(parse_changes(&strings(&["x=-1"])).unwrap()["x"], -1);
        for bad in [&["x"][..], &["=1"], &["x=1.5"], &["x=a"], &["x=1", "x=2"]] {
            assert!(parse_changes(&strings(bad)).is_err(), "{bad:?}");
        }
    }
}
