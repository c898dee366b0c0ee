#!/usr/bin/env bash
# Builds the doctor and installs it with its man page and shell completions where the
# system looks for them: under /usr/local (and bash's and zsh's completion directories)
# as root, under ~/.local otherwise.
#   ./scripts/install.sh            # then: man pgtls-doctor
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
[ -d "${HOME:-/root}/.cargo/bin" ] && export PATH="${HOME:-/root}/.cargo/bin:$PATH"
"$here/scripts/install-deps.sh" --build-only >&2
cargo build --quiet --release --locked --manifest-path "$here/Cargo.toml" >&2
bin="$here/target/release/pgtls-doctor"

if [ "$(id -u)" -eq 0 ]; then
    prefix=/usr/local
    bash_dir=/usr/share/bash-completion/completions
    zsh_dir=/usr/local/share/zsh/site-functions
else
    prefix="$HOME/.local"
    bash_dir="${XDG_DATA_HOME:-$HOME/.local/share}/bash-completion/completions"
    zsh_dir="${XDG_DATA_HOME:-$HOME/.local/share}/zsh/site-functions"
fi
install -d "$prefix/bin" "$prefix/share/man/man1" "$bash_dir" "$zsh_dir"
install -m 0755 "$bin" "$prefix/bin/pgtls-doctor"
"$bin" --generate man > "$prefix/share/man/man1/pgtls-doctor.1"
"$bin" --generate complete-bash > "$bash_dir/pgtls-doctor"
"$bin" --generate complete-zsh > "$zsh_dir/_pgtls-doctor"
echo "installed $prefix/bin/pgtls-doctor, its man page and bash and zsh completions" >&2
if [ "$prefix" != /usr/local ]; then
    echo "(zsh: add $zsh_dir to fpath before compinit)" >&2
fi
