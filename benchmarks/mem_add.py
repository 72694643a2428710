"""RSS of one process over many small ``Index.add`` calls (what a server's ingest jobs do).

    python benchmarks/mem_add.py [--rounds 120] [--same]

Adds 2,000 Markdown documents, then ``--rounds`` adds of 2 new files (or the same 2 files
replaced, ``--same``), with the server's allocator settings (arenas capped, trim after each),
and prints RSS every 20 rounds. Flat output means the index itself keeps no memory per add.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from mmrag import Index
from mmrag.server.allocator import limit_arenas, trim


def rss_mib() -> float:
    return int(Path("/proc/self/statm").read_text().split()[1]) * 4096 / 2**20


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=120)
    ap.add_argument("--same", action="store_true")
    args = ap.parse_args()
    limit_arenas()
    root = Path(tempfile.mkdtemp())
    with Index(root / "idx", show_progress=False, encode={"text_encoder": "hashing"}) as idx:
        idx.add([(f"seed{i}.md", f"# seed {i}\n\nword{i} text body " * 20) for i in range(2000)])
        print(f"start: {rss_mib():.0f} MiB")
        for r in range(args.rounds):
            tag = "" if args.same else f"{r}_"
            idx.add([(f"u{tag}{j}.md", f"# upload {j} round {r}\n\nsome text {r} {j} " * 30)
                     for j in range(2)])
            trim()
            if r % 20 == 19:
                print(f"round {r + 1}: {rss_mib():.0f} MiB", flush=True)


if __name__ == "__main__":
    main()
