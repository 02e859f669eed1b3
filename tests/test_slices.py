"""Validation against test per slice of users (experiments/slices.py)."""
import json

import numpy as np
import pytest

from recbole_eager.experiments import slices
from recbole_eager.quick_start import evaluate_checkpoint, run_recbole_eager


@pytest.fixture
def saved(tiny_config, fake_codes):
    def train(model, **overrides):
        config = {**tiny_config, "epochs": 2, "decoder_layers": 1, **overrides}
        return run_recbole_eager(model=model, dataset="eager-tiny", config_dict=config)["saved_model_file"]

    return train


@pytest.mark.parametrize("model", ["SASRec", "EAGER", "Markov"])  # Markov: tied scores
def test_overall_metrics_equal_recboles_evaluator_and_slices_partition_users(saved, model):
    checkpoint = saved(model)
    analysis = slices.analyse(checkpoint)
    evaluated = evaluate_checkpoint(checkpoint)
    for split, reference in (("valid", evaluated["best_valid_result"]), ("test", evaluated["test_result"])):
        overall = analysis["splits"][split]["overall"]
        assert overall["ndcg@10"] == pytest.approx(reference["ndcg@10"], abs=5e-5)
        assert overall["recall@10"] == pytest.approx(reference["recall@10"], abs=5e-5)
        assert set(analysis["splits"][split]["slices"]) == {"popularity", "history", "same_day"}
        for parts in analysis["splits"][split]["slices"].values():
            assert sum(p["users"] for p in parts.values()) == overall["users"]
            assert sum(p["ndcg@10"] * p["users"] for p in parts.values()) == pytest.approx(overall["ndcg@10"] * overall["users"])
    in_candidates = analysis["splits"]["test"]["overall"]["in_candidates"]
    assert in_candidates == 1.0 if model != "EAGER" else 0 < in_candidates < 1  # EAGER ranks its beams' items only


def test_history_excluded_targets_are_misses_not_missing_candidates(saved):
    # eager-tiny has repeat visits: 16 of its 150 test targets are in their user's history.
    analysis = slices.analyse(saved("SASRec", exclude_history=True))
    assert analysis["splits"]["test"]["overall"]["in_candidates"] == 1.0  # SASRec scores every item


def test_same_day_and_popularity_follow_the_interaction_file(saved):
    from recbole_eager.quick_start import build_trainer, load_data_and_model

    config, model, dataset, train_data, _, test_data = load_data_and_model(saved("SASRec"))
    trainer = build_trainer(config, model)
    _, fields = slices.target_ranks(trainer, test_data)
    counts = np.bincount(train_data.dataset.inter_feat["item_id"].numpy(), minlength=dataset.item_num)
    labels = slices.user_slices(config, fields, counts)
    inter = dataset.inter_feat
    users, items, times = (inter[f].numpy() for f in ("user_id", "item_id", "timestamp"))
    for row in range(len(fields["user_id"])):
        mine = np.flatnonzero(users == fields["user_id"][row])
        mine = mine[np.argsort(times[mine], kind="stable")]
        last_two_days = times[mine[-2:]] // slices.DAY  # leave-one-out: the test target is the user's last interaction
        assert items[mine[-1]] == fields["item_id"][row]
        assert (labels["same_day"][0][row] == "same day") == (last_two_days[0] == last_two_days[1])
        count = counts[items[mine[-1]]]
        assert labels["popularity"][0][row] == labels["popularity"][1][sum(lo <= count for lo in slices.POPULARITY_BINS) - 1]


def test_reweighted_validation_takes_the_test_mix():
    valid = {"a": {"ndcg@10": 0.1, "users": 10}, "b": {"ndcg@10": 0.3, "users": 10}}
    test = {"a": {"ndcg@10": 0.0, "users": 30}, "b": {"ndcg@10": 0.0, "users": 10}}
    assert slices.reweighted(valid, test) == pytest.approx(0.1 * 0.75 + 0.3 * 0.25)


def test_cli_writes_json_and_markdown(saved, tmp_path):
    checkpoints = [saved("SASRec"), saved("EAGER")]
    slices.main(["--checkpoints", *checkpoints, "--out", str(tmp_path / "out" / "tiny"), "--labels", "SASRec-CE", "EAGER"])
    record = json.loads((tmp_path / "out" / "tiny.json").read_text())
    assert [a["model"] for a in record["analyses"]] == ["SASRec", "EAGER"] and record["command"].endswith("EAGER")
    table = (tmp_path / "out" / "tiny.md").read_text()
    assert "| EAGER | test |" in table and "| SASRec-CE | valid |" in table and "**same_day**" in table
    with pytest.raises(SystemExit):
        slices.main(["--checkpoints", *checkpoints, "--out", str(tmp_path / "x"), "--labels", "one"])
