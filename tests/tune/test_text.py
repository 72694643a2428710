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
            out.append(Passage(f"{name}{i}", name, i + 1, f"{title} Part {i + 1}\n{s} {others}"))
    return out


def _train(model: str, tmp_path, **overrides):
    passages = _passages()
    train, held = split_pairs(build_pairs(passages), 0.2)
    for pair in train:  # a negative from another topic, as mining would find
        pair.negatives = [next(p.text for p in passages if p.doc_id != pair.page_key[0])]
    settings = TuneSettings(**{"minutes": 60, "max_steps": 30, "eval_steps": 15,
                               "patience": 5, "batch_size": 4, "learning_rate": 5e-4,
                               "train_layers": 0, **overrides})
    report = train_text_model(model, train, held, passages, tmp_path / "tuned" / "text-1",
                              settings)
    return report, train, held


def test_training_loss_falls_on_a_tiny_random_model(tiny_st_path, tmp_path):
    report, train, held = _train(tiny_st_path, tmp_path)
    assert report.train_pairs == len(train) and report.heldout_pairs == len(held)
    assert report.steps > 0 and report.scores, "held-out evaluations ran"
    assert report.stopped == "max-steps" and report.steps >= 12  # 4 epochs at most
    losses = [loss for _, loss in report.losses]
    assert sum(losses[-5:]) / 5 < sum(losses[:5]) / 5, report.losses
    saved = (tmp_path / "tuned" / "text-1").exists()
    assert saved == (report.best_score > report.base_score)  # kept only when it helps
    assert not list((tmp_path / "tuned").glob(".train-*")), "checkpoints cleaned up"


@pytest.mark.slow
def test_minilm_tunes_on_cpu(tmp_path):
    """The bundled MiniLM through the same path (minutes, not seconds, on 2 cores)."""
    from mmrag.encode.text import bundled_model_path

    report, _, _ = _train(bundled_model_path(), tmp_path, learning_rate=3e-5, max_steps=20,
                          train_layers=2)
    losses = [loss for _, loss in report.losses]
    assert sum(losses[-5:]) / 5 < sum(losses[:5]) / 5, report.losses
