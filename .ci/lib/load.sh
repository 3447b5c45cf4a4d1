# `.ci/sealstore load [seconds]`: the mixed workload of tests/e2e/test_load.py (64 clients, 24
# tenants, bad tokens, log_statement = 'all' and the gateway at TRACE) for SECONDS instead of
# CI's 30, with the same checks: 0 server errors, nothing acknowledged lost, nothing of another
# tenant, nothing protected in the logs. Its figures go to tests/bench/results/load.md.
# shellcheck shell=bash

cmd_load() {
    setup_machine
    install_extension
    build_gateway
    run_load "$1"
}

run_load() {
    local seconds=$1
    if ! [[ $seconds =~ ^[0-9]+$ ]] || [ "$seconds" -lt 5 ]; then
        die "usage: .ci/sealstore load [seconds, at least 5]"
    fi
    mkdir -p "$STATE/logs" "$REPO/tests/bench/results"
    say "Load: 64 clients for $seconds s through the gateway, verbose logging on"
    SEALSTORE_LOAD_SECONDS=$seconds \
    SEALSTORE_LOAD_REPORT="$REPO/tests/bench/results/load.md" \
    SEALSTORE_GATEWAY_BIN=$GATEWAY_BIN \
    SEALSTORE_PG_BINDIR=$PG_BINDIR \
    SEALSTORE_CLUSTER_ROOT="$(cluster_root)" \
    SEALSTORE_PG_OS_USER=$(pg_os_user) \
        "$STATE/venv/bin/python" -m pytest -p no:cacheprovider -ra -s \
        "$REPO/tests/e2e/test_load.py::test_mixed_load_loses_nothing_and_leaks_nothing" \
        || die "the load run failed (its checks are in tests/e2e/test_load.py)"
    say "Figures in tests/bench/results/load.md"
}
