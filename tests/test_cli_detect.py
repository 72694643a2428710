"""`mmrag detect`: a scripted VLM (plugged in by dotted path) answers; boxes come out."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image
from typer.testing import CliRunner

from mmrag.cli import app
from mmrag.config import GenerateSettings
from mmrag.generate.base import Message
from mmrag.generate.detect import PALETTE

ROOT = Path(__file__).resolve().parents[1]
SCRIPTED = "tests.test_cli_detect.scripted_vlm"  # a factory, found by its dotted path
GOOD = json.dumps([{"box_2d": [100, 250, 500, 750], "label": "cat"}])


class _Scripted:
    name, supports_images = "scripted", True

    def __init__(self, reply: str):
        self.reply = reply

    def stream(self, messages: list[Message], *, max_tokens: int,
               temperature: float) -> Iterator[str]:
        assert messages[0].images, "the image must be sent"
        yield self.reply


def scripted_vlm(settings: GenerateSettings) -> _Scripted:
    """Replies with whatever ``--model`` says."""
    return _Scripted(settings.model)


@pytest.fixture()
def photo(tmp_path: Path) -> Path:
    path = tmp_path / "photo.jpg"
    Image.new("RGB", (400, 200), "white").save(path, quality=95)
    return path


def _main(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", "from mmrag.cli import main; main()", *args],
                          capture_output=True, text=True, cwd=cwd, timeout=300,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})


def test_detect_json_and_png(tmp_path, photo, monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT))
    out = tmp_path / "boxes.png"
    result = CliRunner().invoke(app, ["detect", str(photo), "--labels", "cat, dog",
                                      "--generator", SCRIPTED, "--model", GOOD,
                                      "--out", str(out), "--json"])
    assert result.exit_code == 0, (result.output, result.exception)
    report = json.loads(result.stdout)
    assert report["size"] == [400, 200] and report["out"] == str(out)
    assert report["detections"] == [{"label": "cat", "box": [100, 20, 300, 100],
                                     "box_2d": [100.0, 250.0, 500.0, 750.0]}]
    png = Image.open(out)
    assert png.format == "PNG" and png.size == (400, 200)
    assert png.convert("RGB").getpixel((100, 60)) == PALETTE[0]  # the left edge of the box


def test_default_output_lands_in_the_current_folder(tmp_path, photo):
    work = tmp_path / "work"
    work.mkdir()
    res = _main("detect", str(photo), "--generator", SCRIPTED, "--model", GOOD, cwd=work)
    assert res.returncode == 0, res.stderr
    assert "cat: (100, 20, 300, 100)" in res.stdout
    assert (work / "photo-boxes.png").exists()


def test_malformed_entries_warn_and_the_rest_is_kept(tmp_path, photo):
    reply = json.dumps([{"box_2d": [1, 2, 3], "label": "bad"},
                        {"box_2d": [0, 0, 1000, 1000], "label": "all"}])
    res = _main("detect", str(photo), "--generator", SCRIPTED, "--model", reply,
                "--out", str(tmp_path / "o.png"), "--json")
    assert res.returncode == 0, res.stderr
    assert [d["label"] for d in json.loads(res.stdout)["detections"]] == ["all"]
    assert "dropping box 1" in res.stderr and "Traceback" not in res.stderr


@pytest.mark.parametrize(("args", "expected"), [
    (["--generator", SCRIPTED, "--model", "Sorry, I cannot help with that."], "no JSON"),
    ([], "cannot see images"),                       # the offline default is text-only
])
def test_errors_are_one_line(tmp_path, photo, args, expected):
    res = _main("detect", str(photo), "--out", str(tmp_path / "o.png"), *args)
    assert res.returncode == 1 and "Traceback" not in res.stderr
    lines = [ln for ln in res.stderr.splitlines() if ln.startswith("error:")]
    assert len(lines) == 1 and expected in lines[0], res.stderr
    assert not (tmp_path / "o.png").exists()


def test_unreadable_image_names_the_file(tmp_path):
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    res = _main("detect", str(broken), "--generator", SCRIPTED, "--model", GOOD)
    assert res.returncode == 1 and "Traceback" not in res.stderr
    assert "broken.png" in res.stderr and "cannot read image" in res.stderr
