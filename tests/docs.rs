//! Every doc example compiles in a crate that depends on torrent-stats alone: examples in
//! `src/` may name only `torrent_stats` (which re-exports `async_trait`, `serde_json` and
//! `tokio`) and `std`; the README's may also name the dependencies its library section
//! lists (`tokio`, `anyhow`). `cargo test --doc` compiles them, but with this crate's
//! dev-dependencies in scope, so this test checks what they name.

use std::fs;
use std::path::{Path, PathBuf};

/// Crates an embedder would not have just by depending on torrent-stats.
const FOREIGN: [&str; 10] = [
    "tokio_test",
    "tempfile",
    "proptest",
    "criterion",
    "async_trait",
    "serde_json",
    "serde",
    "tokio",
    "anyhow",
    "thiserror",
];

/// The code lines of fenced Rust blocks in `text` (doc-comment prefixes already removed).
fn rust_blocks(lines: &[String]) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut in_rust = None;
    for (i, line) in lines.iter().enumerate() {
        let t = line.trim_start();
        if let Some(info) = t.strip_prefix("```") {
            in_rust = match in_rust {
                Some(_) => None,
                None => {
                    // Rust unless a tag names another language (```text, ```sh, ```toml…).
                    Some(info.split(',').map(str::trim).all(|tag| {
                        matches!(
                            tag,
                            "" | "rust" | "no_run" | "ignore" | "should_panic" | "compile_fail"
                        ) || tag.starts_with("edition")
                    }))
                }
            };
            continue;
        }
        if in_rust == Some(true) {
            let code = t.strip_prefix("# ").unwrap_or(t);
            out.push((i + 1, code.to_string()));
        }
    }
    out
}

/// Paths into foreign crates on `line` (`tokio::…` but not `torrent_stats::tokio::…`).
fn foreign_paths(line: &str, allowed: &[&str]) -> Vec<String> {
    let mut found = Vec::new();
    for krate in FOREIGN.iter().filter(|k| !allowed.contains(k)) {
        let needle = format!("{krate}::");
        let mut from = 0;
        while let Some(at) = line[from..].find(&needle) {
            let start = from + at;
            let before = &line[..start];
            let word_start = before
                .chars()
                .last()
                .is_none_or(|c| !(c.is_alphanumeric() || c == '_'));
            if word_start && !before.ends_with("torrent_stats::") {
                found.push(needle.clone());
            }
            from = start + needle.len();
        }
    }
    found
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

fn check(path: &Path, lines: Vec<String>, allowed: &[&str], problems: &mut Vec<String>) {
    for (n, code) in rust_blocks(&lines) {
        for p in foreign_paths(&code, allowed) {
            problems.push(format!("{}:{n}: names `{p}`: {code}", path.display()));
        }
    }
}

#[test]
fn doc_examples_name_only_torrent_stats() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    rust_files(&root.join("src"), &mut files);
    let mut problems = Vec::new();
    let mut blocks = 0;
    for file in files {
        let text = fs::read_to_string(&file).unwrap();
        let docs: Vec<String> = text
            .lines()
            .map(|l| {
                let t = l.trim_start();
                t.strip_prefix("///")
                    .or_else(|| t.strip_prefix("//!"))
                    .map(|rest| rest.strip_prefix(' ').unwrap_or(rest).to_string())
                    .unwrap_or_default()
            })
            .collect();
        blocks += rust_blocks(&docs).len();
        check(&file, docs, &[], &mut problems);
    }
    let readme = fs::read_to_string(root.join("README.md")).unwrap();
    let lines: Vec<String> = readme.lines().map(String::from).collect();
    check(
        &root.join("README.md"),
        lines,
        &["tokio", "anyhow"],
        &mut problems,
    );
    assert!(blocks > 50, "only {blocks} doc example lines found");
    assert!(
        problems.is_empty(),
        "doc examples name crates an embedder does not have:\n{}",
        problems.join("\n")
    );
}

#[test]
fn the_checker_finds_foreign_paths() {
    assert_eq!(
        foreign_paths("tokio_test::block_on(x)", &[]),
        ["tokio_test::"]
    );
    assert!(foreign_paths("torrent_stats::tokio::spawn(x)", &[]).is_empty());
    assert!(foreign_paths("my_tokio::x", &[]).is_empty());
    assert_eq!(
        foreign_paths("#[async_trait::async_trait]", &[]),
        ["async_trait::"]
    );
    assert!(foreign_paths("tokio::main", &["tokio"]).is_empty());
}
