"""The change feed, GET /v1/events, through a real gateway and database: a tenant hears only its
own changes under a mixed load of two tenants, streams end at once when their credential is
revoked (by an administrator, by itself, an API key) or expires, a resume with Last-Event-ID
after a gateway restart loses nothing and repeats nothing, a resume from before the retention
window gets a clear error event, tampered and foreign event ids are refused, a subscriber that
does not read is disconnected with its memory bounded, and a thousand subscribers cost the
database no more reads per change than one."""
import asyncio
import json
import os
import secrets
import socket
import time

import aiohttp
import psycopg
import pytest
import requests
from clients import Api, assert_error, mint
from harness import Gateway, wait_until

# Generated requests and a thousand subscriptions would trip the limits meant for attackers.
UNLIMITED = {"SEALSTORE_RATE_PER_IP": "1000000", "SEALSTORE_RATE_PER_KEY": "1000000",
             "SEALSTORE_EVENTS_HEARTBEAT_SECS": "1"}
DIMS = 3


@pytest.fixture(scope="module")
def feed_gw(gateway_pg_url):
    g = Gateway(gateway_pg_url, UNLIMITED)
    yield g
    g.stop()


@pytest.fixture(scope="module")
def world(feed_gw, tenants, hs):
    """Each tenant with a collection of its own (one name for both: names are per tenant)."""
    coll = f"feed_{secrets.token_hex(3)}"
    for t in tenants:
        r = Api(feed_gw.url, t["keys"]["rw"]["key"])("POST", "/v1/collections", {"name": coll, "dims": DIMS})
        assert r.status_code == 201, r.text
    return {"coll": coll, "tenants": tenants, "hs": hs,
            "admin_token": mint(hs[1], hs[0], ttl=3600, scope="admin", sub="ops")}


def jwt_for(world, tenant, ttl=300, **claims):
    kid, secret = world["hs"]
    return mint(secret, kid, ttl=ttl, tenant=tenant["id"], scope="read write", **claims)


class Stream:
    """One subscriber: the events (dicts of id, event, data) and comments of an SSE response."""

    def __init__(self, resp):
        self.resp = resp
        self.comments = []

    async def next(self, timeout=10.0):
        """The next event, or None when the stream ends."""
        fields, deadline = {}, time.monotonic() + timeout
        while True:
            # One deadline for the event: heartbeats must not keep a wait alive.
            line = await asyncio.wait_for(self.resp.content.readline(), max(0.01, deadline - time.monotonic()))
            if not line:
                return None
            line = line.decode().rstrip("\n")
            if not line:
                if fields:
                    if "data" in fields:
                        fields["data"] = json.loads(fields["data"])
                    return fields
                continue
            if line.startswith(":"):
                self.comments.append(line[1:].strip())
                continue
            name, _, value = line.partition(": ")
            fields[name] = value

    async def until(self, pred, timeout=20.0):
        """Events up to and including the first for which PRED holds."""
        got, deadline = [], time.monotonic() + timeout
        while True:
            e = await self.next(max(0.1, deadline - time.monotonic()))
            assert e is not None, f"stream ended after {got}"
            got.append(e)
            if pred(e):
                return got

    async def rest(self, timeout=10.0):
        """Every event until the stream ends."""
        got = []
        while (e := await self.next(timeout)) is not None:
            got.append(e)
        return got


async def subscribe(session, url, token, last_event_id=None, expect=200, live=True):
    """A subscription; unless LIVE is false (a stream that ends at once, with an error event),
    returned once the gateway says it is live."""
    headers = {"Authorization": f"Bearer {token}"}
    if last_event_id is not None:
        headers["Last-Event-ID"] = last_event_id
    resp = await session.get(f"{url}/v1/events", headers=headers, timeout=aiohttp.ClientTimeout(total=None))
    assert resp.status == expect, await resp.text()
    if expect != 200:
        return resp
    assert resp.headers["Content-Type"] == "text/event-stream"
    assert resp.headers["Cache-Control"] == "no-store"
    s = Stream(resp)
    if not live:
        return s
    # The stream is live once its first comment arrives.
    line = await asyncio.wait_for(resp.content.readline(), 10)
    assert line == b": subscribed\n", line
    return s


async def put(session, url, key, coll, n, **meta):
    r = await session.post(f"{url}/v1/collections/{coll}/documents",
                           headers={"Authorization": f"Bearer {key}"},
                           json={"content": f"secret content {n}", "embedding": [n, 1, 2],
                                 "metadata": {"n": n, **meta}})
    assert r.status == 201, await r.text()
    return (await r.json())["id"]


def run(coro):
    return asyncio.run(coro)


def test_a_tenant_hears_only_its_own_changes_under_a_mixed_load(feed_gw, world):
    a, b = world["tenants"]
    coll, url = world["coll"], feed_gw.url

    async def main():
        async with aiohttp.ClientSession() as s:
            subs_a = [await subscribe(s, url, a["keys"]["r"]["key"]), await subscribe(s, url, jwt_for(world, a))]
            sub_b = await subscribe(s, url, b["keys"]["rw"]["key"])

            async def writer(t, base):
                ids = []
                for i in range(40):
                    ids.append(await put(s, url, t["keys"]["rw"]["key"], coll, base + i, tenant=t["id"]))
                gone = ids[::5]
                for d in gone:
                    r = await s.delete(f"{url}/v1/documents/{d}",
                                       headers={"Authorization": f"Bearer {t['keys']['rw']['key']}"})
                    assert r.status == 204
                return ids, gone

            (ids_a, gone_a), (ids_b, gone_b) = await asyncio.gather(writer(a, 0), writer(b, 1000))
            for sub, ids, gone, mine in [(subs_a[0], ids_a, gone_a, a), (subs_a[1], ids_a, gone_a, a),
                                         (sub_b, ids_b, gone_b, b)]:
                last = gone[-1]
                events = await sub.until(lambda e: e["event"] == "document.deleted" and e["data"]["document"] == last)
                # A stream begins where the gateway's feed is, so it may also carry the
                # tenant's changes of a moment before (earlier tests, other collections).
                others = {*ids_a, *ids_b} - set(ids)
                assert not [e for e in events if e["data"].get("document") in others]
                events = [e for e in events if e["data"]["collection"] == coll]
                created = [e["data"]["document"] for e in events if e["event"] == "document.created"]
                deleted = [e["data"]["document"] for e in events if e["event"] == "document.deleted"]
                # Everything of its tenant, in commit order, once; nothing of the other.
                assert created == ids and deleted == gone
                assert all(e["data"]["metadata"]["tenant"] == mine["id"] for e in events)
                assert len({e["id"] for e in events}) == len(events)
                # Ids, collection, metadata and time: never content or embeddings.
                assert all(set(e["data"]) == {"type", "collection", "document", "metadata", "at"} for e in events)
                assert "secret content" not in json.dumps(events)
            for sub in [*subs_a, sub_b]:
                sub.resp.close()

    run(main())


def test_revoked_and_expired_credentials_are_disconnected_at_once(feed_gw, world, admin, admin_url):
    a, _ = world["tenants"]
    url = feed_gw.url
    jti = f"feed-{secrets.token_hex(6)}"
    by_admin = jwt_for(world, a, jti=jti)
    by_itself = jwt_for(world, a, jti=f"self-{secrets.token_hex(6)}")
    expiring = jwt_for(world, a, ttl=3)
    key = admin("POST", f"/v1/tenants/{a['id']}/api-keys", {"name": "feed-key", "scopes": ["read"]}).json()

    async def main():
        async with aiohttp.ClientSession() as s:
            keep = await subscribe(s, url, a["keys"]["r"]["key"])
            subs = {name: await subscribe(s, url, tok) for name, tok in
                    [("admin", by_admin), ("self", by_itself), ("expiring", expiring), ("key", key["key"])]}

            async def ended(name, code):
                started = time.monotonic()
                events = await subs[name].rest()
                assert events[-1]["event"] == "error" and events[-1]["data"]["error"]["code"] == code, events
                return time.monotonic() - started

            with psycopg.connect(admin_url, autocommit=True) as su:
                su.execute("SELECT sealstore.revoke_token(%s, now() + interval '1 hour')", (jti,))
            assert await ended("admin", "credential_revoked") < 3
            r = await s.post(f"{url}/v1/auth/revoke", headers={"Authorization": f"Bearer {by_itself}"})
            assert r.status == 204
            assert await ended("self", "credential_revoked") < 3
            assert admin("DELETE", f"/v1/api-keys/{key['id']}").status_code == 204
            assert await ended("key", "credential_revoked") < 3
            # The 3 s token's stream ends at its exp (within a second of it).
            await ended("expiring", "token_expired")
            # A refused credential cannot subscribe again.
            for tok in (by_admin, by_itself, key["key"]):
                resp = await subscribe(s, url, tok, expect=401)
                resp.close()
            # An expired token still within the servers' clock leeway gets a stream that ends
            # at once (its exp has passed); past the leeway, a 401.
            again = await s.get(f"{url}/v1/events", headers={"Authorization": f"Bearer {expiring}"})
            if again.status == 200:
                assert (await again.text()).endswith('"token_expired","message":"the credential has expired"}}\n\n')
            else:
                assert again.status == 401
            again.close()
            # The tenant's other stream goes on.
            doc = await put(s, url, a["keys"]["rw"]["key"], world["coll"], 7)
            await keep.until(lambda e: e.get("data", {}).get("document") == doc)
            keep.resp.close()

    run(main())


def test_a_resume_after_a_gateway_restart_loses_and_repeats_nothing(gateway_pg_url, world):
    a, b = world["tenants"]
    coll, key = world["coll"], a["keys"]["rw"]["key"]

    async def main():
        gw = Gateway(gateway_pg_url, UNLIMITED)
        try:
            async with aiohttp.ClientSession() as s:
                sub = await subscribe(s, gw.url, key)
                first = [await put(s, gw.url, key, coll, i) for i in range(5)]
                seen = await sub.until(lambda e: e["data"].get("document") == first[-1])
                # The stream is told to resume elsewhere when the gateway stops.
                gw.terminate()
                tail = await sub.rest()
                assert [e["event"] for e in tail] == ["error"] and tail[0]["data"]["error"]["code"] == "shutting_down"
        finally:
            gw.stop()
        # Written while no gateway runs (another client, straight to the database), by both tenants.
        gw = Gateway(gateway_pg_url, UNLIMITED)
        try:
            async with aiohttp.ClientSession() as s:
                other = Gateway(gateway_pg_url, UNLIMITED)
                try:
                    missed = [await put(s, other.url, key, coll, 100 + i) for i in range(30)]
                    await put(s, other.url, b["keys"]["rw"]["key"], coll, 999)
                finally:
                    other.stop()
                sub = await subscribe(s, gw.url, key, last_event_id=seen[-1]["id"])
                live = await put(s, gw.url, key, coll, 200)
                events = await sub.until(lambda e: e["data"].get("document") == live)
                assert [e["data"]["document"] for e in events] == [*missed, live]
                # The same id resumes the same way again; the newest one resumes with nothing missed.
                sub.resp.close()
                again = await subscribe(s, gw.url, key, last_event_id=seen[-1]["id"])
                assert [e["data"]["document"] for e in await again.until(
                    lambda e: e["data"].get("document") == live)] == [*missed, live]
                again.resp.close()
                newest = await subscribe(s, gw.url, key, last_event_id=events[-1]["id"])
                later = await put(s, gw.url, key, coll, 201)
                assert [e["data"]["document"] for e in await newest.until(
                    lambda e: e["data"].get("document") == later)] == [later]
                newest.resp.close()
        finally:
            gw.stop()

    run(main())


def test_event_ids_cannot_be_forged_or_used_by_another_tenant(feed_gw, world):
    a, b = world["tenants"]
    url = feed_gw.url

    async def main():
        async with aiohttp.ClientSession() as s:
            sub = await subscribe(s, url, a["keys"]["rw"]["key"])
            doc = await put(s, url, a["keys"]["rw"]["key"], world["coll"], 3)
            event = (await sub.until(lambda e: e["data"].get("document") == doc))[-1]
            sub.resp.close()
            good = event["id"]
            flipped = good[:10] + ("A" if good[10] != "A" else "B") + good[11:]
            for token, last in [(b["keys"]["rw"]["key"], good), (a["keys"]["rw"]["key"], flipped),
                                (a["keys"]["rw"]["key"], good[:-4]), (a["keys"]["rw"]["key"], "x" * 300),
                                (a["keys"]["rw"]["key"], "not-an-id"), (a["keys"]["rw"]["key"], "a b")]:
                r = requests.get(f"{url}/v1/events", timeout=10,
                                 headers={"Authorization": f"Bearer {token}", "Last-Event-ID": last})
                assert_error(r, 400, "invalid_request")
            # Without a credential, or without the read scope: refused before any stream.
            assert_error(requests.get(f"{url}/v1/events", timeout=10), 401, "unauthorized")
            r = requests.get(f"{url}/v1/events", timeout=10,
                             headers={"Authorization": f"Bearer {a['keys']['w']['key']}"})
            assert_error(r, 403, "forbidden")

    run(main())


def test_a_resume_from_before_the_retention_window_gets_an_error_event(feed_gw, world, admin_url):
    a, _ = world["tenants"]
    url, key = feed_gw.url, a["keys"]["rw"]["key"]

    async def main():
        async with aiohttp.ClientSession() as s:
            sub = await subscribe(s, url, key)
            doc = await put(s, url, key, world["coll"], 5)
            old = (await sub.until(lambda e: e["data"].get("document") == doc))[-1]["id"]
            doc = await put(s, url, key, world["coll"], 6)
            last = (await sub.until(lambda e: e["data"].get("document") == doc))[-1]["id"]
            sub.resp.close()
            await asyncio.sleep(1.2)
            with psycopg.connect(admin_url, autocommit=True) as su:
                su.execute("SET sealstore.event_retention = 1")
                assert su.execute("SELECT sealstore.gateway_events_purge()").fetchone()[0] >= 2
            # The event after OLD is gone: resuming there would lose it.
            late = await subscribe(s, url, key, last_event_id=old, live=False)
            events = await late.rest()
            assert [e["event"] for e in events] == ["error"]
            assert events[0]["data"]["error"]["code"] == "resume_too_old"
            # Nothing after LAST was purged: that resume is whole and stays live.
            whole = await subscribe(s, url, key, last_event_id=last)
            doc = await put(s, url, key, world["coll"], 7)
            got = await whole.until(lambda e: e["data"].get("document") == doc)
            assert [e["data"]["document"] for e in got] == [doc]
            whole.resp.close()

    run(main())


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))


def test_a_subscriber_that_does_not_read_is_disconnected_with_memory_bounded(gateway_pg_url, world, admin_url):
    a, _ = world["tenants"]
    gw = Gateway(gateway_pg_url, {**UNLIMITED, "SEALSTORE_EVENTS_BUFFER": "16"})
    try:
        # A client with a small receive buffer that reads its response's head, then nothing.
        host, port = gw.addr.rsplit(":", 1)
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.connect((host, int(port)))
        sock.sendall(f"GET /v1/events HTTP/1.1\r\nHost: {gw.addr}\r\n"
                     f"Authorization: Bearer {a['keys']['r']['key']}\r\n\r\n".encode())
        head = b""
        while b": subscribed" not in head:
            head += sock.recv(1024)
        assert head.startswith(b"HTTP/1.1 200"), head
        before = rss_kib(gw.proc.pid)
        # 2,000 documents with 16 KB of metadata each, in one transaction: 32 MB of events.
        with psycopg.connect(admin_url, autocommit=True) as su:
            with su.transaction():
                su.execute("SELECT sealstore.act_as_tenant(%s)", (a["id"],))
                put = su.execute("SELECT count(sealstore.put_document(%s, 'c', '[1,2,3]', "
                                 "jsonb_build_object('n', i, 'pad', repeat('p', 16384))))"
                                 " FROM generate_series(1, 2000) i", (world["coll"],))
                assert put.fetchone()[0] == 2000
        metrics = Api(gw.url, world["admin_token"])
        feed = lambda: [m for m in metrics("GET", "/metrics").text.splitlines() if "_event" in m]
        assert wait_until(lambda: 'reason="too_slow"} 1' in "\n".join(feed()), 30), feed()
        grown = rss_kib(gw.proc.pid) - before
        # Bounded: a page of the feed and one subscriber's buffers, not the 32 MB it left unread.
        assert grown < 16 * 1024, f"gateway grew {grown} KiB"
        # What it reads now ends with the reason, short of the 2,000 events.
        sock.settimeout(30)
        rest = bytearray()
        while chunk := sock.recv(1 << 16):
            rest += chunk
            if b'"too_slow"' in rest[-4096:] and rest.endswith(b"0\r\n\r\n"):
                break
        sock.close()
        assert rest.count(b"event: document.created") < 2000
        assert b"event: error" in rest and b'"too_slow"' in rest
        assert 'sealstore_gateway_event_subscribers 0' in metrics("GET", "/metrics").text
    finally:
        gw.stop()


def local_ports(pid):
    """The local TCP ports of process PID's sockets."""
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    ports = set()
    for table in ("tcp", "tcp6"):
        with open(f"/proc/{pid}/net/{table}") as f:
            for line in list(f)[1:]:
                cols = line.split()
                if cols[9] in inodes:
                    ports.add(int(cols[1].rsplit(":", 1)[1], 16))
    return ports


def test_a_thousand_subscribers_cost_the_database_no_read_each(gateway_pg_url, world, admin_url):
    a, b = world["tenants"]
    gw = Gateway(gateway_pg_url, UNLIMITED)
    n = 1000

    def event_reads(su):
        return su.execute("SELECT seq_scan + coalesce(idx_scan, 0) FROM pg_stat_user_tables "
                          "WHERE schemaname = 'sealstore' AND relname = 'events'").fetchone()[0]

    async def main():
        conn = aiohttp.TCPConnector(limit=0)
        async with aiohttp.ClientSession(connector=conn) as s:
            subs = []
            for start in range(0, n, 100):
                subs += await asyncio.gather(*[
                    subscribe(s, gw.url, (a if i % 2 == 0 else b)["keys"]["r"]["key"])
                    for i in range(start, start + 100)])
            with psycopg.connect(admin_url, autocommit=True) as su:
                su.execute("SELECT pg_stat_force_next_flush()")
                reads_before = event_reads(su)
                started = time.monotonic()
                doc_a = await put(s, gw.url, a["keys"]["rw"]["key"], world["coll"], 1)
                doc_b = await put(s, gw.url, b["keys"]["rw"]["key"], world["coll"], 2)
                got = await asyncio.gather(*[
                    sub.until(lambda e, d=(doc_a if i % 2 == 0 else doc_b): e["data"].get("document") == d)
                    for i, sub in enumerate(subs)])
                elapsed = time.monotonic() - started
                # Each backend flushes its statistics when idle, at most once a second, and the
                # listening one is rarely idle: wait for the feed's read to show, then a little.
                assert wait_until(lambda: event_reads(su) > reads_before, 30)
                time.sleep(2)
                reads = event_reads(su) - reads_before
                # This gateway's connections (its own sockets' ports): one of them listens.
                listening = su.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE application_name = "
                    "'sealstore-gateway-events' AND client_port = ANY(%s)",
                    (sorted(local_ports(gw.proc.pid)),)).fetchone()[0]
                assert listening == 1, listening
            for i, events in enumerate(got):
                assert [e["data"]["document"] for e in events] == [doc_a if i % 2 == 0 else doc_b]
            print(f"{n} subscribers: both events delivered to all in {elapsed * 1000:.0f} ms; "
                  f"{reads} reads of sealstore.events")
            # The reads of every gateway running (this one, the module's, the session's): their
            # feeds, purges and start-up reads, whose statistics may arrive late. Tens at most;
            # a read per subscriber would be a thousand.
            assert reads < 100, reads
            metrics = await s.get(f"{gw.url}/metrics", headers={"Authorization": f"Bearer {world['admin_token']}"})
            text = await metrics.text()
            assert f"sealstore_gateway_event_subscribers {n}" in text, text
            for sub in subs:
                sub.resp.close()

    try:
        run(main())
    finally:
        gw.stop()


def test_the_applications_role_cannot_read_the_whole_feed(app_url):
    calls = ["sealstore.gateway_events_read(0, 0, 10, NULL)", "sealstore.gateway_events_tail()",
             "sealstore.gateway_events_purge()", "sealstore.gateway_events_wait(0, 0, 1)",
             "sealstore.gateway_credentials_valid(ARRAY['x'])"]
    with psycopg.connect(app_url, autocommit=True) as app:
        for call in calls:
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                app.execute(f"SELECT * FROM {call}")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            app.execute("SELECT * FROM sealstore.events")
