//! What the engine's copy of a torrent file says beyond the info dictionary (comment,
//! creator, trackers), and the same file with other trackers (same info dictionary, so
//! the same info-hash).

use crate::torrent::{TorrentError, Tracker};

/// The parts of a torrent file outside its info dictionary that Deluge shows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct Facts {
    /// `comment`.
    pub comment: Option<String>,
    /// `created by`.
    pub creator: Option<String>,
    /// `announce-list` by tier, else `announce` as tier 0.
    pub trackers: Vec<Tracker>,
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// The facts of the torrent file `bytes`, `None` if it does not parse.
pub(super) fn facts(bytes: &[u8]) -> Option<Facts> {
    let t = librqbit::torrent_from_bytes(bytes).ok()?;
    let mut trackers: Vec<Tracker> = t
        .announce_list
        .iter()
        .enumerate()
        .flat_map(|(tier, urls)| {
            urls.iter()
                .map(move |u| Tracker::new(text(u.as_ref()), tier as u32))
        })
        .filter(|tr| !tr.url.is_empty())
        .collect();
    if trackers.is_empty() {
        trackers.extend(
            t.announce
                .as_ref()
                .map(|u| Tracker::new(text(u.as_ref()), 0))
                .filter(|tr| !tr.url.is_empty()),
        );
    }
    Some(Facts {
        comment: t.comment.as_ref().map(|c| text(c.as_ref())),
        creator: t.created_by.as_ref().map(|c| text(c.as_ref())),
        trackers,
    })
}

/// Appends the bencoding of a byte string.
fn bstr(out: &mut Vec<u8>, s: &[u8]) {
    out.extend_from_slice(s.len().to_string().as_bytes());
    out.push(b':');
    out.extend_from_slice(s);
}

/// The bytes of an optional string of a parsed torrent file.
fn opt<'a>(v: &Option<librqbit::ByteBuf<'a>>) -> Option<&'a [u8]> {
    v.as_ref().map(|v| v.0)
}

/// Appends `key` and its byte string, if there is one.
fn field(out: &mut Vec<u8>, key: &[u8], value: Option<&[u8]>) {
    if let Some(value) = value {
        bstr(out, key);
        bstr(out, value);
    }
}

/// The torrent file `bytes` with `trackers` instead of its own (`announce` the first,
/// `announce-list` one list per tier); its info dictionary byte for byte, and its
/// comment, creator, creation date, encoding and publisher kept.
pub(super) fn with_trackers(bytes: &[u8], trackers: &[Tracker]) -> Result<Vec<u8>, TorrentError> {
    let t = librqbit::torrent_from_bytes(bytes)
        .map_err(|e| TorrentError::Engine(format!("the engine's torrent file: {e:#}")))?;
    let mut out = Vec::with_capacity(bytes.len() + 64);
    out.push(b'd');
    // Keys in byte order, as bencoding requires.
    if let Some(first) = trackers.first() {
        bstr(&mut out, b"announce");
        bstr(&mut out, first.url.as_bytes());
        bstr(&mut out, b"announce-list");
        out.push(b'l');
        let mut tiers: Vec<u32> = trackers.iter().map(|t| t.tier).collect();
        tiers.dedup();
        for tier in tiers {
            out.push(b'l');
            for tr in trackers.iter().filter(|t| t.tier == tier) {
                bstr(&mut out, tr.url.as_bytes());
            }
            out.push(b'e');
        }
        out.push(b'e');
    }
    field(&mut out, b"comment", opt(&t.comment));
    field(&mut out, b"created by", opt(&t.created_by));
    if let Some(date) = t.creation_date {
        bstr(&mut out, b"creation date");
        out.extend_from_slice(format!("i{date}e").as_bytes());
    }
    field(&mut out, b"encoding", opt(&t.encoding));
    bstr(&mut out, b"info");
    out.extend_from_slice(t.info.raw_bytes.as_ref());
    field(&mut out, b"publisher", opt(&t.publisher));
    field(&mut out, b"publisher-url", opt(&t.publisher_url));
    out.push(b'e');
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A torrent file of one 5-byte file with two tiers of trackers and a comment.
    fn sample() -> Vec<u8> {
        let info = b"d6:lengthi5e4:name1:a12:piece lengthi16384e6:pieces20:aaaaaaaaaaaaaaaaaaaae";
        let mut t = Vec::new();
        t.extend_from_slice(
            b"d8:announce13:http://a/ann113:announce-listll13:http://a/ann1el11:udp://b:1/x",
        );
        t.extend_from_slice(
            b"ee7:comment5:hello10:created by2:me13:creation datei1700000000e4:info",
        );
        t.extend_from_slice(info);
        t.push(b'e');
        t
    }

    #[test]
    fn facts_read_the_tiers_comment_and_creator() {
        let f = facts(&sample()).unwrap();
        assert_eq!(f.comment.as_deref(), Some("hello"));
        assert_eq!(f.creator.as_deref(), Some("me"));
        assert_eq!(
            f.trackers,
            vec![
                Tracker::new("http://a/ann1", 0),
                Tracker::new("udp://b:1/x", 1)
            ]
        );
        assert_eq!(facts(b"not a torrent"), None);
    }

    #[test]
    fn other_trackers_keep_the_info_hash_and_the_rest() {
        let before = librqbit::torrent_from_bytes(&sample()).unwrap().info_hash;
        let new = [
            Tracker::new("http://c/x", 0),
            Tracker::new("http://d/y", 0),
            Tracker::new("udp://e:2", 3),
        ];
        let bytes = with_trackers(&sample(), &new).unwrap();
        let parsed = librqbit::torrent_from_bytes(&bytes).unwrap();
        assert_eq!(parsed.info_hash, before);
        assert_eq!(parsed.creation_date, Some(1_700_000_000));
        let f = facts(&bytes).unwrap();
        assert_eq!(f.comment.as_deref(), Some("hello"));
        // Tiers are renumbered from 0 in a torrent file, in order.
        assert_eq!(
            f.trackers,
            vec![
                Tracker::new("http://c/x", 0),
                Tracker::new("http://d/y", 0),
                Tracker::new("udp://e:2", 1)
            ]
        );
        let none = with_trackers(&sample(), &[]).unwrap();
        assert_eq!(facts(&none).unwrap().trackers, vec![]);
        assert_eq!(
            librqbit::torrent_from_bytes(&none).unwrap().info_hash,
            before
        );
    }
}
