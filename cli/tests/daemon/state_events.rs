//! Deluge's torrent state events from the engine daemon over RPC: computed only while a
//! client is registered for them (issue 21), and then delivered: a registered client gets
//! `TorrentStateChangedEvent(id, "Paused")` when another pauses the torrent, and
//! `(id, "Seeding")` when it resumes it, the pause right after the registration included.

use std::time::Duration;

use anyhow::{ensure, Result};
use serde_json::json;
use torrent_stats::rpc::client::Client;

use crate::engine::{base64, call, engine_daemon, login, payload, torrent_of, wait_status};

/// Waits up to 10 s for the state event of `id`; `None` if none came.
async fn state_event(c: &mut Client, id: &str) -> Result<Option<String>> {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while let Some(left) = deadline.checked_duration_since(std::time::Instant::now()) {
        let Some(e) = c.next_event(left).await? else {
            break;
        };
        ensure!(
            e.name == "TorrentStateChangedEvent",
            "an event not asked for: {e:?}"
        );
        if e.args.first() == Some(&json!(id)) {
            return Ok(e.args.get(1).and_then(|s| s.as_str()).map(String::from));
        }
    }
    Ok(None)
}

/// Pauses or resumes `id` and waits for its status to say `state`.
async fn switch(c: &mut Client, id: &str, state: &str) -> Result<()> {
    let method = if state == "Paused" {
        "core.pause_torrent"
    } else {
        "core.resume_torrent"
    };
    call(c, method, json!([id])).await?;
    wait_status(c, id, Duration::from_secs(30), state, |s| {
        s["state"] == state
    })
    .await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_registered_client_gets_the_torrent_state_events() -> Result<()> {
    let data = tempfile::tempdir()?;
    let file = data.path().join("payload.bin");
    std::fs::write(&file, payload(600 << 10))?;
    let (id, bytes) = torrent_of(&file).await?;
    let daemon = engine_daemon(data.path())?;
    let mut c = login(daemon.port(), &daemon.password).await?;
    let add = json!(["payload.bin.torrent", base64(&bytes), {}]);
    call(&mut c, "core.add_torrent_file", add).await?;
    wait_status(&mut c, &id, Duration::from_secs(60), "seeding", |s| {
        s["state"] == "Seeding"
    })
    .await?;

    let mut listener = login(daemon.port(), &daemon.password).await?;
    listener.subscribe(&["TorrentStateChangedEvent"]).await?;
    // The watcher's first look is taken inside the registration: a pause right after it
    // answered is announced, the first time.
    switch(&mut c, &id, "Paused").await?;
    let got = state_event(&mut listener, &id).await?;
    ensure!(
        got.as_deref() == Some("Paused"),
        "no Paused event: {got:?}\n{}",
        daemon.log()
    );
    switch(&mut c, &id, "Seeding").await?;
    let got = state_event(&mut listener, &id).await?;
    ensure!(
        got.as_deref() == Some("Seeding"),
        "no Seeding event: {got:?}\n{}",
        daemon.log()
    );
    Ok(())
}
