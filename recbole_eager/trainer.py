"""Trainers: RecBole's, plus per-epoch timing and checkpoint names of their own; model-specific
ones are ``<Model>Trainer``."""
import os
import time
import uuid

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


class UniqueCheckpointMixin:
    """RecBole names a run's checkpoint ``<model>-<local time to the second>.pth``: runs
    started in the same second (seeds in parallel on one GPU) overwrote each other's best
    model, and each then tested the last writer's. A random suffix keeps them apart."""

    def __init__(self, config, model):
        super().__init__(config, model)
        root, ext = os.path.splitext(self.saved_model_file)
        self.saved_model_file = f"{root}-{uuid.uuid4().hex[:8]}{ext}"


def with_run_mixins(trainer_class):
    """``trainer_class`` with epoch timing, the time budget and a checkpoint name of its own."""
    if issubclass(trainer_class, EpochTimingMixin):
        return trainer_class
    return type(trainer_class.__name__, (EpochTimingMixin, UniqueCheckpointMixin, trainer_class), {})


class EAGERTrainer(Trainer):
    """RecBole's Trainer with linear learning-rate warm-up over ``warmup_steps`` batches."""

    def _build_optimizer(self, **kwargs):
        optimizer = super()._build_optimizer(**kwargs)
        warmup = max(int(self.config["warmup_steps"] or 0), 1)
        scheduler = LambdaLR(optimizer, lambda step: min(1.0, (step + 1) / warmup))
        optimizer.register_step_post_hook(lambda *_: scheduler.step())
        return optimizer
