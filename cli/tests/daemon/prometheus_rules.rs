//! `contrib/prometheus/torrent-stats-quotas.rules.yml`: `promtool check rules` accepts it
//! and `promtool test rules` passes its unit tests (`torrent-stats-quotas.test.yml`: each
//! alert firing and not firing at the times it should, with its labels and annotations).
//! promtool comes from Debian's `prometheus` (installed by `scripts/test.sh`).

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{ensure, Context, Result};

/// The directory of the rules and their tests.
fn rules_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../contrib/prometheus")
}

/// Runs `promtool <args>` in the rules' directory; fails with its output unless it succeeds.
fn promtool(args: &[&str]) -> Result<String> {
    let out = Command::new("promtool")
        .args(args)
        .current_dir(rules_dir())
        .output()
        .context("promtool is missing: apt-get install prometheus (scripts/test.sh does)")?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    ensure!(out.status.success(), "promtool {}: {text}", args.join(" "));
    Ok(text)
}

#[test]
#[ignore = "needs promtool (Prometheus)"]
fn quota_rules_check_and_pass_their_unit_tests() -> Result<()> {
    let checked = promtool(&["check", "rules", "torrent-stats-quotas.rules.yml"])?;
    ensure!(checked.contains("SUCCESS: 5 rules found"), "{checked}");
    let tested = promtool(&["test", "rules", "torrent-stats-quotas.test.yml"])?;
    ensure!(tested.contains("SUCCESS"), "{tested}");
    Ok(())
}
