#!/usr/bin/env bash
# Builds the doctor (installing the OpenSSL headers if missing) and runs it:
#   ./scripts/doctor.sh db.example.com:5432 --sslmode verify-full
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
[ -d "${HOME:-/root}/.cargo/bin" ] && export PATH="${HOME:-/root}/.cargo/bin:$PATH"
"$here/scripts/install-deps.sh" --build-only >&2
cargo build --quiet --release --locked --manifest-path "$here/Cargo.toml" >&2
exec "$here/target/release/pgtls-doctor" "$@"
