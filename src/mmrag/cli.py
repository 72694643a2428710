"""The `mmrag` command line: add, search, delete, info, eval, demo.

Errors print as one red line; ``--debug`` (or MMRAG_DEBUG=1) shows the traceback.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import tempfile
from contextlib import contextmanager
from importlib import resources
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Multimodal retrieval: index images, PDFs and text; search them.")
out = Console()
err = Console(stderr=True)

IndexOpt = Annotated[Path, typer.Option("--index", "-i", help="index folder",
                                        envvar="MMRAG_INDEX")]
ProfileOpt = Annotated[str | None, typer.Option("--profile", help="offline | clip")]
ConfigOpt = Annotated[Path | None, typer.Option("--config", help="TOML settings file")]
DebugOpt = Annotated[bool, typer.Option("--debug", help="show tracebacks and debug logs")]
JsonOpt = Annotated[bool, typer.Option("--json", help="print JSON instead of a table")]
DEFAULT_INDEX = Path(".mmrag")


class _State:
    debug = False


def _open(index: Path, profile: str | None = None, config: Path | None = None, **kw: Any):
    from .index import Index

    return Index(index, profile=profile, config=config, **kw)


def _setup(debug: bool) -> None:
    _State.debug = debug or os.environ.get("MMRAG_DEBUG") == "1"
    logging.basicConfig(level=logging.DEBUG if _State.debug else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    # Model libraries chat on stderr; users care about our output only.
    for noisy in ("transformers", "sentence_transformers", "httpx", "lance", "lancedb"):
        logging.getLogger(noisy).setLevel(logging.DEBUG if _State.debug else logging.ERROR)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    if not _State.debug:  # model-loading bars would interleave with our own progress
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")


@app.command()
def add(sources: Annotated[list[str], typer.Argument(help="files, folders, URLs")],
        index: IndexOpt = DEFAULT_INDEX, profile: ProfileOpt = None, config: ConfigOpt = None,
        include: Annotated[list[str] | None, typer.Option(help="glob to include")] = None,
        exclude: Annotated[list[str] | None, typer.Option(help="glob to exclude")] = None,
        allow_private_urls: Annotated[bool, typer.Option(
            help="allow URLs on loopback/private networks")] = False,
        as_json: JsonOpt = False, debug: DebugOpt = False) -> None:
    """Index files, folders, URLs (http, s3://, gs://, ...)."""
    _setup(debug)
    ingest: dict[str, Any] = {}
    if include:
        ingest["include"] = include
    if exclude:
        ingest["exclude"] = exclude
    if allow_private_urls:
        ingest["allow_private_urls"] = True
    with _open(index, profile, config, ingest=ingest or None) as idx:
        report = idx.add(sources, show_progress=None if not as_json else False)
    if as_json:
        out.print_json(json.dumps({"added": report.added, "skipped": report.skipped,
                                   "replaced": report.replaced, "items": report.items,
                                   "failed": [{"source": f.source, "reason": f.reason}
                                              for f in report.failed],
                                   "seconds": round(report.seconds, 3)}))
    else:
        _print_report(report)
    if report.failed and not (report.added or report.replaced or report.skipped):
        raise typer.Exit(1)


def _print_report(report: Any) -> None:
    for f in report.failed:
        err.print(f"[red]failed[/] {f.source}: {f.reason}", highlight=False, soft_wrap=True)
    colour = "yellow" if report.failed else "green"
    out.print(f"[{colour}]{report.summary()}[/]")


@app.command()
def search(query: Annotated[str, typer.Argument(help="text query ('' with --image)")] = "",
           image: Annotated[str | None, typer.Option(help="image file or URL")] = None,
           k: Annotated[int, typer.Option("-k", help="results")] = 10,
           modality: Annotated[str | None, typer.Option(help="image | text | page")] = None,
           path: Annotated[str | None, typer.Option(help="glob over source paths")] = None,
           mode: Annotated[str, typer.Option(help="hybrid | dense | bm25")] = "hybrid",
           group_by: Annotated[str | None, typer.Option(help="page | doc | item")] = None,
           index: IndexOpt = DEFAULT_INDEX, profile: ProfileOpt = None,
           config: ConfigOpt = None, as_json: JsonOpt = False, debug: DebugOpt = False) -> None:
    """Search by text, by image (--image), or both."""
    _setup(debug)
    from .errors import QueryError

    if not query and not image:
        raise QueryError("give a text query, --image, or both")
    filters: dict[str, Any] = {}
    if modality:
        filters["modality"] = modality.split(",")
    if path:
        filters["path"] = path
    with _open(index, profile, config) as idx:
        if not idx.documents():
            raise QueryError(f"index {str(idx.root)!r} is empty; run `mmrag add` first")
        hits = idx.search(query or None, k=k, filters=filters or None, image=image,
                          group_by=group_by, mode=mode)
    if as_json:
        from .index import iter_hits_json

        out.print_json(json.dumps(list(iter_hits_json(hits)), default=str))
        return
    _print_hits(hits)


def _print_hits(hits: list[Any]) -> None:
    if not hits:
        out.print("[yellow]no results[/]")
        return
    table = Table(show_lines=False, header_style="bold")
    table.add_column("#", justify="right")
    table.add_column("score", justify="right")
    table.add_column("source", overflow="fold", max_width=40)
    table.add_column("page", justify="right")
    table.add_column("kind")
    table.add_column("snippet", overflow="ellipsis", no_wrap=False, ratio=1)
    for rank, h in enumerate(hits, 1):
        snippet = h.snippet if len(h.snippet) <= 110 else h.snippet[:109] + "…"
        table.add_row(str(rank), f"{h.score:.4f}", h.item.name or h.item.source,
                      str(h.item.page), h.item.modality, snippet)
    out.print(table)


@app.command()
def delete(targets: Annotated[list[str], typer.Argument(help="doc ids, paths or folders")],
           index: IndexOpt = DEFAULT_INDEX, debug: DebugOpt = False) -> None:
    """Remove documents by doc id, path, URL or folder."""
    _setup(debug)
    with _open(index) as idx:
        n = idx.delete(targets)
    out.print(f"deleted {n} source(s)")
    if not n:
        raise typer.Exit(1)


@app.command()
def info(index: IndexOpt = DEFAULT_INDEX, as_json: JsonOpt = False,
         debug: DebugOpt = False) -> None:
    """Show what an index holds and how it was built."""
    _setup(debug)
    with _open(index) as idx:
        data = idx.info()
        docs = idx.documents()
    if as_json:
        data["sources"] = [d.source for d in docs]
        out.print_json(json.dumps(data))
        return
    for key, value in data.items():
        out.print(f"[bold]{key}[/]: {value}")


@app.command(name="eval")
def eval_(queries: Annotated[Path, typer.Argument(help="queries.jsonl")],
          docs: Annotated[Path | None, typer.Option(help="folder with the documents")] = None,
          index: Annotated[Path | None, typer.Option("--index", "-i",
                                                     help="index folder (default: temp)")] = None,
          profile: ProfileOpt = None, config: ConfigOpt = None,
          k: Annotated[int, typer.Option("-k", help="results per query")] = 10,
          mode: Annotated[str, typer.Option(help="hybrid | dense | bm25")] = "hybrid",
          as_json: JsonOpt = False, debug: DebugOpt = False) -> None:
    """Score retrieval (recall@k, MRR, nDCG) on a queries.jsonl at page granularity."""
    _setup(debug)
    import time

    from .errors import ConfigError
    from .eval import evaluate, read_queries

    qs = read_queries(queries)
    if index is None and docs is None:
        raise ConfigError("give --docs DIR (indexed into a temporary index) or --index DIR")
    with _index_dir(index) as where, _open(where, profile, config) as idx:
        t0 = time.perf_counter()
        if docs is not None:
            report = idx.add(str(docs), show_progress=None if not as_json else False)
            for f in report.failed:
                err.print(f"[red]failed[/] {f.source}: {f.reason}", highlight=False)
        index_seconds = time.perf_counter() - t0
        result = evaluate(qs, lambda q: idx.search(q, k=k, group_by="page", mode=mode),
                          idx.profile)
    result["index_seconds"] = round(index_seconds, 3)
    result["seconds"] = round(result["seconds"] + index_seconds, 3)
    if as_json:
        result.pop("queries")
        out.print_json(json.dumps(result))
        return
    _print_eval(result)


@contextmanager
def _index_dir(index: Path | None):
    if index is not None:
        yield index
        return
    with tempfile.TemporaryDirectory(prefix="mmrag-eval-") as tmp:
        yield Path(tmp)


def _print_eval(result: dict[str, Any]) -> None:
    table = Table(title=f"mmrag eval — {result['n']} queries, profile {result['profile']}, "
                        f"{result['seconds']:.1f}s", header_style="bold")
    names = list(result["overall"])
    table.add_column("kind")
    table.add_column("n", justify="right")
    for name in names:
        table.add_column(name, justify="right")
    for kind, row in [("overall", {"n": result["n"], **result["overall"]}),
                      *result["by_kind"].items()]:
        table.add_row(kind, str(row["n"]), *(f"{row[m]:.3f}" for m in names))
    out.print(table)


@app.command()
def demo(index: Annotated[Path | None, typer.Option("--index", "-i",
                                                    help="index folder (default: temp)")] = None,
         debug: DebugOpt = False) -> None:
    """Index the bundled sample files and run a few searches."""
    _setup(debug)
    samples = resources.files("mmrag") / "samples"
    queries = ["How do I install the package without internet access?",
               "how fast do gannets dive into the sea?", "bar chart of quarterly revenue",
               "sunset over the sea", "what happens with a password-protected PDF?"]
    with resources.as_file(samples) as folder, _index_dir(index) as where, \
            _open(where, profile="offline") as idx:
        out.rule(f"[bold]indexing {folder}")
        _print_report(idx.add(str(folder)))
        for q in queries:
            out.rule(f"[bold]search:[/] {q}")
            _print_hits(idx.search(q, k=3))


def main() -> None:
    """Entry point: run the app, turning our errors into one line and an exit code."""
    from .errors import MmragError

    try:
        app()
    except MmragError as exc:
        _fail(exc)
    except KeyboardInterrupt:
        err.print("[red]interrupted[/]")
        sys.exit(130)
    except Exception as exc:  # anything unexpected still gets one line, not a traceback
        _fail(exc, prefix=f"{type(exc).__name__}: ")


def _fail(exc: BaseException, prefix: str = "") -> None:
    if _State.debug:
        err.print_exception()
    line = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    err.print(f"[red]error:[/] {prefix}{line}", highlight=False, soft_wrap=True)
    if not _State.debug:
        err.print("[dim](run with --debug for details)[/]")
    sys.exit(1)


if __name__ == "__main__":
    main()
