"""fetch_url against a local http.server; nothing leaves 127.0.0.1."""

from __future__ import annotations

import ipaddress
import socket
import time

import httpx
import pytest

from mmrag.config import IngestSettings
from mmrag.errors import BlockedURLError, IngestError
from mmrag.ingest import fetch
from mmrag.ingest.fetch import blocked_reason, fetch_url
from mmrag.ingest.sources import resolve
from mmrag.types import Blob, Failure
from tests.factories import make_png, one_line, serve_directory

ALLOW = IngestSettings(allow_private_urls=True, url_timeout=5)


@pytest.fixture
def site(tmp_path):
    (tmp_path / "chart.png").write_bytes(make_png("red"))
    (tmp_path / "notes.md").write_text("# Notes\n\nbody")
    (tmp_path / "big.txt").write_bytes(b"z" * 5000)
    with serve_directory(tmp_path) as url:
        yield url


@pytest.fixture
def no_connect(monkeypatch):
    """Fail the test if anything tries to send a request."""
    def refuse(*args, **kw):
        raise AssertionError("a connection was attempted")
    monkeypatch.setattr(httpx.Client, "send", refuse)


def test_fetch_allowed_local(site):
    blob = fetch_url(f"{site}/chart.png", ALLOW)
    assert blob.uri == f"{site}/chart.png"
    assert blob.name == "chart.png" and blob.mime == "image/png"
    assert blob.data == make_png("red")
    assert site.requests == ["/chart.png"]


def test_default_settings_block_loopback_before_connecting(site):
    with pytest.raises(BlockedURLError) as err:
        fetch_url(f"{site}/chart.png", IngestSettings())
    msg = one_line(err.value)
    assert "127.0.0.1" in msg and "ingest.allow_private_urls" in msg
    assert site.requests == []


@pytest.mark.parametrize("url", ["http://10.0.0.1/x", "http://169.254.169.254/",
                                 "http://[::1]/x", "http://[::ffff:127.0.0.1]/x",
                                 "http://0.0.0.0/", "http://localhost/x",
                                 "http://100.64.0.1/"])
def test_private_addresses_blocked_without_connection(url, no_connect):
    start = time.monotonic()
    with pytest.raises(BlockedURLError) as err:
        fetch_url(url, IngestSettings(url_timeout=30))
    assert time.monotonic() - start < 5
    assert "refusing private/loopback address" in one_line(err.value)


def test_exact_block_message(no_connect):
    with pytest.raises(BlockedURLError) as err:
        fetch_url("http://10.0.0.1/x", IngestSettings())
    assert err.value.reason == ("refusing private/loopback address 10.0.0.1; "
                                "set ingest.allow_private_urls to allow")
    assert isinstance(err.value, IngestError)


def test_unreachable_port_is_one_line_error():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(IngestError) as err:
        fetch_url(f"http://127.0.0.1:{port}/x", ALLOW)
    assert not isinstance(err.value, BlockedURLError)
    assert "cannot connect" in one_line(err.value)


def test_http_404(site):
    with pytest.raises(IngestError) as err:
        fetch_url(f"{site}/missing.pdf", ALLOW)
    assert "HTTP 404" in one_line(err.value)


def test_dns_failure():
    with pytest.raises(IngestError) as err:
        fetch_url("http://no-such-host.invalid/x", ALLOW)
    assert "cannot resolve" in one_line(err.value)


def test_bad_scheme_and_size_cap(site):
    with pytest.raises(IngestError, match="scheme"):
        fetch_url("ftp://127.0.0.1/x", ALLOW)
    small = IngestSettings(allow_private_urls=True, max_bytes=1000)
    with pytest.raises(IngestError) as err:
        fetch_url(f"{site}/big.txt", small)
    assert "max_bytes" in one_line(err.value)


def test_redirects_followed_and_bounded(site):
    site.redirects["/old"] = (301, "/notes.md")
    blob = fetch_url(f"{site}/old", ALLOW)
    assert blob.uri == f"{site}/old" and blob.metadata["final_url"] == f"{site}/notes.md"
    assert blob.mime == "text/markdown"
    for i in range(7):
        site.redirects[f"/r{i}"] = (302, f"/r{i + 1}")
    with pytest.raises(IngestError, match="too many redirects"):
        fetch_url(f"{site}/r0", ALLOW)
    assert len([r for r in site.requests if r.startswith("/r")]) == fetch.MAX_REDIRECTS + 1


def test_redirect_to_blocked_address_is_blocked(site, monkeypatch):
    # Pretend the test server's address is public so that the first hop is allowed
    # (and pinned to the checked address) while the redirect target is not.
    real = fetch.blocked_reason
    monkeypatch.setattr(fetch, "blocked_reason",
                        lambda ip: None if str(ip) == "127.0.0.1" else real(ip))
    site.redirects["/go"] = (302, "http://169.254.169.254/latest/meta-data/")
    with pytest.raises(BlockedURLError) as err:
        fetch_url(f"{site}/go", IngestSettings(url_timeout=5))
    assert "169.254.169.254" in one_line(err.value)
    assert site.requests == ["/go"]
    # the pinned request with the Host header kept works for a plain fetch too
    blob = fetch_url(f"{site}/chart.png", IngestSettings(url_timeout=5))
    assert blob.mime == "image/png"


def test_resolve_urls(site):
    [blob] = list(resolve(f"{site}/chart.png", ALLOW))
    assert isinstance(blob, Blob) and blob.mime == "image/png"
    [fail] = list(resolve(f"{site}/chart.png", IngestSettings()))
    assert isinstance(fail, Failure) and "allow_private_urls" in fail.reason
    [fail] = list(resolve(f"{site}/nope", ALLOW))
    assert isinstance(fail, Failure) and "404" in fail.reason


def test_content_disposition_name():
    resp = httpx.Response(200, headers={
        "content-disposition": "attachment; filename*=UTF-8''r%C3%A9sum%C3%A9.pdf"})
    assert fetch._filename(resp, "http://x.test/download?id=3") == "résumé.pdf"
    resp = httpx.Response(200, headers={"content-disposition": 'inline; filename="../a.png"'})
    assert fetch._filename(resp, "http://x.test/") == "a.png"
    assert fetch._filename(httpx.Response(200), "http://x.test/dir/my%20file.txt") == \
        "my file.txt"


def test_blocked_reason_classification():
    assert blocked_reason(ipaddress.ip_address("8.8.8.8")) is None
    assert blocked_reason(ipaddress.ip_address("2001:4860:4860::8888")) is None
    for ip in ("127.0.0.1", "10.1.2.3", "192.168.1.1", "172.16.0.1", "169.254.169.254",
               "224.0.0.1", "0.0.0.0", "::1", "fe80::1", "fc00::1", "240.0.0.1"):
        assert blocked_reason(ipaddress.ip_address(ip)), ip
