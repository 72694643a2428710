"""Training wiring: sentence-transformers' trainer and InfoNCE loss on a tiny corpus."""

from __future__ import annotations

import pytest

from mmrag.config import TuneSettings
from mmrag.tune.pairs import Passage, build_pairs, split_pairs
from mmrag.tune.text import train_text_model

from .conftest import TOPICS


def _passages() -> list[Passage]:
    out = []
    for name, (title, sents) in TOPICS.items():
        for i, s in enumerate(sents):
            others = " ".join(sents[j] for j in range(4) if j != i)
            out.append(Passage(f"{name}{i}", name, i + 1, f"{title} part {i + 1}\n{s} {others}"))
    return out


def _train(model: str, tmp_path, **overrides):
    passages = _passages()
    train, held = split_pairs(build_pairs(passages), 0.2)
    for pair in train:  # a negative from another topic, as mining would find
        pair.negatives = [next(p.text for p in passages if p.doc_id != pair.page_key[0])]
    settings = TuneSettings(**{"minutes": 10, "max_steps": 20, "eval_steps": 10,
                               "batch_size": 8, "learning_rate": 1e-3, **overrides})
    report = train_text_model(model, train, held, passages, tmp_path / "tuned" / "text-1",
                              settings)
    return report, train, held


def test_training_loss_falls_on_a_tiny_random_model(tiny_st_path, tmp_path):
    report, train, held = _train(tiny_st_path, tmp_path)
    assert report.train_pairs == len(train) and report.heldout_pairs == len(held)
    assert report.steps > 0 and report.scores, "held-out evaluations ran"
    first, last = report.losses[0][1], report.losses[-1][1]
    assert last < first, report.losses
    saved = (tmp_path / "tuned" / "text-1").exists()
    assert saved == (report.best_score > report.base_score)  # kept only when it helps
    assert not list((tmp_path / "tuned").glob(".train-*")), "checkpoints cleaned up"


@pytest.mark.slow
def test_minilm_tunes_on_cpu(tmp_path):
    """The bundled MiniLM through the same path (minutes, not seconds, on 2 cores)."""
    from mmrag.encode.text import bundled_model_path

    report, _, _ = _train(bundled_model_path(), tmp_path, learning_rate=3e-5, max_steps=20)
    assert report.losses and report.losses[-1][1] < report.losses[0][1]
