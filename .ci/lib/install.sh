# Installing what a fresh Debian/Ubuntu machine lacks. Every step checks first and does nothing
# when the thing is already there, so a second run is fast.
# shellcheck shell=bash

PGRX_VERSION=0.18.0
APT_UPDATED=

apt_install() {
    local missing=() p
    for p in "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    command -v apt-get >/dev/null || die "missing packages ${missing[*]} and no apt-get: install them by hand"
    say "Installing Debian packages: ${missing[*]}"
    if [ -z "$APT_UPDATED" ]; then
        as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq || die "apt-get update failed"
        APT_UPDATED=1
    fi
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null \
        || die "apt-get install ${missing[*]} failed"
}

# Sets PG_MAJOR, PG_BINDIR and PG_CONFIG from the newest installed server, installing the
# distribution's default server when there is none.
# The newest installed server's postgres binary (or nothing).
newest_server() {
    printf '%s\n' /usr/lib/postgresql/*/bin/postgres | grep -v '\*' | sort -V | tail -n 1
}

detect_postgres() {
    local dirs
    dirs=$(newest_server)
    if [ -z "$dirs" ]; then
        apt_install postgresql postgresql-contrib
        dirs=$(newest_server)
        [ -n "$dirs" ] || die "no PostgreSQL server found under /usr/lib/postgresql after installing it"
    fi
    PG_BINDIR=$(dirname "$dirs")
    PG_MAJOR=$(basename "$(dirname "$PG_BINDIR")")
    [ "$PG_MAJOR" -ge 15 ] 2>/dev/null || die "PostgreSQL $PG_MAJOR found; Sealstore needs 15 or newer"
    apt_install "postgresql-server-dev-$PG_MAJOR" libclang-dev clang sudo curl jq
    if is_root && ! id postgres >/dev/null 2>&1; then
        die "running as root needs the OS user 'postgres' to run PostgreSQL (Debian's postgresql packages create it): create it or run as a normal user with sudo"
    fi
    PG_CONFIG="$PG_BINDIR/pg_config"
    [ -x "$PG_CONFIG" ] || die "$PG_CONFIG missing after installing postgresql-server-dev-$PG_MAJOR"
    local v
    v=$("$PG_CONFIG" --version | sed -E 's/^PostgreSQL ([0-9]+).*/\1/')
    [ "$v" = "$PG_MAJOR" ] || die "$PG_CONFIG reports PostgreSQL $v, expected $PG_MAJOR"
    export PG_MAJOR PG_BINDIR PG_CONFIG
}

ensure_rust() {
    command -v cargo >/dev/null || die "cargo not found: install Rust (rustup) first, then run this again"
}

ensure_cargo_pgrx() {
    if [ "$(cargo pgrx --version 2>/dev/null)" = "cargo-pgrx $PGRX_VERSION" ]; then return 0; fi
    say "Installing cargo-pgrx $PGRX_VERSION (once; about 4 minutes on 2 cores)"
    cargo install cargo-pgrx --version "$PGRX_VERSION" --locked --quiet \
        || die "cargo install cargo-pgrx $PGRX_VERSION failed"
}

CARGO_FUZZ_VERSION=0.13.1
ensure_cargo_fuzz() {
    if [ "$(cargo fuzz --version 2>/dev/null)" = "cargo-fuzz $CARGO_FUZZ_VERSION" ]; then return 0; fi
    say "Installing cargo-fuzz $CARGO_FUZZ_VERSION (once; about 2 minutes)"
    cargo install cargo-fuzz --version "$CARGO_FUZZ_VERSION" --locked --quiet \
        || die "cargo install cargo-fuzz $CARGO_FUZZ_VERSION failed"
}

# PGRX_HOME points pgrx at the installed server. Never `cargo pgrx init` without a pg_config:
# it would try to download PostgreSQL sources.
ensure_pgrx_config() {
    local want
    want=$(printf '[configs]\npg%s = "%s"\n' "$PG_MAJOR" "$PG_CONFIG")
    if [ "$(cat "$PGRX_HOME/config.toml" 2>/dev/null)" != "$want" ]; then
        printf '%s\n' "$want" > "$PGRX_HOME/config.toml"
        note "wrote $PGRX_HOME/config.toml (pg$PG_MAJOR -> $PG_CONFIG)"
    fi
}

# A virtualenv for the end-to-end tests and dev tooling, rebuilt only when requirements change.
# Schemathesis has its own (it pins another pytest and registers pytest plugins).
ensure_venv() {
    python_venv "$REPO/tests/requirements.txt" "$STATE/venv"
    python_venv "$REPO/tests/schemathesis/requirements.txt" "$STATE/st-venv"
}

# python_venv REQUIREMENTS DIR
python_venv() {
    local req=$1 venv=$2
    if ! python3 -c 'import venv, ensurepip' 2>/dev/null; then apt_install python3-venv; fi
    if [ -x "$venv/bin/python" ] && cmp -s "$req" "$venv/.requirements"; then return 0; fi
    say "Preparing a Python virtualenv ($venv)"
    python3 -m venv "$venv" || die "python3 -m venv failed"
    "$venv/bin/pip" install -q -r "$req" || die "pip install -r $req failed"
    cp "$req" "$venv/.requirements"
}

setup_machine() {
    mkdir -p "$STATE"
    ensure_rust
    detect_postgres
    ensure_cargo_pgrx
    ensure_pgrx_config
    ensure_venv
}
