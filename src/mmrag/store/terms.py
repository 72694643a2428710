"""What the full-text (BM25) index reads: the item's text, made searchable in any script.

Why: both backends tokenise on word boundaries, which works for Latin, Cyrillic, Arabic,
but leaves Chinese and Japanese (no spaces) as one token per sentence and Korean as one
token per space-separated word with its particles attached (``보안기술은``), so a query
for ``보안기술`` matched nothing. Cutting every CJK run into overlapping character bigrams
(the approach of Elasticsearch's ``cjk_bigram`` and Lucene's CJKAnalyzer) needs no
dictionary and makes any two-character span findable; the same function runs on the
query, so both sides agree. Latin text is left for the store's own analyser where it
stems (LanceDB: lower-case, English stemming, stop words); Milvus Lite's analyser only
splits words (it accepts, and ignores, stemming filters), so for Milvus the words are
lower-cased and Snowball-stemmed here (``stem=True``).

The result goes to a separate ``terms`` column, so ``text`` stays what the user sees.
"""

from __future__ import annotations

import functools
import re
import unicodedata

from ..errors import MissingDependencyError

__all__ = ["TERMS_COLUMN", "lexical_text"]

TERMS_COLUMN = "terms"

# Han (with extension A and compatibility ideographs), kana, Hangul syllables and jamo.
_CJK_RUN = re.compile(
    "[\u1100-\u11ff\u3040-\u30ff\u3130-\u318f\u31f0-\u31ff\u3400-\u4dbf\u4e00-\u9fff"
    "\uac00-\ud7af\uf900-\ufaff\uff66-\uff9f]+")


_WORD = re.compile(r"[^\W\d_]+")


def lexical_text(text: str, stem: bool = False) -> str:
    """NFKC-normalised ``text`` with each CJK run replaced by its character bigrams.

    NFKC first, so full-width Latin letters and digits (common in CJK documents) match
    their ASCII forms. A one-character run stays a unigram. ``stem`` lower-cases and
    English-stems every alphabetic word (for a store whose analyser does not).
    """
    if not text:
        return ""
    norm = _CJK_RUN.sub(_bigrams, unicodedata.normalize("NFKC", text))
    if stem:
        stemmer = _stemmer()
        norm = _WORD.sub(lambda m: stemmer.stemWord(m.group().lower()), norm)
    return norm


@functools.cache
def _stemmer():  # noqa: ANN202 - PyStemmer has no type stubs
    """The Snowball English stemmer; PyStemmer comes with mmrag[milvus]."""
    try:
        import Stemmer
    except ImportError as exc:
        raise MissingDependencyError("PyStemmer", "milvus") from exc
    return Stemmer.Stemmer("english")


def _bigrams(match: re.Match[str]) -> str:
    run = match.group()
    if len(run) == 1:
        return f" {run} "
    return " " + " ".join(run[i:i + 2] for i in range(len(run) - 1)) + " "
