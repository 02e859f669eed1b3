"""Behavior item embeddings E^b: the item table of an ID-based model trained on the same split."""
import os
import sys
import time
from logging import getLogger
from unittest import mock

import torch

from recbole_eager.utils import RecBoleEagerError, trusted_torch_load

# Keys of the caller's config that define the data and its split (MAX_ITEM_LIST_LENGTH
# stays the behavior model's own).
CARRIED_KEYS = ("eval_args", "sequence_order", "seed", "reproducibility", "checkpoint_dir", "use_gpu", "gpu_id", "show_progress", "state")


def behavior_config_dict(config):
    """Config dict that trains ``behavior_model`` on the caller's data, filters and split."""
    config_dict = {k: config[k] for k in config.parameters["Dataset"] if config[k] is not None and k != "MAX_ITEM_LIST_LENGTH"}
    config_dict.update({k: config[k] for k in CARRIED_KEYS if config[k] is not None})
    config_dict.update(
        data_path=os.path.dirname(os.path.normpath(config["data_path"])),
        epochs=config["behavior_epochs"],
    )
    return config_dict


def train_behavior_model(config):
    """Train ``behavior_model`` for ``behavior_epochs``; returns its best checkpoint file."""
    from recbole_eager.quick_start import run_recbole_eager  # late: quick_start imports the models

    logger = getLogger()
    logger.info(f"training behavior model {config['behavior_model']} for up to {config['behavior_epochs']} epochs")
    with mock.patch.object(sys, "argv", sys.argv[:1]):  # the caller's command line is not for this model
        result = run_recbole_eager(model=config["behavior_model"], dataset=config["dataset"], config_dict=behavior_config_dict(config))
    logger.info(
        f"behavior model {result['model']}: {result['epochs']} epochs, best valid {result['best_valid_result']}"
    )
    return result["saved_model_file"]


def checkpoint_facts(path):
    """How a behavior checkpoint was trained, for run records: ``{model, epoch_cap, best_epoch,
    sequence_order, best_valid_score}`` (``best_epoch`` counts from 1)."""
    with trusted_torch_load():
        checkpoint = torch.load(path, map_location="cpu")
    saved = checkpoint["config"]
    return {
        "model": saved["model"],
        "epoch_cap": saved["epochs"],
        "best_epoch": int(checkpoint["epoch"]) + 1,
        "sequence_order": saved["sequence_order"] or "time",
        "best_valid_score": round(float(checkpoint["best_valid_score"]), 4),
    }


def behavior_embeddings(config, dataset):
    """Item table [item_num, d] (row 0 zeros) from ``behavior_checkpoint`` or a model trained here."""
    logger = getLogger()
    start = time.perf_counter()
    path = config["behavior_checkpoint"] or train_behavior_model(config)
    if not os.path.isfile(path):
        raise RecBoleEagerError(f"behavior_checkpoint {path} does not exist")
    with trusted_torch_load():
        checkpoint = torch.load(path, map_location="cpu")
    state = checkpoint.get("state_dict", {}) if isinstance(checkpoint, dict) else {}
    if "item_embedding.weight" not in state:
        raise RecBoleEagerError(f"behavior checkpoint {path} is not a RecBole checkpoint with an item_embedding table")
    table = state["item_embedding.weight"].detach().float().clone()
    if len(table) != dataset.item_num:
        raise RecBoleEagerError(
            f"behavior checkpoint {path} has {len(table)} item rows but dataset '{config['dataset']}' has "
            f"{dataset.item_num} (padding included): train it on the same dataset and filters"
        )
    table[0] = 0
    saved_config = checkpoint.get("config")
    if saved_config is not None and saved_config["dataset"] != config["dataset"]:
        logger.warning(f"behavior checkpoint {path} was trained on '{saved_config['dataset']}', not '{config['dataset']}'")
    stats = {
        "trained_here": not config["behavior_checkpoint"],
        "checkpoint": os.path.abspath(path),
        "model": saved_config["model"] if saved_config is not None else None,
        "valid_metric": saved_config["valid_metric"] if saved_config is not None else None,
        "best_valid_score": float(checkpoint.get("best_valid_score", float("nan"))),
        "epoch": int(checkpoint.get("epoch", -1)),
        "embed_seconds": time.perf_counter() - start,
    }
    logger.info(
        f"behavior embeddings from {stats['model']} ({path}): best valid {stats['valid_metric']} = "
        f"{stats['best_valid_score']:.4f} at epoch {stats['epoch']}"
    )
    return table.numpy(), stats
