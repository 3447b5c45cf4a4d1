# `.ci/sealstore pg17`: the extension built for PostgreSQL 17 and tested against a real
# PostgreSQL 17 server. Debian 12 ships only PostgreSQL 15, so the server runs in a Debian 13
# (trixie) root made with debootstrap under .sealstore/pg17; the extension is built on this
# machine against trixie's server headers and installed into that root. It then runs the SQL
# regression tests and the end-to-end tests that need only a running server (those that make,
# stop or dump clusters call PostgreSQL's programs on this machine, which are 15's).
# Needs root (chroot, mount). Not part of `test`: it downloads a Debian root (about 100 MB).
# shellcheck shell=bash

PG17_PORT=${SEALSTORE_PG17_PORT:-54369}

# The end-to-end tests left out, and why: they run initdb, pg_ctl or pg_dump of this machine.
PG17_E2E_SKIPPED=(
    --ignore "$REPO/tests/e2e/test_dump_restore.py"
    --ignore "$REPO/tests/e2e/test_master_key.py"
    --ignore "$REPO/tests/e2e/test_master_rotation.py"
    --ignore "$REPO/tests/e2e/test_load.py"
    --ignore "$REPO/tests/e2e/test_schemathesis.py"
    --deselect "$REPO/tests/e2e/test_api.py::test_database_stopped_and_started_during_requests"
    --deselect "$REPO/tests/e2e/test_api.py::test_sigterm_lets_in_flight_api_requests_complete"
)

pg17_root()    { echo "$STATE/pg17/root"; }
pg17_cluster() { echo "$STATE/pg17/cluster"; }
in_pg17_root() { chroot "$(pg17_root)" "$@"; }
as_pg17_user() { in_pg17_root runuser -u postgres -- "$@"; }

# The Debian 13 root with PostgreSQL 17, and trixie's server headers and pg_config unpacked
# beside it (headers only: the server-dev package's compiler dependencies are not needed).
pg17_prepare_root() {
    local root dev
    root=$(pg17_root)
    dev="$STATE/pg17/dev"
    if [ ! -x "$root/usr/lib/postgresql/17/bin/postgres" ]; then
        apt_install debootstrap
        say "Making a Debian 13 root with PostgreSQL 17 in $root (once; a few minutes)"
        pg17_stop
        rm -rf --one-file-system "$root"
        mkdir -p "$root"
        debootstrap --variant=minbase --include=postgresql-17 trixie "$root" \
            http://deb.debian.org/debian >"$STATE/pg17/debootstrap.log" 2>&1 \
            || { tail -n 20 "$STATE/pg17/debootstrap.log" >&2; die "debootstrap of trixie failed"; }
        rm -rf "$dev"
    fi
    if [ ! -x "$dev/usr/bin/pg_config" ]; then
        mkdir -p "$dev/debs"
        (cd "$dev/debs" && in_pg17_root sh -c 'apt-get update -qq && cd /tmp && apt-get download -qq postgresql-server-dev-17 libpq-dev' \
            && mv "$root"/tmp/*.deb .) || die "downloading trixie's PostgreSQL 17 headers failed"
        local deb
        for deb in "$dev"/debs/*.deb; do dpkg-deb -x "$deb" "$dev"; done
    fi
    # pg_config answers for the headers unpacked here and for the root's library and share
    # directories, so that `cargo pgrx install` puts the extension into the root.
    sed -e "s#= /usr/include#= $dev/usr/include#" \
        -e "s#^\(PKGLIBDIR\|SHAREDIR\|BINDIR\) = /usr#\1 = $root/usr#" \
        "$dev/usr/bin/pg_config" > "$STATE/pg17/pg_config"
    chmod +x "$STATE/pg17/pg_config"
    [ "$("$STATE/pg17/pg_config" --version | sed -E 's/^PostgreSQL ([0-9]+).*/\1/')" = 17 ] \
        || die "trixie's pg_config does not report PostgreSQL 17"
    mkdir -p "$STATE/pg17/pgrx"
    printf '[configs]\npg17 = "%s"\n' "$STATE/pg17/pg_config" > "$STATE/pg17/pgrx/config.toml"
}

pg17_mount() {
    local root
    root=$(pg17_root)
    # debootstrap made the device nodes PostgreSQL needs (null, urandom). Nothing of this
    # machine's /dev is mounted in, so that removing the root can never reach it; the shared
    # memory segments get a tmpfs of their own.
    mountpoint -q "$root/proc" || mount -t proc proc "$root/proc"
    mountpoint -q "$root/dev/shm" || mount -t tmpfs -o mode=1777,size=2g tmpfs "$root/dev/shm"
    # The cluster directory has the same path inside the root as outside, so that the master
    # key file, the socket and the server log are where the tests look for them.
    mkdir -p "$(pg17_cluster)" "$root$(pg17_cluster)"
    mountpoint -q "$root$(pg17_cluster)" || mount --bind "$(pg17_cluster)" "$root$(pg17_cluster)"
}

pg17_stop() {
    local root c
    root=$(pg17_root)
    c=$(pg17_cluster)
    if [ -f "$c/data/postmaster.pid" ]; then
        as_pg17_user /usr/lib/postgresql/17/bin/pg_ctl -D "$c/data" -m fast -w stop >/dev/null 2>&1 || true
    fi
    local m
    for m in "$root$c" "$root/dev/shm" "$root/proc"; do
        mountpoint -q "$m" && umount "$m"
    done
    return 0
}

pg17_url() { echo "postgresql://$1:$(cat "$(pg17_cluster)/$2.password")@127.0.0.1:$PG17_PORT/$3"; }

cmd_pg17() {
    is_root || die "the PostgreSQL 17 check needs root (debootstrap, chroot and mounts)"
    mkdir -p "$STATE/pg17" "$STATE/logs"
    ensure_rust
    detect_postgres           # PostgreSQL 15's pg_regress and psql drive the tests
    ensure_cargo_pgrx
    ensure_venv
    build_gateway
    pg17_prepare_root

    say "Building the extension for PostgreSQL 17 (release) and installing it into the root"
    (cd "$REPO/pg_ext" && PGRX_HOME="$STATE/pg17/pgrx" cargo pgrx install --release \
        --pg-config "$STATE/pg17/pg_config" --no-default-features --features pg17) \
        >"$STATE/logs/pg17-install.log" 2>&1 \
        || { tail -n 30 "$STATE/logs/pg17-install.log" >&2; die "building for PostgreSQL 17 failed"; }

    trap pg17_stop EXIT
    pg17_stop
    local c
    c=$(pg17_cluster)
    rm -rf "$c"
    pg17_mount
    say "Starting PostgreSQL 17 on 127.0.0.1:$PG17_PORT (a fresh cluster and key)"
    in_pg17_root chown postgres "$c"
    chmod 700 "$c"
    local f
    for f in master.key superuser.password gateway.password; do
        random_hex 32 > "$c/$f"
        chmod 600 "$c/$f"
        in_pg17_root chown postgres "$c/$f"
    done
    as_pg17_user /usr/lib/postgresql/17/bin/initdb -D "$c/data" -U postgres \
        --pwfile="$c/superuser.password" --auth=scram-sha-256 -E UTF8 --locale=C.UTF-8 \
        --no-instructions >"$c/initdb.log" 2>&1 || { cat "$c/initdb.log" >&2; die "initdb (17) failed"; }
    cat >>"$c/data/postgresql.conf" <<CONF
listen_addresses = '127.0.0.1'
port = $PG17_PORT
unix_socket_directories = '$c'
shared_preload_libraries = 'sealstore'
sealstore.master_key_file = '$c/master.key'
log_parameter_max_length = 0
log_parameter_max_length_on_error = 0
CONF
    as_pg17_user /usr/lib/postgresql/17/bin/pg_ctl -D "$c/data" -l "$c/postgres.log" -w start >/dev/null \
        || { tail -n 20 "$c/postgres.log" >&2; die "PostgreSQL 17 did not start"; }
    local admin
    admin=$(pg17_url postgres superuser postgres)
    psql -X -q "$admin" -c 'CREATE DATABASE sealstore_e2e' -c 'CREATE DATABASE sealstore_regress'
    psql -X -q "$(pg17_url postgres superuser sealstore_e2e)" -c 'CREATE EXTENSION sealstore' \
        -v db=sealstore_e2e -v gateway_password="$(cat "$c/gateway.password")" -f "$REPO/sql/roles.sql" >/dev/null
    psql -X -qtA "$admin" -c 'SHOW server_version'

    say "SQL regression tests on PostgreSQL 17"
    "$STATE/venv/bin/python" "$REPO/tests/e2e/keys.py" fingerprint "$c/master.key" \
        > "$c/data/sealstore_expected_fingerprint"
    local out="$STATE/pg17/regress" rc=0 tests
    rm -rf "$out"; mkdir -p "$out"
    tests=$(cd "$REPO/tests/regress/sql" && ls -- *.sql | sed 's/\.sql$//' | sort)
    # shellcheck disable=SC2086
    PGPASSWORD=$(cat "$c/superuser.password") \
        "$("$PG_CONFIG" --pkglibdir)/pgxs/src/test/regress/pg_regress" \
        --use-existing --host=127.0.0.1 --port="$PG17_PORT" --user=postgres \
        --bindir="$PG_BINDIR" --inputdir="$REPO/tests/regress" --outputdir="$out" \
        --dbname=sealstore_regress $tests || rc=1
    [ -f "$out/regression.diffs" ] && [ "$rc" != 0 ] && cat "$out/regression.diffs"

    say "End-to-end tests on PostgreSQL 17 (all but those that run this machine's PostgreSQL programs)"
    SEALSTORE_TEST_PG_URL=$(pg17_url postgres superuser sealstore_e2e) \
    SEALSTORE_TEST_APP_PG_URL=$(pg17_url sealstore_gateway gateway sealstore_e2e) \
    SEALSTORE_TEST_APP_PG_LOCAL_URL="postgresql://sealstore_gateway:$(cat "$c/gateway.password")@/sealstore_e2e?host=$c&port=$PG17_PORT" \
    SEALSTORE_TEST_MASTER_KEY_FILE="$c/master.key" \
    SEALSTORE_TEST_PG_LOG="$c/postgres.log" \
    SEALSTORE_GATEWAY_BIN=$GATEWAY_BIN \
    SEALSTORE_PG_BINDIR=$PG_BINDIR \
    SEALSTORE_CLUSTER_ROOT="$STATE/pg17" \
    SEALSTORE_PG_OS_USER=postgres \
        "$STATE/venv/bin/python" -m pytest -p no:cacheprovider -q -ra "$REPO/tests/e2e" \
        "${PG17_E2E_SKIPPED[@]}" || rc=1
    [ "$rc" = 0 ] || die "the PostgreSQL 17 check failed (see above)"
    say "PostgreSQL 17: the regression and end-to-end tests passed"
}
