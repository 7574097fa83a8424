//! RPC messages: requests in, responses, errors and events out.
//!
//! - Request payload: a list of calls `[request_id, method, args, kwargs]`.
//! - Response: `[1, request_id, value]`.
//! - Error: `[2, request_id, exception_name, args, kwargs, traceback]`; every element of
//!   `args` is a string, since deluge-client joins them with `", "`.
//! - Event: `[3, event_name, args]`.

// The server's half goes unused in a client-only build (feature `rpc-client`).
#![cfg_attr(not(feature = "rpc"), allow(dead_code))]

use serde_json::{json, Map, Value};

use crate::rpc::codec::Writer;
use crate::service::TorrentsStatus;

/// Message type of a response.
pub const RPC_RESPONSE: i64 = 1;
/// Message type of an error.
pub const RPC_ERROR: i64 = 2;
/// Message type of an event.
pub const RPC_EVENT: i64 = 3;

/// One call of a request payload.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    /// The client's id for the call, echoed in the answer.
    pub id: Value,
    /// The method, e.g. `"stats.get_totals"`.
    pub method: String,
    /// Positional arguments.
    pub args: Vec<Value>,
    /// Keyword arguments.
    pub kwargs: Map<String, Value>,
}

/// A call that could not be understood; answered with an error if it had an id.
#[derive(Debug, Clone, PartialEq)]
pub struct Malformed {
    /// The id, if one could be read.
    pub id: Option<Value>,
    /// What is wrong.
    pub reason: String,
}

/// Why a whole request payload was rejected (a single bad call is a [`Malformed`]).
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PayloadError {
    /// The payload is not a list.
    #[error("request payload is not a list of calls")]
    NotAList,
}

/// Splits a decoded payload into its calls, in order.
pub fn parse_payload(payload: Value) -> Result<Vec<Result<Request, Malformed>>, PayloadError> {
    let Value::Array(calls) = payload else {
        return Err(PayloadError::NotAList);
    };
    Ok(calls.into_iter().map(parse_call).collect())
}

fn parse_call(call: Value) -> Result<Request, Malformed> {
    let Value::Array(mut parts) = call else {
        return Err(Malformed {
            id: None,
            reason: "a call is not a list".into(),
        });
    };
    let id = parts
        .first()
        .filter(|v| v.is_number() || v.is_string())
        .cloned();
    let bad = |reason: &str| Malformed {
        id: id.clone(),
        reason: reason.to_string(),
    };
    if parts.len() != 4 {
        return Err(bad("a call must be [request_id, method, args, kwargs]"));
    }
    let kwargs = match parts.pop() {
        Some(Value::Object(m)) => m,
        _ => return Err(bad("kwargs must be a dict")),
    };
    let args = match parts.pop() {
        Some(Value::Array(a)) => a,
        _ => return Err(bad("args must be a list")),
    };
    let method = match parts.pop() {
        Some(Value::String(m)) => m,
        _ => return Err(bad("method must be a string")),
    };
    let id = id
        .clone()
        .ok_or_else(|| bad("request_id must be a number"))?;
    Ok(Request {
        id,
        method,
        args,
        kwargs,
    })
}

/// An error as sent on the wire.
#[derive(Debug, Clone, PartialEq)]
pub struct RemoteError {
    /// The exception class name, e.g. `BadLoginError`.
    pub name: String,
    /// Its arguments, all strings.
    pub args: Vec<String>,
    /// A traceback-like text.
    pub traceback: String,
}

impl RemoteError {
    /// The exception class a client reports: the inner class of a `WrappedException`
    /// (`TypeError`, `ValueError`, `AttributeError`, ...), else the name as sent
    /// (`NotAuthorizedError`, `BadLoginError`, ...).
    pub fn class(&self) -> &str {
        match (self.name.as_str(), self.args.as_slice()) {
            ("WrappedException", [_, inner, ..]) if !inner.is_empty() => inner,
            (name, _) => name,
        }
    }

    /// The exception's message, as Deluge's client would show it: a `WrappedException`'s
    /// message argument, `NotAuthorizedError`'s "Auth level too low: HAVE < REQUIRED",
    /// else the first argument (`BadLoginError`'s reason); empty if there is none.
    pub fn message(&self) -> String {
        match (self.name.as_str(), self.args.as_slice()) {
            ("NotAuthorizedError", [have, required]) => {
                format!("Auth level too low: {have} < {required}")
            }
            ("IncompatibleClient", [version]) => format!(
                "Your deluge client is not compatible with the daemon. Please upgrade your \
                 client to {version}"
            ),
            (_, [message, ..]) => message.clone(),
            (_, []) => String::new(),
        }
    }

    /// Deluge's wrapper for non-Deluge exceptions: args are `[message, inner class name,
    /// traceback]`.
    pub fn wrapped(inner: &str, message: impl Into<String>) -> Self {
        let message = message.into();
        let traceback = format!("{inner}: {message}");
        RemoteError {
            name: "WrappedException".into(),
            args: vec![message, inner.to_string(), traceback.clone()],
            traceback,
        }
    }
}

/// `[1, id, value]`. The value is moved in, not copied (`json!` would serialize it
/// again: a whole second tree for a large answer).
pub fn response(id: &Value, value: Value) -> Value {
    Value::Array(vec![json!(RPC_RESPONSE), id.clone(), value])
}

/// `[1, id, {torrent id: {key: value}}]` written from a [`TorrentsStatus`]: the bytes
/// of `codec::encode(&response(id, status.into_value()))`, without building that value.
pub fn encode_torrents_response(id: &Value, status: &TorrentsStatus) -> Vec<u8> {
    let keys = status.keys();
    let mut w = Writer::with_capacity(64 + status.rows().len() * (48 + 24 * keys.len()));
    let list = w.list(3);
    w.value(&json!(RPC_RESPONSE));
    w.value(id);
    let torrents = w.dict(status.rows().len());
    for (torrent, values) in status.rows() {
        w.str(torrent);
        let dict = w.dict(values.iter().flatten().count());
        for (key, value) in keys.iter().zip(values) {
            if let Some(value) = value {
                w.str(key);
                w.value(value);
            }
        }
        w.end(dict);
    }
    w.end(torrents);
    w.end(list);
    w.into_bytes()
}

/// `[2, id, name, args, {}, traceback]`.
pub fn error(id: &Value, e: &RemoteError) -> Value {
    json!([RPC_ERROR, id, e.name, e.args, {}, e.traceback])
}

/// `[3, name, args]` (the arguments moved in, not copied).
pub fn event(name: &str, args: Vec<Value>) -> Value {
    Value::Array(vec![json!(RPC_EVENT), json!(name), Value::Array(args)])
}

/// Whether Deluge answers `method` with dicts keyed by integers (the wire must write
/// those keys as integers: `deluge.ui.client` looks levels up by `int`).
pub fn int_keyed(method: &str) -> bool {
    method == "core.get_auth_levels_mappings"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_batches_and_flags_bad_calls() {
        let payload = json!([
            [1, "daemon.info", [], {}],
            [2, "stats.get_stats", [["upload_rate"], 1], {"x": 1}],
            [3, "m", {}, {}],
            "junk",
            [4, 5, [], {}],
        ]);
        let calls = parse_payload(payload).unwrap();
        assert_eq!(calls.len(), 5);
        assert_eq!(calls[0].as_ref().unwrap().method, "daemon.info");
        assert_eq!(calls[1].as_ref().unwrap().kwargs["x"], json!(1));
        assert_eq!(calls[2].as_ref().unwrap_err().id, Some(json!(3)));
        assert_eq!(calls[3].as_ref().unwrap_err().id, None);
        assert!(calls[4].as_ref().unwrap_err().reason.contains("method"));
        assert_eq!(parse_payload(json!({"a": 1})), Err(PayloadError::NotAList));
    }

    #[test]
    fn a_torrent_status_answer_is_written_as_its_value_would_be() {
        use crate::rpc::codec::{decode, encode};
        let keys = [
            "name",
            "ratio",
            "queue",
            "nosuch",
            "files",
            "is_finished",
            "total_done",
        ];
        for n in [0, 1, 24, 25, 70] {
            let mut status = TorrentsStatus::new(keys.iter().map(|k| k.to_string()).collect());
            status.reserve(n);
            for i in (0..n).rev() {
                let values = status
                    .keys()
                    .iter()
                    .map(|k| match k.as_str() {
                        "name" => Some(json!(format!("torrent {i} \u{e9}").repeat(i % 5 + 1))),
                        "ratio" => Some(json!(i as f64 / 3.0)),
                        "queue" => Some(json!(-1)),
                        "files" => Some(json!([{"index": 0, "path": "a/b", "size": 1u64 << 40}])),
                        "is_finished" => Some(json!(i % 2 == 0)),
                        "total_done" => Some(json!(i as u64 * 1_000_003)),
                        _ => None,
                    })
                    .collect();
                status.push(format!("{i:040x}"), values);
            }
            let status = status.finish();
            let id = json!(7);
            let written = encode_torrents_response(&id, &status);
            let as_value = response(&id, status.clone().into_value());
            assert_eq!(written, encode(&as_value), "{n} torrents");
            assert_eq!(decode(&written, 10).unwrap(), as_value);
        }
    }

    #[test]
    fn remote_errors_unwrap() {
        let e = RemoteError::wrapped("TypeError", "f() takes no arguments");
        assert_eq!(e.name, "WrappedException");
        assert_eq!(e.class(), "TypeError");
        assert_eq!(e.message(), "f() takes no arguments");
        let e = RemoteError {
            name: "NotAuthorizedError".into(),
            args: vec!["0".into(), "5".into()],
            traceback: String::new(),
        };
        assert_eq!(e.class(), "NotAuthorizedError");
        assert_eq!(e.message(), "Auth level too low: 0 < 5");
        let e = RemoteError {
            name: "BadLoginError".into(),
            args: vec!["Password does not match".into(), "localclient".into()],
            traceback: String::new(),
        };
        assert_eq!(
            (e.class(), e.message().as_str()),
            ("BadLoginError", "Password does not match")
        );
    }
}
