"""Fine-tune a sentence-transformers text encoder on pseudo-query pairs, on CPU, in a time
budget, with sentence-transformers' own trainer and loss.

The loss is InfoNCE over in-batch plus mined hard negatives
(``MultipleNegativesRankingLoss`` with ``scale = 1 / temperature``); the no-duplicates
batch sampler keeps a passage from being its own in-batch negative. Held-out
pseudo-queries are scored (nDCG@10 against every passage of the index, a hit being any
passage of the positive's page) before training and every ``eval_steps``; training stops
when the budget is spent or the score stops rising, and the best checkpoint is the one
kept. The caller switches to the model only if that best score beats the serving model's.
"""

from __future__ import annotations

import logging
import random
import shutil
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..config import TuneSettings
from ..errors import MissingDependencyError
from .pairs import Pair, Passage

log = logging.getLogger(__name__)

__all__ = ["TrainReport", "heldout_evaluator", "train_text_model"]


@dataclass
class TrainReport:
    """What a training run did; saved next to the tuned model as ``report.json``."""

    base_score: float                  # held-out nDCG@10 of the model training started from
    best_score: float                  # of the best checkpoint
    metric: str
    steps: int
    seconds: float
    train_pairs: int
    heldout_pairs: int
    pairs_by_kind: dict[str, int]
    losses: list[tuple[int, float]] = field(default_factory=list)   # (step, training loss)
    scores: list[tuple[int, float]] = field(default_factory=list)   # (step, held-out)
    stopped: str = ""                  # budget | early-stopping | max-steps
    trained_parameters: int = 0
    settings: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def heldout_evaluator(heldout: Sequence[Pair], passages: Sequence[Passage], batch_size: int):
    """An ``InformationRetrievalEvaluator`` over the index's passages: what retrieval on
    this index would rank for each held-out pseudo-query, scored at page level."""
    from sentence_transformers.sentence_transformer.evaluation import (
        InformationRetrievalEvaluator,
    )

    corpus: dict[str, Any] = {p.id: p.text for p in passages}
    by_page: dict[tuple[str, int], set[str]] = {}
    for p in passages:
        by_page.setdefault(p.page_key, set()).add(p.id)
    queries: dict[str, Any] = {f"q{i}": pair.query for i, pair in enumerate(heldout)}
    relevant = {f"q{i}": by_page.get(pair.page_key, {pair.passage_id})
                for i, pair in enumerate(heldout)}
    return InformationRetrievalEvaluator(
        queries, corpus, relevant, name="heldout", mrr_at_k=[10], ndcg_at_k=[10],
        accuracy_at_k=[1], precision_recall_at_k=[10], map_at_k=[10],
        batch_size=batch_size, write_csv=False, show_progress_bar=False)


def freeze_lower_layers(model: Any, train_layers: int) -> int:
    """Train only the top ``train_layers`` transformer layers (0 = all): the word
    embeddings (half of MiniLM's weights) and lower layers stay as they are, which cuts
    the backward pass and the optimizer's work on 2 cores and keeps a few hundred
    pseudo-queries from pulling the whole model. Returns the trainable parameter count."""
    import re

    names = [n for n, _ in model.named_parameters()]
    layers = sorted({int(m.group(1)) for n in names
                     if (m := re.search(r"\.layers?\.(\d+)\.", n))})
    if train_layers <= 0 or not layers:
        return sum(p.numel() for p in model.parameters() if p.requires_grad)
    keep = set(layers[-train_layers:])
    count = 0
    for n, p in model.named_parameters():
        m = re.search(r"\.layers?\.(\d+)\.", n)
        p.requires_grad = bool(m and int(m.group(1)) in keep) or "pooler" in n
        count += p.numel() if p.requires_grad else 0
    return count


def _dataset(pairs: Sequence[Pair], n_neg: int, passages: Sequence[Passage], seed: int):
    """anchor, positive, negative_1..n columns; a pair short of mined negatives gets
    random passages from other pages (every row needs the same columns)."""
    try:
        from datasets import Dataset
    except ImportError as exc:
        raise MissingDependencyError("mmrag tune", "tune") from exc
    rng = random.Random(seed)
    cols: dict[str, list[str]] = {"anchor": [], "positive": []}
    for j in range(n_neg):
        cols[f"negative_{j + 1}"] = []
    for pair in pairs:
        cols["anchor"].append(pair.query)
        cols["positive"].append(pair.positive)
        negs = list(pair.negatives[:n_neg])
        while len(negs) < n_neg and passages:
            cand = rng.choice(passages)
            if cand.page_key != pair.page_key or len(passages) < 3:
                negs.append(cand.text)
        for j, neg in enumerate(negs):
            cols[f"negative_{j + 1}"].append(neg)
    return Dataset.from_dict(cols)


def train_text_model(base: str, train: Sequence[Pair], heldout: Sequence[Pair],
                     passages: Sequence[Passage], out_dir: Path, settings: TuneSettings,
                     *, minutes: float | None = None, serving_score: float | None = None,
                     on_step: Callable[[int, int, str], None] | None = None,
                     local_files_only: bool = True) -> TrainReport:
    """Train from the model folder ``base``; save the best checkpoint to ``out_dir``.

    ``serving_score`` is the held-out score of the model now answering queries when it
    is not ``base`` (else ``base``'s own score is measured). ``on_step(step, max_steps,
    note)`` reports progress.
    """
    try:
        import transformers
        from sentence_transformers import (
            SentenceTransformer,
            SentenceTransformerTrainer,
            SentenceTransformerTrainingArguments,
        )
        from sentence_transformers.base.sampler import BatchSamplers
        from sentence_transformers.sentence_transformer.losses import (
            MultipleNegativesRankingLoss,
        )
    except ImportError as exc:
        raise MissingDependencyError("mmrag tune", "tune") from exc

    t0 = time.monotonic()
    budget_s = 60.0 * (settings.minutes if minutes is None else minutes)
    transformers.set_seed(settings.seed)
    model = SentenceTransformer(base, device="cpu", local_files_only=local_files_only)
    model.max_seq_length = settings.max_seq_length
    trained = freeze_lower_layers(model, settings.train_layers)
    evaluator = heldout_evaluator(heldout, passages, settings.batch_size * 2)
    t_eval = time.monotonic()
    base_result = evaluator(model)
    eval_s = time.monotonic() - t_eval     # one held-out evaluation
    metric = evaluator.primary_metric
    base_score = float(base_result[metric])
    reference = base_score if serving_score is None else serving_score
    n_neg = settings.hard_negatives
    dataset = _dataset(train, n_neg, passages, settings.seed)
    steps_per_epoch = max(1, len(dataset) // settings.batch_size)
    max_steps = min(settings.max_steps, steps_per_epoch * 4)
    eval_steps = min(settings.eval_steps, max(1, max_steps // 2))
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=".train-", dir=out_dir.parent))
    stopped = {"why": "max-steps"}

    class _Budget(transformers.TrainerCallback):
        """Reports each step and stops at the time budget, leaving room for one more step
        and the final evaluation (the last steps must be scored to be kept). The step
        time is measured from the second step on: the first one carries the set-up."""

        step_end = first_end = 0.0

        def on_step_end(self, args, state, control, **kw):
            nonlocal eval_s
            if on_step is not None:
                loss = next((h["loss"] for h in reversed(state.log_history) if "loss" in h),
                            None)
                on_step(state.global_step, max_steps,
                        f"loss {loss:.3f}" if loss is not None else "")
            now = time.monotonic()
            if state.global_step == 1:
                self.first_end = now
                per_step = now - t0
            else:
                per_step = (now - self.first_end) / (state.global_step - 1)
            if now - t0 + per_step + eval_s > budget_s and not control.should_training_stop:
                stopped["why"] = "budget"
                control.should_evaluate = control.should_save = True
                control.should_training_stop = True
            self.step_end = now
            return control

        def on_evaluate(self, args, state, control, **kw):
            nonlocal eval_s
            eval_s = max(eval_s, time.monotonic() - self.step_end)
            self.first_end += time.monotonic() - self.step_end  # not a training step's time

    args = SentenceTransformerTrainingArguments(
        output_dir=str(work), max_steps=max_steps, per_device_train_batch_size=settings.batch_size,
        learning_rate=settings.learning_rate, warmup_steps=max(1, max_steps // 10),
        batch_sampler=BatchSamplers.NO_DUPLICATES, eval_strategy="steps",
        eval_steps=eval_steps, save_strategy="steps", save_steps=eval_steps,
        save_total_limit=2, load_best_model_at_end=True,
        metric_for_best_model=f"eval_{metric}", greater_is_better=True,
        logging_steps=1, report_to="none", use_cpu=True,  # every step: runs are short
        seed=settings.seed, dataloader_num_workers=0, disable_tqdm=True,
        save_only_model=True)
    loss = MultipleNegativesRankingLoss(model, scale=1.0 / settings.temperature)
    # a model card's widget examples cost an encode pass and are never published here
    model.model_card_data.generate_widget_examples = False
    early = transformers.EarlyStoppingCallback(early_stopping_patience=settings.patience)
    trainer = SentenceTransformerTrainer(
        model=model, args=args, train_dataset=dataset, loss=loss, evaluator=evaluator,
        callbacks=[_Budget(), early])
    trainer.remove_callback(transformers.PrinterCallback)  # logs go to the report, not stdout
    try:
        trainer.train()
        history = trainer.state.log_history
        scores = [(int(h["step"]), float(h[f"eval_{metric}"])) for h in history
                  if f"eval_{metric}" in h]
        best = max((s for _, s in scores), default=base_score)
        if stopped["why"] == "max-steps" and trainer.state.global_step < max_steps:
            stopped["why"] = "early-stopping"
        if best > reference:
            out_dir.mkdir(parents=True, exist_ok=True)
            model.save(str(out_dir))  # the best checkpoint (load_best_model_at_end)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    kinds: dict[str, int] = {}
    for pair in [*train, *heldout]:
        kinds[pair.kind] = kinds.get(pair.kind, 0) + 1
    return TrainReport(
        base_score=round(reference, 4), best_score=round(best, 4), metric=metric,
        steps=int(trainer.state.global_step), seconds=round(time.monotonic() - t0, 1),
        train_pairs=len(train), heldout_pairs=len(heldout), pairs_by_kind=kinds,
        losses=[(int(h["step"]), round(float(h["loss"]), 4)) for h in history if "loss" in h],
        scores=[(s, round(v, 4)) for s, v in scores], stopped=stopped["why"],
        trained_parameters=trained,
        settings=settings.model_dump())
