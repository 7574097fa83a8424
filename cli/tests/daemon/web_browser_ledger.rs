//! The calendar and quotas cards in Chromium (a child of `web_browser`, whose driver,
//! daemon and page helpers it uses): the daemon counts sim sources `a` and `b`; with
//! polling then slowed down, the calendar's bars and table show what `stats.get_calendar`
//! answers, per day and per month, for one source and for all (31 and 12 slots, the ones
//! without bytes zero-height); through the ADMIN editor a quota the daemon refuses shows
//! its message, a good one appears with its bar and `stats.get_quotas`' figures, one
//! already over its limit raises `QuotaThresholdEvent`, which the page shows as a notice,
//! and a quota is removed. Screenshot: `web-page-ledger.png` in Cargo's test tmp dir.

use super::*;

/// The page's calendar: `{period, source, loading, loads, slots: [{label, counters…}]}`.
async fn shown_calendar(b: &Browser) -> Result<Value> {
    js(b, "return window.__torrentStats.calendar()").await
}

/// The bars and the table rows of the calendar card, read from the page's elements:
/// `{bars: [{label, down, up, height_down, height_up}], rows: [{label, down, up, total}],
/// height}`: rows newest first, as shown; `height` the bars' area inside its borders.
async fn shown_bars(b: &Browser) -> Result<Value> {
    js(
        b,
        r#"
        const bars = [...document.querySelectorAll('#cal-chart .bar-slot')].map((s) => ({
          label: s.dataset.label, down: Number(s.dataset.down), up: Number(s.dataset.up),
          height_down: s.querySelector('.bar.down').getBoundingClientRect().height,
          height_up: s.querySelector('.bar.up').getBoundingClientRect().height,
        }));
        const rows = [...document.querySelectorAll('#cal-body tr')].map((tr) => {
          const v = [...tr.querySelectorAll('data')].map((d) => Number(d.value));
          return {label: tr.dataset.label, down: v[0], up: v[1], total: v[2]};
        });
        return {bars, rows, height: document.getElementById('cal-chart').clientHeight};
        "#,
    )
    .await
}

/// Waits until the page has loaded the calendar of `period` and `source` ("" = all) more
/// than `after` times; the number of loads.
async fn calendar_loaded(b: &Browser, period: &str, source: &str, after: u64) -> Result<u64> {
    eventually(
        Duration::from_secs(15),
        &format!("the calendar per {period} of {source:?}"),
        || async move {
            let c = shown_calendar(b).await?;
            let loads = c["loads"].as_u64().unwrap_or(0);
            let ready = c["period"] == json!(period)
                && c["source"] == json!(source)
                && c["loading"] == json!(false)
                && loads > after;
            Ok(ready.then_some(loads))
        },
    )
    .await
}

/// `stats.get_calendar(period, source)` over Deluge RPC.
async fn rpc_calendar(rpc: &mut Client, period: &str, source: &str) -> Result<Value> {
    let source = if source.is_empty() {
        Value::Null
    } else {
        json!(source)
    };
    Ok(rpc
        .call(
            "stats.get_calendar",
            vec![json!(period), source],
            Default::default(),
        )
        .await?)
}

/// Checks the page's calendar (`slots` from the hook, `shown` from the elements) against
/// the daemon's `rows`: `count` slots oldest first, each row's bytes in the slot of its
/// label, every other slot zero with zero-height bars, the tallest bar the card's height,
/// and the table the same figures newest first.
fn check_calendar(page: &Value, shown: &Value, rows: &Value, count: usize) -> Result<()> {
    let slots = page["slots"].as_array().context("slots")?;
    let rows = rows.as_array().context("get_calendar's answer")?;
    ensure!(slots.len() == count, "{} slots, want {count}", slots.len());
    ensure!(!rows.is_empty(), "the ledger holds nothing yet");
    let labels: Vec<&str> = slots.iter().filter_map(|s| s["label"].as_str()).collect();
    ensure!(
        labels.windows(2).all(|w| w[0] < w[1]),
        "slots not oldest first: {labels:?}"
    );
    for row in rows {
        let label = row["label"].as_str().context("label")?;
        let slot = slots
            .iter()
            .find(|s| s["label"] == row["label"])
            .with_context(|| format!("no slot for {label} among {labels:?}"))?;
        for key in COUNTERS {
            ensure!(
                slot[key] == row[key],
                "{label} {key}: page {slot}, daemon {row}"
            );
        }
    }
    let with_bytes = |s: &&Value| rows.iter().any(|r| r["label"] == s["label"]);
    for slot in slots.iter().filter(|s| !with_bytes(s)) {
        for key in COUNTERS {
            ensure!(slot[key] == json!(0), "a slot without bytes: {slot}");
        }
    }
    // The elements: the bars the slots' wire bytes, the table the same newest first.
    let bars = shown["bars"].as_array().context("bars")?;
    let table = shown["rows"].as_array().context("table rows")?;
    ensure!(
        bars.len() == count && table.len() == count,
        "{} bars, {} table rows",
        bars.len(),
        table.len()
    );
    let max = slots
        .iter()
        .flat_map(|s| [&s["total_download"], &s["total_upload"]])
        .filter_map(Value::as_u64)
        .max()
        .unwrap_or(0);
    let height = shown["height"].as_f64().unwrap_or(0.0);
    for (i, (slot, bar)) in slots.iter().zip(bars).enumerate() {
        let row = &table[count - 1 - i];
        for (what, key) in [("down", "total_download"), ("up", "total_upload")] {
            ensure!(
                bar["label"] == slot["label"] && bar[what] == slot[key],
                "bar {bar} vs {slot}"
            );
            ensure!(
                row["label"] == slot["label"] && row[what] == slot[key],
                "table row {row} vs {slot}"
            );
            let h = bar[format!("height_{what}")].as_f64().unwrap_or(-1.0);
            let v = slot[key].as_u64().unwrap_or(0);
            if v == 0 {
                ensure!(h == 0.0, "a bar without bytes is {h} px high: {bar}");
            } else {
                ensure!(h >= 1.0, "a bar with bytes is {h} px high: {bar}");
            }
            if v == max && v > 0 {
                ensure!(
                    (h - height).abs() <= 1.5,
                    "the tallest bar is {h} px in {height} px: {bar}"
                );
            }
        }
        ensure!(
            row["total"].as_u64()
                == Some(row["down"].as_u64().unwrap_or(0) + row["up"].as_u64().unwrap_or(0)),
            "total of {row}"
        );
    }
    Ok(())
}

/// Selects `period` and `source` on the calendar card, then compares the page with
/// `stats.get_calendar` (read before and after the page: a poll in between, rare at the
/// slowed-down interval, is waited out by reloading the page's figures).
async fn calendar_matches(
    b: &Browser,
    rpc: &mut Client,
    period: &str,
    source: &str,
    count: usize,
) -> Result<()> {
    let loads = shown_calendar(b).await?["loads"].as_u64().unwrap_or(0);
    b.find(Locator::Id("cal-period"))
        .await?
        .select_by_value(period)
        .await?;
    b.find(Locator::Id("cal-source"))
        .await?
        .select_by_value(source)
        .await?;
    let mut loads = calendar_loaded(b, period, source, loads).await?;
    for _ in 0..3 {
        let before = rpc_calendar(rpc, period, source).await?;
        let page = shown_calendar(b).await?;
        let shown = shown_bars(b).await?;
        let after = rpc_calendar(rpc, period, source).await?;
        if before == after {
            check_calendar(&page, &shown, &after, count)
                .with_context(|| format!("per {period} of {source:?}"))?;
            println!(
                "calendar per {period} of {source:?}: {count} bars, as stats.get_calendar: {after}"
            );
            return Ok(());
        }
        // A poll came between: the page reloads (another source, then back).
        let other = if source.is_empty() { "a" } else { "" };
        for s in [other, source] {
            b.find(Locator::Id("cal-source"))
                .await?
                .select_by_value(s)
                .await?;
            loads = calendar_loaded(b, period, s, loads).await?;
        }
    }
    bail!("the calendar per {period} of {source:?} kept changing")
}

/// `stats.get_quotas` over Deluge RPC.
async fn rpc_quotas(rpc: &mut Client) -> Result<Vec<Value>> {
    let v = rpc
        .call("stats.get_quotas", vec![], Default::default())
        .await?;
    Ok(v.as_array().cloned().unwrap_or_default())
}

/// The quota item `name` as shown: `{used, limit, projected, now, level, texts…}`, or
/// null while it is not there.
async fn shown_quota(b: &Browser, name: &str) -> Result<Value> {
    let script = r#"
        const li = document.querySelector(`#quota-list li[data-quota="${CSS.escape(arguments[0])}"]`);
        if (!li) return null;
        const part = (p) => li.querySelector(`[data-part="${p}"]`);
        const meter = part('meter');
        return {used: meter.dataset.used, limit: meter.dataset.limit,
                projected: meter.dataset.projected, now: meter.getAttribute('aria-valuenow'),
                fill: part('fill').getBoundingClientRect().width,
                width: meter.getBoundingClientRect().width,
                level: li.classList.contains('level-bad') ? 'bad'
                     : li.classList.contains('level-warn') ? 'warn' : '',
                period: part('period').textContent, used_text: part('used').textContent,
                projection: part('projection').textContent,
                settings: part('settings').textContent};
    "#;
    Ok(b.execute(script, vec![json!(name)]).await?)
}

/// Fills the quota editor: `fields` are (field, value) of `q-<field>` inputs and selects.
async fn fill_quota(b: &Browser, fields: &[(&str, &str)]) -> Result<()> {
    b.find(Locator::Id("quota-new")).await?.click().await?;
    for (field, value) in fields {
        let id = format!("q-{field}");
        let element = b.find(Locator::Id(&id)).await?;
        if element.tag_name().await? == "select" {
            element.select_by_value(value).await?;
        } else {
            fill(b, &id, value).await?;
        }
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs chromium and chromedriver"]
async fn calendar_and_quotas_on_the_page() -> Result<()> {
    let (mut daemon, web_port) = start_daemon_with(&[SIM_A, SIM_B])?;
    let work = tempfile::tempdir()?;
    let (driver, browser) = open_browser(work.path()).await?;
    let outcome = drive_ledger(&browser, &mut daemon, web_port).await;
    let _ = browser.close().await;
    drop(driver);
    if outcome.is_err() {
        eprintln!("--- the daemon's log ---\n{}", daemon.log());
    }
    outcome
}

async fn drive_ledger(b: &Browser, daemon: &mut DaemonProc, web_port: u16) -> Result<()> {
    let mut rpc = rpc_login(daemon.port(), &daemon.password).await?;
    log_in(b, web_port, &daemon.password).await?;

    // Some bytes in the ledger for both sources, then polls every minute only.
    let deadline = Instant::now() + Duration::from_secs(20);
    while rpc_calendar(&mut rpc, "day", "a").await? == json!([])
        || rpc_calendar(&mut rpc, "day", "b").await? == json!([])
    {
        ensure!(
            Instant::now() < deadline,
            "nothing of a and b in the ledger in 20 s"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let mut slow = serde_json::Map::new();
    slow.insert("update_interval".into(), json!(60));
    rpc.stats().set_config(slow).await?;

    // The calendar card: per day (the default) and per month, of one source and of all.
    ensure!(displayed(b, "calendar-card").await?, "no calendar card");
    let options = js(
        b,
        "return [...document.querySelectorAll('#cal-source option')].map((o) => o.value)",
    )
    .await?;
    ensure!(
        options == json!(["", "a", "b"]),
        "calendar sources {options}"
    );
    calendar_matches(b, &mut rpc, "day", "a", 31).await?;
    calendar_matches(b, &mut rpc, "month", "a", 12).await?;
    calendar_matches(b, &mut rpc, "month", "", 12).await?;
    calendar_matches(b, &mut rpc, "day", "", 31).await?;
    let summary = text(b, "cal-summary").await?;
    ensure!(
        summary.contains("last 31 days") && summary.contains("ratio"),
        "calendar summary {summary:?}"
    );

    // Quotas: none yet; the editor is the ADMIN's.
    ensure!(displayed(b, "quotas-card").await?, "no quotas card");
    ensure!(displayed(b, "quotas-empty").await?, "no 'no quotas' line");
    ensure!(displayed(b, "quota-form").await?, "no editor for the ADMIN");

    // A quota the daemon refuses: its message, as the page shows it.
    let bad = json!([[{"name": "bad", "period": "month", "reset_day": 40, "limit": "1 TiB"}]]);
    let refused = page_call(b, "stats.set_quotas", bad).await?;
    let message = refused["error"]["message"]
        .as_str()
        .with_context(|| format!("reset_day 40 was not refused: {refused}"))?
        .to_string();
    fill_quota(
        b,
        &[
            ("name", "bad"),
            ("limit", "1 TiB"),
            ("period", "month"),
            ("reset_day", "40"),
        ],
    )
    .await?;
    b.find(Locator::Id("quota-save")).await?.click().await?;
    let shown = shown_alert(b, "quota-error").await?;
    ensure!(
        shown.contains(&message) && message.contains("reset_day"),
        "the page says {shown:?}, the daemon {message:?}"
    );
    ensure!(
        rpc_quotas(&mut rpc).await?.is_empty(),
        "the refused quota was saved"
    );
    println!("refused quota shown: {shown:?}");

    // A good one: saved, shown with its bar and the daemon's figures.
    fill_quota(
        b,
        &[
            ("name", "a-monthly"),
            ("source", "a"),
            ("limit", "1 TiB"),
            ("direction", "both"),
            ("period", "month"),
            ("reset_day", "1"),
        ],
    )
    .await?;
    b.find(Locator::Id("quota-save")).await?.click().await?;
    let ok = wait_text(b, "quota-ok").await?;
    ensure!(ok.contains("a-monthly"), "quota saved: {ok:?}");
    let quotas = rpc_quotas(&mut rpc).await?;
    ensure!(quotas.len() == 1, "get_quotas {quotas:?}");
    ensure!(
        quotas[0]["source"] == json!("a") && quotas[0]["limit"] == json!(1u64 << 40),
        "{quotas:?}"
    );
    // The daemon evaluates its quotas every second (the rate and projection move with the
    // clock) and the page follows its snapshots: the page's figures must equal one state
    // read both before and after them.
    let deadline = Instant::now() + Duration::from_secs(10);
    let (q, status) = loop {
        let before = rpc_quotas(&mut rpc).await?;
        let q = shown_quota(b, "a-monthly").await?;
        let after = rpc_quotas(&mut rpc).await?;
        let status = after
            .first()
            .map(|q| q["status"].clone())
            .unwrap_or_default();
        let same = before == after
            && q["used"] == json!(status["used"].to_string())
            && q["limit"] == json!((1u64 << 40).to_string())
            && q["projected"] == json!(status["projected"].to_string());
        if same {
            break (q, status);
        }
        ensure!(
            Instant::now() < deadline,
            "the quota's bar never showed the daemon's figures: page {q}, daemon {status}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    ensure!(
        q["period"] == status["period"] && q["level"] == json!(""),
        "page {q}, daemon {status}"
    );
    let want = if status["reached_at"].is_null() {
        "not before the period ends"
    } else {
        "reached on "
    };
    ensure!(
        q["projection"]
            .as_str()
            .is_some_and(|p| p.starts_with("At this rate") && p.contains(want)),
        "projection {q}, daemon {status}"
    );
    check_human(
        q["used_text"]
            .as_str()
            .and_then(|t| t.split(" of ").next())
            .unwrap_or(""),
        status["used"].as_u64().unwrap_or(0),
    )?;
    ensure!(
        !displayed(b, "quotas-empty").await?,
        "'no quotas' with a quota"
    );
    println!("quota on the page: {q}");

    // One already over its limit: thresholds at once, the event, the notice.
    let events = js(b, "return window.__torrentStats.quotaEvents()").await?;
    ensure!(events == json!(0), "threshold events before any: {events}");
    fill_quota(
        b,
        &[
            ("name", "a-tiny"),
            ("source", "a"),
            ("limit", "1 KiB"),
            ("period", "day"),
        ],
    )
    .await?;
    b.find(Locator::Id("quota-save")).await?.click().await?;
    let notice = eventually(
        Duration::from_secs(10),
        "the threshold notice",
        || async move {
            let shown = displayed(b, "quota-notice").await?;
            let t = text(b, "quota-notice").await?;
            Ok((shown && t.contains("a-tiny") && t.contains("100 %")).then_some(t))
        },
    )
    .await?;
    let tiny = eventually(Duration::from_secs(10), "the full bar", || async move {
        let q = shown_quota(b, "a-tiny").await?;
        Ok((q["level"] == json!("bad")).then_some(q))
    })
    .await?;
    ensure!(
        tiny["projection"]
            .as_str()
            .is_some_and(|p| p.starts_with("Reached")),
        "{tiny}"
    );
    let fill_px = tiny["fill"].as_f64().unwrap_or(0.0);
    ensure!(
        (fill_px - tiny["width"].as_f64().unwrap_or(-9.0)).abs() <= 1.0,
        "the bar of a quota over its limit is not full: {tiny}"
    );
    println!("threshold notice: {notice:?}");

    // Removed through its button: gone from the page and the daemon.
    b.find(Locator::Id("quota-list"))
        .await?
        .find(Locator::Css("[data-testid='quota-remove-a-tiny']"))
        .await?
        .click()
        .await?;
    eventually(Duration::from_secs(10), "a-tiny removed", || async move {
        Ok(shown_quota(b, "a-tiny").await?.is_null().then_some(()))
    })
    .await?;
    let names: Vec<Value> = rpc_quotas(&mut rpc)
        .await?
        .iter()
        .map(|q| q["name"].clone())
        .collect();
    ensure!(names == vec![json!("a-monthly")], "quotas left {names:?}");

    let png = screenshot_full(
        b,
        DESKTOP.0,
        concat!(env!("CARGO_TARGET_TMPDIR"), "/web-page-ledger.png"),
    )
    .await?;
    println!("screenshot: {png}");

    let caught = js(b, "return window.__torrentStats.errors()").await?;
    ensure!(caught == json!([]), "errors caught by the page: {caught}");
    let log = browser_log(b).await?;
    let severe: Vec<&Value> = log.iter().filter(|e| e["level"] == "SEVERE").collect();
    ensure!(severe.is_empty(), "browser console errors: {severe:#?}");
    ensure!(daemon.running(), "the daemon died");
    Ok(())
}
