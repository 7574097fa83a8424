//! Helpers for the library's integration tests (`tests/library/`): the in-process ones,
//! which `cli/tests/daemon/` shares, a real `deluged`, a real `qbittorrent-nox`, a real
//! `transmission-daemon` and a minimal tracker for loopback swarms of real clients.
#![allow(dead_code)]

mod in_process;
mod tail;

pub use in_process::*;
pub use tail::*;

#[cfg(feature = "rpc")]
pub mod deluged;
#[cfg(feature = "sidecars")]
pub mod qbittorrent;
#[cfg(feature = "sidecars")]
pub mod tracker;
#[cfg(feature = "sidecars")]
pub mod transmission;
