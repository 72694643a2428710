"""Disk full: `mmrag add` into an index on a small tmpfs until ENOSPC.

One clear error line, an index that stays consistent and searchable while the disk is
still full, and a run after freeing space (a bigger remount) that adds the rest. Needs
root to mount; skipped otherwise, or where the container may not mount.
"""

from __future__ import annotations

import io
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mmrag import Index
from tests.faults import Launcher

pytestmark = pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0,
                                reason="mounting a tmpfs needs root")
N = 40


def _mount(where: Path, size: str, remount: bool = False) -> subprocess.CompletedProcess:
    opts = f"remount,size={size}" if remount else f"size={size}"
    return subprocess.run(["mount", "-t", "tmpfs", "-o", opts, "tmpfs", str(where)],
                          capture_output=True, text=True, check=False)


@pytest.fixture()
def small_disk(tmp_path: Path) -> Iterator[Path]:
    where = tmp_path / "disk"
    where.mkdir()
    done = _mount(where, "2m")
    if done.returncode:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], capture_output=True, check=False)


@pytest.fixture()
def docs(tmp_path: Path) -> Path:
    """~3 MB: incompressible pictures (their media fill the disk) and notes."""
    d = tmp_path / "docs"
    d.mkdir()
    rng = np.random.default_rng(13)
    for i in range(N):
        buf = io.BytesIO()
        Image.fromarray(rng.integers(0, 255, (160, 160, 3), dtype=np.uint8)).save(buf, "PNG")
        (d / f"noise{i:02d}.png").write_bytes(buf.getvalue())
        (d / f"note{i:02d}.md").write_text(f"# Note {i}\n\nuniq{i}token " +
                                           " ".join(f"word{j}" for j in range(200)))
    return d


def _errors(output: str) -> list[str]:
    return [ln for ln in output.splitlines() if ln.startswith("error:")]


def _assert_consistent(where: Path) -> int:
    with Index(where) as index:
        report = index.check()
        assert report.ok, [p.line() for p in report.problems]
        for r in index.documents()[::3]:  # a sample: searching is not what is tested
            name = Path(r.source).name
            if name.startswith("note"):
                token = f"uniq{int(name[4:6])}token"
                assert index.search(token, k=1, mode="bm25")[0].item.source == r.source
        return len(index.documents())


def test_add_until_enospc_then_again_after_freeing_space(small_disk, docs, tmp_path):
    where = small_disk / "idx"
    with Launcher(tmp_path) as launcher:
        code, output = launcher.run("add", str(docs), "--index", str(where))
        assert code == 1, output
        assert "Traceback" not in output
        assert len(_errors(output)) == 1, output
        assert "no space left on the device of the index" in _errors(output)[0]
        assert "failed" not in output  # not one line per remaining source
        added = _assert_consistent(where)  # on the still full disk
        assert 0 < added < 2 * N

        assert _mount(small_disk, "32m", remount=True).returncode == 0
        code, output = launcher.run("add", str(docs), "--index", str(where))
        assert code == 0, output
        assert f"skipped {added}" in output
    assert _assert_consistent(where) == 2 * N


def test_a_disk_too_full_to_create_the_index_is_one_line(small_disk, docs, tmp_path):
    assert _mount(small_disk, "64k", remount=True).returncode == 0
    with Launcher(tmp_path) as launcher:
        code, output = launcher.run("add", str(docs), "--index", str(small_disk / "idx"))
    assert code == 1 and "Traceback" not in output
    assert len(_errors(output)) == 1, output
    assert "no space left on the device of the index" in _errors(output)[0]
