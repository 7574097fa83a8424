//! `web.get_torrent_files`'s answer: a torrent's files as deluge-web's tree.
//!
//! The root is `{"type": "dir", "contents": {...}}`; a directory is `{"type": "dir",
//! "contents", "path", "size", "priority" (its files' when they agree, else 9),
//! "progresses" (each file's done bytes / 100, the files below it in index order),
//! "progress" (their sum over the size, × 100)}`; a file is its `files` entry of
//! `core.get_torrent_status` (`index`, `path`, `size`, `offset`) with `type: "file"`,
//! `progress` and `priority`. Paths are XML-escaped, as deluge-web escapes them.

use serde_json::{json, Map, Value};

/// Escapes `&`, `<` and `>` (Python's `xml.sax.saxutils.escape`).
pub(super) fn xml_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// What a directory gathers from the files below it.
#[derive(Default)]
struct DirInfo {
    size: f64,
    priority: Option<i64>,
    progresses: Vec<f64>,
}

/// The tree of `files` (`core.get_torrent_status`'s entries), with each file's progress
/// and priority from `progress` and `priorities` (by index; missing: 0).
pub(super) fn build(files: &[Value], progress: &[Value], priorities: &[Value]) -> Value {
    let mut dirs: std::collections::BTreeMap<String, DirInfo> = Default::default();
    let mut root = json!({"type": "dir", "contents": {}});
    for (index, file) in files.iter().enumerate() {
        let mut entry = file.as_object().cloned().unwrap_or_default();
        let path = xml_escape(entry.get("path").and_then(Value::as_str).unwrap_or(""));
        let size = entry.get("size").and_then(Value::as_f64).unwrap_or(0.0);
        let done = progress.get(index).cloned().unwrap_or(json!(0.0));
        let priority = priorities.get(index).and_then(Value::as_i64).unwrap_or(0);
        let done_f = done.as_f64().unwrap_or(0.0);
        entry.insert("type".into(), json!("file"));
        entry.insert("progress".into(), done);
        entry.insert("priority".into(), json!(priority));
        entry.insert("index".into(), json!(index));
        entry.insert("path".into(), json!(path));
        let mut dir = parent(&path);
        while let Some(d) = dir {
            let info = dirs.entry(d.to_string()).or_default();
            info.size += size;
            info.priority = match info.priority {
                None => Some(priority),
                Some(p) if p != priority => Some(9),
                same => same,
            };
            info.progresses.push(size * done_f / 100.0);
            dir = parent(d);
        }
        insert(&mut root, &path, Value::Object(entry));
    }
    for (path, info) in &dirs {
        let Some(node) = find_dir(&mut root, path) else {
            continue;
        };
        let sum: f64 = info.progresses.iter().sum();
        let progress = if info.size > 0.0 {
            sum / info.size * 100.0
        } else {
            0.0
        };
        node.insert("size".into(), number(info.size));
        node.insert("priority".into(), json!(info.priority.unwrap_or(0)));
        node.insert("progresses".into(), json!(info.progresses));
        node.insert("progress".into(), json!(progress));
        node.insert("path".into(), json!(path));
    }
    root
}

/// A size as an integer when it is one.
fn number(x: f64) -> Value {
    if x.fract() == 0.0 && x >= 0.0 && x < 2f64.powi(63) {
        json!(x as u64)
    } else {
        json!(x)
    }
}

/// The directory part of `path` (`os.path.dirname`), `None` at the top.
fn parent(path: &str) -> Option<&str> {
    path.rsplit_once('/')
        .map(|(dir, _)| dir)
        .filter(|d| !d.is_empty())
}

/// Puts `entry` at `path`, making the directories on the way.
fn insert(root: &mut Value, path: &str, entry: Value) {
    let mut node = root;
    let mut parts = path.split('/').peekable();
    while let Some(part) = parts.next() {
        let contents = node
            .as_object_mut()
            .and_then(|o| o.get_mut("contents"))
            .and_then(Value::as_object_mut);
        let Some(contents) = contents else {
            return;
        };
        if parts.peek().is_none() {
            contents.insert(part.to_string(), entry);
            return;
        }
        node = contents
            .entry(part.to_string())
            .or_insert_with(|| json!({"type": "dir", "contents": {}}));
    }
}

/// The directory node at `path`.
fn find_dir<'a>(root: &'a mut Value, path: &str) -> Option<&'a mut Map<String, Value>> {
    let mut node = root;
    for part in path.split('/') {
        node = node.get_mut("contents")?.get_mut(part)?;
    }
    node.as_object_mut()
        .filter(|o| o.get("type") == Some(&json!("dir")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deluge_webs_tree_of_a_torrent_with_subdirectories() {
        // Files, progress and priorities as deluged 2.0.3 gave them for this layout, and
        // the tree deluge-web 2.0.3 answered (progress as a fraction, as deluged gives it).
        let files = json!([
            {"index": 0, "path": "dir/a.bin", "size": 300000, "offset": 0},
            {"index": 1, "path": "dir/c&.txt", "size": 3, "offset": 300000},
            {"index": 2, "path": "dir/sub/b.bin", "size": 70000, "offset": 300003},
        ]);
        let tree = build(
            files.as_array().unwrap(),
            &[json!(0.5), json!(0.0), json!(1.0)],
            &[json!(4), json!(4), json!(1)],
        );
        let dir = &tree["contents"]["dir"];
        assert_eq!(tree["type"], "dir");
        assert_eq!(dir["type"], "dir");
        assert_eq!(dir["path"], "dir");
        assert_eq!(dir["size"], 370003);
        assert_eq!(dir["priority"], 9, "files of priorities 4 and 1");
        assert_eq!(dir["progresses"], json!([1500.0, 0.0, 700.0]));
        let expected = 2200.0 / 370003.0 * 100.0;
        assert!((dir["progress"].as_f64().unwrap() - expected).abs() < 1e-9);
        let c = &dir["contents"]["c&amp;.txt"];
        assert_eq!(
            c,
            &json!({"type": "file", "index": 1, "path": "dir/c&amp;.txt", "size": 3,
                    "offset": 300000, "progress": 0.0, "priority": 4})
        );
        let sub = &dir["contents"]["sub"];
        assert_eq!(
            (&sub["path"], &sub["size"], &sub["priority"]),
            (&json!("dir/sub"), &json!(70000), &json!(1))
        );
        assert_eq!(sub["contents"]["b.bin"]["progress"], 1.0);
    }

    #[test]
    fn a_single_file_sits_at_the_root() {
        let files = json!([{"index": 0, "path": "one.iso", "size": 10, "offset": 0}]);
        let tree = build(files.as_array().unwrap(), &[json!(0.0)], &[json!(4)]);
        assert_eq!(
            tree,
            json!({"type": "dir", "contents": {"one.iso": {"type": "file", "index": 0,
                "path": "one.iso", "size": 10, "offset": 0, "progress": 0.0, "priority": 4}}})
        );
    }
}
