"""Seeded mutation fuzzing of every loader through the real ingest path (``Index.add``).

Case ``i`` of seed ``s`` is a small valid file (:mod:`tests.ingest.fuzz_seeds`) with one
to three byte-level mutations, all drawn from ``random.Random(f"{s}:{i}")``: any case
is regenerated from its number alone (:func:`make_case`). Each case is saved under a
name that says what it is and added to an index by a worker process with the hashing
text encoder, OCR and transcription off (the loaders still decode everything), under
``RLIMIT_AS`` and a per-case timeout kept by the parent. The parent records, per case:

- crash: the worker died (a signal, an abort) or ``Index.add`` raised;
- hang: no answer within the timeout (the worker is killed and replaced);
- traceback: ``Traceback`` text or a printed Python warning in the worker's stderr;
- bad message: a failure whose ``str()`` is not one line naming the input, or that
  holds ``Traceback``;
- inconsistent: catalog and store disagree, or a failed input left rows behind;
- unexpected: a reason carrying a raw exception name (a library error caught by the
  loader guard: handled, one line, but worth a clear message of its own).

Run the long version with ``python -m tests.ingest.fuzz --cases 10000``.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import queue
import random
import re
import resource
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import zipfile
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.ingest.fuzz_seeds import SEEDS, seed_bytes

REPO = Path(__file__).resolve().parents[2]
# The index the worker adds to: every loader runs, the expensive models do not.
WORKER_SETTINGS: dict[str, Any] = {
    "encode": {"text_encoder": "hashing"},
    "ingest": {"ocr": "never", "transcribe": False, "audio_clips": True,
               "office_renders": False},
    "show_progress": False,
}
# RLIMIT_AS of a worker: a runaway allocation fails there instead of taking the host. It
# is generous because address space is not memory: a warm worker maps ~3 GiB (thread
# stacks, malloc arenas, ONNX/FFmpeg pools), and FFmpeg segfaults where a thread cannot
# be created, which users never see. What a mutant really uses is bounded by RSS_LIMIT.
MEMORY_LIMIT = 16 << 30
# Resident bytes of a worker before the parent kills it (a finding). The largest image
# the default settings accept (ingest.max_image_pixels, 450 Mpx) decodes to 1.8 GB of
# RGBA, and one full decode plus 30 % is the design (tests/ingest/test_large_inputs.py):
# a 173-byte GIF declaring an 8181x47518 screen legitimately peaks at ~2.1 GB.
RSS_LIMIT = 3 << 30
ROTATE_EVERY = 150  # cases per index: keeps each add's store write small
WARM_UP = 60.0  # seconds a fresh worker gets on top of the per-case timeout
CHECK_EVERY = 25  # cases between full catalog <-> store comparisons
SETTINGS_ENV = "MMRAG_FUZZ_SETTINGS"  # JSON merged over WORKER_SETTINGS (e.g. renders on)
# How Python prints a warning on stderr: "path.py:12: UserWarning: message".
PY_WARNING = re.compile(r"\.py:\d+: \w*Warning: .*")
# A reason naming a raw exception type: a library error the loader guard caught.
RAW_EXCEPTION = re.compile(r"\b[A-Z]\w*(Error|Exception|Warning)\b:?|\bErrno\b")

Mutation = Callable[[random.Random, bytes], bytes]


# -- mutations --------------------------------------------------------------------------
def _span(rng: random.Random, data: bytes, most: int = 256) -> tuple[int, int]:
    start = rng.randrange(len(data) or 1)
    return start, min(len(data), start + rng.randint(1, most))


def flip(rng: random.Random, data: bytes) -> bytes:
    out = bytearray(data)
    for _ in range(rng.randint(1, 8)):
        if out:
            out[rng.randrange(len(out))] ^= 1 << rng.randrange(8)
    return bytes(out)


def poke(rng: random.Random, data: bytes) -> bytes:
    """Bytes set to the values that sit on boundaries (sizes, counts, signs)."""
    out = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        if out:
            out[rng.randrange(len(out))] = rng.choice((0, 1, 0x7F, 0x80, 0xFE, 0xFF))
    return bytes(out)


def number(rng: random.Random, data: bytes) -> bytes:
    """An ASCII number (a PDF /Count or /Length, an XML size) made huge, zero or negative."""
    found = [m.span() for m in re.finditer(rb"\d+", data[:200_000])]
    if not found:
        return flip(rng, data)
    a, b = rng.choice(found)
    return data[:a] + rng.choice((b"0", b"-1", b"4294967295", b"99999999999999")) + data[b:]


def truncate(rng: random.Random, data: bytes) -> bytes:
    return data[:rng.randrange(len(data) or 1)]


def insert(rng: random.Random, data: bytes) -> bytes:
    at = rng.randrange(len(data) + 1)
    return data[:at] + rng.randbytes(rng.randint(1, 64)) + data[at:]


def duplicate(rng: random.Random, data: bytes) -> bytes:
    a, b = _span(rng, data)
    return data[:b] + data[a:b] * rng.randint(1, 4) + data[b:]


def delete(rng: random.Random, data: bytes) -> bytes:
    a, b = _span(rng, data)
    return data[:a] + data[b:]


def zero(rng: random.Random, data: bytes) -> bytes:
    a, b = _span(rng, data)
    return data[:a] + bytes(b - a) + data[b:]


BYTE_MUTATIONS: dict[str, Mutation] = {
    "flip": flip, "poke": poke, "number": number, "trunc": truncate, "insert": insert,
    "dup": duplicate, "delete": delete, "zero": zero}


def member(rng: random.Random, data: bytes) -> bytes:
    """A zip member's *uncompressed* bytes mutated and the zip rebuilt: checksums stay
    valid, so the XML/CFB parsers behind the zip layer see the damage."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            members = [(i, zf.read(i)) for i in zf.infolist()]
    except Exception:  # noqa: BLE001  (an earlier mutation broke the zip: flip its bytes)
        return flip(rng, data)
    pick = rng.randrange(len(members))
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as out:
        for n, (info, body) in enumerate(members):
            if n == pick:
                body = rng.choice(list(BYTE_MUTATIONS.values()))(rng, body)
            out.writestr(info, body)
    return buf.getvalue()


# -- structure-aware mutations of the XML inside zips ("deep" cases) -----------------------
# Values that parsers turn into sizes, counts, ranges and paths.
ODD_VALUES = (b"0", b"-1", b"x", b"", b"400000000", b"4294967295", b"99999999999999",
              b"A1:XFD1048576", b"1E+308", b"../../../../etc/passwd", b"#nothing")
_ATTR = re.compile(rb'(\s[\w:.-]+=")([^"]*)(")')
_XML_MEMBER = (".xml", ".xhtml", ".opf", ".rels", ".ncx")


def attr_value(rng: random.Random, data: bytes) -> bytes:
    """One attribute value replaced by an odd one: the XML stays well-formed, so the
    document parsers (not the zip or XML layer) meet it."""
    found = [m.span(2) for m in _ATTR.finditer(data[:500_000])]
    if not found:
        return number(rng, data)
    a, b = rng.choice(found)
    return data[:a] + rng.choice(ODD_VALUES) + data[b:]


def attr_drop(rng: random.Random, data: bytes) -> bytes:
    """One attribute removed (a required id, href or size gone)."""
    found = [m.span() for m in _ATTR.finditer(data[:500_000])]
    if not found:
        return delete(rng, data)
    a, b = rng.choice(found)
    return data[:a] + data[b:]


DEEP_MUTATIONS: dict[str, Mutation] = {"value": attr_value, "drop": attr_drop,
                                       "number": number}


def deep_member(rng: random.Random, data: bytes, op: str) -> bytes:
    """``op`` applied to one XML member of a zip, which is rebuilt with valid checksums."""
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        members = [(i, zf.read(i)) for i in zf.infolist()]
    xml = [n for n, (i, _) in enumerate(members) if i.filename.endswith(_XML_MEMBER)]
    pick = rng.choice(xml or range(len(members)))
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as out:
        for n, (info, body) in enumerate(members):
            out.writestr(info, DEEP_MUTATIONS[op](rng, body) if n == pick else body)
    return buf.getvalue()


def make_deep_case(seed: int, number: int) -> Case:
    """Deep case ``number`` of ``seed``: a zip-based seed (office, e-book) with one to
    three attribute-level edits in its XML. A stream of its own (names ``fz{seed}-d...``),
    so adding it left the byte-level cases' numbers as they were."""
    kinds = [k for k in sorted(SEEDS) if seed_bytes(k)[:2] == b"PK"]
    kind = kinds[number % len(kinds)]
    rng = random.Random(f"{seed}:{number}:deep")
    ops = tuple(rng.choice(sorted(DEEP_MUTATIONS)) for _ in range(rng.choice((1, 1, 2, 3))))
    data = seed_bytes(kind)
    for op in ops:
        data = deep_member(rng, data, op)
    ext = SEEDS[kind][0].rpartition(".")[2]
    return Case(number, kind, ops, f"fz{seed}-d{number:05d}-{kind}-{'+'.join(ops)}.{ext}",
                data)


# -- cases ------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Case:
    number: int
    kind: str
    ops: tuple[str, ...]
    name: str
    data: bytes


def make_case(seed: int, number: int, kinds: list[str] | None = None,
              pristine: bool = False) -> Case:
    """Case ``number`` of ``seed``: the kind cycles, the mutations come from the rng
    (none when ``pristine``: the seeds themselves must load, or nothing is fuzzed)."""
    kinds = kinds or sorted(SEEDS)
    kind = kinds[number % len(kinds)]
    rng = random.Random(f"{seed}:{number}")
    data = seed_bytes(kind)
    names = sorted(BYTE_MUTATIONS) + (["member"] if data[:2] == b"PK" else [])
    ops: tuple[str, ...] = () if pristine else tuple(
        rng.choice(names) for _ in range(rng.choice((1, 1, 2, 3))))
    for op in ops:
        data = member(rng, data) if op == "member" else BYTE_MUTATIONS[op](rng, data)
    ext = SEEDS[kind][0].rpartition(".")[2]
    name = f"fz{seed}-{number:05d}-{kind}-{'+'.join(ops) or 'seed'}.{ext}"
    return Case(number, kind, ops, name, data)


# -- the worker (a process of its own) ----------------------------------------------------
def _check(index: Any, report: Any, full: bool) -> str:
    """'' if catalog and store agree about this add, else what is wrong."""
    for source in [*report.added, *report.replaced]:
        rec = index.catalog.by_source(source)
        if rec is None:
            return f"added {source} has no catalog record"
        if len(index.store.get(rec.item_ids)) != len(rec.item_ids):
            return f"{source}: {len(rec.item_ids)} items catalogued, not all in the store"
    for failure in report.failed:
        if index.catalog.by_source(failure.source) is not None:
            return f"failed {failure.source} has a catalog record"
    if full:
        # silent audio/video is catalogued with no items (a re-add skips it), so only
        # documents with items must be in the store
        catalog = {r.doc_id for r in index.catalog.all() if r.item_ids}
        store = index.store.doc_ids()
        if catalog != store:
            return (f"catalog and store disagree: only catalogued "
                    f"{[r.source for r in index.catalog.all() if r.doc_id in catalog - store]}"
                    f", only stored {sorted(store - catalog)}")
    return ""


def _merged(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    """``base`` with ``extra``'s keys, sections merged (``{"ingest": {...}}``)."""
    out = dict(base)
    for key, value in extra.items():
        out[key] = ({**out[key], **value} if isinstance(value, dict)
                    and isinstance(out.get(key), dict) else value)
    return out


def worker_main(root: str) -> None:
    """Answer each path on stdin with one JSON line on the protocol pipe (the real
    stdout); anything a library prints goes to stderr, where the parent looks for it."""
    proto = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    from mmrag import Index

    settings = _merged(WORKER_SETTINGS, json.loads(os.environ.get(SETTINGS_ENV) or "{}"))
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))
    index, done, n = None, 0, 0
    for line in sys.stdin:
        if index is None or done >= ROTATE_EVERY:
            if index is not None:
                index.close()
            index, done, n = Index(Path(root) / f"idx{n}", **settings), 0, n + 1
        path = json.loads(line)["path"]
        t0 = time.perf_counter()
        try:
            report = index.add([path])
        except BaseException as exc:  # noqa: BLE001  (the finding: Index.add must not raise)
            import traceback

            proto.write(json.dumps({"raised": traceback.format_exc(),
                                    "type": type(exc).__name__}) + "\n")
            continue
        done += 1
        proto.write(json.dumps({
            "added": report.added, "skipped": report.skipped,
            "failed": [str(f) for f in report.failed],
            "seconds": time.perf_counter() - t0,
            "problem": _check(index, report, full=done % CHECK_EVERY == 0)}) + "\n")


def _rss(pid: int) -> int:
    """Resident bytes of process ``pid`` (0 once it is gone)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            line = next(x for x in f if x.startswith("VmRSS:"))
    except (OSError, StopIteration):
        return 0
    return int(line.split()[1]) * 1024


class Worker:
    """One worker process; restarted after it hangs or dies."""

    def __init__(self, root: Path, slot: int, argv: list[str] | None = None,
                 warm_up: float = WARM_UP):
        self.root, self.slot, self.starts, self.warm_up = root, slot, 0, warm_up
        self.argv = argv or [sys.executable, "-m", "tests.ingest.fuzz", "--worker"]
        self.proc: subprocess.Popen[str] | None = None
        self.err_path = root / f"worker{slot}.stderr"
        self.err_seen = 0

    def start(self) -> None:
        self.starts += 1
        home = self.root / f"w{self.slot}-{self.starts}"
        with open(self.err_path, "ab") as err:  # the child keeps its own descriptor
            self.proc = subprocess.Popen(
                [*self.argv, str(home)],
                cwd=REPO, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err,
                text=True, start_new_session=True)

    def ask(self, path: Path, timeout: float) -> dict[str, Any] | None:
        """The worker's answer, or None after killing a worker that took too long."""
        if self.proc is None or self.proc.poll() is not None:
            self.start()
            timeout += self.warm_up  # a fresh worker first imports mmrag and opens an index
        assert self.proc and self.proc.stdin and self.proc.stdout
        try:
            self.proc.stdin.write(json.dumps({"path": str(path)}) + "\n")
            self.proc.stdin.flush()
        except BrokenPipeError:
            return {"died": self.proc.wait()}
        deadline = time.monotonic() + timeout
        while not select.select([self.proc.stdout], [], [], 0.2)[0]:
            rss = _rss(self.proc.pid)
            if rss > RSS_LIMIT or time.monotonic() > deadline:
                self.stop()
                return {"memory": rss} if rss > RSS_LIMIT else None
        line = self.proc.stdout.readline()
        return json.loads(line) if line else {"died": self.proc.wait()}

    def new_stderr(self) -> str:
        with open(self.err_path, "rb") as f:
            f.seek(self.err_seen)
            text = f.read()
        self.err_seen += len(text)
        return text.decode("utf-8", "replace")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        self.proc = None


# -- the run ------------------------------------------------------------------------------
@dataclass
class Summary:
    seed: int
    cases: int = 0
    seconds: float = 0.0
    outcome: Counter[tuple[str, str]] = field(default_factory=Counter)  # (kind, status)
    crashes: list[str] = field(default_factory=list)
    hangs: list[str] = field(default_factory=list)
    memory: list[str] = field(default_factory=list)
    tracebacks: list[str] = field(default_factory=list)
    bad_messages: list[str] = field(default_factory=list)
    inconsistent: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    noise: Counter[str] = field(default_factory=Counter)  # stderr lines, numbers masked
    slowest: tuple[float, str] = (0.0, "")

    @property
    def clean(self) -> bool:
        return not self.findings()

    def findings(self) -> list[str]:
        return [*self.crashes, *self.hangs, *self.memory, *self.tracebacks,
                *self.bad_messages, *self.inconsistent]


def _judge(case: Case, answer: dict[str, Any] | None, stderr: str, summary: Summary,
           timeout: float) -> None:
    """Sort one answer into the summary (called under the summary's lock)."""
    tag = f"{case.name}"
    if answer is None:
        summary.hangs.append(f"{tag}: no answer in {timeout:.0f} s")
        summary.outcome[case.kind, "hang"] += 1
        return
    if "memory" in answer:
        summary.memory.append(f"{tag}: {answer['memory'] >> 20} MiB resident")
        summary.outcome[case.kind, "memory"] += 1
        return
    if "died" in answer or "raised" in answer:
        why = answer.get("raised") or f"worker exited with {answer['died']}: {stderr[-500:]}"
        summary.crashes.append(f"{tag}: {why}")
        summary.outcome[case.kind, "crash"] += 1
        return
    warned = PY_WARNING.search(stderr)  # warnings.warn shown to the user: 2 lines, no name
    if "Traceback" in stderr or warned:
        summary.tracebacks.append(f"{tag}: {stderr[-800:] if not warned else warned[0]}")
    summary.noise.update(re.sub(r"0x[0-9a-f]+|\d+", "N", line)[:120]
                         for line in stderr.splitlines() if line.strip())
    if answer["problem"]:
        summary.inconsistent.append(f"{tag}: {answer['problem']}")
    for line in answer["failed"]:
        if "\n" in line or "\r" in line or case.name not in line or "Traceback" in line:
            summary.bad_messages.append(f"{tag}: {line!r}")
        if RAW_EXCEPTION.search(line.split(": ", 1)[-1]):
            summary.unexpected.append(line)
    status = "added" if answer["added"] else "failed" if answer["failed"] else "skipped"
    summary.outcome[case.kind, status] += 1
    summary.slowest = max(summary.slowest, (answer["seconds"], case.name))


def run(cases: int, seed: int = 0, workers: int = 2, timeout: float = 60.0,
        kinds: list[str] | None = None, start: int = 0, pristine: bool = False,
        deep: bool = False) -> Summary:
    """Feed cases ``start .. start+cases`` of ``seed`` through ``workers`` processes."""
    summary = Summary(seed)
    todo: queue.Queue[int] = queue.Queue()
    for n in range(start, start + cases):
        todo.put(n)
    lock = threading.Lock()
    root = Path(tempfile.mkdtemp(prefix="mmrag-fuzz-"))
    t0 = time.perf_counter()

    def drive(slot: int) -> None:
        worker = Worker(root, slot)
        files = root / f"cases{slot}"
        files.mkdir()
        try:
            while True:
                try:
                    n = todo.get_nowait()
                except queue.Empty:
                    return
                case = make_deep_case(seed, n) if deep else make_case(seed, n, kinds,
                                                                       pristine)
                path = files / case.name
                path.write_bytes(case.data)
                answer = worker.ask(path, timeout)
                path.unlink()
                with lock:
                    _judge(case, answer, worker.new_stderr(), summary, timeout)
                    summary.cases += 1
        finally:
            worker.stop()

    threads = [threading.Thread(target=drive, args=(s,)) for s in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    summary.seconds = time.perf_counter() - t0
    shutil.rmtree(root, ignore_errors=True)
    return summary


def report(summary: Summary) -> str:
    """A Markdown table of outcomes by kind, then every finding."""
    kinds = sorted({k for k, _ in summary.outcome})
    cols = ["added", "failed", "skipped", "crash", "hang", "memory"]
    lines = [(f"cases {summary.cases}, seed {summary.seed}, {summary.seconds:.0f} s "
             f"({summary.cases / max(summary.seconds, 1e-9):.1f} cases/s); crashes "
             f"{len(summary.crashes)}, hangs {len(summary.hangs)}, over memory "
             f"{len(summary.memory)}, tracebacks "
             f"{len(summary.tracebacks)}, bad messages {len(summary.bad_messages)}, "
             f"inconsistent {len(summary.inconsistent)}; slowest case "
             f"{summary.slowest[0]:.2f} s ({summary.slowest[1]})"), "",
             "| kind | " + " | ".join(cols) + " |", "|---|" + "---:|" * len(cols)]
    for k in kinds:
        lines.append(f"| {k} | " + " | ".join(str(summary.outcome[k, c]) for c in cols)
                     + " |")
    raw = Counter(RAW_EXCEPTION.search(u.split(": ", 1)[-1]).group(0)  # type: ignore[union-attr]
                  for u in summary.unexpected)
    lines += ["", f"raw exception names in reasons: {dict(raw.most_common())}"]
    lines += ["", f"worker stderr lines: {sum(summary.noise.values())}",
              *(f"    {n} x {line}" for line, n in summary.noise.most_common(15))]
    lines += ["", *(f"- {f[:600]}" for f in summary.findings())]
    return "\n".join(lines)


def _samples(summary: Summary, n: int = 60) -> Iterator[str]:
    """One reason per (kind, exception name, message start), to triage loader fixes."""
    seen: set[str] = set()
    for line in summary.unexpected:
        source, _, reason = line.partition(": ")
        found = RAW_EXCEPTION.search(reason)
        key = f"{source.rsplit('.', 1)[-1]} {found.group(0) if found else ''} {reason[:40]}"
        if key not in seen:
            seen.add(key)
            yield line
        if len(seen) >= n:
            return


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--cases", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--start", type=int, default=0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--timeout", type=float, default=60.0)
    parser.add_argument("--kinds", default="", help="comma-separated seed kinds")
    parser.add_argument("--samples", action="store_true", help="print unexpected reasons")
    parser.add_argument("--pristine", action="store_true", help="the seeds, unmutated")
    parser.add_argument("--deep", action="store_true",
                        help="attribute-level edits of the XML in zip-based seeds")
    parser.add_argument("--settings", default="", help=f"JSON over {WORKER_SETTINGS}")
    args = parser.parse_args()
    if args.worker:
        worker_main(args.worker)
        return
    if args.settings:
        os.environ[SETTINGS_ENV] = args.settings  # the workers inherit it
    summary = run(args.cases, args.seed, args.workers, args.timeout,
                  [k for k in args.kinds.split(",") if k] or None, args.start, args.pristine,
                  args.deep)
    print(report(summary))
    if args.samples:
        print("\n".join(_samples(summary)))


if __name__ == "__main__":
    main()
