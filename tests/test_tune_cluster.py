"""Ray Tune beyond one local process: joining a running cluster (``--address``) and
resuming an interrupted sweep. Kept out of test_hyper.py, whose module-wide local Ray
instance would be joined instead of the cluster started here."""
import csv
import glob
import os
import signal
import subprocess
import sys
import time

import pytest

from test_hyper import TINY_ARGS

from recbole_eager.config import parse_overrides
from recbole_eager.experiments import tune as rt
from recbole_eager.utils import PROJECT_ROOT


def _rows(path):
    with open(path) as f:
        return list(csv.DictReader(f))


def test_sweep_joins_a_running_two_node_cluster(in_tmp_dir):
    import ray
    from ray.cluster_utils import Cluster

    with open("heads.hyper", "w") as f:
        f.write("n_heads choice [1,2]\n")
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    cluster.add_node(num_cpus=1)
    try:
        assert not ray.is_initialized()
        sweep = rt.run_hyper("SASRec", "eager-tiny", "heads.hyper", overrides=parse_overrides(TINY_ARGS),
                             address=cluster.address, output_dir="res")
        assert not ray.is_initialized()  # the driver left; the cluster runs on
        assert len(cluster.list_all_nodes()) == 2 and all(node.remaining_processes_alive() for node in cluster.list_all_nodes())
    finally:
        cluster.shutdown()
    assert [r["status"] for r in sweep.rows] == ["ok", "ok"]
    for path in sweep.paths.values():
        if not path.endswith(".png"):
            assert str(in_tmp_dir) not in open(path).read(), f"{path} names a folder of this machine"
    assert [r["trial_dir"] for r in _rows(sweep.paths["csv"])][0].startswith(os.path.join("saved", "ray_results", "heads"))


def test_interrupted_sweep_resumes_without_rerunning_finished_trials(in_tmp_dir):
    # trial 0: 2 epochs; trial 1: up to 300 epochs in a 600 s budget, interrupted once it has
    # reported; the resume gives it a 1 s budget (fixed overrides come from the resuming command)
    with open("budget.hyper", "w") as f:
        f.write("epochs choice [2,300]\n")
    command = [sys.executable, str(PROJECT_ROOT / "run_hyper.py"), "--model=SASRec", "--dataset=eager-tiny",
               "--params_file=budget.hyper", "--name=budget", "--max_concurrent=1", "--num_cpus=1", "--output_dir=out",
               *[a for a in TINY_ARGS if not a.startswith("--epochs")], "--stopping_step=1000"]
    env = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT)}
    driver = subprocess.Popen(command + ["--train_time_budget=600"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.time() + 600
    first = second = None
    while time.time() < deadline and driver.poll() is None:
        trials = sorted(glob.glob("saved/ray_results/budget/trial_*"))
        if len(trials) == 2 and os.path.isfile(os.path.join(trials[1], "progress.csv")):
            first, second = trials
            break
        time.sleep(0.2)
    if second is None:
        driver.kill()
        pytest.fail(f"trial 1 never reported: {driver.communicate()[0][-3000:]}")
    finished = open(os.path.join(first, "progress.csv")).read()
    driver.send_signal(signal.SIGINT)  # as Ctrl-C: Ray Tune saves the experiment state and stops
    output = driver.communicate(timeout=300)[0]
    assert "interrupted" in output.lower(), output[-3000:]

    # the reports as the sweep stands, running nothing: trial 1 is unfinished
    report = subprocess.run(command + ["--report_only"], env=env, capture_output=True, text=True, timeout=300)
    assert report.returncode == 0, report.stdout[-3000:] + report.stderr[-3000:]
    rows = _rows("out/eager-tiny-SASRec-budget.csv")
    assert [r["status"] for r in rows] == ["ok", "stopped"] and rows[1]["test_ndcg@10"] == ""
    assert len(rows[1]["valid_curve"].split()) >= 1
    md = open("out/eager-tiny-SASRec-budget.md").read()
    assert "- command: `python run_hyper.py --model=SASRec" in md and "--report_only" not in md  # the sweep's own command
    assert open(os.path.join(first, "progress.csv")).read() == finished

    resumed = subprocess.run(command + ["--train_time_budget=1", "--resume"], env=env, capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    rows = _rows("out/eager-tiny-SASRec-budget.csv")
    assert [(r["epochs_trained"], r["status"]) for r in rows] == [("2", "ok"), (rows[1]["epochs_trained"], "ok")]
    assert int(rows[1]["epochs_trained"]) >= 1
    assert open(os.path.join(first, "progress.csv")).read() == finished  # trial 0 was not rerun
    assert len(glob.glob(os.path.join(first, "log", "**", "*.log"), recursive=True)) == 1


def test_resume_without_an_earlier_sweep_is_a_clear_error(in_tmp_dir):
    with open("x.hyper", "w") as f:
        f.write("n_heads choice [1,2]\n")
    with pytest.raises(rt.RecBoleEagerError, match="--resume: no sweep 'x' in saved/ray_results to resume"):
        rt.run_hyper("SASRec", "eager-tiny", "x.hyper", overrides=parse_overrides(TINY_ARGS), resume=True, num_cpus=1)
    with pytest.raises(rt.RecBoleEagerError, match="--report_only: no sweep 'x' in saved/ray_results to report"):
        rt.run_hyper("SASRec", "eager-tiny", "x.hyper", overrides=parse_overrides(TINY_ARGS), report_only=True, num_cpus=1)
    with pytest.raises(rt.RecBoleEagerError, match="give one of them"):
        rt.run_hyper("SASRec", "eager-tiny", "x.hyper", overrides=parse_overrides(TINY_ARGS), resume=True,
                     report_only=True, num_cpus=1)
