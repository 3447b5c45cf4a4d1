"""Gateway benchmark: throughput and latency through the gateway against the same SQL issued
directly, in the same run.

Operations, each authenticated with an API key (read scope) in its own transaction:
- get-document: GET /v1/documents/{id} (a 200-byte document), and directly the statement the
  gateway sends for it.
- search: POST /v1/collections/bench/search, top-10 cosine over 1,000 plaintext 128-dimension
  vectors, and directly the same statement.

Direct SQL is pgbench (C, prepared statements) running the gateway's exact statement (it
authenticates, then calls, in one statement and one read-only transaction), as the gateway's own
login role, over TCP: the way a client reaches a database.
HTTP is wrk (C, keep-alive, over TCP) against the real gateway binary, deployed as
`.ci/sealstore run` deploys it: next to PostgreSQL, reaching it through its Unix socket, with its
default READS read connections (2 per core), which concurrent calls share (pipelined), and its
threads under SCHED_BATCH, its default scheduling policy; limits raised so that the limiter runs
but never refuses. Both load generators share the machine's two cores
with PostgreSQL and the gateway.
At 1, 16 and 64 concurrent clients; ROUNDS interleaved rounds of SECONDS each. In each round a
cell runs direct and then through the gateway, back to back, so the ratio of that pair sees the
same machine; the table gives the medians of throughput and latency, and the median of the
per-round ratios (the machines are shared: neighbours' load comes and goes between rounds).
Usage: gateway.py ADMIN_PG_URL APP_PG_URL GATEWAY_PG_URL GATEWAY_BIN PGBENCH WRK RESULTS_MD
"""
import json
import os
import platform
import random
import re
import statistics
import subprocess
import sys
import tempfile
from datetime import datetime, timezone
from pathlib import Path

import psycopg
import requests

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "e2e"))
from harness import Gateway  # noqa: E402

from figures import figure, save

ROUNDS = int(os.environ.get("SEALSTORE_BENCH_ROUNDS", "5"))
SECONDS = int(os.environ.get("SEALSTORE_BENCH_SECONDS", "4"))
READS = 2 * (os.cpu_count() or 2)  # the gateway's default SEALSTORE_DB_READ_CONNECTIONS
CLIENTS = [1, 16, 64]
DIMS, DOCS = 128, 1000
POSTGREST_GET = 2580  # req/s, PostgREST single-row GET on a 2-vCPU machine (the figure)

# The gateway's statements for the two routes (frontend/src/router.rs, Call::statement): one
# route function each, which authenticates $1 and makes the call, as one statement in its own
# transaction (pg_ext/src/api/routes.rs).
GET_SQL = "SELECT subject, body FROM sealstore.route_get_document($1, $2::uuid)"
SEARCH_SQL = ("SELECT subject, body FROM sealstore.route_search($1, $2, $3::sealstore.vector, "
              "$4::int, $5::text)")


def setup(admin_url):
    rng = random.Random(7)
    with psycopg.connect(admin_url, autocommit=True) as su:
        t = su.execute("SELECT sealstore.create_tenant('gateway-bench')").fetchone()[0]
        key = su.execute("SELECT sealstore.create_api_key(%s, 'bench', ARRAY['read','write'])", (t,)).fetchone()[0]
    with psycopg.connect(admin_url) as conn:
        conn.execute("SELECT sealstore.act_as_tenant(%s)", (t,))
        conn.execute("SELECT sealstore.create_collection('bench', %s)", (DIMS,))
        ids = []
        with conn.cursor() as cur:
            for n in range(DOCS):
                v = "[" + ",".join(f"{rng.uniform(-1, 1):.6f}" for _ in range(DIMS)) + "]"
                cur.execute("SELECT sealstore.put_document('bench', %s, %s::sealstore.vector, %s)",
                            ("x" * 200, v, json.dumps({"n": n})))
                ids.append(cur.fetchone()[0])
        conn.commit()
    query = [round(rng.uniform(-1, 1), 6) for _ in range(DIMS)]
    return key, str(ids[DOCS // 2]), query


def pgbench_script(op):
    if op == "get":
        sql = GET_SQL.replace("$1", ":token").replace("$2", ":id")
    else:
        sql = (SEARCH_SQL.replace("$1", ":token").replace("$2", "'bench'").replace("$3", ":vec")
               .replace("$4", "10").replace("$5", "NULL"))
    return sql + ";\n"


def run_pgbench(pgbench, app_url, script, clients, variables, workdir, mode="prepared", read_only=True):
    logdir = Path(tempfile.mkdtemp(dir=workdir))
    argv = [pgbench, "-n", "-M", mode, "-f", str(script), "-c", str(clients),
            "-j", str(min(clients, 2)), "-T", str(SECONDS), "-l", "--log-prefix", str(logdir / "pgb")]
    for k, v in variables.items():
        argv += ["-D", f"{k}={v}"]
    # Read-only transactions, as the gateway's read pool has them (PgBouncer takes no options).
    env = {**os.environ, "PGOPTIONS": "-c default_transaction_read_only=on" if read_only else ""}
    r = subprocess.run(argv + [app_url], capture_output=True, text=True, timeout=SECONDS * 10, env=env)
    if r.returncode != 0 or "number of failed transactions: 0" not in r.stdout:
        raise RuntimeError(f"pgbench failed: {r.stdout[-800:]}{r.stderr[-800:]}")
    tps = float(re.search(r"tps = ([\d.]+)", r.stdout).group(1))
    lat = []
    for f in logdir.iterdir():
        for line in f.read_text().splitlines():
            lat.append(int(line.split()[2]) / 1000.0)
    lat.sort()
    return tps, lat[len(lat) // 2], lat[int(len(lat) * 0.99)]


UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def run_wrk(wrk, url, lua, clients):
    argv = [wrk, "-t", str(min(clients, 2)), "-c", str(clients), "-d", f"{SECONDS}s", "--latency",
            "-s", str(lua), url]
    r = subprocess.run(argv, capture_output=True, text=True, timeout=SECONDS * 10)
    out = r.stdout
    if r.returncode != 0 or "Non-2xx" in out or "Socket errors" in out:
        raise RuntimeError(f"wrk failed or saw errors: {out[-1500:]}{r.stderr[-500:]}")
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))

    def pct(p):
        m = re.search(rf"^\s+{p}%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
        return float(m.group(1)) * UNITS[m.group(2)]
    return rps, pct(50), pct(99)


def lua_script(path, token, method, body=None):
    lines = [f'wrk.method = "{method}"', f'wrk.headers["Authorization"] = "Bearer {token}"']
    if body is not None:
        lines += ['wrk.headers["Content-Type"] = "application/json"',
                  "wrk.body = [[" + json.dumps(body) + "]]"]
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write("\n".join(lines) + "\n")


def main():
    admin_url, app_url, gateway_pg_url, gateway_bin, pgbench, wrk, out = sys.argv[1:8]
    os.environ["SEALSTORE_GATEWAY_BIN"] = gateway_bin
    key, doc_id, query = setup(admin_url)
    gw = Gateway(gateway_pg_url, {"SEALSTORE_RATE_PER_IP": "1000000",
                           "SEALSTORE_RATE_PER_KEY": "1000000",
                           # Start-up events only: the per-request access log would be read by
                           # this Python process, on the same two cores.
                           "SEALSTORE_LOG": "warn,sealstore_gateway=info,sealstore_gateway::server=warn"})
    results = {}
    with tempfile.TemporaryDirectory() as work:
        work = Path(work)
        paths = {"get": f"/v1/documents/{doc_id}", "search": "/v1/collections/bench/search"}
        search_body = {"vector": query, "k": 10}
        lua_script(work / "get.lua", key, "GET")
        lua_script(work / "search.lua", key, "POST", search_body)
        for op in ("get", "search"):
            (work / f"{op}.sql").write_text(pgbench_script(op))
        variables = {"token": key, "id": doc_id, "vec": "[" + ",".join(map(str, query)) + "]"}
        # Both paths give the same answer before anything is timed.
        h = {"Authorization": f"Bearer {key}"}
        via_gw = requests.get(gw.url + paths["get"], headers=h, timeout=10)
        assert via_gw.status_code == 200 and via_gw.json()["id"] == doc_id, via_gw.text
        via_gw_search = requests.post(gw.url + paths["search"], json=search_body, headers=h, timeout=10).json()
        with psycopg.connect(app_url) as conn:
            sql = re.sub(r"\$\d", "%s", SEARCH_SQL)
            vec = "[" + ",".join(map(str, query)) + "]"
            direct = json.loads(conn.execute(sql, (key, "bench", vec, 10, None)).fetchone()[1])
        assert [r["id"] for r in direct["results"]] == [r["id"] for r in via_gw_search["results"]]
        (work / "noop.sql").write_text("SELECT 1;\n")
        floors = {"http": [], "sql": []}
        for rnd in range(ROUNDS):
            # The round trips that do nothing, at 1 client: an HTTP request the gateway answers
            # itself, and a SQL statement that reads nothing. Through the gateway a call pays
            # both; directly, only the second.
            floors["http"].append(run_wrk(wrk, gw.url + "/healthz", work / "get.lua", 1))
            floors["sql"].append(run_pgbench(pgbench, app_url, work / "noop.sql", 1, {}, work))
            for op in ("get", "search"):
                for c in CLIENTS:
                    d = run_pgbench(pgbench, app_url, work / f"{op}.sql", c, variables, work)
                    g = run_wrk(wrk, gw.url + paths[op], work / f"{op}.lua", c)
                    results.setdefault((op, c), []).append((d, g))
                    print(f"round {rnd + 1} {op:6} c={c:2}: direct {d[0]:8.0f}/s  gateway {g[0]:8.0f}/s "
                          f"({g[0] / d[0]:.0%})", flush=True)
    gw.stop()
    write(out, results, floors)


def med(xs):
    return statistics.median(xs)


def ratio(runs):
    """The median over rounds of gateway / direct throughput, each pair measured back to back."""
    return med([g[0] / d[0] for d, g in runs])


def label(op):
    return "get-document" if op == "get" else "search (1,000 x 128, top 10)"


def write(out, results, floors):
    cpu = "unknown"
    try:
        cpu = next(l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name"))
    except (OSError, StopIteration):
        pass
    cells = sorted(results.items(), key=lambda kv: (kv[0][0] != "get", kv[0][1]))
    lines = [
        "# Gateway benchmark", "",
        f"Run {datetime.now(timezone.utc):%Y-%m-%d %H:%M UTC} on {platform.node()} ({os.cpu_count()} CPUs, {cpu}); "
        f"{ROUNDS} interleaved rounds of {SECONDS} s per cell. Written by `tests/bench/gateway.py` "
        "(`bash .ci/sealstore bench gateway`).", "",
        "Each request authenticates an API key and makes one call, in one statement and one read-only transaction. "
        "**Direct** is pgbench running the gateway's exact statement (prepared), one connection per client, "
        "as the gateway's login role, over TCP. "
        "**Gateway** is wrk over HTTP/1.1 keep-alive (TCP) against the gateway binary, deployed as "
        "`.ci/sealstore run` deploys it: next to PostgreSQL, through its Unix socket, with its default "
        f"{READS} read connections (2 per core), which concurrent calls share (pipelined), and its threads "
        "under `SCHED_BATCH` (its default scheduling policy, `SEALSTORE_SCHED_POLICY`); access log off, "
        "rate limiter on with limits above the load. "
        "Load generator, gateway and PostgreSQL share the same 2 cores.", "",
        "In each round a cell runs direct and then through the gateway, back to back; **gateway / direct** is "
        "the median of those per-round ratios (neighbours on the shared host come and go between rounds, "
        "so pairs measured together are compared). Throughput and latency columns are medians over rounds.", "",
        "| operation | clients | direct SQL req/s | gateway req/s | gateway / direct | per-round ratios | direct p50 / p99 ms | gateway p50 / p99 ms |",
        "|---|---:|---:|---:|---:|---|---:|---:|",
    ]
    for (op, c), runs in cells:
        lines.append(
            f"| {label(op)} | {c} | {med([d[0] for d, _ in runs]):,.0f} | {med([g[0] for _, g in runs]):,.0f} | "
            f"{ratio(runs):.0%} | {' '.join(f'{g[0] / d[0]:.0%}' for d, g in runs)} | "
            f"{med([d[1] for d, _ in runs]):.2f} / {med([d[2] for d, _ in runs]):.2f} | "
            f"{med([g[1] for _, g in runs]):.2f} / {med([g[2] for _, g in runs]):.2f} |")
    best_get = max(med([g[0] for _, g in runs]) for (op, _), runs in results.items() if op == "get")
    ratios = [ratio(runs) for runs in results.values()]
    http_hop, sql_hop = med([f[1] for f in floors["http"]]), med([f[1] for f in floors["sql"]])
    lines += [
        "", "## The floor at 1 client", "",
        f"An HTTP request that the gateway answers itself (`GET /healthz`, wrk, 1 client) takes {http_hop:.2f} ms "
        f"at p50; a SQL statement that reads nothing (`SELECT 1`, pgbench, 1 client) takes {sql_hop:.2f} ms. "
        "That is what a round trip between two processes costs on this machine. A call through the gateway "
        "pays the HTTP round trip on top of the SQL one, so at 1 client, where each request waits for the "
        "one before, a proxy whose SQL round trip cost as much as pgbench's would be held to direct p50 / "
        "(direct p50 + HTTP round trip). The gateway reaches PostgreSQL through its Unix socket, a cheaper "
        "hop than pgbench's TCP one, so it can pass that mark:", "",
    ]
    for (op, c), runs in cells:
        if c == 1:
            d50 = med([d[1] for d, _ in runs])
            lines.append(f"- {label(op)}: {d50:.2f} / ({d50:.2f} + {http_hop:.2f}) = {d50 / (d50 + http_hop):.0%} "
                         f"(measured: {ratio(runs):.0%}).")
    lines += [
        "", "## Targets", "",
        f"- Gateway throughput at least 80% of direct SQL: lowest ratio {min(ratios):.0%}, "
        f"median {med(ratios):.0%} ({'met in every cell' if min(ratios) >= 0.8 else 'not met in every cell'}).",
        f"- Authenticated get-document above {POSTGREST_GET:,} req/s (PostgREST's single-row GET on 2 vCPUs), "
        f"aiming for 3x ({3 * POSTGREST_GET:,}): best {best_get:,.0f} req/s = {best_get / POSTGREST_GET:.1f}x "
        f"({'met' if best_get > POSTGREST_GET else 'not met'}).",
    ]
    Path(out).write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    figs = []
    for (op, c), runs in cells:
        r = ratio(runs)
        figs.append(figure(f"{label(op).split(' ')[0]} through the gateway, {c} client{'s' if c != 1 else ''}",
                           med([g[0] for _, g in runs]), "req/s", "the same statement over SQL (pgbench)",
                           med([d[0] for d, _ in runs]), r, "of direct SQL (median of paired rounds)", "≥ 0.8",
                           r >= 0.8))
    for (op, c), runs in cells:
        if c == 1:
            d50 = med([d[1] for d, _ in runs])
            ceiling = d50 / (d50 + http_hop)
            figs.append(figure(f"ceiling for any proxy, {label(op).split(' ')[0]} at 1 client: direct p50 / "
                               f"(direct p50 + do-nothing HTTP round trip of {http_hop:.2f} ms)", ceiling,
                               "of direct SQL", "the gateway, measured", ratio(runs), ratio(runs) / ceiling,
                               "of the ceiling"))
    figs.append(figure("best authenticated get-document", best_get, "req/s",
                       "PostgREST single-row GET, 2 vCPUs (published, not measured here)", POSTGREST_GET,
                       best_get / POSTGREST_GET, "x", "> 1x (aim 3x)", best_get > POSTGREST_GET))
    save(out, "The gateway against direct SQL", figs)


if __name__ == "__main__":
    main()
