"""``/media/{id}``: stored bytes with content types, ETags and long caching (public only on
a keyless loopback server); HEAD and Range requests; thumbnails."""

from __future__ import annotations

import hashlib
import io
from types import SimpleNamespace

import httpx
import pytest
from PIL import Image

from mmrag.server import KeyStore, create_app
from tests.encode.test_clap import tiny_clap_path  # noqa: F401  (fixture)
from tests.factories import make_png, make_text_pdf
from tests.server.conftest import FAST, serve_in_thread, upload

BIG = make_png("harbour", (900, 600))


@pytest.fixture(scope="module")
def urls(http) -> dict[str, str]:
    """media URLs of a picture and of a PDF page render."""
    http.put("/collections/m")
    upload(http, "m", {"harbour.png": BIG,
                       "page.pdf": make_text_pdf(["Lighthouse keepers logbook."])})
    picture = http.get("/collections/m/search", params={"q": "harbour", "modality": "image"})
    page = http.get("/collections/m/search", params={"q": "lighthouse", "modality": "page"})
    return {"picture": picture.json()["hits"][0]["media_url"],
            "page": page.json()["hits"][0]["media_url"]}


def test_original_bytes_with_type_etag_and_cache_headers(http, urls):
    resp = http.get(urls["picture"])
    assert resp.status_code == 200 and resp.content == BIG
    assert resp.headers["content-type"] == "image/png"
    assert resp.headers["etag"] == f'"{hashlib.sha256(BIG).hexdigest()}"'
    assert resp.headers["cache-control"].endswith("max-age=31536000, immutable")
    assert resp.headers["x-content-type-options"] == "nosniff"
    page = http.get(urls["page"])
    assert page.headers["content-type"] == "image/jpeg" and page.content[:3] == b"\xff\xd8\xff"


def test_if_none_match_gives_304(http, urls):
    etag = http.get(urls["picture"]).headers["etag"]
    resp = http.get(urls["picture"], headers={"If-None-Match": etag})
    assert resp.status_code == 304 and resp.content == b"" and resp.headers["etag"] == etag
    other = http.get(urls["picture"], headers={"If-None-Match": '"something-else"'})
    assert other.status_code == 200


@pytest.mark.parametrize(("asked", "side"), [(256, 256), (300, 256), (64, 64), (5000, 900)])
def test_thumbnails_fit_the_asked_side(http, urls, data_dir, asked, side):
    resp = http.get(urls["picture"], params={"thumb": asked})
    assert resp.status_code == 200 and resp.headers["content-type"] == "image/jpeg"
    with Image.open(io.BytesIO(resp.content)) as img:
        assert max(img.size) <= asked and max(img.size) == side
        assert img.size[0] > img.size[1]  # the aspect ratio is kept
    again = http.get(urls["picture"], params={"thumb": asked},
                     headers={"If-None-Match": resp.headers["etag"]})
    assert again.status_code == 304
    assert resp.headers["etag"] != http.get(urls["picture"]).headers["etag"]
    assert any((data_dir / "m" / "thumbs").rglob("*.jpg"))  # cached on disk


def test_a_thumb_below_the_smallest_size_is_400(http, urls):
    resp = http.get(urls["picture"], params={"thumb": 10})
    assert resp.status_code == 400 and resp.json()["error"]["param"] == "thumb"


@pytest.mark.parametrize("media_id", [
    "m.." + "0" * 62 + ".png",                          # malformed key
    "m." + "0" * 64 + ".png",                           # well-formed, not stored
    "nowhere." + "0" * 64 + ".png",                     # no such collection
    "..%2F..%2Fkeys.json", "%2e%2e", "m.%2e%2e%2fcatalog.sqlite",
    "M." + "0" * 64 + ".png", "m." + "0" * 64 + ".png%00.txt", "m." + "0" * 64,
])
def test_bad_media_ids_are_404(http, urls, media_id):
    resp = http.get(f"/media/{media_id}")
    assert resp.status_code == 404, media_id
    assert resp.json()["error"]["code"] == "not_found"


def test_media_of_one_collection_is_not_served_as_another(http, urls):
    http.put("/collections/other")
    key = urls["picture"].removeprefix("/media/m.")
    assert http.get(f"/media/other.{key}").status_code == 404


def test_audio_clips_are_served_for_playback_wiring(http, data_dir, tiny_clap_path):  # noqa: F811
    """A collection made with a (tiny, random-weight) CLAP: its clip hits carry a playable
    Ogg/Opus ``media_url``, a timestamp and no thumbnail."""
    from mmrag import Index
    from tests.ingest.test_audio import wav_bytes
    from tests.ingest.test_audio_clips import _tone

    with Index(data_dir / "sounds", profile="offline", show_progress=False,
               encode={"text_encoder": "hashing", "audio_model": str(tiny_clap_path)},
               ingest={"transcribe": False}) as index:
        assert not index.add([("tone.wav", wav_bytes(_tone(4)))]).failed
    resp = http.get("/collections/sounds/search", params={"q": "a tone", "mode": "dense"})
    assert resp.status_code == 200, resp.text
    hit = resp.json()["hits"][0]
    assert hit["modality"] == "audio" and hit["thumb_url"] is None
    assert hit["media_type"] == "audio"
    assert hit["timestamp"] == "00:00" and hit["start"] == 0.0 and hit["end"] == 4.0
    clip = http.get(hit["media_url"])
    assert clip.headers["content-type"] == "audio/ogg" and clip.content[:4] == b"OggS"
    part = http.get(hit["media_url"], headers={"Range": "bytes=4-"})  # a player seeking
    assert part.status_code == 206 and part.content == clip.content[4:]
    assert part.headers["content-range"] == f"bytes 4-{len(clip.content) - 1}/{len(clip.content)}"
    assert http.get(hit["media_url"], params={"thumb": 256}).status_code == 415


# -- HEAD and Range ---------------------------------------------------------------------

def test_head_answers_like_get_without_a_body(http, urls):
    get = http.get(urls["picture"])
    head = http.head(urls["picture"])
    assert head.status_code == 200 and head.content == b""
    for name in ("etag", "cache-control", "content-type", "content-length", "accept-ranges"):
        assert head.headers[name] == get.headers[name], name
    assert int(head.headers["content-length"]) == len(BIG)
    assert http.head(urls["picture"], headers={"If-None-Match": get.headers["etag"]}
                     ).status_code == 304
    assert http.head("/media/m." + "0" * 64 + ".png").status_code == 404
    thumb = http.head(urls["picture"], params={"thumb": 64})
    assert thumb.status_code == 200 and thumb.headers["content-type"] == "image/jpeg"


@pytest.mark.parametrize(("asked", "start", "end"), [
    ("bytes=0-9", 0, 9), ("bytes=100-", 100, len(BIG) - 1),
    ("bytes=-50", len(BIG) - 50, len(BIG) - 1), ("bytes=10-99999999", 10, len(BIG) - 1),
    ("bytes=-99999999", 0, len(BIG) - 1)])
def test_range_requests_get_206_with_content_range(http, urls, asked, start, end):
    resp = http.get(urls["picture"], headers={"Range": asked})
    assert resp.status_code == 206, resp.text
    assert resp.content == BIG[start:end + 1]
    assert resp.headers["content-range"] == f"bytes {start}-{end}/{len(BIG)}"
    assert int(resp.headers["content-length"]) == end + 1 - start
    assert resp.headers["etag"] == f'"{hashlib.sha256(BIG).hexdigest()}"'
    head = http.head(urls["picture"], headers={"Range": asked})
    assert head.status_code == 206 and head.content == b""
    assert head.headers["content-range"] == resp.headers["content-range"]


@pytest.mark.parametrize("asked", [f"bytes={len(BIG)}-", f"bytes={len(BIG) + 5}-{len(BIG) + 9}",
                                   "bytes=-0"])
def test_unsatisfiable_ranges_are_416(http, urls, asked):
    resp = http.get(urls["picture"], headers={"Range": asked})
    assert resp.status_code == 416
    assert resp.headers["content-range"] == f"bytes */{len(BIG)}"
    assert resp.json()["error"]["code"] == "range_not_satisfiable"


@pytest.mark.parametrize("asked", ["bytes=abc", "lines=0-5", "bytes=", "nonsense"])
def test_malformed_ranges_are_ignored(http, urls, asked):
    resp = http.get(urls["picture"], headers={"Range": asked})
    assert resp.status_code == 200 and resp.content == BIG


def test_if_range_with_another_etag_sends_the_whole_file(http, urls):
    etag = http.get(urls["picture"]).headers["etag"]
    same = http.get(urls["picture"], headers={"Range": "bytes=0-3", "If-Range": etag})
    assert same.status_code == 206 and same.content == BIG[:4]
    other = http.get(urls["picture"], headers={"Range": "bytes=0-3", "If-Range": '"old"'})
    assert other.status_code == 200 and other.content == BIG


# -- caching policy ---------------------------------------------------------------------

def test_a_keyless_loopback_server_may_cache_publicly(http, urls):
    resp = http.get(urls["picture"])
    assert resp.headers["cache-control"] == "public, max-age=31536000, immutable"


@pytest.fixture(scope="module")
def keyed_media(tmp_path_factory):
    """A server with API keys, a picture in collection k; yields (client, headers, url)."""
    data = tmp_path_factory.mktemp("keyed-media")
    token = KeyStore(data).create("admin")[0]
    auth = {"Authorization": f"Bearer {token}"}
    with serve_in_thread(create_app(data=data, **FAST)) as base, \
            httpx.Client(base_url=base, timeout=60, headers=auth) as c:
        c.put("/collections/k")
        upload(c, "k", {"harbour.png": BIG})
        hit = c.get("/collections/k/search", params={"q": "harbour", "modality": "image"})
        yield c, auth, hit.json()["hits"][0]["media_url"]


def test_media_behind_api_keys_is_private(keyed_media):
    c, _, url = keyed_media
    resp = c.get(url)
    assert resp.status_code == 200 and resp.content == BIG
    assert resp.headers["cache-control"] == "private, max-age=31536000, immutable"
    again = c.get(url, headers={"If-None-Match": resp.headers["etag"]})
    assert again.status_code == 304 and again.headers["etag"] == resp.headers["etag"]
    assert again.headers["cache-control"].startswith("private")
    assert c.head(url).headers["cache-control"].startswith("private")
    part = c.get(url, headers={"Range": "bytes=0-7"})
    assert part.status_code == 206 and part.headers["cache-control"].startswith("private")
    assert c.get(url, headers={"Authorization": ""}).status_code == 401


@pytest.mark.parametrize(("bind", "server", "public"), [
    (None, ("127.0.0.1", 8000), True), (None, ("::1", 8000), True),
    (None, ("192.168.1.4", 8000), False), (None, ("testserver", 80), False),
    ("0.0.0.0", ("127.0.0.1", 8000), False),  # bound to every address: e.g. behind a proxy
    ("127.0.0.1", ("127.0.0.1", 8000), True)])
def test_public_only_when_keyless_and_bound_to_loopback(bind, server, public):
    from starlette.requests import Request

    from mmrag.server.auth import Principal
    from mmrag.server.keys import ApiKey
    from mmrag.server.media import cache_control

    app = SimpleNamespace(state=SimpleNamespace(bind_host=bind))
    request = Request({"type": "http", "app": app, "server": server, "headers": []})
    assert cache_control(request, Principal(None)).startswith("public" if public else "private")
    keyed = Principal(ApiKey("id", "hash", "read"))
    assert cache_control(request, keyed).startswith("private")
