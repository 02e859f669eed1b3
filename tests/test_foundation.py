"""Plugin frame: model lookup, config layering, CLI on every baseline, data errors, benchmark."""
import filecmp
import json
import os
import subprocess
import sys
from types import SimpleNamespace

import pandas as pd
import pytest
import torch
from recbole.data import data_preparation
from recbole.model.sequential_recommender import SASRec

import run_recbole_eager as cli
from conftest import PROJECT_ROOT, SHARED_DATA, TINY_DATA
from recbole_eager.experiments import benchmark, records
from recbole_eager.config import Config
from recbole_eager.data import create_dataset
from recbole_eager.model.eager import EAGER
from recbole_eager.quick_start import run_recbole_eager
from recbole_eager.utils import RecBoleEagerError, atomic_write, get_model

BASELINES = ["GRU4Rec", "Caser", "SASRec", "BERT4Rec", "S3Rec"]


def test_get_model_prefers_plugin_then_recbole():
    assert get_model("EAGER") is EAGER
    assert get_model("SASRec") is SASRec
    with pytest.raises(RecBoleEagerError, match="unknown model 'NoSuchRec'.*EAGER.*SASRec"):
        get_model("NoSuchRec")


def test_config_layers_protocol_model_and_user_overrides(tiny_config):
    config = Config(model="SASRec", dataset="eager-tiny", config_dict={**tiny_config, "n_layers": 1})
    assert config["eval_args"]["split"] == {"LS": "valid_and_test"}
    assert config["eval_args"]["order"] == "TO" and config["eval_args"]["mode"] == {"valid": "full", "test": "full"}
    assert config["MAX_ITEM_LIST_LENGTH"] == 20 and config["topk"] == [5, 10, 20]
    assert config["valid_metric"] == "NDCG@10" and config["metrics"] == ["Recall", "NDCG"]
    assert config["loss_type"] == "CE" and config["hidden_size"] == 64
    assert config["n_layers"] == 1  # user beats properties/
    assert config["data_path"] == os.path.join(str(TINY_DATA), "eager-tiny")
    eager = Config(model="EAGER", dataset="amazon-beauty", config_dict=tiny_config)
    assert eager["hidden_size"] == 128 and eager["decoder_layers"] == 4 and eager["kmeans_k"] == 256
    assert Config(model="EAGER", dataset="eager-tiny", config_dict=tiny_config)["kmeans_k"] == 8  # dataset YAML beats model YAML


@pytest.mark.parametrize("flush", [None, True, False])
def test_config_flushes_denormal_floats_unless_told_not_to(tiny_config, flush):
    """Denormals (weights decayed towards 0) made Caser 3x slower per epoch on CPU."""
    config_dict = tiny_config if flush is None else {**tiny_config, "flush_denormal": flush}
    denormal = torch.finfo(torch.float32).tiny / 4
    try:
        Config(model="SASRec", dataset="eager-tiny", config_dict=config_dict)
        product = (torch.tensor([denormal]) * 1.0).item()
    finally:
        torch.set_flush_denormal(False)
    assert (product == 0.0) == (flush is not False)


def test_a_reloaded_checkpoint_flushes_denormals_even_if_saved_before_the_key(tiny_config):
    """An unpickled Config skips __init__: re-evaluations must flush too."""
    from recbole_eager.quick_start import load_data_and_model
    saved = run_recbole_eager(model="SASRec", dataset="eager-tiny", config_dict={**tiny_config, "epochs": 1})["saved_model_file"]
    checkpoint = torch.load(saved, map_location="cpu", weights_only=False)
    del checkpoint["config"].final_config_dict["flush_denormal"]  # as saved before the key existed
    torch.save(checkpoint, saved)
    denormal = torch.finfo(torch.float32).tiny / 4
    torch.set_flush_denormal(False)
    try:
        load_data_and_model(saved)
        product = (torch.tensor([denormal]) * 1.0).item()
    finally:
        torch.set_flush_denormal(False)
    assert product == 0.0


def test_data_path_default_and_environment_variable(monkeypatch, tmp_path):
    assert Config(model="SASRec", dataset="eager-tiny")["data_path"] == str(PROJECT_ROOT / "dataset" / "eager-tiny")
    monkeypatch.setenv("RECBOLE_EAGER_DATA", str(tmp_path))
    assert Config(model="SASRec", dataset="x")["data_path"] == str(tmp_path / "x")


@pytest.mark.parametrize("model", BASELINES)
def test_cli_runs_each_baseline_on_tiny_data(model, monkeypatch):
    argv = [f"--model={model}", "--dataset=eager-tiny", f"--data_path={TINY_DATA}", "--epochs=1",
            "--pretrain_epochs=1", "--show_progress=False", "--state=WARNING"]
    monkeypatch.setattr(sys, "argv", ["run_recbole_eager.py", *argv])
    assert cli.main(argv) == 0
    saved = os.listdir("saved")
    assert any(name.startswith(model) for name in saved)
    if model == "S3Rec":  # pretrain checkpoint written, then fine-tuned from it
        assert "S3Rec-eager-tiny-1.pth" in saved


def test_a_two_stage_run_is_recorded_as_its_default_configuration(tiny_config, tmp_path):
    """S3Rec's finetune stage must not leave train_stage=finetune in the record: that moved
    the Beauty run out of the main table."""
    record = benchmark.run_one("S3Rec", "eager-tiny", {**tiny_config, "epochs": 1, "pretrain_epochs": 1},
                               str(tmp_path / "r.json"), "cmd")
    assert record["model_config"]["train_stage"] == "pretrain_finetune"
    assert "train_stage" not in benchmark.changed_keys(record)


def test_unknown_model_exits_with_clear_error(monkeypatch, capsys):
    argv = ["--model=NoSuchRec", "--dataset=eager-tiny"]
    monkeypatch.setattr(sys, "argv", ["run_recbole_eager.py", *argv])
    assert cli.main(argv) == 2
    assert "unknown model 'NoSuchRec'" in capsys.readouterr().err


def test_unknown_dataset_names_path_and_fix(tmp_path, monkeypatch, capsys):
    argv = ["--model=SASRec", "--dataset=no-such-data", f"--data_path={tmp_path}"]
    monkeypatch.setattr(sys, "argv", ["run_recbole_eager.py", *argv])
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and str(tmp_path / "no-such-data") in err and "--data_path" in err


def test_dataset_folder_without_inter_file(tmp_path, tiny_config):
    (tmp_path / "eager-tiny").mkdir()
    config = Config(model="SASRec", dataset="eager-tiny", config_dict={**tiny_config, "data_path": str(tmp_path)})
    with pytest.raises(RecBoleEagerError, match=r"has no eager-tiny.inter"):
        create_dataset(config)


def test_failed_download_is_one_clear_error_and_leaves_nothing(tmp_path, tiny_config, monkeypatch):
    from urllib.error import URLError

    def offline(url, folder):
        raise URLError("no network")

    monkeypatch.setattr("recbole.data.dataset.dataset.download_url", offline)
    monkeypatch.setattr("recbole.data.dataset.dataset.decide_download", lambda url: True)
    config = Config(model="SASRec", dataset="amazon-beauty", config_dict={**tiny_config, "data_path": str(tmp_path)})
    with pytest.raises(RecBoleEagerError, match=r"could not download dataset 'amazon-beauty'.*no network"):
        create_dataset(config)
    assert not (tmp_path / "amazon-beauty").exists()


def test_tiny_dataset_is_reproducible(tmp_path):
    sys.path.insert(0, str(TINY_DATA))
    from make_tiny import make_tiny

    make_tiny(str(tmp_path / "eager-tiny"))
    for suffix in ("inter", "item"):
        assert filecmp.cmp(tmp_path / "eager-tiny" / f"eager-tiny.{suffix}", TINY_DATA / "eager-tiny" / f"eager-tiny.{suffix}", shallow=False)


def test_checkpoint_reloads_in_a_new_process(tiny_config):
    result = run_recbole_eager(model="SASRec", dataset="eager-tiny", config_dict={**tiny_config, "epochs": 1})
    code = (
        "import sys; from recbole_eager.quick_start import load_data_and_model; from recbole_eager.utils import get_trainer\n"
        "config, model, _, _, _, test_data = load_data_and_model(sys.argv[1])\n"
        "trainer = get_trainer(config['MODEL_TYPE'], config['model'])(config, model)\n"
        "ndcg = trainer.evaluate(test_data, load_best_model=False, show_progress=False)['ndcg@10']\n"
        "print(type(model).__name__, config['dataset'], ndcg)"
    )
    out = subprocess.run([sys.executable, "-c", code, result["saved_model_file"]], capture_output=True, text=True, cwd=os.getcwd())
    assert out.returncode == 0, out.stderr[-2000:]
    name, dataset, ndcg = out.stdout.split()[-3:]
    assert (name, dataset) == ("SASRec", "eager-tiny")
    assert float(ndcg) == pytest.approx(result["test_result"]["ndcg@10"])  # NDCG needs RecBole's numpy aliases
    assert torch.__version__ >= "2.6"  # the weights_only default this guards against


def test_runs_started_in_the_same_second_keep_their_own_checkpoints(tiny_config, monkeypatch):
    import recbole.trainer.trainer as recbole_trainer

    monkeypatch.setattr(recbole_trainer, "get_local_time", lambda: "Nov-28-2026_20-05-33")
    results = [run_recbole_eager(model="SASRec", dataset="eager-tiny", config_dict={**tiny_config, "epochs": 1, "seed": seed})
               for seed in (1, 2)]
    files = [r["saved_model_file"] for r in results]
    assert files[0] != files[1] and all(os.path.basename(f).startswith("SASRec-Nov-28-2026_20-05-33-") for f in files)
    weights = [torch.load(f, map_location="cpu", weights_only=False)["state_dict"]["item_embedding.weight"] for f in files]
    assert not torch.equal(*weights)  # each run's best model, not the last writer's


def test_benchmark_writes_json_and_table_and_resumes(tmp_path):
    results = tmp_path / "results"
    args = ["--dataset", "eager-tiny", "--models", "GRU4Rec", "SASRec", "--results", str(results),
            "--set", f"data_path={TINY_DATA}", "epochs=1", "show_progress=False", "state=WARNING"]
    benchmark.main(args)
    runs = sorted(os.listdir(results / "runs"))
    assert runs == ["eager-tiny__GRU4Rec.json", "eager-tiny__SASRec.json"]
    record = json.loads((results / "runs" / runs[1]).read_text())
    for key in ("model", "dataset", "test_result", "best_valid_result", "command", "commit", "hardware",
                "epochs", "seconds_per_epoch", "wall_seconds"):
        assert key in record
    assert record["epochs"] == 1 and "ndcg@10" in record["test_result"] and isinstance(record["environment"], dict)
    assert str(tmp_path) not in record["command"] and "--results " + os.path.relpath(results) in record["command"]
    table = (results / "eager-tiny.md").read_text()
    assert "| GRU4Rec | ours |" in table and "| SASRec | ours |" in table
    sasrec_row = next(line for line in table.splitlines() if line.startswith("| SASRec | ours |")).split(" | ")
    header = next(line for line in table.splitlines() if line.startswith("| model |")).split(" | ")
    assert len(sasrec_row) == len(header)
    assert float(sasrec_row[header.index("valid N@10")]) == round(record["best_valid_result"]["ndcg@10"], 4)
    ratio = record["test_result"]["ndcg@10"] / record["best_valid_result"]["ndcg@10"]
    assert sasrec_row[header.index("test/valid N@10")] == f"{ratio:.2f}"
    mtime = os.path.getmtime(results / "runs" / runs[1])
    benchmark.main(args)  # finished runs are skipped
    assert os.path.getmtime(results / "runs" / runs[1]) == mtime
    with pytest.raises(RecBoleEagerError, match="holds a run with other settings.*--tag"):
        benchmark.main([*args[:-3], "epochs=2", *args[-2:]])  # same names, other settings: refused

    # Re-evaluating the saved best model reproduces the run's validation and test metrics.
    benchmark.main(["--dataset", "eager-tiny", "--models", "SASRec", "--tag", "again", "--results", str(results),
                    "--evaluate", record["saved_model_file"], "--set", "show_progress=False"])
    again = json.loads((results / "runs" / "eager-tiny__SASRec-again.json").read_text())
    assert again["epochs"] == 0 and again["evaluated_checkpoint"] == record["saved_model_file"]
    assert again["test_result"] == record["test_result"] and again["best_valid_result"] == record["best_valid_result"]
    assert "| SASRec-again | SASRec | re-evaluated" in (results / "eager-tiny.md").read_text()
    with pytest.raises(ValueError, match="holds SASRec on eager-tiny, not GRU4Rec"):
        benchmark.main(["--dataset", "eager-tiny", "--models", "GRU4Rec", "--tag", "x", "--results", str(results),
                        "--evaluate", record["saved_model_file"]])


def test_a_run_whose_behavior_file_is_gone_is_still_recorded(tmp_path, monkeypatch):
    from recbole_eager import quick_start
    metrics = {m: 0.01 for m in benchmark.METRICS}
    result = {"test_result": metrics, "best_valid_result": metrics, "config": {"behavior_checkpoint": "gone.pth", "epochs": 1},
              "epochs": 1, "stopped_by": "epoch_cap", "train_epoch_seconds": [1.0], "valid_seconds": [1.0], "test_seconds": 1.0,
              "saved_model_file": "m.pth", "wall_seconds": 3.0, "valid_curve": [metrics]}
    monkeypatch.setattr(quick_start, "evaluate_checkpoint", lambda path, overrides: {**result, "model": "EAGER", "dataset": "d"})
    record = benchmark.run_one("EAGER", "d", {}, str(tmp_path / "r.json"), "cmd", checkpoint="m.pth")
    assert record["test_result"] == metrics and "behavior_model" not in record
    assert benchmark.changed_keys(record) == {}  # an evaluation's overrides name no behavior file


def test_main_table_one_row_per_model_default_runs_only(tmp_path):
    runs = tmp_path / "runs"
    runs.mkdir()

    def record(name, model, ndcg, overrides=None, stopped_by="early_stopping", epochs=20, **extra):
        metrics = {m: ndcg for m in benchmark.METRICS}
        (runs / f"d__{name}.json").write_text(json.dumps({
            "model": model, "dataset": "d", "test_result": metrics, "best_valid_result": metrics, "overrides": overrides or {},
            "stopped_by": stopped_by, "epochs": epochs, "stopping_step": 10, "train_time_budget": (overrides or {}).get("train_time_budget"), "seconds_per_epoch": 2.0, "hardware": "CPU: x",
            **extra,
        }))

    record("EAGER-seed1", "EAGER", 0.03, {"seed": 1})
    record("EAGER-seed2", "EAGER", 0.05, {"seed": 2, "code_tokens": "node"})  # today's default value: no change
    record("EAGER-cap2", "EAGER", 0.01, {"epochs": 2}, "epoch_cap", 2)  # default config, but not converged
    record("EAGER-no-gct", "EAGER", 0.02, {"use_gct": False})
    # Trained under defaults that have changed since: its config, not its overrides, says so.
    record("EAGER-old-default", "EAGER", 0.09, {"seed": 3}, model_config={"use_gct": False, "lambda1": 1.0, "no_longer_a_key": 1})
    record("EAGER-first", "EAGER", 0.09, {"use_gct": False}, model_config=benchmark.FORMER_DEFAULTS["EAGER"]["first reading"])
    record("EAGER-joint-eval", "EAGER", 0.04, {"merge_rule": "joint"}, "evaluated_checkpoint", 0)
    record("Caser-budget", "Caser", 0.01, {"train_time_budget": 60}, "time_budget", 3)
    # Which field holds S3-Rec's attributes is a fact of the dataset, not a setting of the model.
    record("S3Rec", "S3Rec", 0.02, {"pretrain_epochs": 5, "item_attribute": "title", "token_seq_fields": ["title"]},
           model_config={"train_stage": "pretrain_finetune", "pretrain_epochs": 5, "item_attribute": "title"})
    # A behavior checkpoint is default only if it was trained as EAGER's default would train it.
    default_behavior = {"model": "SASRec", "epoch_cap": 30, "best_epoch": 30, "sequence_order": "time", "best_valid_score": 0.05}
    record("EAGER-behavior30", "EAGER", 0.04, {"seed": 1, "behavior_checkpoint": "b30.pth"}, behavior_model=default_behavior,
           model_config={"layer_norm_eps": 1e-12})  # the YAML's 1e-12 reads as a string: the same value
    record("EAGER-behavior5", "EAGER", 0.07, {"seed": 1, "behavior_checkpoint": "b5.pth"},
           behavior_model={**default_behavior, "epoch_cap": 5, "best_epoch": 5})
    record("EAGER-behavior-unknown", "EAGER", 0.08, {"seed": 1, "behavior_checkpoint": "old.pth"})
    benchmark.write_table("d", str(runs), str(tmp_path / "d.md"), None)
    main, others = (tmp_path / "d.md").read_text().split("## Other runs")
    rows = [line for line in main.splitlines() if "| ours |" in line]
    assert [r.split(" | ")[0] for r in rows] == ["| Caser", "| S3Rec", "| EAGER"]
    assert "| 5 pretrain + 20 (early stop, patience 10) |" in rows[1]
    eager = rows[2].split(" | ")
    assert eager[2] == "0.0400 ± 0.0100" and eager[9] == "1.00" and eager[10] == "3"  # three runs: mean ± sample std; test/valid of the means
    assert "| EAGER-behavior5 | EAGER | behavior_model=SASRec 5 epochs |" in others
    assert "| EAGER-behavior-unknown | EAGER | behavior_checkpoint=old.pth |" in others
    assert "time budget 60 s" in rows[0]
    assert "| EAGER-no-gct | EAGER | use_gct=False |" in others and "| EAGER-cap2 | EAGER | - |" in others
    assert "| EAGER-old-default | EAGER | use_gct=False |" in others
    assert "| EAGER-first | EAGER | first reading, use_gct=False |" in others  # a former default set by its name
    assert 'EAGER "first reading" = a former default configuration: kmeans_balanced=False, gct_normalize=False' in others
    assert "| EAGER-joint-eval | EAGER | re-evaluated None; merge_rule=joint |" in others
    with open(tmp_path / "d.md", "a") as f:  # a hand-written reading survives the next write
        f.write(f"\n{benchmark.READING}\n\nOur reading.\n")
    record("TIGER", "TIGER", 0.02, {"rqvae_epochs": 500})  # TIGER's default (EAGER.yaml's base + TIGER.yaml)
    benchmark.write_table("d", str(runs), str(tmp_path / "d.md"), None)
    text = (tmp_path / "d.md").read_text()
    assert text.endswith(f"{benchmark.READING}\n\nOur reading.\n") and text.count(benchmark.READING) == 1
    assert "| TIGER | ours |" in text.split("## Other runs")[0]
    (tmp_path / "README.md").write_text(f"# r\n{benchmark.SUMMARY_START}\nold\n{benchmark.SUMMARY_END}\nkept\n")
    benchmark.write_summary(str(tmp_path), None)
    readme = (tmp_path / "README.md").read_text()
    assert "| EAGER | 0.0400 (-) / 0.0400 (-) |" in readme and "| Caser | 0.0100† (-) / 0.0100† (-) |" in readme
    assert "old" not in readme and readme.endswith("kept\n")


def test_benchmark_commit_dirty_only_for_code(tmp_path, monkeypatch):
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t", "-C", str(tmp_path)]
    (tmp_path / "results").mkdir()
    (tmp_path / "model.py").write_text("a = 1\n")
    (tmp_path / "results" / "table.md").write_text("old\n")
    subprocess.run(git + ["init", "-q"], check=True)
    subprocess.run(git + ["add", "."], check=True)
    subprocess.run(git + ["commit", "-qm", "x"], check=True)
    monkeypatch.setattr(records, "PROJECT_ROOT", tmp_path)
    head = subprocess.run(git + ["rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    (tmp_path / "results" / "table.md").write_text("rewritten by a running benchmark\n")
    assert records.git_commit() == head
    (tmp_path / "model.py").write_text("a = 2\n")
    assert records.git_commit() == head + "-dirty"
    monkeypatch.setenv("RECBOLE_EAGER_COMMIT", "abc1234")  # a copy on a GPU machine names its commit
    assert records.git_commit() == "abc1234"


def test_records_name_the_environment_that_changes_speed(monkeypatch):
    monkeypatch.setenv("MALLOC_TRIM_THRESHOLD_", "4294967296")
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.setenv("RECBOLE_EAGER_DATA", "/data")
    environment = records.speed_environment()
    assert environment["MALLOC_TRIM_THRESHOLD_"] == "4294967296" and environment["OMP_NUM_THREADS"] == "1"
    assert "RECBOLE_EAGER_DATA" not in environment


def test_paper_table_parsing(tmp_path):
    table = tmp_path / "t.md"
    table.write_text("| Dataset | Metric | SASRec | S3-Rec | EAGER |\n|---|---|---|---|---|\n"
                     "| Beauty | Recall@10 | 0.0605 | 0.0647* | 0.0836 |\n| Sports | Recall@10 | 0.0350 | 0.0385 | 0.0441 |\n")
    paper = benchmark.read_paper_table(str(table), "amazon-beauty")
    assert paper == {"SASRec": {"recall@10": 0.0605}, "S3-Rec": {"recall@10": 0.0647}, "EAGER": {"recall@10": 0.0836}}


@pytest.mark.skipif(not (SHARED_DATA / "amazon-beauty").is_dir(), reason="../shared/datasets/amazon-beauty absent")
def test_beauty_split_follows_file_row_order():
    """After RecBole's split, each user's test item is their last row, validation the second-to-last."""
    config = Config(model="SASRec", dataset="amazon-beauty",
                    config_dict={"data_path": str(SHARED_DATA), "show_progress": False, "state": "WARNING"})
    dataset = create_dataset(config)
    _, valid_data, test_data = data_preparation(config, dataset)
    rows = pd.read_csv(SHARED_DATA / "amazon-beauty" / "amazon-beauty.inter", sep="\t", dtype=str)
    rows.columns = ["user", "item", "timestamp"]
    last = rows.groupby("user", sort=False).nth(-1).set_index("user")["item"]
    second = rows.groupby("user", sort=False).nth(-2).set_index("user")["item"]

    def targets(data):
        feat = data._dataset.inter_feat
        users = dataset.id2token("user_id", feat["user_id"].numpy())
        items = dataset.id2token("item_id", feat["item_id"].numpy())
        return pd.Series(items, index=users)

    test, valid = targets(test_data), targets(valid_data)
    assert len(test) == len(valid) == 22363
    assert (test.sort_index() == last.sort_index()).all()
    assert (valid.sort_index() == second.sort_index()).all()


def test_time_budget_stops_before_next_epoch_and_tests_best(tiny_config):
    result = run_recbole_eager(model="SASRec", dataset="eager-tiny",
                               config_dict={**tiny_config, "epochs": 5, "train_time_budget": 0.05})
    assert result["stopped_by"] == "time_budget" and 1 <= result["epochs"] < 5
    assert "ndcg@10" in result["test_result"] and result["best_valid_result"]


def test_speed_compares_models_on_the_same_batches(tmp_path, monkeypatch):
    from recbole_eager.experiments import speed

    args = ["--dataset", "eager-tiny", "--models", "GRU4Rec", "SASRec", "--train_steps", "2", "--eval_batches", "1",
            "--results", str(tmp_path), "--tag", "tiny", "--set", f"data_path={TINY_DATA}", "state=WARNING", "show_progress=False"]
    monkeypatch.setattr(sys, "argv", ["speed.py", *args])
    speed.main()
    report = json.loads((tmp_path / "eager-tiny-GRU4Rec-SASRec-tiny.json").read_text())
    assert report["command"] == ("python -m recbole_eager.experiments.speed " + " ".join(args[:9]) + " --results . --tag tiny "
                                 f"--set data_path={os.path.relpath(TINY_DATA)} state=WARNING show_progress=False")  # the tmp dir is cwd
    gru, sas = report["models"]["GRU4Rec"], report["models"]["SASRec"]
    assert report["precision"] == {"GRU4Rec": "float32", "SASRec": "float32"}
    assert gru["train_steps_timed"] == sas["train_steps_timed"] == 2 and gru["eval_batches_timed"] == 1
    assert gru["epoch_seconds_estimate"] == pytest.approx(gru["train_step_seconds_mean"] * report["train_batches_per_epoch"])
    assert gru["epoch_ratio_vs_SASRec"] == pytest.approx(gru["epoch_seconds_estimate"] / sas["epoch_seconds_estimate"])
    assert gru["train_step_gflop_mean"] > 0 and sas["eval_batch_gflop_mean"] > 0
    assert gru["train_flop_ratio_vs_SASRec"] == pytest.approx(gru["train_step_gflop_mean"] / sas["train_step_gflop_mean"])
    assert sas["train_gflops_achieved"] == pytest.approx(sas["train_step_gflop_mean"] / sas["train_step_seconds_mean"])


def test_flop_count_covers_matmuls_and_cpu_attention():
    from recbole_eager.experiments.speed import count_flops

    a, b = torch.randn(3, 5), torch.randn(5, 7)
    assert count_flops(lambda: a @ b) == 2 * 3 * 5 * 7
    q = torch.randn(1, 1, 4, 8)
    assert count_flops(lambda: torch.nn.functional.scaled_dot_product_attention(q, q, q)) == 2 * (2 * 4 * 4 * 8)


def test_speed_autocasts_only_recbole_models_and_only_when_asked():
    from recbole_eager.experiments.speed import precision_context

    cpu = torch.device("cpu")
    with precision_context(SimpleNamespace(device=cpu), autocast_baselines=True):
        assert torch.is_autocast_enabled("cpu") and torch.get_autocast_dtype("cpu") == torch.bfloat16
    with precision_context(SimpleNamespace(device=cpu, autocast=None), autocast_baselines=True):
        assert not torch.is_autocast_enabled("cpu")  # EAGER: its own `precision` decides
    with precision_context(SimpleNamespace(device=cpu), autocast_baselines=False):
        assert not torch.is_autocast_enabled("cpu")


def test_speed_times_models_in_abba_blocks_after_a_warm_up():
    from recbole_eager.experiments.speed import timed_blocks

    calls = []
    seconds = timed_blocks(["A", "B"], [1, 2, 3], lambda m, batch: calls.append((m, batch)) or float(batch))
    assert calls == [("A", 1), ("A", 1), ("A", 2), ("B", 1), ("B", 1), ("B", 2),
                     ("B", 3), ("B", 3), ("A", 3), ("A", 3)]
    assert seconds == {"A": [1.0, 2.0, 3.0], "B": [1.0, 2.0, 3.0]}


def test_recbole_models_leave_anomaly_detection_as_it_was():
    """RecBole 1.2.1's sine.py switches anomaly detection on at import; get_model undoes it."""
    code = ("import sys, torch; from recbole_eager.utils import get_model; get_model('SASRec'); "
            "sys.exit(3 if torch.is_anomaly_enabled() else 0)")
    assert subprocess.run([sys.executable, "-c", code], cwd=PROJECT_ROOT, capture_output=True).returncode == 0


def test_a_dataset_yamls_own_values_are_that_datasets_defaults():
    """Sports' YAML sets item_text_fields=[title] (its file has no brand or categories): an EAGER
    run there with it is a default run, not an ablation; another value still is one."""
    metrics = {m: 0.01 for m in benchmark.METRICS}
    record = {"model": "EAGER", "dataset": "amazon-sports-outdoors", "overrides": {}, "stopped_by": "time_budget",
              "model_config": {"item_text_fields": ["title"]}, "test_result": metrics, "best_valid_result": metrics}
    assert benchmark.changed_keys(record) == {}
    record["model_config"]["item_text_fields"] = ["title", "brand"]
    assert benchmark.changed_keys(record) == {"item_text_fields": ["title", "brand"]}


def test_one_datasets_defaults_do_not_leak_into_anothers():
    """eager-tiny's YAML sets kmeans_k=8: a Sports run with kmeans_k=8 still differs from Sports' defaults."""
    metrics = {m: 0.01 for m in benchmark.METRICS}
    tiny = {"model": "EAGER", "dataset": "eager-tiny", "overrides": {}, "stopped_by": "time_budget",
            "model_config": {"kmeans_k": 8}, "test_result": metrics, "best_valid_result": metrics}
    assert benchmark.changed_keys(tiny) == {}
    assert benchmark.changed_keys({**tiny, "dataset": "amazon-sports-outdoors"}) == {"kmeans_k": 8}


def test_atomic_write_gives_files_the_usual_permissions(tmp_path):
    # reports land on storage other users read (a shared Ray results folder): not mkstemp's 0600
    umask = os.umask(0o022)
    try:
        atomic_write(str(tmp_path / "a.md"), "x")
        atomic_write(str(tmp_path / "b.png"), b"\x89PNG")
    finally:
        os.umask(umask)
    assert [oct(os.stat(tmp_path / n).st_mode & 0o777) for n in ("a.md", "b.png")] == ["0o644", "0o644"]
    assert open(tmp_path / "a.md").read() == "x" and sorted(os.listdir(tmp_path)) == ["a.md", "b.png"]
