//! The daemon's one function from the C math library, `pow`, provided in Rust so that
//! `libm.so.6` is not loaded at all.
//!
//! The only call into glibc's libm in the whole binary is `f64::powf` in the embedded
//! engine's uTP congestion control (CUBIC's cubic term). For that one function the dynamic
//! loader mapped and relocated all of `libm.so.6`, and 560 KiB of it stayed resident in
//! the idle daemon (`/proc/PID/smaps`, `sim` source): more than a twentieth of its RSS.
//! Defined here, the symbol is resolved at link time, the linker drops `libm.so.6` from the
//! binary's `DT_NEEDED` (rustc links with `--as-needed`), and the process never maps it.
//!
//! The body is the `libm` crate's `pow` (rust-lang's port of musl's, error under 1 ulp;
//! already in `Cargo.lock` through a test dependency). `tests/cli.rs` checks that a running
//! daemon has no `libm.so` mapped.
#![allow(unsafe_code)]

/// `double pow(double x, double y)`, for the code linked into this binary that calls it.
// SAFETY: the symbol is the C standard's `pow` with its C signature and semantics; no
// other object linked into the binary defines it (a second strong definition would fail
// the link), and callers that expected glibc's get the same function within an ulp.
#[unsafe(no_mangle)]
pub extern "C" fn pow(x: f64, y: f64) -> f64 {
    libm::pow(x, y)
}
