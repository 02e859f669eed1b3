"""Trainers: RecBole's, plus per-epoch timing; model-specific ones are ``<Model>Trainer``."""
import time


class EpochTimingMixin:
    """Records seconds of every training epoch and validation pass (for benchmark tables)."""

    def __init__(self, config, model):
        super().__init__(config, model)
        self.train_epoch_seconds = []
        self.valid_seconds = []

    def _train_epoch(self, *args, **kwargs):
        start = time.perf_counter()
        result = super()._train_epoch(*args, **kwargs)
        self.train_epoch_seconds.append(time.perf_counter() - start)
        return result

    def _valid_epoch(self, *args, **kwargs):
        start = time.perf_counter()
        result = super()._valid_epoch(*args, **kwargs)
        self.valid_seconds.append(time.perf_counter() - start)
        return result


def with_epoch_timing(trainer_class):
    if issubclass(trainer_class, EpochTimingMixin):
        return trainer_class
    return type(trainer_class.__name__, (EpochTimingMixin, trainer_class), {})
