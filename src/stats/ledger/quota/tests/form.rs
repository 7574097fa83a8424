use crate::store::{parse, to_text, Rejected};

use super::{Direction, Measure, Quota, QuotaAction, QuotaError, QuotaPeriod, QuotasFile};

const EXAMPLE: &str = r#"
[[quota]]
name = "monthly-cap"      # required, unique
source = "engine"
direction = "both"
measure = "wire"
period = "month"
reset_day = 15
limit = "1 TiB"
thresholds = [80, 100]
command = "/usr/local/bin/quota-alert"
action = "limit"
upload_limit = "100 KiB"
download_limit = "1 MiB"

[[quota]]
name = "daily"
period = "day"
limit = 5000000000
"#;

fn load(text: &str) -> Result<QuotasFile, String> {
    parse::<QuotasFile>(text.as_bytes()).map_err(|e| match e {
        Rejected::Bad(reason) => reason,
        Rejected::Missing => "missing".into(),
    })
}

/// `EXAMPLE`'s first quota with `line` replaced (or removed when `with` is empty).
fn edited(line: &str, with: &str) -> String {
    let first = EXAMPLE.split("\n\n").next().unwrap();
    assert!(first.contains(line), "{line}");
    first.replacen(line, with, 1)
}

fn error(text: &str) -> String {
    load(text).expect_err("accepted")
}

#[test]
fn the_example_file_loads() {
    let file = load(EXAMPLE).unwrap();
    let [cap, daily] = &file.quota[..] else {
        panic!("{file:?}")
    };
    assert_eq!(cap.name, "monthly-cap");
    assert_eq!(cap.source.as_ref().map(|s| s.as_str()), Some("engine"));
    assert_eq!(
        (cap.direction, cap.measure),
        (Direction::Both, Measure::Wire)
    );
    assert_eq!(cap.period, QuotaPeriod::Month { reset_day: 15 });
    assert_eq!(cap.limit, 1_099_511_627_776);
    assert_eq!(cap.thresholds, [80, 100]);
    assert_eq!(cap.command.as_deref(), Some("/usr/local/bin/quota-alert"));
    assert_eq!(
        cap.action,
        QuotaAction::Limit {
            upload: Some(102_400),
            download: Some(1_048_576)
        }
    );
    // The defaults.
    assert_eq!(daily.source, None);
    assert_eq!(
        (daily.direction, daily.measure),
        (Direction::Both, Measure::Wire)
    );
    assert_eq!(
        (daily.limit, daily.period),
        (5_000_000_000, QuotaPeriod::Day)
    );
    assert_eq!(
        (daily.thresholds.as_slice(), daily.action),
        (&[80, 100][..], QuotaAction::None)
    );
    assert_eq!(load("").unwrap(), QuotasFile::default());
}

#[test]
fn toml_round_trip_writes_the_same_flat_form() {
    let file = load(EXAMPLE).unwrap();
    let text = to_text(&file).unwrap();
    for line in [
        "period = \"month\"",
        "reset_day = 15",
        "limit = 1099511627776",
        "upload_limit = 102400",
        "download_limit = 1048576",
        "action = \"limit\"",
        "direction = \"both\"",
    ] {
        assert!(text.contains(line), "{line} not in\n{text}");
    }
    // The day quota has no month or action fields.
    let daily = &text[text.rfind("[[quota]]").unwrap()..];
    assert!(
        !daily.contains("reset_day") && !daily.contains("action"),
        "{daily}"
    );
    assert_eq!(load(&text).unwrap(), file);
}

#[test]
fn json_form_both_ways() {
    let json = r#"{"name":"weekly","source":"nas","direction":"upload","measure":"payload",
        "period":"rolling","days":30,"limit":"500 GB","thresholds":[50],"action":"pause"}"#;
    let q: Quota = serde_json::from_str(json).unwrap();
    assert_eq!(q.period, QuotaPeriod::Rolling { days: 30 });
    assert_eq!((q.limit, q.action), (500_000_000_000, QuotaAction::Pause));
    let v = serde_json::to_value(&q).unwrap();
    assert_eq!(v["limit"], 500_000_000_000_u64);
    assert_eq!(v["days"], 30);
    assert_eq!(v["action"], "pause");
    assert!(v.get("reset_day").is_none() && v.get("command").is_none());
    assert_eq!(serde_json::from_value::<Quota>(v).unwrap(), q);
    let e = serde_json::from_str::<Quota>(r#"{"name":"x","period":"day","limit":0}"#);
    assert!(e
        .unwrap_err()
        .to_string()
        .contains("limit 0 is out of range"));
}

/// Each field's bad value: (the good line, the bad line, the error expected).
const FIELD_CASES: [(&str, &str, &str); 22] = [
    (
        "reset_day = 15",
        "reset_day = 32",
        "quota \"monthly-cap\": reset_day 32 is out of range 1..=31",
    ),
    (
        "reset_day = 15",
        "reset_day = 0",
        "reset_day 0 is out of range 1..=31",
    ),
    (
        "reset_day = 15",
        "reset_day = 300",
        "reset_day 300 is out of range 1..=31",
    ),
    (
        "period = \"month\"",
        "period = \"week\"",
        "reset_day is only allowed with period = \"month\"",
    ),
    (
        "reset_day = 15",
        "days = 30",
        "days is only allowed with period = \"rolling\"",
    ),
    (
        "period = \"month\"\nreset_day = 15",
        "period = \"rolling\"",
        "period = \"rolling\" needs days (1..=400)",
    ),
    (
        "period = \"month\"\nreset_day = 15",
        "period = \"rolling\"\ndays = 401",
        "days 401 is out of range 1..=400",
    ),
    (
        "period = \"month\"",
        "period = \"fortnight\"",
        "unknown variant `fortnight`",
    ),
    (
        "limit = \"1 TiB\"",
        "limit = 0",
        "limit 0 is out of range 1..=",
    ),
    (
        "limit = \"1 TiB\"",
        "limit = \"1 XiB\"",
        "quota \"monthly-cap\": limit: unknown unit \"xib\"",
    ),
    (
        "limit = \"1 TiB\"",
        "limit = -1",
        "expected a whole number of bytes",
    ),
    (
        "limit = \"1 TiB\"",
        "limit = 9223372036854775808",
        "limit 9223372036854775808 is out of range",
    ),
    (
        "thresholds = [80, 100]",
        "thresholds = [100, 80]",
        "thresholds must be strictly increasing (100 then 80)",
    ),
    (
        "thresholds = [80, 100]",
        "thresholds = [80, 80]",
        "(80 then 80)",
    ),
    (
        "thresholds = [80, 100]",
        "thresholds = [0]",
        "thresholds 0 is out of range 1..=1000",
    ),
    (
        "thresholds = [80, 100]",
        "thresholds = [80, 70000]",
        "thresholds 70000 is out of range 1..=1000",
    ),
    (
        "direction = \"both\"",
        "direction = \"down\"",
        "unknown variant `down`, expected one of `download`, `upload`, `both`",
    ),
    (
        "measure = \"wire\"",
        "measure = \"bytes\"",
        "expected `wire` or `payload`",
    ),
    (
        "source = \"engine\"",
        "source = \"Engine!\"",
        "quota \"monthly-cap\": source: bad source name \"Engine!\"",
    ),
    (
        "command = \"/usr/local/bin/quota-alert\"",
        "command = \" \"",
        "command must be a non-empty path",
    ),
    (
        "upload_limit = \"100 KiB\"\ndownload_limit = \"1 MiB\"",
        "",
        "action = \"limit\" needs upload_limit or download_limit",
    ),
    (
        "action = \"limit\"",
        "action = \"pause\"",
        "upload_limit is only allowed with action = \"limit\"",
    ),
];

#[test]
fn each_field_is_checked() {
    let cases = FIELD_CASES;
    for (line, with, want) in cases {
        let e = error(&edited(line, with));
        assert!(e.contains(want), "{line} → {with}: {e}");
    }
    let e = error(&edited("download_limit = \"1 MiB\"", "download_limit = 0"));
    assert!(e.contains("download_limit 0 is out of range 1..="), "{e}");
}

#[test]
fn names_and_unknown_fields() {
    let e = error(&edited("reset_day = 15", "reset_days = 15"));
    assert!(
        e.contains("line 8") && e.contains("unknown field `reset_days`"),
        "{e}"
    );
    let e = error(&edited("name = \"monthly-cap\"", "name = \"\""));
    assert!(
        e.contains("quota \"\": a name is 1 to 64 characters"),
        "{e}"
    );
    let long = "n".repeat(65);
    let e = error(&edited(
        "name = \"monthly-cap\"",
        &format!("name = \"{long}\""),
    ));
    assert!(e.contains("(it has 65)"), "{e}");
    assert!(load(&edited(
        "name = \"monthly-cap\"",
        &format!("name = \"{}\"", &long[1..])
    ))
    .is_ok());
    let e = error(&edited("name = \"monthly-cap\"", "name = \"a\\tb\""));
    assert!(e.contains("quota \"a\\tb\": a name"), "{e}");
    let e = error(&edited("name = \"monthly-cap\"", "# no name"));
    assert!(e.contains("missing field `name`"), "{e}");
    let e = error("[[quota]]\nname = \"x\"\nperiod = \"day\"\nlimit = 1\n[[quota]]\nname = \"x\"\nperiod = \"week\"\nlimit = 2\n");
    assert_eq!(
        e,
        "quota \"x\": the name is used by more than one quota; names must be unique"
    );
    let e = error("quotas = []\n");
    assert!(e.contains("unknown field `quotas`"), "{e}");
}

#[test]
fn validate_checks_a_quota_built_in_code() {
    let mut q: Quota = serde_json::from_str(r#"{"name":"m","period":"month","limit":1}"#).unwrap();
    assert_eq!(q.period, QuotaPeriod::Month { reset_day: 1 });
    assert_eq!(q.validate(), Ok(()));
    q.period = QuotaPeriod::Month { reset_day: 32 };
    assert_eq!(
        q.validate().unwrap_err().to_string(),
        "quota \"m\": reset_day 32 is out of range 1..=31"
    );
    q.period = QuotaPeriod::Rolling { days: 0 };
    assert!(matches!(
        q.validate(),
        Err(QuotaError::OutOfRange {
            field: "days",
            value: 0,
            ..
        })
    ));
    q.period = QuotaPeriod::Day;
    q.thresholds.clear();
    assert_eq!(q.validate(), Ok(()));
    q.action = QuotaAction::Limit {
        upload: None,
        download: None,
    };
    assert!(matches!(q.validate(), Err(QuotaError::Missing { .. })));
    q.action = QuotaAction::Limit {
        upload: Some(1),
        download: None,
    };
    assert_eq!(q.validate(), Ok(()));
    q.command = Some("run\nme".into());
    assert_eq!(q.validate(), Err(QuotaError::Command { quota: "m".into() }));
}
