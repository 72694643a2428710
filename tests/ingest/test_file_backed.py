"""File-backed Blobs: local files and large downloads are read from disk, never whole into
memory for audio and video, while small documents work as before."""

from __future__ import annotations

import gc
import hashlib
import os
import resource
import tempfile
import time
import uuid
from pathlib import Path

import fsspec
import pytest

from mmrag import Index
from mmrag.config import IngestSettings
from mmrag.errors import IngestError
from mmrag.ingest import load, sources
from mmrag.ingest.fetch import fetch_url
from mmrag.ingest.sources import read_stream, resolve
from mmrag.types import Blob, Failure
from tests.factories import serve_directory

pytest.importorskip("av")

from tests.ingest.test_video import BLUE, GREEN, RED, make_video  # noqa: E402

FAST = {"encode": {"text_encoder": "hashing"}}
ALLOW = IngestSettings(allow_private_urls=True, url_timeout=5)
NOTES = b"# Kestrels\n\nKestrels hover over motorway verges looking for voles.\n"


@pytest.fixture
def data_reads(monkeypatch) -> list[str]:
    """URIs of the Blobs whose ``data`` (all bytes in memory) was read."""
    seen: list[str] = []
    real = Blob.data

    def spy(blob: Blob) -> bytes:
        seen.append(blob.uri)
        return real.fget(blob)

    monkeypatch.setattr(Blob, "data", property(spy, real.fset))
    return seen


@pytest.fixture
def spool_dir(tmp_path, monkeypatch) -> Path:
    """Temporary files go here (and spooling starts past 1000 bytes) so a test sees them."""
    folder = tmp_path / "spool"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    monkeypatch.setattr(sources, "SPOOL_BYTES", 1000)
    return folder


def test_blob_in_memory_and_file_backed_agree(tmp_path):
    data = os.urandom(3 * 2**20 + 123)  # several hash blocks and a partial one
    path = tmp_path / "blob.bin"
    path.write_bytes(data)
    mem, disk = Blob(uri="m", data=data), Blob(uri="d", path=str(path))
    assert mem.size == disk.size == len(data)
    assert mem.head(10) == disk.head(10) == data[:10]
    with disk.open() as fh:
        assert fh.read(5) == data[:5]
    assert disk.sha256() == mem.sha256() == hashlib.sha256(data).hexdigest()
    assert disk.data == data  # loaded on demand
    assert "path=" in repr(Blob(uri="d", path=str(path)))
    with pytest.raises(ValueError):
        Blob(uri="nothing")


def test_local_file_resolves_without_reading_it(tmp_path, data_reads):
    path = tmp_path / "notes.md"
    path.write_bytes(NOTES)
    [blob] = list(resolve(path))
    assert isinstance(blob, Blob) and blob.mime == "text/markdown"
    assert blob.path == str(path.resolve()) and blob.size == len(NOTES)
    assert data_reads == []
    assert blob.data == NOTES  # the text loader reads it when it runs
    assert data_reads == [blob.uri]


def test_two_gib_sparse_video_resolves_instantly(tmp_path, data_reads):
    path = tmp_path / "long.mp4"
    with open(path, "wb") as fh:  # a real header, then 2 GiB of holes (no disk used)
        fh.write(make_video([(RED, 0.5)]))
        fh.truncate(2 * 2**30)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.monotonic()
    [blob] = list(resolve(path))
    assert time.monotonic() - start < 2
    assert isinstance(blob, Blob) and blob.mime == "video/mp4"
    assert blob.size == 2 * 2**30 and blob.metadata["size"] == 2 * 2**30
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss < 100 * 1024  # KiB
    assert data_reads == []
    [fail] = list(resolve(path, IngestSettings(max_media_bytes=2**30)))
    assert isinstance(fail, Failure)
    assert fail.reason == (f"too large: {2 * 2**30} bytes exceeds ingest.max_media_bytes "
                           f"({2**30})")


def test_large_document_still_refused_by_max_bytes(tmp_path):
    path = tmp_path / "huge.txt"
    with open(path, "wb") as fh:
        fh.write(b"plain words " * 100)
        fh.truncate(600 * 2**20)  # over the 512 MiB default
    [fail] = list(resolve(path))
    assert isinstance(fail, Failure)
    assert fail.reason == (f"too large: {600 * 2**20} bytes exceeds ingest.max_bytes "
                           f"({512 * 2**20})")


def test_same_content_as_bytes_and_as_path_is_one_document(tmp_path):
    path = tmp_path / "notes.md"
    path.write_bytes(NOTES)
    [mem] = list(resolve(("notes.md", NOTES)))
    [disk] = list(resolve(path))
    assert mem.sha256() == disk.sha256()
    with Index(tmp_path / "idx", **FAST) as index:
        first = index.add(("notes.md", NOTES))
        assert len(first.added) == 1
        report = index.add(path)
        assert report.skipped == [str(path.resolve())] and not report.added
        assert len({r.doc_id for r in index.documents()}) == 1
        assert len(index.documents()) == 2


def test_video_over_max_bytes_streams_from_its_file(tmp_path, data_reads):
    clip = tmp_path / "clip.mp4"
    clip.write_bytes(make_video([(RED, 2), (GREEN, 2), (BLUE, 2)]))
    text = tmp_path / "long.txt"
    text.write_bytes(b"word " * 1000)
    limit = 1000
    assert clip.stat().st_size > limit
    ingest = {"max_bytes": limit, "transcribe": False, "ocr": "never"}
    with Index(tmp_path / "idx", encode=FAST["encode"], ingest=ingest) as index:
        report = index.add([clip, text])
        assert report.added == [str(clip.resolve())]
        [failed] = report.failed
        assert failed.source == str(text.resolve())
        assert failed.reason == f"too large: 5000 bytes exceeds ingest.max_bytes ({limit})"
        [doc] = index.documents()
        assert doc.size == clip.stat().st_size and len(doc.item_ids) == 3
    assert str(clip.resolve()) not in data_reads  # never held whole in memory


def test_download_over_the_spool_threshold_goes_to_a_temp_file(tmp_path, spool_dir):
    site_dir = tmp_path / "site"
    site_dir.mkdir()
    video = make_video([(RED, 2), (BLUE, 2)])
    (site_dir / "clip.mp4").write_bytes(video)
    (site_dir / "notes.md").write_bytes(NOTES * 30)
    with serve_directory(site_dir) as site:
        [blob] = list(resolve(f"{site}/clip.mp4", ALLOW))
        assert blob.path is not None and Path(blob.path).parent == spool_dir
        assert blob.mime == "video/mp4" and blob.size == len(video)
        assert blob.sha256() == hashlib.sha256(video).hexdigest()
        pieces = list(load(blob, IngestSettings(transcribe=False, ocr="never")))
        assert len([p for p in pieces if p.modality == "image"]) == 2
        del blob, pieces
        gc.collect()
        assert list(spool_dir.iterdir()) == []  # deleted with its Blob

        [notes] = list(resolve(f"{site}/notes.md", ALLOW))
        assert notes.path is not None and notes.mime == "text/markdown"
        assert notes.data == NOTES * 30
        del notes
        # Callers that want bytes (query images, chat images) still get them in memory.
        assert fetch_url(f"{site}/notes.md", ALLOW).path is None

        ingest = {"allow_private_urls": True, "transcribe": False, "ocr": "never",
                  "max_bytes": 1000}
        with Index(tmp_path / "idx", encode=FAST["encode"], ingest=ingest) as index:
            report = index.add([f"{site}/clip.mp4", f"{site}/notes.md"])
            assert report.added == [f"{site}/clip.mp4"], report.failed
            assert "exceeds ingest.max_bytes (1000)" in report.failed[0].reason
            assert list(spool_dir.iterdir()) == []  # gone once Index.add is done


def test_failed_download_leaves_no_temp_file(spool_dir):
    chunks = (b"x" * 800 for _ in range(10))
    with pytest.raises(IngestError) as err:
        read_stream(chunks, "http://x.test/a.txt", "a.txt", IngestSettings(max_bytes=3000))
    assert err.value.reason == "too large: more than ingest.max_bytes (3000) bytes"
    assert list(spool_dir.iterdir()) == []
    with pytest.raises(IngestError, match="exceeds ingest.max_bytes"):
        read_stream([b"x" * 10], "u", "a.txt", IngestSettings(max_bytes=5), declared=9000)


def test_media_cap_applies_to_downloads(tmp_path):
    video = make_video([(RED, 1)])
    (tmp_path / "clip.mp4").write_bytes(video)
    small = IngestSettings(allow_private_urls=True, max_bytes=1000)
    with serve_directory(tmp_path) as site:
        assert fetch_url(f"{site}/clip.mp4", small, spool=True).size == len(video)
        with pytest.raises(IngestError, match="exceeds ingest.max_bytes"):
            fetch_url(f"{site}/clip.mp4", small)  # bytes wanted in memory: max_bytes
        tight = small.model_copy(update={"max_media_bytes": 1000})
        [fail] = list(resolve(f"{site}/clip.mp4", tight))
        assert isinstance(fail, Failure)
        assert fail.reason == f"too large: {len(video)} bytes exceeds " \
                              "ingest.max_media_bytes (1000)"


def test_large_fsspec_file_is_spooled(spool_dir):
    fs = fsspec.filesystem("memory")
    root = f"/mmrag-{uuid.uuid4().hex}"
    fs.pipe(f"{root}/big.md", NOTES * 30)
    try:
        [blob] = list(resolve(f"memory://{root}/big.md"))
        assert blob.path is not None and blob.data == NOTES * 30
        assert blob.mime == "text/markdown"
        blob.cleanup()
        assert list(spool_dir.iterdir()) == [] and blob.size == len(NOTES * 30)
    finally:
        fs.rm(root, recursive=True)


def test_audio_container_opens_from_the_file(tmp_path, monkeypatch, data_reads):
    import numpy as np

    from mmrag.ingest.audio import open_container, pcm_windows
    from tests.ingest.test_audio import wav_bytes

    tone = np.sin(np.linspace(0, 2 * np.pi * 440, 16_000)) * 0.3
    (tmp_path / "a:b.wav").write_bytes(wav_bytes(tone))  # "a:" is no FFmpeg protocol
    monkeypatch.chdir(tmp_path)
    [blob] = list(resolve("a:b.wav"))
    assert blob.mime == "audio/wav"
    with open_container(blob) as container:
        [(start, pcm)] = list(pcm_windows(container, blob.uri))
    assert start == 0.0 and abs(len(pcm) - 16_000) < 100
    assert data_reads == []


def test_file_vanishing_before_hashing_fails_only_that_file(tmp_path):
    """A file removed between resolve and hashing (a sync tool, a cleanup job) is one
    failure line; the other file is still indexed."""
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "a-gone.md").write_text("temporary notes about herons")
    (folder / "b-kept.md").write_text("permanent notes about gannets")
    real = Blob.sha256

    def vanish(blob):
        if blob.name == "a-gone.md":
            Path(blob.path).unlink()
        return real(blob)

    with Index(tmp_path / "idx", profile="offline", show_progress=False,
               encode={"text_encoder": "hashing"}) as index:
        orig, Blob.sha256 = Blob.sha256, vanish
        try:
            report = index.add(folder)
        finally:
            Blob.sha256 = orig
        assert [Path(f.source).name for f in report.failed] == ["a-gone.md"]
        assert "\n" not in report.failed[0].reason
        assert [Path(u).name for u in report.added] == ["b-kept.md"]
