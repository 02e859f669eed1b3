"""A user's mistakes: one clear line and exit 2, checked before any data, training or code
building, with nothing left behind."""
import os
import subprocess
import sys

import pytest

import run_recbole_eager as cli
from conftest import TINY_DATA
from recbole_eager.codes import __main__ as codes_cli
from recbole_eager.quick_start import run_recbole_eager
from recbole_eager.utils import RecBoleEagerError

TINY = [f"--data_path={TINY_DATA}", "--show_progress=False", "--state=WARNING"]


def run_cli(monkeypatch, capsys, *args):
    argv = ["--dataset=eager-tiny", *TINY, *args]
    monkeypatch.setattr(sys, "argv", ["run_recbole_eager.py", *argv])
    code = cli.main(argv)
    return code, capsys.readouterr().err.strip().splitlines()


@pytest.mark.parametrize("args, message", [
    (["--model=EAGER", "--beam_size=5"], "error: beam_size=5 must be at least max(topk)=20"),
    (["--model=SASRec", "--epochs=abc"], "error: epochs='abc': a number expected (default 300)"),
    (["--model=EAGER", "--lamda1=0.5"], "error: unknown config key 'lamda1': did you mean 'lambda1'?"),
    (["--model=SASRec", "--epochs", "2"], "error: unrecognized argument '--epochs': config keys are given as --key=value (e.g. --epochs=2)"),
    (["--model=EAGER", "--lambda1=-1"], "error: lambda1=-1: a loss weight must be at least 0"),
    (["--model=EAGER", "--stt_mask_ratio=1.5"], "error: stt_mask_ratio=1.5: a ratio must be in [0, 1]"),
    (["--model=SASRecc"], "error: unknown model 'SASRecc'. Did you mean SASRec, SASRecF, SASRecCPR?"),
    (["--model=BPR"], "error: BPR is a pairwise model: it needs negative sampling"),
    (["--model=SASRec", "--resume_from=saved/nope.pth"], "error: resume_from saved/nope.pth does not exist"),
    (["--model=S3Rec", "--item_attribute=genre"],
     "error: S3Rec: item_attribute='genre' is not an item field dataset 'eager-tiny' loads (title, brand, categories)"),
])
def test_bad_input_is_one_line_before_anything_runs(monkeypatch, capsys, args, message):
    code, err = run_cli(monkeypatch, capsys, *args)
    assert code == 2 and len(err) == 1 and err[0].startswith(message), err
    assert not os.path.exists("saved") and not os.path.exists("log")  # nothing trained, built or logged


def test_model_names_in_any_case_run(monkeypatch, capsys):
    code, _ = run_cli(monkeypatch, capsys, "--model=sasrec", "--epochs=1")
    assert code == 0 and any(f.startswith("SASRec-") for f in os.listdir("saved"))


def test_resume_from_another_models_checkpoint_names_what_it_holds(monkeypatch, capsys, tiny_config):
    gru = run_recbole_eager(model="GRU4Rec", dataset="eager-tiny", config_dict={**tiny_config, "epochs": 1})["saved_model_file"]
    code, err = run_cli(monkeypatch, capsys, "--model=EAGER", f"--resume_from={gru}")
    assert code == 2 and err == [f"error: resume_from {gru} holds GRU4Rec on eager-tiny, not EAGER on eager-tiny"]


def test_ctrl_c_says_how_to_resume(monkeypatch, capsys):
    def interrupted(**kwargs):
        raise KeyboardInterrupt

    monkeypatch.setitem(cli.main.__globals__, "run_recbole_eager", interrupted)
    code, err = run_cli(monkeypatch, capsys, "--model=SASRec")
    assert code == 130 and len(err) == 1 and "--resume_from=" in err[0]


def test_codes_cli_help_and_bad_key(monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", ["codes", "--help"])
    assert codes_cli.main() == 0 and "python -m recbole_eager.codes" in capsys.readouterr().out
    monkeypatch.setattr(sys, "argv", ["codes", "--dataset=eager-tiny", "--kmeans_kk=8"])
    assert codes_cli.main() == 2 and "did you mean 'kmeans_k'" in capsys.readouterr().err


def test_help_lists_the_common_keys():
    out = subprocess.run([sys.executable, "-m", "recbole_eager", "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and "--resume_from=" in out.stdout and "--lambda1=" in out.stdout and "--threads" in out.stdout


def test_behavior_only_needs_no_item_text(tiny_config, tiny_copy):
    os.remove(tiny_copy / "eager-tiny" / "eager-tiny.item")
    result = run_recbole_eager(model="EAGER", dataset="eager-tiny", config_dict={
        **tiny_config, "data_path": str(tiny_copy), "epochs": 1, "decoder_layers": 1, "behavior_epochs": 1,
        "use_semantic_stream": False, "load_col": {"inter": ["user_id", "item_id", "timestamp"]},
    })
    assert result["epochs"] == 1 and "ndcg@10" in result["test_result"]


def own_dataset(tiny_copy, name, drop_time=False):
    """A copy of eager-tiny under a new name, with no YAML in properties/dataset."""
    folder = tiny_copy / name
    (tiny_copy / "eager-tiny").rename(folder)
    for suffix in ("inter", "item"):
        (folder / f"eager-tiny.{suffix}").rename(folder / f"{name}.{suffix}")
    if drop_time:
        lines = (folder / f"{name}.inter").read_text().splitlines()
        (folder / f"{name}.inter").write_text("\n".join("\t".join(line.split("\t")[:2]) for line in lines) + "\n")
    return folder


@pytest.mark.parametrize("model", ["SASRec", "EAGER"])
def test_own_dataset_without_yaml_runs_with_inferred_fields(tiny_config, tiny_copy, caplog, model):
    own_dataset(tiny_copy, "shop")
    config = {**tiny_config, "data_path": str(tiny_copy), "epochs": 1, "decoder_layers": 1, "behavior_epochs": 1, "kmeans_k": 8,
              "state": "INFO"}
    result = run_recbole_eager(model=model, dataset="shop", config_dict=config)
    assert "ndcg@10" in result["test_result"]
    assert "dataset 'shop' has no YAML: inferred" in caplog.text and "TIME_FIELD=timestamp" in caplog.text
    assert result["config"]["item_text_fields"] == ["title", "brand", "categories"]


def test_without_a_time_field_the_row_order_is_the_sequence(tiny_config, tiny_copy, caplog):
    from recbole.data import data_preparation

    from recbole_eager.config import Config
    from recbole_eager.data import create_dataset

    folder = own_dataset(tiny_copy, "notime", drop_time=True)
    config = Config(model="SASRec", dataset="notime", config_dict={**tiny_config, "data_path": str(tiny_copy), "state": "INFO"})
    assert "no time field: each user's rows in file order" in caplog.text
    dataset = create_dataset(config)
    _, _, test_data = data_preparation(config, dataset)
    rows = [line.split("\t") for line in (folder / "notime.inter").read_text().splitlines()[1:]]
    last = {user: item for user, item in rows}  # each user's last row
    feat = test_data._dataset.inter_feat
    users = dataset.id2token("user_id", feat["user_id"].numpy())
    items = dataset.id2token("item_id", feat["item_id"].numpy())
    assert dict(zip(users, items)) == last
    for model in ("SASRec", "EAGER"):
        result = run_recbole_eager(model=model, dataset="notime", config_dict={
            **tiny_config, "data_path": str(tiny_copy), "epochs": 1, "decoder_layers": 1, "behavior_epochs": 1, "kmeans_k": 8})
        assert "ndcg@10" in result["test_result"]


@pytest.mark.parametrize("skip", [False, True])
def test_a_malformed_row_is_an_error_naming_file_and_line_or_skipped(tiny_config, tiny_copy, caplog, skip):
    inter = tiny_copy / "eager-tiny" / "eager-tiny.inter"
    lines = inter.read_text().splitlines()
    lines[5] = lines[5].split("\t")[0]  # a row with only the user: line 6 of the file
    lines[7] = lines[7].split("\t")[0] + "\t\t" + lines[7].split("\t")[2]  # a row missing its item: line 8
    inter.write_text("\n".join(lines) + "\n")
    config = {**tiny_config, "data_path": str(tiny_copy), "epochs": 1, "skip_malformed_rows": skip}
    if not skip:
        with pytest.raises(RecBoleEagerError, match=r"eager-tiny.inter line 6: a field is empty or missing \(2 such rows\)"):
            run_recbole_eager(model="SASRec", dataset="eager-tiny", config_dict=config)
    else:
        run_recbole_eager(model="SASRec", dataset="eager-tiny", config_dict=config)
        assert "skipped 2 malformed rows" in caplog.text


def test_results_are_a_small_table():
    from recbole_eager.quick_start import results_table

    table = results_table({"recall@10": 0.05, "ndcg@10": 0.03}, {"recall@10": 0.04, "ndcg@10": 0.025})
    assert table.splitlines()[1:] == ["metric        valid     test", "recall@10    0.0500   0.0400", "ndcg@10      0.0300   0.0250"]


def test_semantic_only_needs_no_behavior_model(tiny_config):
    result = run_recbole_eager(model="EAGER", dataset="eager-tiny", config_dict={
        **tiny_config, "epochs": 1, "decoder_layers": 1, "use_behavior_stream": False})
    assert "ndcg@10" in result["test_result"]
    assert not [f for f in os.listdir("saved") if f.startswith("SASRec")]  # no behavior model was trained


def test_console_shows_a_summary_and_the_log_file_the_dumps(tmp_path):
    out = subprocess.run([sys.executable, "-m", "recbole_eager", "--model=SASRec", "--dataset=eager-tiny", f"--data_path={TINY_DATA}",
                          "--epochs=1", "--show_progress=False"], capture_output=True, text=True, cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    console = out.stdout + out.stderr
    assert "General Hyper Parameters" not in console and "SASRec on eager-tiny: " in console
    assert "metric        valid     test" in console and "OrderedDict" not in console
    log = next((tmp_path / "log" / "SASRec").glob("*.log")).read_text()
    assert log.count("General Hyper Parameters") == 1 and "SASRec(" in log


def test_s3rec_on_a_dataset_without_categories_says_so_before_loading(tmp_path):
    """The shared Sports file has no categories: S3-Rec's attribute objectives need one."""
    from recbole_eager.config import Config, ConfigError

    with pytest.raises(ConfigError, match=r"item_attribute='categories' is not an item field dataset 'amazon-sports-outdoors' loads \(title\)"):
        Config(model="S3Rec", dataset="amazon-sports-outdoors", config_dict={"data_path": str(tmp_path)})
    Config(model="S3Rec", dataset="yelp", config_dict={"data_path": str(tmp_path)})  # Yelp has categories
