#!/usr/bin/env bash
# Builds the archive a CI image installs the doctor from:
#   dist/pgtls-doctor-<version>-<arch>-linux.tar.gz
# holding bin/pgtls-doctor, share/man/man1/pgtls-doctor.1 and the bash, zsh and fish
# completions, laid out to be unpacked into a prefix (`tar -xzf ARCHIVE -C /usr/local`).
#
# The binary is built with OpenSSL compiled in (the vendored-openssl feature), so it needs
# only glibc 2.34 or newer (Debian 12, Ubuntu 22.04+, RHEL 9), not the image's libssl.
#
#   ./scripts/release.sh                  # build, then pack
#   ./scripts/release.sh --binary FILE    # pack a binary built elsewhere
#   ./scripts/release.sh --out DIR        # where the archive goes (default dist/)
# Honours CARGO_TARGET_DIR. Prints the archive's path.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
binary="" out="$here/dist"
while [ $# -gt 0 ]; do
    case "$1" in
        --binary) binary="$2"; shift 2 ;;
        --out) out="$2"; shift 2 ;;
        *) echo "release.sh: unknown argument \"$1\"" >&2; exit 3 ;;
    esac
done
if [ -z "$binary" ]; then
    [ -d "${HOME:-/root}/.cargo/bin" ] && export PATH="${HOME:-/root}/.cargo/bin:$PATH"
    cargo build --quiet --release --locked --features vendored-openssl --manifest-path "$here/Cargo.toml" >&2
    binary="${CARGO_TARGET_DIR:-$here/target}/release/pgtls-doctor"
fi
version="$("$binary" --version | awk '{ print $2 }')"
name="pgtls-doctor-$version-$(uname -m)-linux"
stage="$(mktemp -d)"
trap 'rm -rf "$stage"' EXIT
root="$stage/$name"
install -d "$root/bin" "$root/share/man/man1" "$root/share/bash-completion/completions" \
    "$root/share/zsh/site-functions" "$root/share/fish/vendor_completions.d"
install -m 0755 "$binary" "$root/bin/pgtls-doctor"
"$binary" --generate man > "$root/share/man/man1/pgtls-doctor.1"
"$binary" --generate complete-bash > "$root/share/bash-completion/completions/pgtls-doctor"
"$binary" --generate complete-zsh > "$root/share/zsh/site-functions/_pgtls-doctor"
"$binary" --generate complete-fish > "$root/share/fish/vendor_completions.d/pgtls-doctor.fish"
mkdir -p "$out"
# Paths inside start at bin/ and share/: the archive unpacks into a prefix.
tar -czf "$out/$name.tar.gz" --owner=0 --group=0 -C "$root" bin share
echo "$out/$name.tar.gz"
