"""The sealed graph against the plaintext graph, through search(): the same ROWS x 768 clustered
documents in a collection with plaintext embeddings (graph in documents_graph) and in one with
encrypted embeddings (graph in documents_sealed_graph, its vectors and neighbour lists sealed
with the tenant's key), loaded with put_document one row at a time (each insert into its graph),
then the same queries through search(), the two collections taking turns query by query, for
hnsw.ef_search in EF_SEARCH: recall@10 against the exact answer (numpy) and serial latency
(median and p95 of a client-server round trip, one connection each, prepared statements).

Filters: the same search with a metadata filter that 50%, 10%, 1% and 0.1% of the documents
pass, walked (the walk goes on, in wider batches, until k rows pass) and exact (every row of
the collection read and filtered), to see where a selective filter makes the exact search the
better one.

Also measured: a search's latency in a new backend (nothing opened or kept yet: it walks the
graph on its pages, the sealed graph opening each vector it touches), and the exact search of the same collections (what a collection
below sealstore.hnsw_exact_below gets), as the reference for what the graph buys.

Usage: sealed_graph.py SEALSTORE_URL RESULTS_MD
"""
import json
import os
import statistics
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import psycopg

from figures import figure, save

ROWS = int(os.environ.get("SEALSTORE_BENCH_SEALED_ROWS", "20000"))
QUERIES = int(os.environ.get("SEALSTORE_BENCH_SEALED_QUERIES", "100"))
DIMS = 768
EF_SEARCH = [40, 80, 200]
K = 10
COLD = 10
FILTERS = {"50%": {"m2": 0}, "10%": {"m10": 0}, "1%": {"m100": 0}, "0.1%": {"m1000": 0}}
FILTER_QUERIES = 20


def clustered(rows, centres=200, seed=3):
    rng = np.random.default_rng(seed)
    c = rng.uniform(-1, 1, (centres, DIMS)).astype(np.float32)
    data = c[rng.integers(0, centres, rows)] + rng.normal(0, 0.25, (rows, DIMS)).astype(np.float32)
    queries = c[rng.integers(0, centres, QUERIES)] + rng.normal(0, 0.25, (QUERIES, DIMS)).astype(np.float32)
    return data.astype(np.float32), queries.astype(np.float32)


def text(v):
    return "[" + ",".join(repr(float(x)) for x in v) + "]"


def truth(data, queries):
    out = []
    for q in queries:
        d = ((data - q) ** 2).sum(axis=1)
        out.append(set(np.argpartition(d, K)[:K].tolist()))
    return out


class Session:
    """A connection acting as the tenant (a transaction per search, as the gateway's)."""

    def __init__(self, url, key):
        self.conn = psycopg.connect(url, autocommit=True)
        self.key = key

    def search(self, collection, q, ef, exact=False, filter=None):
        c = self.conn
        t = time.perf_counter()
        with c.transaction():
            c.execute("SELECT sealstore.authenticate(%s)", (self.key,), prepare=True)
            c.execute("SELECT set_config('hnsw.ef_search', %s, true), "
                      "set_config('sealstore.hnsw_exact_below', %s, true)",
                      (str(ef), "100000000" if exact else "1000"), prepare=True)
            rows = c.execute("SELECT metadata->>'n' FROM sealstore.search(%s, %s::sealstore.vector, %s, %s)",
                             (collection, q, K, filter), prepare=True).fetchall()
        return time.perf_counter() - t, {int(r[0]) for r in rows}


def main():
    url, out = sys.argv[1], sys.argv[2]
    data, queries = clustered(ROWS)
    exact = truth(data, queries)
    qtext = [text(q) for q in queries]
    with psycopg.connect(url, autocommit=True) as su:
        tenant = su.execute("SELECT sealstore.create_tenant('bench-sealed-' || gen_random_uuid())").fetchone()[0]
        key = su.execute("SELECT sealstore.create_api_key(%s, 'bench', ARRAY['read', 'write'])",
                         (tenant,)).fetchone()[0]
    names = {"plaintext": False, "sealed": True}
    load = {}
    s = Session(url, key)
    for name, encrypted in names.items():
        s.conn.execute("BEGIN")
        s.conn.execute("SELECT sealstore.authenticate(%s)", (key,))
        s.conn.execute("SELECT sealstore.create_collection(%s, %s, 'l2', %s)", (name, DIMS, encrypted))
        s.conn.execute("COMMIT")
        t = time.perf_counter()
        batch = 500
        for start in range(0, ROWS, batch):
            with s.conn.transaction():
                s.conn.execute("SELECT sealstore.authenticate(%s)", (key,))
                with s.conn.cursor() as cur:
                    cur.executemany("SELECT sealstore.put_document(%s, 'x', %s::sealstore.vector, %s::jsonb)",
                                    [(name, text(v), '{"n": %d, "m2": %d, "m10": %d, "m100": %d, "m1000": %d}'
                                      % (start + i, (start + i) % 2, (start + i) % 10, (start + i) % 100,
                                         (start + i) % 1000))
                                     for i, v in enumerate(data[start:start + batch])])
        load[name] = ROWS / (time.perf_counter() - t)
        print(f"{name}: loaded {ROWS} at {load[name]:.0f} rows/s", flush=True)

    # A new backend per search: nothing opened yet.
    cold = {name: [] for name in names}
    for i in range(COLD):
        for name in names:
            fresh = Session(url, key)
            cold[name].append(fresh.search(name, qtext[i], 40)[0] * 1000)
            fresh.conn.close()

    sessions = {name: Session(url, key) for name in names}
    curve = {}
    for ef in [*EF_SEARCH, "exact"]:
        lat = {name: [] for name in names}
        rec = {name: [] for name in names}
        for name in names:  # warm: the sealed backend opens what the walks touch
            for q in qtext[:10]:
                sessions[name].search(name, q, 40 if ef == "exact" else ef, exact=ef == "exact")
        for qi, q in enumerate(qtext):
            for name in names:
                dt, got = sessions[name].search(name, q, 40 if ef == "exact" else ef, exact=ef == "exact")
                lat[name].append(dt * 1000)
                rec[name].append(len(got & exact[qi]) / K)
        curve[ef] = {name: {"recall": statistics.mean(rec[name]), "p50": statistics.median(lat[name]),
                            "p95": sorted(lat[name])[int(0.95 * (len(lat[name]) - 1))]} for name in names}
        print(ef, curve[ef], flush=True)

    filtered = {}
    for label, f in FILTERS.items():
        fj = json.dumps(f)
        key_of = next(iter(f))
        mod = int(key_of[1:])
        passing = np.array([i for i in range(ROWS) if i % mod == 0])
        want = []
        for q in queries[:FILTER_QUERIES]:
            d = ((data[passing] - q) ** 2).sum(axis=1)
            want.append(set(passing[np.argsort(d)[:K]].tolist()))
        cell = {}
        for name in names:
            for mode in ("walk", "exact"):
                lat, rec = [], []
                for qi, q in enumerate(qtext[:FILTER_QUERIES]):
                    dt, got = sessions[name].search(name, q, 40, exact=mode == "exact", filter=fj)
                    lat.append(dt * 1000)
                    rec.append(len(got & want[qi]) / K)
                cell[(name, mode)] = (statistics.median(lat), statistics.mean(rec))
        filtered[label] = cell
        print(label, cell, flush=True)

    lines = [f"# The sealed graph against the plaintext graph, through search() ({datetime.now(timezone.utc):%Y-%m-%d})",
             "", f"{ROWS:,} x {DIMS} clustered documents (200 centres), L2, in a plaintext and an encrypted "
             f"collection of one tenant; {QUERIES} queries, the two taking turns; k = {K}; a transaction per "
             "search (authenticate, then search), one connection each.", "",
             f"Load with put_document, one row per call, each into its collection's graph: plaintext "
             f"{load['plaintext']:,.0f} rows/s, sealed {load['sealed']:,.0f} rows/s.", "",
             "| ef_search | plaintext: recall@10, p50 / p95 ms | sealed: recall@10, p50 / p95 ms | sealed / plaintext p50 |",
             "|---:|---:|---:|---:|"]
    for ef, r in curve.items():
        p, sd = r["plaintext"], r["sealed"]
        lines.append(f"| {ef} | {p['recall']:.3f}, {p['p50']:.2f} / {p['p95']:.2f} | "
                     f"{sd['recall']:.3f}, {sd['p50']:.2f} / {sd['p95']:.2f} | {sd['p50'] / p['p50']:.2f} |")
    lines += ["", "`exact` is the exact search of the same collection (sealstore.hnsw_exact_below above its size).", "",
              f"A search in a new backend (median of {COLD}, ef_search 40): plaintext "
              f"{statistics.median(cold['plaintext']):.2f} ms, sealed {statistics.median(cold['sealed']):.2f} ms "
              "(the graph walked on its pages; a backend's second search of a collection reads its graph "
              "whole into memory, within `sealstore.hnsw_graph_memory`).", ""]
    lines += [f"A metadata filter, {FILTER_QUERIES} queries at ef_search 40: median ms and recall@10 among the "
              "documents that pass, walked and exact:", "",
              "| documents passing | plaintext walk | plaintext exact | sealed walk | sealed exact |",
              "|---:|---:|---:|---:|---:|"]
    for label, cell in filtered.items():
        lines.append(f"| {label} | " + " | ".join(
            f"{cell[(n, m)][0]:.2f} ms, {cell[(n, m)][1]:.2f}" for n in names for m in ("walk", "exact")) + " |")
    lines.append("")
    Path(out).write_text("\n".join(lines) + "\n")
    at40 = curve[40]
    ratio = at40["sealed"]["p50"] / at40["plaintext"]["p50"]
    figures = [
        figure("sealed graph: search() p50 latency at ef_search 40", at40["sealed"]["p50"], "ms",
               "plaintext graph", at40["plaintext"]["p50"], at40["plaintext"]["p50"] / at40["sealed"]["p50"],
               "x the plaintext graph's speed", "<= 1.5x the plaintext latency", ratio <= 1.5),
        figure("sealed graph: recall@10 at ef_search 40", at40["sealed"]["recall"], "", "plaintext graph",
               at40["plaintext"]["recall"], None, "", ">= 0.95", at40["sealed"]["recall"] >= 0.95),
        figure("sealed graph: put_document into an encrypted collection", load["sealed"], "rows/s",
               "plaintext collection", load["plaintext"], load["sealed"] / load["plaintext"], "of plaintext"),
    ]
    save(out, "The sealed graph against the plaintext graph", figures)


if __name__ == "__main__":
    main()
