"""Trainers: RecBole's, plus per-epoch timing and checkpoint names of their own; model-specific
ones are ``<Model>Trainer``."""
import os
import time
import uuid
from typing import NamedTuple

import torch

from recbole.evaluator import Collector
from recbole.trainer import Trainer
from torch.optim.lr_scheduler import LambdaLR

from recbole_eager.utils import RecBoleEagerError


class TrainTimeBudgetReached(Exception):
    """Raised before an epoch once ``train_time_budget`` seconds of fitting have passed."""


class EpochTimingMixin:
    """Records seconds of every training epoch and validation pass, and each pass's metrics
    (for benchmark tables), and stops fitting before an epoch once ``train_time_budget``
    seconds have passed."""

    def __init__(self, config, model):
        super().__init__(config, model)
        self.train_epoch_seconds = []
        self.valid_seconds = []
        self.valid_results = []
        self.time_budget = config["train_time_budget"]
        self.fit_start = None

    def fit(self, *args, **kwargs):
        self.fit_start = time.perf_counter()
        return super().fit(*args, **kwargs)

    def _train_epoch(self, *args, **kwargs):
        if self.time_budget and self.fit_start and time.perf_counter() - self.fit_start > self.time_budget:
            raise TrainTimeBudgetReached
        start = time.perf_counter()
        result = super()._train_epoch(*args, **kwargs)
        self.train_epoch_seconds.append(time.perf_counter() - start)
        return result

    def _valid_epoch(self, *args, **kwargs):
        start = time.perf_counter()
        result = super()._valid_epoch(*args, **kwargs)
        self.valid_seconds.append(time.perf_counter() - start)
        self.valid_results.append(dict(result[1]))
        return result


class ExcludeHistoryMixin:
    """``exclude_history: True``: full-sort scores of the items in each user's input history
    (its ``MAX_ITEM_LIST_LENGTH`` most recent) are ``-inf``, for every model. RecBole's
    sequential evaluation scores them like any other item (``False``, the default)."""

    def _full_sort_batch_eval(self, batched_data):
        interaction, scores, positive_u, positive_i = super()._full_sort_batch_eval(batched_data)
        if self.config["exclude_history"] and isinstance(scores, torch.Tensor):  # TopKHits come without history
            seq = interaction[self.model.ITEM_SEQ].to(scores.device)
            rows = torch.arange(seq.size(0), device=seq.device).unsqueeze(1).expand_as(seq)
            scores[rows[seq > 0], seq[seq > 0]] = float("-inf")
        return interaction, scores, positive_u, positive_i


class UniqueCheckpointMixin:
    """RecBole names a run's checkpoint ``<model>-<local time to the second>.pth``: runs
    started in the same second (seeds in parallel on one GPU) overwrote each other's best
    model, and each then tested the last writer's. A random suffix keeps them apart."""

    def __init__(self, config, model):
        super().__init__(config, model)
        root, ext = os.path.splitext(self.saved_model_file)
        self.saved_model_file = f"{root}-{uuid.uuid4().hex[:8]}{ext}"


def with_run_mixins(trainer_class):
    """``trainer_class`` with epoch timing, the time budget, ``exclude_history`` and a
    checkpoint name of its own."""
    if issubclass(trainer_class, EpochTimingMixin):
        return trainer_class
    return type(trainer_class.__name__, (EpochTimingMixin, ExcludeHistoryMixin, UniqueCheckpointMixin, trainer_class), {})


class TopKHits(NamedTuple):
    """A batch's top-k as RecBole's ``rec.topk`` holds it: ``hits`` [B, k] (1 where the
    rank-r item is a positive) and ``positives`` [B, 1] (the user's number of positives)."""

    hits: torch.Tensor
    positives: torch.Tensor

    @classmethod
    def of(cls, top_items, positive_u, positive_i):
        hits = torch.zeros_like(top_items, dtype=torch.int)
        hits.index_add_(0, positive_u, (top_items[positive_u] == positive_i.unsqueeze(1)).int())
        positives = torch.bincount(positive_u, minlength=top_items.size(0)).unsqueeze(1).int()
        return cls(hits, positives)


class TopKCollector(Collector):
    """RecBole's Collector that also takes ``TopKHits`` in place of a dense score matrix
    (``topk_eval``); RecBole's builds ``rec.topk`` from [B, n_items] scores."""

    NEEDS_SCORES = ("rec.items", "rec.meanrank", "rec.score", "data.label")

    def eval_batch_collect(self, scores_tensor, interaction, positive_u, positive_i):
        if not isinstance(scores_tensor, TopKHits):
            return super().eval_batch_collect(scores_tensor, interaction, positive_u, positive_i)
        dense = [name for name in self.NEEDS_SCORES if self.register.need(name)]
        if dense:
            raise RecBoleEagerError(f"topk_eval=True gives top-k metrics only (Recall, NDCG, Hit, MRR, Precision, MAP); "
                                    f"the metrics {self.config['metrics']} need {dense}: set topk_eval=False")
        self.data_struct.update_tensor("rec.topk", torch.cat((scores_tensor.hits, scores_tensor.positives), dim=1))


class EAGERTrainer(Trainer):
    """RecBole's Trainer with linear learning-rate warm-up over ``warmup_steps`` batches, and
    EAGER's loss terms logged by name (``gen_behavior``, ``con_semantic``, ``recon``, ...).
    ``topk_eval: True``: full-ranking metrics from ``EAGER.full_sort_topk``, without the dense
    [users × items] score matrix (large catalogues, ``results/scale.md``)."""

    def __init__(self, config, model):
        super().__init__(config, model)
        if config["topk_eval"]:
            self.eval_collector = TopKCollector(config)

    def _full_sort_batch_eval(self, batched_data):
        if not self.config["topk_eval"]:
            return super()._full_sort_batch_eval(batched_data)
        interaction, _, positive_u, positive_i = batched_data  # sequential data has no history index
        top_items, _ = self.model.full_sort_topk(interaction.to(self.device), max(self.config["topk"]), self.config["exclude_history"])
        return interaction, TopKHits.of(top_items, positive_u.to(self.device), positive_i.to(self.device)), positive_u, positive_i

    def _generate_train_loss_output(self, epoch_idx, s_time, e_time, losses):
        names = getattr(self.model, "loss_names", ())
        if not isinstance(losses, tuple) or len(names) != len(losses):
            return super()._generate_train_loss_output(epoch_idx, s_time, e_time, losses)
        terms = ", ".join(f"{name}: {loss:.4f}" for name, loss in zip(names, losses))
        return f"epoch {epoch_idx} training [time: {e_time - s_time:.2f}s, {terms}]"

    def _build_optimizer(self, **kwargs):
        optimizer = super()._build_optimizer(**kwargs)
        warmup = max(int(self.config["warmup_steps"] or 0), 1)
        scheduler = LambdaLR(optimizer, lambda step: min(1.0, (step + 1) / warmup))
        optimizer.register_step_post_hook(lambda *_: scheduler.step())
        return optimizer


TIGERTrainer = EAGERTrainer  # TIGER is EAGER's semantic stream alone: same warm-up and loss logging
