//! Where the daemon listens: its default ports, a fallback when another program holds
//! one (a deluged on 58846, a deluge-web on 8112: a sidecar next to them needs no port
//! flags), and `listen.toml` in the config directory, which the other commands read to
//! find the daemon when no `--port` is given.

use std::net::{SocketAddr, TcpListener};
use std::path::Path;

/// The file in the config directory naming the running daemon's addresses.
pub const LISTEN_FILE: &str = "listen.toml";

/// How many ports after a default are tried when it is taken.
const FALLBACKS: u16 = 10;

/// `addr` if its port is free; else, when `explicit` is false, the first free port of the
/// next [`FALLBACKS`], said in the log. An explicit port, or no free one,
/// is returned as it is (binding it then fails with a clear error).
pub fn free_or_fallback(addr: SocketAddr, explicit: bool, what: &str) -> SocketAddr {
    if explicit || addr.port() == 0 || TcpListener::bind(addr).is_ok() {
        return addr;
    }
    let taken = addr.port();
    for port in taken.saturating_add(1)..=taken.saturating_add(FALLBACKS) {
        let candidate = SocketAddr::new(addr.ip(), port);
        if TcpListener::bind(candidate).is_ok() {
            let message = format!(
                "port {taken} is in use (by a deluged or deluge-web?): {what} listens on \
                 {port} instead; torrent-stats commands find it through {LISTEN_FILE} in \
                 the config directory (give --port/--web-port to choose)"
            );
            tracing::warn!("{message}");
            return candidate;
        }
    }
    addr
}

/// What `listen.toml` holds.
#[derive(serde::Serialize, serde::Deserialize, Default)]
pub struct Listening {
    /// The RPC address.
    pub rpc: Option<SocketAddr>,
    /// The web address.
    pub web: Option<SocketAddr>,
    /// The daemon's process id.
    pub pid: u32,
}

/// Writes `listen.toml` (temp file + rename; it is rewritten at every start).
pub fn write(dir: &Path, listening: &Listening) -> std::io::Result<()> {
    let text = format!(
        "# Where the running torrent-stats daemon listens; rewritten at each start, read by\n\
         # the torrent-stats commands when no --port is given.\n{}",
        toml_text(listening)
    );
    let tmp = dir.join(format!(".{LISTEN_FILE}.tmp"));
    std::fs::write(&tmp, text)?;
    std::fs::rename(&tmp, dir.join(LISTEN_FILE))
}

fn toml_text(l: &Listening) -> String {
    let mut out = String::new();
    if let Some(rpc) = l.rpc {
        out.push_str(&format!("rpc = \"{rpc}\"\n"));
    }
    if let Some(web) = l.web {
        out.push_str(&format!("web = \"{web}\"\n"));
    }
    out.push_str(&format!("pid = {}\n", l.pid));
    out
}

/// The RPC port the running daemon of `dir` wrote, if it did.
pub fn rpc_port(dir: &Path) -> Option<u16> {
    let text = std::fs::read_to_string(dir.join(LISTEN_FILE)).ok()?;
    let mut port = None;
    for line in text.lines() {
        if let Some(v) = line.strip_prefix("rpc = ") {
            port = v
                .trim_matches('"')
                .parse::<SocketAddr>()
                .ok()
                .map(|a| a.port());
        }
    }
    port
}
