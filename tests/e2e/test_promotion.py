"""Failover: a primary with a synchronous hot standby, writes through the gateway, the primary
killed (immediate shutdown), the standby promoted and a gateway pointed at it by configuration.
Every write the gateway acknowledged is there, readable with the same master key."""
import re
import secrets
import shutil
import threading
import time

import psycopg

import keys
from clients import Api, mint
from harness import Cluster, Gateway, wait_until

STANDBY_NAME = "promo_standby"


def test_no_acknowledged_write_is_lost_when_the_standby_takes_over():
    key = keys.new_key_hex()
    primary = Cluster("promo-primary")
    standby = Cluster("promo-standby")
    gateways = []
    try:
        primary.configure(master_key_file=str(primary.write_private("master.key", key)))
        primary.restart()
        admin, gateway_url, _ = primary.prepare_database()

        # The standby: a base backup of the primary, streaming under a name the primary waits for.
        standby.stop()
        shutil.rmtree(standby.data)
        standby.as_user(["env", f"PGPASSWORD={primary.password}", standby.bindir / "pg_basebackup",
                         "-h", "127.0.0.1", "-p", str(primary.port), "-U", "postgres",
                         "-D", standby.data, "-R", "-X", "stream", "-c", "fast"])
        auto = standby.data / "postgresql.auto.conf"
        text = re.sub(r"(?m)^sealstore\.master_key_file = .*$", "", auto.read_text())
        text += (f"sealstore.master_key_file = '{standby.write_private('master.key', key)}'\n"
                 f"primary_conninfo = 'host=127.0.0.1 port={primary.port} user=postgres "
                 f"password={primary.password} application_name={STANDBY_NAME}'\n")
        auto.write_text(text)
        standby.chown(auto)
        standby.restart()
        with psycopg.connect(primary.url(db="sealstore"), autocommit=True) as su:
            assert wait_until(lambda: su.execute(
                "SELECT count(*) FROM pg_stat_replication WHERE application_name = %s",
                (STANDBY_NAME,)).fetchone()[0] == 1, 30), standby.server_log()
            # Commits wait for the standby to have the WAL on disk.
            su.execute(f"ALTER SYSTEM SET synchronous_standby_names = '{STANDBY_NAME}'")
            su.execute("ALTER SYSTEM SET synchronous_commit = 'on'")
            su.execute("SELECT pg_reload_conf()")
            assert wait_until(lambda: su.execute(
                "SELECT sync_state FROM pg_stat_replication WHERE application_name = %s",
                (STANDBY_NAME,)).fetchone()[0] == "sync", 30)
            kid, secret = "promo-" + secrets.token_hex(4), secrets.token_hex(32)
            su.execute("SET log_statement = 'none'")
            su.execute("SELECT sealstore.add_jwt_key(%s, 'HS256', %s, admin => true)", (kid, secret))
        standby_gateway_url = gateway_url.replace(f":{primary.port}/", f":{standby.port}/")

        gw = Gateway(gateway_url, extra_env={"SEALSTORE_DB_REPLICA_URLS": standby_gateway_url})
        gateways.append(gw)
        admin_api = Api(gw.url, mint(secret, kid, scope="admin", sub="ops"))
        r = admin_api("POST", "/v1/tenants", {"name": "promo"})
        assert r.status_code == 201, r.text
        r = admin_api("POST", f"/v1/tenants/{r.json()['id']}/api-keys",
                      {"name": "w", "scopes": ["read", "write"]})
        assert r.status_code == 201, r.text
        api = Api(gw.url, r.json()["key"])

        acked, failed, stop = {}, [], threading.Event()

        def writer(w):
            i = 0
            while not stop.is_set():
                name, value = f"w{w}-{i}", secrets.token_hex(8)
                try:
                    status = api("PUT", f"/v1/secrets/{name}", {"value": value}).status_code
                except Exception:  # the gateway's answer may be cut off by the crash
                    status = None
                if status == 204:
                    acked[name] = value
                else:
                    failed.append(status)
                i += 1

        threads = [threading.Thread(target=writer, args=(w,)) for w in range(4)]
        for t in threads:
            t.start()
        time.sleep(1.5)
        primary.stop("immediate")
        time.sleep(0.5)
        stop.set()
        for t in threads:
            t.join(30)
        assert len(acked) > 20, (len(acked), failed[:5])
        assert failed, "the writes went on after the primary stopped"

        standby.as_user([standby.bindir / "pg_ctl", "-D", standby.data, "-w", "promote"])
        gw2 = Gateway(standby_gateway_url)
        gateways.append(gw2)
        api2 = Api(gw2.url, api.token)
        lost = [n for n, v in acked.items()
                if (r := api2("GET", f"/v1/secrets/{n}")).status_code != 200 or r.json()["value"] != v]
        assert not lost, f"{len(lost)} of {len(acked)} acknowledged writes lost"
        assert api2("PUT", "/v1/secrets/after", {"value": "x"}).status_code == 204
        print(f"failover: {len(acked)} acknowledged writes all on the promoted standby; "
              f"{len(failed)} refused while the primary was down")
    finally:
        for g in gateways:
            g.stop()
        standby.destroy()
        primary.destroy()
