//! Fuzz target `files`: see ../common.rs.
#![no_main]

#[path = "../common.rs"]
mod common;

libfuzzer_sys::fuzz_target!(|data: &[u8]| common::files(data));
