#!/usr/bin/env bash
# Builds the doctor and installs it with its man page and shell completions:
#   ./scripts/install.sh                    # as root: /usr/local; otherwise ~/.local
#   ./scripts/install.sh --prefix /opt/pgtls-doctor
#   ./scripts/install.sh --binary FILE      # install a binary built elsewhere (no build)
#   ./scripts/install.sh --uninstall [--prefix DIR]   # removes exactly what it installed
# Every file installed is listed in PREFIX/share/pgtls-doctor/installed-files, which
# --uninstall reads; nothing else is removed. Honours CARGO_TARGET_DIR.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"

usage() {
    sed -n '2,8p' "$0" | sed 's/^# \{0,1\}//' >&2
    exit "${1:-3}"
}

prefix="" uninstall="" binary=""
while [ $# -gt 0 ]; do
    case "$1" in
        --prefix) [ $# -ge 2 ] || usage; prefix="$2"; shift 2 ;;
        --prefix=*) prefix="${1#--prefix=}"; shift ;;
        --binary) [ $# -ge 2 ] || usage; binary="$2"; shift 2 ;;
        --binary=*) binary="${1#--binary=}"; shift ;;
        --uninstall) uninstall=1; shift ;;
        -h|--help) usage 0 ;;
        *) echo "install.sh: unknown argument \"$1\"" >&2; usage ;;
    esac
done

if [ -z "$prefix" ]; then
    if [ "$(id -u)" -eq 0 ]; then prefix=/usr/local; else prefix="$HOME/.local"; fi
fi
case "$prefix" in /*) ;; *) prefix="$(pwd)/$prefix" ;; esac
bash_dir="$prefix/share/bash-completion/completions"
zsh_dir="$prefix/share/zsh/site-functions"
fish_dir="$prefix/share/fish/vendor_completions.d"
man_dir="$prefix/share/man/man1"
manifest="$prefix/share/pgtls-doctor/installed-files"

if [ -n "$uninstall" ]; then
    [ -f "$manifest" ] || { echo "install.sh: nothing installed under $prefix (no $manifest)" >&2; exit 1; }
    while IFS= read -r file; do
        case "$file" in "$prefix"/*) rm -f -- "$file" ;; esac
    done < "$manifest"
    rm -f -- "$manifest"
    rmdir -- "$prefix/share/pgtls-doctor" 2>/dev/null || true
    echo "removed pgtls-doctor from $prefix" >&2
    exit 0
fi

if [ -n "$binary" ]; then
    bin="$binary"
else
    [ -d "${HOME:-/root}/.cargo/bin" ] && export PATH="${HOME:-/root}/.cargo/bin:$PATH"
    "$here/scripts/install-deps.sh" --build-only >&2
    cargo build --quiet --release --locked --manifest-path "$here/Cargo.toml" >&2
    bin="${CARGO_TARGET_DIR:-$here/target}/release/pgtls-doctor"
fi
[ -x "$bin" ] || { echo "install.sh: no pgtls-doctor binary at $bin" >&2; exit 1; }

install -d "$prefix/bin" "$man_dir" "$bash_dir" "$zsh_dir" "$fish_dir" "$(dirname "$manifest")"
installed=("$prefix/bin/pgtls-doctor")
install -m 0755 "$bin" "$prefix/bin/pgtls-doctor"
# Generated into a private directory first, then installed: `install` replaces a file
# rather than writing through a link planted where it goes.
generated="$(mktemp -d)"
trap 'rm -rf "$generated"' EXIT
"$bin" --generate man > "$generated/pgtls-doctor.1"  # one page, every subcommand and option
"$bin" --generate complete-bash > "$generated/pgtls-doctor"
"$bin" --generate complete-zsh > "$generated/_pgtls-doctor"
"$bin" --generate complete-fish > "$generated/pgtls-doctor.fish"
install -m 0644 "$generated/pgtls-doctor.1" "$man_dir/pgtls-doctor.1"
install -m 0644 "$generated/pgtls-doctor" "$bash_dir/pgtls-doctor"
install -m 0644 "$generated/_pgtls-doctor" "$zsh_dir/_pgtls-doctor"
install -m 0644 "$generated/pgtls-doctor.fish" "$fish_dir/pgtls-doctor.fish"
installed+=("$man_dir/pgtls-doctor.1" "$bash_dir/pgtls-doctor" "$zsh_dir/_pgtls-doctor" "$fish_dir/pgtls-doctor.fish")
printf '%s\n' "${installed[@]}" > "$manifest"
echo "installed $prefix/bin/pgtls-doctor, its man page and bash, zsh and fish completions" >&2
echo "(remove them with: $0 --uninstall --prefix $prefix)" >&2
case ":$PATH:" in *":$prefix/bin:"*) ;; *) echo "(add $prefix/bin to PATH)" >&2 ;; esac
