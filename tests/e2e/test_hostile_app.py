"""The attacks a hostile application mounted with arbitrary SQL through its own login role,
each against the running stack (the real gateway, the real database), each of which broke a
promise of the threat model before it was fixed (issue 22):

1. the application's login role was the gateway's, so the application could set the gateway's
   session defaults (logging every token and value), signal its backends and write audit rows
   in its name;
2. shredding, API key revocation and JWT key retirement did not reach REPEATABLE READ and
   SERIALIZABLE transactions whose snapshot predated them;
3. the gateway's SQL resolved functions through a search path its role's defaults could set;
4. rotate_column ran a table's triggers with the administrator's rights;
5. a partition's flat index scored other tenants' rows;
6. deeply nested JSON was an internal error (XX000, HTTP 500);
7. two Host headers were served;
8. EXPLAIN and the activity statistics counted other tenants' rows;
9. scopes, JWT keys and /metrics reached further than the credential should.
"""
import re
import secrets
import socket
from pathlib import Path

import psycopg
import pytest
import requests

from clients import Api, assert_error, mint
from harness import Gateway, create_login_role, drop_role, env


# --- shared set-up -------------------------------------------------------------------------

@pytest.fixture(scope="module")
def world(admin_url):
    """Two tenants with API keys of every scope, a secret each, and an HS256 key that may issue
    admin tokens."""
    kid, secret = f"hostile-{secrets.token_hex(4)}", secrets.token_hex(32)
    out = {"kid": kid, "secret": secret, "tenants": []}
    with psycopg.connect(admin_url, autocommit=True) as su:
        su.execute("SET log_statement = 'none'")
        su.execute("SELECT sealstore.add_jwt_key(%s, 'HS256', %s, admin => true)", (kid, secret))
        for name in ("victim", "attacker"):
            t = su.execute("SELECT sealstore.create_tenant(%s)", (f"{name}-{secrets.token_hex(3)}",)).fetchone()[0]
            keys = {scope: su.execute("SELECT sealstore.create_api_key(%s, %s, %s)",
                                      (t, scope, scopes)).fetchone()[0]
                    for scope, scopes in (("rw", ["read", "write"]), ("r", ["read"]), ("w", ["write"]),
                                          ("adm", ["admin", "read", "write"]))}
            out["tenants"].append({"id": str(t), "keys": keys, "secret": f"{name}-secret-{secrets.token_hex(8)}"})
    return out


@pytest.fixture(scope="module")
def victim_data(app_url, world):
    """The victim's secret, a ciphertext of it, a document: what the attacks go after."""
    v = world["tenants"][0]
    with psycopg.connect(app_url) as conn:
        conn.execute("SELECT sealstore.authenticate(%s)", (v["keys"]["rw"],))
        conn.execute("SELECT sealstore.put_secret('s', %s)", (v["secret"],))
        ct = conn.execute("SELECT sealstore.encrypt_text(%s, 'ctx')", (v["secret"],)).fetchone()[0]
        coll = f"hc-{secrets.token_hex(3)}"
        conn.execute("SELECT sealstore.create_collection(%s, 3, 'l2')", (coll,))
        doc = conn.execute("SELECT sealstore.put_document(%s, %s, '[1,2,3]')",
                           (coll, v["secret"])).fetchone()[0]
        conn.commit()
    return {"ct": ct, "collection": coll, "doc": doc}


def sqlstate(conn, sql, params=()):
    """The SQLSTATE the statement fails with (None if it succeeds); the transaction is rolled back."""
    try:
        conn.execute(sql, params)
    except psycopg.Error as e:
        conn.rollback()
        return e.sqlstate
    conn.rollback()
    return None


# --- 1. the gateway's login role is its own ------------------------------------------------

def test_the_application_role_is_not_the_gateways_and_cannot_reach_it(app_url, gateway_pg_url, gateway):
    with psycopg.connect(app_url, autocommit=True) as app:
        me = app.execute("SELECT current_user").fetchone()[0]
        assert me != "sealstore_gateway"
        assert app.execute("SELECT pg_has_role(current_user, 'sealstore_gateway', 'USAGE')").fetchone()[0] is False
        assert app.execute("SELECT pg_has_role(current_user, 'sealstore_app', 'USAGE')").fetchone()[0] is True
        # The attack: make the gateway's sessions log every plan with its bound values.
        for setting in ("debug_print_plan = on", "log_parameter_max_length_on_error = -1",
                        "plan_cache_mode = force_custom_plan", "idle_session_timeout = 1"):
            with pytest.raises(psycopg.Error) as info:
                app.execute(f"ALTER ROLE sealstore_gateway SET {setting}")
            assert info.value.sqlstate == "42501", setting
        with pytest.raises(psycopg.Error) as info:
            app.execute("ALTER ROLE sealstore_gateway RESET ALL")
        assert info.value.sqlstate == "42501"
        # Its own defaults are its own business, and reach no gateway session.
        app.execute("ALTER ROLE CURRENT_USER SET debug_print_plan = on")
        app.execute("ALTER ROLE CURRENT_USER RESET debug_print_plan")
        # Nor can it cancel or terminate the gateway's backends.
        requests.get(f"{gateway.url}/readyz", timeout=5)
        pids = [r[0] for r in app.execute(
            "SELECT pid FROM pg_stat_activity WHERE usename = 'sealstore_gateway'").fetchall()]
        assert pids, "the gateway holds no connection"
        for fn in ("pg_cancel_backend", "pg_terminate_backend"):
            with pytest.raises(psycopg.Error) as info:
                app.execute(f"SELECT {fn}(%s)", (pids[0],))
            assert info.value.sqlstate == "42501", fn


@pytest.fixture
def gateway_role_defaults(admin_url):
    """Sets defaults on the gateway's login role as a superuser would (an application cannot),
    and restores roles.sql's afterwards."""
    def apply(*settings):
        with psycopg.connect(admin_url, autocommit=True) as su:
            for s in settings:
                su.execute(f"ALTER ROLE sealstore_gateway SET {s}")
    yield apply
    with psycopg.connect(admin_url, autocommit=True) as su:
        su.execute("ALTER ROLE sealstore_gateway RESET ALL")
        su.execute("ALTER ROLE sealstore_gateway SET log_parameter_max_length = 0")
        su.execute("ALTER ROLE sealstore_gateway SET log_parameter_max_length_on_error = 0")


def test_pinned_settings_outrank_the_roles_defaults_and_nothing_reaches_the_log(
        gateway_pg_url, gateway_role_defaults, world, victim_data, admin_url):
    """The role defaults of the reported attack, but only ones the gateway pins: it starts,
    serves, and the server log, which debug_print_plan would fill with every plan and its
    values, holds neither the token nor the plaintext."""
    with psycopg.connect(admin_url, autocommit=True) as su:
        su.execute("DROP SCHEMA IF EXISTS hijack CASCADE")
        su.execute("CREATE SCHEMA hijack")
        # A stand-in for the function the gateway's statements call, first on the role's path.
        su.execute("""CREATE FUNCTION hijack.json_build_object(text, text, text, text) RETURNS json
                      LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'hijacked'; END $$""")
        su.execute("GRANT USAGE ON SCHEMA hijack TO PUBLIC")
        # Positive control: debug_print_plan does write a plan's values into this log.
        su.execute("SET debug_print_plan = on")
        su.execute("SELECT 'control-marker-7f3a'")
    gateway_role_defaults("debug_print_plan = on", "debug_print_parse = on",
                          "log_parameter_max_length_on_error = -1", "search_path = hijack, pg_catalog, sealstore")
    v = world["tenants"][0]
    gw = Gateway(gateway_pg_url)
    try:
        api = Api(gw.url, v["keys"]["rw"])
        r = api("GET", "/v1/secrets/s")
        assert r.status_code == 200 and r.json() == {"name": "s", "value": v["secret"]}, r.text
        r = api("GET", f"/v1/documents/{victim_data['doc']}")
        assert r.status_code == 200 and r.json()["content"] == v["secret"], r.text
        assert api("PUT", "/v1/secrets/s2", {"value": v["secret"]}).status_code == 204
    finally:
        gw.stop()
        with psycopg.connect(admin_url, autocommit=True) as su:
            su.execute("DROP SCHEMA hijack CASCADE")
    log = Path(env("SEALSTORE_TEST_PG_LOG")).read_text(errors="replace")
    assert "control-marker-7f3a" in log
    assert v["secret"] not in log
    assert v["keys"]["rw"] not in log and v["keys"]["rw"].split("_")[-1] not in log
    assert "hijacked" not in log


def test_a_login_role_with_defaults_it_does_not_know_is_refused_at_start(gateway_pg_url, gateway_role_defaults):
    gateway_role_defaults("plan_cache_mode = force_custom_plan", "debug_print_plan = on")
    with pytest.raises(RuntimeError) as info:
        Gateway(gateway_pg_url)
    text = str(info.value)
    assert "refusing to start" in text
    # Only the unknown one is named: a pinned setting's default is powerless.
    assert text.split("does not accept: ")[1].split(" (ALTER")[0] == "plan_cache_mode"


def test_a_login_role_that_is_more_than_an_application_is_refused(admin_url):
    url = create_login_role(admin_url, "e2e_gw_admin", "sealstore_gateway")
    with psycopg.connect(admin_url, autocommit=True) as su:
        su.execute("GRANT sealstore_admin TO e2e_gw_admin")
    try:
        with pytest.raises(RuntimeError) as info:
            Gateway(url)
        assert "member of sealstore_admin" in str(info.value)
    finally:
        with psycopg.connect(admin_url, autocommit=True) as su:
            drop_role(su, "e2e_gw_admin")


# --- 2. revocations reach transactions whose snapshot predates them -----------------------

@pytest.mark.parametrize("isolation", ["REPEATABLE READ", "SERIALIZABLE"])
def test_a_shred_stops_a_transaction_that_began_before_it(app_url, admin_url, isolation):
    with psycopg.connect(admin_url, autocommit=True) as su:
        t = su.execute("SELECT sealstore.create_tenant('rr-shred')").fetchone()[0]
        key = su.execute("SELECT sealstore.create_api_key(%s, 'k', '{read,write}')", (t,)).fetchone()[0]
    with psycopg.connect(app_url) as conn:
        conn.execute("SELECT sealstore.authenticate(%s)", (key,))
        conn.execute("SELECT sealstore.put_secret('s', 'before the shred')")
        coll = f"rr-{secrets.token_hex(3)}"
        conn.execute("SELECT sealstore.create_collection(%s, 2)", (coll,))
        doc = conn.execute("SELECT sealstore.put_document(%s, 'content', '[1,0]')", (coll,)).fetchone()[0]
        ct = conn.execute("SELECT sealstore.encrypt_text('plain', 'c')").fetchone()[0]
        conn.commit()

        conn.autocommit = True  # the transaction below is begun and ended explicitly
        conn.execute(f"BEGIN ISOLATION LEVEL {isolation}")
        conn.execute("SELECT sealstore.authenticate(%s)", (key,))
        assert conn.execute("SELECT sealstore.decrypt_text(%s, 'c')", (ct,)).fetchone()[0] == "plain"
        assert conn.execute("SHOW transaction_isolation").fetchone()[0] == isolation.lower()
        with psycopg.connect(admin_url, autocommit=True) as su:
            su.execute("SELECT sealstore.shred_tenant(%s)", (t,))
        for sql, params in [("SELECT sealstore.decrypt_text(%s, 'c')", (ct,)),
                            ("SELECT sealstore.get_secret('s')", ()),
                            ("SELECT * FROM sealstore.get_document(%s)", (doc,)),
                            ("SELECT * FROM sealstore.search(%s, '[1,0]')", (coll,)),
                            ("SELECT sealstore.encrypt_text('after', 'c')", ())]:
            conn.execute("SAVEPOINT s")
            with pytest.raises(psycopg.Error) as info:
                conn.execute(sql, params)
            assert info.value.sqlstate in ("42704", "P0002"), (sql, info.value.sqlstate)
            conn.execute("ROLLBACK TO SAVEPOINT s")
        conn.execute("ROLLBACK")


@pytest.mark.parametrize("change", ["shred", "revoke_api_key", "retire_jwt_key"])
def test_a_credential_withdrawn_after_the_snapshot_is_refused(app_url, admin_url, change):
    kid, secret = f"rr-{secrets.token_hex(4)}", secrets.token_hex(32)
    with psycopg.connect(admin_url, autocommit=True) as su:
        su.execute("SET log_statement = 'none'")
        su.execute("SELECT sealstore.add_jwt_key(%s, 'HS256', %s)", (kid, secret))
        t = su.execute("SELECT sealstore.create_tenant('rr-cred')").fetchone()[0]
        key = su.execute("SELECT sealstore.create_api_key(%s, 'k', '{read}')", (t,)).fetchone()[0]
    token = mint(secret, kid, tenant=str(t), scope="read")
    credential = token if change == "retire_jwt_key" else key
    with psycopg.connect(app_url) as conn:
        # Warm this backend's caches, then take a snapshot before the change commits.
        conn.execute("SELECT sealstore.authenticate(%s)", (credential,))
        conn.commit()
        conn.autocommit = True
        conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ")
        conn.execute("SELECT 1")
        with psycopg.connect(admin_url, autocommit=True) as su:
            if change == "shred":
                su.execute("SELECT sealstore.shred_tenant(%s)", (t,))
            elif change == "revoke_api_key":
                su.execute("SELECT sealstore.revoke_api_key(split_part(%s, '_', 2)::uuid)", (key,))
            else:
                su.execute("SELECT sealstore.retire_jwt_key(%s)", (kid,))
        assert conn.execute("SHOW transaction_isolation").fetchone()[0] == "repeatable read"
        with pytest.raises(psycopg.Error) as info:
            conn.execute("SELECT sealstore.authenticate(%s)", (credential,))
        assert info.value.sqlstate == "28P01"
        conn.execute("ROLLBACK")


# --- 3. the gateway's SQL names nothing an application can stand in for --------------------
# (test_pinned_settings_outrank_the_roles_defaults_and_nothing_reaches_the_log puts a
# json_build_object of its own first on the role's path; it is never called.)

def test_every_function_and_type_in_the_gateways_sql_is_qualified():
    """The gateway's statements name functions, types and operators with their schema: on top
    of the pinned search_path, nothing an application creates can stand in for them."""
    sources = (Path(__file__).resolve().parents[2] / "frontend" / "src").rglob("*.rs")
    sql = []
    for src in sources:
        if src.name == "tests.rs":
            continue
        for literal in re.findall(r'"((?:[^"\\]|\\.)*)"', src.read_text(), re.S):
            if re.match(r"\s*(SELECT|WITH)\b", literal):
                sql.append(literal)
    text = " ".join(sql)
    assert "sealstore.route_" in text and "sealstore.jwt_verification_config" in text
    called = {c.lower() for c in re.findall(r"(?<![\w.])([a-z_][a-z0-9_]*)\s*\(", text, re.I)}
    # SQL keywords, and OPERATOR(pg_catalog.=).
    assert called <= {"select", "array", "any", "operator"}, called
    casts = set(re.findall(r"::\s*([a-z_][a-z0-9_]*)(?![\w.])", text, re.I))
    assert casts == set(), casts
    without_strings = re.sub(r"'[^']*'", "''", text)
    bare_operators = re.findall(r"(?<!OPERATOR\(pg_catalog\.)(?<![<>!])=(?!>)", without_strings)
    assert bare_operators == [], text


# --- 4. rotate_column runs a table's code as the table's owner ----------------------------

@pytest.fixture
def trojan(admin_url, admin_login, world):
    """A table owned by an application role, whose rows belong to the attacker's tenant, with a
    secret of the victim's in reach; the test adds a trigger."""
    with psycopg.connect(admin_url, autocommit=True) as su:
        su.execute("DROP TABLE IF EXISTS public.trojan_items, public.loot")
    owner_url = create_login_role(admin_url, "e2e_trojan_owner", "sealstore_app")
    with psycopg.connect(admin_url, autocommit=True) as su:
        su.execute("GRANT CREATE ON SCHEMA public TO e2e_trojan_owner")
    attacker = world["tenants"][1]
    with psycopg.connect(owner_url, autocommit=True) as own:
        own.execute("CREATE TABLE public.loot (what text)")
        own.execute("GRANT INSERT ON public.loot TO PUBLIC")
        own.execute("CREATE TABLE public.trojan_items (id int PRIMARY KEY, tenant_id uuid, secret bytea, "
                    "touched_by text)")
        own.execute("GRANT SELECT, INSERT, UPDATE ON public.trojan_items TO sealstore_admin")
    with psycopg.connect(admin_login) as a:
        a.execute("SELECT sealstore.act_as_tenant(%s)", (attacker["id"],))
        a.execute("INSERT INTO public.trojan_items SELECT g, %s, sealstore.encrypt_text('v' || g, g::text) "
                  "FROM generate_series(1, 20) g", (attacker["id"],))
        a.commit()
        a.execute("SELECT sealstore.rotate_tenant_key(%s)", (attacker["id"],))
        a.commit()
    yield owner_url, attacker
    with psycopg.connect(admin_url, autocommit=True) as su:
        su.execute("DROP TABLE IF EXISTS public.trojan_items, public.loot")
        su.execute("REVOKE CREATE ON SCHEMA public FROM e2e_trojan_owner")
        drop_role(su, "e2e_trojan_owner")


def rotate(admin_login, tenant):
    with psycopg.connect(admin_login, autocommit=True) as a:
        try:
            a.execute("CALL sealstore.rotate_column('public.trojan_items', 'secret', 'id', 7, %s)", (tenant,))
        except psycopg.Error as e:
            return e.sqlstate
    return None


def loot(admin_url):
    with psycopg.connect(admin_url) as su:
        return [r[0] for r in su.execute("SELECT what FROM public.loot").fetchall()]


@pytest.mark.parametrize("payload", [
    # Act as the victim and copy its secret.
    "PERFORM sealstore.act_as_tenant('{victim}'); "
    "INSERT INTO public.loot VALUES (sealstore.get_secret('s'));",
    # Decrypt the rows being rotated with the context rotate_column sets.
    "INSERT INTO public.loot VALUES (sealstore.decrypt_text(NEW.secret, NEW.id::text));",
    # Keep a copy of the tenant's key material by encrypting a known value.
    "INSERT INTO public.loot VALUES (encode(sealstore.encrypt_text('known', 'x'), 'hex'));",
])
def test_a_trojan_trigger_gets_nothing_from_rotate_column(trojan, admin_login, admin_url, world, payload):
    owner_url, attacker = trojan
    victim = world["tenants"][0]["id"]
    with psycopg.connect(owner_url, autocommit=True) as own:
        own.execute(f"""CREATE FUNCTION public.trojan() RETURNS trigger LANGUAGE plpgsql AS $$
                        BEGIN {payload.format(victim=victim)} RETURN NEW; END $$""")
        own.execute("CREATE TRIGGER t BEFORE UPDATE ON public.trojan_items FOR EACH ROW EXECUTE FUNCTION public.trojan()")
    assert rotate(admin_login, attacker["id"]) == "42501"
    assert loot(admin_url) == []


def test_a_tables_own_trigger_runs_as_its_owner_and_the_rotation_completes(trojan, admin_login, admin_url):
    owner_url, attacker = trojan
    with psycopg.connect(owner_url, autocommit=True) as own:
        own.execute("""CREATE FUNCTION public.stamp() RETURNS trigger LANGUAGE plpgsql AS $$
                       BEGIN NEW.touched_by := current_user; RETURN NEW; END $$""")
        own.execute("CREATE TRIGGER t BEFORE UPDATE ON public.trojan_items FOR EACH ROW EXECUTE FUNCTION public.stamp()")
    assert rotate(admin_login, attacker["id"]) is None
    with psycopg.connect(admin_url) as su:
        active = su.execute("SELECT version FROM sealstore.key_versions(%s) WHERE active",
                            (attacker["id"],)).fetchone()[0]
        rows = su.execute("SELECT touched_by, sealstore.envelope_key_version(secret) FROM public.trojan_items").fetchall()
    assert len(rows) == 20 and set(rows) == {("e2e_trojan_owner", active)}
    with psycopg.connect(admin_login) as a:
        a.execute("SELECT sealstore.act_as_tenant(%s)", (attacker["id"],))
        assert a.execute("SELECT count(*) FROM public.trojan_items "
                         "WHERE sealstore.decrypt_text(secret, id::text) = 'v' || id").fetchone()[0] == 20


def test_rotate_column_needs_the_callers_own_rights_on_the_column(trojan, admin_login, admin_url):
    owner_url, attacker = trojan
    with psycopg.connect(owner_url, autocommit=True) as own:
        own.execute("REVOKE UPDATE ON public.trojan_items FROM sealstore_admin")
    assert rotate(admin_login, attacker["id"]) == "42501"


# --- 5. partitions and inheritance children: no flat index under the root's policy ----------

@pytest.mark.parametrize("kind", ["partition", "inheritance"])
def test_a_childs_flat_index_never_scores_another_tenants_rows(admin_url, app_url, world, kind):
    a, b = world["tenants"][1], world["tenants"][0]
    with psycopg.connect(admin_url, autocommit=True) as su:
        su.execute("DROP TABLE IF EXISTS public.pdocs CASCADE")
        if kind == "partition":
            su.execute("CREATE TABLE public.pdocs (id int, tenant_id uuid NOT NULL, v sealstore.vector) "
                       "PARTITION BY HASH (id)")
            su.execute("CREATE TABLE public.pdocs_0 PARTITION OF public.pdocs FOR VALUES WITH (MODULUS 1, REMAINDER 0)")
        else:
            su.execute("CREATE TABLE public.pdocs (id int, tenant_id uuid NOT NULL, v sealstore.vector)")
            su.execute("CREATE TABLE public.pdocs_0 () INHERITS (public.pdocs)")
        su.execute("SELECT sealstore.enable_tenant_isolation('public.pdocs')")
        su.execute("GRANT SELECT ON public.pdocs TO sealstore_app")
        # The other tenant's row has a vector of other dimensions: scoring it would fail.
        su.execute("INSERT INTO public.pdocs_0 VALUES (1, %s, '[1,2,3]'), (2, %s, '[0,0,1]'), (3, %s, '[1,2]')",
                   (a["id"], a["id"], b["id"]))
        if kind == "partition":
            su.execute("CREATE INDEX ON public.pdocs USING flat (v)")
        else:
            su.execute("CREATE INDEX ON public.pdocs_0 USING flat (v)")
        su.execute("ANALYZE public.pdocs")
        # Isolated too: read directly, a child answers with its own policies.
        rls = su.execute("SELECT relrowsecurity AND relforcerowsecurity FROM pg_class "
                         "WHERE oid = 'public.pdocs_0'::regclass").fetchone()[0]
        assert rls is True
    try:
        with psycopg.connect(app_url) as conn:
            conn.execute("SELECT sealstore.authenticate(%s)", (a["keys"]["r"],))
            conn.execute("SET enable_seqscan = off")
            conn.execute("SET enable_sort = off")
            rows = conn.execute("SELECT id FROM public.pdocs ORDER BY v OPERATOR(sealstore.<->) '[1,2,3]' LIMIT 5").fetchall()
            assert [r[0] for r in rows] == [1, 2]
    finally:
        with psycopg.connect(admin_url, autocommit=True) as su:
            su.execute("DROP TABLE IF EXISTS public.pdocs CASCADE")


# --- 6. nested JSON: a clean error or a value passed through, never XX000 or HTTP 500 --------

def nested(depth):
    return '{"a": ' * depth + "1" + "}" * depth


def test_deep_metadata_and_filters_pass_through_sql(app_url, world):
    t = world["tenants"][1]
    with psycopg.connect(app_url) as conn:
        conn.execute("SELECT sealstore.authenticate(%s)", (t["keys"]["rw"],))
        coll = f"deep-{secrets.token_hex(3)}"
        conn.execute("SELECT sealstore.create_collection(%s, 2)", (coll,))
        doc = conn.execute("SELECT sealstore.put_document(%s, 'x', '[1,0]', %s::jsonb)",
                           (coll, nested(200))).fetchone()[0]
        meta = conn.execute("SELECT metadata::text FROM sealstore.get_document(%s)", (doc,)).fetchone()[0]
        assert meta == nested(200)
        hits = conn.execute("SELECT id, metadata::text FROM sealstore.search(%s, '[1,0]', 5, %s::jsonb)",
                            (coll, nested(200))).fetchall()
        assert [h[0] for h in hits] == [doc] and hits[0][1] == meta
        # Deeper than the server's stack allows: its own clean error (54001), not an internal one.
        conn.commit()
        with pytest.raises(psycopg.Error) as info:
            conn.execute("SELECT sealstore.put_document(%s, 'x', '[1,0]', %s::jsonb)", (coll, nested(100_000)))
        assert info.value.sqlstate == "54001"
        conn.rollback()
        conn.execute("SELECT sealstore.authenticate(%s)", (t["keys"]["rw"],))
        for bad in ("[1]", '"s"', "null", "1"):
            conn.execute("SAVEPOINT s")
            with pytest.raises(psycopg.Error) as info:
                conn.execute("SELECT sealstore.put_document(%s, 'x', '[1,0]', %s::jsonb)", (coll, bad))
            assert info.value.sqlstate == "22023", bad
            conn.execute("ROLLBACK TO SAVEPOINT s")


def test_deep_json_over_http_is_a_400(gateway, world):
    t = world["tenants"][1]
    api = Api(gateway.url, t["keys"]["rw"])
    coll = f"deeph-{secrets.token_hex(3)}"
    assert api("POST", "/v1/collections", {"name": coll, "dims": 2}).status_code == 201
    path = f"/v1/collections/{coll}/documents"
    ok = api("POST", path, data=f'{{"content": "x", "embedding": [1, 0], "metadata": {nested(60)}}}',
             headers={"Content-Type": "application/json"})
    assert ok.status_code == 201, ok.text
    for depth in (129, 100_000):
        body = f'{{"content": "x", "embedding": [1, 0], "metadata": {nested(depth)}}}'
        assert_error(api("POST", path, data=body, headers={"Content-Type": "application/json"}),
                     400, "invalid_request")
    body = f'{{"vector": [1, 0], "filter": {nested(200)}}}'
    assert_error(api("POST", f"/v1/collections/{coll}/search", data=body,
                     headers={"Content-Type": "application/json"}), 400, "invalid_request")


# --- 7. one Host header --------------------------------------------------------------------

def raw_request(addr, head: str) -> str:
    host, port = addr.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=10) as s:
        s.sendall(head.encode())
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
    return data.decode(errors="replace")


@pytest.mark.parametrize("path", ["/healthz", "/v1/secrets/x"])
def test_two_host_headers_are_a_400(gateway, path):
    host = gateway.addr
    one = raw_request(gateway.addr, f"GET /healthz HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n")
    assert one.startswith("HTTP/1.1 200"), one
    two = raw_request(gateway.addr, f"GET {path} HTTP/1.1\r\nHost: {host}\r\nHost: evil.example\r\n"
                                    "Connection: close\r\n\r\n")
    assert two.startswith("HTTP/1.1 400"), two
    none = raw_request(gateway.addr, f"GET {path} HTTP/1.1\r\nConnection: close\r\n\r\n")
    assert none.startswith("HTTP/1.1 400"), none


# --- 8. side channels of shared tables --------------------------------------------------------

@pytest.fixture(scope="module")
def shared_table(admin_url, world):
    with psycopg.connect(admin_url, autocommit=True) as su:
        su.execute("DROP TABLE IF EXISTS public.shared_rows")
        su.execute("CREATE TABLE public.shared_rows (id bigint GENERATED ALWAYS AS IDENTITY, "
                   "tenant_id uuid NOT NULL, email text)")
        su.execute("CREATE UNIQUE INDEX shared_rows_email ON public.shared_rows (email)")
        su.execute("SELECT sealstore.enable_tenant_isolation('public.shared_rows')")
        su.execute("GRANT SELECT, INSERT ON public.shared_rows TO sealstore_app")
        for i, t in enumerate(world["tenants"]):
            su.execute("INSERT INTO public.shared_rows (tenant_id, email) "
                       "SELECT %s, 'user' || g || '@t' || %s FROM generate_series(1, 50) g", (t["id"], i))
        su.execute("ANALYZE public.shared_rows")
    yield
    with psycopg.connect(admin_url, autocommit=True) as su:
        su.execute("DROP TABLE IF EXISTS public.shared_rows")


@pytest.mark.parametrize("explain", [
    "EXPLAIN SELECT * FROM public.shared_rows",
    "EXPLAIN (ANALYZE) SELECT * FROM public.shared_rows WHERE email = 'user1@t0'",
    "EXPLAIN (ANALYZE, FORMAT JSON) SELECT count(*) FROM (SELECT * FROM public.shared_rows) s",
    "EXPLAIN SELECT (SELECT count(*) FROM public.shared_rows)",
])
def test_explain_of_an_isolated_table_is_refused(app_url, world, shared_table, explain):
    with psycopg.connect(app_url) as conn:
        conn.execute("SELECT sealstore.authenticate(%s)", (world["tenants"][1]["keys"]["r"],))
        assert sqlstate(conn, explain) == "42501"
        # Through a prepared statement and from inside a function too.
        conn.execute("SELECT sealstore.authenticate(%s)", (world["tenants"][1]["keys"]["r"],))
        conn.execute("PREPARE q AS SELECT * FROM public.shared_rows")
        assert sqlstate(conn, "EXPLAIN ANALYZE EXECUTE q") == "42501"
        conn.execute("SELECT sealstore.authenticate(%s)", (world["tenants"][1]["keys"]["r"],))
        assert sqlstate(conn, "DO $$ DECLARE r record; BEGIN FOR r IN EXECUTE "
                              "'EXPLAIN ANALYZE SELECT * FROM public.shared_rows' LOOP END LOOP; END $$") == "42501"
        # A statement on tables without a policy still explains.
        conn.execute("SELECT sealstore.authenticate(%s)", (world["tenants"][1]["keys"]["r"],))
        conn.execute("EXPLAIN ANALYZE SELECT * FROM generate_series(1, 3)")
        # And the query itself runs, seeing this tenant's rows only.
        assert conn.execute("SELECT count(*) FROM public.shared_rows").fetchone()[0] == 50


def test_a_role_that_sees_every_row_may_still_explain(admin_url, shared_table):
    with psycopg.connect(admin_url) as su:
        plan = su.execute("EXPLAIN (ANALYZE, FORMAT JSON) SELECT * FROM public.shared_rows").fetchone()[0]
        assert plan[0]["Plan"]["Actual Rows"] == 100


def test_activity_statistics_are_not_readable_by_applications(app_url, world):
    with psycopg.connect(app_url) as conn:
        for sql in ("SELECT n_tup_ins FROM pg_stat_user_tables",
                    "SELECT * FROM pg_stat_all_tables WHERE relname = 'secrets'",
                    "SELECT * FROM pg_statio_user_tables",
                    "SELECT * FROM pg_stat_xact_user_tables",
                    "SELECT pg_stat_get_tuples_inserted('sealstore.secrets'::regclass)",
                    "SELECT pg_stat_get_live_tuples('sealstore.documents'::regclass)"):
            assert sqlstate(conn, sql) == "42501", sql


def test_isolation_report_names_unique_indexes_without_the_tenant_column(admin_url, shared_table):
    with psycopg.connect(admin_url) as su:
        rows = su.execute("SELECT severity, object, problem FROM sealstore.isolation_report() "
                          "WHERE object LIKE 'public.shared_rows%'").fetchall()
    assert ("warning", "public.shared_rows_email", "unique index without the tenant column") in rows, rows


# --- 9. scopes, JWT keys bound to a tenant and to admin, /metrics, one spelling per tenant ----

@pytest.mark.parametrize("key, sql, state", [
    ("w", "SELECT sealstore.decrypt_text(%(ct)s, 'ctx')", "42501"),
    ("w", "SELECT sealstore.decrypt(%(ct)s, 'ctx')", "42501"),
    ("r", "SELECT sealstore.encrypt_text('x', 'ctx')", "42501"),
    ("r", "SELECT sealstore.encrypt('x'::bytea, 'ctx')", "42501"),
    ("r", "SELECT sealstore.reencrypt(%(ct)s, 'ctx')", "42501"),
    ("w", "SELECT sealstore.reencrypt(%(ct)s, 'ctx')", "42501"),
    ("r", "SELECT sealstore.blind_index('x', 'ctx')", None),
    ("w", "SELECT sealstore.blind_index('x', 'ctx')", None),
    ("r", "SELECT sealstore.decrypt_text(%(ct)s, 'ctx')", None),
    ("w", "SELECT sealstore.encrypt_text('x', 'ctx')", None),
    ("rw", "SELECT sealstore.reencrypt(%(ct)s, 'ctx')", None),
])
def test_encryption_functions_honour_scopes(app_url, world, victim_data, key, sql, state):
    v = world["tenants"][0]
    with psycopg.connect(app_url) as conn:
        conn.execute("SELECT sealstore.authenticate(%s)", (v["keys"][key],))
        params = {"ct": victim_data["ct"]} if "%(ct)s" in sql else ()
        assert sqlstate(conn, sql, params) == state


def test_a_tenant_bound_jwt_key_issues_tokens_for_its_tenant_only(app_url, admin_url, world):
    mine, other = world["tenants"][1]["id"], world["tenants"][0]["id"]
    kid, secret = f"idp-{secrets.token_hex(4)}", secrets.token_hex(32)
    with psycopg.connect(admin_url, autocommit=True) as su:
        su.execute("SET log_statement = 'none'")
        su.execute("SELECT sealstore.add_jwt_key(%s, 'HS256', %s, tenant => %s)", (kid, secret, mine))
    cases = {
        "its tenant": (mint(secret, kid, tenant=mine, scope="read"), None),
        "another tenant": (mint(secret, kid, tenant=other, scope="read"), "28P01"),
        "a global admin": (mint(secret, kid, scope="admin"), "28P01"),
        "its tenant's admin": (mint(secret, kid, tenant=mine, scope="admin read"), "28P01"),
        "its tenant, upper-case": (mint(secret, kid, tenant=mine.upper(), scope="read"), "28P01"),
    }
    with psycopg.connect(app_url) as conn:
        for case, (token, state) in cases.items():
            assert sqlstate(conn, "SELECT sealstore.authenticate(%s)", (token,)) == state, case


def test_only_keys_registered_for_it_issue_admin_tokens(app_url, admin_url, world):
    kid, secret = f"noadm-{secrets.token_hex(4)}", secrets.token_hex(32)
    with psycopg.connect(admin_url, autocommit=True) as su:
        su.execute("SET log_statement = 'none'")
        su.execute("SELECT sealstore.add_jwt_key(%s, 'HS256', %s)", (kid, secret))
        audit = su.execute("SELECT detail FROM sealstore.audit_log WHERE action = 'add_jwt_key' "
                           "ORDER BY id DESC LIMIT 1").fetchone()[0]
        assert audit["kid"] == kid and audit["admin"] is False
    with psycopg.connect(app_url) as conn:
        assert sqlstate(conn, "SELECT sealstore.authenticate(%s)", (mint(secret, kid, scope="admin"),)) == "28P01"
        t = world["tenants"][1]["id"]
        assert sqlstate(conn, "SELECT sealstore.authenticate(%s)",
                        (mint(secret, kid, tenant=t, scope="admin"),)) == "28P01"
        assert sqlstate(conn, "SELECT sealstore.authenticate(%s)",
                        (mint(secret, kid, tenant=t, scope="read write"),)) is None


def test_metrics_need_an_admin_credential_that_names_no_tenant(gateway, world):
    tenant_admin = Api(gateway.url, world["tenants"][1]["keys"]["adm"])
    assert_error(tenant_admin("GET", "/metrics"), 403, "forbidden")
    global_admin = Api(gateway.url, mint(world["secret"], world["kid"], scope="admin"))
    r = global_admin("GET", "/metrics")
    assert r.status_code == 200 and "sealstore_gateway_http_requests" in r.text
