//! The configuration `core.get_config` answers: every key of Deluge 2.0.3's `core.conf`,
//! typed as Deluge types it (compared key by key with a running deluged 2.0.3), with this
//! daemon's truth: what the engine does, else the value meaning "none" or "off".

use serde_json::{json, Map, Value};

use crate::torrent::Discovery;

use super::super::Listening;
use super::Engine;

/// Every configuration key Deluge has, with this daemon's values.
pub(super) fn config(
    enabled: Vec<String>,
    engine: &Engine,
    listening: Listening,
) -> Map<String, Value> {
    let mut map = Map::new();
    for group in [
        paths(engine),
        network(engine),
        bandwidth(engine),
        queue(),
        other(enabled, listening),
    ] {
        if let Value::Object(group) = group {
            map.extend(group);
        }
    }
    map
}

/// Where data and torrent files go, and the GTK client's path chooser settings (Deluge
/// keeps them in the daemon's config; their defaults).
fn paths(engine: &Engine) -> Value {
    let location = engine
        .as_ref()
        .map(|e| e.download_location().display().to_string())
        .unwrap_or_default();
    json!({
        "download_location": location,
        "download_location_paths_list": [],
        "move_completed": false,
        "move_completed_path": location,
        "move_completed_paths_list": [],
        "torrentfiles_location": location,
        "copy_torrent_file": false,
        "del_copy_torrent_file": false,
        // No Python plugins, no GeoIP database.
        "plugins_location": "",
        "geoip_db_location": "",
        "path_chooser_accelerator_string": "Tab",
        "path_chooser_auto_complete_enabled": true,
        "path_chooser_max_popup_rows": 20,
        "path_chooser_show_chooser_button_on_localhost": true,
        "path_chooser_show_hidden_files": false,
    })
}

/// Ports, interfaces, discovery, encryption, proxy and connection limits.
fn network(engine: &Engine) -> Value {
    let port = engine.as_ref().and_then(|e| e.listen_port()).unwrap_or(0);
    let found = engine
        .as_ref()
        .map_or(Discovery::default(), |e| e.discovery());
    json!({
        "listen_ports": [port, port],
        "listen_random_port": port,
        "random_port": false,
        // The engine listens on every address and connects out from any.
        "listen_interface": "",
        "outgoing_interface": "",
        "outgoing_ports": [0, 0],
        "random_outgoing_ports": true,
        "listen_reuse_port": false,
        "listen_use_sys_port": false,
        "dht": found.dht,
        "lsd": found.lsd,
        "upnp": found.upnp,
        "natpmp": false,
        // librqbit exchanges peers (ut_pex) on every torrent not private.
        "utpex": engine.is_some(),
        // librqbit has no protocol encryption: 2 is Deluge's "disabled".
        "enc_in_policy": 2,
        "enc_out_policy": 2,
        "enc_level": 2,
        "peer_tos": "0x00",
        "proxy": {
            "type": 0,
            "hostname": "",
            "username": "",
            "password": "",
            "port": 8080,
            "proxy_hostnames": true,
            "proxy_peer_connections": true,
            "proxy_tracker_connections": true,
            "force_proxy": false,
            "anonymous_mode": false,
        },
        "max_connections_global": -1,
        "max_connections_per_torrent": -1,
        "max_half_open_connections": -1,
        "max_connections_per_second": -1,
    })
}

/// Rate limits (Deluge's unit: KiB/s as a float, -1 for unlimited) and upload slots.
fn bandwidth(engine: &Engine) -> Value {
    let (down, up) = engine.as_ref().map_or((None, None), |e| e.rate_limits());
    let kib = |bps: Option<u64>| bps.map_or(-1.0, |b| b as f64 / 1024.0);
    json!({
        "max_download_speed": kib(down),
        "max_upload_speed": kib(up),
        "max_download_speed_per_torrent": -1,
        "max_upload_speed_per_torrent": -1,
        "max_upload_slots_global": -1,
        "max_upload_slots_per_torrent": -1,
        // The engine's limits count payload, on every network.
        "ignore_limits_on_local_network": false,
        "rate_limit_ip_overhead": false,
    })
}

/// Adding and queueing: no queue (every torrent runs), no seeding limits.
fn queue() -> Value {
    json!({
        "add_paused": false,
        "auto_managed": true,
        "auto_manage_prefer_seeds": false,
        "dont_count_slow_torrents": false,
        "queue_new_to_top": false,
        "pre_allocate_storage": false,
        "prioritize_first_last_pieces": false,
        "sequential_download": false,
        "super_seeding": false,
        "shared": false,
        "max_active_limit": -1,
        "max_active_downloading": -1,
        "max_active_seeding": -1,
        "stop_seed_at_ratio": false,
        "stop_seed_ratio": 2.0,
        "remove_seed_at_ratio": false,
        "share_ratio_limit": -1.0,
        "seed_time_ratio_limit": -1.0,
        "seed_time_limit": -1,
    })
}

/// Plugins, the disk cache (none), what Deluge sends home (nothing), and the RPC server's
/// port (left out without one) and remote access.
fn other(enabled: Vec<String>, listening: Listening) -> Value {
    let mut value = json!({
        "enabled_plugins": enabled,
        "cache_size": 0,
        "cache_expiry": 60,
        "new_release_check": false,
        "send_info": false,
        "info_sent": 0.0,
        "allow_remote": listening.allow_remote,
    });
    if let (Some(port), Value::Object(map)) = (listening.rpc_port, &mut value) {
        map.insert("daemon_port".into(), json!(port));
    }
    value
}
