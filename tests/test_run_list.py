"""The benchmark's run lists: one process per line, several at a time (experiments/benchmark.py --runs)."""
import json
import os

import pytest

from conftest import TINY_DATA
from recbole_eager.experiments import benchmark
from recbole_eager.utils import RecBoleEagerError

COMMON = ["--set", f"data_path={TINY_DATA}", "show_progress=False", "state=WARNING"]


def test_run_list_runs_each_line_as_its_own_tagged_run(tmp_path):
    runs = tmp_path / "runs.txt"
    runs.write_text("# two settings\nshort   epochs=1\n\nlonger  epochs=2 learning_rate=0.01\n")
    results = tmp_path / "results"
    benchmark.main(["--dataset", "eager-tiny", "--models", "SASRec", "--runs", str(runs), "--jobs", "2",
                    "--results", str(results), "--logs", str(tmp_path / "logs"), *COMMON])
    short, longer = (json.loads((results / "runs" / f"eager-tiny__SASRec-{tag}.json").read_text()) for tag in ("short", "longer"))
    assert short["epochs"] == 1 and longer["epochs"] == 2
    assert longer["overrides"] == {"data_path": str(TINY_DATA), "show_progress": False, "state": "WARNING",
                                   "epochs": 2, "learning_rate": 0.01}
    assert "--tag longer" in longer["command"] and "learning_rate=0.01" in longer["command"]
    assert "--paper_table" not in longer["command"]  # the default stays implicit (no machine paths in records)
    assert {"SASRec-short.log", "SASRec-longer.log"} <= set(os.listdir(tmp_path / "logs"))
    assert "| SASRec-longer | SASRec |" in (results / "eager-tiny.md").read_text()
    benchmark.main(["--dataset", "eager-tiny", "--models", "SASRec", "--runs", str(runs), "--tag", "gpu",
                    "--results", str(results), "--logs", str(tmp_path / "logs"), *COMMON])
    assert {"eager-tiny__SASRec-short-gpu.json", "eager-tiny__SASRec-longer-gpu.json"} <= set(os.listdir(results / "runs"))


@pytest.mark.parametrize("line, message", [("bad epochs", r"runs\.txt line 2: 'epochs' is not key=value"),
                                           ("same epochs=1", r"runs\.txt line 2: tag 'same' is used twice"),
                                           ("other state=INFO", r"runs\.txt, run 'other': --state given twice")])
def test_a_bad_run_list_stops_before_any_run(tmp_path, line, message):
    runs = tmp_path / "runs.txt"
    runs.write_text(f"same epochs=2\n{line}\n")
    with pytest.raises(RecBoleEagerError, match=message):
        benchmark.main(["--dataset", "eager-tiny", "--models", "SASRec", "--runs", str(runs), "--results", str(tmp_path / "r"), *COMMON])
    assert not (tmp_path / "r" / "runs").exists() or not os.listdir(tmp_path / "r" / "runs")


def test_runs_started_together_do_not_race_on_recboles_folders(tmp_path, monkeypatch):
    """Two runs of ``--jobs 2`` in a fresh folder both saw ``./log`` missing; RecBole's
    check-then-create ``ensure_dir`` then failed the second with FileExistsError."""
    import recbole.data.dataset.dataset
    import recbole.data.utils
    import recbole.trainer.trainer
    import recbole.utils.logger

    import recbole_eager.quick_start  # noqa: F401  (applies the fix)

    folder = tmp_path / "log"
    folder.mkdir()
    monkeypatch.setattr(os.path, "exists", lambda path: False)  # the other run created it after the check
    for module in (recbole.utils.logger, recbole.trainer.trainer, recbole.data.utils, recbole.data.dataset.dataset):
        module.ensure_dir(str(folder))
    monkeypatch.undo()
    assert folder.is_dir()
