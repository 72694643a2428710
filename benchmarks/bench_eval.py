"""Retrieval quality on ../shared/eval-sample and ../shared/eval-office, written as
markdown for RESULTS.md (each set reported separately, never pooled).

    python benchmarks/bench_eval.py [--sets eval-sample eval-office] [--profile offline]
                                    [--modes hybrid] [--baseline] [--static]

Runs `mmrag eval --json` exactly as a user would and formats its report.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"


# Fast ingest: static text vectors; search.rerank=auto then reranks with the bundled MiniLM.
STATIC_RUNS = {
    "model2vec text vectors, no reranker (rerank=auto, the fast-ingest configuration)": {
        "MMRAG_ENCODE__TEXT_ENCODER": "model2vec"},
    "model2vec text vectors + MiniLM bi-encoder rerank (weighted into the first stage)": {
        "MMRAG_ENCODE__TEXT_ENCODER": "model2vec", "MMRAG_SEARCH__RERANK": "bi-encoder"},
}
BASELINE_ENV = {"MMRAG_INGEST__OCR": "never", "MMRAG_INGEST__PDF_FIGURES": "false",
                "MMRAG_ENCODE__IMAGE_DESCRIPTOR": "false"}


def run_eval(profile: str, mode: str, extra_env: dict | None = None,
             name: str = "eval-sample") -> dict:
    cmd = [sys.executable, "-c", "from mmrag.cli import main; main()", "eval",
           str(SHARED / name / "queries.jsonl"), "--docs", str(SHARED / name / "docs"), "--json",
           "--profile", profile, "--mode", mode]
    env = {"LANCE_LOG": "error", **os.environ, **(extra_env or {})}
    res = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if res.returncode:
        raise SystemExit(res.stderr[-2000:])
    return json.loads(res.stdout)


def query_ms(report: dict) -> float:
    """Mean wall time per query: the run's seconds after indexing, over the queries."""
    return 1000 * (report["seconds"] - report["index_seconds"]) / max(report["n"], 1)


def table(report: dict) -> list[str]:
    names = list(report["overall"])
    rows = [("overall", report["n"], report["overall"]),
            *((k, v["n"], v) for k, v in report["by_kind"].items())]
    out = ["| kind | n | " + " | ".join(names) + " |", "|---" * (len(names) + 2) + "|"]
    out += [f"| {k} | {n} | " + " | ".join(f"{m[x]:.3f}" for x in names) + " |"
            for k, n, m in rows]
    return out


def report_set(args: argparse.Namespace, name: str) -> list[str]:
    lines = [f"### Retrieval quality on shared/{name} (page level)", ""]
    cmd = f"mmrag eval ../shared/{name}/queries.jsonl --docs ../shared/{name}/docs"
    if args.baseline:
        rep = run_eval(args.profile, "hybrid", BASELINE_ENV, name)
        env = " ".join(f"{k}={v}" for k, v in BASELINE_ENV.items())
        lines += [f"Baseline without OCR, figure crops or the image descriptor (the issue #2 "
                  f"pipeline): `{env} {cmd} --profile {args.profile} --mode hybrid` — "
                  f"{rep['seconds']:.1f} s including indexing.", "", *table(rep), ""]
    for mode in args.modes:
        rep = run_eval(args.profile, mode, None, name)
        lines += [f"`{cmd} --profile {args.profile} --mode {mode}` — "
                  f"{rep['n']} queries, {rep['seconds']:.1f} s including indexing "
                  f"({rep['index_seconds']:.1f} s), {query_ms(rep):.0f} ms per query.", "",
                  *table(rep), ""]
    if args.static:
        for label, env in STATIC_RUNS.items():
            rep = run_eval(args.profile, "hybrid", env, name)
            shown = " ".join(f"{k}={v}" for k, v in env.items())
            lines += [f"{label}: `{shown} {cmd} --profile {args.profile} --mode "
                      f"hybrid` — {rep['seconds']:.1f} s including indexing "
                      f"({rep['index_seconds']:.1f} s), {query_ms(rep):.0f} ms per query.",
                      "", *table(rep), ""]
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--profile", default="offline")
    ap.add_argument("--modes", nargs="+", default=["hybrid", "bm25", "dense"])
    ap.add_argument("--baseline", action="store_true",
                    help="also run hybrid with OCR, figures and descriptor switched off")
    ap.add_argument("--static", action="store_true",
                    help="also run hybrid with the model2vec text encoder (the fast-ingest "
                         "configuration), without and with the MiniLM reranker")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "eval.md")
    ap.add_argument("--sets", nargs="+", default=["eval-sample", "eval-office"])
    args = ap.parse_args()
    lines: list[str] = []
    for name in args.sets:
        lines += report_set(args, name)
    text = "\n".join(lines)
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)


if __name__ == "__main__":
    main()
