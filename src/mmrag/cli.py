"""The `mmrag` command line: add, search, ask, chat, classify, delete, check, optimize, tune,
info, eval, eval-answers, demo, serve, mcp, detect, keys.

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
from typing import Annotated, Any, get_args

import typer
from rich.console import Console
from rich.table import Table

from .encode.profiles import PROFILES
from .types import Modality

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Multimodal retrieval: index images, PDFs and text; search them.")
out = Console()
err = Console(stderr=True)

# Help texts list what exists, read from where it is defined, so a new profile or
# modality shows up in --help without anyone editing this file.
MODALITIES: tuple[str, ...] = get_args(Modality)
IndexOpt = Annotated[Path, typer.Option("--index", "-i", help="index folder",
                                        envvar="MMRAG_INDEX")]
ProfileOpt = Annotated[str | None, typer.Option(
    "--profile", help=f"{' | '.join(PROFILES)} (default: offline, or clip with a vision "
                      "model; an existing index keeps its own)")]
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
    # Pillow logs damaged images at ERROR while the loader already reports them in one line
    logging.getLogger("PIL").setLevel(logging.DEBUG if _State.debug else logging.CRITICAL)
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
        timings: Annotated[bool, typer.Option(
            help="print where the time went (parse, render, OCR, embed, store)")] = False,
        executor: Annotated[str | None, typer.Option(
            help="local (this process) or ray (load and embed on a Ray cluster, "
                 "mmrag[ray]); default ingest.executor")] = None,
        address: Annotated[str | None, typer.Option(
            help="with --executor ray: the cluster to join (host:6379, ray://host:10001, "
                 "auto); default a local one")] = None,
        as_json: JsonOpt = False, debug: DebugOpt = False) -> None:
    """Index files, folders, URLs (http, s3://, gs://, ...)."""
    _setup(debug)
    ingest: dict[str, Any] = {}
    if executor:
        ingest["executor"] = executor
    if address:
        ingest["ray_address"] = address
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
                                   "seconds": round(report.seconds, 3),
                                   "timings": report.timings,
                                   "privacy": report.privacy}))
    else:
        _print_report(report)
        if timings:
            _print_timings(report.timings, report.seconds)
    if report.failed and not (report.added or report.replaced or report.skipped):
        raise typer.Exit(1)


def _print_timings(timings: dict[str, float], total: float) -> None:
    """Seconds per stage, largest first; stages inside ``load`` are indented."""
    from rich.table import Table

    inner = {"parse", "chunk", "render", "figures", "tables", "ocr"}
    table = Table("stage", "seconds", "share", title=f"where {total:.1f}s went")
    for name, sec in sorted(timings.items(), key=lambda kv: -kv[1]):
        label = f"  {name}" if name in inner else name
        if name == "ocr":
            label += " (thread time)"
        table.add_row(label, f"{sec:.2f}", f"{sec / total:.0%}" if total else "-")
    out.print(table)


def _print_report(report: Any) -> None:
    for f in report.failed:
        err.print(f"[red]failed[/] {f.source}: {f.reason}", highlight=False, soft_wrap=True)
    colour = "yellow" if report.failed else "green"
    out.print(f"[{colour}]{report.summary()}[/]")
    if report.privacy:  # what privacy settings removed, so a user sees they took effect
        done = ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in sorted(report.privacy.items()))
        out.print(f"privacy: {done}", highlight=False)


@app.command()
def search(query: Annotated[str, typer.Argument(help="text query ('' with --image)")] = "",
           image: Annotated[str | None, typer.Option(help="image file or URL")] = None,
           k: Annotated[int, typer.Option("-k", help="results")] = 10,
           modality: Annotated[str | None, typer.Option(
               help=f"{' | '.join(MODALITIES)} (comma-separated for several)")] = None,
           path: Annotated[str | None, typer.Option(help="glob over source paths")] = None,
           filter_: Annotated[list[str] | None, typer.Option(
               "--filter", help="metadata: key=value, or a range key>=value / key<value "
               "(repeat; e.g. sender=ann@example.com, date>=2023-01)")] = None,
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
        filters["modality"] = _modalities(modality)
    if path:
        filters["path"] = path
    filters.update(_metadata_filters(filter_))
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


def _modalities(value: str) -> list[str]:
    """``--modality a,b`` as a list; a misspelt one is an error, not a silent 0 hits."""
    from .errors import QueryError

    wanted = [m.strip() for m in value.split(",") if m.strip()]
    unknown = [m for m in wanted if m not in MODALITIES]
    if unknown or not wanted:
        raise QueryError(f"unknown modality {(unknown or [value])[0]!r}; choose from "
                         f"{', '.join(MODALITIES)}")
    return wanted


def _metadata_filters(exprs: list[str] | None) -> dict[str, Any]:
    """``--filter`` options as a filters dict; two bounds on one key make one range."""
    from .errors import QueryError
    from .types import parse_filter

    out: dict[str, Any] = {}
    for expr in exprs or []:
        try:
            key, value = parse_filter(expr)
        except ValueError as exc:
            raise QueryError(str(exc)) from None
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = {**out[key], **value}
        else:
            out[key] = value
    return out


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
        stamp = (h.item.metadata or {}).get("timestamp")
        if stamp:  # video frames and transcript segments: where in the recording
            snippet = f"@ {stamp} {snippet}".rstrip()
        table.add_row(str(rank), f"{h.score:.4f}", h.item.name or h.item.source,
                      str(h.item.page), h.item.modality, snippet)
    out.print(table)


GeneratorOpt = Annotated[str | None, typer.Option(
    "--generator", "-g", help="extractive | openai | anthropic | gemini | local | gemma")]
ModelOpt = Annotated[str | None, typer.Option("--model", help="model id or path")]


@app.command()
def ask(question: Annotated[str, typer.Argument(help="the question ('' with --image)")] = "",
        image: Annotated[str | None, typer.Option(help="image file or URL to ask about")] = None,
        k: Annotated[int | None, typer.Option("--k", "-k", help="hits given to the "
                                              "generator (default generate.k)")] = None,
        generator: GeneratorOpt = None, model: ModelOpt = None,
        filter_: Annotated[list[str] | None, typer.Option(
            "--filter", help="metadata: key=value or key>=value ... (as `search`)")] = None,
        index: IndexOpt = DEFAULT_INDEX, profile: ProfileOpt = None, config: ConfigOpt = None,
        agent: Annotated[bool, typer.Option(
            "--agent", help="let the ReAct agent search as often as it needs (an LLM "
            "generator that can call tools; extractive answers with one routed search)")]
        = False,
        max_steps: Annotated[int, typer.Option(
            "--max-steps", min=1, help="--agent: tool rounds before it must stop")] = 12,
        as_json: JsonOpt = False, debug: DebugOpt = False) -> None:
    """Answer a question from the index, streaming the answer, then list its citations."""
    _setup(debug)
    from .errors import QueryError

    if not question.strip() and not image:
        raise QueryError("give a question, --image, or both")
    overrides = {"generate__model": model} if model else {}
    filters = _metadata_filters(filter_) or None
    with _open(index, profile, config, **overrides) as idx:
        if not idx.documents():
            raise QueryError(f"index {str(idx.root)!r} is empty; run `mmrag add` first")
        if agent:
            if filters or k is not None:  # its tools search the whole index, k by router
                raise QueryError("--agent takes no --filter or -k: the agent chooses its "
                                 "searches (the router picks k)")
            _ask_agent(idx, question, image, generator, max_steps, as_json)
            return
        if as_json:
            answer = idx.ask(question, image, k, filters=filters, generator=generator)
            out.print_json(json.dumps(answer.to_dict(), default=str))
            return
        _stream_answer(idx.ask(question, image, k, filters=filters, generator=generator,
                               stream=True), drop=idx.settings.generate.drop_unsupported)


def _stream_answer(stream: Any, drop: bool = False) -> None:
    """Print an AnswerStream's deltas as they come, then its numbered citations, the
    sentences its sources do not support and the grounded share. With ``drop`` (unsupported
    sentences dropped) the final text is printed once it is known instead: a printed
    delta cannot be taken back."""
    from .generate.citations import render_citations

    for delta in stream:
        if not drop:
            sys.stdout.write(delta)
            sys.stdout.flush()
    answer = stream.answer
    sys.stdout.write((answer.text if drop else "") + "\n")
    if answer.citations:
        out.print("\n" + render_citations(answer.citations), markup=False, highlight=False)
    _print_support(answer)


def _print_support(answer: Any) -> None:
    """One "⚠ unsupported" line per sentence the sources do not back (why: its invented
    numbers, or its support score), then "grounded: 83 %" for an answer that claims
    anything."""
    from rich.markup import escape

    for s in answer.support:
        if not s.supported:
            why = (f"numbers in no cited source: {', '.join(s.numbers)}" if s.numbers
                   else f"support {s.score:.2f}")
            out.print(f"[yellow]⚠ unsupported[/] ({escape(why)}): [dim strike]"
                      f"{escape(s.text)}[/]", highlight=False, soft_wrap=True)
    if answer.found and answer.support:
        ok = sum(s.supported for s in answer.support)
        out.print(f"grounded: {answer.grounded:.0%} ({ok} of {len(answer.support)} "
                  "sentences supported)", highlight=False)


def _ask_agent(idx: Any, question: str, image: str | None, generator: str | None,
               max_steps: int, as_json: bool) -> None:
    """`ask --agent`: the agent's answer, after its one-line note if it had to stop or
    could not run (see agent/ask.py)."""
    from .agent.ask import ask_with_agent
    from .generate.citations import render_citations

    reply = ask_with_agent(idx, question, image=image, generator=generator,
                           max_steps=max_steps)
    if reply.note:
        err.print(f"[yellow]note:[/] {reply.note}", highlight=False, soft_wrap=True)
    if as_json:
        out.print_json(json.dumps({**reply.answer.to_dict(), "note": reply.note}, default=str))
        return
    out.print(reply.answer.text, markup=False, highlight=False)
    if reply.answer.citations:
        out.print("\n" + render_citations(reply.answer.citations), markup=False,
                  highlight=False)


@app.command()
def chat(k: Annotated[int | None, typer.Option("--k", "-k", help="hits given to the "
                                               "generator (default: the router's)")] = None,
         generator: GeneratorOpt = None, model: ModelOpt = None,
         filter_: Annotated[list[str] | None, typer.Option(
             "--filter", help="metadata: key=value or key>=value ... (as `search`)")] = None,
         index: IndexOpt = DEFAULT_INDEX, profile: ProfileOpt = None, config: ConfigOpt = None,
         as_json: Annotated[bool, typer.Option(
             "--json", help="read one turn per stdin line ({\"role\", \"content\"} or a "
             "question), write one JSON answer per line; no prompt")] = False,
         debug: DebugOpt = False) -> None:
    """Chat with the index: follow-ups ("and in the appendix?") are searched as standalone
    queries made from the history, shown as "searching: ...". /reset, /exit."""
    _setup(debug)
    from .conversation import Conversation, run_interactive, run_json_lines
    from .errors import QueryError

    overrides = {"generate__model": model} if model else {}
    filters = _metadata_filters(filter_) or None
    with _open(index, profile, config, **overrides) as idx:
        if not idx.documents():
            raise QueryError(f"index {str(idx.root)!r} is empty; run `mmrag add` first")
        conv = Conversation(idx, k, filters, generator)
        if not as_json:
            run_interactive(conv, out)
            return
        failed = run_json_lines(conv, sys.stdin, sys.stdout)
    if failed:
        raise typer.Exit(1)


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
def check(index: IndexOpt = DEFAULT_INDEX,
          repair: Annotated[bool, typer.Option(
              "--repair", help="delete orphans and unreferenced media; forget incomplete "
                               "documents so adding them again re-indexes them")] = False,
          as_json: JsonOpt = False, debug: DebugOpt = False) -> None:
    """Verify that catalog, store and media agree; one line per problem, exit 1 if any."""
    _setup(debug)
    _require_index(index)
    with _open(index) as idx:
        report = idx.check(repair=repair)
    if as_json:
        out.print_json(json.dumps(report.to_dict()))
    else:
        for p in report.problems:
            out.print(p.line(), markup=False, highlight=False, soft_wrap=True)
        for line in report.repaired:
            out.print(f"repaired: {line}", markup=False, highlight=False, soft_wrap=True)
        for source in report.readd:
            out.print(f"add again: {source}", markup=False, highlight=False, soft_wrap=True)
        out.print(report.summary(), markup=False, highlight=False)
    if report.problems and not repair:
        raise typer.Exit(1)


@app.command()
def optimize(index: IndexOpt = DEFAULT_INDEX, debug: DebugOpt = False) -> None:
    """Compact the store, update its indexes and delete media no item refers to."""
    _setup(debug)
    _require_index(index)
    with _open(index) as idx:
        removed = idx.optimize()
    media = ("media collection skipped: an add is running" if removed is None
             else f"removed {removed} unreferenced media file(s)")
    out.print(f"optimized; {media}", highlight=False)


@app.command()
def tune(index: IndexOpt = DEFAULT_INDEX,
         minutes: Annotated[float | None, typer.Option(
             help="time budget (default tune.minutes)")] = None,
         rollback: Annotated[bool, typer.Option(
             "--rollback", help="switch back to the model used before the last tune")] = False,
         space: Annotated[str, typer.Option(help="text | clip")] = "text",
         pairs: Annotated[Path | None, typer.Option(
             help="clip: image–text pairs file (default: pairs from the index)")] = None,
         config: ConfigOpt = None, as_json: JsonOpt = False, debug: DebugOpt = False) -> None:
    """Adapt an encoder to the index's own content (offline, CPU) and switch to it only
    if it beats the serving one on held-out pseudo-queries."""
    _setup(debug)
    import importlib.util

    from .errors import ConfigError

    _require_index(index)
    if space not in ("text", "clip"):
        raise ConfigError(f"unknown --space {space!r}; choose text or clip")
    with _open(index, config=config) as idx:
        show = None if not as_json else False
        if space == "clip":
            if importlib.util.find_spec("mmrag.tune.clip") is None:
                raise ConfigError("--space clip is not available in this version")
            from .tune.clip import tune_clip

            report = tune_clip(idx, str(pairs) if pairs else None, pairs is None,
                               minutes if minutes is not None else idx.settings.tune.minutes,
                               idx.settings)
        elif rollback:
            from .tune.switch import rollback as roll_back

            report = roll_back(idx, show)
        else:
            from .tune.switch import tune_text

            report = tune_text(idx, minutes, show)
    if as_json:
        out.print_json(json.dumps(report))
        return
    if "base_score" in report:
        out.print(f"{report['pseudo_queries']} pseudo-queries from {report['passages']} "
                  f"passages; {report['steps']} steps in {report['seconds']:.0f}s "
                  f"({report['stopped']}); held-out {report['metric']}: "
                  f"{report['base_score']:.4f} → {report['best_score']:.4f}", highlight=False)
    if report.get("switched"):
        out.print(f"[green]switched[/] {report.get('space', space)} to {report['column']} "
                  f"({report.get('model') or 'base'})", highlight=False)
    else:
        out.print(f"[yellow]not switched:[/] {report.get('reason', '')}", highlight=False)


def _require_index(index: Path) -> None:
    """Checking or optimizing a folder that is not an index must not create one."""
    from .errors import ConfigError
    from .index import MANIFEST

    if not (index / MANIFEST).is_file():
        raise ConfigError(f"no index at {str(index)!r}; run `mmrag add` first or pass --index")


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
def eval_(queries: Annotated[Path | None, typer.Argument(
              help="queries.jsonl (not with --compare)")] = None,
          docs: Annotated[Path | None, typer.Option(help="folder with the documents")] = None,
          index: Annotated[Path | None, typer.Option("--index", "-i",
                                                     help="index folder (default: temp)")] = None,
          profile: ProfileOpt = None, config: ConfigOpt = None,
          k: Annotated[int, typer.Option("-k", help="results per query")] = 10,
          mode: Annotated[str, typer.Option(help="hybrid | dense | bm25")] = "hybrid",
          per_query: Annotated[bool, typer.Option(
              "--per-query", help="also print each query's nDCG@5 and top pages")] = False,
          compare: Annotated[tuple[Path, Path] | None, typer.Option(
              "--compare", metavar="A.json B.json",
              help="compare two `mmrag eval --json` reports instead of running")] = None,
          as_json: JsonOpt = False, debug: DebugOpt = False) -> None:
    """Score retrieval (recall@k, MRR, nDCG) on a queries.jsonl at page granularity.

    A line's "image" (a path relative to --docs) searches by that image, with or without text.
    """
    _setup(debug)
    from .errors import ConfigError

    if compare is not None:
        if queries is not None:
            raise ConfigError("give either a queries.jsonl or --compare A.json B.json, not both")
        _eval_compare(*compare, as_json=as_json)
        return
    if queries is None:
        raise ConfigError("give a queries.jsonl to run, or --compare A.json B.json")
    if index is None and docs is None:
        raise ConfigError("give --docs DIR (indexed into a temporary index) or --index DIR")
    result = _run_eval(queries, docs, index, profile, config, k, mode, quiet=as_json)
    if as_json:
        out.print_json(json.dumps(result))
        return
    _print_eval(result)
    if per_query:
        _print_per_query(result)


def _run_eval(queries: Path, docs: Path | None, index: Path | None, profile: str | None,
              config: Path | None, k: int, mode: str, quiet: bool) -> dict[str, Any]:
    """Index ``docs`` (if given), run the queries and return the report; documents that
    fail to add are printed and listed, and the run goes on without them."""
    import time

    from .eval import evaluate, read_queries

    qs = read_queries(queries, image_root=docs if docs is not None else queries.parent)
    failed: list[dict[str, str]] = []
    with _index_dir(index) as where, _open(where, profile, config) as idx:
        t0 = time.perf_counter()
        if docs is not None:
            report = idx.add(str(docs), show_progress=None if not quiet else False)
            for f in report.failed:
                err.print(f"[red]failed[/] {f.source}: {f.reason}", highlight=False)
                failed.append({"source": f.source, "reason": f.reason})
        index_seconds = time.perf_counter() - t0
        # the query router's modality choice applies as in ask (search.router = "none": off)
        routed = idx.settings.search.router not in ("", "none")
        result = evaluate(qs, lambda q: idx.search(q.request(), k=k, group_by="page",
                                                   mode=mode, route=routed), idx.profile)
    result["index_seconds"] = round(index_seconds, 3)
    result["seconds"] = round(result["seconds"] + index_seconds, 3)
    result["failed_to_add"] = failed
    return result


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


PER_QUERY_TOP = 5  # pages per query in the printed table; the JSON keeps ten


def _print_per_query(result: dict[str, Any]) -> None:
    """One row per query: its nDCG@5 and top pages, relevant ones marked ✓, so a reader
    sees which queries fail and what came up instead."""
    from rich.markup import escape

    table = Table(title="per query (✓ relevant)", header_style="bold", show_lines=True)
    for col in ("id", "kind", "ndcg@5", "top pages"):
        table.add_column(col, justify="right" if col == "ndcg@5" else "left")
    for q in result["queries"]:
        lines = [f"{'[green]✓[/]' if t['relevant'] else ' '} {escape(t['page'])} "
                 f"{t['score']:.4f}" for t in q["top"][:PER_QUERY_TOP]]
        if q.get("error"):
            lines.append(f"[red]error:[/] {escape(q['error'])}")
        table.add_row(escape(str(q["id"])), escape(q["kind"]), f"{q['ndcg@5']:.3f}",
                      "\n".join(lines) or "-")
    out.print(table)


def _eval_compare(a: Path, b: Path, as_json: bool) -> None:
    from .eval.compare import compare_reports, load_report

    diff = compare_reports(load_report(a), load_report(b))
    diff["files"] = {"a": str(a), "b": str(b)}
    if as_json:
        out.print_json(json.dumps(diff))
        return
    _print_compare(diff)


def _print_compare(diff: dict[str, Any]) -> None:
    """A table per kind of A, B and B−A for each metric, then the queries that moved."""
    from rich.markup import escape

    files = diff["files"]
    out.print(f"[bold]A[/] {escape(files['a'])}  [bold]B[/] {escape(files['b'])}")
    for kind, metrics in diff["kinds"].items():
        table = Table(title=escape(kind), header_style="bold", title_justify="left")
        for col in ("metric", "A", "B", "B−A"):
            table.add_column(col, justify="left" if col == "metric" else "right")
        for name, v in metrics.items():
            table.add_row(name, _fmt(v["a"], name), _fmt(v["b"], name),
                          _fmt_diff(v["diff"], name))
        out.print(table)
    table = Table(title=f"queries whose ndcg@5 changed ({len(diff['changed'])})",
                  header_style="bold", title_justify="left")
    for col in ("id", "kind", "A", "B", "B−A"):
        table.add_column(col, justify="left" if col in ("id", "kind") else "right")
    for q in diff["changed"]:
        table.add_row(escape(q["id"]), escape(str(q["kind"] or "-")), _fmt(q["a"], ""),
                      _fmt(q["b"], ""), _fmt_diff(q["diff"], ""))
    out.print(table)


def _fmt(value: float | None, name: str) -> str:
    if value is None:
        return "-"
    return str(int(value)) if name == "n" else f"{value:.3f}"


def _fmt_diff(value: float | None, name: str) -> str:
    """Signed, green when B is higher: every metric here is better when larger."""
    if value is None:
        return "-"
    colour = "green" if value > 0 else "red" if value < 0 else "dim"
    text = f"{int(value):+d}" if name == "n" else f"{value:+.3f}"
    return f"[{colour}]{text}[/]"


@app.command(name="eval-answers")
def eval_answers(queries: Annotated[Path, typer.Argument(help="queries.jsonl with answers")],
                 docs: Annotated[Path | None, typer.Option(
                     help="folder with the documents")] = None,
                 index: Annotated[Path | None, typer.Option(
                     "--index", "-i", help="index folder (default: temp)")] = None,
                 generator: GeneratorOpt = None, model: ModelOpt = None,
                 k: Annotated[int | None, typer.Option("--k", "-k", help="hits per answer")]
                 = None,
                 profile: ProfileOpt = None, config: ConfigOpt = None,
                 as_json: JsonOpt = False, debug: DebugOpt = False) -> None:
    """Score answers (token F1, ROUGE-L, exact match, key-fact containment, BLEU,
    citation precision/recall, groundedness, answered share, latency) against references."""
    _setup(debug)
    from .errors import ConfigError
    from .eval.answers import evaluate_answers, read_answer_queries

    qs = read_answer_queries(queries)
    if index is None and docs is None:
        raise ConfigError("give --docs DIR (indexed into a temporary index) or --index DIR")
    overrides = {"generate__model": model} if model else {}
    with _index_dir(index) as where, _open(where, profile, config, **overrides) as idx:
        if docs is not None:
            report = idx.add(str(docs), show_progress=None if not as_json else False)
            for f in report.failed:
                err.print(f"[red]failed[/] {f.source}: {f.reason}", highlight=False)
        name = generator or idx.settings.generate.generator
        with err.status(f"answering with {name}…") as status:
            result = evaluate_answers(
                qs, lambda q: idx.ask(q, k=k, generator=name), name,
                progress=lambda i, n: status.update(f"answered {i}/{n} with {name}…"))
    if as_json:
        out.print_json(json.dumps(result, default=str))
        return
    _print_answer_eval(result)


def _print_answer_eval(result: dict[str, Any]) -> None:
    table = Table(title=f"mmrag eval-answers — {result['n']} answers, generator "
                        f"{result['generator']}, {result['seconds']:.1f}s", header_style="bold")
    names = ["token_f1", "rouge_l", "exact_match", "contained", "bleu", "citation_precision",
             "citation_recall", "grounded", "found", "latency_p50"]
    groups = [("overall", result["overall"]), *result["by_kind"].items()]
    # one column per kind: ten metrics side by side do not fit a terminal
    table.add_column("metric")
    for kind, _ in groups:
        table.add_column(kind, justify="right")
    table.add_row("n", *(str(row["n"]) for _, row in groups))
    for m in names:
        table.add_row(m, *("-" if row.get(m) is None else f"{row[m]:.3f}" for _, row in groups))
    out.print(table)


@app.command()
def demo(index: Annotated[Path | None, typer.Option("--index", "-i",
                                                    help="index folder (default: temp)")] = None,
         debug: DebugOpt = False) -> None:
    """Index the bundled sample files, run a few searches and answer a question."""
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
        question = "How fast do gannets dive, and what protects them?"
        out.rule(f"[bold]ask (offline extractive generator):[/] {question}")
        _stream_answer(idx.ask(question, k=3, stream=True))


@app.command()
def serve(index: IndexOpt = DEFAULT_INDEX,
          data: Annotated[Path | None, typer.Option(
              help="serve a folder of collections (one index each) instead of --index")]
          = None,
          profile: ProfileOpt = None, config: ConfigOpt = None,
          host: Annotated[str, typer.Option(help="address to listen on")] = "127.0.0.1",
          port: Annotated[int, typer.Option(help="TCP port")] = 8000,
          generator: GeneratorOpt = None, model: ModelOpt = None,
          insecure: Annotated[bool, typer.Option(
              help="listen on a non-loopback address even without API keys")] = False,
          cors_origin: Annotated[list[str] | None, typer.Option(
              help="browser origin allowed by CORS (repeatable; default: CORS off)")] = None,
          max_upload_mb: Annotated[float | None, typer.Option(
              help="largest uploaded file in MB (default server.max_upload_mb, 100)")] = None,
          debug: DebugOpt = False) -> None:
    """Serve over HTTP: collections, search, ask (SSE), media, web page, /v1 (OpenAI), /docs."""
    _setup(debug)
    from .config import ServerSettings, Settings
    from .errors import ConfigError
    from .server import serve as run_server
    from .server import warm_up
    from .server.app import check_exposure
    from .server.keys import KeyStore

    overrides = {k: v for k, v in (("generate__generator", generator),
                                   ("generate__model", model)) if v}
    server = Settings.load(config, **overrides).server.model_dump()
    server.update({k: v for k, v in (("cors_origins", cors_origin),
                                     ("max_upload_mb", max_upload_mb)) if v})
    settings = ServerSettings(**server)
    level = "debug" if _State.debug else "info"
    if data is not None:
        check_exposure(KeyStore(data), host, insecure)
        out.print(f"serving the collections in {data} at http://{host}:{port}/ (API docs at "
                  f"/docs, OpenAI-compatible at http://{host}:{port}/v1), Ctrl+C to stop",
                  highlight=False)
        run_server(data=data, host=host, port=port, log_level=level, profile=profile,
                   config=config, insecure=insecure, server=settings, **overrides)
        return
    if not (index / "mmrag.json").exists():
        raise ConfigError(f"no index at {str(index)!r}; run `mmrag add` first or pass --index")
    with _open(index, profile, config, **overrides) as idx:
        warm_up(idx)  # a bad generator or missing extra fails here, as one line
        check_exposure(KeyStore(idx.root), host, insecure)
        out.print(f"serving {index} at http://{host}:{port}/ (API docs at /docs, "
                  f"OpenAI-compatible at http://{host}:{port}/v1), Ctrl+C to stop",
                  highlight=False)
        run_server(idx, host=host, port=port, log_level=level, insecure=insecure,
                   server=settings)


keys_app = typer.Typer(no_args_is_help=True, help="API keys of a server folder (what "
                       "`mmrag serve` gets as --data or --index); stored hashed in keys.json.")
app.add_typer(keys_app, name="keys")
KeysDirOpt = Annotated[Path, typer.Option(
    "--data", "--index", "-i", help="the folder the server serves (its --data DIR, or its "
    "--index DIR)", envvar="MMRAG_DATA")]


@keys_app.command("create")
def keys_create(scope: Annotated[str, typer.Option(help="read | write | admin")],
                collection: Annotated[list[str] | None, typer.Option(
                    "--collection", "-c", help="limit the key to this collection "
                    "(repeatable; default: all)")] = None,
                name: Annotated[str, typer.Option(help="a label to recognise it by")] = "",
                data: KeysDirOpt = DEFAULT_INDEX, as_json: JsonOpt = False,
                debug: DebugOpt = False) -> None:
    """Create a key and print it once: only its hash is stored."""
    _setup(debug)
    from .server.keys import KeyStore

    token, key = KeyStore(data).create(scope, collection, name)
    if as_json:
        out.print_json(json.dumps({"key": token, **key.public()}))
        return
    sys.stdout.write(token + "\n")
    err.print(f"created key {key.id} ({key.scope}"
              f"{' on ' + ', '.join(key.collections) if key.collections else ''}); it is "
              "shown only now, so store it", highlight=False)


@keys_app.command("list")
def keys_list(data: KeysDirOpt = DEFAULT_INDEX, as_json: JsonOpt = False,
              debug: DebugOpt = False) -> None:
    """List keys (ids, scopes, collections; never the keys themselves)."""
    _setup(debug)
    import datetime

    from .server.keys import KeyStore

    keys = KeyStore(data).keys()
    if as_json:
        out.print_json(json.dumps([k.public() for k in keys]))
        return
    table = Table("id", "scope", "collections", "name", "created", header_style="bold")
    for k in keys:
        created = datetime.datetime.fromtimestamp(k.created).isoformat(" ", "seconds")
        table.add_row(k.id, k.scope, ", ".join(k.collections) if k.collections else "(all)",
                      k.name, created)
    out.print(table)


@keys_app.command("revoke")
def keys_revoke(key_id: Annotated[str, typer.Argument(help="the id `mmrag keys list` shows")],
                data: KeysDirOpt = DEFAULT_INDEX, debug: DebugOpt = False) -> None:
    """Revoke a key; a running server stops accepting it at once."""
    _setup(debug)
    from .errors import ConfigError
    from .server.keys import KeyStore

    if not KeyStore(data).revoke(key_id):
        raise ConfigError(f"no key with id {key_id!r} in {str(data)!r}")
    out.print(f"revoked key {key_id}", highlight=False)


@app.command()
def mcp(index: IndexOpt = DEFAULT_INDEX, profile: ProfileOpt = None, config: ConfigOpt = None,
        generator: GeneratorOpt = None, model: ModelOpt = None, debug: DebugOpt = False) -> None:
    """Serve the index to MCP clients over stdio: tools search, ask and add."""
    _setup(debug)
    from .agent.mcp import serve as serve_mcp

    # stdout carries the protocol only: nothing is printed here, logs go to stderr.
    with _open(index, profile, config, generate__generator=generator,
               generate__model=model) as idx:
        serve_mcp(idx)


@app.command()
def detect(image: Annotated[Path, typer.Argument(help="image file")],
           labels: Annotated[str | None, typer.Option(
               help="comma-separated things to find (default: prominent objects)")] = None,
           out_png: Annotated[Path | None, typer.Option(
               "--out", "-o", help="PNG with the boxes drawn (default: IMAGE-boxes.png "
               "in the current folder)")] = None,
           generator: GeneratorOpt = None, model: ModelOpt = None, config: ConfigOpt = None,
           as_json: JsonOpt = False, debug: DebugOpt = False) -> None:
    """Find objects in an image with a vision-language model and draw their boxes."""
    _setup(debug)
    from .config import Settings
    from .generate import create_generator
    from .generate.detect import detect as find_boxes
    from .generate.detect import draw_boxes, load_image

    overrides = {k: v for k, v in (("generator", generator), ("model", model)) if v}
    settings = Settings.load(config, generate=overrides or None).generate
    picture = load_image(image)
    wanted = [w.strip() for w in (labels or "").split(",") if w.strip()]
    found = find_boxes(picture, wanted, create_generator(settings),
                       max_tokens=max(settings.max_tokens, 1024),
                       temperature=settings.temperature)
    target = out_png or Path(f"{image.stem}-boxes.png")
    draw_boxes(picture, found).save(target, format="PNG")
    if as_json:
        out.print_json(json.dumps({"image": str(image), "size": list(picture.size),
                                   "out": str(target),
                                   "detections": [d.to_dict() for d in found]}))
        return
    for d in found:
        out.print(f"{d.label}: {d.box}", highlight=False)
    out.print(f"{len(found)} object(s); wrote {target}", highlight=False)


@app.command()
def classify(images: Annotated[list[Path], typer.Argument(help="image files")],
             labels: Annotated[str, typer.Option(
                 help="comma-separated labels, e.g. 'invoice,receipt,chart,photo'")],
             threshold: Annotated[float | None, typer.Option(
                 help="calibrated probability a label needs to be a tag (default "
                      "ingest.auto_tags_threshold)")] = None,
             index: IndexOpt = DEFAULT_INDEX,
             model: Annotated[str | None, typer.Option(
                 "--model", help="CLIP/SigLIP id or path (default: the index's "
                                 "encode.vision_model)")] = None,
             config: ConfigOpt = None, as_json: JsonOpt = False,
             debug: DebugOpt = False) -> None:
    """Zero-shot labels for images with the clip profile's CLIP/SigLIP model."""
    _setup(debug)
    from .config import Settings
    from .encode.zeroshot import ZeroShot, encoder_for
    from .generate.detect import load_image
    from .index import MANIFEST

    if model:
        settings = Settings.load(config, encode={"vision_model": model})
    elif (index / MANIFEST).is_file():
        with _open(index, config=config) as idx:
            settings = idx.settings
    else:
        settings = Settings.load(config)
    pictures = [load_image(p) for p in images]
    cut = settings.ingest.auto_tags_threshold if threshold is None else threshold
    results = ZeroShot(encoder_for(settings), labels, cut).classify(pictures)
    if as_json:
        out.print_json(json.dumps([{"image": str(p), **r}
                                   for p, r in zip(images, results, strict=True)]))
        return
    for path, r in zip(images, results, strict=True):
        scores = ", ".join(f"{k} {v:.2f}" for k, v in r["labels"].items())
        tags = ", ".join(r["tags"]) or "(none)"
        out.print(f"{path}: tags {tags}  [{scores}]", highlight=False, markup=False)


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
        from .errors import disk_full

        # e.g. SQLite's "database or disk is full" while an index is being created
        _fail(exc, prefix="no space left on the device of the index: " if disk_full(exc)
              else f"{type(exc).__name__}: ")


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
