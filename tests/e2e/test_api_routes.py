"""Every v1 route through the real gateway and database: round trips, the admin routes, the
metrics route, the OpenAPI document against the served routes, metadata numbers kept exactly."""
import secrets
import uuid

import pytest
import requests

from clients import assert_error, assert_security_headers

DIMS = 4


def test_every_tenant_route_round_trips(tenants):
    a = tenants[0]["api"]
    coll = f"c-{secrets.token_hex(3)}"
    r = a("POST", "/v1/collections", {"name": coll, "dims": DIMS, "metric": "l2", "encrypt_embeddings": True})
    assert r.status_code == 201, r.text
    assert r.json()["name"] == coll and r.json()["metric"] == "l2" and r.json()["encrypt_embeddings"] is True
    assert_error(a("POST", "/v1/collections", {"name": coll, "dims": DIMS}), 409, "conflict")
    ids = []
    for n in range(5):
        r = a("POST", f"/v1/collections/{coll}/documents",
              {"content": f"doc {n} ünïcode ✓", "embedding": [n, 0, 0, 0], "metadata": {"n": n, "odd": n % 2 == 1}})
        assert r.status_code == 201, r.text
        ids.append(r.json()["id"])
    r = a("GET", f"/v1/documents/{ids[2]}")
    assert r.status_code == 200
    assert r.json() == {"id": ids[2], "collection": coll, "content": "doc 2 ünïcode ✓", "metadata": {"n": 2, "odd": False}}
    assert_security_headers(r)
    r = a("POST", f"/v1/collections/{coll}/search", {"vector": [2.2, 0, 0, 0], "k": 3})
    assert r.status_code == 200, r.text
    res = r.json()["results"]
    assert [x["id"] for x in res] == [ids[2], ids[3], ids[1]]
    assert res[0]["distance"] == pytest.approx(0.2, abs=1e-6)
    r = a("POST", f"/v1/collections/{coll}/search", {"vector": [2.2, 0, 0, 0], "filter": {"odd": True}})
    assert [x["id"] for x in r.json()["results"]] == [ids[3], ids[1]]
    # Cosine with a zero vector is undefined: null, never the string "NaN".
    zero = f"zero-{secrets.token_hex(3)}"
    assert a("POST", "/v1/collections", {"name": zero, "dims": 2}).status_code == 201
    a("POST", f"/v1/collections/{zero}/documents", {"content": "z", "embedding": [0, 0]})
    r = a("POST", f"/v1/collections/{zero}/search", {"vector": [1, 0]})
    assert r.status_code == 200 and [x["distance"] for x in r.json()["results"]] == [None], r.text
    # Default k (10), and an empty result set is a list.
    r = a("POST", f"/v1/collections/{coll}/search", {"vector": [0, 0, 0, 0], "filter": {"n": 99}})
    assert r.json() == {"results": []}
    assert a("DELETE", f"/v1/documents/{ids[0]}").status_code == 204
    assert_error(a("DELETE", f"/v1/documents/{ids[0]}"), 404, "not_found")
    assert_error(a("GET", f"/v1/documents/{ids[0]}"), 404, "not_found")
    # Secrets.
    assert a("PUT", "/v1/secrets/db-password", {"value": "hunter2 🔑"}).status_code == 204
    r = a("GET", "/v1/secrets/db-password")
    assert r.status_code == 200 and r.json() == {"name": "db-password", "value": "hunter2 🔑"}
    assert a("PUT", "/v1/secrets/db-password", {"value": "v2"}).status_code == 204
    assert a("GET", "/v1/secrets/db-password").json()["value"] == "v2"
    assert a("DELETE", "/v1/secrets/db-password").status_code == 204
    assert_error(a("GET", "/v1/secrets/db-password"), 404, "not_found")
    assert_error(a("DELETE", "/v1/secrets/db-password"), 404, "not_found")
    # Names are percent-decoded path segments.
    assert a("PUT", "/v1/secrets/with%20space%2Fslash", {"value": "x"}).status_code == 204
    assert a("GET", "/v1/secrets/with%20space%2Fslash").json()["name"] == "with space/slash"


def test_admin_routes(admin, tenants, hs):
    t = tenants[1]
    r = admin("POST", f"/v1/tenants/{t['id']}/rotate-key")
    assert r.status_code == 200 and r.json() == {"version": 2}
    # Data written before rotation still reads; new keys still work.
    api = t["api"]
    assert api("PUT", "/v1/secrets/after-rotation", {"value": "ok"}).status_code == 204
    assert api("GET", "/v1/secrets/after-rotation").json()["value"] == "ok"
    # Revoke: the key stops working at once.
    extra = admin("POST", f"/v1/tenants/{t['id']}/api-keys", {"name": "temp", "scopes": ["read"]}).json()
    assert api.as_(extra["key"])("GET", "/v1/secrets/after-rotation").status_code == 200
    assert admin("DELETE", f"/v1/api-keys/{extra['id']}").status_code == 204
    assert_error(api.as_(extra["key"])("GET", "/v1/secrets/after-rotation"), 401, "unauthorized")
    assert_error(admin("DELETE", f"/v1/api-keys/{extra['id']}"), 404, "not_found")
    # Bad admin input.
    assert_error(admin("POST", "/v1/tenants", {"name": "x", "algorithm": "rot13"}), 400, "invalid_request")
    assert_error(admin("POST", f"/v1/tenants/{t['id']}/api-keys", {"name": "k", "scopes": ["root"]}),
                 400, "invalid_request")
    assert_error(admin("POST", f"/v1/tenants/{uuid.uuid4()}/rotate-key"), 404, "not_found")
    # Shredding (on a tenant of its own): data and keys are gone, its API keys die.
    r = admin("POST", "/v1/tenants", {"name": "doomed"})
    doomed = r.json()["id"]
    key = admin("POST", f"/v1/tenants/{doomed}/api-keys", {"name": "k", "scopes": ["read", "write"]}).json()["key"]
    assert admin.as_(key)("PUT", "/v1/secrets/s", {"value": "v"}).status_code == 204
    assert admin("DELETE", f"/v1/tenants/{doomed}").status_code == 204
    assert_error(admin.as_(key)("GET", "/v1/secrets/s"), 401, "unauthorized")


def test_metrics_need_admin(gw, admin, tenants):
    assert_error(requests.get(f"{gw.url}/metrics", timeout=5), 401, "unauthorized")
    assert_error(admin("GET", "/metrics", token=tenants[0]["keys"]["r"]["key"]), 403, "forbidden")
    r = admin("GET", "/metrics")
    assert r.status_code == 200, r.text
    assert r.headers["Content-Type"].startswith("text/plain")
    text = r.text
    assert 'sealstore_gateway_http_requests_total{route="/v1/secrets/{name}",method="GET",status="404"}' in text
    assert "sealstore_gateway_http_request_duration_seconds_bucket" in text
    assert "sealstore_gateway_db_pool_size" in text
    assert "sealstore_gateway_auth_failures_total" in text
    # Labels are templates: no ids, no secret names.
    assert "/v1/secrets/matrix" not in text and tenants[0]["id"] not in text


def test_openapi_document_matches_the_routes(gw, admin):
    doc = requests.get(f"{gw.url}/openapi.json", timeout=5).json()
    assert doc["openapi"].startswith("3.1")
    for path, item in doc["paths"].items():
        concrete = path.replace("{name}", "x").replace("{id}", str(uuid.uuid4()))
        for method in item:
            r = admin(method.upper(), concrete)
            # The route exists: whatever the answer, it is not "no such route" or 405.
            assert r.status_code != 405, (method, path)
            if r.status_code == 404:
                assert r.json()["error"]["message"] != "no such route", (method, path)
            assert str(r.status_code) in item[method]["responses"], (method, path, r.status_code)
    assert requests.get(f"{gw.url}/v1/undocumented", timeout=5).json()["error"]["message"] == "no such route"


def test_metadata_numbers_pass_through_exactly(tenants):
    """Found by schemathesis: metadata holding -1.7976931348623157e308 made the extension fail
    (500), because jsonb prints it with 309 digits and an f64 parser refused them. jsonb holds
    any JSON number exactly; the gateway and the extension now pass metadata and filters
    through without rounding them."""
    a = tenants[0]["api"]
    coll = f"exact-{secrets.token_hex(3)}"
    assert a("POST", "/v1/collections", {"name": coll, "dims": DIMS}).status_code == 201
    raw = ('{"content": "exact", "embedding": [1, 2, 3, 4], "metadata": {"min": -1.7976931348623157e308, '
           '"big": 1e400, "precise": 0.1000000000000000055511151231257827, '
           '"int": 123456789012345678901234567890, "tiny": -1.913967336840789e-287}}')
    r = a("POST", f"/v1/collections/{coll}/documents", data=raw.encode(),
          headers={"Content-Type": "application/json"})
    assert r.status_code == 201, r.text
    doc = r.json()["id"]
    text = a("GET", f"/v1/documents/{doc}").text
    assert '"precise": 0.1000000000000000055511151231257827' in text
    assert '"int": 123456789012345678901234567890' in text
    assert '"big": 1' + "0" * 400 in text
    r = a("POST", f"/v1/collections/{coll}/search", data=b'{"vector": [1, 2, 3, 4], '
          b'"filter": {"int": 123456789012345678901234567890}}', headers={"Content-Type": "application/json"})
    assert r.status_code == 200 and [x["id"] for x in r.json()["results"]] == [doc]
    r = a("POST", f"/v1/collections/{coll}/search", data=b'{"vector": [1, 2, 3, 4], '
          b'"filter": {"int": 123456789012345678901234567891}}', headers={"Content-Type": "application/json"})
    assert r.status_code == 200 and r.json()["results"] == []
    # Not an object, or text PostgreSQL cannot hold: 400, never 500.
    for body in ['{"content": "x", "embedding": [1, 2, 3, 4], "metadata": null}',
                 '{"content": "x", "embedding": [1, 2, 3, 4], "metadata": [1]}',
                 '{"content": "x", "embedding": [1, 2, 3, 4], "metadata": {"k": "\\u0000"}}',
                 '{"content": "\\u0000", "embedding": [1, 2, 3, 4]}']:
        r = a("POST", f"/v1/collections/{coll}/documents", data=body.encode(),
              headers={"Content-Type": "application/json"})
        assert r.status_code == 400, (body, r.status_code, r.text)
    assert a("PUT", "/v1/secrets/nul", {"value": "a\u0000b"}).status_code == 400
