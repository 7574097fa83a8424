//! The keys `core.get_session_status` answers: every key Deluge's clients read (Flood,
//! deluge-console, the GTK client, deluge-web, Deluge's Stats plugin, our own `deluge://`
//! source), under both of Deluge 2's names (libtorrent's counter name and the deprecated
//! alias Deluge still answers), each with where its value comes from and the JSON type
//! Deluge 2.0.3 answers it with. `docs/deluge-compatibility.md` ("Session status keys")
//! has the same table for people.

use serde_json::{json, Value};

use crate::session::{SessionStatus, StatusKey};

/// Where the value of a key comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Origin {
    /// A figure of the session source (the engine, or the sources' combined session).
    Source(StatusKey),
    /// A wire figure (`.0`): the source's, else its payload figure (`.1`), the lower bound
    /// (the embedded engine counts payload only).
    Wire(StatusKey, StatusKey),
    /// Half-open connections: connections less connected peers (Deluge's Stats plugin
    /// adds them back up to `num_connections`).
    HalfOpen,
    /// Not measured by this daemon: Deluge's value before anything happened, 0.
    Zero,
}

/// The JSON type Deluge 2.0.3 answers a key with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    /// An integer (libtorrent's counters and gauges, `has_incoming_connections` too).
    Int,
    /// A float (the rates Deluge computes every 2 s, the cache hit ratios).
    Float,
}

/// One key of `core.get_session_status`.
#[derive(Debug, Clone, Copy)]
pub(super) struct SessionKey {
    /// Deluge's name.
    pub(super) name: &'static str,
    /// Where its value comes from.
    pub(super) origin: Origin,
    /// Its JSON type.
    pub(super) kind: Kind,
}

const fn key(name: &'static str, origin: Origin, kind: Kind) -> SessionKey {
    SessionKey { name, origin, kind }
}

use Kind::{Float, Int};
use Origin::{HalfOpen, Source, Wire, Zero};
use StatusKey as S;

/// Every key answered, libtorrent's name first and then Deluge's deprecated alias.
pub(super) const KEYS: [SessionKey; 29] = [
    key(
        "net.recv_payload_bytes",
        Source(S::TotalPayloadDownload),
        Int,
    ),
    key(
        "total_payload_download",
        Source(S::TotalPayloadDownload),
        Int,
    ),
    key("net.sent_payload_bytes", Source(S::TotalPayloadUpload), Int),
    key("total_payload_upload", Source(S::TotalPayloadUpload), Int),
    key(
        "net.recv_bytes",
        Wire(S::TotalDownload, S::TotalPayloadDownload),
        Int,
    ),
    key(
        "total_download",
        Wire(S::TotalDownload, S::TotalPayloadDownload),
        Int,
    ),
    key(
        "net.sent_bytes",
        Wire(S::TotalUpload, S::TotalPayloadUpload),
        Int,
    ),
    key(
        "total_upload",
        Wire(S::TotalUpload, S::TotalPayloadUpload),
        Int,
    ),
    key(
        "payload_download_rate",
        Source(S::PayloadDownloadRate),
        Float,
    ),
    key("payload_upload_rate", Source(S::PayloadUploadRate), Float),
    key(
        "download_rate",
        Wire(S::DownloadRate, S::PayloadDownloadRate),
        Float,
    ),
    key(
        "upload_rate",
        Wire(S::UploadRate, S::PayloadUploadRate),
        Float,
    ),
    key("peer.num_peers_connected", Source(S::NumPeers), Int),
    key("num_peers", Source(S::NumPeers), Int),
    key("peer.num_peers_half_open", HalfOpen, Int),
    key("dht.dht_nodes", Source(S::DhtNodes), Int),
    key("dht_nodes", Source(S::DhtNodes), Int),
    key("dht.dht_node_cache", Source(S::DhtCacheNodes), Int),
    key("dht.dht_torrents", Source(S::DhtTorrents), Int),
    key("dht_torrents", Source(S::DhtTorrents), Int),
    key("net.has_incoming_connections", Zero, Int),
    key("has_incoming_connections", Zero, Int),
    key("disk.num_blocks_read", Zero, Int),
    key("disk.num_blocks_written", Zero, Int),
    key("disk.num_read_ops", Zero, Int),
    key("disk.num_write_ops", Zero, Int),
    key("disk.disk_blocks_in_use", Zero, Int),
    key("read_hit_ratio", Zero, Float),
    key("write_hit_ratio", Zero, Float),
];

/// The key called `name`, if this daemon answers it (Deluge leaves out names it does not
/// know, and so does this daemon).
pub(super) fn lookup(name: &str) -> Option<&'static SessionKey> {
    KEYS.iter().find(|k| k.name == name)
}

impl SessionKey {
    /// The source figures its value is made of.
    pub(super) fn needs(&self) -> Vec<StatusKey> {
        match self.origin {
            Source(k) => vec![k],
            Wire(wire, payload) => vec![wire, payload],
            HalfOpen => vec![S::NumConnections, S::NumPeers],
            Zero => vec![],
        }
    }

    /// Its value in `status`, as Deluge types it. A figure the source does not give is
    /// Deluge's neutral 0: clients index the answer by every key they asked for
    /// (deluge-console's `status` hangs otherwise).
    pub(super) fn value(&self, status: &SessionStatus) -> Value {
        let n = match self.origin {
            Source(k) => status.get(k),
            Wire(wire, payload) => status.get(wire).or_else(|| status.get(payload)),
            HalfOpen => status
                .get(S::NumConnections)
                .map(|c| c.saturating_sub(status.get(S::NumPeers).unwrap_or(0))),
            Zero => None,
        }
        .unwrap_or(0);
        match self.kind {
            Int => json!(n),
            Float => json!(n as f64),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The fixture of the keys Deluge's clients read, each with the clients reading it.
    const FIXTURE: &str = include_str!("../../tests/fixtures/deluge_session_keys.txt");

    /// Every key a client reads is answered, with the type the fixture names, and the
    /// table answers nothing the fixture does not list.
    #[test]
    fn every_key_clients_read_is_answered_with_deluges_type() {
        let mut listed = Vec::new();
        for line in FIXTURE
            .lines()
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
        {
            let mut fields = line.split_whitespace();
            let (name, kind) = (fields.next().unwrap(), fields.next().unwrap());
            let k = lookup(name).unwrap_or_else(|| panic!("{name} is not answered"));
            let want = if kind == "float" { Float } else { Int };
            assert_eq!(k.kind, want, "{name}");
            assert!(fields.next().is_some(), "{name}: no client named");
            listed.push(name);
        }
        for k in KEYS {
            assert!(listed.contains(&k.name), "{} is not in the fixture", k.name);
        }
    }

    /// Wire figures fall back to the payload ones; half-open is connections less peers;
    /// the types are Deluge's.
    #[test]
    fn values_and_types() {
        let status = SessionStatus::default()
            .with(S::TotalPayloadDownload, 7)
            .with(S::PayloadUploadRate, 3)
            .with(S::NumPeers, 2)
            .with(S::NumConnections, 5);
        let v = |name| lookup(name).unwrap().value(&status);
        assert_eq!(v("net.recv_bytes"), json!(7));
        assert_eq!(v("total_download"), json!(7));
        assert_eq!(v("net.sent_bytes"), json!(0));
        assert!(v("upload_rate").is_f64() && v("upload_rate") == json!(3.0));
        assert_eq!(v("peer.num_peers_half_open"), json!(3));
        assert_eq!(v("has_incoming_connections"), json!(0));
        assert!(v("read_hit_ratio").is_f64());
        let measured = status.with(S::TotalDownload, 9);
        assert_eq!(lookup("net.recv_bytes").unwrap().value(&measured), json!(9));
        assert!(lookup("num_connections").is_none() && lookup("dht_cache_nodes").is_none());
    }
}
