#!/usr/bin/env bash
# The whole test suite, on a fresh machine: installs what the tests need, builds once
# (one target dir reused by every step), then runs every test, doctest and bench-as-test.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR=never

# The core library must build with only the design-card dependencies.
cargo build --no-default-features --lib
# Unit, integration, example and bench targets (benches run once each, as tests).
cargo test --all-features --all-targets
# Examples in the docs.
cargo test --all-features --doc
