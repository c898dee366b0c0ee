#!/usr/bin/env bash
# The quick start's set-up: what building the doctor and running its demo need, nothing
# more. On Debian 12: the OpenSSL headers and pkg-config (openssl-sys), and PostgreSQL's
# server binaries with psql (the demo starts a throwaway server of its own) unless some
# are already installed.
#
# Safe on a machine that runs PostgreSQL: it never stops, disables or reconfigures a
# cluster or service that was there before. When it installs Debian's postgresql itself,
# the cluster that package makes is kept from starting (see lib/packages.sh).
#
#   ./scripts/install-deps.sh               # build + demo
#   ./scripts/install-deps.sh --build-only  # just what the build needs
#
# The test suite's toolchain (pgbouncer, pgpool2, prometheus, testssl.sh, PostgreSQL 17...)
# is installed by ./scripts/test.sh through install-test-deps.sh, not here.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=lib/packages.sh
. "$here/lib/packages.sh"

have_openssl_dev() {
    command -v pkg-config >/dev/null 2>&1 && pkg-config --exists openssl
}

have_postgres() {
    compgen -G '/usr/lib/postgresql/*/bin/postgres' >/dev/null && command -v psql >/dev/null 2>&1
}

wanted=()
have_openssl_dev || wanted+=(libssl-dev pkg-config)
if [ "${1:-}" != "--build-only" ]; then
    have_postgres || wanted+=(postgresql)
fi
if [ "${#wanted[@]}" -eq 0 ]; then
    [ "${1:-}" = "--build-only" ] || echo "install-deps: everything the build and the demo need is here" >&2
    exit 0
fi
install_without_starting "${wanted[@]}"
echo "install-deps: done" >&2
