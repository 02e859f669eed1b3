"""The component table: a run list against its base run (experiments/components.py)."""
import json

import pytest

from recbole_eager.experiments import components


def record(valid, test, curve, stopped_by="early_stopping", overrides=None, **extra):
    return {"model": "EAGER", "dataset": "d", "overrides": overrides or {}, "stopped_by": stopped_by, "epochs": len(curve),
            "seconds_per_epoch": 10.0, "best_valid_result": {"ndcg@10": valid}, "test_result": {"ndcg@10": test, "recall@10": 0.1},
            "valid_curve": [{"ndcg@10": v} for v in curve], "stopping_step": 5, **extra}


def test_rows_hold_each_run_against_the_base_and_list_missing_runs(tmp_path):
    runs = tmp_path / "results" / "runs"
    runs.mkdir(parents=True)
    for name, rec in {"EAGER-base": record(0.05, 0.04, [0.03, 0.05, 0.04], overrides={"report_best_test": True}),
                      "EAGER-seed2": record(0.052, 0.041, [0.052], overrides={"seed": 2}),
                      "EAGER-a": record(0.055, 0.0385, [0.02, 0.04, 0.055, 0.05], stopped_by="time_budget",
                                        overrides={"use_gct": False, "report_best_test": True}),
                      "EAGER-old": record(0.045, 0.039, [0.045], model_config={"kmeans_balanced": False})}.items():
        (runs / f"d__{name}.json").write_text(json.dumps(rec))
    listed = tmp_path / "list.txt"
    listed.write_text("base report_best_test=True\na use_gct=False report_best_test=True\nb use_stt_recon=False stopping_step=5\n")
    out = tmp_path / "table.md"
    components.main(["--dataset", "d", "--runs", str(listed), "--base", "base", "--extra", "old",
                     "--results", str(tmp_path / "results"), "--out", str(out), "--note", "One seed per row."])
    lines = [line for line in out.read_text().splitlines() if line.startswith("| EAGER-")]
    rows = {line.split(" | ")[0][2:]: line.split(" | ") for line in lines}
    assert [line.split(" | ")[0][2:] for line in lines] == ["EAGER-base", "EAGER-a", "EAGER-b", "EAGER-old"]
    assert rows["EAGER-base"][1:6] == ["today's defaults", "0.0500", "", "0.0400", ""]
    assert rows["EAGER-a"][1:6] == ["use_gct=False", "0.0550", "+0.0050", "0.0385", "-0.0015"]  # bookkeeping keys left out
    assert rows["EAGER-a"][7:9] == ["3", "4, time budget (patience 5)"]  # best epoch counted from 1
    assert rows["EAGER-b"][1:3] == ["use_stt_recon=False", "not run yet"]  # bookkeeping keys left out here too
    assert "\nOne seed per row.\n" in out.read_text()
    assert rows["EAGER-old"][1] == "kmeans_balanced=False"
    assert "Seed spread of the default configuration (2 runs, std): valid N@10 ±0.0014, test N@10 ±0.0007" in out.read_text()


def test_a_missing_base_run_is_named(tmp_path):
    (tmp_path / "runs").mkdir()
    with pytest.raises(FileNotFoundError, match="no base run EAGER-base of d"):
        components.table("d", "EAGER", [], "base", str(tmp_path / "runs"))
