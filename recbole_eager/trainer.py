"""Trainers: RecBole's, plus per-epoch timing and checkpoint names of their own; model-specific
ones are ``<Model>Trainer``."""
import os
import time
import uuid

import torch

from recbole.trainer import Trainer
from torch.optim.lr_scheduler import LambdaLR


class TrainTimeBudgetReached(Exception):
    """Raised before an epoch once ``train_time_budget`` seconds of fitting have passed."""


class EpochTimingMixin:
    """Records seconds of every training epoch and validation pass (for benchmark tables),
    and stops fitting before an epoch once ``train_time_budget`` seconds have passed."""

    def __init__(self, config, model):
        super().__init__(config, model)
        self.train_epoch_seconds = []
        self.valid_seconds = []
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
        return result


class ExcludeHistoryMixin:
    """``exclude_history: True``: full-sort scores of the items in each user's input history
    (its ``MAX_ITEM_LIST_LENGTH`` most recent) are ``-inf``, for every model. RecBole's
    sequential evaluation scores them like any other item (``False``, the default)."""

    def _full_sort_batch_eval(self, batched_data):
        interaction, scores, positive_u, positive_i = super()._full_sort_batch_eval(batched_data)
        if self.config["exclude_history"]:
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


class EAGERTrainer(Trainer):
    """RecBole's Trainer with linear learning-rate warm-up over ``warmup_steps`` batches, and
    EAGER's loss terms logged by name (``gen_behavior``, ``con_semantic``, ``recon``, ...)."""

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
