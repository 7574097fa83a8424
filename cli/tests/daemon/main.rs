//! The daemon's tests, one binary (each test binary links the whole daemon: librqbit,
//! rustls, axum): the `torrent-stats` executable as a child process, against Deluge's own
//! programs, Flood (a web UI for Deluge), browsers, Prometheus and systemd, and the
//! examples.
//!
//! A test that needs a program besides Rust's toolchain (Deluge's, Transmission's,
//! qBittorrent's, tmux, strace, faketime, Prometheus, Chromium, systemd, Flood on Node 22,
//! python3 with deluge-client) or root is `#[ignore]`d with what it needs named, so plain
//! `cargo test` passes on a machine with Rust alone.
//! `scripts/test.sh` installs them all and runs those too (`--include-ignored`); there,
//! a missing one fails its test (none skips itself).

mod support;

mod backup;
mod cli;
mod console_22;
mod console_interop;
mod crash;
mod crash_loop;
mod deluge_web_api;
mod engine;
mod engine_flood;
mod engine_restart;
mod examples;
mod fault_injection;
mod flood;
mod hardening;
mod load;
mod multi_file_paths;
mod prometheus_rules;
mod quota_action;
mod report;
mod rpc_admission;
mod rpc_hostile;
mod rpc_interop;
mod session_keys;
mod sidecars;
mod sources;
mod state_events;
mod systemd_unit;
mod watch;
mod web;
mod web_browser;
mod web_https;
