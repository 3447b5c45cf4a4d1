# `.ci/sealstore bench`: the same set-up, then the benchmarks, on a dedicated cluster. Writes
# tests/bench/results/*.md (summed up in BENCHMARKS.md). Not part of `test`: benchmarks are not
# pass/fail tests, and the machines are shared and noisy.
# shellcheck shell=bash

BENCH_CLUSTER=bench
BENCH_REPLICA_CLUSTER=bench-replica
PGVECTOR_VERSION=0.8.6

# pgvector, the reference of `bench hnsw`, built from the vendored release source once (skipped
# when that version is installed). Its type is public.vector, so it could share a database with
# Sealstore, but its access method is also named hnsw: it gets a database of its own.
install_pgvector() {
    local libdir sharedir src
    libdir=$("$PG_CONFIG" --pkglibdir)
    sharedir=$("$PG_CONFIG" --sharedir)
    if [ -f "$libdir/vector.so" ] && [ -f "$sharedir/extension/vector--$PGVECTOR_VERSION.sql" ]; then
        return 0
    fi
    src=${SEALSTORE_VENDOR_DIR:-$REPO/../shared/vendor}/pgvector-$PGVECTOR_VERSION.tar.gz
    [ -f "$src" ] || die "pgvector's release source is not at $src (set SEALSTORE_VENDOR_DIR to its directory)"
    say "Building pgvector $PGVECTOR_VERSION from $src (under a minute)"
    apt_install make gcc
    mkdir -p "$STATE/build"
    rm -rf "$STATE/build/pgvector-$PGVECTOR_VERSION"
    tar -xzf "$src" -C "$STATE/build" || die "unpacking $src failed"
    { make -C "$STATE/build/pgvector-$PGVECTOR_VERSION" -j2 PG_CONFIG="$PG_CONFIG" \
        && make -C "$STATE/build/pgvector-$PGVECTOR_VERSION" install PG_CONFIG="$PG_CONFIG"; } \
        > "$STATE/logs/pgvector-build.log" 2>&1 || die "building pgvector failed (see $STATE/logs/pgvector-build.log)"
}

# The bench cluster holds the vector benchmark's tables (about 3 GB) in shared buffers, as a
# dedicated vector store would; the setting is applied on every run (the cluster may be older).
bench_settings() {
    local conf=$1
    as_pg_user grep -q "^shared_buffers = '6GB'" "$conf" \
        || echo "shared_buffers = '6GB'   # bench: the vector data set stays in memory" \
            | as_pg_user tee -a "$conf" >/dev/null
}

# `bench` runs all and writes BENCHMARKS.md; `bench encryption`, `bench auth`, `bench replicas`, `bench vectors`,
# `bench gateway`, `bench events`, `bench hnsw`, `bench sealed` or `bench load` runs one (and rewrites BENCHMARKS.md with the others' last figures).
cmd_bench() {
    local which=$1
    case "$which" in all|encryption|auth|replicas|vectors|gateway|events|hnsw|sealed|load) ;; *) die "unknown benchmark '$which' (all, encryption, auth, replicas, vectors, gateway, events, hnsw, sealed, load)" ;; esac
    setup_machine
    install_extension
    if [ "$which" = all ] || [ "$which" = gateway ] || [ "$which" = events ] || [ "$which" = load ] || [ "$which" = replicas ]; then
        apt_install wrk
        build_gateway
    fi
    mkdir -p "$STATE/logs" "$REPO/tests/bench/results"
    trap 'pgbouncer_stop "$BENCH_CLUSTER"; cluster_destroy "$BENCH_REPLICA_CLUSTER"; cluster_stop "$BENCH_CLUSTER"' EXIT
    cluster_init "$BENCH_CLUSTER"
    bench_settings "$(cluster_dir "$BENCH_CLUSTER")/data/postgresql.conf"
    cluster_start "$BENCH_CLUSTER" "${SEALSTORE_BENCH_PG_PORT:-25349}"
    cluster_psql "$BENCH_CLUSTER" postgres -c 'DROP DATABASE IF EXISTS sealstore_bench' -c 'CREATE DATABASE sealstore_bench'
    cluster_psql "$BENCH_CLUSTER" sealstore_bench -c 'CREATE EXTENSION sealstore'

    if [ "$which" = all ] || [ "$which" = encryption ]; then
    say "Benchmark: bare crates (cargo bench -p sealstore-core)"
    cargo bench -q -p sealstore-core --bench envelope > "$STATE/logs/bench-bare.jsonl" \
        || die "cargo bench failed"
    say "Benchmark: encryption in the database against pgcrypto"
    "$STATE/venv/bin/python" "$REPO/tests/bench/encryption.py" \
        "$(superuser_url "$BENCH_CLUSTER" sealstore_bench)" "$STATE/logs/bench-bare.jsonl" \
        "$REPO/tests/bench/results/encryption.md" || die "the encryption benchmark failed"
    fi
    if [ "$which" = all ] || [ "$which" = auth ]; then
    say "Benchmark: authenticate() and the tenant isolation policy"
    "$STATE/venv/bin/python" "$REPO/tests/bench/auth.py" \
        "$(superuser_url "$BENCH_CLUSTER" sealstore_bench)" "$REPO/tests/bench/results/auth.md" \
        || die "the authentication benchmark failed"
    fi
    if [ "$which" = all ] || [ "$which" = replicas ]; then
    # Before the vector data is loaded: the standby starts from a base backup of this cluster,
    # and is gone again before anything else is measured.
    say "Benchmark: the gateway with a hot standby and through PgBouncer, and PgBouncer against direct SQL"
    cluster_roles "$BENCH_CLUSTER" sealstore_bench
    local primary_port=$CLUSTER_PORT replica_gateway_url
    cluster_destroy "$BENCH_REPLICA_CLUSTER"
    replica_init "$BENCH_CLUSTER" "$BENCH_REPLICA_CLUSTER"
    cluster_start "$BENCH_REPLICA_CLUSTER" "${SEALSTORE_BENCH_REPLICA_PG_PORT:-25350}"
    replica_wait_ready "$BENCH_REPLICA_CLUSTER"
    replica_gateway_url=$(gateway_local_url "$BENCH_REPLICA_CLUSTER" sealstore_bench)
    CLUSTER_PORT=$primary_port
    pgbouncer_start "$BENCH_CLUSTER" sealstore_bench "${SEALSTORE_BENCH_PGBOUNCER_PORT:-25351}" 4
    "$STATE/venv/bin/python" "$REPO/tests/bench/replicas.py" \
        "$(superuser_url "$BENCH_CLUSTER" sealstore_bench)" "$(gateway_local_url "$BENCH_CLUSTER" sealstore_bench)" \
        "$replica_gateway_url" "$(app_url "$BENCH_CLUSTER" sealstore_bench)" \
        "postgresql://sealstore_app_user:$(app_password "$BENCH_CLUSTER")@127.0.0.1:$PGBOUNCER_PORT/sealstore_bench" 4 \
        "$GATEWAY_BIN" "$PG_BINDIR/pgbench" "$(command -v wrk)" "$REPO/tests/bench/results/replicas.md" \
        "postgresql://sealstore_gateway:$(gateway_password "$BENCH_CLUSTER")@127.0.0.1:$PGBOUNCER_PORT/sealstore_bench_gateway" \
        || die "the replica benchmark failed"
    pgbouncer_stop "$BENCH_CLUSTER"
    cluster_destroy "$BENCH_REPLICA_CLUSTER"
    fi
    if [ "$which" = all ] || [ "$which" = vectors ]; then
    say "Benchmark: vector search, 100,000 x 768 (loads about 3 GB; several minutes)"
    "$STATE/venv/bin/python" "$REPO/tests/bench/vectors.py" \
        "$(superuser_url "$BENCH_CLUSTER" sealstore_bench)" "$REPO/tests/bench/results/vectors.md" \
        || die "the vector benchmark failed"
    fi
    if [ "$which" = all ] || [ "$which" = load ]; then
    cluster_stop "$BENCH_CLUSTER"   # the load run makes its own clusters; leave it the cores
    . "$REPO/.ci/lib/load.sh"
    run_load "${SEALSTORE_BENCH_LOAD_SECONDS:-120}"
    cluster_start "$BENCH_CLUSTER" "${SEALSTORE_BENCH_PG_PORT:-25349}"
    fi
    if [ "$which" = all ] || [ "$which" = gateway ]; then
    say "Benchmark: the gateway against direct SQL (pgbench and wrk, about 4 minutes)"
    cluster_roles "$BENCH_CLUSTER" sealstore_bench
    "$STATE/venv/bin/python" "$REPO/tests/bench/gateway.py" \
        "$(superuser_url "$BENCH_CLUSTER" sealstore_bench)" "$(gateway_url "$BENCH_CLUSTER" sealstore_bench)" \
        "$(gateway_local_url "$BENCH_CLUSTER" sealstore_bench)" "$GATEWAY_BIN" "$PG_BINDIR/pgbench" "$(command -v wrk)" "$REPO/tests/bench/results/gateway.md" \
        || die "the gateway benchmark failed"
    fi
    if [ "$which" = all ] || [ "$which" = hnsw ]; then
    say "Benchmark: the hnsw index against pgvector's (clustered 100,000 x 768 and GloVe 400,000 x 50; about 20 minutes)"
    mkdir -p "$STATE/logs"
    install_pgvector
    python_venv "$REPO/tests/bench/requirements.txt" "$STATE/bench-venv"
    cluster_psql "$BENCH_CLUSTER" postgres -c 'DROP DATABASE IF EXISTS sealstore_bench_pgvector' \
        -c 'CREATE DATABASE sealstore_bench_pgvector'
    cluster_psql "$BENCH_CLUSTER" sealstore_bench_pgvector -c 'CREATE EXTENSION vector'
    "$STATE/bench-venv/bin/python" "$REPO/tests/bench/hnsw.py" \
        "$(superuser_url "$BENCH_CLUSTER" sealstore_bench)" "$(superuser_url "$BENCH_CLUSTER" sealstore_bench_pgvector)" \
        "$REPO/tests/bench/results/hnsw.md" \
        || die "the hnsw benchmark failed"
    fi
    if [ "$which" = all ] || [ "$which" = sealed ]; then
    say "Benchmark: the sealed graph against the plaintext graph through search() (20,000 x 768; about 10 minutes)"
    python_venv "$REPO/tests/bench/requirements.txt" "$STATE/bench-venv"
    "$STATE/bench-venv/bin/python" "$REPO/tests/bench/sealed_graph.py" \
        "$(superuser_url "$BENCH_CLUSTER" sealstore_bench)" "$REPO/tests/bench/results/sealed_graph.md" \
        || die "the sealed graph benchmark failed"
    fi
    if [ "$which" = all ] || [ "$which" = events ]; then
    say "Benchmark: change events, commit to delivery and writes with 1,000 subscribers (about 3 minutes)"
    cluster_roles "$BENCH_CLUSTER" sealstore_bench
    "$STATE/venv/bin/python" "$REPO/tests/bench/events.py" \
        "$(superuser_url "$BENCH_CLUSTER" sealstore_bench)" "$(gateway_local_url "$BENCH_CLUSTER" sealstore_bench)" \
        "$GATEWAY_BIN" "$PG_BINDIR/pgbench" "$REPO/tests/bench/results/events.md" \
        || die "the events benchmark failed"
    fi
    say "Writing BENCHMARKS.md"
    "$STATE/venv/bin/python" "$REPO/tests/bench/report.py" "$REPO/tests/bench/results" \
        "$REPO/BENCHMARKS.md" "$("$PG_BINDIR/postgres" --version)" || die "writing BENCHMARKS.md failed"
    say "Results in BENCHMARKS.md and tests/bench/results/ (encryption, auth, replicas, vectors, gateway, events, hnsw, sealed_graph, load)"
}
