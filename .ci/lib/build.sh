# Building and installing the extension and the gateway.
# shellcheck shell=bash

pg_feature_args() { echo "--no-default-features --features pg$PG_MAJOR"; }

# Hash of everything the installed extension is built from.
ext_source_hash() {
    (cd "$REPO" && find pg_ext sql Cargo.toml Cargo.lock -type f -not -path '*/target/*' -print0 \
        | sort -z | xargs -0 sha256sum; echo "pg$PG_MAJOR") | sha256sum | cut -d' ' -f1
}

installed_so_hash() {
    local so
    so="$("$PG_CONFIG" --pkglibdir)/sealstore.so"
    [ -f "$so" ] && [ -f "$("$PG_CONFIG" --sharedir)/extension/sealstore.control" ] \
        && sha256sum "$so" | cut -d' ' -f1
}

# A running server has the installed library mapped: overwriting the file in place (as
# `cargo pgrx install` and `cargo pgrx test` do) changes the code under its processes, which
# then crash (SIGSEGV in the autovacuum launcher, seen with a cluster running during `test`). Renaming it away first keeps the old inode for them; new
# backends load the new file.
retire_installed_library() {
    local so
    so="$("$PG_CONFIG" --pkglibdir)/sealstore.so"
    if [ -f "$so" ]; then
        as_root mv -f "$so" "$so.replaced" && as_root rm -f "$so.replaced"
    fi
}

# Builds (release) and installs the extension into the server's directories, unless the files
# installed there are exactly what these sources built last time. `cargo pgrx test` installs its
# own test build into the same directories, which the .so hash in the stamp detects.
install_extension() {
    local stamp="$STATE/extension.stamp" want have sudo=()
    want="$(ext_source_hash)"
    have="$(installed_so_hash || true)"
    if [ -n "$have" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$want $have" ]; then
        note "extension: installed build is current"
        return 0
    fi
    say "Building and installing the sealstore extension (release, PostgreSQL $PG_MAJOR)"
    is_root || sudo=(--sudo)
    # Build first (pgrx install then finds it done), so the library is missing only briefly.
    # shellcheck disable=SC2046
    (cd "$REPO/pg_ext" && cargo build --quiet --lib --release $(pg_feature_args)) \
        || die "building the extension failed"
    retire_installed_library
    # shellcheck disable=SC2046
    (cd "$REPO/pg_ext" && cargo pgrx install --release --pg-config "$PG_CONFIG" "${sudo[@]}" $(pg_feature_args)) \
        || die "cargo pgrx install failed"
    echo "$want $(installed_so_hash)" > "$stamp"
}

GATEWAY_BIN="$CARGO_TARGET_DIR/release/sealstore-gateway"

build_gateway() {
    say "Building the gateway (release)"
    cargo build --release --quiet -p sealstore-gateway || die "building the gateway failed"
}
