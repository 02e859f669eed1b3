"""Model/trainer lookup with fallback to RecBole, paths, and checkpoint loading."""
import contextlib
import difflib
import functools
import importlib
import os
import tempfile
from pathlib import Path

import torch
import yaml
from recbole.utils import get_model as recbole_get_model
from recbole.utils import get_trainer as recbole_get_trainer

PACKAGE_DIR = Path(__file__).resolve().parent
PROPERTIES_DIR = PACKAGE_DIR / "properties"
PROJECT_ROOT = PACKAGE_DIR.parent  # the checkout, when the package runs from one
DATA_ENV_VAR = "RECBOLE_EAGER_DATA"


class RecBoleEagerError(Exception):
    """A user-facing error: the message says what is wrong and how to fix it."""


def default_data_path():
    """Folder holding one sub-folder per dataset: ``$RECBOLE_EAGER_DATA``, else the checkout's
    ``dataset/`` (source installs), else ``dataset/`` in the working directory."""
    checkout = PROJECT_ROOT / "dataset"
    return os.environ.get(DATA_ENV_VAR) or str(checkout if (checkout / "make_tiny.py").is_file() else Path("dataset").resolve())


# The plugin's models: name -> module in recbole_eager.model
PLUGIN_MODELS = {"EAGER": "recbole_eager.model.eager", "TIGER": "recbole_eager.model.tiger", "Markov": "recbole_eager.model.markov"}


def is_plugin_model(model_name):
    return model_name in PLUGIN_MODELS


def recbole_model_names():
    """Names of RecBole 1.2's models (its model packages' public classes)."""
    names = set()
    for kind in ("general", "sequential", "context_aware", "knowledge_aware"):
        module = importlib.import_module(f"recbole.model.{kind}_recommender")
        names |= {n for n in dir(module) if n[:1].isupper()}
    return sorted(names)


def get_model(model_name):
    """Model class by name: this plugin's models first, then RecBole's; a name in other case
    (``sasrec``) is taken as the model it names."""
    anomaly_detection = torch.is_anomaly_enabled()
    try:
        names = list(PLUGIN_MODELS) + recbole_model_names()
        canonical = {n.lower(): n for n in names}.get(model_name.lower())
        if canonical in PLUGIN_MODELS:
            return getattr(importlib.import_module(PLUGIN_MODELS[canonical]), canonical)
        if canonical is None:
            close = difflib.get_close_matches(model_name, names, n=3, cutoff=0.6)
            hint = f" Did you mean {', '.join(close)}?" if close else ""
            raise RecBoleEagerError(
                f"unknown model '{model_name}'.{hint} Known here: {', '.join(known_models())}; "
                "or any model of RecBole 1.2 (https://recbole.io/model_list.html)."
            )
        return recbole_get_model(canonical)
    finally:
        # Importing RecBole 1.2.1's sequential models runs sine.py's module-level
        # torch.autograd.set_detect_anomaly(True) for the whole process: ~2x slower backward.
        torch.autograd.set_detect_anomaly(anomaly_detection)


def known_models():
    """Models with a YAML in ``properties/model`` (EAGER and the paper's baselines)."""
    return sorted(p.stem for p in (PROPERTIES_DIR / "model").glob("*.yaml"))


def property_yamls(model, dataset=None, model_only=False):
    """The plugin's YAMLs for ``model`` (a name or class) that exist, in load order: ``overall.yaml``
    < its ``CONFIG_BASES``' (TIGER: EAGER's) < ``model/<model>.yaml`` < ``dataset/<dataset>.yaml``;
    ``model_only``: the model's alone."""
    model_class = get_model(model) if isinstance(model, str) else model
    names = [*getattr(model_class, "CONFIG_BASES", ()), model_class.__name__]
    paths = ([] if model_only else [PROPERTIES_DIR / "overall.yaml"]) + [PROPERTIES_DIR / "model" / f"{n}.yaml" for n in names]
    paths += [PROPERTIES_DIR / "dataset" / f"{dataset}.yaml"] if dataset else []
    return [p for p in paths if p.is_file()]


def property_defaults(model, dataset=None, model_only=False):
    """``property_yamls`` merged, a later file's value winning."""
    defaults = {}
    for path in property_yamls(model, dataset, model_only):
        defaults.update(yaml.safe_load(path.read_text()) or {})
    return defaults


def get_trainer(model_type, model_name):
    """Trainer class: ``recbole_eager.trainer.<Model>Trainer`` if defined, else RecBole's."""
    trainer_module = importlib.import_module("recbole_eager.trainer")
    if hasattr(trainer_module, model_name + "Trainer"):
        return getattr(trainer_module, model_name + "Trainer")
    return recbole_get_trainer(model_type, model_name)


def _ensure_dir(dir_path):
    os.makedirs(dir_path, exist_ok=True)


def fix_recbole_ensure_dir():
    """RecBole's ``ensure_dir`` checks, then creates: two runs started at once in one folder
    (``benchmark --jobs 2``) both see ``./log`` missing and the second fails with
    FileExistsError. Its callers get an ``exist_ok`` version."""
    from recbole.data import utils as data_utils
    from recbole.data.dataset import dataset
    from recbole.trainer import trainer
    from recbole.utils import logger

    for module in (logger, trainer, data_utils, dataset):
        module.ensure_dir = _ensure_dir


@contextlib.contextmanager
def trusted_torch_load():
    """Let RecBole load its own checkpoints under torch>=2.6.

    RecBole's checkpoints pickle the Config object, which ``weights_only=True`` (the
    torch>=2.6 default) refuses. Inside this block ``torch.load`` defaults to
    ``weights_only=False``; use it only around files this project wrote.
    """
    original = torch.load

    @functools.wraps(original)
    def load(*args, **kwargs):
        kwargs.setdefault("weights_only", False)
        return original(*args, **kwargs)

    torch.load = load
    try:
        yield
    finally:
        torch.load = original


def atomic_write(path, data):
    """Write ``data`` (str or bytes) to ``path`` via a temp file in the same folder and
    ``os.replace``: readers never see a half-written file. Mode as ``open`` would give."""
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix="." + os.path.basename(path) + ".", suffix=".tmp")
    umask = os.umask(0)
    os.umask(umask)
    try:
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; a written file gets the usual mode
        with os.fdopen(fd, "wb") as f:
            f.write(data.encode("utf-8") if isinstance(data, str) else data)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
