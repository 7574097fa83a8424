//! Links the binaries with packed relative relocations (`DT_RELR`, `-z
//! pack-relative-relocs`) on GNU/Linux.
//!
//! A position-independent executable carries one 24-byte relocation for each pointer in
//! its read-only data, and the dynamic loader reads all of them at every start: 1 MiB for
//! `torrent-stats`, resident for the daemon's whole life (measured with
//! `/proc/PID/pagemap`: every page of `.rela.dyn`). Packed, they take 12 KiB and the idle
//! daemon's RSS drops by about 1.3 MiB (11.8 to 10.5 MiB on the sim source). Address-space
//! layout randomization is unchanged. Needs GNU ld 2.38 or lld 15 and glibc 2.36 (older
//! GNU ld warns and ignores the flag); set `TORRENT_STATS_NO_RELR=1` to build without it.

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=TORRENT_STATS_NO_RELR");
    let os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    let env = std::env::var("CARGO_CFG_TARGET_ENV").unwrap_or_default();
    let opted_out = std::env::var_os("TORRENT_STATS_NO_RELR").is_some_and(|v| v != "0");
    if os == "linux" && env == "gnu" && !opted_out {
        println!("cargo:rustc-link-arg-bins=-Wl,-z,pack-relative-relocs");
    }
}
