# Hot standbys of a project cluster: `pg_basebackup -R` from the running primary, on a port of
# their own, with a copy of the primary's master key (as a KMS would hand the same key to
# every node). `.ci/sealstore replica` runs one next to `run`; the test command's standby tier
# makes one of the test cluster with the same functions.
# shellcheck shell=bash

# The primary's system identifier: a standby made from another primary (the test cluster is
# made afresh every run) is made again.
system_identifier() {
    cluster_psql "$1" postgres -tAc 'SELECT system_identifier FROM pg_control_system()'
}

# replica_init PRIMARY NAME: makes cluster NAME a hot standby of the running cluster PRIMARY
# (CLUSTER_PORT is the primary's), unless it already is one of that primary. Replication logs
# in as a role of its own, `sealstore_replicator`, whose password is in the primary's directory.
replica_init() {
    local primary=$1 name=$2 pbase base owner sysid
    pbase=$(cluster_dir "$primary")
    base=$(cluster_dir "$name")
    owner=$(pg_os_user)
    sysid=$(system_identifier "$primary")
    if [ -f "$base/data/standby.signal" ] && [ "$(cat "$base/primary.sysid" 2>/dev/null)" = "$sysid" ]; then
        return 0
    fi
    cluster_destroy "$name"
    say "Making '$name' a hot standby of cluster '$primary' (pg_basebackup)"
    [ -f "$pbase/replicator.password" ] || random_hex 24 | write_private "$pbase/replicator.password" "$owner"
    # The password reaches psql through a variable and the server only as a SCRAM verifier.
    cluster_psql "$primary" postgres -v pw="$(cat "$pbase/replicator.password")" >/dev/null <<'SQL'
SELECT format('CREATE ROLE sealstore_replicator WITH LOGIN REPLICATION PASSWORD %L', :'pw')
 WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'sealstore_replicator') \gexec
SELECT format('ALTER ROLE sealstore_replicator WITH LOGIN REPLICATION PASSWORD %L', :'pw') \gexec
SQL
    mkdir -p "$base"
    is_root && chown "$owner" "$base"
    chmod 700 "$base"
    local f
    for f in master.key superuser.password gateway.password app.password; do
        write_private "$base/$f" "$owner" < "$pbase/$f"
    done
    printf '127.0.0.1:%s:replication:sealstore_replicator:%s\n' "$CLUSTER_PORT" \
        "$(cat "$pbase/replicator.password")" | write_private "$base/replicator.pgpass" "$owner"
    as_pg_user env PGPASSFILE="$base/replicator.pgpass" "$PG_BINDIR/pg_basebackup" \
        -h 127.0.0.1 -p "$CLUSTER_PORT" -U sealstore_replicator -D "$base/data" \
        -R -X stream -c fast >"$base/basebackup.log" 2>&1 \
        || { cat "$base/basebackup.log" >&2; die "pg_basebackup from cluster '$primary' failed"; }
    # The primary's own lines name its key file; the standby reads its own copy.
    {
        echo ""
        echo "# --- Sealstore standby (written by .ci/sealstore) ---"
        echo "sealstore.master_key_file = '$base/master.key'"
        echo "hot_standby = on"
    } | as_pg_user tee -a "$base/data/postgresql.conf" >/dev/null
    echo "$sysid" > "$base/primary.sysid"
}

# replica_wait_ready NAME: waits until the standby replays (pg_is_in_recovery and a replay
# position), 60 s at most.
replica_wait_ready() {
    local _
    for _ in $(seq 1 120); do
        [ "$(cluster_psql "$1" postgres -tAc 'SELECT pg_is_in_recovery() AND pg_last_wal_replay_lsn() IS NOT NULL' 2>/dev/null)" = t ] && return 0
        sleep 0.5
    done
    die "the standby '$1' did not start replaying within 60 s (log: $(cluster_dir "$1")/postgres.log)"
}

REPLICA_CLUSTER=replica

# `.ci/sealstore replica`: a hot standby of the cluster `run` started, in the foreground until
# Ctrl-C or SIGTERM; writes .sealstore/replica.env.
cmd_replica() {
    local port=${SEALSTORE_REPLICA_PG_PORT:-25330} primary_port
    setup_machine
    install_extension
    cluster_running "$DEV_CLUSTER" \
        || die "no running cluster to follow: start 'bash .ci/sealstore run' first (in another terminal)"
    cluster_start "$DEV_CLUSTER" "${SEALSTORE_PG_PORT:-25329}"
    primary_port=$CLUSTER_PORT
    replica_init "$DEV_CLUSTER" "$REPLICA_CLUSTER"
    trap 'cluster_stop "$REPLICA_CLUSTER"' EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
    cluster_start "$REPLICA_CLUSTER" "$port"
    replica_wait_ready "$REPLICA_CLUSTER"
    {
        echo "# Written by .ci/sealstore replica; load with: set -a; . .sealstore/replica.env; set +a"
        echo "SEALSTORE_REPLICA_PG_URL='$(superuser_url "$REPLICA_CLUSTER" "$DEV_DB")'"
        echo "SEALSTORE_REPLICA_APP_PG_URL='$(app_url "$REPLICA_CLUSTER" "$DEV_DB")'"
    } | write_private "$STATE/replica.env"
    say "A hot standby of 127.0.0.1:$primary_port is running on 127.0.0.1:$CLUSTER_PORT (settings in $STATE/replica.env). Ctrl-C stops it."
    sed -n '2,$p' "$STATE/replica.env"
    while cluster_running "$REPLICA_CLUSTER"; do sleep 2; done
    die "the standby stopped on its own; see $(cluster_dir "$REPLICA_CLUSTER")/postgres.log"
}
