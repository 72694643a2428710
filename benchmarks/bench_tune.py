"""`mmrag tune` before/after on a shared eval set: nDCG@5 per kind, dense-only and hybrid,
plus the tune's wall time and peak RSS.

    python benchmarks/bench_tune.py ../shared/eval-sample --work /tmp/tune-sample \
        [--index BUILT_INDEX] [--minutes 8] [--config tune.toml]

The base index (built from DOCS with `mmrag add` unless --index gives one) is copied, the
copy is evaluated, tuned with `mmrag tune` in a child process (wall time and its peak RSS
from wait4), and evaluated again. Prints a Markdown section and writes WORK/result.json.
Timings depend on the machine's load: the script prints the 1-minute load average.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

MMRAG = str(Path(sys.executable).with_name("mmrag"))


def run(cmd: list[str]) -> tuple[str, float, int, float]:
    """stdout, wall seconds, the child's peak RSS in MiB and its CPU seconds (user +
    system, GNU time's %M, %U, %S): CPU time is what a loaded machine does not stretch."""
    t0 = time.perf_counter()
    proc = subprocess.run(["/usr/bin/time", "-f", "maxrss_kb=%M cpu=%U+%S", *cmd],
                          text=True, capture_output=True)
    wall = time.perf_counter() - t0
    if proc.returncode:
        sys.exit(f"{' '.join(cmd)} failed:\n{proc.stderr[-2000:]}")
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("maxrss_kb=")]
    if not lines:
        return proc.stdout, wall, 0, 0.0
    rss, cpu = lines[-1].split()
    user, system = cpu.split("=")[1].split("+")
    return proc.stdout, wall, int(rss.split("=")[1]) // 1024, float(user) + float(system)


def evaluate(queries: Path, index: Path, mode: str) -> dict:
    out, *_ = run([MMRAG, "eval", str(queries), "--index", str(index), "--mode", mode,
                     "--json"])
    return json.loads(out)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("set", type=Path, help="eval set folder (queries.jsonl, docs/)")
    ap.add_argument("--work", type=Path, required=True)
    ap.add_argument("--index", type=Path, help="an index already built from the set's docs")
    ap.add_argument("--minutes", type=float, default=None)
    ap.add_argument("--config", type=Path, default=None, help="TOML with a [tune] section")
    a = ap.parse_args()
    queries = a.set / "queries.jsonl"
    a.work.mkdir(parents=True, exist_ok=True)
    base = a.index or a.work / "base"
    if a.index is None and not base.exists():
        run([MMRAG, "add", str(a.set / "docs"), "--index", str(base), "--json"])
    tuned = a.work / "tuned"
    shutil.rmtree(tuned, ignore_errors=True)
    shutil.copytree(base, tuned)
    before = {m: evaluate(queries, tuned, m) for m in ("dense", "hybrid")}
    cmd = [MMRAG, "tune", "--index", str(tuned), "--json"]
    if a.minutes is not None:
        cmd += ["--minutes", str(a.minutes)]
    if a.config is not None:
        cmd += ["--config", str(a.config)]
    load = os.getloadavg()[0]
    out, wall, rss, cpu = run(cmd)
    report = json.loads(out)
    after = {m: evaluate(queries, tuned, m) for m in ("dense", "hybrid")}
    result = {"set": str(a.set), "tune": report, "tune_wall_s": round(wall, 1),
              "tune_peak_rss_mib": rss, "tune_cpu_s": round(cpu, 1),
              "load_1min_at_start": round(load, 1),
              "before": {m: {"overall": r["overall"], "by_kind": r["by_kind"]}
                         for m, r in before.items()},
              "after": {m: {"overall": r["overall"], "by_kind": r["by_kind"]}
                        for m, r in after.items()}}
    (a.work / "result.json").write_text(json.dumps(result, indent=2))
    print(f"### {a.set.name}: `{' '.join(cmd)}`\n")
    print(f"tune: {wall:.0f} s wall, {cpu:.0f} CPU s (≈ {cpu / 120:.1f} min on 2 idle cores), "
          f"peak RSS {rss} MiB, load average {load:.1f} at start; "
          f"{report.get('pseudo_queries')} pseudo-queries from {report.get('passages')} "
          f"passages, {report.get('steps')} steps ({report.get('stopped')}), held-out "
          f"nDCG@10 {report.get('base_score')} → {report.get('best_score')}, "
          f"switched: {report.get('switched')}\n")
    print("| mode | kind | n | nDCG@5 before | after | Δ |\n|---|---|---|---|---|---|")
    for m in ("dense", "hybrid"):
        rows = [("overall", before[m]["overall"], after[m]["overall"], before[m]["n"])]
        rows += [(k, v, after[m]["by_kind"][k], v["n"]) for k, v in before[m]["by_kind"].items()]
        for kind, b, c, n in rows:
            print(f"| {m} | {kind} | {n} | {b['ndcg@5']:.3f} | {c['ndcg@5']:.3f} | "
                  f"{c['ndcg@5'] - b['ndcg@5']:+.3f} |")


if __name__ == "__main__":
    main()
