"""Trainers: RecBole's, plus per-epoch timing, checkpoint names of their own and an exact
resume after the last finished epoch; model-specific ones are ``<Model>Trainer``."""
import os
import random
import time
import uuid
from typing import NamedTuple

import numpy as np
import torch

from recbole.evaluator import Collector
from recbole.trainer import Trainer
from torch.optim.lr_scheduler import LambdaLR

from recbole_eager.utils import RecBoleEagerError


class TrainTimeBudgetReached(Exception):
    """Raised before an epoch once ``train_time_budget`` seconds of fitting have passed."""


class EpochTimingMixin:
    """Records seconds of every training epoch and validation pass, each pass's metrics (for
    benchmark tables) and, given ``per_epoch_test_data``, each epoch's test metrics
    (``report_best_test``); stops fitting before an epoch once ``train_time_budget`` seconds
    have passed (counting the epochs before a resume)."""

    RECORDS = ("train_epoch_seconds", "valid_seconds", "valid_results", "test_curve")

    def __init__(self, config, model):
        super().__init__(config, model)
        for name in self.RECORDS:
            setattr(self, name, [])
        self.per_epoch_test_data = None
        self.time_budget = config["train_time_budget"]
        self.fit_start = None
        self.earlier_fit_seconds = 0.0  # of the runs this one resumes

    def fit_seconds(self):
        return self.earlier_fit_seconds + (time.perf_counter() - self.fit_start if self.fit_start else 0.0)

    def fit(self, train_data, valid_data=None, verbose=True, saved=True, show_progress=False, callback_fn=None):
        def callback(epoch_idx, valid_score):
            if self.per_epoch_test_data is not None:
                test = self.evaluate(self.per_epoch_test_data, load_best_model=False, show_progress=False)
                self.test_curve.append({"epoch": epoch_idx, **test})
            if callback_fn is not None:
                callback_fn(epoch_idx, valid_score)

        self.fit_start = time.perf_counter()
        return super().fit(train_data, valid_data, verbose, saved, show_progress, callback)

    def _train_epoch(self, *args, **kwargs):
        if self.time_budget and self.fit_start and self.fit_seconds() > self.time_budget:
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


class ResumableMixin:
    """Writes ``last_checkpoint_file`` after every validation: RecBole's checkpoint fields for
    that epoch plus what an exact continuation needs (RNG states, the shuffle generator, the
    learning-rate schedule, the best epoch's file and result, the per-epoch records).
    ``resume_from`` that file continues after its epoch as if the run had not stopped;
    ``resume_from`` RecBole's best-epoch checkpoint continues after the best epoch, as in RecBole.
    RecBole's ``_save_checkpoint`` writes one fixed set of fields, hence the dict here."""

    def __init__(self, config, model):
        super().__init__(config, model)
        root = os.path.splitext(self.saved_model_file)[0]
        self.last_checkpoint_file = config["last_checkpoint_file"] or f"{root}-last.pth"
        self.resumed_after_epoch = None
        self._rng_to_restore = None

    def fit(self, train_data, valid_data=None, verbose=True, saved=True, show_progress=False, callback_fn=None):
        def callback(epoch_idx, valid_score):
            if saved:
                self._save_last_checkpoint(epoch_idx, train_data)
            if callback_fn is not None:
                callback_fn(epoch_idx, valid_score)

        if self._rng_to_restore is not None:
            _set_rng_state(self._rng_to_restore, train_data.generator)
        return super().fit(train_data, valid_data, verbose, saved, show_progress, callback)

    def _save_last_checkpoint(self, epoch_idx, train_data):
        scheduler = getattr(self, "lr_scheduler", None)
        state = {
            "config": self.config, "epoch": epoch_idx, "cur_step": self.cur_step, "best_valid_score": self.best_valid_score,
            "state_dict": self.model.state_dict(), "other_parameter": self.model.other_parameter(),
            "optimizer": self.optimizer.state_dict(),
            "resume_state": {
                "best_model_file": self.saved_model_file, "best_valid_result": self.best_valid_result,
                "records": {name: getattr(self, name) for name in self.RECORDS}, "fit_seconds": self.fit_seconds(),
                "lr_scheduler": scheduler.state_dict() if scheduler else None, "rng": _rng_state(train_data.generator),
            },
        }
        os.makedirs(os.path.dirname(self.last_checkpoint_file) or ".", exist_ok=True)
        partial = f"{self.last_checkpoint_file}.partial"
        torch.save(state, partial, pickle_protocol=4)
        os.replace(partial, self.last_checkpoint_file)  # a kill while writing keeps the previous epoch's file

    def resume_checkpoint(self, resume_file):
        super().resume_checkpoint(resume_file)
        checkpoint = torch.load(resume_file, map_location="cpu", weights_only=False)
        state = checkpoint.get("resume_state")
        if state is None:
            self.logger.warning(f"resume_from: {resume_file} is the best epoch's checkpoint; training continues after "
                                f"that epoch, not after the last finished one (that is in its -last.pth)")
            return
        if not os.path.isfile(state["best_model_file"]):
            raise RecBoleEagerError(f"resume_from: {resume_file} needs the best model {state['best_model_file']}, which is "
                                    f"gone; restore it, or train from scratch without resume_from")
        self.saved_model_file = state["best_model_file"]
        self.last_checkpoint_file = str(resume_file)
        self.best_valid_result = state["best_valid_result"]
        for name, values in state["records"].items():
            setattr(self, name, list(values))
        self.earlier_fit_seconds = state["fit_seconds"]
        if state["lr_scheduler"] is not None:
            self.lr_scheduler.load_state_dict(state["lr_scheduler"])
        self._rng_to_restore = state["rng"]
        self.resumed_after_epoch = checkpoint["epoch"]


def _rng_state(shuffle_generator):
    return {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
            "shuffle": shuffle_generator.get_state()}


def _set_rng_state(state, shuffle_generator):
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])
    if state["cuda"] is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    shuffle_generator.set_state(state["shuffle"])


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
    """``trainer_class`` with epoch timing, the time budget, ``exclude_history``, a checkpoint
    name of its own and a last-epoch checkpoint to resume from."""
    if issubclass(trainer_class, EpochTimingMixin):
        return trainer_class
    return type(trainer_class.__name__, (ResumableMixin, EpochTimingMixin, ExcludeHistoryMixin, UniqueCheckpointMixin, trainer_class), {})


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
        self.lr_scheduler = LambdaLR(optimizer, lambda step: min(1.0, (step + 1) / warmup))
        optimizer.register_step_post_hook(lambda *_: self.lr_scheduler.step())
        return optimizer


TIGERTrainer = EAGERTrainer  # TIGER is EAGER's semantic stream alone: same warm-up and loss logging
