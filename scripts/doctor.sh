#!/usr/bin/env bash
# Builds the doctor (installing the OpenSSL headers if missing) and runs it:
#   ./scripts/doctor.sh db.example.com:5432 --sslmode verify-full
# The build goes where cargo puts it: $CARGO_TARGET_DIR if set, else target/ here.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
[ -d "${HOME:-/root}/.cargo/bin" ] && export PATH="${HOME:-/root}/.cargo/bin:$PATH"
"$here/scripts/install-deps.sh" --build-only >&2
cargo build --quiet --release --locked --manifest-path "$here/Cargo.toml" >&2
target_dir="${CARGO_TARGET_DIR:-$here/target}"
exec "$target_dir/release/pgtls-doctor" "$@"
