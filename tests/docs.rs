//! Checks on the documentation.
//!
//! Every doc example compiles in a crate that depends on torrent-stats and the two crates
//! its API is made of (it re-exports no crate whole): examples in `src/` may name only
//! `torrent_stats` (which re-exports the `async_trait` attribute), `tokio` (its runtime and
//! channels), `serde_json` (the values methods take and return) and `std`; those of the
//! README and the `docs/` pages may also name `anyhow`, which `docs/embedding.md` lists. `cargo test --doc` compiles
//! them, but with this crate's dev-dependencies in scope, so this test checks what they
//! name, and that `src/lib.rs` includes every page with a Rust example as doctests.
//!
//! The README stays short (at most 60 lines) and links every `docs/` page; relative links
//! in the README and `docs/` resolve (files, and headings as GitHub anchors them);
//! `docs/testing.md` lists every fuzz target and benchmark script.

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

/// `README.md` and every Markdown page of `docs/`.
fn pages(root: &Path) -> Vec<PathBuf> {
    let mut pages = vec![root.join("README.md")];
    let mut docs: Vec<PathBuf> = fs::read_dir(root.join("docs"))
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|e| e == "md"))
        .collect();
    docs.sort();
    assert!(!docs.is_empty(), "no Markdown page in docs/");
    pages.extend(docs);
    pages
}

/// The lines of `text` outside fenced code blocks, numbered from 1.
fn prose(text: &str) -> Vec<(usize, &str)> {
    let mut fenced = false;
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
        } else if !fenced {
            out.push((i + 1, line));
        }
    }
    out
}

/// The anchor GitHub gives a heading: lower case, spaces to hyphens, other punctuation
/// (backticks, dots, colons, parentheses…) removed.
fn anchor(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
            _ => None,
        })
        .collect()
}

/// The anchors of the headings of a Markdown text, a repeated one numbered as GitHub
/// does (`x`, `x-1`, `x-2`…).
fn anchors(text: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for (_, line) in prose(text) {
        let level = line.chars().take_while(|&c| c == '#').count();
        if !(1..=6).contains(&level) || !line[level..].starts_with(' ') {
            continue;
        }
        let base = anchor(&line[level..]);
        let mut name = base.clone();
        let mut n = 0;
        while out.contains(&name) {
            n += 1;
            name = format!("{base}-{n}");
        }
        out.push(name);
    }
    out
}

/// The targets of the inline links and images on `line`: `[text](target)`,
/// `![alt](target)`.
fn link_targets(line: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut rest = line;
    while let Some(at) = rest.find("](") {
        let after = &rest[at + 2..];
        let Some(end) = after.find(')') else { break };
        // A title after the target (`(path "title")`) is not part of it.
        let target = after[..end].split_whitespace().next().unwrap_or("");
        out.push(target);
        rest = &after[end..];
    }
    out
}

/// Where the relative links of the page at `path` go wrong.
fn broken_links(path: &Path) -> Vec<String> {
    let text = fs::read_to_string(path).unwrap();
    let dir = path.parent().unwrap();
    let mut problems = Vec::new();
    for (n, line) in prose(&text) {
        for target in link_targets(line) {
            if target.is_empty() {
                problems.push(format!("{}:{n}: empty link target", path.display()));
                continue;
            }
            if target.contains("://") || target.starts_with("mailto:") {
                continue;
            }
            let (file, fragment) = match target.split_once('#') {
                Some((file, fragment)) => (file, Some(fragment)),
                None => (target, None),
            };
            let file = if file.is_empty() {
                path.to_path_buf()
            } else {
                dir.join(file)
            };
            if !file.exists() {
                problems.push(format!(
                    "{}:{n}: `{target}`: {} does not exist",
                    path.display(),
                    file.display()
                ));
                continue;
            }
            let Some(fragment) = fragment else { continue };
            if file.extension().is_none_or(|e| e != "md") {
                continue;
            }
            let headings = anchors(&fs::read_to_string(&file).unwrap());
            if !headings.iter().any(|h| h == fragment) {
                problems.push(format!(
                    "{}:{n}: `{target}`: no heading with anchor `#{fragment}` in {} (it has: {})",
                    path.display(),
                    file.display(),
                    headings.join(", ")
                ));
            }
        }
    }
    problems
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
        check(&file, docs, &["tokio", "serde_json"], &mut problems);
    }
    for page in pages(root) {
        let lines = fs::read_to_string(&page)
            .unwrap()
            .lines()
            .map(String::from)
            .collect();
        check(
            &page,
            lines,
            &["tokio", "serde_json", "anyhow"],
            &mut problems,
        );
    }
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

#[test]
fn docs_pages_with_rust_examples_are_doctests() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let lib = fs::read_to_string(root.join("src/lib.rs")).unwrap();
    let lines: Vec<&str> = lib.lines().map(str::trim).collect();
    let mut missing = Vec::new();
    for page in pages(root) {
        let text: Vec<String> = fs::read_to_string(&page)
            .unwrap()
            .lines()
            .map(String::from)
            .collect();
        if rust_blocks(&text).is_empty() {
            continue;
        }
        let name = page.strip_prefix(root).unwrap().to_str().unwrap();
        let include = format!("#[doc = include_str!(\"../{name}\")]");
        // The include, then `#[cfg(doctest)]` on one of the next lines (before the item).
        let included = lines.iter().enumerate().any(|(i, line)| {
            *line == include
                && lines[i + 1..]
                    .iter()
                    .take_while(|l| l.starts_with("#[") || l.starts_with("///"))
                    .any(|l| *l == "#[cfg(doctest)]")
        });
        if !included {
            missing.push(format!(
                "{name} has Rust examples: add to src/lib.rs\n    {include}\n    #[cfg(doctest)]\n    pub struct SomeNameDoctests;"
            ));
        }
    }
    assert!(
        missing.is_empty(),
        "pages whose examples are not compiled:\n{}",
        missing.join("\n")
    );
}

#[test]
fn readme_is_short_and_links_every_docs_page() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let readme = fs::read_to_string(root.join("README.md")).unwrap();
    let lines = readme.lines().count();
    assert!(
        lines <= 60,
        "README.md has {lines} lines; keep it at most 60 and move details to docs/"
    );
    let linked: Vec<&str> = prose(&readme)
        .into_iter()
        .flat_map(|(_, line)| link_targets(line))
        .map(|target| target.split('#').next().unwrap())
        .collect();
    for page in pages(root).into_iter().skip(1) {
        let name = page.strip_prefix(root).unwrap().to_str().unwrap();
        assert!(
            linked.contains(&name),
            "README.md does not link {name}; add it to its Documentation list"
        );
    }
}

#[test]
fn readme_has_the_test_command_ci_runs() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let readme = fs::read_to_string(root.join("README.md")).unwrap();
    assert!(
        readme.contains("```sh\n./scripts/test.sh\n```"),
        "README.md must show the test command `./scripts/test.sh` in a sh block of its own"
    );
    let ci = fs::read_to_string(root.join(".ci/run")).unwrap();
    assert!(
        ci.lines().any(|line| line.trim() == "./scripts/test.sh"),
        ".ci/run must run ./scripts/test.sh, the README's test command"
    );
}

#[test]
fn relative_links_resolve() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let problems: Vec<String> = pages(root).iter().flat_map(|p| broken_links(p)).collect();
    assert!(
        problems.is_empty(),
        "broken links:\n{}",
        problems.join("\n")
    );
}

#[test]
fn testing_page_lists_fuzz_targets_and_bench_scripts() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let page = fs::read_to_string(root.join("docs/testing.md")).unwrap();
    let mut missing = Vec::new();
    let mut targets = 0;
    for entry in fs::read_dir(root.join("fuzz/fuzz_targets")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "rs") {
            targets += 1;
            let name = path.file_stem().unwrap().to_str().unwrap();
            if !page.contains(&format!("`{name}`")) {
                missing.push(format!("fuzz target `{name}`"));
            }
        }
    }
    let mut scripts = 0;
    for entry in fs::read_dir(root.join("scripts/bench")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "sh") {
            scripts += 1;
            let name = format!(
                "scripts/bench/{}",
                path.file_name().unwrap().to_str().unwrap()
            );
            if !page.contains(&name) {
                missing.push(name);
            }
        }
    }
    assert!(targets >= 5, "only {targets} fuzz targets found");
    assert!(scripts >= 6, "only {scripts} benchmark scripts found");
    assert!(
        missing.is_empty(),
        "docs/testing.md does not mention: {}",
        missing.join(", ")
    );
}

#[test]
fn the_link_checker_reads_links_and_anchors() {
    assert_eq!(
        link_targets("see [a](x.md#b) and ![p](img.png \"t\"), [c](#d)"),
        ["x.md#b", "img.png", "#d"]
    );
    assert_eq!(
        anchor(" The `stats.*` methods (Deluge's)"),
        "the-stats-methods-deluges"
    );
    assert_eq!(
        anchors("# A\n```sh\n# not a heading\n```\n## A\n#no\n### B: c\n"),
        ["a", "a-1", "b-c"]
    );
}
