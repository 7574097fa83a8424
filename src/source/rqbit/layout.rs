//! Where a torrent's files go and how their places are shown, as Deluge 2.0.3 does it: a
//! multi-file torrent (its info dictionary has `files`, even a single one) in
//! `<location>/<name>/`, its files' paths `<name>/<path>`, its save path `<location>`; a
//! single-file torrent's file at `<location>/<file>`, its path the file's name.
//!
//! librqbit keeps one output folder per torrent, the folder its files' paths are relative
//! to: `<location>/<name>` for a multi-file torrent. A torrent whose output folder is not
//! named after it (added by an earlier version with a download location, which put the
//! files straight into it) is shown as it lies: that folder as its save path, its files'
//! paths without the name.

use std::borrow::Cow;
use std::path::{Component, Path, PathBuf};

use librqbit::ValidatedTorrentMetaV1Info;

use crate::torrent::TorrentError;

/// The folder a multi-file torrent's files go in under its location (its name; the
/// info-hash `id` for a nameless one, as libtorrent names it); `None` for a single-file
/// torrent.
pub(super) fn root<B: AsRef<[u8]>>(
    info: &ValidatedTorrentMetaV1Info<B>,
    id: &str,
) -> Option<String> {
    info.info().files.as_ref()?;
    Some(info.name().map_or_else(|| id.to_string(), Cow::into_owned))
}

/// The output folder of a torrent with `root` ([`root`]) at `location`: `location/root`,
/// or `location` itself for a single-file torrent. A name that is not one folder name
/// (a path separator, `.`, `..`) is refused: the files would land elsewhere.
pub(super) fn folder(location: &Path, root: Option<&str>) -> Result<PathBuf, TorrentError> {
    let location = normal(location);
    let Some(name) = root else {
        return Ok(location);
    };
    let mut parts = Path::new(name).components();
    match (parts.next(), parts.next()) {
        (Some(Component::Normal(part)), None) if part == name => Ok(location.join(part)),
        _ => Err(TorrentError::BadPath(format!(
            "the torrent's name {name:?} is not a folder name; its files would not go under {}",
            location.display()
        ))),
    }
}

/// `path` without a trailing separator or `.` parts (librqbit's default output folder of a
/// single-file torrent ends in one).
fn normal(path: &Path) -> PathBuf {
    path.components().collect()
}

/// Where a torrent shows it is: its save path, and the prefix of its files' paths.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Shown {
    /// Deluge's `save_path` / `download_location`.
    pub save_path: PathBuf,
    /// `<name>/` before each file's path inside the output folder, if any.
    pub prefix: Option<String>,
}

/// How a torrent with `root` ([`root`]) whose files are in `output_folder` is shown: a
/// multi-file torrent in a folder named after it as Deluge shows it (the folder's parent,
/// paths under the name); any other as its files lie (the folder, paths inside it).
pub(super) fn shown(output_folder: &Path, root: Option<&str>) -> Shown {
    let output_folder = normal(output_folder);
    if let Some(name) = root {
        let named = output_folder.file_name().is_some_and(|f| f == name);
        if let (true, Some(parent)) = (named, output_folder.parent()) {
            return Shown {
                save_path: parent.to_path_buf(),
                prefix: Some(format!("{name}/")),
            };
        }
    }
    Shown {
        save_path: output_folder,
        prefix: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_multi_file_torrent_goes_in_a_folder_named_after_it() {
        let loc = Path::new("/data/x/");
        assert_eq!(
            folder(loc, Some("pair")).unwrap(),
            PathBuf::from("/data/x/pair")
        );
        assert_eq!(folder(loc, None).unwrap(), PathBuf::from("/data/x"));
        for bad in ["", ".", "..", "a/b", "../up", "/abs", "a/"] {
            let err = folder(loc, Some(bad)).unwrap_err();
            assert!(matches!(err, TorrentError::BadPath(_)), "{bad:?}: {err}");
        }
    }

    #[test]
    fn it_is_shown_as_deluge_shows_it_where_its_folder_is_named_after_it() {
        assert_eq!(
            shown(Path::new("/data/x/pair"), Some("pair")),
            Shown {
                save_path: PathBuf::from("/data/x"),
                prefix: Some("pair/".into())
            }
        );
        // An earlier version's add with a location: files straight in it.
        assert_eq!(
            shown(Path::new("/data/x"), Some("pair")),
            Shown {
                save_path: PathBuf::from("/data/x"),
                prefix: None
            }
        );
        // A single file, in librqbit's default folder (a trailing separator).
        assert_eq!(
            shown(Path::new("/data/"), None),
            Shown {
                save_path: PathBuf::from("/data"),
                prefix: None
            }
        );
        assert_eq!(shown(Path::new("/data/pair"), None).prefix, None);
    }

    #[test]
    fn the_root_is_the_name_of_a_torrent_with_a_file_list() {
        let parse = |info: &[u8]| {
            let mut t = b"d4:info".to_vec();
            t.extend_from_slice(info);
            t.push(b'e');
            let t = librqbit::torrent_from_bytes(&t).unwrap();
            root(&t.info.data.validate().unwrap(), "hash")
        };
        let pieces = "6:pieces20:aaaaaaaaaaaaaaaaaaaa";
        let multi = format!(
            "d5:filesld6:lengthi5e4:pathl5:a.bineee4:name4:pair12:piece lengthi16384e{pieces}e"
        );
        assert_eq!(parse(multi.as_bytes()).as_deref(), Some("pair"));
        let nameless =
            format!("d5:filesld6:lengthi5e4:pathl5:a.bineee12:piece lengthi16384e{pieces}e");
        assert_eq!(parse(nameless.as_bytes()).as_deref(), Some("hash"));
        let single = format!("d6:lengthi5e4:name5:a.bin12:piece lengthi16384e{pieces}e");
        assert_eq!(parse(single.as_bytes()), None);
    }
}
