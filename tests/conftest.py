import shutil
import sys
from types import SimpleNamespace
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


K = 5  # tokens per level; END = K


def synthetic_codes(n_items):
    """Base-5 digits of item-1 (depth 3); two short codes padded with END; row 0 all END."""
    codes = torch.full((n_items, 3), K, dtype=torch.long)
    for item in range(1, n_items):
        value = item - 1
        codes[item] = torch.tensor([value // 25, value // 5 % 5, value % 5])
    codes[n_items - 1] = torch.tensor([4, K, K])
    codes[n_items - 2] = torch.tensor([3, 0, K])
    return codes


@pytest.fixture
def fake_codes(monkeypatch):
    def load(config, dataset):
        n = dataset.item_num
        generator = torch.Generator().manual_seed(0)
        streams = {}
        for name, dim, shift in (("behavior", 16, 0), ("semantic", 24, 7)):
            codes = synthetic_codes(n)
            codes[1:-2] = codes[1:-2].roll(shift, dims=0)  # the two streams disagree
            embeddings = torch.randn(n, dim, generator=generator)
            embeddings[0] = 0
            streams[name] = SimpleNamespace(codes=codes, embeddings=embeddings)
        return {**streams, "path": None}

    from recbole_eager.model import eager as eager_module

    monkeypatch.setattr(eager_module, "load_or_build_item_codes", load)
