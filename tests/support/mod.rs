//! Helpers for the library's integration tests (`tests/library/`): the in-process ones,
//! which `cli/tests/daemon/` shares, a real `deluged` and a real `qbittorrent-nox`.
#![allow(dead_code)]

mod in_process;

pub use in_process::*;

#[cfg(feature = "rpc")]
pub mod deluged;
#[cfg(feature = "sidecars")]
pub mod qbittorrent;
