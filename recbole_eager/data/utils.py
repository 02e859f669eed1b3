"""``create_dataset`` with clear errors for missing, unknown or undownloadable datasets."""
import os
import shutil
from logging import getLogger
from urllib.error import URLError

import yaml
from recbole.data import create_dataset as recbole_create_dataset
from recbole.utils import ModelType

import recbole
from recbole_eager.data.dataset import PluginSequentialDataset
from recbole_eager.utils import DATA_ENV_VAR, RecBoleEagerError

_RECBOLE_URLS = os.path.join(os.path.dirname(recbole.__file__), "properties", "dataset", "url.yaml")


def recbole_download_names():
    with open(_RECBOLE_URLS) as f:
        return set(yaml.safe_load(f))


def _how_to_fix(name, root):
    return (
        f"put the atomic files ({name}.inter, {name}.item) in {os.path.join(root, name)}, "
        f"or point --data_path=... (or ${DATA_ENV_VAR}) at the folder that holds '{name}/'"
    )


def check_dataset_files(config):
    """Raise RecBoleEagerError unless ``config['data_path']`` holds ``<dataset>.inter``."""
    name, path = config["dataset"], config["data_path"]
    root = os.path.dirname(os.path.normpath(path))
    if os.path.isdir(path):
        inter = os.path.join(path, f"{name}.inter")
        if not os.path.isfile(inter):
            raise RecBoleEagerError(f"dataset folder {path} has no {name}.inter: {_how_to_fix(name, root)}")
        return True
    if name not in recbole_download_names():
        available = sorted(d for d in os.listdir(root) if os.path.isdir(os.path.join(root, d))) if os.path.isdir(root) else []
        raise RecBoleEagerError(
            f"dataset '{name}' not found at {path} and it is not a RecBole download name; "
            f"datasets under {root}: {available or 'none'}; {_how_to_fix(name, root)}"
        )
    return False


def _dataset_class(config):
    """Ours for sequential models without a dataset class of their own in RecBole, else None."""
    import recbole.data.dataset as recbole_datasets

    if config["MODEL_TYPE"] != ModelType.SEQUENTIAL or hasattr(recbole_datasets, config["model"] + "Dataset"):
        return None
    if config["sequence_order"] == "item":
        getLogger().warning(
            "sequence_order=item: each user's sequence is ordered by item token, as in the EAGER authors' code. "
            "This reproduces their setup; it is not a valid evaluation (the test item is not the last one in time)."
        )
    return PluginSequentialDataset


def _build(config):
    dataset_class = _dataset_class(config)
    if dataset_class is None and config["sequence_order"] == "item":
        raise RecBoleEagerError("sequence_order=item needs a sequential model")
    return dataset_class(config) if dataset_class else recbole_create_dataset(config)


def create_dataset(config):
    """RecBole's ``create_dataset``; a dataset absent locally is downloaded by RecBole,
    and a failed download becomes one clear error (the partial folder is removed).
    Sequential models get ``PluginSequentialDataset`` (row checks, row or item order)."""
    if config["sequence_order"] not in (None, "time", "item"):
        raise RecBoleEagerError(f"sequence_order={config['sequence_order']!r}: use 'time' or 'item'")
    if check_dataset_files(config):
        return _build(config)
    path = config["data_path"]
    try:
        return _build(config)
    except (URLError, OSError, EOFError, SystemExit) as err:
        reason = getattr(err, "reason", None) or err
        if os.path.isdir(path) and not os.path.isfile(os.path.join(path, f"{config['dataset']}.inter")):
            shutil.rmtree(path)
        raise RecBoleEagerError(
            f"could not download dataset '{config['dataset']}' to {path} ({reason}); "
            f"{_how_to_fix(config['dataset'], os.path.dirname(os.path.normpath(path)))}"
        ) from None
