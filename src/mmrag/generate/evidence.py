"""The weak-evidence rule: below a calibrated retrieval confidence, an ask is answered
"not found in the indexed material" without calling any generator.

Fused search scores cannot serve: fusion normalises each list by its own best score, so
the top hit of a query about nothing in the index scores as high as a perfect match.
:func:`retrieval_confidence` is an absolute signal instead: the cosine, under the
index's text encoder, between the question and the closest window
(:func:`~mmrag.generate.grounding.windows`) of any hit's text as the prompt gives it to
a generator. Those window vectors are the ones the support check reuses afterwards, so
the rule costs one encoding of the hits.

A threshold belongs to an encoder's cosine scale, so :data:`CALIBRATED` keeps one per
text encoder identity (its ``describe()``), measured by ``benchmarks/calibrate_evidence.py``
(``benchmarks/results/evidence.md``); ``generate.min_confidence`` overrides it, and an
encoder without a calibrated value (the hashing fallback, a tuned or custom model) has the
rule off unless that setting is given. An
image-only question, or hits with no text at all (images without OCR text or caption),
leave nothing to compare, so the rule does not apply to them: an image-capable generator
may still read the images.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from .grounding import EmbedFn, windows
from .prompt import NO_TEXT

__all__ = ["CALIBRATED", "calibrated_threshold", "retrieval_confidence"]

# (encoder, model) of a text encoder's describe() → its calibrated min_confidence
CALIBRATED: dict[tuple[str, str], float] = {
    ("sentence-transformers", "all-MiniLM-L6-v2"): 0.25,  # benchmarks/results/evidence.md
}


def calibrated_threshold(describe: Mapping[str, Any]) -> float | None:
    """The calibrated threshold of the encoder ``describe`` names, None if it has none."""
    return CALIBRATED.get((str(describe.get("encoder", "")), str(describe.get("model", ""))))


def retrieval_confidence(question: str, sources: Sequence[str],
                         embed: EmbedFn) -> float | None:
    """Best cosine between ``question`` and a window of a source text (what a generator
    is given of each hit); None when there is nothing to compare (no question text, or
    no source with text)."""
    wins = [w for t in sources if t.strip() and t.strip() != NO_TEXT for w in windows(t)]
    if not question.strip() or not wins:
        return None
    vecs = np.asarray(embed([question.strip(), *wins]), dtype=np.float32)
    return float(np.max(vecs[1:] @ vecs[0]))
