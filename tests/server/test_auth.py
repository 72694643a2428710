"""API keys: hashed at rest; 401 without a valid key, 403 without the scope or collection;
loopback-only without keys; CORS off unless asked for."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from mmrag.config import ServerSettings
from mmrag.errors import ConfigError
from mmrag.server import KeyStore, create_app
from mmrag.server.app import check_exposure, is_loopback
from tests.server.conftest import FAST, serve_in_thread, wait_for_job

MD = b"# Owls\n\nBarn owls hunt at night over meadows.\n"
CLI = [sys.executable, "-m", "mmrag.cli"]


@pytest.fixture(scope="module")
def keyed(tmp_path_factory):
    """A keyed data server with collections a, b and default; yields (url, keys, ids)."""
    data = tmp_path_factory.mktemp("keyed")
    store = KeyStore(data)
    keys = {name: store.create(scope, cols, name)[0] for name, scope, cols in [
        ("admin", "admin", None), ("write_a", "write", ["a"]), ("read_a", "read", ["a"]),
        ("read_all", "read", None), ("admin_c", "admin", ["c"])]}
    app = create_app(data=data, **FAST)
    with serve_in_thread(app) as url, httpx.Client(base_url=url, timeout=60) as c:
        admin = {"Authorization": f"Bearer {keys['admin']}"}
        for name in ("a", "b", "default"):
            assert c.put(f"/collections/{name}", headers=admin).status_code == 201
            resp = c.post(f"/collections/{name}/items", headers=admin,
                          files=[("files", ("owls.md", MD, "text/plain"))])
            wait_for_job(_Keyed(c, admin), resp.json()["status_url"])
        hit = c.get("/collections/a/search", params={"q": "owls"}, headers=admin).json()
        ids = {"job": resp.json()["job_id"], "doc": hit["hits"][0]["doc_id"],
               "media": "a." + "0" * 64 + ".png"}
        yield c, keys, ids, data


class _Keyed:
    """An httpx client whose GETs carry a key (for ``wait_for_job``)."""

    def __init__(self, client: httpx.Client, headers: dict[str, str]):
        self.client, self.headers = client, headers

    def get(self, url: str) -> httpx.Response:
        return self.client.get(url, headers=self.headers)


def _call(c: httpx.Client, key: str | None, method: str, path: str, **kw) -> httpx.Response:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return c.request(method, path, headers=headers, **kw)


READ = [("GET", "/collections/a/search?q=owls", {}),
        ("POST", "/collections/a/search", {"json": {"q": "owls"}}),
        ("GET", "/collections/a/documents", {}),
        ("POST", "/collections/a/ask?stream=false", {"json": {"question": "owls"}})]
WRITE = [("POST", "/collections/a/items", {"json": {"urls": []}}),
         ("DELETE", "/collections/a/documents/0000000000000000", {})]
ADMIN = [("PUT", "/collections/a", {}), ("DELETE", "/collections/zz", {})]


@pytest.mark.parametrize(("method", "path", "kw"), READ + WRITE + ADMIN)
def test_no_key_or_a_wrong_key_is_401(keyed, method, path, kw):
    c, *_ = keyed
    for key in (None, "mmrag_wrong", ""):
        resp = _call(c, key, method, path, **kw)
        assert resp.status_code == 401, (key, resp.text)
        assert resp.json()["error"]["code"] == "unauthorized"
        assert resp.headers["www-authenticate"].startswith("Bearer")


@pytest.mark.parametrize(("key", "allowed"), [
    ("read_a", {"read"}), ("write_a", {"read", "write"}), ("admin", {"read", "write", "admin"}),
    ("read_all", {"read"}), ("admin_c", set())])
def test_scope_matrix_on_collection_a(keyed, key, allowed):
    c, keys, *_ = keyed
    for scope, routes in (("read", READ), ("write", WRITE), ("admin", ADMIN)):
        for method, path, kw in routes:
            resp = _call(c, keys[key], method, path, **kw)
            if scope in allowed:
                assert resp.status_code not in (401, 403), (key, path, resp.text)
            else:
                assert resp.status_code == 403, (key, method, path, resp.text)
                assert resp.json()["error"]["code"] == "forbidden"


def test_grants_are_per_collection(keyed):
    c, keys, ids, _ = keyed
    assert _call(c, keys["read_a"], "GET", "/collections/b/search?q=owls").status_code == 403
    assert _call(c, keys["write_a"], "POST", "/collections/b/items",
                 json={"urls": []}).status_code == 403
    listed = _call(c, keys["read_a"], "GET", "/collections").json()["collections"]
    assert [x["name"] for x in listed] == ["a"]
    every = _call(c, keys["read_all"], "GET", "/collections").json()["collections"]
    assert [x["name"] for x in every] == ["a", "b", "default"]
    made = _call(c, keys["admin_c"], "PUT", "/collections/c")
    assert made.status_code == 201
    assert _call(c, keys["admin_c"], "PUT", "/collections/d").status_code == 403


def test_jobs_and_media_check_their_collection(keyed):
    c, keys, ids, _ = keyed
    job = f"/jobs/{ids['job']}"  # the last job was on collection "default"
    assert _call(c, None, "GET", job).status_code == 401
    assert _call(c, keys["read_a"], "GET", job).status_code == 403
    assert _call(c, keys["read_all"], "GET", job).json()["status"] == "done"
    media = f"/media/{ids['media']}"
    assert _call(c, None, "GET", media).status_code == 401
    assert _call(c, keys["admin_c"], "GET", media).status_code == 403
    assert _call(c, keys["read_a"], "GET", media).status_code == 404  # allowed, not stored


def test_openai_route_needs_read_on_default(keyed):
    c, keys, *_ = keyed
    chat = {"model": "mmrag", "messages": [{"role": "user", "content": "barn owls"}]}
    assert _call(c, None, "POST", "/v1/chat/completions", json=chat).status_code == 401
    assert _call(c, keys["read_a"], "POST", "/v1/chat/completions", json=chat
                 ).status_code == 403
    ok = _call(c, keys["read_all"], "POST", "/v1/chat/completions", json=chat)
    assert ok.status_code == 200 and "owls" in ok.json()["choices"][0]["message"]["content"]


def test_open_routes_and_header_forms(keyed):
    c, keys, *_ = keyed
    assert c.get("/health").json()["auth"] is True
    assert c.get("/openapi.json").status_code == 200 and c.get("/docs").status_code == 200
    assert c.get("/metrics").status_code == 401
    assert c.get("/metrics", headers={"X-API-Key": keys["read_a"]}).status_code == 200
    lower = c.get("/collections/a/documents", headers={"authorization": f"bearer {keys['read_a']}"})
    assert lower.status_code == 200


def test_keys_are_stored_hashed_and_revocation_is_immediate(keyed):
    c, keys, _, data = keyed
    text = (data / "keys.json").read_text()
    assert all(key not in text for key in keys.values())
    assert oct((data / "keys.json").stat().st_mode & 0o777) == "0o600"
    store = KeyStore(data)
    token, record = store.create("read")
    assert _call(c, token, "GET", "/collections").status_code == 200
    assert store.revoke(record.id) and not store.revoke(record.id)
    assert _call(c, token, "GET", "/collections").status_code == 401


def test_a_corrupt_key_file_closes_the_server(tmp_path):
    (tmp_path / "keys.json").write_text("{not json")
    with TestClient(create_app(data=tmp_path, **FAST)) as c:
        resp = c.get("/collections")
    assert resp.status_code == 500 and resp.json()["error"]["code"] == "key_store_error"


def test_keys_cli_create_list_revoke(tmp_path):
    run = subprocess.run([*CLI, "keys", "create", "--scope", "write", "--collection", "a",
                          "--name", "ci", "--data", str(tmp_path)],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    token = run.stdout.strip()
    assert token.startswith("mmrag_") and "shown only now" in run.stderr
    assert KeyStore(tmp_path).find(token).collections == ("a",)
    listed = subprocess.run([*CLI, "keys", "list", "--json", "--data", str(tmp_path)],
                            capture_output=True, text=True, timeout=120)
    rows = json.loads(listed.stdout)
    assert [(r["scope"], r["collections"], r["name"]) for r in rows] == [("write", ["a"], "ci")]
    assert token not in listed.stdout and "hash" not in rows[0]
    revoke = subprocess.run([*CLI, "keys", "revoke", rows[0]["id"], "--data", str(tmp_path)],
                            capture_output=True, text=True, timeout=120)
    assert revoke.returncode == 0 and KeyStore(tmp_path).find(token) is None
    bad = subprocess.run([*CLI, "keys", "create", "--scope", "root", "--data", str(tmp_path)],
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode == 1 and "unknown scope 'root'" in bad.stderr
    assert "Traceback" not in bad.stderr


def test_without_keys_only_loopback_is_allowed(tmp_path):
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.4")
    store = KeyStore(tmp_path)
    check_exposure(store, "127.0.0.1", insecure=False)
    with pytest.raises(ConfigError, match="without API keys"):
        check_exposure(store, "0.0.0.0", insecure=False)
    check_exposure(store, "0.0.0.0", insecure=True)
    store.create("read")
    check_exposure(store, "0.0.0.0", insecure=False)
    run = subprocess.run([*CLI, "serve", "--data", str(tmp_path / "open"), "--host",
                          "0.0.0.0", "--port", "9"], capture_output=True, text=True, timeout=120)
    assert run.returncode == 1 and "refusing to listen on '0.0.0.0'" in run.stderr


def test_cors_is_off_unless_an_origin_is_allowed(tmp_path: Path):
    origin = {"Origin": "https://app.example"}
    with TestClient(create_app(data=tmp_path / "x", **FAST)) as c:
        resp = c.get("/health", headers=origin)
        assert "access-control-allow-origin" not in resp.headers
        pre = c.options("/collections", headers={**origin,
                                                 "Access-Control-Request-Method": "GET"})
        assert "access-control-allow-origin" not in pre.headers
    allowed = ServerSettings(cors_origins=["https://app.example"])
    with TestClient(create_app(data=tmp_path / "y", server=allowed, **FAST)) as c:
        resp = c.get("/health", headers=origin)
        assert resp.headers["access-control-allow-origin"] == "https://app.example"
        other = c.get("/health", headers={"Origin": "https://evil.example"})
        assert "access-control-allow-origin" not in other.headers
