"""``/media/{id}``: stored bytes with content types, ETags and long caching; thumbnails."""

from __future__ import annotations

import hashlib
import io

import pytest
from PIL import Image

from tests.encode.test_clap import tiny_clap_path  # noqa: F401  (fixture)
from tests.factories import make_png, make_text_pdf
from tests.server.conftest import upload

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
    assert resp.headers["cache-control"] == "public, max-age=31536000, immutable"
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
    assert http.get(hit["media_url"], params={"thumb": 256}).status_code == 415
