"""``ingest.executor = "ray"``: a Ray ingest gives what the single-process one gives.

One tiny local cluster (2 CPUs, no dashboard, 300 MB object store) serves the module and
is shut down after it. Its workers run ``tests.ingest.ray_faults.install`` at start-up, so
a test can make a worker kill itself once in the middle of a run.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from mmrag import Index
from tests.factories import make_png, make_text_pdf
from tests.ingest.ray_faults import ENV

ray = pytest.importorskip("ray")

ROOT = Path(__file__).resolve().parents[2]
FAST = {"encode": {"text_encoder": "hashing"}}
QUERIES = ["zeppelin hangar aluminium", "tomatoes full sun", "sailing boat harbour",
           "invoice attached", "ladybirds aphids"]


@pytest.fixture(scope="module")
def cluster() -> Any:
    temp = Path(tempfile.mkdtemp(prefix="ray-", dir="/tmp"))  # short: Ray's socket paths
    faults = temp / "faults"
    faults.mkdir()
    ray.init(num_cpus=2, include_dashboard=False, object_store_memory=300 * 2**20,
             _temp_dir=str(temp / "t"), log_to_driver=False,
             runtime_env={"worker_process_setup_hook": "tests.ingest.ray_faults.install",
                          # the hook's module, importable in the workers too
                          "env_vars": {ENV: str(faults), "PYTHONPATH": os.pathsep.join(
                              filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}})
    try:
        yield faults
    finally:
        ray.shutdown()
        shutil.rmtree(temp, ignore_errors=True)


@pytest.fixture()
def mixed(tmp_path: Path) -> Path:
    """Text, PDF, image, an e-mail with a PDF attachment, a duplicate and a broken file."""
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "notes.md").write_text(
        "# Gardening\n\nTomatoes need full sun and deep watering twice a week.\n\n"
        "## Pests\n\nAphids are controlled with ladybirds and neem oil.\n")
    (docs / "copy-of-notes.md").write_text((docs / "notes.md").read_text())
    (docs / "sailing_boat_harbour.png").write_bytes(make_png("boat", (64, 48)))
    (docs / "report.pdf").write_bytes(make_text_pdf([
        "Quarterly revenue rose to 42 million euros.",
        "The zeppelin hangar was rebuilt in aluminium."]))
    mail = EmailMessage()
    mail["From"], mail["To"], mail["Subject"] = "a@example.org", "b@example.org", "Invoice"
    mail.set_content("Please find the invoice attached.")
    mail.add_attachment(make_text_pdf(["Invoice 77 for the zeppelin repairs."]),
                        maintype="application", subtype="pdf", filename="invoice.pdf")
    (docs / "invoice.eml").write_bytes(bytes(mail))
    (docs / "broken.pdf").write_bytes(b"%PDF-1.4\nnot really a pdf")
    return docs


def _snapshot(index: Index) -> dict[str, Any]:
    """Documents, items and search results, in orders that do not depend on timing."""
    docs = sorted((r.source, r.doc_id, r.parent, tuple(r.item_ids))
                  for r in index.documents())
    ids = [i for r in index.documents() for i in r.item_ids]
    items = sorted((it.id, it.doc_id, it.modality, it.page, it.text, it.section,
                    it.media or "", repr(sorted(it.metadata.items())))
                   for it in index.store.get(sorted(set(ids))))
    hits = {q: [(h.id, round(h.score, 4)) for h in index.search(q, k=5)] for q in QUERIES}
    return {"docs": docs, "items": items, "hits": hits}


def _dense_scores(index: Index) -> dict[str, dict[str, float]]:
    """Every stored vector's inner product with a fixed probe, per space: equal scores
    for every item mean equal vectors, as far as search can tell."""
    out = {}
    for space, enc in index.encoders.items():
        probe = np.random.default_rng(0).normal(size=enc.dim).astype(np.float32)
        out[space] = {it.id: s for it, s in index.store.dense(space, probe, k=1000)}
    return out


def _failed(report: Any) -> list[tuple[str, str]]:
    return sorted((Path(f.source).name, f.reason) for f in report.failed)


def test_ray_ingest_matches_single_process(tmp_path: Path, mixed: Path, cluster: Path):
    with Index(tmp_path / "local", **FAST) as local:
        expected = local.add(mixed, show_progress=False)
        want, want_vectors = _snapshot(local), _dense_scores(local)
    with Index(tmp_path / "ray", ingest={"executor": "ray", "ray_workers": 1}, **FAST) as idx:
        # a run cut short after the PDF was committed: the next run adds only the rest
        first = idx.add(mixed / "report.pdf", show_progress=False)
        assert first.added == [str(mixed / "report.pdf")]
        got = idx.add(mixed, show_progress=False)
        assert str(mixed / "report.pdf") in got.skipped
        assert sorted(got.added + first.added) == sorted(expected.added)
        assert got.items + first.items == expected.items
        assert _failed(got) == _failed(expected) and _failed(got)  # broken.pdf, same words
        snap = _snapshot(idx)
        assert snap["docs"] == want["docs"]
        assert any(parent for _, _, parent, _ in snap["docs"])  # the attachment came along
        assert snap["items"] == want["items"]
        assert snap["hits"] == want["hits"]
        vectors = _dense_scores(idx)
        assert vectors.keys() == want_vectors.keys() and len(vectors) == 2  # text, image
        for space, scores in vectors.items():
            assert scores.keys() == want_vectors[space].keys(), space
            for item_id, score in scores.items():
                assert score == pytest.approx(want_vectors[space][item_id], abs=1e-4)
        assert idx.check().ok
        again = idx.add(mixed, show_progress=False)  # nothing new travels to the cluster
        files = [f for f in mixed.iterdir() if f.name != "broken.pdf"]
        assert not again.added and sorted(again.skipped) == sorted(map(str, files))


@pytest.mark.slow  # a second Ray ingest and a local one, with two worker restarts
def test_ray_ingest_survives_killed_workers(tmp_path: Path, mixed: Path, cluster: Path):
    (cluster / "arm-load").touch()
    (cluster / "arm-embed").touch()
    try:
        with Index(tmp_path / "ray", ingest={"executor": "ray", "ray_workers": 1},
                   **FAST) as idx:
            report = idx.add(mixed, show_progress=False)
            got = _snapshot(idx)
    finally:
        (cluster / "arm-load").unlink()
        (cluster / "arm-embed").unlink()
    # a loading task and an embedding actor each died once mid-run (SIGKILL) ...
    assert (cluster / "killed-load").exists() and (cluster / "killed-embed").exists()
    # ... and the run still added everything the single-process run adds
    with Index(tmp_path / "local", **FAST) as local:
        expected = local.add(mixed, show_progress=False)
        want = _snapshot(local)
    assert sorted(report.added) == sorted(expected.added)
    assert got["docs"] == want["docs"] and got["items"] == want["items"]


def test_cli_add_with_an_unknown_executor_is_one_line(tmp_path: Path, mixed: Path):
    run = subprocess.run([sys.executable, "-m", "mmrag.cli", "add", str(mixed / "notes.md"),
                          "--index", str(tmp_path / "idx"), "--executor", "spark"],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode != 0
    assert "spark" in run.stderr and "Traceback" not in run.stderr


@pytest.mark.slow  # a CLI process joins the test cluster, is killed, and the add runs again
def test_a_killed_driver_loses_nothing_committed_and_a_rerun_adds_the_rest(
        tmp_path: Path, cluster: Path):
    import signal
    import sqlite3
    import time

    docs = tmp_path / "docs"
    docs.mkdir()
    for i in range(12):
        (docs / f"note-{i:02}.md").write_text(f"# Note {i}\n\nThe {i}th lighthouse keeper.\n")
    index = tmp_path / "idx"
    with Index(index, **FAST) as idx:
        assert idx.store.count() == 0  # writes the manifest: the CLI reopens it alike
    env = {**os.environ, "MMRAG_INGEST__BATCH_SIZE": "1", "PYTHONPATH": os.pathsep.join(
        filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    proc = subprocess.Popen([sys.executable, "-m", "mmrag.cli", "add", str(docs), "--index",
                             str(index), "--executor", "ray", "--address",
                             ray.get_runtime_context().gcs_address],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 300  # against a hang, not a timing assertion
    committed = 0
    while proc.poll() is None and time.monotonic() < deadline and not committed:
        if (index / "catalog.sqlite").exists():
            with sqlite3.connect(index / "catalog.sqlite") as db:
                committed = db.execute("SELECT COUNT(*) FROM docs").fetchone()[0]
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait(60)
    with Index(index, ingest={"executor": "ray", "ray_workers": 1}, **FAST) as idx:
        kept = len(idx.documents())
        assert 0 < kept < 12, "the driver was to be killed between two commits"
        assert idx.check().ok  # what it committed is whole; nothing half-written stays
        report = idx.add(docs, show_progress=False)
        assert len(report.skipped) == kept and len(report.added) == 12 - kept
        assert len(idx.documents()) == 12 and idx.check().ok


@pytest.mark.slow  # a tiny CLIP model loaded locally and in an actor
def test_ray_ingest_wiring_clip_profile(tmp_path: Path, tiny_clip_path: Path, cluster: Path):
    """A dual encoder (tiny random-weight CLIP, loaded from its folder by the actors): its
    image space holds the same vectors after a Ray ingest as after a local one. Wiring
    only, never quality."""
    (tmp_path / "docs").mkdir()
    docs = tmp_path / "docs"
    (docs / "red.png").write_bytes(make_png("red", (64, 48)))
    (docs / "boat.png").write_bytes(make_png("boat", (80, 60)))
    (docs / "report.pdf").write_bytes(make_text_pdf(["a photo of the red car"]))
    clip = {"profile": "clip", "encode": {"vision_model": str(tiny_clip_path),
                                          "text_encoder": "hashing"}}
    with Index(tmp_path / "local", **clip) as local:
        assert not local.add(docs, show_progress=False).failed
        want, want_vectors = _snapshot(local), _dense_scores(local)
    with Index(tmp_path / "ray", ingest={"executor": "ray", "ray_workers": 1}, **clip) as idx:
        report = idx.add(docs, show_progress=False)
        assert not report.failed, report.failed
        got, vectors = _snapshot(idx), _dense_scores(idx)
    assert got["docs"] == want["docs"] and got["items"] == want["items"]
    assert "clip" in vectors and vectors.keys() == want_vectors.keys()
    for space, scores in vectors.items():
        assert scores.keys() == want_vectors[space].keys() and scores, space
        for item_id, score in scores.items():
            assert score == pytest.approx(want_vectors[space][item_id], abs=1e-4)


def test_cli_add_with_an_unreachable_cluster_is_one_line(tmp_path: Path, mixed: Path):
    import socket

    with socket.socket() as s:  # a port nothing listens on once this closes
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    run = subprocess.run([sys.executable, "-m", "mmrag.cli", "add", str(mixed / "notes.md"),
                          "--index", str(tmp_path / "idx"), "--executor", "ray",
                          "--address", f"127.0.0.1:{port}"],
                         capture_output=True, text=True, timeout=300,
                         env={**os.environ, "MMRAG_ENCODE__TEXT_ENCODER": "hashing"})
    assert run.returncode != 0 and "Traceback" not in run.stderr
    assert f"cannot reach the Ray cluster at '127.0.0.1:{port}'" in run.stderr
