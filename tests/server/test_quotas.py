"""Quotas: a request rate and an upload count per API key (per address without keys),
answered with 429 + ``Retry-After``; uploads over a limit with 413."""

from __future__ import annotations

import httpx
import pytest

from mmrag.config import ServerSettings
from mmrag.server import KeyStore, create_app
from mmrag.server.quotas import Quotas, TokenBucket
from tests.server.conftest import FAST, serve_in_thread, wait_for_job

MD = b"# Owls\n\nBarn owls hunt at night over meadows.\n"


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_token_bucket_refills_at_its_rate():
    bucket = TokenBucket(rate=2.0, capacity=4, tokens=4, stamp=0.0)
    assert [bucket.take(1, 0.0) for _ in range(4)] == [0.0] * 4
    assert bucket.take(1, 0.0) == pytest.approx(0.5)  # one token in half a second
    assert bucket.take(1, 0.5) == 0.0
    assert bucket.take(3, 10.0, dry=True) == 0.0 and bucket.tokens == 4  # capped, untaken


def test_quotas_refuse_with_429_and_retry_after():
    clock = Clock()
    quotas = Quotas(ServerSettings(rate_limit=0.5, rate_burst=2), clock=clock)
    quotas.request("a")
    quotas.request("a")
    with pytest.raises(Exception) as refused:
        quotas.request("a")
    assert refused.value.status == 429 and refused.value.code == "rate_limited"
    assert refused.value.headers == {"Retry-After": "2"}
    quotas.request("b")  # another caller has a bucket of its own
    clock.now += 2
    quotas.request("a")


def test_quotas_are_off_by_default():
    quotas = Quotas(ServerSettings())
    for _ in range(1000):
        quotas.request("a")
        quotas.files("a", 100)


def test_upload_quota_413_when_one_request_can_never_fit():
    quotas = Quotas(ServerSettings(max_files_per_hour=5), clock=Clock())
    with pytest.raises(Exception) as refused:
        quotas.files("a", 6)
    assert refused.value.status == 413 and refused.value.code == "too_many_files"


@pytest.fixture(scope="module")
def limited(tmp_path_factory):
    """A keyed server: 3 requests at once, then one each 100 s (so a slow machine cannot
    refill a token mid-test); 3 files an hour."""
    data = tmp_path_factory.mktemp("quotas")
    store = KeyStore(data)
    keys = {name: store.create("admin", None, name)[0] for name in ("one", "two")}
    settings = ServerSettings(rate_limit=0.01, rate_burst=3, max_files_per_hour=3)
    with serve_in_thread(create_app(data=data, server=settings, **FAST)) as url:
        yield url, keys


def _client(url: str, key: str | None) -> httpx.Client:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return httpx.Client(base_url=url, timeout=60, headers=headers)


def _assert_429(resp: httpx.Response) -> None:
    assert resp.status_code == 429, resp.text
    assert resp.json()["error"]["code"] == "rate_limited"
    assert resp.json()["error"]["type"] == "rate_limit_error"
    assert int(resp.headers["retry-after"]) >= 1
    assert "\n" not in resp.json()["error"]["message"]


def test_a_key_over_its_rate_gets_429_with_retry_after(limited):
    url, keys = limited
    with _client(url, keys["one"]) as one, _client(url, keys["two"]) as two:
        answers = [one.get("/collections").status_code for _ in range(3)]
        assert answers == [200] * 3
        resp = one.get("/collections")
        _assert_429(resp)
        assert 90 <= int(resp.headers["retry-after"]) <= 100  # a token each 100 s
        assert two.get("/collections").status_code == 200  # the other key is not slowed
        assert one.get("/health").status_code == 200  # probes are never limited


def test_wrong_keys_are_throttled_by_address(limited):
    url, _ = limited
    with _client(url, "mmrag_guess") as guesser:
        codes = [guesser.get("/collections").status_code for _ in range(4)]
    assert codes[:3] == [401] * 3 and codes[3] == 429


def test_upload_quota_per_key(tmp_path):
    data = tmp_path / "data"
    store = KeyStore(data)
    keys = {name: store.create("admin", None, name)[0] for name in ("one", "two")}
    settings = ServerSettings(max_files_per_hour=3)
    with serve_in_thread(create_app(data=data, server=settings, **FAST)) as url, \
            _client(url, keys["one"]) as one, _client(url, keys["two"]) as two:
        assert one.put("/collections/q").status_code == 201

        def post(client: httpx.Client, n: int) -> httpx.Response:
            return client.post("/collections/q/items", files=[
                ("files", (f"{i}.md", MD + str(i).encode(), "text/plain")) for i in range(n)])

        first = post(one, 2)
        assert first.status_code == 202, first.text
        wait_for_job(one, first.json()["status_url"])
        over = post(one, 2)  # 1 left of 3 this hour
        _assert_429(over)
        assert 1000 < int(over.headers["retry-after"]) <= 1200  # a token each 1200 s
        assert post(one, 1).status_code == 202  # what is left is still usable
        _assert_429(post(one, 1))  # empty: refused before the body is read
        never = post(two, 4)
        assert never.status_code == 413 and never.json()["error"]["code"] == "too_many_files"
        assert post(two, 3).status_code == 202  # the other key has its own quota
