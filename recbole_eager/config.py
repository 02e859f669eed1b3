"""RecBole Config that knows this plugin's models and its ``properties/`` defaults, the
``--key=value`` parser, and the checks of EAGER's keys."""
import difflib
import os
import sys
from logging import getLogger

import recbole
import torch
from recbole.config import Config as RecBoleConfig
from recbole.utils import InputType

from recbole_eager.codes.embedding_file import check_embedding_file
from recbole_eager.data.dataset import ROW_ORDER_FIELD, infer_fields
from recbole_eager.utils import PROPERTIES_DIR, RecBoleEagerError, default_data_path, get_model, is_plugin_model, property_yamls

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
        check_keys(self)
        check_config(self)
        apply_process_settings(self)

    def _load_cmd_line(self):
        """RecBole's, but an argument that is not ``--key=value`` is an error, not a warning."""
        bad = [arg for arg in sys.argv[1:] if not arg.startswith("--") or "=" not in arg]
        if bad and "ipykernel_launcher" not in sys.argv[0]:
            raise ConfigError(f"unrecognized argument {bad[0]!r}: config keys are given as --key=value (e.g. --epochs=2)")
        return super()._load_cmd_line()

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
        for path in property_yamls(model_class, dataset):
            config_dict = self._update_internal_config_dict(str(path))
            if path.parent.name == "dataset" and config_dict:
                self.parameters["Dataset"] += [k for k in config_dict if k not in self.parameters["Dataset"]]
        recbole_yaml = os.path.join(os.path.dirname(recbole.__file__), "properties", "dataset", f"{dataset}.yaml")
        if not (PROPERTIES_DIR / "dataset" / f"{dataset}.yaml").is_file() and not os.path.isfile(recbole_yaml):
            self._infer_dataset_fields(dataset)

    def _infer_dataset_fields(self, dataset):
        """A dataset without a YAML: its id, time and text fields from the atomic files' headers
        (keys the user sets win), logged in one line."""
        folder = os.path.join(self.external_config_dict.get("data_path") or default_data_path(), dataset)
        inferred = infer_fields(folder, dataset)
        if inferred is None:
            return
        inferred = {k: v for k, v in inferred.items() if k not in self.external_config_dict}
        self.internal_config_dict.update(inferred)
        self.parameters["Dataset"] += [k for k in inferred if k not in self.parameters["Dataset"]]
        time = inferred.get("TIME_FIELD")
        getLogger().warning(  # before the log file exists: shown on the console
            f"dataset '{dataset}' has no YAML: inferred from {folder}: "
            + ", ".join(f"{k}={v}" for k, v in inferred.items() if k != "TIME_FIELD")
            + (", no time field: each user's rows in file order" if time == ROW_ORDER_FIELD else f", TIME_FIELD={time}")
        )


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


# Keys without a default in RecBole's or this plugin's YAMLs that are still meaningful.
KEYS_WITHOUT_DEFAULT = {"model", "dataset", "config_files", "resume_from", "pre_model_path", "train_stage", "save_step"}
RANGES = {  # key: (lowest, highest, what it is)
    "lambda1": (0, None, "a loss weight"), "lambda2": (0, None, "a loss weight"),
    "dropout_prob": (0, 1, "a probability"), "stt_mask_ratio": (0, 1, "a ratio"), "stt_replace_ratio": (0, 1, "a ratio"),
    "epochs": (1, None, "a number of epochs"), "learning_rate": (0, None, "a learning rate"),
    "train_batch_size": (1, None, "a batch size"), "eval_batch_size": (1, None, "a batch size"),
}


def apply_process_settings(config):
    """Process-wide settings of a config (as RecBole's device setup), also for one unpickled
    from a checkpoint. Denormal floats (weights decayed towards 0) are slow on x86 CPUs:
    unflushed, Caser on Sports trained 3x and validated 9x slower."""
    torch.set_flush_denormal(bool(config["flush_denormal"]))


def check_keys(config):
    """Every given key is known (or not close to a known one), of its default's type, in range."""
    known = {**config.internal_config_dict, **(config.file_config_dict or {})}  # a user's config files may serve several models
    for key, value in config.external_config_dict.items():
        if key not in known and key not in KEYS_WITHOUT_DEFAULT:
            close = difflib.get_close_matches(key, list(known) + sorted(KEYS_WITHOUT_DEFAULT), n=1, cutoff=0.8)
            if close:
                raise ConfigError(f"unknown config key '{key}': did you mean '{close[0]}'?")
            getLogger().warning(f"config key '{key}' is not a key of RecBole or recbole-eager; passed on as given")
            continue
        if key in (config.file_config_dict or {}) and key not in config.internal_config_dict:
            continue
        default = known.get(key)
        if isinstance(default, bool) and not isinstance(value, bool):
            raise ConfigError(f"{key}={value!r}: True or False expected")
        if isinstance(default, (int, float)) and not isinstance(default, bool) and not isinstance(value, (int, float)) and value is not None:
            raise ConfigError(f"{key}={value!r}: a number expected (default {default})")
    for key, (low, high, what) in RANGES.items():
        value = config[key]
        if isinstance(value, (int, float)) and not ((low is None or value >= low) and (high is None or value <= high)):
            bounds = f"at least {low}" if high is None else f"in [{low}, {high}]"
            raise ConfigError(f"{key}={value}: {what} must be {bounds}")


def check_config(config):
    """Raise ConfigError for values the model cannot run with under this protocol."""
    sampling = (config["train_neg_sample_args"] or {}).get("distribution") not in (None, "none")
    if config["MODEL_INPUT_TYPE"] == InputType.PAIRWISE and not sampling:
        raise ConfigError(
            f"{config['model']} is a pairwise model: it needs negative sampling, which this protocol turns off "
            "(every model here trains with cross-entropy). Add --train_neg_sample_args=\"{'distribution': 'uniform', "
            "'sample_num': 1}\" --loss_type=BPR to run it."
        )
    item_fields = (config["load_col"] or {}).get("item") or []  # empty: RecBole loads every field
    every_loaded = [f for fields in (config["load_col"] or {}).values() for f in fields]
    if not isinstance(config["token_seq_min_count"], int) or config["token_seq_min_count"] < 1:
        raise ConfigError(f"token_seq_min_count: {config['token_seq_min_count']!r} is not a whole number of rows >= 1; "
                          "set it to 1 to keep every word")
    for field in config["token_seq_fields"] or []:
        if config["load_col"] and field not in every_loaded:
            raise ConfigError(f"token_seq_fields: {field!r} is not a field dataset '{config['dataset']}' loads "
                              f"({', '.join(every_loaded)}); name a loaded token field, or add it to load_col")
    if config["model"] == "S3Rec" and item_fields and config["item_attribute"] not in item_fields:
        loaded = ", ".join(f for f in item_fields if f != config["ITEM_ID_FIELD"])
        raise ConfigError(
            f"S3Rec: item_attribute={config['item_attribute']!r} is not an item field dataset '{config['dataset']}' loads ({loaded}); "
            "S3-Rec's attribute objectives need a token_seq field of the .item file: set --item_attribute (a token field split into "
            "words by --token_seq_fields=\"['title']\" also works), or add one to the file"
        )
    if config["model"] not in ("EAGER", "TIGER"):
        return
    streams = [s for s in ("behavior", "semantic") if config[f"use_{s}_stream"]]
    checks = [
        (config["model"] != "TIGER" or (streams == ["semantic"] and not config["use_gct"] and not config["use_stt_recon"] and not config["use_stt_recog"]),
         "TIGER generates the semantic code alone (no behavior stream, GCT or STT): for more, run EAGER"),
        (config["code_method"] in ("kmeans", "rqvae"), f"code_method={config['code_method']!r}: use 'kmeans' or 'rqvae'"),
        (config["precision"] in PRECISIONS, f"precision={config['precision']!r}: use one of {list(PRECISIONS)}"),
        (config["code_tokens"] in ("level", "node"), f"code_tokens={config['code_tokens']!r}: use 'level' or 'node'"),
        (config["gct_loss"] in ("smooth_l1", "infonce"), f"gct_loss={config['gct_loss']!r}: use 'smooth_l1' or 'infonce'"),
        (config["stt_recon_loss"] in ("contrastive", "softmax"), f"stt_recon_loss={config['stt_recon_loss']!r}: use 'contrastive' or 'softmax'"),
        (config["stt_mask"] in ("exact", "bernoulli"), f"stt_mask={config['stt_mask']!r}: use 'exact' or 'bernoulli'"),
        (config["stt_recog_negatives"] in ("prefix_partner", "random_tokens"),
         f"stt_recog_negatives={config['stt_recog_negatives']!r}: use 'prefix_partner' or 'random_tokens'"),
        (config["search_chunk_size"] >= 1, f"search_chunk_size={config['search_chunk_size']} must be at least 1"),
        (config["beam_size"] >= max(config["topk"]), f"beam_size={config['beam_size']} must be at least max(topk)={max(config['topk'])}"),
        (bool(streams), "EAGER needs at least one stream: set use_behavior_stream or use_semantic_stream"),
        (config["merge_rule"] in ("confidence", "joint", *streams),
         f"merge_rule={config['merge_rule']!r}: use 'confidence', 'joint' or an enabled stream {streams}"),
    ]
    for ok, message in checks:
        if not ok:
            raise ConfigError(message)
    for stream in streams:
        if config[f"{stream}_embedding_file"]:
            try:
                check_embedding_file(f"{stream}_embedding_file", config[f"{stream}_embedding_file"])
            except RecBoleEagerError as err:
                raise ConfigError(str(err)) from None
    if config["behavior_embedding_file"] and config["behavior_checkpoint"]:
        raise ConfigError("behavior_checkpoint and behavior_embedding_file both set: give one source of behavior embeddings")
    if len(streams) < 2 and (config["use_stt_recon"] or config["use_stt_recog"]):
        getLogger().warning("STT needs both streams: disabled for this run")
