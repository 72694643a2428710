"""Calibrate the weak-evidence rule (``generate.min_confidence``) on both shared sets.

    python benchmarks/calibrate_evidence.py [--index-dir DIR] [--choose-on sample]

Indexes ../shared/eval-sample and ../shared/eval-office (or reuses ``--index-dir``),
then asks every query of each set, plus a fixed list of off-topic questions about
nothing in either corpus (the shared sets hold answerable questions only), with the
extractive generator and the rule off, recording each ask's retrieval confidence
(:func:`mmrag.generate.evidence.retrieval_confidence`, computed exactly as the Answerer
does). A threshold t then answers an ask iff its confidence >= t and the generator
answered. For a sweep of t it reports, per set: the answered share of the real queries,
citation precision of those answers, hit@1 (top hit on a relevant page) of the answered
ones, and the false-answer rate on the off-topic questions. The threshold is chosen on one
set (the largest t that keeps at least 95 % of the answers the rule-free generator gives
there) and confirmed on the other. It also reports the support check's sentence-level
supported share for the answers against their own sources and against another query's
sources, per support threshold. Writes benchmarks/results/evidence.md.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("LANCE_LOG", "error")

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
SETS = {"sample": SHARED / "eval-sample", "office": SHARED / "eval-office"}
OUT = ROOT / "benchmarks" / "results" / "evidence.md"
KEEP = 0.95  # the chosen threshold keeps at least this share of the rule-free answers
SWEEP = [round(0.05 * i, 2) for i in range(0, 15)]
SUPPORT_DEFAULT = 0.5  # generate.support_threshold's default, marked in the support table

# Generic questions about topics absent from both corpora (written once, not tuned per
# query): what a user asks an index that cannot answer it.
OFF_TOPIC = [
    "How long should I boil an egg for a soft yolk?",
    "Who won the football world cup in 1998?",
    "What is the capital city of Australia?",
    "How do I repot an orchid without damaging the roots?",
    "What is a good recipe for sourdough bread?",
    "How many moons does Jupiter have?",
    "Which vaccine schedule is recommended for puppies?",
    "How do I change a flat tyre on a bicycle?",
    "What are the symptoms of vitamin D deficiency?",
    "When did the Roman Empire fall?",
    "How do I train for a marathon in 16 weeks?",
    "What is the best way to remove red wine stains from a carpet?",
    "Which birds migrate from Europe to Africa in autumn?",
    "How do volcanoes form?",
    "What is the plot of Pride and Prejudice?",
    "How much water should a cactus get in winter?",
    "What are the rules of cricket?",
    "How do I make a paper airplane that flies far?",
    "Who painted the ceiling of the Sistine Chapel?",
    "What is the boiling point of water at the top of Mount Everest?",
    "How do I knit a scarf for beginners?",
    "Which wines go well with grilled salmon?",
    "How do bees make honey?",
    "What causes the northern lights?",
    "How can I lower my home heating bill?",
    "What is the history of the Eiffel Tower?",
    "How do I teach a dog to sit?",
    "What is the difference between a crocodile and an alligator?",
    "How do I fix a leaking kitchen tap?",
    "Which planets can be seen without a telescope?",
]


def open_index(path: Path, docs: Path):
    from mmrag import Index

    index = Index(path)
    if not index.documents():
        report = index.add(docs)
        print(f"  indexed {docs}: {report.summary()}", file=sys.stderr)
    return index


def run_set(index, queries_path: Path) -> tuple[list[dict], list[dict]]:
    """One row per ask: confidence, found, citation precision, hit@1 (None off-topic)."""
    from mmrag.eval.answers import citation_precision
    from mmrag.eval.runner import is_relevant, page_key, read_queries
    from mmrag.generate import create_generator
    from mmrag.generate.answerer import Answerer
    from mmrag.generate.evidence import retrieval_confidence
    from mmrag.generate.grounding import check_support, create_checker, memo_embed

    settings = index.settings.generate.model_copy(update={"generator": "extractive",
                                                          "min_confidence": 0.0})
    generator = create_generator(settings)
    enc = index._text_encoder()
    embed = enc.encode_text if enc is not None else None
    captured: dict[str, list[str]] = {}

    class Recording(Answerer):
        """The Answerer with the rule off, keeping the sources it computed confidence on
        (so the confidence below is exactly the one the rule would compare)."""

        def _weak(self, question, sources, embed_fn):  # type: ignore[override]
            captured["sources"] = sources
            return False

    def ask(question: str):
        captured.clear()
        search = lambda text, n, img: index.search(text, n)  # noqa: E731
        answer = Recording(search, generator, settings, embed=embed).ask(question).answer
        sources = captured.get("sources", [])
        conf = retrieval_confidence(question, sources, memo_embed(embed)) if sources else None
        return answer, conf

    real: list[dict] = []
    for q in read_queries(queries_path):
        answer, conf = ask(q.query)
        real.append({"conf": conf, "found": answer.found,
                     "precision": citation_precision(answer.citations, q.relevant),
                     "hit1": bool(answer.hits) and is_relevant(page_key(answer.hits[0]),
                                                                q.relevant),
                     "text": answer.text, "sources": captured.get("sources", []),
                     "files": {f for f, _ in q.relevant},
                     "own": [(s.score, bool(s.numbers)) for s in answer.support]})
    # The same answers checked against another query's sources (one about other files):
    # what an answer that its sources do not back scores.
    checker = create_checker(settings.support_checker, embed)
    for i, row in enumerate(real):
        other = next((r for r in real[i + 1:] + real[:i] if not r["files"] & row["files"]
                      and r["sources"]), None)
        row["swapped"] = [] if not row["found"] or other is None else [
            (s.score, bool(s.numbers)) for s in check_support(row["text"], other["sources"],
                                                              checker, 0.0)]
    off = []
    for question in OFF_TOPIC:
        answer, conf = ask(question)
        off.append({"conf": conf, "found": answer.found})
    return real, off


def answered(row: dict, t: float) -> bool:
    return row["found"] and (row["conf"] is None or row["conf"] >= t)


def sweep_row(real: list[dict], off: list[dict], t: float) -> dict:
    ans = [r for r in real if answered(r, t)]
    prec = [r["precision"] for r in ans if r["precision"] is not None]
    return {"t": t, "answered": len(ans) / len(real),
            "precision": sum(prec) / len(prec) if prec else None,
            "hit1": sum(r["hit1"] for r in ans) / len(ans) if ans else None,
            "false": sum(answered(r, t) for r in off) / len(off),
            "passed": sum(r["conf"] is None or r["conf"] >= t for r in real) / len(real),
            "off_passed": sum(r["conf"] is None or r["conf"] >= t for r in off) / len(off)}


def choose(real: list[dict]) -> float:
    """The largest swept threshold keeping >= KEEP of the answers given with the rule off."""
    base = sum(answered(r, 0.0) for r in real)
    ok = [t for t in SWEEP if sum(answered(r, t) for r in real) >= KEEP * base]
    return max(ok)


def support_table(real: list[dict], current: float) -> str:
    """Sentence-level: supported share of answers' sentences against their own sources
    and against another query's, per support threshold."""
    own = [s for r in real if r["found"] for s in r["own"]]
    swapped = [s for r in real for s in r["swapped"]]
    out = [f"Support check (`lexical+embedding`, MiniLM): {len(own)} sentences of the "
           "extractive answers checked against their own sources, and the same answers "
           f"against another query's sources ({len(swapped)} sentences).\n",
           "| support_threshold | supported (own sources) | supported (other sources) |",
           "|---|---|---|"]
    def share(rows: list[tuple[float, bool]], t: float) -> str:
        ok = sum(sc >= t and not bad for sc, bad in rows)
        return f"{ok / len(rows):.3f}" if rows else "-"

    for t in (0.3, 0.4, 0.5, 0.6, 0.7):
        mark = " **(default)**" if t == current else ""
        out.append(f"| {t:.1f}{mark} | {share(own, t)} | {share(swapped, t)} |")
    return "\n".join(out)


def table(rows: list[dict], chosen: float) -> str:
    out = ["| min_confidence | real: reach the model | real: answered | citation precision "
           "| hit@1 of answered | off-topic: reach the model | off-topic: answered |",
           "|---|---|---|---|---|---|---|"]
    for r in rows:
        mark = " **(chosen)**" if r["t"] == chosen else ""

        def f(v: float | None) -> str:
            return "-" if v is None else f"{v:.3f}"
        out.append(f"| {r['t']:.2f}{mark} | {f(r['passed'])} | {f(r['answered'])} | "
                   f"{f(r['precision'])} | {f(r['hit1'])} | {f(r['off_passed'])} | "
                   f"{f(r['false'])} |")
    return "\n".join(out)


def quantiles(values: list[float]) -> str:
    v = sorted(values)
    if not v:
        return "-"
    pick = lambda q: v[min(len(v) - 1, int(q * (len(v) - 1) + 0.5))]  # noqa: E731
    return f"min {v[0]:.3f}, p10 {pick(0.1):.3f}, median {pick(0.5):.3f}, max {v[-1]:.3f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--index-dir", type=Path, default=None,
                    help="folder holding (or to hold) one index per set: <dir>/sample, "
                    "<dir>/office")
    ap.add_argument("--choose-on", choices=list(SETS), default="sample")
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()
    tmp = None
    if args.index_dir is None:
        tmp = tempfile.TemporaryDirectory(prefix="mmrag-evidence-")
        args.index_dir = Path(tmp.name)
    results: dict[str, tuple[list[dict], list[dict]]] = {}
    seconds: dict[str, float] = {}
    for name, folder in SETS.items():
        print(f"{name}: asking {folder}", file=sys.stderr)
        t0 = time.perf_counter()
        with open_index(args.index_dir / name, folder / "docs") as index:
            results[name] = run_set(index, folder / "queries.jsonl")
        seconds[name] = time.perf_counter() - t0
    chosen = choose(results[args.choose_on][0])
    other = next(n for n in SETS if n != args.choose_on)
    load = os.getloadavg()[0]
    parts = [
        "# Weak-evidence rule: calibration of `generate.min_confidence`\n",
        "Command: `python benchmarks/calibrate_evidence.py --index-dir /tmp/grd "
        f"--choose-on {args.choose_on}` (offline profile, bundled MiniLM text encoder, "
        "hybrid search, k = 5 page-grouped hits, extractive generator; 1-minute load "
        f"average {load:.1f} on 2 cores at the end).\n",
        "Confidence = best cosine between the question and a ~400-character window of "
        "a source text the generator is given (`mmrag.generate.evidence`). An ask is "
        "answered at threshold t iff confidence >= t and the extractive generator did not "
        "itself say \"not found\". `reach the model` = share of asks the rule passes to "
        "the generator (what matters for generators that never say \"not found\", like "
        "the bundled gemma); `answered` = share answered by the extractive generator "
        "after the rule; `citation precision` = share of citations on a relevant page, "
        "mean over answered queries that cite; `hit@1 of answered` = share of answered "
        "queries whose top hit is relevant. Real = the set's queries (all answerable); "
        f"off-topic = {len(OFF_TOPIC)} questions (a fixed list in the script, about "
        "nothing in either corpus, not tuned per query).\n",
        f"Rule for choosing: the largest swept t that keeps at least {KEEP:.0%} of the "
        f"answers given with the rule off, on **{args.choose_on}**; confirmed on "
        f"**{other}**. Chosen: **{chosen:.2f}** (MiniLM's entry in "
        "`mmrag.generate.evidence.CALIBRATED`, used when `generate.min_confidence` is "
        "unset).\n",
    ]
    for name in (args.choose_on, other):
        real, off = results[name]
        role = "chosen on" if name == args.choose_on else "confirmation"
        parts.append(f"## {name} ({len(real)} queries, {role}; {seconds[name]:.0f} s)\n")
        parts.append("Confidence of real queries: "
                     f"{quantiles([r['conf'] for r in real if r['conf'] is not None])}; "
                     "of off-topic questions: "
                     f"{quantiles([r['conf'] for r in off if r['conf'] is not None])}.\n")
        parts.append(table([sweep_row(real, off, t) for t in SWEEP], chosen) + "\n")
        parts.append(support_table(real, SUPPORT_DEFAULT) + "\n")
    args.out.write_text("\n".join(parts))
    print(args.out.read_text())
    if tmp is not None:
        tmp.cleanup()


if __name__ == "__main__":
    main()
