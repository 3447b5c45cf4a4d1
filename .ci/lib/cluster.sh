# Project-local PostgreSQL clusters: one directory each, holding the data directory, its master
# key, generated passwords and the server log. Started as a non-root OS user, on 127.0.0.1 only.
# shellcheck shell=bash

# Clusters live in the repo (git-ignored) when the cluster's OS user can reach it; otherwise
# (a clone under /root, say) in a per-repo directory under /var/tmp.
cluster_root() {
    if pg_user_can_reach "$STATE" && [ ${#STATE} -le 60 ]; then
        echo "$STATE/clusters"
    else
        # Also taken for long paths: pgrx puts its Unix socket there (about 100 bytes at most).
        echo "/var/tmp/sealstore-$(printf '%s' "$REPO" | sha256sum | cut -c1-12)"
    fi
}

cluster_dir() { echo "$(cluster_root)/$1"; }

pg_ctl_as() { as_pg_user "$PG_BINDIR/pg_ctl" "$@"; }

# Where cluster NAME puts its Unix socket: the cluster directory itself (mode 0700, so only the
# cluster's OS user and root can connect through it), when the socket's path fits the 107 bytes
# a Unix socket path may have and the directory can stand in a URL as it is. Otherwise none, and
# everything uses TCP on 127.0.0.1.
cluster_socket_dir() {
    local base
    base=$(cluster_dir "$1")
    if [ $((${#base} + 20)) -le 107 ] && [[ $base =~ ^[A-Za-z0-9/._+-]+$ ]]; then
        echo "$base"
    fi
}

cluster_running() { pg_ctl_as -D "$(cluster_dir "$1")/data" status >/dev/null 2>&1; }

# Creates cluster NAME unless it exists: a fresh master key (mode 0600, never committed), a
# random superuser password, and the settings Sealstore relies on.
cluster_init() {
    local name=$1 base owner
    base=$(cluster_dir "$name")
    owner=$(pg_os_user)
    if [ -f "$base/data/PG_VERSION" ]; then
        [ "$(cat "$base/data/PG_VERSION")" = "$PG_MAJOR" ] \
            || die "cluster $base was made by PostgreSQL $(cat "$base/data/PG_VERSION"), not $PG_MAJOR: remove it or move it away"
        # Clusters made before applications got a login role of their own.
        [ -f "$base/app.password" ] || random_hex 24 | write_private "$base/app.password" "$owner"
        return 0
    fi
    say "Initialising PostgreSQL cluster '$name' in $base (as OS user $owner)"
    mkdir -p "$(cluster_root)"
    chmod 755 "$(cluster_root)"
    mkdir -p "$base"
    is_root && chown "$owner" "$base"
    chmod 700 "$base"
    random_hex 32 | write_private "$base/master.key" "$owner"
    random_hex 24 | write_private "$base/superuser.password" "$owner"
    random_hex 24 | write_private "$base/gateway.password" "$owner"
    random_hex 24 | write_private "$base/app.password" "$owner"
    as_pg_user "$PG_BINDIR/initdb" -D "$base/data" -U postgres --pwfile="$base/superuser.password" \
        --auth=scram-sha-256 -E UTF8 --locale=C.UTF-8 --no-instructions >"$base/initdb.log" 2>&1 \
        || { cat "$base/initdb.log" >&2; die "initdb failed for $base"; }
    {
        sealstore_server_conf "$base"
        echo "unix_socket_directories = ''          # none here; cluster_start gives one in the cluster directory"
    } | as_pg_user tee -a "$base/data/postgresql.conf" >/dev/null
}

# The server settings every Sealstore cluster gets (also those of newer_pg.sh), for the
# cluster in directory BASE (its master key is BASE/master.key).
sealstore_server_conf() {
    cat <<CONF

# --- Sealstore (written by .ci/sealstore) ---
listen_addresses = '127.0.0.1'
shared_preload_libraries = 'sealstore'
sealstore.master_key_file = '$1/master.key'
# Never write bind parameters (which carry plaintext and tokens) into the server log.
log_parameter_max_length = 0
log_parameter_max_length_on_error = 0
CONF
}

# Starts cluster NAME on PORT unless it is already running (then its own port is kept).
# Sets CLUSTER_PORT; CLUSTER_STARTED=1 when this call started it.
cluster_start() {
    local name=$1 port=$2 base
    base=$(cluster_dir "$name")
    CLUSTER_STARTED=0
    if cluster_running "$name"; then
        CLUSTER_PORT=$(sed -n 4p "$base/data/postmaster.pid")
        note "cluster '$name' already running on port $CLUSTER_PORT"
        return 0
    fi
    port_in_use "$port" && die "port $port is taken by another program: choose another (SEALSTORE_PG_PORT / SEALSTORE_TEST_PG_PORT)"
    say "Starting PostgreSQL cluster '$name' on 127.0.0.1:$port"
    local options="-p $port" socket_dir
    socket_dir=$(cluster_socket_dir "$name")
    [ -n "$socket_dir" ] && options="$options -k $socket_dir"
    # RUST_BACKTRACE in the server's environment would make pgrx attach Rust backtraces to
    # the errors clients receive.
    as_pg_user env -u RUST_BACKTRACE -u RUST_LIB_BACKTRACE "$PG_BINDIR/pg_ctl" \
        -D "$base/data" -l "$base/postgres.log" -o "$options" -w -t 60 start >/dev/null \
        || { tail -n 20 "$base/postgres.log" >&2; die "PostgreSQL did not start (log: $base/postgres.log)"; }
    CLUSTER_PORT=$port
    CLUSTER_STARTED=1
}

cluster_stop() {
    local name=$1
    cluster_running "$name" || return 0
    say "Stopping PostgreSQL cluster '$name'"
    pg_ctl_as -D "$(cluster_dir "$name")/data" -m fast -w -t 60 stop >/dev/null || true
}

cluster_destroy() {
    local name=$1 base
    base=$(cluster_dir "$name")
    cluster_stop "$name"
    [ -d "$base" ] && as_root rm -rf "$base"
    return 0
}

superuser_password() { cat "$(cluster_dir "$1")/superuser.password"; }
gateway_password() { cat "$(cluster_dir "$1")/gateway.password"; }
app_password() { cat "$(cluster_dir "$1")/app.password"; }

# psql as the cluster's superuser: cluster_psql NAME DB [psql args...]
cluster_psql() {
    local name=$1 db=$2; shift 2
    PGPASSWORD=$(superuser_password "$name") PGOPTIONS='-c client_min_messages=warning' "$PG_BINDIR/psql" -X -q -v ON_ERROR_STOP=1 \
        -h 127.0.0.1 -p "$CLUSTER_PORT" -U postgres -d "$db" "$@"
}

# Creates database DB (if missing) with the extension, the gateway's login role and an
# application's (sql/roles.sql).
cluster_prepare_db() {
    local name=$1 db=$2
    if [ -z "$(cluster_psql "$name" postgres -tAc "SELECT 1 FROM pg_database WHERE datname = '$db'")" ]; then
        cluster_psql "$name" postgres -c "CREATE DATABASE \"$db\""
    fi
    # Until Sealstore ships upgrade scripts, an extension created from other SQL of the same
    # version cannot be brought up to date in place; say so instead of running half-updated.
    local script stamp want
    script="$("$PG_CONFIG" --sharedir)/extension/sealstore--$(sed -n "s/^default_version = '\(.*\)'/\1/p" \
        "$("$PG_CONFIG" --sharedir)/extension/sealstore.control").sql"
    want=$(sha256sum "$script" | cut -d' ' -f1)
    stamp="$(cluster_dir "$name")/extension-sql.$db"
    if [ -n "$(cluster_psql "$name" "$db" -tAc "SELECT 1 FROM pg_extension WHERE extname = 'sealstore'")" ]; then
        [ "$(cat "$stamp" 2>/dev/null)" = "$want" ] || die "database '$db' in $(cluster_dir "$name") was created by an older build of the extension (same version, different SQL). Sealstore has no upgrade scripts yet: move that cluster directory away (its data and keys go with it) and run again"
    else
        cluster_psql "$name" "$db" -c "CREATE EXTENSION sealstore"
        echo "$want" > "$stamp"
    fi
    cluster_roles "$name" "$db"
}

# The gateway's and an application's login roles for database DB of cluster NAME
# (sql/roles.sql; idempotent): cluster_roles NAME DB
cluster_roles() {
    cluster_psql "$1" "$2" -v db="$2" -v gateway_password="$(gateway_password "$1")" \
        -v app_password="$(app_password "$1")" -f "$REPO/sql/roles.sql" >/dev/null
}

superuser_url() { echo "postgresql://postgres:$(superuser_password "$1")@127.0.0.1:$CLUSTER_PORT/$2"; }
gateway_url() { echo "postgresql://sealstore_gateway:$(gateway_password "$1")@127.0.0.1:$CLUSTER_PORT/$2"; }
# An application's login role (member of sealstore_app; never the gateway's).
app_url() { echo "postgresql://sealstore_app_user:$(app_password "$1")@127.0.0.1:$CLUSTER_PORT/$2"; }

# The URL for a gateway on the database's own machine: through the cluster's Unix socket (no
# TCP stack on either side of each call) when it has one, else gateway_url.
gateway_local_url() {
    local dir
    dir=$(cluster_socket_dir "$1")
    if [ -n "$dir" ] && [ -S "$dir/.s.PGSQL.$CLUSTER_PORT" ]; then
        echo "postgresql://sealstore_gateway:$(gateway_password "$1")@/$2?host=$dir&port=$CLUSTER_PORT"
    else
        gateway_url "$1" "$2"
    fi
}
