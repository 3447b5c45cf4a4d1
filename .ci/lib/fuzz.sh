# Fuzzing (cargo-fuzz, libFuzzer with AddressSanitizer) of the parsers that take untrusted
# input: the ciphertext envelope, the vector text form, and tokens. The properties each target
# checks are in pg_ext/core/src/fuzzing.rs. An input that breaks one is written straight into
# tests/fuzz/regressions/<target>/, which `cargo test -p sealstore-core` replays: commit it
# with the fix. The growing corpus stays in .sealstore/fuzz/ (not committed).
# shellcheck shell=bash

FUZZ_TARGETS=(envelope vector_text token)

# The machine's toolchain is stable; cargo-fuzz needs the sanitizer flags of nightly, which
# RUSTC_BOOTSTRAP unlocks for this build only.
fuzz_cargo() {
    RUSTC_BOOTSTRAP=1 cargo fuzz "$1" --fuzz-dir "$REPO/tests/fuzz" --target-dir "$REPO/target/fuzz" -O "${@:2}"
}

# run_fuzzers SECONDS: each target for SECONDS; prints one line per target and a summary line
# "fuzz result: N passed; M failed"; non-zero when any target found a failing input.
run_fuzzers() {
    local seconds=$1 target corpus log passed=0 failed=0
    if ! fuzz_cargo build; then
        echo "fuzz: building the targets failed"
        echo "fuzz result: 0 passed; ${#FUZZ_TARGETS[@]} failed"
        return 1
    fi
    for target in "${FUZZ_TARGETS[@]}"; do
        corpus="$STATE/fuzz/corpus/$target"
        log="$STATE/fuzz/$target.log"
        mkdir -p "$corpus"
        # Seeds: the kept regression inputs (read, never written: new units go to $corpus).
        if fuzz_cargo run "$target" "$corpus" "$REPO/tests/fuzz/regressions/$target" -- \
            -max_total_time="$seconds" -print_final_stats=1 \
            -artifact_prefix="$REPO/tests/fuzz/regressions/$target/" >"$log" 2>&1; then
            passed=$((passed + 1))
            echo "fuzz: $target ok, $(grep -aoE '^Done [0-9]+ runs' "$log" | cut -d' ' -f2) runs in ${seconds} s, 0 crashes"
        else
            failed=$((failed + 1))
            echo "fuzz: $target FAILED; the input is in tests/fuzz/regressions/$target/ (log: $log)"
            grep -aE 'panicked|ERROR: |SUMMARY' "$log" | head -n 5
        fi
    done
    echo "fuzz result: $passed passed; $failed failed"
    [ "$failed" = 0 ]
}

cmd_fuzz() {
    local seconds=${1:-300}
    [[ $seconds =~ ^[0-9]+$ ]] || die "usage: .ci/sealstore fuzz [seconds per target]"
    setup_machine
    ensure_cargo_fuzz
    mkdir -p "$STATE/fuzz"
    say "Fuzzing ${#FUZZ_TARGETS[@]} targets, $seconds s each"
    run_fuzzers "$seconds"
}
