from __future__ import annotations

import base64
import os
import uuid
from pathlib import Path

import fsspec
import pytest

from mmrag.config import IngestSettings
from mmrag.ingest.sources import matches, resolve
from mmrag.types import Blob, Failure
from tests.factories import make_jpeg, make_png, make_text_pdf, one_line


def _split(results):
    blobs = [r for r in results if isinstance(r, Blob)]
    fails = [r for r in results if isinstance(r, Failure)]
    return blobs, fails


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "docs"
    (root / "sub" / "deep").mkdir(parents=True)
    (root / ".git").mkdir()
    (root / "__pycache__").mkdir()
    (root / "b.md").write_text("# B\n\nbee")
    (root / "a.txt").write_text("alpha")
    (root / "sub" / "c.png").write_bytes(make_png("red"))
    (root / "sub" / "deep" / "d.pdf").write_bytes(make_text_pdf(["dee"]))
    (root / ".hidden.txt").write_text("secret")
    (root / "sub" / ".also-hidden.md").write_text("secret")
    (root / ".git" / "config").write_text("[core]")
    (root / "__pycache__" / "x.txt").write_text("cache")
    return root


def test_single_file_blob(tmp_path, settings):
    path = tmp_path / "chart.png"
    path.write_bytes(make_png())
    [blob] = list(resolve(path, settings))
    assert isinstance(blob, Blob)
    assert blob.uri == str(path.resolve())
    assert blob.name == "chart.png"
    assert blob.mime == "image/png"
    assert blob.data == path.read_bytes()
    [again] = list(resolve(str(path), settings))
    assert again.uri == blob.uri


def test_folder_walk_sorted_and_hidden_excluded(tree, settings):
    blobs, fails = _split(list(resolve(tree, settings)))
    assert not fails
    rel = [Path(b.uri).relative_to(tree.resolve()).as_posix() for b in blobs]
    assert rel == ["a.txt", "b.md", "sub/c.png", "sub/deep/d.pdf"]
    assert [b.mime for b in blobs] == ["text/plain", "text/markdown", "image/png",
                                       "application/pdf"]


def test_folder_include_exclude(tree):
    only_md_pdf = IngestSettings(include=["*.md", "**/*.pdf"])
    blobs, _ = _split(list(resolve(tree, only_md_pdf)))
    assert sorted(b.name for b in blobs) == ["b.md", "d.pdf"]
    no_sub = IngestSettings(exclude=[".*", "sub/*"])
    blobs, _ = _split(list(resolve(tree, no_sub)))
    assert sorted(b.name for b in blobs) == ["a.txt", "b.md", "x.txt"]  # __pycache__ allowed
    everything = IngestSettings(exclude=[])
    names = {b.name for b in _split(list(resolve(tree, everything)))[0]}
    assert {".hidden.txt", "config", ".also-hidden.md"} <= names


def test_folder_is_read_lazily(tree, settings, monkeypatch):
    reads: list[str] = []
    real_open = open

    def spy(path, *args, **kw):
        reads.append(str(path))
        return real_open(path, *args, **kw)

    monkeypatch.setattr("builtins.open", spy)
    it = resolve(tree, settings)
    first = next(it)
    assert first.name == "a.txt"
    assert len([r for r in reads if str(tree) in r]) == 1
    it.close()


def test_symlink_loop_is_safe(tmp_path, settings):
    root = tmp_path / "loop"
    (root / "inner").mkdir(parents=True)
    (root / "inner" / "f.txt").write_text("hello")
    os.symlink(root, root / "inner" / "back")
    os.symlink(tmp_path / "missing.txt", root / "dangling.txt")
    blobs, fails = _split(list(resolve(root, settings)))
    assert [b.name for b in blobs] == ["f.txt"]
    assert len(fails) == 1 and "no such file" in fails[0].reason


def test_missing_path_and_short_string(settings):
    [fail] = list(resolve("/definitely/not/here.pdf", settings))
    assert isinstance(fail, Failure)
    assert fail.reason == "no such file or directory"
    for missing in ("hello", "/data/reports/quarterly2024"):  # the latter is valid base64
        [fail] = list(resolve(missing, settings))
        assert isinstance(fail, Failure) and fail.reason == "no such file or directory"


def test_bytes_and_named_bytes(settings):
    data = make_png("blue")
    [blob] = list(resolve(data, settings))
    assert blob.uri.startswith("bytes:") and len(blob.uri) == len("bytes:") + 16
    assert blob.mime == "image/png" and blob.name == ""
    [named] = list(resolve(("cover.jpg", data), settings))
    assert named.name == "cover.jpg" and named.uri == blob.uri
    assert named.mime == "image/png"  # content, not extension
    many = list(resolve([("a.md", b"# A\n\ntext"), data], settings))
    assert [b.mime for b in many] == ["text/markdown", "image/png"]


def test_base64_and_data_uri(settings):
    data = make_jpeg()
    b64 = base64.b64encode(data).decode()
    [blob] = list(resolve(b64, settings))
    assert isinstance(blob, Blob) and blob.data == data and blob.mime == "image/jpeg"
    wrapped = "\n".join(b64[i:i + 76] for i in range(0, len(b64), 76))
    [blob2] = list(resolve(wrapped, settings))
    assert blob2.data == data
    [uri_blob] = list(resolve(f"data:image/jpeg;base64,{b64}", settings))
    assert uri_blob.data == data and uri_blob.mime == "image/jpeg"
    [text_blob] = list(resolve("data:text/markdown,%23%20Hi%0A%0Athere", settings))
    assert text_blob.data == b"# Hi\n\nthere" and text_blob.mime == "text/markdown"
    [bad] = list(resolve("data:image/png;base64,@@@", settings))
    assert isinstance(bad, Failure)


def test_base64_of_garbage_is_not_a_file(settings):
    junk = base64.b64encode(bytes(range(256)) * 2).decode()
    [fail] = list(resolve(junk, settings))
    assert isinstance(fail, Failure) and "unsupported type" in fail.reason
    assert len(fail.source) < 200  # long inputs are abbreviated in reports
    wrapped = "\n".join(junk[i:i + 76] for i in range(0, len(junk), 76))
    [fail] = list(resolve(wrapped, settings))
    assert isinstance(fail, Failure)
    one_line(fail)


def test_newline_in_file_name_stays_one_line(tmp_path, settings):
    odd = tmp_path / "two\nlines.bin"
    odd.write_bytes(b"\x00\x01" * 50)
    [fail] = list(resolve(tmp_path, settings))
    assert "unsupported" in one_line(fail)


def test_empty_and_oversized(tmp_path):
    empty = tmp_path / "empty.txt"
    empty.write_bytes(b"")
    [fail] = list(resolve(empty, IngestSettings()))
    assert isinstance(fail, Failure) and "empty" in fail.reason
    big = tmp_path / "big.txt"
    big.write_bytes(b"x" * 5000)
    [fail] = list(resolve(big, IngestSettings(max_bytes=1000)))
    assert isinstance(fail, Failure)
    assert "max_bytes" in fail.reason and "5000" in fail.reason
    [fail] = list(resolve(b"y" * 5000, IngestSettings(max_bytes=1000)))
    assert isinstance(fail, Failure) and "max_bytes" in fail.reason


def test_failures_in_place_never_raise(tmp_path, settings):
    good = tmp_path / "g.txt"
    good.write_text("fine")
    results = list(resolve([str(good), "/nope", os.urandom(100), 42, good], settings))
    kinds = [type(r).__name__ for r in results]
    assert kinds == ["Blob", "Failure", "Failure", "Failure", "Blob"]
    for r in results:
        one_line(r)
    assert "unsupported file type application/octet-stream" in results[2].reason


@pytest.fixture
def memfs():
    fs = fsspec.filesystem("memory")
    root = f"/mmrag-{uuid.uuid4().hex}"
    fs.pipe(f"{root}/a.txt", b"alpha")
    fs.pipe(f"{root}/sub/b.png", make_png())
    fs.pipe(f"{root}/.hidden", b"no")
    yield root
    fs.rm(root, recursive=True)


def test_memory_fsspec_file_and_folder(memfs, settings):
    [blob] = list(resolve(f"memory://{memfs}/a.txt", settings))
    assert isinstance(blob, Blob) and blob.data == b"alpha" and blob.mime == "text/plain"
    assert blob.uri.startswith("memory://") and blob.name == "a.txt"
    blobs, fails = _split(list(resolve(f"memory://{memfs}", settings)))
    assert not fails
    assert [b.name for b in blobs] == ["a.txt", "b.png"]
    [fail] = list(resolve(f"memory://{memfs}/missing.txt", settings))
    assert isinstance(fail, Failure) and "no such file" in fail.reason


def test_missing_fsspec_package_named(settings):
    pytest.importorskip("fsspec")
    try:
        import s3fs  # noqa: F401
        pytest.skip("s3fs installed")
    except ImportError:
        pass
    [fail] = list(resolve("s3://bucket/key.pdf", settings))
    assert isinstance(fail, Failure)
    assert "s3fs" in one_line(fail) and "pip install s3fs" in fail.reason
    [fail] = list(resolve("nosuchproto://x/y", settings))
    assert isinstance(fail, Failure) and "nosuchproto" in fail.reason


def test_file_url(tmp_path, settings):
    path = tmp_path / "x y.txt"
    path.write_text("spaced")
    [blob] = list(resolve(path.resolve().as_uri(), settings))
    assert blob.uri == str(path.resolve()) and blob.data == b"spaced"


def test_glob_matching():
    assert matches("a/b/c.pdf", ["*.pdf"])
    assert matches("c.pdf", ["**/*.pdf"])
    assert matches("x/.git/", [".*", "**/.*"])
    assert matches("__pycache__/", ["**/__pycache__/**"])
    assert not matches("a/b.txt", ["*.pdf"])
