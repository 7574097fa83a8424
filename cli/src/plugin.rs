//! `torrent-stats plugin list|enable|disable`: the daemon's plugins.

use anyhow::bail;
use serde_json::{json, Value};

use crate::rpc_args::{self, RpcArgs};

/// `torrent-stats plugin`.
#[derive(clap::Subcommand)]
pub enum Command {
    /// List the available plugins and which are enabled.
    List(ListArgs),
    /// Enable a plugin (needs an ADMIN account).
    Enable(NameArgs),
    /// Disable a plugin (needs an ADMIN account); a disabled Stats stops counting.
    Disable(NameArgs),
}

/// Options of `torrent-stats plugin list`.
#[derive(clap::Args)]
pub struct ListArgs {
    #[command(flatten)]
    rpc: RpcArgs,
}

/// Options of `torrent-stats plugin enable|disable`.
#[derive(clap::Args)]
pub struct NameArgs {
    /// The plugin's name, e.g. `Stats`.
    name: String,
    #[command(flatten)]
    rpc: RpcArgs,
}

fn names(method: &str, v: Value) -> anyhow::Result<Vec<String>> {
    serde_json::from_value(v)
        .map_err(|e| anyhow::anyhow!("{method} returned an unexpected shape: {e}"))
}

pub fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::List(args) => rpc_args::block_on(list(args.rpc)),
        Command::Enable(args) => rpc_args::block_on(change(args, true)),
        Command::Disable(args) => rpc_args::block_on(change(args, false)),
    }
}

async fn list(rpc: RpcArgs) -> anyhow::Result<()> {
    let mut conn = rpc.connect().await?;
    let mut answers = conn
        .calls(&[
            ("core.get_available_plugins", vec![]),
            ("core.get_enabled_plugins", vec![]),
        ])
        .await?
        .into_iter();
    let available = names(
        "core.get_available_plugins",
        answers.next().unwrap_or_default(),
    )?;
    let enabled = names(
        "core.get_enabled_plugins",
        answers.next().unwrap_or_default(),
    )?;
    let rows: Vec<(String, bool)> = available
        .into_iter()
        .map(|name| {
            let on = enabled.contains(&name);
            (name, on)
        })
        .collect();
    if rpc.json {
        let out: Vec<Value> = rows
            .iter()
            .map(|(name, on)| json!({"name": name, "enabled": on}))
            .collect();
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(());
    }
    if rows.is_empty() {
        println!("(no plugins available)");
    }
    for (name, on) in rows {
        println!("[{}] {name}", if on { "x" } else { " " });
    }
    Ok(())
}

async fn change(args: NameArgs, enable: bool) -> anyhow::Result<()> {
    let (method, verb) = if enable {
        ("core.enable_plugin", "enable")
    } else {
        ("core.disable_plugin", "disable")
    };
    let mut conn = args.rpc.connect().await?;
    let done = conn.call(method, vec![json!(args.name)]).await?;
    if done != json!(true) {
        bail!(
            "the daemon could not {verb} plugin {:?} (it answered {done}); its log says why",
            args.name
        );
    }
    if args.rpc.json {
        println!("{}", json!({"name": args.name, "enabled": enable}));
    } else {
        println!("{} {verb}d", args.name);
    }
    Ok(())
}
