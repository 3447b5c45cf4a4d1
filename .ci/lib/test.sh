# `.ci/sealstore test`: the same set-up as `run`, then every test tier, each reported; the
# runners' summary lines and a total at the end; non-zero exit if anything failed.
# shellcheck shell=bash

TEST_CLUSTER="test"
TEST_REPLICA_CLUSTER="test-replica"
TIER_NAMES=()
TIER_STATUS=()
TIER_SUMMARY=()
TOTAL_PASSED=0
TOTAL_FAILED=0

# run_tier NAME SUMMARY_FUNCTION COMMAND...: runs COMMAND with its output shown and kept in
# .sealstore/logs/NAME.log, then asks SUMMARY_FUNCTION for "passed failed summary-line".
run_tier() {
    local name=$1 summarize=$2 log rc=0 passed failed
    shift 2
    log="$STATE/logs/$name.log"
    say "Tier: $name"
    "$@" > >(tee "$log") 2>&1 || rc=$?
    wait  # let tee finish writing
    read -r passed failed < <("$summarize" "$log" counts) || { passed=0; failed=0; }
    [ "$rc" != 0 ] && [ "$failed" = 0 ] && failed=1   # a runner that died before reporting
    TOTAL_PASSED=$((TOTAL_PASSED + passed))
    TOTAL_FAILED=$((TOTAL_FAILED + failed))
    TIER_NAMES+=("$name")
    TIER_STATUS+=("$([ "$rc" = 0 ] && echo ok || echo "FAILED (exit $rc)")")
    TIER_SUMMARY+=("$("$summarize" "$log" lines)")
}

# Summaries of cargo's "test result: ok. N passed; M failed; ..." lines.
cargo_summary() {
    local log=$1 mode=$2
    if [ "$mode" = counts ]; then
        { grep -aE '^test result:' "$log" || true; } \
            | sed -E 's/.* ([0-9]+) passed; ([0-9]+) failed.*/\1 \2/' \
            | awk '{p+=$1; f+=$2} END {print p+0, f+0}'
    else
        grep -aE '^test result:' "$log" | sed 's/^/    /' || echo "    cargo printed no summary"
    fi
}

# pg_regress ends with "# All N tests passed." or "# M of N tests failed." (older: no "#").
regress_summary() {
    local log=$1 mode=$2 line
    line=$(grep -aE 'tests? (passed|failed)' "$log" | tail -n 1 || true)
    if [ "$mode" = counts ]; then
        if [[ $line =~ All\ ([0-9]+)\ tests\ passed ]]; then echo "${BASH_REMATCH[1]} 0"
        elif [[ $line =~ ([0-9]+)\ of\ ([0-9]+)\ tests\ failed ]]; then
            echo "$((BASH_REMATCH[2] - BASH_REMATCH[1])) ${BASH_REMATCH[1]}"
        else echo "0 0"; fi
    else
        echo "    ${line:-pg_regress printed no summary}"
    fi
}

# run_fuzzers ends with "fuzz result: N passed; M failed".
fuzz_summary() {
    local log=$1 mode=$2
    if [ "$mode" = counts ]; then
        { grep -aE '^fuzz result:' "$log" || echo 'fuzz result: 0 passed; 0 failed'; } | tail -n 1 \
            | sed -E 's/.* ([0-9]+) passed; ([0-9]+) failed.*/\1 \2/'
    else
        grep -aE '^fuzz: ' "$log" | sed 's/^/    /' || echo "    the fuzzers printed no summary"
    fi
}

# pytest's last line: "===== 12 passed, 1 failed in 3.2s =====".
pytest_summary() {
    local log=$1 mode=$2 line p f e
    line=$(grep -aE '^=+ .*(passed|failed|error).* in [0-9.]+s' "$log" | tail -n 1 || true)
    if [ "$mode" = counts ]; then
        p=$(grep -oE '[0-9]+ passed' <<<"$line" | cut -d' ' -f1 || true)
        f=$(grep -oE '[0-9]+ failed' <<<"$line" | cut -d' ' -f1 || true)
        e=$(grep -oE '[0-9]+ errors?' <<<"$line" | cut -d' ' -f1 || true)
        echo "${p:-0} $(( ${f:-0} + ${e:-0} ))"
    else
        echo "    ${line:-pytest printed no summary}"
    fi
}

# The code's own checks, each a test: formatting, clippy with warnings as errors (the pure
# crate, the gateway and the extension with its tests), pyflakes over the Python of the tests
# and scripts, and shellcheck over the scripts (each
# file alone: variables they share are set in one file and read in another, SC2034/SC2153).
lint_checks() {
    apt_install shellcheck
    local passed=0 failed=0 check
    lint_check() {
        check=$1; shift
        if "$@"; then passed=$((passed + 1)); echo "lint: $check ok"
        else failed=$((failed + 1)); echo "lint: $check FAILED"; fi
    }
    lint_check "cargo fmt" cargo fmt --all -- --check
    lint_check "clippy (core, gateway)" \
        cargo clippy -q -p sealstore-core -p sealstore-gateway --all-targets -- -D warnings
    lint_check "clippy (extension)" \
        bash -c "cd '$REPO/pg_ext' && cargo clippy -q --lib --tests $(pg_feature_args) --features pg_test -- -D warnings"
    lint_check "pyflakes" "$STATE/venv/bin/python" -m pyflakes "$REPO/tests" "$REPO/.ci/lib"
    lint_check "shellcheck" \
        shellcheck -x -P SCRIPTDIR -e SC2034,SC2153,SC1091 "$REPO/.ci/run" "$REPO/.ci/sealstore" "$REPO"/.ci/lib/*.sh
    echo "lint result: $passed passed; $failed failed"
    [ "$failed" = 0 ]
}

# run_lint's "lint result: N passed; M failed".
lint_summary() {
    local log=$1 mode=$2
    if [ "$mode" = counts ]; then
        { grep -aE '^lint result:' "$log" || echo 'lint result: 0 passed; 0 failed'; } | tail -n 1 \
            | sed -E 's/.* ([0-9]+) passed; ([0-9]+) failed.*/\1 \2/'
    else
        grep -aE '^lint: ' "$log" | sed 's/^/    /' || echo "    the checks printed no summary"
    fi
}

unit_tests() {
    # Run without the dev settings in the environment: the gateway's config tests read it.
    env -u SEALSTORE_GATEWAY_PG_URL -u SEALSTORE_GATEWAY_PG_URL_FILE -u SEALSTORE_GATEWAY_LISTEN \
        cargo test -p sealstore-core -p sealstore-gateway
}

pgrx_tests() {
    local pgdata
    pgdata="$(cluster_root)/pgrx-test"
    mkdir -p "$pgdata"
    is_root && chown "$(pg_os_user)" "$pgdata"
    # RUNAS makes pgrx install with sudo and run the server as that user (root is refused by
    # initdb; a normal user cannot write the server's directories).
    # pgrx test installs its own build over the library in place: move the installed one away
    # first, so a cluster running meanwhile (a dev `run`) keeps its mapped code.
    retire_installed_library
    (cd "$REPO/pg_ext" && CARGO_PGRX_TEST_RUNAS=$(pg_os_user) CARGO_PGRX_TEST_PGDATA=$pgdata \
        cargo pgrx test "pg$PG_MAJOR")
}

regress_tests() {
    local base
    base=$(cluster_dir "$TEST_CLUSTER")
    # The expected fingerprint, computed independently of the extension, for the tests to read.
    "$STATE/venv/bin/python" "$REPO/tests/e2e/keys.py" fingerprint "$base/master.key" \
        | as_pg_user tee "$base/data/sealstore_expected_fingerprint" >/dev/null
    cluster_psql "$TEST_CLUSTER" postgres -c 'DROP DATABASE IF EXISTS sealstore_regress' -c 'CREATE DATABASE sealstore_regress'
    run_pg_regress "$CLUSTER_PORT" "$(superuser_password "$TEST_CLUSTER")" "$STATE/regress"
}

# run_pg_regress PORT PASSWORD OUTDIR: the SQL regression tests with this machine's pg_regress,
# against database sealstore_regress of the server on 127.0.0.1:PORT (also a newer one: see
# newer_pg.sh); the differences are shown when a test fails.
run_pg_regress() {
    local port=$1 password=$2 out=$3 tests
    rm -rf "$out"; mkdir -p "$out"
    tests=$(cd "$REPO/tests/regress/sql" && printf '%s\n' *.sql | sed 's/\.sql$//' | sort)
    # shellcheck disable=SC2086
    PGPASSWORD=$password \
        "$("$PG_CONFIG" --pkglibdir)/pgxs/src/test/regress/pg_regress" \
        --use-existing --host=127.0.0.1 --port="$port" --user=postgres \
        --bindir="$PG_BINDIR" --inputdir="$REPO/tests/regress" --outputdir="$out" \
        --dbname=sealstore_regress $tests
    local rc=$?
    [ -f "$out/regression.diffs" ] && [ "$rc" != 0 ] && cat "$out/regression.diffs"
    return $rc
}

e2e_tests() {
    run_e2e "$(superuser_url "$TEST_CLUSTER" sealstore_e2e)" \
        "$(app_url "$TEST_CLUSTER" sealstore_e2e)" \
        "$(gateway_url "$TEST_CLUSTER" sealstore_e2e)" \
        "$(gateway_local_url "$TEST_CLUSTER" sealstore_e2e)" \
        "$(cluster_dir "$TEST_CLUSTER")" "$(cluster_root)" "$@"
}

# The standby tier's server: a hot standby of the test cluster, made by the scripts of
# `replica` (replica.sh). Started outside the tier, as every server the tiers use: a process
# started inside one would hold its output pipe open. Sets REPLICA_URL and REPLICA_APP_URL.
standby_start() {
    local primary_port=$CLUSTER_PORT
    replica_init "$TEST_CLUSTER" "$TEST_REPLICA_CLUSTER"
    cluster_start "$TEST_REPLICA_CLUSTER" "${SEALSTORE_TEST_REPLICA_PG_PORT:-25340}"
    replica_wait_ready "$TEST_REPLICA_CLUSTER"
    REPLICA_URL=$(superuser_url "$TEST_REPLICA_CLUSTER" sealstore_e2e)
    REPLICA_APP_URL=$(app_url "$TEST_REPLICA_CLUSTER" sealstore_e2e)
    REPLICA_GATEWAY_URL=$(gateway_url "$TEST_REPLICA_CLUSTER" sealstore_e2e)
    REPLICA_PORT=$CLUSTER_PORT
    CLUSTER_PORT=$primary_port
}

# The standby tier: reads on the standby while the primary changes keys, and the gateway
# reading from it.
standby_tests() {
    SEALSTORE_TEST_REPLICA_PG_URL=$REPLICA_URL SEALSTORE_TEST_REPLICA_APP_PG_URL=$REPLICA_APP_URL \
    SEALSTORE_TEST_REPLICA_GATEWAY_PG_URL=$REPLICA_GATEWAY_URL SEALSTORE_TEST_REPLICA_PORT=$REPLICA_PORT \
    SEALSTORE_TEST_REPLICA_DIR="$(cluster_dir "$TEST_REPLICA_CLUSTER")" \
        E2E_TARGET="$REPO/tests/e2e/test_standby.py" e2e_tests -s
}

# The pooler tier: the tenant context and isolation through PgBouncer in transaction pooling
# mode, one server connection per user, and the gateway through it (pgbouncer.sh; started
# outside the tier).
pooler_tests() {
    local at="127.0.0.1:$PGBOUNCER_PORT/sealstore_e2e"
    SEALSTORE_TEST_PGBOUNCER_PG_URL="postgresql://postgres:$(superuser_password "$TEST_CLUSTER")@$at" \
    SEALSTORE_TEST_PGBOUNCER_APP_PG_URL="postgresql://sealstore_app_user:$(app_password "$TEST_CLUSTER")@$at" \
    SEALSTORE_TEST_PGBOUNCER_GATEWAY_PG_URL="postgresql://sealstore_gateway:$(gateway_password "$TEST_CLUSTER")@${at}_gateway" \
        E2E_TARGET="$REPO/tests/e2e/test_pgbouncer.py" e2e_tests
}

# run_e2e ADMIN_URL APP_URL GATEWAY_URL GATEWAY_LOCAL_URL CLUSTER_DIR CLUSTER_ROOT
# [PYTEST_ARGS...]: pytest over tests/e2e (but the standby and pooler tiers' tests; E2E_TARGET
# names other tests) against the server those URLs reach (an application's login role, the gateway's, and
# the gateway's through the Unix socket), whose master key and log are in CLUSTER_DIR; the
# tests that make their own clusters make them under CLUSTER_ROOT.
run_e2e() {
    local target=("$REPO/tests/e2e" "--ignore=$REPO/tests/e2e/test_standby.py"
        "--ignore=$REPO/tests/e2e/test_pgbouncer.py")
    [ -n "${E2E_TARGET:-}" ] && target=("$E2E_TARGET")
    SEALSTORE_TEST_PG_URL=$1 \
    SEALSTORE_TEST_APP_PG_URL=$2 \
    SEALSTORE_TEST_GATEWAY_PG_URL=$3 \
    SEALSTORE_TEST_GATEWAY_PG_LOCAL_URL=$4 \
    SEALSTORE_TEST_MASTER_KEY_FILE="$5/master.key" \
    SEALSTORE_TEST_PG_LOG="$5/postgres.log" \
    SEALSTORE_GATEWAY_BIN=$GATEWAY_BIN \
    SEALSTORE_PG_BINDIR=$PG_BINDIR \
    SEALSTORE_CLUSTER_ROOT=$6 \
    SEALSTORE_PG_OS_USER=$(pg_os_user) \
    SEALSTORE_SCHEMATHESIS_BIN="$STATE/st-venv/bin/schemathesis" \
        "$STATE/venv/bin/python" -m pytest -p no:cacheprovider -ra "${target[@]}" "${@:7}"
}

cmd_test() {
    local started=$SECONDS
    setup_machine
    mkdir -p "$STATE/logs"
    trap 'pgbouncer_stop "$TEST_CLUSTER"; cluster_stop "$TEST_REPLICA_CLUSTER"; cluster_stop "$TEST_CLUSTER"' EXIT

    run_tier lint lint_summary lint_checks
    run_tier unit cargo_summary unit_tests
    # A short fuzzing pass in every run (`.ci/sealstore fuzz` runs long ones).
    ensure_cargo_fuzz
    mkdir -p "$STATE/fuzz"
    run_tier fuzz fuzz_summary run_fuzzers "${SEALSTORE_TEST_FUZZ_SECONDS:-20}"
    run_tier pgrx cargo_summary pgrx_tests

    # The SQL and HTTP tiers use the release build, as `run` does (pgrx test installed its own).
    install_extension
    build_gateway
    cluster_destroy "$TEST_CLUSTER"          # a fresh cluster and key every time
    cluster_init "$TEST_CLUSTER"
    cluster_start "$TEST_CLUSTER" "${SEALSTORE_TEST_PG_PORT:-25339}"
    cluster_prepare_db "$TEST_CLUSTER" sealstore_e2e

    run_tier regress regress_summary regress_tests
    run_tier e2e pytest_summary e2e_tests
    standby_start
    run_tier standby pytest_summary standby_tests
    cluster_stop "$TEST_REPLICA_CLUSTER"
    pgbouncer_start "$TEST_CLUSTER" sealstore_e2e "${SEALSTORE_TEST_PGBOUNCER_PORT:-25341}" 1
    run_tier pooler pytest_summary pooler_tests
    pgbouncer_stop "$TEST_CLUSTER"
    cluster_stop "$TEST_CLUSTER"

    say "Summary ($(( SECONDS - started )) s)"
    local i
    for i in "${!TIER_NAMES[@]}"; do
        printf '  %-8s %s\n' "${TIER_NAMES[$i]}" "${TIER_STATUS[$i]}"
        printf '%s\n' "${TIER_SUMMARY[$i]}"
    done
    echo "$TOTAL_PASSED passed, $TOTAL_FAILED failed"
    [ "$TOTAL_FAILED" = 0 ]
}
