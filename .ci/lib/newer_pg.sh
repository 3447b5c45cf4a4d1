# `.ci/sealstore pg 17` (or 18): the extension built for a newer PostgreSQL and tested against
# a real server of that version. Debian 12 ships only PostgreSQL 15, so the server runs in a
# root of the Debian release that ships it (17: Debian 13, trixie; 18: testing, forky), made
# with debootstrap under .sealstore/pgN; the extension is built on this machine against that
# release's server headers and installed into the root. It then runs the SQL regression tests
# and the end-to-end tests that need only a running server (those that make, stop or dump
# clusters call PostgreSQL's programs on this machine, which are 15's).
# Needs root (chroot, mount). Not part of `test`: it downloads a Debian root (about 100 MB).
# shellcheck shell=bash

# Set by cmd_newer_pg: the major version, the Debian release that ships it, the server's port.
NPG=
NPG_SUITE=
NPG_PORT=

# The end-to-end tests left out, and why: they run initdb, pg_ctl or pg_dump of this machine.
NPG_E2E_SKIPPED=(
    --ignore "$REPO/tests/e2e/test_dump_restore.py"
    --ignore "$REPO/tests/e2e/test_master_key.py"
    --ignore "$REPO/tests/e2e/test_master_rotation.py"
    --ignore "$REPO/tests/e2e/test_load.py"
    --ignore "$REPO/tests/e2e/test_schemathesis.py"
    --ignore "$REPO/tests/e2e/test_promotion.py"
    --deselect "$REPO/tests/e2e/test_api_database.py::test_database_stopped_and_started_during_requests"
    --deselect "$REPO/tests/e2e/test_api_database.py::test_sigterm_lets_in_flight_api_requests_complete"
)

npg_dir()      { echo "$STATE/pg$NPG"; }
npg_root()     { echo "$(npg_dir)/root"; }
npg_cluster()  { echo "$(npg_dir)/cluster"; }
npg_bin()      { echo "/usr/lib/postgresql/$NPG/bin/$1"; }
in_npg_root()  { chroot "$(npg_root)" "$@"; }
as_npg_user()  { in_npg_root runuser -u postgres -- "$@"; }

# The Debian root with PostgreSQL $NPG, and that release's server headers and pg_config unpacked
# beside it (headers only: the server-dev package's compiler dependencies are not needed).
npg_prepare_root() {
    local root dev
    root=$(npg_root)
    dev="$(npg_dir)/dev"
    if [ ! -x "$root/usr/lib/postgresql/$NPG/bin/postgres" ]; then
        apt_install debootstrap
        say "Making a Debian $NPG_SUITE root with PostgreSQL $NPG in $root (once; a few minutes)"
        npg_stop
        case "$root" in "$STATE"/pg[0-9]*/root) ;; *) die "refusing to replace $root" ;; esac
        rm -rf --one-file-system "$root"
        mkdir -p "$root"
        # Bookworm's debootstrap predates forky; sid's script makes any later release.
        debootstrap --variant=minbase --include="postgresql-$NPG" "$NPG_SUITE" "$root" \
            http://deb.debian.org/debian /usr/share/debootstrap/scripts/sid >"$(npg_dir)/debootstrap.log" 2>&1 \
            || { tail -n 20 "$(npg_dir)/debootstrap.log" >&2; die "debootstrap of $NPG_SUITE failed"; }
        rm -rf "$dev"
    fi
    if [ ! -x "$dev/usr/bin/pg_config" ]; then
        mkdir -p "$dev/debs"
        # (A testing release's Release file expires within a week; the registry's copy may be
        # older than that, and the packages are checked against it all the same.)
        (cd "$dev/debs" && in_npg_root sh -c "apt-get update -qq -o Acquire::Check-Valid-Until=false && cd /tmp && apt-get download -qq postgresql-server-dev-$NPG libpq-dev" \
            && mv "$root"/tmp/*.deb .) || die "downloading the PostgreSQL $NPG headers of $NPG_SUITE failed"
        local deb
        for deb in "$dev"/debs/*.deb; do dpkg-deb -x "$deb" "$dev"; done
    fi
    # pg_config answers for the headers unpacked here and for the root's library and share
    # directories, so that `cargo pgrx install` puts the extension into the root.
    sed -e "s#= /usr/include#= $dev/usr/include#" \
        -e "s#^\(PKGLIBDIR\|SHAREDIR\|BINDIR\) = /usr#\1 = $root/usr#" \
        "$dev/usr/bin/pg_config" > "$(npg_dir)/pg_config"
    chmod +x "$(npg_dir)/pg_config"
    [ "$("$(npg_dir)/pg_config" --version | sed -E 's/^PostgreSQL ([0-9]+).*/\1/')" = "$NPG" ] \
        || die "the pg_config of $NPG_SUITE does not report PostgreSQL $NPG"
    mkdir -p "$(npg_dir)/pgrx"
    printf '[configs]\npg%s = "%s"\n' "$NPG" "$(npg_dir)/pg_config" > "$(npg_dir)/pgrx/config.toml"
}

npg_mount() {
    local root
    root=$(npg_root)
    # debootstrap made the device nodes PostgreSQL needs (null, urandom). Nothing of this
    # machine's /dev is mounted in, so that removing the root can never reach it; the shared
    # memory segments get a tmpfs of their own.
    mountpoint -q "$root/proc" || mount -t proc proc "$root/proc"
    mountpoint -q "$root/dev/shm" || mount -t tmpfs -o mode=1777,size=2g tmpfs "$root/dev/shm"
    # The cluster directory has the same path inside the root as outside, so that the master
    # key file, the socket and the server log are where the tests look for them.
    mkdir -p "$(npg_cluster)" "$root$(npg_cluster)"
    mountpoint -q "$root$(npg_cluster)" || mount --bind "$(npg_cluster)" "$root$(npg_cluster)"
}

npg_stop() {
    local root c
    root=$(npg_root)
    c=$(npg_cluster)
    if [ -f "$c/data/postmaster.pid" ]; then
        as_npg_user "$(npg_bin pg_ctl)" -D "$c/data" -m fast -w stop >/dev/null 2>&1 || true
    fi
    local m
    for m in "$root$c" "$root/dev/shm" "$root/proc"; do
        mountpoint -q "$m" && umount "$m"
    done
    return 0
}

npg_url() { echo "postgresql://$1:$(cat "$(npg_cluster)/$2.password")@127.0.0.1:$NPG_PORT/$3"; }

cmd_newer_pg() {
    NPG=$1
    case "$NPG" in
        17) NPG_SUITE=trixie ;;
        18) NPG_SUITE=forky ;;
        *) die "pg: 17 or 18 (15 is what \`test\` uses)" ;;
    esac
    NPG_PORT=${SEALSTORE_NEWER_PG_PORT:-$((25200 + NPG * 10 - 1))}
    is_root || die "the PostgreSQL $NPG check needs root (debootstrap, chroot and mounts)"
    mkdir -p "$(npg_dir)" "$STATE/logs"
    ensure_rust
    detect_postgres           # PostgreSQL 15's pg_regress and psql drive the tests
    ensure_cargo_pgrx
    ensure_venv
    build_gateway
    npg_prepare_root

    say "Building the extension for PostgreSQL $NPG (release) and installing it into the root"
    (cd "$REPO/pg_ext" && PGRX_HOME="$(npg_dir)/pgrx" cargo pgrx install --release \
        --pg-config "$(npg_dir)/pg_config" --no-default-features --features "pg$NPG") \
        >"$STATE/logs/pg$NPG-install.log" 2>&1 \
        || { tail -n 30 "$STATE/logs/pg$NPG-install.log" >&2; die "building for PostgreSQL $NPG failed"; }

    trap npg_stop EXIT
    npg_stop
    local c
    c=$(npg_cluster)
    rm -rf "$c"
    npg_mount
    say "Starting PostgreSQL $NPG on 127.0.0.1:$NPG_PORT (a fresh cluster and key)"
    in_npg_root chown postgres "$c"
    chmod 700 "$c"
    local f
    for f in master.key superuser.password gateway.password app.password; do
        random_hex 32 > "$c/$f"
        chmod 600 "$c/$f"
        in_npg_root chown postgres "$c/$f"
    done
    as_npg_user "$(npg_bin initdb)" -D "$c/data" -U postgres \
        --pwfile="$c/superuser.password" --auth=scram-sha-256 -E UTF8 --locale=C.UTF-8 \
        --no-instructions >"$c/initdb.log" 2>&1 || { cat "$c/initdb.log" >&2; die "initdb ($NPG) failed"; }
    {
        sealstore_server_conf "$c"
        echo "port = $NPG_PORT"
        echo "unix_socket_directories = '$c'"
    } >>"$c/data/postgresql.conf"
    # As cluster_start: RUST_BACKTRACE in the server's environment would make pgrx attach Rust
    # backtraces to the errors clients receive.
    as_npg_user env -u RUST_BACKTRACE -u RUST_LIB_BACKTRACE "$(npg_bin pg_ctl)" -D "$c/data" \
        -l "$c/postgres.log" -w start >/dev/null \
        || { tail -n 20 "$c/postgres.log" >&2; die "PostgreSQL $NPG did not start"; }
    local admin
    admin=$(npg_url postgres superuser postgres)
    psql -X -q "$admin" -c 'CREATE DATABASE sealstore_e2e' -c 'CREATE DATABASE sealstore_regress'
    psql -X -q "$(npg_url postgres superuser sealstore_e2e)" -c 'CREATE EXTENSION sealstore' \
        -v db=sealstore_e2e -v gateway_password="$(cat "$c/gateway.password")" \
        -v app_password="$(cat "$c/app.password")" -f "$REPO/sql/roles.sql" >/dev/null
    psql -X -qtA "$admin" -c 'SHOW server_version'

    say "SQL regression tests on PostgreSQL $NPG"
    "$STATE/venv/bin/python" "$REPO/tests/e2e/keys.py" fingerprint "$c/master.key" \
        > "$c/data/sealstore_expected_fingerprint"
    local rc=0
    run_pg_regress "$NPG_PORT" "$(cat "$c/superuser.password")" "$(npg_dir)/regress" || rc=1

    say "End-to-end tests on PostgreSQL $NPG (all but those that run this machine's PostgreSQL programs)"
    run_e2e "$(npg_url postgres superuser sealstore_e2e)" \
        "$(npg_url sealstore_app_user app sealstore_e2e)" \
        "$(npg_url sealstore_gateway gateway sealstore_e2e)" \
        "postgresql://sealstore_gateway:$(cat "$c/gateway.password")@/sealstore_e2e?host=$c&port=$NPG_PORT" \
        "$c" "$(npg_dir)" -q "${NPG_E2E_SKIPPED[@]}" || rc=1
    [ "$rc" = 0 ] || die "the PostgreSQL $NPG check failed (see above)"
    say "PostgreSQL $NPG: the regression and end-to-end tests passed"
}
