#!/usr/bin/env bash
# The whole test suite, from a fresh Debian 12 machine: installs the test toolchain when
# missing (install-test-deps.sh), then checks formatting, lints, and runs every test (unit, scenario
# tests against real PostgreSQL servers, differential tests against the real psql).
set -euo pipefail
cd "$(dirname "$0")/.."
[ -d "${HOME:-/root}/.cargo/bin" ] && export PATH="${HOME:-/root}/.cargo/bin:$PATH"
./scripts/install-test-deps.sh
cargo fmt --all -- --check
cargo clippy --locked --all-targets -- -D warnings
cargo test --locked
