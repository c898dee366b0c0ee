# Installing Debian packages without touching what was there before. Sourced by
# install-deps.sh (the quick start) and install-test-deps.sh (the test toolchain).
#
# The rule: a service, cluster or file this script did not create is never stopped,
# disabled or rewritten. A package that is new on this machine may start a service from
# its postinst (postgresql creates and starts a "main" cluster, prometheus starts itself);
# those are kept from starting instead, with a policy-rc.d for the length of the install,
# and a cluster the install created is stopped and marked "manual" in its own start.conf.

# The installed packages among "$@", one per line.
installed_packages() {
    local pkg
    for pkg in "$@"; do
        if dpkg-query -W -f='${Status}\n' "$pkg" 2>/dev/null | grep -q '^install ok installed$'; then
            echo "$pkg"
        fi
    done
}

# "version name" of every PostgreSQL cluster Debian knows, one per line.
known_clusters() {
    if command -v pg_lsclusters >/dev/null 2>&1; then
        pg_lsclusters --no-header 2>/dev/null | awk 'NF >= 2 { print $1, $2 }'
    fi
}

# Installs the packages in "$@" that are missing, without starting any service they bring
# and without touching a service, cluster or file that existed before.
install_without_starting() {
    local missing=() pkg
    for pkg in "$@"; do
        installed_packages "$pkg" | grep -q . || missing+=("$pkg")
    done
    [ "${#missing[@]}" -gt 0 ] || return 0
    if [ "$(id -u)" -ne 0 ]; then
        echo "${0##*/}: these packages are missing: ${missing[*]}; run as root, or install them" >&2
        return 1
    fi
    local clusters_before policy=/usr/sbin/policy-rc.d made_policy=""
    clusters_before="$(known_clusters)"
    # policy-rc.d exit 101: "action forbidden", honoured by invoke-rc.d and
    # deb-systemd-invoke. One that exists is the administrator's: left as it is.
    if [ ! -e "$policy" ] && [ ! -L "$policy" ]; then
        printf '#!/bin/sh\n# made by pgtls-doctor for the length of one apt-get install\nexit 101\n' > "$policy"
        chmod 0755 "$policy"
        made_policy=1
    fi
    echo "${0##*/}: installing ${missing[*]} (no service they bring is started)" >&2
    local status=0
    DEBIAN_FRONTEND=noninteractive apt-get update -qq || status=$?
    if [ "$status" -eq 0 ]; then
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" || status=$?
    fi
    [ -n "$made_policy" ] && rm -f "$policy"
    [ "$status" -eq 0 ] || return "$status"
    quiet_new_clusters "$clusters_before"
    quiet_new_units "${missing[@]}"
}

# A cluster the install created (absent from "$1") is stopped if it runs and marked
# "manual" so that it never starts at boot; the clusters that were there are not touched.
quiet_new_clusters() {
    local before="$1" version name
    while read -r version name; do
        [ -n "$version" ] || continue
        if printf '%s\n' "$before" | grep -qxF "$version $name"; then
            continue
        fi
        pg_ctlcluster "$version" "$name" stop --mode fast >/dev/null 2>&1 || true
        if [ -f "/etc/postgresql/$version/$name/start.conf" ]; then
            echo manual > "/etc/postgresql/$version/$name/start.conf"
        fi
        echo "${0##*/}: the new cluster $version/$name that Debian's package made is kept from starting (start.conf: manual); the doctor never uses it" >&2
    done <<< "$(known_clusters)"
}

# The services of packages this install added are not enabled at boot. Only units of
# packages in "$@" (just installed) are named. PostgreSQL's own unit is left alone: it
# starts the clusters whose start.conf says auto, and the new one now says manual.
quiet_new_units() {
    command -v systemctl >/dev/null 2>&1 || return 0
    [ -d /run/systemd/system ] || return 0
    local pkg
    for pkg in "$@"; do
        case "$pkg" in
            pgbouncer|pgpool2|prometheus) systemctl disable "$pkg" >/dev/null 2>&1 || true ;;
        esac
    done
}
