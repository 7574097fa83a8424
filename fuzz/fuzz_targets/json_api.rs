//! Fuzz target `json_api`: `POST /json` of a logged-in ADMIN session; see ../common.rs.
#![no_main]

use std::sync::OnceLock;

#[path = "../common.rs"]
mod common;

static API: OnceLock<common::JsonApi> = OnceLock::new();

libfuzzer_sys::fuzz_target!(|data: &[u8]| API.get_or_init(common::JsonApi::new).call(data));
