"""A killed run continues from its last finished epoch and ends as if it had never stopped."""
import json
import os
import shutil

import pytest
import torch

from conftest import TINY_DATA
from recbole_eager.experiments import benchmark
from recbole_eager.quick_start import run_recbole_eager
from recbole_eager.trainer import EpochTimingMixin
from recbole_eager.utils import RecBoleEagerError


class Killed(Exception):
    """Stands in for the process being killed after an epoch."""


def kill_after(epoch):
    def callback(epoch_idx, valid_score):
        if epoch_idx == epoch:
            raise Killed

    return callback


def assert_same_run(resumed, straight):
    assert resumed["valid_curve"] == straight["valid_curve"]
    assert resumed["best_valid_result"] == straight["best_valid_result"]
    assert resumed["test_result"] == straight["test_result"]
    assert resumed["epochs"] == straight["epochs"] and resumed["stopped_by"] == straight["stopped_by"]


@pytest.mark.parametrize("model, extra", [("SASRec", {}), ("EAGER", {"decoder_layers": 1})])
def test_killed_run_resumed_from_its_last_epoch_equals_the_uninterrupted_run(request, tiny_config, model, extra):
    if model == "EAGER":
        request.getfixturevalue("fake_codes")
    # SASRec: dropout and the shuffle must continue; EAGER: also its learning-rate warm-up.
    config = {**tiny_config, **extra, "epochs": 4, "report_best_test": True}
    straight = run_recbole_eager(model=model, dataset="eager-tiny", config_dict=config)
    last = os.path.join("saved", "last.pth")
    with pytest.raises(Killed):
        run_recbole_eager(model=model, dataset="eager-tiny", config_dict={**config, "last_checkpoint_file": last},
                          callback_fn=kill_after(1))
    assert torch.load(last, weights_only=False)["epoch"] == 1
    resumed = run_recbole_eager(model=model, dataset="eager-tiny", config_dict={**config, "resume_from": last})
    assert resumed["resumed_after_epoch"] == 1 and len(resumed["train_epoch_seconds"]) == 4
    assert_same_run(resumed, straight)
    assert resumed["test_curve"] == straight["test_curve"]


def test_resume_from_a_last_checkpoint_without_its_best_model_says_so(tiny_config):
    config = {**tiny_config, "epochs": 2}
    first = run_recbole_eager(model="SASRec", dataset="eager-tiny", config_dict=config)
    os.remove(first["saved_model_file"])
    with pytest.raises(Exception, match=r"resume_from: .*-last\.pth needs the best model saved/SASRec-.*\.pth"):
        run_recbole_eager(model="SASRec", dataset="eager-tiny", config_dict={**config, "resume_from": first["last_checkpoint_file"]})


def test_benchmark_continues_a_killed_run(tmp_path, monkeypatch):
    results = tmp_path / "results"
    sets = [f"data_path={TINY_DATA}", "epochs=3", "show_progress=False", "state=WARNING"]
    benchmark.main(["--dataset", "eager-tiny", "--models", "SASRec", "--tag", "straight", "--results", str(results), "--set", *sets])
    from recbole_eager import quick_start

    run = quick_start.run_recbole_eager

    def killed_once(*args, **kwargs):
        monkeypatch.setattr(quick_start, "run_recbole_eager", run)
        return run(*args, callback_fn=kill_after(0), **kwargs)

    monkeypatch.setattr(quick_start, "run_recbole_eager", killed_once)
    args = ["--dataset", "eager-tiny", "--models", "SASRec", "--results", str(results), "--set", *sets]
    with pytest.raises(Killed):
        benchmark.main(args)
    assert not (results / "runs" / "eager-tiny__SASRec.json").exists()
    benchmark.main(args)  # the next call continues after epoch 0
    record = json.loads((results / "runs" / "eager-tiny__SASRec.json").read_text())
    straight = json.loads((results / "runs" / "eager-tiny__SASRec-straight.json").read_text())
    assert record["resumed_after_epoch"] == 0 and "resumed_after_epoch" not in straight
    assert record["valid_curve"] == straight["valid_curve"] and record["test_result"] == straight["test_result"]
    assert record["overrides"] == straight["overrides"]
    assert not os.listdir(os.path.join("saved", "resume"))  # a finished run leaves no resume file


def test_benchmark_extends_a_budget_limited_run_under_a_larger_budget(tmp_path, monkeypatch):
    # A clock of 100 s per finished epoch makes the budget stop at a known epoch.
    monkeypatch.setattr(EpochTimingMixin, "fit_seconds", lambda self: 100.0 * len(self.train_epoch_seconds))
    results = tmp_path / "results"
    sets = [f"data_path={TINY_DATA}", "epochs=4", "show_progress=False", "state=WARNING"]
    benchmark.main(["--dataset", "eager-tiny", "--models", "SASRec", "--tag", "straight", "--results", str(results), "--set", *sets])

    def run(budget):
        benchmark.main(["--dataset", "eager-tiny", "--models", "SASRec", "--results", str(results),
                        "--set", *sets, f"train_time_budget={budget}"])
        return json.loads((results / "runs" / "eager-tiny__SASRec.json").read_text())

    first = run(150)
    assert first["stopped_by"] == "time_budget" and first["epochs"] == 2
    assert torch.load(first["last_checkpoint_file"], weights_only=False)["epoch"] == 1
    assert run(150) == first  # the same budget: nothing to do
    with pytest.raises(RecBoleEagerError, match=r"eager-tiny__SASRec.json holds a run with other settings"):
        run(100)
    extended = run(1000)
    straight = json.loads((results / "runs" / "eager-tiny__SASRec-straight.json").read_text())
    assert extended["resumed_after_epoch"] == 1 and extended["stopped_by"] == "epoch_cap"
    assert_same_run(extended, straight)
    assert extended["overrides"]["train_time_budget"] == 1000 and "last_checkpoint_file" not in extended
    assert extended["earlier_runs"] == [{k: first[k] for k in ("command", "commit", "epochs", "train_time_budget", "finished_at")}]
    assert not os.listdir(os.path.join("saved", "resume"))  # a finished run leaves no resume file


def test_extending_a_budget_limited_run_without_its_checkpoint_says_so(tmp_path, monkeypatch):
    monkeypatch.setattr(EpochTimingMixin, "fit_seconds", lambda self: 100.0 * len(self.train_epoch_seconds))
    args = ["--dataset", "eager-tiny", "--models", "SASRec", "--results", str(tmp_path / "results"),
            "--set", f"data_path={TINY_DATA}", "epochs=4", "show_progress=False", "state=WARNING"]
    benchmark.main([*args, "train_time_budget=150"])
    shutil.rmtree(os.path.join("saved", "resume"))
    with pytest.raises(RecBoleEagerError, match=r"eager-tiny__SASRec.json stopped at its time budget; to continue it needs "
                                                 r"its last checkpoint saved/resume/eager-tiny__SASRec-\w+\.pth, which is not here"):
        benchmark.main([*args, "train_time_budget=1000"])


def test_resumed_s3rec_fine_tuning_keeps_its_pretraining(tiny_config):
    config = {**tiny_config, "epochs": 3, "pretrain_epochs": 1}
    straight = run_recbole_eager(model="S3Rec", dataset="eager-tiny", config_dict=config)
    last = os.path.join("saved", "last.pth")
    with pytest.raises(Killed):
        run_recbole_eager(model="S3Rec", dataset="eager-tiny", config_dict={**config, "last_checkpoint_file": last},
                          callback_fn=kill_after(0))
    pretrained = os.path.join("saved", "S3Rec-eager-tiny-1.pth")
    mtime = os.path.getmtime(pretrained)
    resumed = run_recbole_eager(model="S3Rec", dataset="eager-tiny", config_dict={**config, "resume_from": last})
    assert os.path.getmtime(pretrained) == mtime  # not pretrained again
    assert_same_run(resumed, straight)


def test_time_budget_counts_the_fitting_before_the_resume(tiny_config):
    config = {**tiny_config, "epochs": 4, "train_time_budget": 1000}
    last = os.path.join("saved", "last.pth")
    with pytest.raises(Killed):
        run_recbole_eager(model="SASRec", dataset="eager-tiny", config_dict={**config, "last_checkpoint_file": last},
                          callback_fn=kill_after(0))
    checkpoint = torch.load(last, weights_only=False)
    checkpoint["resume_state"]["fit_seconds"] = 1001.0  # as if the first process had fitted that long
    torch.save(checkpoint, last)
    resumed = run_recbole_eager(model="SASRec", dataset="eager-tiny", config_dict={**config, "resume_from": last})
    assert resumed["stopped_by"] == "time_budget" and resumed["epochs"] == 1
    assert resumed["wall_seconds"] > 1001
