//! Deluge's daemon RPC protocol (feature `rpc`).
//!
//! - [`frame`]: framing, limits, version-probe resynchronisation.

pub mod frame;
