# PgBouncer (Debian's package) in transaction pooling mode in front of a project cluster, for
# the test command's pooler tier. Its files live in the cluster's directory; it runs as the
# cluster's OS user (PgBouncer refuses root).
# shellcheck shell=bash

# pgbouncer_start CLUSTER DB PORT POOL_SIZE: PgBouncer on 127.0.0.1:PORT for database DB of the
# running CLUSTER (CLUSTER_PORT), for the application's login role and the superuser, every
# client sharing POOL_SIZE server connections per user; and as DB_gateway, the same database for
# the gateway's login role on POOL_SIZE + 1 server connections (more than one: a statement
# prepared on one is unknown to the next), which PgBouncer's connect_query gives the settings
# the gateway pins (the gateway prints them; it refuses connections without them).
# Needs the gateway built (GATEWAY_BIN). Sets PGBOUNCER_PORT.
pgbouncer_start() {
    local cluster=$1 db=$2 port=$3 pool=$4 dir owner
    apt_install pgbouncer
    dir="$(cluster_dir "$cluster")/pgbouncer"
    owner=$(pg_os_user)
    pgbouncer_stop "$cluster"
    port_in_use "$port" && die "port $port is taken: set SEALSTORE_TEST_PGBOUNCER_PORT"
    mkdir -p "$dir"
    is_root && chown "$owner" "$dir"
    chmod 700 "$dir"
    # The passwords reach PgBouncer only through this file (mode 0600): it answers the client's
    # SCRAM exchange and logs in to PostgreSQL with them.
    printf '"%s" "%s"\n' sealstore_app_user "$(app_password "$cluster")" postgres "$(superuser_password "$cluster")" \
        sealstore_gateway "$(gateway_password "$cluster")" \
        | write_private "$dir/userlist.txt" "$owner"
    local pins
    pins=$(env -u SEALSTORE_STATEMENT_TIMEOUT_MS "$GATEWAY_BIN" --print-connect-query) \
        || die "the gateway did not print its connect_query"
    cat <<INI | write_private "$dir/pgbouncer.ini" "$owner"
[databases]
$db = host=127.0.0.1 port=$CLUSTER_PORT dbname=$db
${db}_gateway = host=127.0.0.1 port=$CLUSTER_PORT dbname=$db pool_size=$((pool + 1)) connect_query='$pins'

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $port
unix_socket_dir =
auth_type = scram-sha-256
auth_file = $dir/userlist.txt
pool_mode = transaction
default_pool_size = $pool
max_client_conn = 200
logfile = $dir/pgbouncer.log
pidfile = $dir/pgbouncer.pid
INI
    as_pg_user /usr/sbin/pgbouncer -d -q "$dir/pgbouncer.ini" \
        || { tail -n 20 "$dir/pgbouncer.log" >&2; die "PgBouncer did not start (log: $dir/pgbouncer.log)"; }
    local _
    for _ in $(seq 1 50); do port_in_use "$port" && break; sleep 0.1; done
    port_in_use "$port" || die "PgBouncer is not listening on $port (log: $dir/pgbouncer.log)"
    PGBOUNCER_PORT=$port
}

pgbouncer_stop() {
    local pidfile
    pidfile="$(cluster_dir "$1")/pgbouncer/pgbouncer.pid"
    [ -f "$pidfile" ] || return 0
    as_root kill "$(cat "$pidfile")" 2>/dev/null || true
    local _
    for _ in $(seq 1 50); do [ -f "$pidfile" ] || break; sleep 0.1; done
    as_root rm -f "$pidfile"
}
