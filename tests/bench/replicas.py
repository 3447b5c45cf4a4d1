"""Replica and pooler benchmark, in one run on one machine:

- **The gateway with a hot standby**: get-document and search through the gateway with the
  primary alone, against the same gateway configuration plus one hot standby of the primary in
  SEALSTORE_DB_REPLICA_URLS (reads served there). Both PostgreSQL servers, the gateways and wrk
  share the same cores, so a standby adds no capacity here: the ratio says what the routing
  costs or saves, not what a second machine would add.
- **The gateway through PgBouncer**: get-document and search through a gateway whose database
  URL leads to PgBouncer (SEALSTORE_DB_TRANSACTION_POOLING: unnamed statements, reads in
  read-only transaction blocks, POOL + 1 server connections), against the gateway connected
  directly.
- **PgBouncer against direct**: the gateway's route statements run by pgbench as the
  application's login role, directly (one server connection per client) and through PgBouncer
  in transaction pooling mode (POOL server connections for all clients), both with unnamed
  statements (`-M extended`: Debian's PgBouncer 1.18 keeps no prepared statements in
  transaction mode).

ROUNDS interleaved rounds of SECONDS per cell; in each round the two sides of a cell run back
to back, and a ratio is the median of the per-round ratios.
Usage: replicas.py ADMIN_URL GATEWAY_PG_URL REPLICA_GATEWAY_PG_URL APP_URL BOUNCER_APP_URL POOL
       GATEWAY_BIN PGBENCH WRK RESULTS_MD BOUNCER_GATEWAY_PG_URL
"""
import os
import platform
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import requests

import gateway as gb
from figures import figure, save
from harness import Gateway, wait_until

CLIENTS = [16, 64]
QUIET_LOG = {"SEALSTORE_RATE_PER_IP": "1000000", "SEALSTORE_RATE_PER_KEY": "1000000",
             "SEALSTORE_LOG": "warn,sealstore_gateway=info,sealstore_gateway::server=warn"}


def replica_usable(gw):
    r = requests.get(f"{gw.url}/readyz", timeout=10).json()
    return bool(r.get("replicas")) and r["replicas"][0]["usable"]


def main():
    (admin_url, gateway_pg_url, replica_pg_url, app_url, bouncer_url, pool,
     gateway_bin, pgbench, wrk, out, bouncer_gateway_url) = sys.argv[1:12]
    os.environ["SEALSTORE_GATEWAY_BIN"] = gateway_bin
    key, doc_id, query = gb.setup(admin_url)
    alone = Gateway(gateway_pg_url, QUIET_LOG)
    with_replica = Gateway(gateway_pg_url, {**QUIET_LOG, "SEALSTORE_DB_REPLICA_URLS": replica_pg_url})
    pooled = Gateway(bouncer_gateway_url, {**QUIET_LOG, "SEALSTORE_DB_TRANSACTION_POOLING": "true"})
    if not wait_until(lambda: replica_usable(with_replica), 60):
        raise RuntimeError("the standby never became usable for reads")
    time.sleep(2)  # the setup's writes replayed
    results = {}
    with tempfile.TemporaryDirectory() as work:
        work = Path(work)
        paths = {"get": f"/v1/documents/{doc_id}", "search": "/v1/collections/bench/search"}
        gb.lua_script(work / "get.lua", key, "GET")
        gb.lua_script(work / "search.lua", key, "POST", {"vector": query, "k": 10})
        for op in ("get", "search"):
            (work / f"{op}.sql").write_text(gb.pgbench_script(op))
        variables = {"token": key, "id": doc_id, "vec": "[" + ",".join(map(str, query)) + "]"}
        h = {"Authorization": f"Bearer {key}"}
        for gw in (alone, with_replica, pooled):
            r = requests.get(gw.url + paths["get"], headers=h, timeout=10)
            assert r.status_code == 200 and r.json()["id"] == doc_id, r.text
        for rnd in range(gb.ROUNDS):
            for op in ("get", "search"):
                for c in CLIENTS:
                    a = gb.run_wrk(wrk, alone.url + paths[op], work / f"{op}.lua", c)
                    b = gb.run_wrk(wrk, with_replica.url + paths[op], work / f"{op}.lua", c)
                    results.setdefault(("replica", op, c), []).append((a, b))
                    g = gb.run_wrk(wrk, pooled.url + paths[op], work / f"{op}.lua", c)
                    results.setdefault(("gateway-pgbouncer", op, c), []).append((a, g))
                    d = gb.run_pgbench(pgbench, app_url, work / f"{op}.sql", c, variables, work,
                                       mode="extended", read_only=False)
                    p = gb.run_pgbench(pgbench, bouncer_url, work / f"{op}.sql", c, variables, work,
                                       mode="extended", read_only=False)
                    results.setdefault(("pgbouncer", op, c), []).append((d, p))
                    print(f"round {rnd + 1} {op:6} c={c:2}: gateway alone {a[0]:7.0f}/s, with standby "
                          f"{b[0]:7.0f}/s ({b[0] / a[0]:.0%}), through PgBouncer {g[0]:7.0f}/s "
                          f"({g[0] / a[0]:.0%}); direct {d[0]:7.0f}/s, PgBouncer "
                          f"{p[0]:7.0f}/s ({p[0] / d[0]:.0%})", flush=True)
    served = requests.get(f"{with_replica.url}/readyz", timeout=10).json()["replicas"][0]
    alone.stop()
    with_replica.stop()
    pooled.stop()
    write(out, results, pool, served)


def write(out, results, pool, served):
    med = gb.med
    cpu = platform.processor() or platform.machine()
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo")
                   if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    lines = [
        "# Replica and pooler benchmark", "",
        f"Run {datetime.now(timezone.utc):%Y-%m-%d %H:%M UTC} on {platform.node()} ({os.cpu_count()} CPUs, "
        f"{cpu}); {gb.ROUNDS} interleaved rounds of {gb.SECONDS} s per cell. Written by "
        "`tests/bench/replicas.py` (`bash .ci/sealstore bench replicas`).", "",
        "**Gateway with a standby**: wrk against two gateways deployed alike, one with the primary alone, one "
        "with a hot standby of it in `SEALSTORE_DB_REPLICA_URLS` (the read routes served there). Both servers, "
        "both gateways and wrk share this machine's cores: a standby adds no capacity here, so the ratio shows "
        "what the routing costs, not what a second machine would add (on one, reads would leave the primary's "
        "cores to writes, and read throughput would add up across machines). "
        f"At the end the standby was {'usable' if served['usable'] else 'not usable'}, lagging "
        f"{served['lag_bytes']} bytes.", "",
        "**Gateway through PgBouncer**: wrk against the gateway whose database URL leads to PgBouncer 1.18 "
        "(`SEALSTORE_DB_TRANSACTION_POOLING`: unnamed statements, reads in read-only transaction blocks, "
        f"{int(pool) + 1} server connections), against the gateway connected directly (prepared statements, "
        "pipelined reads).", "",
        "**PgBouncer**: pgbench running the gateway's route statements as the application's login role, "
        "directly (one server connection per client) and through PgBouncer 1.18 in transaction pooling mode "
        f"({pool} server connections for all clients), both with unnamed statements (`-M extended`).", "",
        "| comparison | operation | clients | reference req/s | compared req/s | compared / reference | per-round ratios |",
        "|---|---|---:|---:|---:|---:|---|",
    ]
    names = {"replica": ("gateway, primary alone", "gateway, primary + standby"),
             "gateway-pgbouncer": ("gateway, direct", "gateway through PgBouncer"),
             "pgbouncer": ("direct", "through PgBouncer")}
    figs = []
    for (kind, op, c), runs in sorted(results.items()):
        ref, cmp_ = med([r[0][0] for r in runs]), med([r[1][0] for r in runs])
        ratio = med([b[0] / a[0] for a, b in runs])
        lines.append(f"| {names[kind][1]} / {names[kind][0]} | {gb.label(op)} | {c} | {ref:,.0f} | {cmp_:,.0f} | "
                     f"{ratio:.0%} | {' '.join(f'{b[0] / a[0]:.0%}' for a, b in runs)} |")
        figs.append(figure(f"{gb.label(op).split(' ')[0]}, {names[kind][1]}, {c} clients", cmp_, "req/s",
                           names[kind][0], ref, ratio, f"of {names[kind][0]} (median of paired rounds)"))
    Path(out).write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    save(out, "Replicas and PgBouncer", figs)


if __name__ == "__main__":
    main()
