"""A non-editable install (a built wheel) runs with the paper's protocol from an empty folder:
properties/ are package data, not files of the checkout."""
import glob
import os
import shutil
import subprocess
import sys
import sysconfig

from conftest import PROJECT_ROOT, TINY_DATA


def run(*args, **kwargs):
    out = subprocess.run(args, capture_output=True, text=True, **kwargs)
    assert out.returncode == 0, (out.stdout + out.stderr)[-3000:]
    return out.stdout


def test_wheel_install_runs_the_papers_protocol_from_an_empty_folder(tmp_path):
    source = tmp_path / "source"  # a copy: no stale build/ of the checkout goes into the wheel
    shutil.copytree(PROJECT_ROOT, source, ignore=shutil.ignore_patterns(".*", "build", "*.egg-info", "saved", "log", "results", "tests"))
    run(sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(tmp_path / "wheel"), str(source))
    (wheel,) = glob.glob(str(tmp_path / "wheel" / "recbole_eager-*.whl"))
    # A fresh environment whose only recbole_eager is the wheel's; the other packages are this
    # environment's (a plain path entry: its .pth files, the editable install's among them, stay off).
    run(sys.executable, "-m", "venv", "--without-pip", str(tmp_path / "venv"))
    python = str(tmp_path / "venv" / "bin" / "python")
    site = run(python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])").strip()
    (tmp_path / "venv-site.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    shutil.move(str(tmp_path / "venv-site.pth"), os.path.join(site, "parent-site.pth"))
    run(sys.executable, "-m", "pip", "install", "--no-deps", "--no-index", "-q", "--target", site, wheel)

    work = tmp_path / "empty"
    work.mkdir()
    shutil.copy(PROJECT_ROOT / "run_recbole_eager.py", work)
    where = run(python, "-c", "import recbole_eager; print(recbole_eager.__file__)", cwd=work)
    assert where.startswith(site), where
    run(python, "run_recbole_eager.py", "--model=SASRec", "--dataset=eager-tiny", "--epochs=1", f"--data_path={TINY_DATA}",
        "--show_progress=False", cwd=work)
    (log,) = glob.glob(str(work / "log" / "SASRec" / "*.log"))
    text = open(log).read()
    assert "eval_args = {'split': {'LS': 'valid_and_test'}" in text
    assert "MAX_ITEM_LIST_LENGTH = 20" in text and "valid_metric = NDCG@10" in text


def test_device_scripts_parse():
    """The device scripts run only on a lent GPU machine; here bash at least parses them."""
    scripts = sorted((PROJECT_ROOT / "scripts").glob("*.sh"))
    assert {"device_env.sh", "device_runs.sh", "device_beauty.sh"} <= {s.name for s in scripts}
    for script in scripts:
        result = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True)
        assert result.returncode == 0, f"{script.name}: {result.stderr}"
