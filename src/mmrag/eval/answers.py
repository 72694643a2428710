"""`mmrag eval-answers`: score generated answers against reference answers.

Per query with an ``answer`` field: token F1 and ROUGE-L F1 against the reference (after
SQuAD-style normalisation and with ``[n]`` markers removed, so citing is not penalised),
exact match and containment of the reference's key fact (:func:`exact_match`,
:func:`contains_key_facts`), citation precision (share of the answer's citations that
point at a relevant page; only answers that cite count towards it), citation recall
(share of the relevant pages the answer cites), groundedness (``Answer.grounded``, over
found answers), whether the answer was ``found`` (the answered share), and its latency
(retrieval plus generation). BLEU (sacrebleu's corpus BLEU, 0-100) is computed per group
of answers, as BLEU is a corpus metric; without the ``eval`` extra it is None. Reported
overall and per query kind.
"""

from __future__ import annotations

import json
import math
import re
import statistics
import time
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..types import Answer, Citation
from .runner import EvalQuery, PageKey, is_relevant, read_queries

__all__ = ["citation_precision", "citation_recall", "contains_key_facts", "corpus_bleu",
           "evaluate_answers", "exact_match", "key_facts", "lcs_length", "normalize_tokens",
           "read_answer_queries", "rouge_l", "token_f1"]

_CITATION = re.compile(r"\[\s*\d+(?:\s*[-–,;]\s*\d+)*\s*\]")
_ARTICLES = frozenset({"a", "an", "the"})
# A number: digits with optional thousands separators and decimals ("20,843", "0.75").
_NUMBER = re.compile(r"\d+(?:[.,]\d+)*")
# The head of a reference: what comes before its first ";" or "(" (the rest of the
# references in the shared sets is commentary: where it is, what it is not).
_HEAD_END = re.compile(r"[;(]")
# Capitalised only because they open a quoted title ('The Quantum Universe'): not names.
_FUNCTION_WORDS = frozenset("""a an and the this that these those with in on of for to by
or only it its is are was were be at as from not no all any""".split())


def normalize_tokens(text: str) -> list[str]:
    """Lower-case word tokens without punctuation, articles or citation markers."""
    return [w for w in re.findall(r"\w+", _CITATION.sub(" ", text).lower())
            if w not in _ARTICLES]


def token_f1(prediction: str, reference: str) -> float:
    """Harmonic mean of token precision and recall (bag of words, as in SQuAD)."""
    pred, ref = normalize_tokens(prediction), normalize_tokens(reference)
    common = sum((Counter(pred) & Counter(ref)).values())
    if not common:
        return 0.0
    precision, recall = common / len(pred), common / len(ref)
    return 2 * precision * recall / (precision + recall)


def lcs_length(a: Sequence[str], b: Sequence[str]) -> int:
    """Length of the longest common subsequence, in O(len(a) * len(b)) with one row."""
    row = [0] * (len(b) + 1)
    for x in a:
        diag = 0  # the cell up-left of row[j]: LCS of the shorter prefixes
        for j, y in enumerate(b, 1):
            up = row[j]
            row[j] = diag + 1 if x == y else max(up, row[j - 1])
            diag = up
    return row[-1]


def rouge_l(prediction: str, reference: str) -> float:
    """ROUGE-L F1: LCS-based precision and recall (beta = 1, like rouge-score's rougeL)."""
    pred, ref = normalize_tokens(prediction), normalize_tokens(reference)
    lcs = lcs_length(pred, ref)
    if not lcs:
        return 0.0
    precision, recall = lcs / len(pred), lcs / len(ref)
    return 2 * precision * recall / (precision + recall)


def exact_match(prediction: str, reference: str) -> bool:
    """Normalised exact match: the same tokens in the same order after
    :func:`normalize_tokens` (case, punctuation, articles and ``[n]`` markers ignored)."""
    return normalize_tokens(prediction) == normalize_tokens(reference)


def _numbers(text: str) -> set[str]:
    """Numbers as digit strings: thousands commas dropped, "1.50" and "1.5" alike."""
    out = set()
    for raw in _NUMBER.findall(text):
        parts = raw.split(",")
        if len(parts) > 1 and all(len(p) == 3 for p in parts[1:]):
            raw = "".join(parts)  # 20,843 -> 20843
        for piece in raw.split(","):  # "1,2" (a list) stays two numbers
            out.add(piece.rstrip("0").rstrip(".") if "." in piece else piece)
    return out


def _is_name(word: str, sentence_start: bool) -> bool:
    """A name-like word: an acronym or code (ORQA, SNB22-3, DeepSeek-V3), or a capitalised
    word that does not merely start a sentence (Mistral, Jordan)."""
    letters = word.replace("-", "").replace("'", "").replace("’", "")
    if len(letters) < 2 or word.lower() in _FUNCTION_WORDS:
        return False
    if any(c.isdigit() for c in letters) or (len(letters) > 1 and letters.isupper()):
        return True
    if any(c.isupper() for c in letters[1:]):
        return True  # inner capital: TableBank, LaTeX
    return word[:1].isupper() and not sentence_start


def key_facts(reference: str) -> tuple[set[str], set[str]]:
    """The reference's key fact: the numbers and names of its head (the text before its
    first ``;`` or ``(``). Returns (numbers, names); names lower-cased, possessive ``'s``
    dropped. Both empty when the head holds neither (a descriptive reference)."""
    head = _HEAD_END.split(_CITATION.sub(" ", reference), maxsplit=1)[0]
    names = set()
    start = True
    for match in re.finditer(r"\S+", head):
        token = match.group(0)
        start = start or token[:1] in "'‘\"“"  # a quoted title starts like a sentence
        for piece in re.findall(r"\w[\w'’-]*", token):
            if piece[:1].isdigit():
                continue  # "38B", "3pm", "5.4x": the number is the fact
            word = re.sub(r"['’]s$", "", piece).strip("-'’")
            if word and _is_name(word, start):
                names.add(word.lower())
            start = False
        start = token.endswith((".", "!", "?", ":")) and not _NUMBER.fullmatch(token[:-1])
    return _numbers(head), names


def contains_key_facts(prediction: str, reference: str) -> bool:
    """Containment: the answer holds the reference's key fact. Every number of the
    reference's head must be among the answer's numbers, and at least half of its names
    (rounded up) must have all their word pieces among the answer's words
    (case-insensitive); a head with no number or name (a descriptive
    reference) needs all of its normalised tokens in the answer instead. Citation markers
    are ignored on both sides."""
    numbers, names = key_facts(reference)
    answer = _CITATION.sub(" ", prediction)
    words = set(re.findall(r"\w+", answer.lower()))
    if not numbers and not names:
        head = _HEAD_END.split(reference, maxsplit=1)[0]
        need = normalize_tokens(head)
        return bool(need) and set(need) <= set(normalize_tokens(answer))
    found = sum(set(re.findall(r"\w+", name)) <= words for name in names)
    return numbers <= _numbers(answer) and found >= math.ceil(len(names) / 2)


def corpus_bleu(predictions: Sequence[str], references: Sequence[str]) -> float | None:
    """sacrebleu's corpus BLEU (0-100, its default 13a tokeniser) with ``[n]`` markers
    removed; None without sacrebleu (the ``eval`` extra) or without answers."""
    try:
        import sacrebleu
    except ImportError:
        return None
    if not predictions:
        return None
    hyps = [" ".join(_CITATION.sub(" ", p).split()) for p in predictions]
    return float(sacrebleu.corpus_bleu(hyps, [list(references)]).score)


def citation_key(c: Citation) -> PageKey:
    return (Path(c.name or c.source).name, int(c.page))


def citation_precision(citations: Sequence[Citation], relevant: set[PageKey]) -> float | None:
    """Share of citations on a relevant page (any page of a document-level file); None when
    the answer cites nothing."""
    if not citations:
        return None
    return sum(is_relevant(citation_key(c), relevant) for c in citations) / len(citations)


def citation_recall(citations: Sequence[Citation], relevant: set[PageKey]) -> float | None:
    """Share of the relevant pages (or whole relevant files) that some citation points at;
    None when the query lists nothing relevant."""
    if not relevant:
        return None
    keys = [citation_key(c) for c in citations]
    return sum(any(is_relevant(k, {r}) for k in keys) for r in relevant) / len(relevant)


def read_answer_queries(path: str | Path) -> list[tuple[EvalQuery, str]]:
    """Queries of a queries.jsonl that have a reference ``answer``, with that answer."""
    queries = {q.id: q for q in read_queries(path)}
    out: list[tuple[EvalQuery, str]] = []
    for n, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        row = json.loads(line)  # read_queries already rejected malformed lines
        answer = row.get("answer")
        if isinstance(answer, str) and answer.strip():
            out.append((queries[str(row.get("id", n))], answer))
    if not out:
        raise ConfigError(f"{str(path)!r} has no query with an 'answer' field to score")
    return out


def evaluate_answers(queries: Sequence[tuple[EvalQuery, str]], ask: Callable[[str], Answer],
                     generator: str = "",
                     progress: Callable[[int, int], None] | None = None) -> dict[str, Any]:
    """Answer every query and return the report `mmrag eval-answers --json` prints;
    ``progress(done, total)`` is called after each answer (local models are slow)."""
    t0 = time.perf_counter()
    rows = []
    for done, (q, reference) in enumerate(queries, 1):
        rows.append(_score_one(q, reference, ask(q.query)))
        if progress:
            progress(done, len(queries))
    kinds = sorted({r["kind"] for r in rows})
    return {"n": len(rows), "generator": generator,
            "seconds": round(time.perf_counter() - t0, 3),
            "overall": _summary(rows),
            "by_kind": {k: _summary([r for r in rows if r["kind"] == k]) for k in kinds},
            "queries": rows}


def _score_one(q: EvalQuery, reference: str, answer: Answer) -> dict[str, Any]:
    grounded = getattr(answer, "grounded", None)
    em = exact_match(answer.text, reference)
    contained = contains_key_facts(answer.text, reference)
    return {"id": q.id, "kind": q.kind,
            "token_f1": token_f1(answer.text, reference),
            "rouge_l": rouge_l(answer.text, reference),
            "exact_match": float(em), "contained": float(contained),
            "em_or_contained": float(em or contained),
            "citation_precision": citation_precision(answer.citations, q.relevant),
            "citation_recall": citation_recall(answer.citations, q.relevant),
            # a not-found answer makes no claims: it has no groundedness to average
            "grounded": float(grounded) if isinstance(grounded, (int, float))
            and answer.found else None,
            "found": answer.found, "seconds": answer.seconds, "reference": reference,
            "citations": [f"{f}#{p}" for f, p in map(citation_key, answer.citations)],
            "answer": answer.text}


def _summary(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Means of the scores, p50 latency; citation precision over answers that cite,
    groundedness over found answers that carry it (None when none does)."""
    cited = [r["citation_precision"] for r in rows if r["citation_precision"] is not None]
    recall = [r["citation_recall"] for r in rows if r["citation_recall"] is not None]
    grounded = [r["grounded"] for r in rows if r.get("grounded") is not None]
    seconds = [r["seconds"] for r in rows]
    bleu = corpus_bleu([r["answer"] for r in rows], [r["reference"] for r in rows])
    return {"n": len(rows),
            "token_f1": _mean([r["token_f1"] for r in rows]),
            "rouge_l": _mean([r["rouge_l"] for r in rows]),
            "exact_match": _mean([r["exact_match"] for r in rows]),
            "contained": _mean([r["contained"] for r in rows]),
            "em_or_contained": _mean([r["em_or_contained"] for r in rows]),
            "bleu": round(bleu, 2) if bleu is not None else None,
            "citation_precision": _mean(cited) if cited else None,
            "cited": len(cited),
            "citation_recall": _mean(recall) if recall else None,
            "grounded": _mean(grounded) if grounded else None,
            "found": _mean([float(r["found"]) for r in rows]),
            "latency_p50": round(statistics.median(seconds), 3) if seconds else 0.0}


def _mean(values: Sequence[float]) -> float:
    return round(sum(values) / len(values), 4) if values else 0.0
