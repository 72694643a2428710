"""HTTP mixed workload: 40 searching, 5 asking (SSE) and 5 uploading clients at once.

    python benchmarks/bench_server_mixed.py [--seconds 60] [--warmup 20] [--items 10000]
        [--searchers 40] [--askers 5] [--uploaders 5] [--label TEXT]

The same 10k-item collection and server as ``bench_server.py`` (offline profile, `hashing`
text encoder, `mmrag serve --data` on 127.0.0.1 in its own process, the default
`extractive` generator), then for ``--seconds``:

- searchers loop ``GET /collections/bench/search?q=<2-3 words>&k=10``;
- askers loop ``POST /collections/bench/ask`` and read the SSE stream to its ``done``
  event (time to the first event and to the end are both recorded);
- uploaders loop: ``POST /collections/bench/items`` with 1-3 new Markdown files, then
  poll ``GET /jobs/{id}`` every 0.5 s until the job ends.

An error is a transport error, an unexpected status, an SSE ``error`` event or a failed
job. The server's RSS is read after a warm-up search and ask ("cold"), after ``--warmup``
seconds of the same mixed load whose requests are not counted (caches, thread pools and
allocator arenas fill there: "before"), and at the end of the measured load ("after"):
before → after is the figure for memory staying flat. Then a new server is started on the
grown collection and given the same warm-up load: its RSS is what the data and warm caches
take, so the old server's after-load RSS above it is memory the load kept. Writes its
section into benchmarks/results/server.md (after the marker
``MIXED_MARKER``; ``bench_server.py`` keeps that section when it rewrites the file).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import tempfile
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import numpy as np
import psutil
from bench_server import (
    COLLECTION,
    OUT,
    WORDS,
    build,
    document,
    free_port,
    start_server,
    stop_server,
)

MIXED_MARKER = "<!-- mixed workload: written by bench_server_mixed.py -->"
DEFAULTS = {"seconds": 60.0, "warmup": 20.0, "items": 10_000, "searchers": 40, "askers": 5,
            "uploaders": 5}


@dataclass
class Tally:
    """Latencies (seconds) per route and errors per kind, shared by every client."""

    latencies: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    errors: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    jobs: dict[str, int] = field(default_factory=lambda: defaultdict(int))

    def ok(self, route: str, seconds: float) -> None:
        self.latencies[route].append(seconds)

    def error(self, route: str, kind: str) -> None:
        self.errors[f"{route}: {kind}"] += 1

    def row(self, route: str, elapsed: float) -> str:
        ms = np.array(self.latencies.get(route) or [np.nan]) * 1000
        n = len(self.latencies.get(route, []))
        errors = sum(v for k, v in self.errors.items() if k.startswith(f"{route}:"))
        p50, p99 = np.percentile(ms, [50, 99])
        return (f"| {route} | {n} | {n / elapsed:.1f} | {p50:.0f} | {p99:.0f} | "
                f"{np.nanmax(ms):.0f} | {errors} |")


def query(rng: random.Random) -> str:
    return " ".join(rng.sample(WORDS, rng.randint(2, 3)))


async def timed(tally: Tally, route: str, call) -> httpx.Response | None:
    t0 = time.perf_counter()
    try:
        resp = await call()
    except httpx.HTTPError as exc:
        tally.error(route, type(exc).__name__)
        return None
    tally.ok(route, time.perf_counter() - t0)
    return resp


async def searcher(http: httpx.AsyncClient, tally: Tally, stop: float,
                   rng: random.Random) -> None:
    route = "GET search"
    while time.monotonic() < stop:
        resp = await timed(tally, route, lambda: http.get(
            f"/collections/{COLLECTION}/search", params={"q": query(rng), "k": 10}))
        if resp is not None and resp.status_code != 200:
            tally.error(route, f"HTTP {resp.status_code}")


async def asker(http: httpx.AsyncClient, tally: Tally, stop: float,
                rng: random.Random) -> None:
    while time.monotonic() < stop:
        body = {"question": f"what about the {query(rng)}?"}
        t0 = time.perf_counter()
        first = None
        events: list[str] = []
        try:
            async with http.stream("POST", f"/collections/{COLLECTION}/ask",
                                   json=body) as resp:
                if resp.status_code != 200:
                    tally.error("POST ask (SSE)", f"HTTP {resp.status_code}")
                    await resp.aread()
                    continue
                async for line in resp.aiter_lines():
                    if line.startswith("event: "):
                        first = first or time.perf_counter() - t0
                        events.append(line[7:])
        except httpx.HTTPError as exc:
            tally.error("POST ask (SSE)", type(exc).__name__)
            continue
        if events[-1:] != ["done"]:
            tally.error("POST ask (SSE)", f"stream ended with {events[-1:] or 'nothing'}")
            continue
        tally.ok("POST ask (SSE)", time.perf_counter() - t0)
        tally.ok("POST ask, first event", first or 0.0)


async def uploader(http: httpx.AsyncClient, tally: Tally, stop: float,
                   rng: random.Random, number: int) -> None:
    serial = 0
    while time.monotonic() < stop:
        files = []
        for _ in range(rng.randint(1, 3)):
            serial += 1
            name = f"up{number:02d}-{serial:04d}.md"
            files.append(("files", (name, document(rng, 100_000 * (number + 1) + serial, 10),
                                    "text/markdown")))
        resp = await timed(tally, "POST items", lambda files=files: http.post(
            f"/collections/{COLLECTION}/items", files=files))
        if resp is None:
            continue
        if resp.status_code != 202:
            tally.error("POST items", f"HTTP {resp.status_code}")
            continue
        await follow(http, tally, resp.json()["status_url"])


async def follow(http: httpx.AsyncClient, tally: Tally, url: str) -> None:
    """Poll a job until it ends (even past the stop time: its outcome counts)."""
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        await asyncio.sleep(0.5)
        resp = await timed(tally, "GET jobs", lambda: http.get(url))
        if resp is None:
            continue
        if resp.status_code != 200:
            tally.error("GET jobs", f"HTTP {resp.status_code}")
            return
        job = resp.json()
        if job["status"] in ("done", "failed"):
            tally.jobs[job["status"]] += 1
            tally.jobs["files"] += len(job["added"])
            if job["status"] == "failed" or job["failed"]:
                tally.error("POST items", f"job {job['status']}: {job['error'] or job['failed']}")
            return
    tally.error("POST items", "job still running after 300 s")


async def run(base: str, args: argparse.Namespace, tally: Tally,
              seconds: float | None = None, seed: int = 0) -> float:
    clients = args.searchers + args.askers + args.uploaders
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=120) as http:
        t0 = time.monotonic()
        stop = t0 + (args.seconds if seconds is None else seconds)
        await asyncio.gather(
            *(searcher(http, tally, stop, random.Random(seed + 10 + i))
              for i in range(args.searchers)),
            *(asker(http, tally, stop, random.Random(seed + 100 + i))
              for i in range(args.askers)),
            *(uploader(http, tally, stop, random.Random(seed + 200 + i), i + 10 * seed)
              for i in range(args.uploaders)))
        return time.monotonic() - t0


def rss_mib(pid: int) -> float:
    return psutil.Process(pid).memory_info().rss / 2**20


def sample_rss(pid: int, samples: list[float], args: argparse.Namespace) -> None:
    """The server's RSS every tenth of the run: growth that keeps on is a leak, growth
    that levels off is caches filling."""
    for _ in range(10):
        time.sleep(args.seconds / 10)
        samples.append(rss_mib(pid))


def warm(base: str) -> None:
    """Open the collection, load encoders and generator: not part of the figures."""
    httpx.get(f"{base}/collections/{COLLECTION}/search", params={"q": "warm up"},
              timeout=120).raise_for_status()
    with httpx.stream("POST", f"{base}/collections/{COLLECTION}/ask",
                      json={"question": "warm up"}, timeout=120) as resp:
        resp.raise_for_status()
        for _ in resp.iter_lines():
            pass


def fresh_rss(data: Path, port: int, log: Path, args: argparse.Namespace) -> float:
    """RSS of a new server on the grown collection after the same warm-up load: what the
    data and warm caches take, so after-load RSS above it is memory the load kept."""
    proc = start_server(data, port, log)
    try:
        warm(f"http://127.0.0.1:{port}")
        if args.warmup > 0:
            asyncio.run(run(f"http://127.0.0.1:{port}", args, Tally(), seconds=args.warmup,
                            seed=2))
        return rss_mib(proc.pid)
    finally:
        stop_server(proc)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for name, value in DEFAULTS.items():
        ap.add_argument(f"--{name}", type=type(value), default=value)
    ap.add_argument("--label", default="", help="a note on the machine's state")
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="mmrag-bench-mixed-") as tmp:
        data = Path(tmp) / "data"
        built = build(data, args.items, random.Random(7))
        print(f"built {built['items']} items in {built['seconds']:.0f} s", flush=True)
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        proc = start_server(data, port, Path(tmp) / "server.log")
        try:
            warm(base)
            rss = [rss_mib(proc.pid)]
            if args.warmup > 0:  # same load, other files and queries; not counted
                asyncio.run(run(base, args, Tally(), seconds=args.warmup, seed=1))
            rss.append(rss_mib(proc.pid))
            tally = Tally()
            samples: list[float] = []
            sampler = threading.Thread(target=sample_rss, args=(proc.pid, samples, args),
                                       daemon=True)
            sampler.start()
            elapsed = asyncio.run(run(base, args, tally))
            sampler.join()
            rss.append(rss_mib(proc.pid))
            time.sleep(10)  # ingest threads idle, garbage collected: what stays
            rss.append(rss_mib(proc.pid))
            items = httpx.get(f"{base}/collections/{COLLECTION}", timeout=60).json()
        finally:
            stop_server(proc)
        rss.append(fresh_rss(data, port, Path(tmp) / "server2.log", args))
    load_after = os.getloadavg()
    write(args, built, tally, elapsed, rss, samples, items, load_before, load_after)


def write(args: argparse.Namespace, built: dict, tally: Tally, elapsed: float,
          rss: list[float], samples: list[float], collection: dict, before: tuple[float, ...],
          after: tuple[float, ...]) -> None:
    extra = [f"--{k} {v}" for k, v in vars(args).items() if k in DEFAULTS and v != DEFAULTS[k]]
    if args.label:
        extra.append(f"--label {json.dumps(args.label)}")
    routes = ["GET search", "POST ask (SSE)", "POST ask, first event", "POST items",
              "GET jobs"]
    errors = sum(tally.errors.values())
    detail = "; ".join(f"{k} ×{v}" for k, v in tally.errors.items()) or "none"
    lines = [
        MIXED_MARKER,
        (f"### Mixed workload: {args.searchers} searching, {args.askers} asking (SSE), "
        f"{args.uploaders} uploading clients, {elapsed:.0f} s"),
        "",
        f"`{' '.join(['python benchmarks/bench_server_mixed.py', *extra])}` — the same "
        f"collection and server as above ({built['items']} items, built in "
        f"{built['seconds']:.0f} s; `extractive` generator); all clients in one process "
        "(httpx.AsyncClient, a connection each). "
        + (f"**{args.label}.** " if args.label else "")
        + "Load average (1/5/15 min) "
        f"{'/'.join(f'{x:.2f}' for x in before)} before, "
        f"{'/'.join(f'{x:.2f}' for x in after)} after.",
        "",
        "| route | requests | req/s | p50 ms | p99 ms | max ms | errors |",
        "|---|---|---|---|---|---|---|",
        *(tally.row(r, elapsed) for r in routes),
        "",
        (f"Errors: {errors} ({detail}). Ingest jobs: {tally.jobs['done']} done, "
        f"{tally.jobs['failed']} failed, {tally.jobs['files']} files added; the collection "
        f"ended with {collection.get('items', '?')} items. Server RSS: {rss[0]:.0f} MiB "
        f"cold, {rss[1]:.0f} MiB before the load (after {args.warmup:.0f} s of warm-up "
        f"load), {rss[2]:.0f} MiB at its end ({rss[2] - rss[1]:+.0f} MiB), {rss[3]:.0f} MiB "
        f"10 s later; a new server on the grown collection, after the same warm-up "
        f"load: {rss[4]:.0f} MiB; every {args.seconds / 10:.0f} s of the load: "
        f"{', '.join(f'{x:.0f}' for x in samples)} MiB."),
        "",
        ("`POST ask (SSE)` is timed to the stream's `done` event, `first event` to its first "
        "event; `POST items` is the upload until its 202 (the job then runs in the "
        "background and is polled by `GET jobs` every 0.5 s). Server and clients share the "
        "machine's 2 cores, so latencies are mostly queueing behind the 40 searchers."),
    ]
    previous = args.out.read_text() if args.out.exists() else ""
    kept = previous.split(MIXED_MARKER)[0].rstrip()
    args.out.write_text((kept + "\n\n" if kept else "") + "\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
