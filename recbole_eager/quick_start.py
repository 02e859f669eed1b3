"""Train-and-evaluate entry points, as RecBole's ``quick_start`` but for plugin models."""
import logging
import os
import sys
import time
from logging import getLogger

import torch
from recbole.data import data_preparation
from recbole.utils import init_logger, init_seed, set_color

from recbole_eager.config import Config, apply_process_settings, check_config
from recbole_eager.data import create_dataset
from recbole_eager.trainer import TrainTimeBudgetReached, with_run_mixins
from recbole_eager.utils import RecBoleEagerError, fix_recbole_ensure_dir, get_model, get_trainer, property_defaults, trusted_torch_load

fix_recbole_ensure_dir()


FILE_ONLY = {"file_only": True}  # log records for the log file, not the console


class _FileOnlyFilter(logging.Filter):
    def filter(self, record):
        return not getattr(record, "file_only", False)


def _console_skips_file_only():
    """RecBole's console handler leaves out the long dumps (config, dataset, model) that the
    log file keeps."""
    for handler in logging.getLogger().handlers:
        if type(handler) is logging.StreamHandler and not any(isinstance(f, _FileOnlyFilter) for f in handler.filters):
            handler.addFilter(_FileOnlyFilter())


def build_model(config, train_data, state_dict=None):
    """Seeded model construction. Given a checkpoint's ``state_dict``, a model that can take
    its inputs from it (EAGER's item codes) is built from those instead of ``prepare``."""
    model_class = get_model(config["model"])
    kwargs = {}
    if state_dict is not None and hasattr(model_class, "init_kwargs_from_checkpoint"):
        kwargs = model_class.init_kwargs_from_checkpoint(config, state_dict)
    elif hasattr(model_class, "prepare"):  # e.g. EAGER's item codes; may train a model, so before seeding
        model_class.prepare(config, train_data._dataset)
    init_seed(config["seed"] + config["local_rank"], config["reproducibility"])
    with trusted_torch_load():  # S3Rec finetune loads its pretrain checkpoint in __init__
        return model_class(config, train_data._dataset, **kwargs).to(config["device"])


def build_trainer(config, model):
    """The model's RecBole trainer with this plugin's run mixins (timing, time budget,
    ``exclude_history``, checkpoints of its own, resume)."""
    return with_run_mixins(get_trainer(config["MODEL_TYPE"], config["model"]))(config, model)


def _pretrain(config, train_data, logger, reuse=False):
    """First stage of a two-stage model (S3Rec); returns the saved pretrain checkpoint.
    ``reuse`` (a resumed fine-tuning): an existing pretrain checkpoint is not trained again."""
    path = os.path.join(config["checkpoint_dir"], f"{config['model']}-{config['dataset']}-{config['pretrain_epochs']}.pth")
    if not (reuse and os.path.isfile(path)):
        config["train_stage"] = "pretrain"
        config["save_step"] = config["pretrain_epochs"]
        model = build_model(config, train_data)
        trainer = get_trainer(config["MODEL_TYPE"], config["model"])(config, model)
        trainer.pretrain(train_data, show_progress=config["show_progress"])
    logger.info(set_color("pretrained model", "yellow") + f": {path}")
    config["train_stage"] = "finetune"
    config["pre_model_path"] = path
    return path


def run_recbole_eager(model=None, dataset=None, config_file_list=None, config_dict=None, saved=True, callback_fn=None):
    """Train ``model`` on ``dataset`` and evaluate it on the test split.

    ``model`` is a name (this plugin's models first, then RecBole's) or a class. Models
    with ``train_stage: pretrain_finetune`` (S3Rec here) run both stages; ``resume_from: <last_checkpoint_file>``
    continues an interrupted run after its last finished epoch, as if it had not stopped; ``train_time_budget: <seconds>`` stops fitting before the
    next epoch once that much time has passed (then the best epoch so far is tested). Returns RecBole's
    result dict plus ``stopped_by`` (early_stopping / epoch_cap / time_budget) and timing: ``epochs``, ``train_epoch_seconds``, ``valid_seconds``,
    ``test_seconds`` and ``wall_seconds``; ``valid_curve``: each validation pass's metrics.
    """
    wall_start = time.perf_counter()
    config = Config(model=model, dataset=dataset, config_file_list=config_file_list, config_dict=config_dict)
    resume = read_checkpoint(config["resume_from"], "resume_from", config["model"], config["dataset"]) if config["resume_from"] else None
    init_seed(config["seed"], config["reproducibility"])
    init_logger(config)
    logger = getLogger()
    _console_skips_file_only()
    logger.info(sys.argv, extra=FILE_ONLY)
    logger.info(config, extra=FILE_ONLY)

    dataset = create_dataset(config)
    logger.info(dataset, extra=FILE_ONLY)
    train_data, valid_data, test_data = data_preparation(config, dataset)

    two_stage = config["train_stage"] == "pretrain_finetune"
    if two_stage:
        _pretrain(config, train_data, logger, reuse=resume is not None)
    resume_state = resume["state_dict"] if resume else None  # an interrupted run: continue after its saved epoch
    model = build_model(config, train_data, state_dict=resume_state)
    logger.info(model, extra=FILE_ONLY)
    logger.info(
        f"{config['model']} on {config['dataset']}: {dataset.user_num - 1} users, {dataset.item_num - 1} items, "
        f"{sum(p.numel() for p in model.parameters() if p.requires_grad)} parameters; config, dataset and model in the log file"
    )
    trainer = build_trainer(config, model)
    if resume_state is not None:
        with trusted_torch_load():
            trainer.resume_checkpoint(config["resume_from"])
    if config["report_best_test"]:
        trainer.per_epoch_test_data = test_data
    try:
        best_valid_score, best_valid_result = trainer.fit(
            train_data, valid_data, saved=saved, show_progress=config["show_progress"], callback_fn=callback_fn
        )
        last_epoch = len(trainer.train_epoch_seconds) + (trainer.start_epoch if trainer.resumed_after_epoch is None else 0)
        stopped_by = "early_stopping" if last_epoch < config["epochs"] else "epoch_cap"
    except TrainTimeBudgetReached:
        best_valid_score, best_valid_result = trainer.best_valid_score, trainer.best_valid_result
        stopped_by = "time_budget"
        logger.warning(f"train_time_budget={config['train_time_budget']}s reached after {len(trainer.train_epoch_seconds)} epochs")
    test_start = time.perf_counter()
    with trusted_torch_load():
        test_result = trainer.evaluate(test_data, load_best_model=saved, show_progress=config["show_progress"])
    test_seconds = time.perf_counter() - test_start

    logger.info(results_table(best_valid_result or {}, test_result))
    if two_stage:
        config["train_stage"] = "pretrain_finetune"  # the returned config says what was asked, not the last stage
    return {
        "model": config["model"],
        "dataset": config["dataset"],
        "best_valid_score": best_valid_score,
        "valid_score_bigger": config["valid_metric_bigger"],
        "best_valid_result": dict(best_valid_result or {}),
        "test_result": dict(test_result),
        "epochs": len(trainer.train_epoch_seconds),
        "stopped_by": stopped_by,
        "train_epoch_seconds": trainer.train_epoch_seconds,
        "valid_seconds": trainer.valid_seconds,
        "valid_curve": trainer.valid_results,
        "test_seconds": test_seconds,
        "wall_seconds": time.perf_counter() - wall_start + trainer.earlier_fit_seconds,  # resumed: + earlier fitting
        "saved_model_file": trainer.saved_model_file if saved else None,
        "last_checkpoint_file": trainer.last_checkpoint_file if saved else None,
        **({"resumed_after_epoch": trainer.resumed_after_epoch} if trainer.resumed_after_epoch is not None else {}),
        "config": _plain_config(config),
        **(_best_test(trainer.test_curve, config) if config["report_best_test"] else {}),
    }


def results_table(valid, test):
    """The metrics as a small table: one row per metric, best-validation and test columns."""
    rows = [f"{'metric':<10} {'valid':>8} {'test':>8}"]
    rows += [f"{name:<10} {valid.get(name, float('nan')):>8.4f} {value:>8.4f}" for name, value in test.items()]
    return "results (valid: the best validation epoch; test: that epoch's model)\n" + "\n".join(rows)


def _best_test(test_curve, config):
    """The epoch a protocol that picks on the test set would keep (the authors' code), and its
    test metrics: ``best_test_epoch``, ``best_test_result``, and every epoch's (``test_curve``)."""
    if not test_curve:
        return {"best_test_epoch": None, "best_test_result": {}, "test_curve": []}
    key, bigger = config["valid_metric"].lower(), config["valid_metric_bigger"]
    best = (max if bigger else min)(test_curve, key=lambda r: r[key])
    return {"best_test_epoch": best["epoch"], "best_test_result": {k: v for k, v in best.items() if k != "epoch"},
            "test_curve": test_curve}


def _plain_config(config):
    return {k: v for k, v in config.final_config_dict.items() if isinstance(v, (str, int, float, bool, list, dict, type(None)))}


def read_checkpoint(path, key, model=None, dataset=None):
    """A checkpoint this plugin (RecBole) saved, or one clear error naming what ``path`` holds."""
    if not os.path.isfile(path):
        raise RecBoleEagerError(f"{key} {path} does not exist: give a checkpoint a run saved (<checkpoint_dir>/<Model>-....pth)")
    with trusted_torch_load():
        try:
            checkpoint = torch.load(path, map_location="cpu")
        except Exception as err:
            raise RecBoleEagerError(f"{key} {path} is not a checkpoint torch can read ({type(err).__name__})") from None
    if not isinstance(checkpoint, dict) or not {"config", "state_dict"} <= set(checkpoint):
        raise RecBoleEagerError(f"{key} {path} is not a RecBole checkpoint (it has no config and state_dict)")
    held = (checkpoint["config"]["model"], checkpoint["config"]["dataset"])
    if model is not None and held != (model, dataset):
        raise RecBoleEagerError(f"{key} {path} holds {held[0]} on {held[1]}, not {model} on {dataset}")
    return checkpoint


def add_new_defaults(config):
    """Keys added to the plugin's YAMLs for the checkpoint's model and dataset after it was saved get their defaults."""
    for key, value in property_defaults(config["model"], config["dataset"]).items():
        if key not in config:
            config[key] = value


def load_data_and_model(model_file, config_overrides=None):
    """Rebuild config, data and trained model from a checkpoint this plugin saved (EAGER's
    item codes come from the checkpoint: no cache or behavior model is needed).

    ``config_overrides`` replace the checkpoint's config values before the model is built:
    meant for inference settings (``merge_rule``, ``beam_size``), not the architecture."""
    checkpoint = read_checkpoint(model_file, "model_file")
    config = checkpoint["config"]
    config.compatibility_settings()  # numpy aliases RecBole's metrics use; an unpickled Config skips its __init__
    add_new_defaults(config)
    for key, value in (config_overrides or {}).items():
        config[key] = value
    check_config(config)
    apply_process_settings(config)
    init_seed(config["seed"], config["reproducibility"])
    init_logger(config)
    dataset = create_dataset(config)
    train_data, valid_data, test_data = data_preparation(config, dataset)
    model = build_model(config, train_data, state_dict=checkpoint["state_dict"])
    model.load_state_dict(checkpoint["state_dict"])
    model.load_other_parameter(checkpoint.get("other_parameter"))
    return config, model, dataset, train_data, valid_data, test_data


def evaluate_checkpoint(model_file, config_overrides=None):
    """Validation and test metrics of a saved model without training, e.g. under another
    inference setting (``{"merge_rule": "joint"}``). Returns ``run_recbole_eager``'s keys
    with ``epochs`` 0 and ``stopped_by`` ``"evaluated_checkpoint"``."""
    wall_start = time.perf_counter()
    config, model, _, _, valid_data, test_data = load_data_and_model(model_file, config_overrides)
    trainer = build_trainer(config, model)
    results, seconds = [], []
    for data in (valid_data, test_data):
        start = time.perf_counter()
        results.append(dict(trainer.evaluate(data, load_best_model=False, show_progress=config["show_progress"])))
        seconds.append(time.perf_counter() - start)
    return {
        "model": config["model"],
        "dataset": config["dataset"],
        "best_valid_score": results[0][config["valid_metric"].lower()],
        "valid_score_bigger": config["valid_metric_bigger"],
        "best_valid_result": results[0],
        "test_result": results[1],
        "epochs": 0,
        "stopped_by": "evaluated_checkpoint",
        "train_epoch_seconds": [],
        "valid_seconds": seconds[:1],
        "valid_curve": results[:1],
        "test_seconds": seconds[1],
        "wall_seconds": time.perf_counter() - wall_start,
        "saved_model_file": model_file,
        "config": _plain_config(config),
    }
