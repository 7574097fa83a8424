//! deluge-web's `web.*` methods (Deluge 2.0.3's `ui/web/json_api.py`), so that an app made
//! for deluge-web works against this server alone. The server is its own and only
//! "host", always connected; every call runs at the session's level, each daemon method
//! it uses checked as a Deluge RPC call is.
//!
//! | method | answer |
//! |---|---|
//! | `web.connected()` | `true` |
//! | `web.get_hosts()` | `[[HOST_ID, host, rpc_port, "localclient"]]` |
//! | `web.get_host_status(host_id)` | `[host_id, "Connected", version]` |
//! | `web.connect(host_id)` | the daemon's method list |
//! | `web.disconnect()` | `"Connection was closed cleanly."` (still connected) |
//! | `web.update_ui(keys, filter_dict)` | `{"connected", "torrents", "filters", "stats"}` |
//! | `web.get_torrent_status(id, keys)` | the status, `name`/`message`/`comment`/`tracker_status` XML-escaped |
//! | `web.get_torrent_files(id)` | the file tree ([`super::file_tree`]) |
//! | `web.add_torrents([{path, options}])` | `[[true, id] \| [false, message], ...]`; `path` an `/upload` path, a magnet URI or an http(s) URL |
//! | `web.get_plugins()` | `{"enabled_plugins", "available_plugins"}` (the daemon's) |
//! | `web.get_config()` / `web.set_config(dict)` | deluge-web's keys; changes refused |
//!
//! Host-list editing, daemon start/stop, plugin uploads, event queues, URL downloads and
//! torrent-file info are refused with a message saying why.

use std::net::SocketAddr;

use serde_json::{json, Map, Value};

use super::call::{core_call, CallError};
use super::file_tree::{self, xml_escape};
use super::login::{Login, LOGIN_TTL};
use super::session_methods::WEB_LOGIN_USER;
use super::WebState;

/// This daemon's id in `web.get_hosts` (deluge-web's are 32 hex digits): "torrent-stats".
pub const HOST_ID: &str = "746f7272656e742d7374617473000000";

/// deluge-web's answer to `web.disconnect`.
const DISCONNECTED: &str = "Connection was closed cleanly.";

/// Status keys whose text deluge-web escapes.
const ESCAPED_KEYS: [&str; 4] = ["name", "message", "comment", "tracker_status"];

/// Methods of deluge-web this server does not offer, and why.
const REFUSED: [(&str, &str); 13] = [
    ("add_host", "this daemon is the only host"),
    ("edit_host", "this daemon is the only host"),
    ("remove_host", "this daemon is the only host"),
    ("start_daemon", "this server is the daemon"),
    (
        "stop_daemon",
        "this server is the daemon; use daemon.shutdown",
    ),
    ("get_plugin_info", "no web UI plugins here"),
    ("get_plugin_resources", "no web UI plugins here"),
    ("upload_plugin", "no web UI plugins here"),
    (
        "register_event_listener",
        "no event queue here; GET /events streams the Stats events",
    ),
    (
        "deregister_event_listener",
        "no event queue here; GET /events streams the Stats events",
    ),
    (
        "get_events",
        "no event queue here; GET /events streams the Stats events",
    ),
    (
        "download_torrent_from_url",
        "give the URL to web.add_torrents (or core.add_torrent_url)",
    ),
    (
        "get_torrent_info",
        "not offered; web.add_torrents takes the uploaded path directly",
    ),
];

/// A call's arguments, checked against the method's signature.
struct Params<'a> {
    method: &'a str,
    list: Vec<Value>,
}

impl<'a> Params<'a> {
    /// Checks that `names.len()` arguments were given.
    fn new(method: &'a str, list: Vec<Value>, names: &[&str]) -> Result<Self, CallError> {
        if list.len() != names.len() {
            return Err(CallError::call(
                "TypeError",
                format!(
                    "web.{method}({}) takes {} argument(s), {} given",
                    names.join(", "),
                    names.len(),
                    list.len()
                ),
            ));
        }
        Ok(Params { method, list })
    }

    fn bad(&self, name: &str, expected: &str, got: &Value) -> CallError {
        CallError::call(
            "TypeError",
            format!(
                "web.{}: {name} must be {expected}, not {}",
                self.method,
                crate::export::kind(got)
            ),
        )
    }

    fn string(&self, index: usize, name: &str) -> Result<String, CallError> {
        match &self.list[index] {
            Value::String(s) => Ok(s.clone()),
            other => Err(self.bad(name, "a string", other)),
        }
    }

    fn list(&self, index: usize, name: &str) -> Result<Vec<Value>, CallError> {
        match &self.list[index] {
            Value::Array(v) => Ok(v.clone()),
            other => Err(self.bad(name, "a list", other)),
        }
    }

    fn dict(&self, index: usize, name: &str) -> Result<Map<String, Value>, CallError> {
        match &self.list[index] {
            Value::Object(m) => Ok(m.clone()),
            Value::Null => Ok(Map::new()),
            other => Err(self.bad(name, "a dict", other)),
        }
    }
}

/// Answers `web.<name>`.
pub(super) async fn call(
    state: &WebState,
    session: &Login,
    name: &str,
    params: Vec<Value>,
) -> Result<Value, CallError> {
    match name {
        "connected" => Params::new(name, params, &[]).map(|_| json!(true)),
        "disconnect" => Params::new(name, params, &[]).map(|_| json!(DISCONNECTED)),
        "get_hosts" => Params::new(name, params, &[]).map(|_| json!([host(state)])),
        "get_host_status" => {
            let p = Params::new(name, params, &["host_id"])?;
            our_host(&p)?;
            let info = core_call(state, session, "daemon.info", vec![]).await?;
            Ok(json!([HOST_ID, "Connected", info]))
        }
        "connect" => {
            let p = Params::new(name, params, &["host_id"])?;
            our_host(&p)?;
            core_call(state, session, "daemon.get_method_list", vec![]).await
        }
        "update_ui" => {
            let p = Params::new(name, params, &["keys", "filter_dict"])?;
            let keys = p.list(0, "keys")?;
            let filter = p.dict(1, "filter_dict")?;
            Ok(update_ui(state, session, keys, filter).await)
        }
        "get_torrent_status" => {
            let p = Params::new(name, params, &["torrent_id", "keys"])?;
            let args = vec![json!(p.string(0, "torrent_id")?), json!(p.list(1, "keys")?)];
            let mut status = core_call(state, session, "core.get_torrent_status", args).await?;
            escape_status(&mut status);
            Ok(status)
        }
        "get_torrent_files" => {
            let p = Params::new(name, params, &["torrent_id"])?;
            torrent_files(state, session, p.string(0, "torrent_id")?).await
        }
        "add_torrents" => {
            let p = Params::new(name, params, &["torrents"])?;
            add_torrents(state, session, &p, p.list(0, "torrents")?).await
        }
        "get_plugins" => {
            Params::new(name, params, &[])?;
            let enabled = core_call(state, session, "core.get_enabled_plugins", vec![]).await?;
            let available = core_call(state, session, "core.get_available_plugins", vec![]).await?;
            Ok(json!({"enabled_plugins": enabled, "available_plugins": available}))
        }
        "get_config" => Params::new(name, params, &[]).map(|_| Value::Object(config(state))),
        "set_config" => {
            let p = Params::new(name, params, &["config"])?;
            set_config(state, p.dict(0, "config")?).map(|()| Value::Null)
        }
        _ => match REFUSED.iter().find(|(m, _)| *m == name) {
            Some((_, why)) => Err(CallError::call(
                "NotImplementedError",
                format!("web.{name} is not offered by torrent-stats: {why}"),
            )),
            None => Err(CallError::unknown_method()),
        },
    }
}

/// `system.listMethods`: the daemon's methods and these.
pub(super) async fn list_methods(
    state: &WebState,
    session: &Login,
    params: &[Value],
) -> Result<Value, CallError> {
    if !params.is_empty() {
        return Err(CallError::call(
            "TypeError",
            "system.listMethods takes no arguments",
        ));
    }
    let daemon = core_call(state, session, "daemon.get_method_list", vec![]).await?;
    let mut methods: Vec<Value> = daemon.as_array().cloned().unwrap_or_default();
    let ours = [
        "connected",
        "disconnect",
        "get_hosts",
        "get_host_status",
        "connect",
        "update_ui",
        "get_torrent_status",
        "get_torrent_files",
        "add_torrents",
        "get_plugins",
        "get_config",
        "set_config",
    ];
    methods.extend(ours.iter().map(|m| json!(format!("web.{m}"))));
    for m in [
        "login",
        "login_hint",
        "check_session",
        "get_session",
        "logout",
        "delete_session",
    ] {
        methods.push(json!(format!("auth.{m}")));
    }
    Ok(Value::Array(methods))
}

/// This daemon as `web.get_hosts` lists it: id, the RPC address, the web login's user.
fn host(state: &WebState) -> Value {
    let rpc = state.rpc_addr;
    let ip = rpc.map(|a| a.ip()).filter(|ip| !ip.is_unspecified());
    let shown = ip.map_or_else(|| "127.0.0.1".to_string(), |ip| ip.to_string());
    json!([HOST_ID, shown, rpc.map_or(0, |a| a.port()), WEB_LOGIN_USER])
}

fn our_host(p: &Params<'_>) -> Result<(), CallError> {
    let id = p.string(0, "host_id")?;
    if id == HOST_ID {
        Ok(())
    } else {
        Err(CallError::call(
            "ValueError",
            format!("unknown host {id:?}: this daemon is the only host, {HOST_ID}"),
        ))
    }
}

/// Escapes the status texts deluge-web escapes (and each peer's `client`).
fn escape_status(status: &mut Value) {
    let Some(map) = status.as_object_mut() else {
        return;
    };
    for key in ESCAPED_KEYS {
        if let Some(Value::String(s)) = map.get_mut(key) {
            *s = xml_escape(s);
        }
    }
    if let Some(Value::Array(peers)) = map.get_mut("peers") {
        for peer in peers {
            if let Some(Value::String(c)) = peer.get_mut("client") {
                *c = xml_escape(c);
            }
        }
    }
}

/// `web.update_ui`: as deluge-web builds it; a part whose daemon call fails stays out
/// (`torrents` and `filters` then null), as there.
async fn update_ui(
    state: &WebState,
    session: &Login,
    keys: Vec<Value>,
    filter: Map<String, Value>,
) -> Value {
    let limits = json!([
        "max_download_speed",
        "max_upload_speed",
        "max_connections_global"
    ]);
    let session_keys = json!([
        "num_peers",
        "payload_download_rate",
        "payload_upload_rate",
        "download_rate",
        "upload_rate",
        "dht_nodes",
        "has_incoming_connections",
    ]);
    let call = |method: &'static str, args: Vec<Value>| async move {
        core_call(state, session, method, args).await.ok()
    };
    let (config, torrents, filters, session_status, free_space, external_ip) = tokio::join!(
        call("core.get_config_values", vec![limits]),
        call(
            "core.get_torrents_status",
            vec![Value::Object(filter), Value::Array(keys)]
        ),
        call("core.get_filter_tree", vec![]),
        call("core.get_session_status", vec![session_keys]),
        call("core.get_free_space", vec![]),
        call("core.get_external_ip", vec![]),
    );
    let config = config.unwrap_or_default();
    let mut stats = json!({
        "max_download": config.get("max_download_speed").cloned().unwrap_or(Value::Null),
        "max_upload": config.get("max_upload_speed").cloned().unwrap_or(Value::Null),
        "max_num_connections": config.get("max_connections_global").cloned().unwrap_or(Value::Null),
    });
    if let (Some(s), Some(out)) = (session_status, stats.as_object_mut()) {
        let get = |k: &str| s.get(k).cloned().unwrap_or(Value::Null);
        out.insert("num_connections".into(), get("num_peers"));
        out.insert("upload_rate".into(), get("payload_upload_rate"));
        out.insert("download_rate".into(), get("payload_download_rate"));
        out.insert(
            "download_protocol_rate".into(),
            minus(&get("download_rate"), &get("payload_download_rate")),
        );
        out.insert(
            "upload_protocol_rate".into(),
            minus(&get("upload_rate"), &get("payload_upload_rate")),
        );
        out.insert("dht_nodes".into(), get("dht_nodes"));
        out.insert(
            "has_incoming_connections".into(),
            get("has_incoming_connections"),
        );
    }
    if let Some(out) = stats.as_object_mut() {
        if let Some(free) = free_space {
            out.insert("free_space".into(), free);
        }
        if let Some(ip) = external_ip {
            out.insert("external_ip".into(), ip);
        }
    }
    json!({
        "connected": true,
        "torrents": torrents.unwrap_or(Value::Null),
        "filters": filters.unwrap_or(Value::Null),
        "stats": stats,
    })
}

/// `a - b`, an integer when both are.
fn minus(a: &Value, b: &Value) -> Value {
    match (a.as_i64(), b.as_i64()) {
        (Some(x), Some(y)) => json!(x - y),
        _ => json!(a.as_f64().unwrap_or(0.0) - b.as_f64().unwrap_or(0.0)),
    }
}

/// `web.get_torrent_files`.
async fn torrent_files(state: &WebState, session: &Login, id: String) -> Result<Value, CallError> {
    let keys = json!(["files", "file_progress", "file_priorities"]);
    let args = vec![json!(id), keys];
    let status = core_call(state, session, "core.get_torrent_status", args).await?;
    let list = |key: &str| status.get(key).and_then(Value::as_array);
    let Some(files) = list("files") else {
        return Err(CallError::call(
            "InvalidTorrentError",
            format!("no torrent {id:?} in the session"),
        ));
    };
    let empty = Vec::new();
    let progress = list("file_progress").unwrap_or(&empty);
    let priorities = list("file_priorities").unwrap_or(&empty);
    Ok(file_tree::build(files, progress, priorities))
}

/// `web.add_torrents`: each `{path, options}` added; `[true, id]` or `[false, why]` each
/// (deluge-web 2.0.3 never answers when one fails).
async fn add_torrents(
    state: &WebState,
    session: &Login,
    p: &Params<'_>,
    torrents: Vec<Value>,
) -> Result<Value, CallError> {
    let mut added = Vec::with_capacity(torrents.len());
    let mut calls = Vec::with_capacity(torrents.len());
    for (i, t) in torrents.iter().enumerate() {
        let path = match t.get("path") {
            Some(Value::String(path)) => path,
            other => {
                let got = other.unwrap_or(&Value::Null);
                return Err(p.bad(&format!("torrents[{i}][\"path\"]"), "a string", got));
            }
        };
        let options = match t.get("options") {
            None | Some(Value::Null) => json!({}),
            Some(o @ Value::Object(_)) => o.clone(),
            Some(other) => {
                return Err(p.bad(&format!("torrents[{i}][\"options\"]"), "a dict", other))
            }
        };
        calls.push(add_call(state, i, path, options).await?);
    }
    for (method, args) in calls {
        let answer = match core_call(state, session, method, args).await {
            Ok(id) => json!([true, id]),
            Err(e) => json!([false, format!("{}: {}", e.class, e.message)]),
        };
        added.push(answer);
    }
    Ok(Value::Array(added))
}

/// The daemon call that adds `path`: a magnet, a URL, or a file uploaded here.
async fn add_call(
    state: &WebState,
    index: usize,
    path: &str,
    options: Value,
) -> Result<(&'static str, Vec<Value>), CallError> {
    if path.starts_with("magnet:") {
        return Ok(("core.add_torrent_magnet", vec![json!(path), options]));
    }
    if path.starts_with("http://") || path.starts_with("https://") {
        return Ok(("core.add_torrent_url", vec![json!(path), options]));
    }
    let uploads = state.uploads.clone();
    let owned = path.to_string();
    let read = tokio::task::spawn_blocking(move || uploads.read(&owned))
        .await
        .map_err(|e| CallError::call("OSError", e.to_string()))?;
    let bytes = match read {
        Some(Ok(bytes)) => bytes,
        Some(Err(e)) => return Err(CallError::call("OSError", format!("{path}: {e}"))),
        None => {
            return Err(CallError::call(
                "ValueError",
                format!(
                "torrents[{index}]: {path:?} is not a file uploaded to /upload (or it expired); \
                     give a path from /upload's answer, a magnet URI or an http(s) URL"
            ),
            ))
        }
    };
    let name = std::path::Path::new(path)
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let dump = crate::base64::encode(&bytes);
    Ok((
        "core.add_torrent_file",
        vec![json!(name), json!(dump), options],
    ))
}

/// The web server's address and whether it speaks HTTPS, for `web.get_config`.
fn served(state: &WebState) -> (Option<SocketAddr>, bool) {
    // Served over HTTPS exactly when its cookies are marked Secure.
    (state.local_addr, state.secure_cookies)
}

/// `web.get_config`: deluge-web's keys, with this server's values.
fn config(state: &WebState) -> Map<String, Value> {
    let (addr, https) = served(state);
    let value = json!({
        "port": addr.map_or(super::DEFAULT_PORT, |a| a.port()),
        "interface": addr.map_or_else(|| "127.0.0.1".to_string(), |a| a.ip().to_string()),
        "https": https,
        "pkey": "",
        "cert": "",
        "session_timeout": LOGIN_TTL.as_secs(),
        "base": "/",
        "default_daemon": HOST_ID,
        "enabled_plugins": [],
        "first_login": false,
        "language": "",
        "show_session_speed": false,
        "show_sidebar": true,
        "sidebar_show_zero": false,
        "sidebar_multiple_filters": true,
        "theme": "gray",
    });
    match value {
        Value::Object(map) => map,
        _ => Map::new(),
    }
}

/// `web.set_config`: a value equal to the current one is accepted; a change is refused,
/// saying where it is made instead. deluge-web's ignored keys stay ignored.
fn set_config(state: &WebState, changes: Map<String, Value>) -> Result<(), CallError> {
    let current = config(state);
    for (key, value) in &changes {
        if matches!(key.as_str(), "sessions" | "pwd_salt" | "pwd_sha1") {
            continue;
        }
        let Some(now) = current.get(key) else {
            return Err(CallError::call(
                "KeyError",
                format!("web.set_config: no setting {key:?}"),
            ));
        };
        if now == value {
            continue;
        }
        let why = match key.as_str() {
            "port" => "it is the daemon's --web-port option",
            "interface" => "it is the daemon's --web-interface option",
            "https" | "pkey" | "cert" => {
                "HTTPS is set in web.toml (https, cert, pkey) or by --web-https"
            }
            "session_timeout" => "sessions end after a fixed hour without use",
            "default_daemon" => "this daemon is the only host",
            _ => "it is a setting of deluge-web's own page, which this server does not serve",
        };
        return Err(CallError::call(
            "ValueError",
            format!("web.set_config cannot change {key:?} (now {now}): {why}"),
        ));
    }
    Ok(())
}
