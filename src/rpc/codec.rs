//! rencode, the subset Deluge speaks, to and from `serde_json::Value`.
//!
//! Written here rather than taken from `deluge-rpc-rencode` 0.4.0, which on Deluge's own
//! encodings decodes big integers (`0x3D`) as floats and re-encodes 64-bit floats as
//! 32-bit ones (a Unix timestamp loses its fraction).
//!
//! Mapping: integers to JSON integers (big integers beyond `u64` become floats, so a
//! method rejects them with a `TypeError` instead of the message being lost); floats of
//! either width to `f64` (NaN and infinities, which JSON lacks, to `null`); byte strings
//! to strings (UTF-8, invalid sequences replaced); lists and tuples to arrays; dict keys
//! that are numbers, booleans or `None` to their text. Encoding writes floats as 64-bit and
//! dict keys as strings, or integer-looking keys as integers with [`encode_int_keys`].
//! Decoding enforces a nesting-depth limit and never reads past its input.

// The server's half goes unused in a client-only build (feature `rpc-client`).
#![cfg_attr(not(feature = "rpc"), allow(dead_code))]

use serde_json::{Map, Number, Value};

const CHR_LIST: u8 = 59;
const CHR_DICT: u8 = 60;
const CHR_INT: u8 = 61;
const CHR_INT1: u8 = 62;
const CHR_INT2: u8 = 63;
const CHR_INT4: u8 = 64;
const CHR_INT8: u8 = 65;
const CHR_FLOAT32: u8 = 66;
const CHR_FLOAT64: u8 = 44;
const CHR_TRUE: u8 = 67;
const CHR_FALSE: u8 = 68;
const CHR_NONE: u8 = 69;
const CHR_TERM: u8 = 127;
const INT_POS_FIXED_START: u8 = 0;
const INT_POS_FIXED_COUNT: u8 = 44;
const INT_NEG_FIXED_START: u8 = 70;
const INT_NEG_FIXED_COUNT: u8 = 32;
const DICT_FIXED_START: u8 = 102;
const DICT_FIXED_COUNT: u8 = 25;
const STR_FIXED_START: u8 = 128;
const STR_FIXED_COUNT: u8 = 64;
const LIST_FIXED_START: u8 = 192;
const LIST_FIXED_COUNT: u8 = 64;
const MAX_INT_LENGTH: usize = 64;

/// Why bytes are not valid rencode.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CodecError {
    /// The input ended inside a value.
    #[error("truncated rencode at byte {0}")]
    Truncated(usize),
    /// A byte that starts no value.
    #[error("invalid rencode type byte 0x{byte:02x} at {at}")]
    BadType {
        /// The byte.
        byte: u8,
        /// Its offset.
        at: usize,
    },
    /// Nesting deeper than allowed.
    #[error("rencode nested deeper than {0}")]
    TooDeep(usize),
    /// A malformed length, integer or dict key.
    #[error("malformed rencode at byte {at}: {what}")]
    Malformed {
        /// Offset.
        at: usize,
        /// What is wrong.
        what: &'static str,
    },
}

/// Encodes a value; dict keys go out as strings.
pub fn encode(value: &Value) -> Vec<u8> {
    let mut out = Vec::with_capacity(64);
    encode_into(value, Keys::Str, &mut out);
    out
}

/// Encodes a value whose dict keys that are integers in canonical form (`"0"`, `"10"`,
/// `"-3"`, within `i64`) go out as rencode integers: the shape of Deluge answers keyed by
/// numbers, such as `core.get_auth_levels_mappings`, which `Value` cannot carry.
pub fn encode_int_keys(value: &Value) -> Vec<u8> {
    let mut out = Vec::with_capacity(64);
    encode_into(value, Keys::IntWhereCanonical, &mut out);
    out
}

/// Writes rencode piece by piece, for an answer that is not a [`Value`]: the same bytes
/// [`encode`] gives for the same data, if dict keys are written in sorted order, each once
/// (a `Value`'s dict is sorted by key).
#[derive(Debug, Default)]
pub struct Writer {
    out: Vec<u8>,
}

/// A list or dict begun by [`Writer::list`] or [`Writer::dict`], ended by [`Writer::end`].
#[derive(Debug)]
#[must_use = "a list or dict must be ended"]
pub struct Open {
    fixed: bool,
}

impl Writer {
    /// A writer with room for `bytes`.
    pub fn with_capacity(bytes: usize) -> Self {
        Writer {
            out: Vec::with_capacity(bytes),
        }
    }

    /// Writes `value` (dict keys as strings).
    pub fn value(&mut self, value: &Value) {
        encode_into(value, Keys::Str, &mut self.out);
    }

    /// Writes the string `s`.
    pub fn str(&mut self, s: &str) {
        encode_str(s.as_bytes(), &mut self.out);
    }

    /// Begins a list of `len` items.
    pub fn list(&mut self, len: usize) -> Open {
        self.open(len, LIST_FIXED_START, LIST_FIXED_COUNT, CHR_LIST)
    }

    /// Begins a dict of `len` entries (each a key, then its value).
    pub fn dict(&mut self, len: usize) -> Open {
        self.open(len, DICT_FIXED_START, DICT_FIXED_COUNT, CHR_DICT)
    }

    /// Begins a list or dict: its length in the type byte when short, else its opener
    /// (ended by a terminator).
    fn open(&mut self, len: usize, fixed_start: u8, fixed_count: u8, opener: u8) -> Open {
        let fixed = len < usize::from(fixed_count);
        self.out.push(if fixed {
            fixed_start + len as u8
        } else {
            opener
        });
        Open { fixed }
    }

    /// Ends a list or dict once its items are written.
    pub fn end(&mut self, open: Open) {
        if !open.fixed {
            self.out.push(CHR_TERM);
        }
    }

    /// The bytes written.
    pub fn into_bytes(self) -> Vec<u8> {
        self.out
    }
}

/// How dict keys are written.
#[derive(Clone, Copy)]
enum Keys {
    Str,
    IntWhereCanonical,
}

/// `Some(i)` when `key` is exactly how `i` prints.
fn canonical_int(key: &str) -> Option<i64> {
    key.parse::<i64>().ok().filter(|i| i.to_string() == key)
}

fn encode_into(value: &Value, keys: Keys, out: &mut Vec<u8>) {
    match value {
        Value::Null => out.push(CHR_NONE),
        Value::Bool(true) => out.push(CHR_TRUE),
        Value::Bool(false) => out.push(CHR_FALSE),
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                encode_int(i, out)
            } else if let Some(u) = n.as_u64() {
                out.push(CHR_INT);
                out.extend_from_slice(u.to_string().as_bytes());
                out.push(CHR_TERM);
            } else {
                out.push(CHR_FLOAT64);
                out.extend_from_slice(&n.as_f64().unwrap_or(0.0).to_be_bytes());
            }
        }
        Value::String(s) => encode_str(s.as_bytes(), out),
        Value::Array(items) => {
            if items.len() < LIST_FIXED_COUNT as usize {
                out.push(LIST_FIXED_START + items.len() as u8);
                items.iter().for_each(|v| encode_into(v, keys, out));
            } else {
                out.push(CHR_LIST);
                items.iter().for_each(|v| encode_into(v, keys, out));
                out.push(CHR_TERM);
            }
        }
        Value::Object(map) => {
            let fixed = map.len() < DICT_FIXED_COUNT as usize;
            out.push(if fixed {
                DICT_FIXED_START + map.len() as u8
            } else {
                CHR_DICT
            });
            for (k, v) in map {
                match keys {
                    Keys::IntWhereCanonical => match canonical_int(k) {
                        Some(i) => encode_int(i, out),
                        None => encode_str(k.as_bytes(), out),
                    },
                    Keys::Str => encode_str(k.as_bytes(), out),
                }
                encode_into(v, keys, out);
            }
            if !fixed {
                out.push(CHR_TERM);
            }
        }
    }
}

fn encode_int(i: i64, out: &mut Vec<u8>) {
    if (0..i64::from(INT_POS_FIXED_COUNT)).contains(&i) {
        out.push(INT_POS_FIXED_START + i as u8);
    } else if (-i64::from(INT_NEG_FIXED_COUNT)..0).contains(&i) {
        out.push((i64::from(INT_NEG_FIXED_START) - 1 - i) as u8);
    } else if let Ok(v) = i8::try_from(i) {
        out.push(CHR_INT1);
        out.extend_from_slice(&v.to_be_bytes());
    } else if let Ok(v) = i16::try_from(i) {
        out.push(CHR_INT2);
        out.extend_from_slice(&v.to_be_bytes());
    } else if let Ok(v) = i32::try_from(i) {
        out.push(CHR_INT4);
        out.extend_from_slice(&v.to_be_bytes());
    } else {
        out.push(CHR_INT8);
        out.extend_from_slice(&i.to_be_bytes());
    }
}

fn encode_str(bytes: &[u8], out: &mut Vec<u8>) {
    if bytes.len() < STR_FIXED_COUNT as usize {
        out.push(STR_FIXED_START + bytes.len() as u8);
    } else {
        out.extend_from_slice(bytes.len().to_string().as_bytes());
        out.push(b':');
    }
    out.extend_from_slice(bytes);
}

/// Decodes one value from the start of `input` (trailing bytes are ignored, as Deluge
/// does), nesting at most `max_depth` lists or dicts deep.
pub fn decode(input: &[u8], max_depth: usize) -> Result<Value, CodecError> {
    let mut d = Decoder {
        input,
        pos: 0,
        max_depth,
    };
    d.value(0)
}

struct Decoder<'a> {
    input: &'a [u8],
    pos: usize,
    max_depth: usize,
}

impl<'a> Decoder<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], CodecError> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.input.len())
            .ok_or(CodecError::Truncated(self.input.len()))?;
        let bytes = &self.input[self.pos..end];
        self.pos = end;
        Ok(bytes)
    }

    fn byte(&mut self) -> Result<u8, CodecError> {
        Ok(self.take(1)?[0])
    }

    fn peek(&self) -> Result<u8, CodecError> {
        self.input
            .get(self.pos)
            .copied()
            .ok_or(CodecError::Truncated(self.pos))
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], CodecError> {
        Ok(self.take(N)?.try_into().expect("took N bytes"))
    }

    fn nested(&self, depth: usize) -> Result<usize, CodecError> {
        if depth >= self.max_depth {
            return Err(CodecError::TooDeep(self.max_depth));
        }
        Ok(depth + 1)
    }

    fn value(&mut self, depth: usize) -> Result<Value, CodecError> {
        let at = self.pos;
        let t = self.byte()?;
        Ok(match t {
            CHR_NONE => Value::Null,
            CHR_TRUE => Value::Bool(true),
            CHR_FALSE => Value::Bool(false),
            CHR_INT1 => Value::from(i8::from_be_bytes(self.array()?)),
            CHR_INT2 => Value::from(i16::from_be_bytes(self.array()?)),
            CHR_INT4 => Value::from(i32::from_be_bytes(self.array()?)),
            CHR_INT8 => Value::from(i64::from_be_bytes(self.array()?)),
            CHR_FLOAT32 => float(f64::from(f32::from_be_bytes(self.array()?))),
            CHR_FLOAT64 => float(f64::from_be_bytes(self.array()?)),
            CHR_INT => self.big_int(at)?,
            b'0'..=b'9' => {
                self.pos = at;
                let len = self.length(at)?;
                Value::String(String::from_utf8_lossy(self.take(len)?).into_owned())
            }
            CHR_LIST => {
                let depth = self.nested(depth)?;
                let mut items = Vec::new();
                while self.peek()? != CHR_TERM {
                    items.push(self.value(depth)?);
                }
                self.pos += 1;
                Value::Array(items)
            }
            CHR_DICT => {
                let depth = self.nested(depth)?;
                let mut map = Map::new();
                while self.peek()? != CHR_TERM {
                    let (k, v) = self.pair(depth)?;
                    map.insert(k, v);
                }
                self.pos += 1;
                Value::Object(map)
            }
            _ if t < INT_POS_FIXED_START + INT_POS_FIXED_COUNT => Value::from(t),
            _ if (INT_NEG_FIXED_START..INT_NEG_FIXED_START + INT_NEG_FIXED_COUNT).contains(&t) => {
                Value::from(i64::from(INT_NEG_FIXED_START) - 1 - i64::from(t))
            }
            _ if (DICT_FIXED_START..DICT_FIXED_START + DICT_FIXED_COUNT).contains(&t) => {
                let depth = self.nested(depth)?;
                let mut map = Map::new();
                for _ in 0..t - DICT_FIXED_START {
                    let (k, v) = self.pair(depth)?;
                    map.insert(k, v);
                }
                Value::Object(map)
            }
            _ if (STR_FIXED_START..STR_FIXED_START + STR_FIXED_COUNT).contains(&t) => {
                let len = usize::from(t - STR_FIXED_START);
                Value::String(String::from_utf8_lossy(self.take(len)?).into_owned())
            }
            _ if t >= LIST_FIXED_START => {
                let depth = self.nested(depth)?;
                let n = usize::from(t - LIST_FIXED_START);
                let mut items = Vec::with_capacity(n);
                for _ in 0..n {
                    items.push(self.value(depth)?);
                }
                Value::Array(items)
            }
            byte => return Err(CodecError::BadType { byte, at }),
        })
    }

    fn length(&mut self, at: usize) -> Result<usize, CodecError> {
        let rest = &self.input[self.pos..];
        let colon = rest
            .iter()
            .take(20)
            .position(|&b| b == b':')
            .ok_or(CodecError::Malformed {
                at,
                what: "string length without ':'",
            })?;
        let digits = std::str::from_utf8(&rest[..colon]).unwrap_or("x");
        let len: usize = digits.parse().map_err(|_| CodecError::Malformed {
            at,
            what: "bad string length",
        })?;
        self.pos += colon + 1;
        Ok(len)
    }

    fn big_int(&mut self, at: usize) -> Result<Value, CodecError> {
        let rest = &self.input[self.pos..];
        let end = rest
            .iter()
            .take(MAX_INT_LENGTH + 1)
            .position(|&b| b == CHR_TERM)
            .ok_or(CodecError::Malformed {
                at,
                what: "unterminated or over-long integer",
            })?;
        let text = std::str::from_utf8(&rest[..end]).map_err(|_| CodecError::Malformed {
            at,
            what: "integer digits are not ASCII",
        })?;
        self.pos += end + 1;
        let bad = CodecError::Malformed {
            at,
            what: "integer digits are not a number",
        };
        let body = text.strip_prefix('-').unwrap_or(text);
        if body.is_empty() || !body.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad);
        }
        if let Ok(i) = text.parse::<i64>() {
            return Ok(Value::from(i));
        }
        if let Ok(u) = text.parse::<u64>() {
            return Ok(Value::from(u));
        }
        Ok(float(text.parse::<f64>().map_err(|_| bad)?))
    }

    fn pair(&mut self, depth: usize) -> Result<(String, Value), CodecError> {
        let at = self.pos;
        let key = match self.value(depth)? {
            Value::String(s) => s,
            Value::Number(n) => n.to_string(),
            Value::Bool(b) => if b { "True" } else { "False" }.to_string(),
            Value::Null => "None".to_string(),
            _ => {
                return Err(CodecError::Malformed {
                    at,
                    what: "dict key is a list or dict",
                })
            }
        };
        Ok((key, self.value(depth)?))
    }
}

fn float(f: f64) -> Value {
    Number::from_f64(f).map_or(Value::Null, Value::Number)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn known_encodings() {
        // Byte strings produced by Deluge 2.0.3's own rencode (python3 deluge.rencode).
        let cases: Vec<(Value, &str)> = vec![
            (json!(0), "00"),
            (json!(43), "2b"),
            (json!(44), "3e2c"),
            (json!(-1), "46"),
            (json!(-32), "65"),
            (json!(-33), "3edf"),
            (json!(128), "3f0080"),
            (json!(32768), "4000008000"),
            (json!(2147483648i64), "410000000080000000"),
            (
                json!(9223372036854775808u64),
                "3d393232333337323033363835343737353830387f",
            ),
            (json!(true), "43"),
            (json!(null), "45"),
            (json!("a"), "8161"),
            (json!([1, 2]), "c20102"),
            (json!({"a": 1}), "678161"),
        ];
        for (value, hex) in cases {
            let bytes: Vec<u8> = (0..hex.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
                .collect();
            if hex != "678161" {
                assert_eq!(encode(&value), bytes, "{value}");
            }
            if value != json!({"a": 1}) {
                assert_eq!(decode(&bytes, 8).unwrap(), value, "{hex}");
            }
        }
        assert_eq!(
            decode(&[0x67, 0x81, b'a', 0x01], 8).unwrap(),
            json!({"a": 1})
        );
        // f32 from Deluge, f64 ours
        assert_eq!(decode(&[0x42, 0x3f, 0xc0, 0, 0], 8).unwrap(), json!(1.5));
        assert_eq!(encode(&json!(1.5))[0], CHR_FLOAT64);
    }

    #[test]
    fn int_keys_where_deluge_sends_them() {
        // Deluge 2.0.3's rencode of {-3: "y", 0: "NONE", "01": "x", "a": 1}, pairs in
        // this order: only canonical integers become integer keys.
        let v = json!({"-3": "y", "0": "NONE", "01": "x", "a": 1});
        let hex: String = encode_int_keys(&v)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(hex, "6a48817900844e4f4e458230318178816101");
        assert_eq!(decode(&encode_int_keys(&v), 8).unwrap(), v);
        assert_eq!(encode(&json!({"0": 1}))[1], STR_FIXED_START + 1);
    }

    #[test]
    fn limits_and_garbage() {
        let deep: Vec<u8> = std::iter::repeat_n(0xC1u8, 100_000).chain([0x00]).collect();
        assert_eq!(decode(&deep, 64), Err(CodecError::TooDeep(64)));
        assert!(decode(&[0x3b, 0x01], 8).is_err(), "unterminated list");
        assert!(
            decode(b"999999:abc", 8).is_err(),
            "string longer than input"
        );
        assert!(decode(&[0x3d, b'1', b'x', 0x7f], 8).is_err());
        assert!(decode(&[0x7f], 8).is_err());
        assert!(decode(&[], 8).is_err());
        assert!(decode(&[0x41, 1, 2], 8).is_err());
    }
}
