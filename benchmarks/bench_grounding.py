"""What the weak-evidence rule and the support check add to an ask's time.

    python benchmarks/bench_grounding.py --index /tmp/grd/sample [--n 12]

On an existing index (e.g. one built from ../shared/eval-sample), asks the first ``n``
queries of eval-sample with the extractive generator twice each (each query's first
time, so the embedding cache holds no window of its hits yet), interleaved so load
changes hit both alike: once as ``Index.ask`` does (rule + lexical+embedding support
check with the index's text encoder), once with neither (no embed function, a checker
that scores nothing). Prints the median seconds per ask of each and their ratio, measured
in the same run, plus the machine's load average.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("LANCE_LOG", "error")

QUERIES = Path(__file__).resolve().parents[2] / "shared" / "eval-sample" / "queries.jsonl"


class NoChecker:
    """Scores nothing: the baseline without a support check."""

    name = "none"

    def score(self, claims, passages):
        return np.ones((len(claims), len(passages)), dtype=np.float32)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--index", type=Path, required=True)
    ap.add_argument("--n", type=int, default=12)
    args = ap.parse_args()
    from mmrag import Index
    from mmrag.eval.runner import read_queries
    from mmrag.generate import create_generator
    from mmrag.generate.answerer import Answerer

    queries = [q.query for q in read_queries(QUERIES)][:args.n]
    with Index(args.index) as index:
        enc = index._text_encoder()
        assert enc is not None
        settings = index._generate_settings(enc).model_copy(update={"generator": "extractive"})
        gen = create_generator(settings)
        embed = index._cached_embed(enc)  # what Index.ask passes to both
        checker = index._support_checker(embed)

        def search(text, n, img):
            return index.search(text, n)

        grounded = Answerer(search, gen, settings, embed=embed, checker=checker)
        plain = Answerer(search, gen, settings.model_copy(update={"min_confidence": 0.0}),
                         embed=None, checker=NoChecker())
        _ = plain.ask("warm-up: load the encoder").answer
        times: dict[str, list[float]] = {"grounded": [], "plain": []}
        for q in queries:
            for name, answerer in (("plain", plain), ("grounded", grounded)):
                t0 = time.perf_counter()
                _ = answerer.ask(q).answer
                times[name].append(time.perf_counter() - t0)
    p, g = statistics.median(times["plain"]), statistics.median(times["grounded"])
    print(f"{len(queries)} asks each, extractive, load average {os.getloadavg()[0]:.1f} "
          f"on {os.cpu_count()} cores")
    print(f"median per ask: without rule/support {p * 1000:.0f} ms, with {g * 1000:.0f} ms "
          f"(x{g / p:.2f}, +{(g - p) * 1000:.0f} ms)")


if __name__ == "__main__":
    main()
