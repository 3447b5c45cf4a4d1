"""Authentication and row-level-security benchmark.

1. sealstore.authenticate() per call for an HS256 JWT, an EdDSA JWT and an API key: the median of
   9 runs of `SELECT count(sealstore.authenticate(token)) FROM generate_series(1, N)` in one
   backend (so statement overhead is spread over N calls). pgcrypto's hmac() over a token-sized
   message, in the same run, is the reference for one SHA-256 HMAC through SQL.
2. The revocation check: an HS256 JWT with a `jti`, checked against REVOCATIONS revoked ids,
   against the same JWT without one (no check), the two taking turns run by run; the median of
   the per-pair differences is what the check adds.
3. Policy overhead: 100,000 rows of 50 tenants. One tenant's rows read through the isolation
   policy by an application role (after authenticate(), outside the timing) against the same
   query with an explicit `WHERE tenant_id = $1` by a superuser (no policy). Median of 31 runs of
   each, interleaved; both as `SELECT id, body` fetching all 2,000 rows and as count(*), wall
   time at the client (EXPLAIN, which gave an executor-only figure before, is refused for
   statements under row-level security since the hostile-application fixes).
Usage: auth.py ADMIN_PG_URL RESULTS_MD
"""
import platform
import secrets
import statistics
import sys
import time
from datetime import datetime, timezone

import jwt
import psycopg
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from figures import figure, save

CALLS = 2000
AUTH_RUNS = 9
ROWS, TENANTS = 100_000, 50
REVOCATIONS = 10_000
RLS_RUNS = 61


def per_call_us(conn, sql, params, n):
    times = []
    for _ in range(AUTH_RUNS):
        start = time.perf_counter()
        conn.execute(sql, params).fetchone()
        times.append((time.perf_counter() - start) / n * 1e6)
        conn.rollback()
    return statistics.median(times)


def timed_ms(conn, sql, params, expect):
    """Runs the query, checks it returned the tenant's rows (so a ratio never comes from a wrong
    result), and returns its wall time in ms."""
    start = time.perf_counter()
    rows = conn.execute(sql, params).fetchall()
    elapsed = (time.perf_counter() - start) * 1e3
    got = rows[0][0] if len(rows) == 1 and len(rows[0]) == 1 else len(rows)
    assert got == expect, f"{sql}: {got} rows, expected {expect}"
    return elapsed


def main():
    url, out = sys.argv[1:3]
    rest = url.split("@", 1)[1]
    password = secrets.token_hex(12)
    with psycopg.connect(url, autocommit=True) as su:
        su.execute("SET log_min_error_statement = panic")
        su.execute("CREATE EXTENSION IF NOT EXISTS pgcrypto")
        su.execute("DROP TABLE IF EXISTS bench_docs")
        su.execute("DROP ROLE IF EXISTS bench_app")
        su.execute(f"CREATE ROLE bench_app LOGIN PASSWORD '{password}' IN ROLE sealstore_app")
        hs_secret = secrets.token_hex(32)
        ed = ed25519.Ed25519PrivateKey.generate()
        ed_pem = ed.public_key().public_bytes(serialization.Encoding.PEM,
                                              serialization.PublicFormat.SubjectPublicKeyInfo).decode()
        suffix = secrets.token_hex(3)
        su.execute("SELECT sealstore.add_jwt_key(%s, 'HS256', %s)", (f"bench-hs-{suffix}", hs_secret))
        su.execute("SELECT sealstore.add_jwt_key(%s, 'EdDSA', %s)", (f"bench-ed-{suffix}", ed_pem))
        tenants = [su.execute("SELECT sealstore.create_tenant(%s)", (f"bench-{i}",)).fetchone()[0]
                   for i in range(TENANTS)]
        api_key = su.execute("SELECT sealstore.create_api_key(%s, 'bench', '{read,write}')",
                             (tenants[0],)).fetchone()[0]
        su.execute("CREATE TABLE bench_docs (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, "
                   "tenant_id uuid NOT NULL, body text NOT NULL)")
        su.execute("INSERT INTO bench_docs (tenant_id, body) "
                   "SELECT (%s::uuid[])[1 + g %% %s], repeat(md5(g::text), 3) FROM generate_series(1, %s) g",
                   (tenants, TENANTS, ROWS))
        su.execute("SELECT sealstore.enable_tenant_isolation('bench_docs')")
        su.execute("GRANT SELECT ON bench_docs TO sealstore_app")
        su.execute("VACUUM ANALYZE bench_docs")

    claims = {"sub": "bench", "tenant": str(tenants[0]), "scope": "read write", "exp": int(time.time()) + 3600}
    tokens = {
        "HS256 JWT": jwt.encode(claims, hs_secret.encode(), algorithm="HS256", headers={"kid": f"bench-hs-{suffix}"}),
        "EdDSA JWT": jwt.encode(claims, ed, algorithm="EdDSA", headers={"kid": f"bench-ed-{suffix}"}),
        "API key": api_key,
    }
    auth = {}
    with psycopg.connect(url) as su:
        su.execute("SET max_parallel_workers_per_gather = 0")
        auth["pgcrypto hmac() (reference)"] = per_call_us(
            su, "SELECT count(hmac(%s::text || g, %s, 'sha256')) FROM generate_series(1, %s) g",
            (tokens["HS256 JWT"], hs_secret, CALLS), CALLS)
        for name, token in tokens.items():
            # Warm the backend's caches first, as a pooled connection would be.
            su.execute("SELECT sealstore.authenticate(%s)", (token,))
            su.commit()
            auth[name] = per_call_us(
                su, "SELECT count(sealstore.authenticate(%s)) FROM generate_series(1, %s)", (token, CALLS), CALLS)

    # The revocation check, paired run by run against the same token without a jti.
    with psycopg.connect(url, autocommit=True) as su:
        su.execute("SET log_statement = 'none'")
        su.execute("SELECT count(sealstore.revoke_token('bench-revoked-' || g, now() + interval '1 hour')) "
                   "FROM generate_series(1, %s) g", (REVOCATIONS,))
    with_jti = jwt.encode({**claims, "jti": f"bench-live-{suffix}"}, hs_secret.encode(), algorithm="HS256",
                          headers={"kid": f"bench-hs-{suffix}"})
    sql = "SELECT count(sealstore.authenticate(%s)) FROM generate_series(1, %s)"
    added, checked = [], []
    with psycopg.connect(url) as su:
        for token in (tokens["HS256 JWT"], with_jti):
            su.execute("SELECT sealstore.authenticate(%s)", (token,))
            su.commit()
        for _ in range(AUTH_RUNS):
            without = per_call_us(su, sql, (tokens["HS256 JWT"], CALLS), CALLS)
            checked.append(per_call_us(su, sql, (with_jti, CALLS), CALLS))
            added.append(checked[-1] - without)
    checked_us, revocation_us = statistics.median(checked), statistics.median(added)
    with psycopg.connect(url, autocommit=True) as su:
        su.execute("DELETE FROM sealstore.revoked_tokens WHERE jti LIKE 'bench-revoked-%'")

    rls = {}
    app_url = f"postgresql://bench_app:{password}@{rest}"
    with psycopg.connect(app_url) as app, psycopg.connect(url) as su:
        for c in (app, su):
            c.execute("SET max_parallel_workers_per_gather = 0")
            c.commit()
        queries = {
            "rows": ("SELECT id, body FROM bench_docs", "SELECT id, body FROM bench_docs WHERE tenant_id = %s"),
            "count": ("SELECT count(*) FROM bench_docs", "SELECT count(*) FROM bench_docs WHERE tenant_id = %s"),
        }
        for name, (policy_sql, direct_sql) in queries.items():
            p, d = [], []
            for i in range(RLS_RUNS + 3):
                t = tenants[i % TENANTS]
                app.execute("SELECT sealstore.authenticate(%s)", (jwt.encode(
                    {**claims, "tenant": str(t)}, hs_secret.encode(), algorithm="HS256",
                    headers={"kid": f"bench-hs-{suffix}"}),))
                tp = timed_ms(app, policy_sql, None, ROWS // TENANTS)
                app.commit()
                td = timed_ms(su, direct_sql, (t,), ROWS // TENANTS)
                su.commit()
                if i >= 3:  # the first runs prepare statements and warm caches
                    p.append(tp)
                    d.append(td)
            rls[name] = (statistics.median(p), statistics.median(d))
    with psycopg.connect(url, autocommit=True) as su:
        su.execute("DROP TABLE bench_docs")
        su.execute("DROP OWNED BY bench_app")
        su.execute("DROP ROLE bench_app")

    lines = [
        "# Authentication and row-level-security benchmark",
        "",
        f"Run {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC on {platform.node()} ({platform.machine()}), "
        "by `bash .ci/sealstore bench` (script: `tests/bench/auth.py`). Shared, noisy machine: medians.",
        "",
        f"## authenticate() per call (median of {AUTH_RUNS} runs of {CALLS} calls in one statement)",
        "",
        "| credential | µs per call |",
        "|---|---:|",
    ]
    lines += [f"| {name} | {us:.2f} |" for name, us in auth.items()]
    lines += ["", f"An HS256 JWT with a jti, checked against {REVOCATIONS:,} revocations: {checked_us:.2f} µs "
              f"per call; the check adds {revocation_us:.2f} µs (median of {AUTH_RUNS} paired differences "
              "with the same JWT without a jti).", ""]
    lines += [
        "",
        f"## Policy overhead: {ROWS:,} rows, {TENANTS} tenants, one tenant's {ROWS // TENANTS:,} rows "
        f"(median of {RLS_RUNS} interleaved runs)",
        "",
        "| query | through the policy (app role), ms | explicit WHERE (superuser), ms | ratio |",
        "|---|---:|---:|---:|",
    ]
    lines += [f"| {name} | {p:.2f} | {d:.2f} | {p / d:.2f} |" for name, (p, d) in rls.items()]
    lines += ["", "## Targets", ""]
    targets = [
        ("authenticate() HS256 under 20 µs", auth["HS256 JWT"] < 20),
        ("authenticate() API key under 20 µs", auth["API key"] < 20),
        ("the revocation check adds at most 1 µs to an HS256 authenticate()", revocation_us <= 1),
        ("policy overhead ratio at most 1.1 (rows)", rls["rows"][0] / rls["rows"][1] <= 1.1),
        ("policy overhead ratio at most 1.1 (count)", rls["count"][0] / rls["count"][1] <= 1.1),
    ]
    lines += [f"- {'met' if ok else 'NOT met'}: {what}" for what, ok in targets]
    open(out, "w").write("\n".join(lines) + "\n")
    hmac_us = auth["pgcrypto hmac() (reference)"]
    figs = [figure(f"authenticate(), {name}", us, "µs/call", "pgcrypto hmac()", hmac_us, hmac_us / us,
                   "x the cost of one hmac() (below 1: slower)",
                   "< 20 µs" if name in ("HS256 JWT", "API key") else "",
                   us < 20 if name in ("HS256 JWT", "API key") else None)
            for name, us in auth.items() if name != "pgcrypto hmac() (reference)"]
    without_us = checked_us - revocation_us
    figs.append(figure(f"authenticate(), HS256 JWT with a jti checked against {REVOCATIONS:,} revocations",
                       checked_us, "µs/call", "the same JWT without a jti", without_us,
                       without_us / checked_us, f"x the speed without the check ({revocation_us:.2f} µs added)",
                       "≤ 1 µs added", revocation_us <= 1))
    figs += [figure(f"tenant isolation policy, {name}", p, "ms", "explicit WHERE as superuser", d, d / p,
                    "x (1 = no overhead)", "policy / WHERE ≤ 1.1", p / d <= 1.1)
             for name, (p, d) in rls.items()]
    save(out, "authenticate() and the tenant isolation policy", figs)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
