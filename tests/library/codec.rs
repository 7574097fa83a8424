//! Property tests of the rencode codec and the framing, and cross-checks against the
//! rencode Deluge itself uses (`/usr/bin/python3`: `deluge.rencode` if that module
//! exists, else the `rencode` module Deluge 2.0.3's `deluge/transfer.py` imports, Debian's
//! python3-rencode, a dependency of deluged).
//!
//! - Round trip: `decode(encode(v)) == v` for arbitrary JSON values: integers across
//!   every width boundary and above `i64::MAX`, finite floats, short and long (>= 64 byte)
//!   strings including non-ASCII, lists shorter and longer than 64, dicts smaller and
//!   larger than 25, nested.
//! - Ours -> Deluge -> ours: Deluge's rencode decodes our bytes and re-encodes them
//!   (`dumps(x, float_bits=64)`); the bytes are identical to ours and decode to the value.
//! - Deluge -> ours: a corpus of Deluge-shaped values encoded by Deluge's rencode (both
//!   float widths) decodes to what Deluge's own `loads` sees.
//! - Arbitrary bytes never panic the decoder; frames split anywhere decode the same.
//!
//! Without `/usr/bin/python3` and Deluge's rencode the cross-checks fail, naming what is
//! missing (scripts/test.sh installs deluged, which brings it).
use std::io::Write;
use std::process::{Command, Stdio};

use anyhow::{bail, ensure, Context, Result};
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config, TestRng, TestRunner};
use serde_json::{json, Map, Number, Value};
use torrent_stats::unstable::codec;
use torrent_stats::unstable::frame::{self, FrameDecoder, Item, Limits};

const DEPTH: usize = 64;

/// `cases` cases; failures are printed, not persisted (tests/ has no lib.rs to put a
/// regressions file beside).
fn config(cases: u32) -> Config {
    Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    }
}
const PYTHON: &str = "/usr/bin/python3";

/// Imports Deluge's rencode as `rencode`.
const IMPORT_RENCODE: &str = "
try:
    from deluge import rencode
except ImportError:
    import rencode
";

/// Integers at and around every boundary of rencode's integer forms.
fn boundary_ints() -> Vec<Value> {
    let mut v: Vec<Value> = [
        0i64,
        1,
        43,
        44,
        -1,
        -32,
        -33,
        127,
        128,
        -128,
        -129,
        32767,
        32768,
        -32768,
        -32769,
        i32::MAX as i64,
        i32::MAX as i64 + 1,
        i32::MIN as i64,
        i32::MIN as i64 - 1,
        i64::MAX,
        i64::MIN,
        i64::MIN + 1,
    ]
    .into_iter()
    .map(Value::from)
    .collect();
    v.extend(
        [i64::MAX as u64 + 1, u64::MAX, u64::MAX - 1]
            .into_iter()
            .map(Value::from),
    );
    v
}

fn int() -> impl Strategy<Value = Value> {
    prop_oneof![
        prop::sample::select(boundary_ints()),
        (-100i64..100).prop_map(Value::from),
        any::<i8>().prop_map(Value::from),
        any::<i16>().prop_map(Value::from),
        any::<i32>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        (i64::MAX as u64 + 1..=u64::MAX).prop_map(Value::from),
    ]
}

fn float() -> impl Strategy<Value = Value> {
    prop_oneof![
        any::<f64>().prop_filter_map("finite", |f| Number::from_f64(f).map(Value::Number)),
        (-1e6f64..1e6).prop_map(|f| json!(f)),
        prop::sample::select(vec![0.0, -0.0, 0.5, 1.5, 1e300, -2.5e-300, 1795599104.25])
            .prop_map(|f| json!(f)),
    ]
}

fn string() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z_]{0,12}",
        ".{0,20}",
        "[a-zA-Z0-9]{60,70}",
        ".{64,200}",
        "[éü日本語🙂]{15,40}",
    ]
}

fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        int(),
        int(),
        float(),
        string().prop_map(Value::String),
    ]
}

fn value() -> impl Strategy<Value = Value> {
    leaf().prop_recursive(4, 400, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec(leaf(), 60..70).prop_map(Value::Array),
            prop::collection::btree_map(string(), inner, 0..5)
                .prop_map(|m| Value::Object(m.into_iter().collect::<Map<_, _>>())),
            prop::collection::btree_map(string(), leaf(), 23..30)
                .prop_map(|m| Value::Object(m.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

proptest! {
    #![proptest_config(config(512))]

    #[test]
    fn round_trip(v in value()) {
        let bytes = codec::encode(&v);
        prop_assert_eq!(codec::decode(&bytes, DEPTH).unwrap(), v);
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        let _ = codec::decode(&bytes, DEPTH);
    }

    #[test]
    fn mutated_encodings_never_panic(v in value(), at in any::<prop::sample::Index>(), byte in any::<u8>()) {
        let mut bytes = codec::encode(&v);
        let i = at.index(bytes.len());
        bytes[i] = byte;
        let _ = codec::decode(&bytes, DEPTH);
        bytes.truncate(i);
        let _ = codec::decode(&bytes, DEPTH);
    }

    #[test]
    fn frames_split_anywhere_decode_the_same(
        values in prop::collection::vec(value(), 1..4),
        cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..8),
    ) {
        let stream: Vec<u8> = values
            .iter()
            .flat_map(|v| frame::encode(&codec::encode(v)))
            .collect();
        let mut cuts: Vec<usize> = cuts.iter().map(|c| c.index(stream.len())).collect();
        cuts.push(stream.len());
        cuts.sort_unstable();
        let mut decoder = FrameDecoder::new(Limits { max_depth: DEPTH, ..Limits::default() });
        let mut got = Vec::new();
        let mut from = 0;
        for to in cuts {
            decoder.extend(&stream[from..to]);
            from = to;
            while let Some(item) = decoder.next_item().unwrap() {
                let Item::Message(body) = item else { panic!("probe") };
                got.push(codec::decode(&body, DEPTH).unwrap());
            }
        }
        prop_assert_eq!(decoder.pending(), 0);
        prop_assert_eq!(got, values);
    }
}

#[test]
fn depth_limit_and_width_boundaries() {
    let mut deep = json!(0);
    for _ in 0..DEPTH {
        deep = json!([deep]);
    }
    assert_eq!(codec::decode(&codec::encode(&deep), DEPTH).unwrap(), deep);
    let deeper = json!([deep]);
    assert!(codec::decode(&codec::encode(&deeper), DEPTH).is_err());
    let nested: Vec<u8> = std::iter::repeat_n(0xC1u8, 100_000).chain([0]).collect();
    assert!(codec::decode(&nested, DEPTH).is_err());

    // (value, first byte of its encoding)
    let forms = [
        (json!(43), 0x2B),
        (json!(44), 0x3E),
        (json!(-32), 0x65),
        (json!(-33), 0x3E),
        (json!(128), 0x3F),
        (json!(32768), 0x40),
        (json!(2147483648i64), 0x41),
        (json!(9223372036854775808u64), 0x3D),
        (json!(1.5), 0x2C),
        (json!("x".repeat(63)), 0xBF),
        (json!("x".repeat(64)), b'6'),
        (json!(vec![0; 63]), 0xFF),
        (json!(vec![0; 64]), 0x3B),
        (
            Value::Object((0..24).map(|i| (i.to_string(), json!(i))).collect()),
            0x7E,
        ),
        (
            Value::Object((0..25).map(|i| (i.to_string(), json!(i))).collect()),
            0x3C,
        ),
    ];
    for (v, first) in forms {
        assert_eq!(codec::encode(&v)[0], first, "{v}");
    }
}

/// Runs `/usr/bin/python3 -c script` with `input` on stdin; its stdout.
fn deluge_python(script: &str, input: &str) -> Result<String> {
    let preamble = format!("import sys, json, struct\n{IMPORT_RENCODE}\n");
    let mut child = Command::new(PYTHON)
        .arg("-c")
        .arg(format!("{preamble}{script}"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| {
            format!(
                "{PYTHON} is needed to check our rencode against Deluge's \
                 (apt-get install deluged brings python3 and its rencode)"
            )
        })?;
    let mut stdin = child.stdin.take().context("stdin")?;
    let input = input.to_string();
    let writer = std::thread::spawn(move || stdin.write_all(input.as_bytes()));
    let out = child.wait_with_output()?;
    writer.join().expect("stdin writer")?;
    if !out.status.success() {
        bail!(
            "{PYTHON} with Deluge's rencode failed ({}); is deluged (python3-rencode) \
             installed?\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8(out.stdout)?)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Result<Vec<u8>> {
    ensure!(s.len().is_multiple_of(2), "odd hex {s:?}");
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).context("hex"))
        .collect()
}

/// Values from our strategy, deterministic per run (proptest's RNG, fixed seed).
fn sample_values(n: usize) -> Vec<Value> {
    let mut runner = TestRunner::new_with_rng(
        config(n as u32),
        TestRng::from_seed(proptest::test_runner::RngAlgorithm::ChaCha, &[7; 32]),
    );
    let strategy = value();
    (0..n)
        .map(|_| strategy.new_tree(&mut runner).expect("value").current())
        .collect()
}

#[test]
#[ignore = "needs /usr/bin/python3 with Deluge's rencode (Debian deluge-common)"]
fn deluge_rencode_reads_and_rewrites_our_encoding() -> Result<()> {
    let mut values = sample_values(400);
    values.extend(boundary_ints());
    values.push(json!([[1, "daemon.login", ["localclient", "pw"], {"client_version": "x"}]]));
    let encoded: Vec<Vec<u8>> = values.iter().map(codec::encode).collect();
    let input: String = encoded.iter().map(|b| hex(b) + "\n").collect();
    let script = "
for line in sys.stdin:
    x = rencode.loads(bytes.fromhex(line.strip()), decode_utf8=True)
    print(rencode.dumps(x, float_bits=64).hex())
";
    let out = deluge_python(script, &input)?;
    let lines: Vec<&str> = out.lines().collect();
    ensure!(
        lines.len() == values.len(),
        "{} answers for {} values",
        lines.len(),
        values.len()
    );
    for ((v, ours), theirs) in values.iter().zip(&encoded).zip(lines) {
        let theirs = unhex(theirs)?;
        let back = codec::decode(&theirs, DEPTH)
            .with_context(|| format!("decoding Deluge's re-encoding of {v}"))?;
        ensure!(&back == v, "{v} came back from Deluge as {back}");
        ensure!(
            &theirs == ours,
            "Deluge re-encodes {v} differently:\n ours   {}\n Deluge {}",
            hex(ours),
            hex(&theirs)
        );
    }
    println!("{} values agree with Deluge's rencode", values.len());
    Ok(())
}

/// Deluge-shaped values as Python expressions.
const CORPUS: &[&str] = &[
    "0",
    "43",
    "44",
    "-1",
    "-32",
    "-33",
    "127",
    "128",
    "-128",
    "-129",
    "32767",
    "32768",
    "-32768",
    "-32769",
    "2**31-1",
    "2**31",
    "-2**31",
    "-2**31-1",
    "2**63-1",
    "-2**63",
    "2**63",
    "2**64-1",
    "10**30",
    "-2**63-1",
    "True",
    "False",
    "None",
    "0.0",
    "1.5",
    "-2.5",
    "0.1",
    "1795599104.3",
    "float('inf')",
    "float('nan')",
    "''",
    "'a'",
    "'x' * 63",
    "'x' * 64",
    "'x' * 1000",
    "'é日本🙂'",
    "'é' * 40",
    "b'\\xff\\xfe'",
    "[]",
    "(1, 2, 3)",
    "list(range(63))",
    "list(range(64))",
    "tuple(range(150))",
    "{}",
    "{'a': 1}",
    "{'b': 1, 'a': 2}",
    "{str(i): i for i in range(24)}",
    "{str(i): i for i in range(25)}",
    "{str(i): i for i in range(100)}",
    "{0: 'NONE', 1: 'READONLY', 5: 'NORMAL', 10: 'ADMIN'}",
    "[[[[[[[[[[1]]]]]]]]]]",
    "((1, 'daemon.login', ('localclient', 'a' * 40), {'client_version': 'deluge-client'}),)",
    "((7, 'stats.get_stats', (['upload_rate', 'num_peers'], 1), {}),)",
    "(1, 1, 10)",
    "(1, 2, '2.0.3')",
    "(1, 5, {'total_upload': 123456789012, 'total_download': 2**40, \
       'total_payload_upload': 0, 'total_payload_download': 17})",
    "(1, 9, {'upload_rate': tuple(range(0, 150 * 1000, 1000)), 'num_peers': (3,) * 150, \
       '_last_update': 1795599104.5, '_length': 150, '_update_interval': 1})",
    "(1, 4, {'test': 'NiNiNi', 'update_interval': 1, 'length': 150})",
    "(1, 3, (1, 5, 30, 300))",
    "(2, 7, 'WrappedException', ('RPC call on invalid function: x', 'AttributeError', \
       'Traceback (most recent call last):\\n  ...'), {}, 'Traceback ...')",
    "(2, 8, 'NotAuthorizedError', ('Auth level too low: 0 < 5',), {}, 'tb')",
    "(3, 'PluginEnabledEvent', ('Stats',))",
    "(3, 'ConfigValueChangedEvent', ('max_active_limit', 9))",
];

#[test]
#[ignore = "needs /usr/bin/python3 with Deluge's rencode (Debian deluge-common)"]
fn deluge_encodings_decode_as_deluge_reads_them() -> Result<()> {
    // For each expression and float width: Deluge's bytes, and what Deluge's own loads()
    // reads back, as JSON in our mapping (floats as their f64 bits, so nothing is lost to
    // decimal; non-finite floats null; dict keys as text; big ints beyond u64 as floats).
    let script = r#"
import math
def to_json(x):
    if isinstance(x, bool) or x is None:
        return x
    if isinstance(x, int):
        if -2**63 <= x < 2**64:
            return x
        return to_json(float(x))
    if isinstance(x, float):
        if math.isnan(x) or math.isinf(x):
            return None
        return {'$f64': struct.pack('>d', x).hex()}
    if isinstance(x, bytes):
        return x.decode('utf-8', 'replace')
    if isinstance(x, str):
        return x
    if isinstance(x, (list, tuple)):
        return [to_json(i) for i in x]
    if isinstance(x, dict):
        def key(k):
            if isinstance(k, bytes):
                return k.decode('utf-8', 'replace')
            return str(k)
        return {key(k): to_json(v) for k, v in x.items()}
    raise TypeError(type(x))
for line in sys.stdin:
    x = eval(line)
    for bits in (32, 64):
        data = rencode.dumps(x, float_bits=bits)
        try:
            y = rencode.loads(data, decode_utf8=True)
        except UnicodeDecodeError:  # not UTF-8: Deluge drops it, we replace
            y = rencode.loads(data)
        print(data.hex(), json.dumps(to_json(y)))
"#;
    let input: String = CORPUS.iter().map(|e| format!("{e}\n")).collect();
    let out = deluge_python(script, &input)?;
    let lines: Vec<&str> = out.lines().collect();
    ensure!(
        lines.len() == 2 * CORPUS.len(),
        "{} lines for {} expressions",
        lines.len(),
        CORPUS.len()
    );
    for (i, line) in lines.iter().enumerate() {
        let expr = CORPUS[i / 2];
        let (bytes, expected) = line.split_once(' ').context("hex and json")?;
        let bytes = unhex(bytes)?;
        let expected = untag(serde_json::from_str(expected)?);
        let got = codec::decode(&bytes, DEPTH)
            .with_context(|| format!("decoding Deluge's encoding of {expr}: {}", hex(&bytes)))?;
        ensure!(
            got == expected,
            "{expr} (float_bits={}): Deluge encodes {}\n we decode {got}\n Deluge reads {expected}",
            if i % 2 == 0 { 32 } else { 64 },
            hex(&bytes)
        );
    }
    println!("{} Deluge encodings decoded", lines.len());
    Ok(())
}

/// Replaces `{"$f64": hex}` with the float of those bits.
fn untag(v: Value) -> Value {
    match v {
        Value::Object(m) => {
            if let (1, Some(Value::String(bits))) = (m.len(), m.get("$f64")) {
                let raw = u64::from_str_radix(bits, 16).expect("f64 bits");
                return Number::from_f64(f64::from_bits(raw)).map_or(Value::Null, Value::Number);
            }
            Value::Object(m.into_iter().map(|(k, v)| (k, untag(v))).collect())
        }
        Value::Array(a) => Value::Array(a.into_iter().map(untag).collect()),
        other => other,
    }
}
