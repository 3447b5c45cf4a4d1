# `.ci/sealstore bench`: the same set-up, then the benchmarks, on a dedicated cluster. Writes
# tests/bench/results/*.md (linked from the README). Not part of `test`: benchmarks are not
# pass/fail tests, and the machines are shared and noisy.
# shellcheck shell=bash

BENCH_CLUSTER=bench

# `bench` runs both; `bench encryption` or `bench auth` runs one.
cmd_bench() {
    local which=$1
    case "$which" in all|encryption|auth) ;; *) die "unknown benchmark '$which' (all, encryption, auth)" ;; esac
    setup_machine
    install_extension
    mkdir -p "$STATE/logs" "$REPO/tests/bench/results"
    trap 'cluster_stop "$BENCH_CLUSTER"' EXIT
    cluster_init "$BENCH_CLUSTER"
    cluster_start "$BENCH_CLUSTER" "${SEALSTORE_BENCH_PG_PORT:-54349}"
    cluster_psql "$BENCH_CLUSTER" postgres -c 'DROP DATABASE IF EXISTS sealstore_bench' -c 'CREATE DATABASE sealstore_bench'
    cluster_psql "$BENCH_CLUSTER" sealstore_bench -c 'CREATE EXTENSION sealstore'

    if [ "$which" != auth ]; then
    say "Benchmark: bare crates (cargo bench -p sealstore-core)"
    cargo bench -q -p sealstore-core --bench envelope > "$STATE/logs/bench-bare.jsonl" \
        || die "cargo bench failed"
    say "Benchmark: encryption in the database against pgcrypto"
    "$STATE/venv/bin/python" "$REPO/tests/bench/encryption.py" \
        "$(superuser_url "$BENCH_CLUSTER" sealstore_bench)" "$STATE/logs/bench-bare.jsonl" \
        "$REPO/tests/bench/results/encryption.md" || die "the encryption benchmark failed"
    fi
    [ "$which" = encryption ] && return 0
    say "Benchmark: authenticate() and the tenant isolation policy"
    "$STATE/venv/bin/python" "$REPO/tests/bench/auth.py" \
        "$(superuser_url "$BENCH_CLUSTER" sealstore_bench)" "$REPO/tests/bench/results/auth.md" \
        || die "the authentication benchmark failed"
    say "Results: tests/bench/results/encryption.md, tests/bench/results/auth.md"
}
