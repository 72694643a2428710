"""Assemble benchmarks/RESULTS.md from the per-benchmark files in benchmarks/results/.

Each benchmark script writes its own section (with the command that produced it), so
scripts can be re-run one at a time; this joins them in a fixed order.

    python benchmarks/collect.py
"""

from __future__ import annotations

from pathlib import Path

HERE = Path(__file__).resolve().parent
ORDER = ["summary", "eval", "fusion", "fusion_variants", "search", "office", "answers",
         "ingest", "encode", "query", "ocr", "maxsim", "server", "media"]
HEADER = """# Benchmark results

Measured on the project's reference machine: 2 CPU cores, 24 GiB RAM, no GPU. Ratios are
measured against a baseline in the same run, so they hold up better than absolute figures
when other work shares the cores. Each section names the command that produced it;
`python benchmarks/collect.py` rebuilds this file from `benchmarks/results/`.
"""


def main() -> None:
    parts = [HEADER]
    names = ORDER + sorted(p.stem for p in (HERE / "results").glob("*.md")
                           if p.stem not in ORDER)
    for name in names:
        path = HERE / "results" / f"{name}.md"
        if path.exists():
            parts.append("## " + name.capitalize() + "\n\n" + path.read_text().strip() + "\n")
    (HERE / "RESULTS.md").write_text("\n".join(parts))
    print(f"wrote {HERE / 'RESULTS.md'}")


if __name__ == "__main__":
    main()
