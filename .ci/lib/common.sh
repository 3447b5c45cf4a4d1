# Shared helpers for .ci/sealstore: paths, messages, running as the cluster's OS user.
# shellcheck shell=bash

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
STATE="$REPO/.sealstore"          # git-ignored: dev.env, logs, venv, build stamps
export PGRX_HOME="$REPO/pgrx-config"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$REPO/target}"

say()  { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }
note() { printf '    %s\n' "$*" >&2; }
die()  { printf '\033[31mERROR: %s\033[0m\n' "$*" >&2; exit 1; }

is_root() { [ "$(id -u)" = 0 ]; }

# Runs a command with root rights: directly as root, else through sudo (which must exist).
as_root() {
    if is_root; then "$@"
    elif command -v sudo >/dev/null; then sudo "$@"
    else die "this step needs root rights ($*): install sudo and allow this user to use it, or run as root"
    fi
}

# PostgreSQL refuses to run as root. As root, clusters run as the OS user `postgres` (created
# by Debian's postgresql packages); otherwise as the calling user.
pg_os_user() { if is_root; then echo postgres; else id -un; fi; }

as_pg_user() {
    # From /, since the calling directory may be closed to that user (a clone under /root).
    if is_root; then (cd / && runuser -u postgres -- "$@"); else "$@"; fi
}

# True when the cluster's OS user can reach DIR (a clone under /root, mode 700, is not).
pg_user_can_reach() { as_pg_user test -x "$1" 2>/dev/null; }

port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

random_hex() { od -An -tx1 -N"$1" /dev/urandom | tr -d ' \n'; }

# Writes stdin to FILE with mode 0600, owned by OWNER (default: the caller).
write_private() {
    local file=$1 owner=${2:-}
    (umask 077 && cat > "$file")
    chmod 600 "$file"
    if [ -n "$owner" ] && is_root; then chown "$owner" "$file"; fi
}
