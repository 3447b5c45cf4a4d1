# `.ci/sealstore run`: PostgreSQL with the extension, plus the gateway, in the foreground until
# Ctrl-C or SIGTERM; then everything this run started is stopped.
# shellcheck shell=bash

DEV_CLUSTER=dev
DEV_DB=sealstore

# The memory settings docs/operations.md recommends for a vector workload, from this machine's
# memory: shared_buffers a quarter of it (a vector store's rows and indexes stay in memory),
# effective_cache_size three quarters, maintenance_work_mem a sixteenth up to 2 GB (index
# builds in memory). Written once, into the dev cluster's postgresql.conf; an operator's
# later edits are kept.
memory_settings() {
    local conf=$1 kib
    as_pg_user grep -q '^# --- Sealstore memory' "$conf" && return 0
    kib=$(awk '/^MemTotal:/ { print $2 }' /proc/meminfo)
    [ -n "$kib" ] || return 0
    {
        echo ""
        echo "# --- Sealstore memory (written once by .ci/sealstore run; edit freely) ---"
        echo "shared_buffers = '$((kib / 4 / 1024))MB'"
        echo "effective_cache_size = '$((kib * 3 / 4 / 1024))MB'"
        local mwm=$((kib / 16 / 1024))
        [ "$mwm" -gt 2048 ] && mwm=2048
        echo "maintenance_work_mem = '${mwm}MB'"
    } | as_pg_user tee -a "$conf" >/dev/null
}

cmd_run() {
    local pg_port=${SEALSTORE_PG_PORT:-25329}
    local listen=${SEALSTORE_GATEWAY_LISTEN:-127.0.0.1:8080}
    setup_machine
    install_extension
    build_gateway

    GATEWAY_PID=
    STOP_CLUSTER=0
    trap run_cleanup EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM

    cluster_init "$DEV_CLUSTER"
    memory_settings "$(cluster_dir "$DEV_CLUSTER")/data/postgresql.conf"
    cluster_start "$DEV_CLUSTER" "$pg_port"
    STOP_CLUSTER=$CLUSTER_STARTED
    cluster_prepare_db "$DEV_CLUSTER" "$DEV_DB"

    port_in_use "${listen##*:}" && die "gateway address $listen is taken: set SEALSTORE_GATEWAY_LISTEN"
    mkdir -p "$STATE/logs"
    say "Starting the gateway on http://$listen (log: $STATE/logs/gateway.log)"
    SEALSTORE_GATEWAY_LISTEN=$listen SEALSTORE_GATEWAY_PG_URL=$(gateway_local_url "$DEV_CLUSTER" "$DEV_DB") \
        "$GATEWAY_BIN" >>"$STATE/logs/gateway.log" 2>&1 &
    GATEWAY_PID=$!
    wait_ready "http://$listen/readyz"

    write_dev_env "$listen"
    say "Sealstore is running. Ctrl-C stops it."
    local rc=0
    wait "$GATEWAY_PID" || rc=$?
    GATEWAY_PID=
    die "the gateway exited on its own (status $rc); see $STATE/logs/gateway.log"
}

wait_ready() {
    local url=$1 _
    for _ in $(seq 1 60); do
        if [ "$(curl -s -o /dev/null -w '%{http_code}' "$url" 2>/dev/null)" = 200 ]; then return 0; fi
        kill -0 "$GATEWAY_PID" 2>/dev/null || { tail -n 20 "$STATE/logs/gateway.log" >&2; die "the gateway exited during start-up"; }
        sleep 0.5
    done
    tail -n 20 "$STATE/logs/gateway.log" >&2
    die "the gateway did not become ready at $url within 30 s"
}

write_dev_env() {
    local listen=$1 token env="$STATE/dev.env"
    local secret_file
    secret_file="$(cluster_dir "$DEV_CLUSTER")/dev-jwt.secret"
    token=$("$STATE/venv/bin/python" "$REPO/.ci/lib/dev_token.py" "$secret_file") \
        || die "could not mint the development admin token"
    # Its key, registered once; the secret goes through stdin and is never logged.
    {
        echo "SET log_min_error_statement = panic; SET log_statement = none;"
        echo "SELECT sealstore.add_jwt_key('sealstore-dev', 'HS256', '$(cat "$secret_file")', admin => true)"
        echo " WHERE NOT EXISTS (SELECT FROM sealstore.jwt_keys WHERE kid = 'sealstore-dev');"
    } | cluster_psql "$DEV_CLUSTER" "$DEV_DB" >/dev/null \
        || die "could not register the development JWT key"
    {
        echo "# Written by .ci/sealstore run; load with: set -a; . .sealstore/dev.env; set +a"
        echo "SEALSTORE_PG_URL='$(superuser_url "$DEV_CLUSTER" "$DEV_DB")'"
        echo "SEALSTORE_APP_PG_URL='$(app_url "$DEV_CLUSTER" "$DEV_DB")'"
        echo "SEALSTORE_GATEWAY_URL='http://$listen'"
        echo "SEALSTORE_DEV_ADMIN_TOKEN='$token'"
    } | write_private "$env"
    say "Development settings (also in $env):"
    sed -n '2,$p' "$env"
    cat <<EXAMPLES

Try it:
  set -a; . .sealstore/dev.env; set +a
  psql "\$SEALSTORE_APP_PG_URL" -c 'SELECT sealstore.version(), sealstore.master_key_fingerprint()'
  curl -s "\$SEALSTORE_GATEWAY_URL/readyz"
  curl -s -H "Authorization: Bearer \$SEALSTORE_DEV_ADMIN_TOKEN" -H 'Content-Type: application/json' \\
       -d '{"name": "acme"}' "\$SEALSTORE_GATEWAY_URL/v1/tenants"
  (then create an API key for it; README's "A first session" continues the example; routes in docs/gateway.md)

EXAMPLES
}

run_cleanup() {
    trap - EXIT INT TERM
    if [ -n "${GATEWAY_PID:-}" ] && kill -0 "$GATEWAY_PID" 2>/dev/null; then
        say "Stopping the gateway"
        kill -TERM "$GATEWAY_PID" 2>/dev/null || true
        wait "$GATEWAY_PID" 2>/dev/null || true
    fi
    [ "${STOP_CLUSTER:-0}" = 1 ] && cluster_stop "$DEV_CLUSTER"
    return 0
}
