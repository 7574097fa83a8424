//! Replays the fuzz corpus (`fuzz/corpus/<target>/`: the seeds and whatever fuzzing
//! found worth keeping) through the fuzz targets' bodies (`fuzz/common.rs`) on stable, so
//! every CI run checks the frame and rencode decoders, the `stats.conf` loader, the other
//! file loaders and the web JSON handler against them. Fuzzing itself: `cargo +nightly fuzz run TARGET`
//! (docs/testing.md, BENCHMARKS.md).

#[path = "../../fuzz/common.rs"]
mod common;

use std::path::{Path, PathBuf};

/// The files of `fuzz/corpus/<target>/`; at least one.
fn corpus(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target);
    let mut files: Vec<(PathBuf, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| {
            let path = entry.expect("corpus entry").path();
            let bytes = std::fs::read(&path).expect("corpus file");
            (path, bytes)
        })
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no corpus in {}", dir.display());
    files
}

fn replay(target: &str, body: impl Fn(&[u8])) {
    for (path, bytes) in corpus(target) {
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| body(&bytes)));
        assert!(outcome.is_ok(), "{target}: {} panics", path.display());
    }
}

#[test]
fn frame_corpus() {
    replay("frame", common::frame);
}

#[test]
fn rencode_corpus() {
    replay("rencode", common::rencode);
}

#[test]
fn stats_conf_corpus() {
    replay("stats_conf", common::stats_conf);
}

#[test]
fn files_corpus() {
    replay("files", common::files);
}

#[test]
fn json_api_corpus() {
    let api = common::JsonApi::new();
    replay("json_api", |bytes| api.call(bytes));
}
