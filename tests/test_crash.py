"""Crash anywhere: `mmrag add`, `delete` and `optimize` SIGKILLed at random moments.

After every kill the index is reopened and checked (every committed document whole and
searchable, no orphan rows), then the command is run again to completion. The moments
are drawn from a seeded generator over each command's measured run time, so kills land
in loading, between commit groups, inside store writes and inside compaction alike.
"""

from __future__ import annotations

import hashlib
import os
import random
import signal
import time
from pathlib import Path

from mmrag import Index
from tests.factories import make_png, make_text_pdf
from tests.faults import Launcher

SEED = 1313
KILLS = 27  # the issue asks for 25+
N_TEXT = 14
# Left behind by a kill and collected by the next optimize or check --repair: media
# written for a document whose commit never came (see locks.py).
AFTER_KILL_OK = {"unreferenced-media"}


def _write_docs(docs: Path, version: dict[str, int], tokens: dict[str, str]) -> None:
    """Small text files (one unique token each), images and a PDF: every kind of commit
    (text only, media files, page renders) in a few hundred milliseconds of ingest.
    ``tokens`` learns each note version's doc id → token: after a kill the catalog may
    hold either version of a replaced note."""
    for i in range(N_TEXT):
        name = f"note{i:02d}.md"
        v = version.get(name, 0)
        body = " ".join(f"sentence {j} of note {i} version {v}." for j in range(40))
        data = f"# Note {i}\n\ntok{i}x{v} {body}\n".encode()
        (docs / name).write_bytes(data)
        tokens[hashlib.sha256(data).hexdigest()[:16]] = f"tok{i}x{v}"
    for i, colour in enumerate(("red", "green", "blue")):
        (docs / f"pic{i}.png").write_bytes(make_png(colour, (48 + i, 40)))
    (docs / "report.pdf").write_bytes(make_text_pdf(["zeppelin hangar page one",
                                                     "airship mooring page two"]))


def _assert_whole(where: Path, tokens: dict[str, str], allowed: set[str]) -> int:
    """Reopen (recovery runs), check, and search a token of every committed note."""
    with Index(where) as index:
        report = index.check()
        bad = [p.line() for p in report.problems if p.kind not in allowed]
        assert not bad, bad
        records = index.documents()
        ids = [i for r in records for i in r.item_ids]
        assert len(index.store.get(ids)) == len(set(ids))
        for r in records:
            token = tokens.get(r.doc_id)
            if token is None:
                continue
            hits = index.search(token, k=1, mode="bm25")
            assert hits and hits[0].item.source == r.source, (token, r.source)
        return len(records)


def _command(rng: random.Random, docs: Path, where: Path, version: dict[str, int],
             tokens: dict[str, str]) -> list[str]:
    kind = rng.choice(["add", "add", "delete", "optimize"])
    if kind == "add":
        for name in rng.sample(sorted(version), 2):  # some sources are replaced
            version[name] += 1
        _write_docs(docs, version, tokens)
        return ["add", str(docs), "--index", str(where)]
    if kind == "delete":
        names = rng.sample(sorted(p.name for p in docs.iterdir()), 4)
        return ["delete", *[str(docs / n) for n in names], "--index", str(where)]
    return ["optimize", "--index", str(where)]


def test_sigkill_at_random_moments_loses_nothing_and_leaves_no_orphans(tmp_path):
    rng = random.Random(SEED)
    docs, where = tmp_path / "docs", tmp_path / "idx"
    docs.mkdir()
    (tmp_path / "logs").mkdir()
    version = {f"note{i:02d}.md": 0 for i in range(N_TEXT)}
    tokens: dict[str, str] = {}
    _write_docs(docs, version, tokens)
    took = {"add": 1.0, "delete": 0.4, "optimize": 0.4}  # refined by each completed run
    kills, rounds = 0, 0
    env = {"MMRAG_INGEST__BATCH_SIZE": "2"}  # many commit groups: many places to die
    with Launcher(tmp_path / "logs", env) as launcher:
        code, output = launcher.run("add", str(docs), "--index", str(where))
        assert code == 0, output
        while kills < KILLS:
            rounds += 1
            assert rounds < KILLS * 3, f"only {kills} kills landed mid-run"
            argv = _command(rng, docs, where, version, tokens)
            pid, _ = launcher.start(*argv)
            t0 = time.monotonic()
            time.sleep(rng.uniform(0.0, took[argv[0]]))
            os.kill(pid, signal.SIGKILL)
            if launcher.wait(pid) == -signal.SIGKILL:
                kills += 1
            else:
                took[argv[0]] = time.monotonic() - t0
            _assert_whole(where, tokens, AFTER_KILL_OK)
            code, output = launcher.run(*argv)  # the interrupted command, run again
            assert code in (0, 1), output  # delete says 1 when the files are gone already
            assert "Traceback" not in output, output
            _assert_whole(where, tokens, AFTER_KILL_OK)
        code, output = launcher.run("add", str(docs), "--index", str(where))
        assert code == 0, output
        code, output = launcher.run("optimize", "--index", str(where))
        assert code == 0, output
        code, output = launcher.run("check", "--index", str(where))
        assert code == 0 and "consistent" in output, output
    n = _assert_whole(where, tokens, set())
    assert n == len(list(docs.iterdir()))  # every file, in its latest version
    with Index(where) as index:
        by_source = {Path(r.source).name: r for r in index.documents()}
        for name, v in version.items():
            hit = index.search(f"tok{int(name[4:6])}x{v}", k=1, mode="bm25")[0]
            assert hit.item.doc_id == by_source[name].doc_id
