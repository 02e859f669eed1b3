"""RecBole Config that knows this plugin's models and its ``properties/`` defaults, the
``--key=value`` parser, and the checks of EAGER's keys."""
from logging import getLogger

from recbole.config import Config as RecBoleConfig

from recbole_eager.utils import PROPERTIES_DIR, RecBoleEagerError, default_data_path, get_model, is_plugin_model

PRECISIONS = ("float32", "bfloat16")


class ConfigError(RecBoleEagerError, ValueError):
    """A config value this plugin cannot run with; the message names the key and the fix."""


class Config(RecBoleConfig):
    """Layering: RecBole's defaults < ``properties/overall.yaml`` < ``properties/model/<M>.yaml``
    < ``properties/dataset/<D>.yaml`` < config files < config dict < command line.

    ``overall.yaml`` and a plugin model's YAML must exist (they hold the protocol and the
    model's defaults); RecBole's models and datasets without a YAML keep RecBole's defaults.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        check_config(self)

    def _get_model_and_dataset(self, model, dataset):
        if model is None:
            model = self.external_config_dict.get("model")
            if model is None:
                raise KeyError("model must be given (argument, config file, config dict or --model=...)")
        model_class = get_model(model) if isinstance(model, str) else model
        if dataset is None:
            dataset = self.external_config_dict.get("dataset")
            if dataset is None:
                raise KeyError("dataset must be given (argument, config file, config dict or --dataset=...)")
        return model_class.__name__, model_class, dataset

    def _load_internal_config_dict(self, model, model_class, dataset):
        super()._load_internal_config_dict(model, model_class, dataset)
        self.internal_config_dict["data_path"] = default_data_path()
        required = [PROPERTIES_DIR / "overall.yaml"] + ([PROPERTIES_DIR / "model" / f"{model}.yaml"] if is_plugin_model(model) else [])
        for path in required:
            if not path.is_file():
                raise RecBoleEagerError(f"{path} is missing: reinstall recbole-eager (its properties/ are package data)")
        for path in (PROPERTIES_DIR / "overall.yaml", PROPERTIES_DIR / "model" / f"{model}.yaml", PROPERTIES_DIR / "dataset" / f"{dataset}.yaml"):
            if path.is_file():
                config_dict = self._update_internal_config_dict(str(path))
                if path.parent.name == "dataset" and config_dict:
                    self.parameters["Dataset"] += [k for k in config_dict if k not in self.parameters["Dataset"]]


def parse_overrides(args):
    """RecBole-style ``--key=value`` arguments -> ``{key: value}`` with RecBole's own type
    conversion (``eval``; ``true``/``false``; else the string)."""
    overrides = {}
    for arg in args:
        if not arg.startswith("--") or "=" not in arg:
            raise RecBoleEagerError(f"unrecognized argument {arg!r}: config keys are given as --key=value")
        key, value = arg[2:].split("=", 1)
        if not key:
            raise RecBoleEagerError(f"unrecognized argument {arg!r}")
        if key in overrides and overrides[key] != value:
            raise RecBoleEagerError(f"--{key} given twice with different values")
        overrides[key] = value
    return RecBoleConfig._convert_config_dict(None, overrides)  # does not use self


def check_config(config):
    """Raise ConfigError for values the model cannot run with (EAGER's keys)."""
    if config["model"] != "EAGER":
        return
    streams = [s for s in ("behavior", "semantic") if config[f"use_{s}_stream"]]
    checks = [
        (config["precision"] in PRECISIONS, f"precision={config['precision']!r}: use one of {list(PRECISIONS)}"),
        (config["code_tokens"] in ("level", "node"), f"code_tokens={config['code_tokens']!r}: use 'level' or 'node'"),
        (config["gct_loss"] in ("smooth_l1", "infonce"), f"gct_loss={config['gct_loss']!r}: use 'smooth_l1' or 'infonce'"),
        (config["stt_recon_loss"] in ("contrastive", "softmax"), f"stt_recon_loss={config['stt_recon_loss']!r}: use 'contrastive' or 'softmax'"),
        (config["search_chunk_size"] >= 1, f"search_chunk_size={config['search_chunk_size']} must be at least 1"),
        (config["beam_size"] >= max(config["topk"]), f"beam_size={config['beam_size']} must be at least max(topk)={max(config['topk'])}"),
        (bool(streams), "EAGER needs at least one stream: set use_behavior_stream or use_semantic_stream"),
        (config["merge_rule"] in ("confidence", "joint", *streams),
         f"merge_rule={config['merge_rule']!r}: use 'confidence', 'joint' or an enabled stream {streams}"),
    ]
    for ok, message in checks:
        if not ok:
            raise ConfigError(message)
    if len(streams) < 2 and (config["use_stt_recon"] or config["use_stt_recog"]):
        getLogger().warning("STT needs both streams: disabled for this run")
