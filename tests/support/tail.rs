//! The last lines of a program's log files, for the failure messages of the harnesses
//! that run real programs (`deluged.rs`, `transmission.rs`, `qbittorrent.rs`). Shared by
//! the library's tests and the daemon's, each of which includes this file.

use std::path::Path;

/// The last `n` lines of `files` read one after the other (a missing file reads as
/// empty).
pub fn files_tail(files: &[&Path], n: usize) -> String {
    let text: String = files
        .iter()
        .map(|f| std::fs::read_to_string(f).unwrap_or_default())
        .collect();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}
