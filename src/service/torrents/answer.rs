//! The answer of `core.get_torrents_status` before it is a [`Value`]: the keys once, and
//! each torrent's values in their order. Built without a map per torrent (a dozen owned
//! key strings and a tree each), it becomes the method's `Value` for any transport
//! ([`TorrentsStatus::into_value`]), and a transport that writes its own wire format can
//! write it directly ([`TorrentsStatus::keys`], [`TorrentsStatus::rows`]): the Deluge RPC
//! server does, for a thousand torrents in a fraction of the time.

use serde_json::{Map, Value};

/// Torrents' status by id, the values of each in [`keys`](Self::keys)' order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TorrentsStatus {
    /// The keys answered, sorted, each once.
    keys: Vec<String>,
    /// Each torrent's id and values (`None`: a key this core does not know, left out as
    /// Deluge leaves it out), sorted by id, each id once.
    rows: Vec<(String, Vec<Option<Value>>)>,
}

impl TorrentsStatus {
    /// An answer on `keys` (sorted and made unique here) with no torrent yet.
    pub fn new(mut keys: Vec<String>) -> Self {
        keys.sort_unstable();
        keys.dedup();
        TorrentsStatus {
            keys,
            rows: Vec::new(),
        }
    }

    /// Room for `n` torrents.
    pub fn reserve(&mut self, n: usize) {
        self.rows.reserve_exact(n);
    }

    /// Adds torrent `id` with its values in [`keys`](Self::keys)' order.
    pub fn push(&mut self, id: String, values: Vec<Option<Value>>) {
        debug_assert_eq!(values.len(), self.keys.len());
        self.rows.push((id, values));
    }

    /// Sorts the torrents by id, each once (the last of an id asked twice stays), as the
    /// method's dict has them.
    pub fn finish(mut self) -> Self {
        self.rows.sort_by(|a, b| a.0.cmp(&b.0));
        let mut rows: Vec<(String, Vec<Option<Value>>)> = Vec::with_capacity(self.rows.len());
        for row in self.rows {
            match rows.last_mut() {
                Some(last) if last.0 == row.0 => *last = row,
                _ => rows.push(row),
            }
        }
        self.rows = rows;
        self
    }

    /// The keys answered, sorted, each once.
    pub fn keys(&self) -> &[String] {
        &self.keys
    }

    /// Each torrent's id and its values in [`keys`](Self::keys)' order (`None`: a key
    /// this core does not know, not part of the torrent's dict), sorted by id.
    pub fn rows(&self) -> &[(String, Vec<Option<Value>>)] {
        &self.rows
    }

    /// The method's answer: `{id: {key: value}}`.
    pub fn into_value(self) -> Value {
        let keys = self.keys;
        let torrents = self.rows.into_iter().map(|(id, values)| {
            let dict: Map<String, Value> = keys
                .iter()
                .zip(values)
                .filter_map(|(k, v)| Some((k.clone(), v?)))
                .collect();
            (id, Value::Object(dict))
        });
        Value::Object(torrents.collect())
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn keys_and_ids_come_sorted_and_once_and_unknown_keys_are_left_out() {
        let mut s = TorrentsStatus::new(vec!["state".into(), "name".into(), "state".into()]);
        assert_eq!(s.keys(), ["name", "state"]);
        s.reserve(3);
        s.push(
            "bb".into(),
            vec![Some(json!("name of bb")), Some(json!("state of bb"))],
        );
        s.push("aa".into(), vec![Some(json!("first")), None]);
        s.push("aa".into(), vec![Some(json!("again")), None]);
        let s = s.finish();
        assert_eq!(s.rows().len(), 2);
        assert_eq!(s.rows()[0].0, "aa");
        assert_eq!(
            s.into_value(),
            json!({
                "aa": {"name": "again"},
                "bb": {"name": "name of bb", "state": "state of bb"},
            })
        );
    }
}
