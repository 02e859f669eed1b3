import shutil
import sys
from pathlib import Path

import pytest
import torch

PROJECT_ROOT = Path(__file__).resolve().parents[1]
TINY_DATA = PROJECT_ROOT / "dataset"
SHARED_DATA = PROJECT_ROOT.parent / "shared" / "datasets"
sys.path.insert(0, str(PROJECT_ROOT))
# Test tensors are tiny: one thread avoids oversubscription stalls on a busy 2-core box.
torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def in_tmp_dir(tmp_path, monkeypatch):
    """RecBole writes log/, saved/ into the working directory: keep them in a temp dir,
    and keep pytest's own arguments out of RecBole's command-line parsing."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", [sys.argv[0]])
    monkeypatch.delenv("RECBOLE_EAGER_DATA", raising=False)
    yield tmp_path


@pytest.fixture
def tiny_config():
    """Config dict for fast runs on dataset/eager-tiny."""
    return {
        "data_path": str(TINY_DATA),
        "epochs": 2,
        "show_progress": False,
        "train_batch_size": 256,
        "eval_batch_size": 256,
        "state": "WARNING",
    }


@pytest.fixture
def tiny_copy(tmp_path):
    """A writable copy of eager-tiny (for tests that alter files)."""
    dst = tmp_path / "data"
    shutil.copytree(TINY_DATA / "eager-tiny", dst / "eager-tiny")
    return dst
