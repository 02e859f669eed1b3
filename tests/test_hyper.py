"""Ray Tune sweeps (recbole_eager.experiments.tune, run_hyper.py): parsing, selection on validation only,
reports, and real sweeps on eager-tiny with SASRec (EAGER may not exist yet)."""
import csv
import math
import os
import sys
from types import SimpleNamespace

import pandas as pd
import pytest
import yaml

from recbole_eager.config import parse_overrides
from recbole_eager.experiments import tune as rt
from recbole_eager.experiments import records, tune_report
from recbole_eager.utils import PROPERTIES_DIR, RecBoleEagerError

from conftest import TINY_DATA

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


# --------------------------------------------------------------------------- parsing
def test_parse_params_all_types_and_search_space():
    from ray.tune.search.sample import Categorical, Float, Integer

    params = rt.parse_params_text(
        "# comment line\n"
        "\n"
        "lambda1 choice [0,0.5,1,2]\n"
        "learning_rate loguniform -8,0   # natural-log bounds as in RecBole\n"
        "dropout_prob uniform 0.1,0.5\n"
        "n_layers quniform 1,4,1\n"
        "weight_decay quniform 0.0,0.1,0.05\n"
        "merge_rule choice ['confidence', 'behavior']\n"
        "behavior_model choice [SASRec,GRU4Rec]\n"
        "fixed choice [3]\n"
    )
    by_name = {p.name: p for p in params}
    assert [p.name for p in params] == ["lambda1", "learning_rate", "dropout_prob", "n_layers", "weight_decay", "merge_rule", "behavior_model", "fixed"]
    assert by_name["lambda1"].values == [0, 0.5, 1, 2]
    assert by_name["merge_rule"].values == ["confidence", "behavior"]  # spaces inside the value are fine
    assert by_name["behavior_model"].values == ["SASRec", "GRU4Rec"]  # bare words
    assert (by_name["dropout_prob"].low, by_name["dropout_prob"].high) == (0.1, 0.5)
    assert by_name["n_layers"].integer and not by_name["weight_decay"].integer
    assert [p.name for p in params if p.varied] == ["lambda1", "learning_rate", "dropout_prob", "n_layers", "weight_decay", "merge_rule", "behavior_model"]

    grid = rt.build_search_space(params, "grid")
    assert grid["lambda1"] == {"grid_search": [0, 0.5, 1, 2]}
    assert grid["fixed"] == {"grid_search": [3]}
    lr = grid["learning_rate"]
    assert isinstance(lr, Float) and lr.lower == pytest.approx(math.exp(-8)) and lr.upper == pytest.approx(1.0)
    assert isinstance(grid["n_layers"], Integer) and (grid["n_layers"].lower, grid["n_layers"].upper) == (1, 4)
    assert all(isinstance(grid["n_layers"].sample(), int) for _ in range(5))
    assert 0 <= grid["weight_decay"].sample() <= 0.1
    assert 0.1 <= grid["dropout_prob"].sample() <= 0.5

    random = rt.build_search_space(params, "random")
    assert isinstance(random["lambda1"], Categorical) and random["lambda1"].categories == [0, 0.5, 1, 2]
    with pytest.raises(RecBoleEagerError, match="algo"):
        rt.build_search_space(params, "bayes")


@pytest.mark.parametrize("text, message", [
    ("lambda1 normal 0,1", "unknown type"),
    ("lambda1 choice", "expected 'name type value'"),
    ("lambda1 choice []", "non-empty list"),
    ("lambda1 choice [0,1", "needs a list"),
    ("lambda1 uniform a,b", "could not convert"),
    ("lambda1 uniform 0.5,0.1", "low must be below high"),
    ("lambda1 uniform 0.1", "low,high"),
    ("n quniform 1,4", "low,high,q"),
    ("lambda1 choice [0]\nlambda1 choice [1]", "given twice"),
    ("# only a comment\n", "no hyper-parameters"),
])
def test_parse_params_errors(text, message):
    with pytest.raises(RecBoleEagerError, match=message):
        rt.parse_params_text(text)


def test_eager_lambda_file():
    params = rt.parse_params_file(PROPERTIES_DIR / "hyper" / "eager_lambda.hyper")
    assert [(p.name, p.kind, p.values) for p in params] == [
        ("lambda1", "choice", [0, 0.5, 1, 2]),
        ("lambda2", "choice", [0, 0.5, 1, 2]),
    ]
    space = rt.build_search_space(params)
    assert len(space["lambda1"]["grid_search"]) * len(space["lambda2"]["grid_search"]) == 16


def test_parse_overrides_converts_like_recbole():
    overrides = parse_overrides(["--epochs=2", "--learning_rate=1e-3", "--show_progress=false",
                                    "--data_path=/x/y", "--topk=[5,10]", "--eval_args={'mode': 'full'}"])
    assert overrides == {"epochs": 2, "learning_rate": 1e-3, "show_progress": False, "data_path": "/x/y",
                         "topk": [5, 10], "eval_args": {"mode": "full"}}
    for bad in (["--epochs", "2"], ["epochs=2"], ["--=3"]):
        with pytest.raises(RecBoleEagerError, match="unrecognized argument"):
            parse_overrides(bad)


def test_cli_rejects_swept_and_fixed_key(capsys):
    import run_hyper

    hyper = os.path.abspath("x.hyper")
    with open(hyper, "w") as f:
        f.write("hidden_dropout_prob choice [0.2,0.5]\n")
    argv = ["--model=SASRec", f"--params_file={hyper}", "--hidden_dropout_prob=0.3"]
    assert run_hyper.main(argv) == 2
    assert "both swept" in capsys.readouterr().err
    assert run_hyper.main(["--model=SASRec", f"--params_file={hyper}", "--epochs", "2"]) == 2
    assert "--key=value" in capsys.readouterr().err
    assert run_hyper.main(["--model=SASRec", "--params_file=missing.hyper"]) == 2
    assert "params file not found" in capsys.readouterr().err


# --------------------------------------------------------------------------- selection
def _row(trial_id, params, valid, test, status="ok", error=""):
    return {
        "trial_id": trial_id, "status": status, "params": params,
        "best_valid_score": valid, "valid": {} if math.isnan(valid) else {"ndcg@10": valid, "recall@10": valid * 2},
        "test": {} if test is None else {"ndcg@10": test, "recall@10": test * 2},
        "epochs": 2 if status != "failed" else None, "seconds": 1.5, "error": error, "trial_dir": f"/tmp/{trial_id}",
    }


def _fake_rows():
    # test metrics deliberately disagree with validation: trial b is best on test, c on validation
    return [
        _row("x_00000", {"p": 0.2, "q": 0.2}, 0.10, 0.30),
        _row("x_00001", {"p": 0.2, "q": 0.5}, 0.12, 0.90),
        _row("x_00002", {"p": 0.5, "q": 0.2}, 0.20, 0.05),
        _row("x_00003", {"p": 0.5, "q": 0.5}, float("nan"), None, status="failed", error="ValueError: boom"),
    ]


def test_select_best_uses_validation_never_test():
    rows = _fake_rows()
    assert tune_report.select_best(rows, bigger=True) == 2
    assert tune_report.select_best(rows, bigger=False) == 0
    # a failed trial is never chosen, even with a (stale) high score
    rows[3]["best_valid_score"] = 0.99
    assert tune_report.select_best(rows, bigger=True) == 2
    # a trial stopped early by ASHA (no test metrics) competes on its best validation score
    rows.append(_row("x_00004", {"p": 0.2, "q": 0.2}, 0.25, None, status="stopped"))
    assert tune_report.select_best(rows, bigger=True) == 4
    # ties: the first trial wins
    rows.append(_row("x_00005", {"p": 0.5, "q": 0.5}, 0.25, 1.0))
    assert tune_report.select_best(rows, bigger=True) == 4
    assert tune_report.select_best([rows[3]], bigger=True) is None
    assert tune_report.select_best([_row("y", {}, float("-inf"), None)], bigger=True) is None  # never validated


def test_rows_from_results_status_and_errors():
    class FakeRayTaskError(Exception):
        def __init__(self, cause):
            super().__init__("Traceback ...\nlong ray text")
            self.cause = cause

    def result(metrics, error=None, path="/r", progress=None):
        frame = None if progress is None else pd.DataFrame(progress)
        return SimpleNamespace(metrics=metrics, error=error, path=path, log_dir=path, metrics_dataframe=frame)

    final = {"trial_id": "t_00000", "config": {"a": 1}, "final": True, "best_valid_score": 0.3, "epoch": 2, "epochs": 2,
             "best_valid_result": {"ndcg@10": 0.3, "recall@10": 0.5}, "test_result": {"ndcg@10": 0.9}, "wall_seconds": 4.0}
    stopped = {"trial_id": "t_00001", "config": {"a": 2}, "final": False, "valid_score": 0.1, "best_valid_score": 0.2,
               "epoch": 1, "time_total_s": 2.0}
    failed = {"trial_id": "t_00002", "config": {"a": 3}}
    flat_failed = {"trial_id": "t_00003", "config": {"a": 4}}
    progress = {"valid_score": [0.1, 0.3, 0.3], "final": [False, False, True]}  # per-epoch reports, then the final one
    rows = rt.rows_from_results(
        [result(stopped, progress={"valid_score": [0.2, 0.1], "final": [False, False]}), result(final, progress=progress),
         result(failed, FakeRayTaskError(ValueError("Training loss is nan"))),
         result(flat_failed, RuntimeError("Failure # 1\nTraceback...\nValueError: boom"))],
        ["a"], "ndcg@10",
    )
    assert [r["trial_id"] for r in rows] == ["t_00000", "t_00001", "t_00002", "t_00003"]  # trial order
    assert [r["status"] for r in rows] == ["ok", "stopped", "failed", "failed"]
    assert rows[0]["test"] == {"ndcg@10": 0.9} and rows[0]["valid"]["recall@10"] == 0.5 and rows[0]["seconds"] == 4.0
    assert rows[1]["valid"] == {"ndcg@10": 0.2} and rows[1]["test"] == {} and rows[1]["epochs"] == 1
    assert rows[2]["error"] == "ValueError: Training loss is nan" and math.isnan(rows[2]["best_valid_score"])
    assert rows[3]["error"] == "ValueError: boom"
    assert [r["params"] for r in rows] == [{"a": 1}, {"a": 2}, {"a": 3}, {"a": 4}]
    assert [r["curve"] for r in rows] == [[0.1, 0.3], [0.2, 0.1], [], []]  # the final report is not an epoch


# --------------------------------------------------------------------------- reports
def _read_csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _check_png(path):
    with open(path, "rb") as f:
        data = f.read()
    assert data.startswith(PNG_MAGIC) and len(data) > 5000


def _meta(name="fake"):
    return {"model": "SASRec", "dataset": "eager-tiny", "name": name, "algo": "grid", "scheduler": "none",
            "config_files": [], "overrides": {"epochs": 2}, "experiment_dir": "/tmp/x"}


def test_write_reports_heatmap_lines_and_all_failed(tmp_path):
    params = rt.parse_params_text("p choice [0.2,0.5]\nq choice [0.2,0.5]\n")
    paths, best = tune_report.write_reports(_fake_rows(), params, "ndcg@10", True, str(tmp_path / "out"), _meta())
    assert best == 2
    assert paths == {k: str(tmp_path / "out" / f"eager-tiny-SASRec-fake{s}")
                     for k, s in [("md", ".md"), ("csv", ".csv"), ("png", ".png"), ("best_yaml", "-best.yaml")]}
    rows = _read_csv(paths["csv"])
    assert [r["is_best"] for r in rows] == ["0", "0", "1", "0"]
    assert rows[3]["status"] == "failed" and rows[3]["error"] == "ValueError: boom" and rows[3]["test_ndcg@10"] == ""
    assert float(rows[1]["test_ndcg@10"]) == 0.9 and float(rows[2]["valid_ndcg@10"]) == 0.2
    md = open(paths["md"]).read()
    assert "| x_00002 | ok | ★ | 0.5 | 0.2 | 0.2000 |" in md
    assert "| x_00003 | failed |" in md and "ValueError: boom" in md
    best_yaml = yaml.safe_load(open(paths["best_yaml"]))
    assert best_yaml == {"epochs": 2, "p": 0.5, "q": 0.2}
    _check_png(paths["png"])
    # no leftovers of the atomic writes
    assert sorted(os.listdir(tmp_path / "out")) == sorted(os.path.basename(p) for p in paths.values())

    # one varied parameter -> line plot; non-numeric values work too
    line_rows = [_row(f"l_{i}", {"rule": r, "fixed": 1}, v, 0.1) for i, (r, v) in enumerate([("a", 0.1), ("b", 0.3), ("a", 0.2)])]
    line_params = rt.parse_params_text("rule choice ['a','b']\nfixed choice [1]\n")
    paths, best = tune_report.write_reports(line_rows, line_params, "ndcg@10", True, str(tmp_path / "out"), _meta("line"))
    assert best == 1 and yaml.safe_load(open(paths["best_yaml"]))["rule"] == "b"
    _check_png(paths["png"])

    # every trial failed: no best yaml, and a stale one of the same name is removed
    failed = [_row("f_0", {"p": 0.2, "q": 0.2}, float("nan"), None, "failed", "ValueError: x")]
    stale = tmp_path / "out" / "eager-tiny-SASRec-fake-best.yaml"
    assert stale.exists()
    paths, best = tune_report.write_reports(failed, params, "ndcg@10", True, str(tmp_path / "out"), _meta())
    assert best is None and "best_yaml" not in paths and not stale.exists()
    assert "none (no trial finished)" in open(paths["md"]).read()
    _check_png(paths["png"])


def test_reports_show_each_trials_curve_and_asha_stops(tmp_path):
    rows = _fake_rows()
    rows[0]["curve"], rows[1]["curve"], rows[2]["curve"] = [0.05, 0.10], [0.12, 0.11], [0.1, 0.15, 0.2]
    rows[1].update(status="stopped", test={}, epochs=2)
    params = rt.parse_params_text("p choice [0.2,0.5]\nq choice [0.2,0.5]\n")
    paths, best = tune_report.write_reports(rows, params, "ndcg@10", True, str(tmp_path), _meta("curves"))
    assert best == 2
    md = open(paths["md"]).read()
    assert "Valid ndcg@10 after each validation" in md
    assert "| trial | status | p | q | 1 | 2 | 3 |" in md
    assert "| x_00001 | stopped | 0.2 | 0.5 | 0.1200 | 0.1100 |  |" in md
    assert "| x_00003 | failed | 0.5 | 0.5 |  |  |  |" in md
    assert [r["valid_curve"] for r in _read_csv(paths["csv"])] == ["0.05 0.1", "0.12 0.11", "0.1 0.15 0.2", ""]
    _check_png(paths["png"])


def test_report_header_names_run_date_commit_hardware_and_command(tmp_path):
    rows = _fake_rows()
    rows[0]["finished"], rows[1]["finished"] = 1796601600, 1796605200  # 2026-12-07 00:00 and 01:00 UTC
    meta = dict(_meta("head"), commit="abc1234", hardware="CPU: X, 2 cores (driver); 1 CPU, 0 GPU per trial",
                command="python run_hyper.py --name=head")
    paths, _ = tune_report.write_reports(rows, rt.parse_params_text("p choice [0.2,0.5]\nq choice [0.2,0.5]\n"),
                                         "ndcg@10", True, str(tmp_path), meta)
    md = open(paths["md"]).read()
    assert "- last trial report: 2026-12-07 01:00 UTC; commit `abc1234`; CPU: X, 2 cores (driver); 1 CPU, 0 GPU per trial" in md
    assert "- command: `python run_hyper.py --name=head`" in md
    assert records.portable_command(["--data_path=" + str(tmp_path / "d"), "--epochs=2", "--name=/x"]) == (
        f"python run_hyper.py --data_path={os.path.relpath(tmp_path / 'd')} --epochs=2 --name={os.path.relpath('/x')}")
    assert records.portable_command(["--results", "/x", "--set", "data_path=/y", "a=b"], "-m m") == (
        f"python -m m --results {os.path.relpath('/x')} --set data_path={os.path.relpath('/y')} a=b")


def test_plot_sampled_floats_and_many_params(tmp_path):
    import random

    rng = random.Random(0)
    # random search over two floats: every value distinct -> scatter instead of a sparse heatmap
    rows = [_row(f"r_{i:05d}", {"a": rng.uniform(0, 1), "b": rng.uniform(0, 1)}, rng.uniform(0.1, 0.3), 0.2) for i in range(20)]
    rows[3] = _row("r_00003", rows[3]["params"], float("nan"), None, "failed", "ValueError: Training loss is nan")
    params = rt.parse_params_text("a uniform 0,1\nb uniform 0,1\n")
    paths, best = tune_report.write_reports(rows, params, "ndcg@10", True, str(tmp_path), _meta("scatter"))
    assert rows[best]["best_valid_score"] == max(r["best_valid_score"] for r in rows if r["status"] == "ok")
    _check_png(paths["png"])
    # three varied parameters -> one bar per trial
    rows = [_row(f"m_{i}", {"a": i, "b": -i, "c": str(i)}, 0.1 * i, 0.5 - 0.1 * i) for i in range(4)]
    params = rt.parse_params_text("a choice [0,1,2,3]\nb choice [0,-1,-2,-3]\nc choice ['0','1','2','3']\n")
    paths, best = tune_report.write_reports(rows, params, "ndcg@10", True, str(tmp_path), _meta("bars"))
    assert best == 3
    _check_png(paths["png"])


def test_swept_epochs_keep_their_own_csv_column(tmp_path):
    rows = [_row("e_00000", {"epochs": 5}, 0.1, 0.1), _row("e_00001", {"epochs": 9}, 0.2, 0.1)]
    rows[1]["epochs"] = 4  # stopped early
    paths, _ = tune_report.write_reports(rows, rt.parse_params_text("epochs choice [5,9]\n"), "ndcg@10", True, str(tmp_path), _meta("ep"))
    header = open(paths["csv"]).readline().strip().split(",")
    assert len(header) == len(set(header))
    assert [(r["epochs"], r["epochs_trained"]) for r in _read_csv(paths["csv"])] == [("5", "2"), ("9", "4")]
    assert "| epochs | valid ndcg@10 |" in open(paths["md"]).read() and "| epochs trained |" in open(paths["md"]).read()


# --------------------------------------------------------------------------- real sweeps (Ray)
@pytest.fixture(scope="module")
def ray_local():
    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


TINY_ARGS = [f"--data_path={TINY_DATA}", "--epochs=2", "--train_batch_size=256", "--eval_batch_size=256", "--state=WARNING"]


def _progress(trial_dir):
    """Per-epoch reports of one trial from Ray's progress.csv."""
    return [r for r in _read_csv(os.path.join(trial_dir, "progress.csv")) if r["final"] == "False"]


def test_sweep_grid_end_to_end(ray_local, in_tmp_dir, monkeypatch, capsys):
    import run_hyper
    from recbole_eager.config import Config

    with open("dropout.hyper", "w") as f:
        f.write("hidden_dropout_prob choice [0.2,0.5]\nattn_dropout_prob choice [0.2,0.5]\n")
    # as from a shell: run_hyper's own options and the --key=value overrides in sys.argv
    argv = ["run_hyper.py", "--model=SASRec", "--dataset=eager-tiny", "--params_file=dropout.hyper", "--name=drop",
            "--max_concurrent=2", "--output_dir=out", *TINY_ARGS]
    monkeypatch.setattr(sys, "argv", argv)
    assert run_hyper.main() == 0
    assert sys.argv == argv  # restored
    stdout = capsys.readouterr().out
    assert "4 trials, 0 failed" in stdout

    stem = in_tmp_dir / "out" / "eager-tiny-SASRec-drop"
    rows = _read_csv(f"{stem}.csv")
    assert len(rows) == 4 and {r["status"] for r in rows} == {"ok"}
    assert {(r["hidden_dropout_prob"], r["attn_dropout_prob"]) for r in rows} == {(a, b) for a in ("0.2", "0.5") for b in ("0.2", "0.5")}
    for row in rows:
        assert row["epochs_trained"] == "2" and row["error"] == ""
        assert float(row["test_ndcg@10"]) >= 0 and float(row["test_recall@20"]) >= 0
        assert float(row["valid_ndcg@10"]) == pytest.approx(float(row["best_valid_score"]))
        # Ray storage in the working directory; the trial's best = the best of its per-epoch reports
        assert row["trial_dir"].startswith(os.path.join("saved", "ray_results", "drop"))  # relative: no folder of this machine
        epochs = _progress(row["trial_dir"])
        assert [e["epoch"] for e in epochs] == ["1", "2"]
        assert float(row["best_valid_score"]) == pytest.approx(max(float(e["valid_score"]) for e in epochs))
        assert [float(v) for v in row["valid_curve"].split()] == [float(e["valid_score"]) for e in epochs]
        assert os.path.isdir(os.path.join(row["trial_dir"], "log"))  # RecBole wrote into the trial's dir
    assert not os.path.exists(in_tmp_dir / "log")  # ...not into the driver's

    # the best trial has the highest best-valid metric (whatever the test metric says)
    best_rows = [r for r in rows if r["is_best"] == "1"]
    assert len(best_rows) == 1
    best = best_rows[0]
    assert float(best["best_valid_score"]) == max(float(r["best_valid_score"]) for r in rows)
    assert f"best (valid ndcg@10={float(best['best_valid_score']):.4f})" in stdout

    md, curves = open(f"{stem}.md").read().split("Valid ndcg@10 after each validation")
    assert md.count("| ok |") == 4 and curves.count("| ok |") == 4
    assert "; commit `" in md and "1 CPU, 0 GPU per trial, at most 2 at once" in md and "- last trial report: 20" in md
    command = f"python run_hyper.py {' '.join(argv[1:-len(TINY_ARGS)])} --data_path={os.path.relpath(TINY_DATA)} "
    assert f"- command: `{command}" in md and "=/" not in md  # no absolute path
    assert f"| {best['trial_id']} | ok | ★ |" in md and md.count("★") == 1
    assert f"trial `{best['trial_id']}`" in md

    best_yaml = f"{stem}-best.yaml"
    loaded = yaml.safe_load(open(best_yaml))
    assert loaded["hidden_dropout_prob"] == float(best["hidden_dropout_prob"])
    assert loaded["attn_dropout_prob"] == float(best["attn_dropout_prob"])
    assert loaded["epochs"] == 2
    with rt._clean_process_state():  # usable with --config_files
        config = Config(model="SASRec", dataset="eager-tiny", config_file_list=[best_yaml])
    assert config["hidden_dropout_prob"] == float(best["hidden_dropout_prob"])
    assert config["attn_dropout_prob"] == float(best["attn_dropout_prob"])
    _check_png(f"{stem}.png")


def test_sweep_failing_trial_recorded(ray_local, in_tmp_dir):
    with open("heads.hyper", "w") as f:
        f.write("n_heads choice [2,3]\n")  # SASRec hidden_size 64: 3 heads raise in the model's __init__
    sweep = rt.run_hyper("SASRec", "eager-tiny", "heads.hyper", overrides=parse_overrides(TINY_ARGS),
                         scheduler="asha", output_dir=str(in_tmp_dir / "res"))
    assert [r["params"]["n_heads"] for r in sweep.rows] == [2, 3]
    ok, failed = sweep.rows
    assert ok["status"] == "ok" and ok["test"] and ok["epochs"] == 2  # ASHA did not cut the final (test) report
    assert failed["status"] == "failed"
    assert "not a multiple of the number of attention heads" in failed["error"]
    assert sweep.best is ok
    rows = _read_csv(sweep.paths["csv"])
    assert [r["status"] for r in rows] == ["ok", "failed"] and [r["is_best"] for r in rows] == ["1", "0"]
    assert "attention heads" in rows[1]["error"]
    md = open(sweep.paths["md"]).read()
    assert "| failed |" in md
    assert "scheduler: asha on valid ndcg@10 (grace period 1, reduction factor 2, at most 2 epochs)" in md
    assert yaml.safe_load(open(sweep.paths["best_yaml"]))["n_heads"] == 2
    _check_png(sweep.paths["png"])


def test_report_names_no_folder_of_this_machine_when_written_to_an_absolute_folder(tmp_path):
    params = rt.parse_params_text("p choice [0.2,0.5]\nq choice [0.2,0.5]\n")
    paths, _ = tune_report.write_reports(_fake_rows(), params, "ndcg@10", True, str(tmp_path / "out"), _meta("abs"))
    md = open(paths["md"]).read()
    assert f"config: `{os.path.relpath(paths['best_yaml'])}`" in md and str(tmp_path) not in md
