"""Hyper-parameter sweeps with Ray Tune (EAGER's λ1/λ2 or any config key).

One trial = one ``run_recbole_eager`` run in a Ray worker. Each validation reports
``valid_score`` (this epoch) and ``best_valid_score`` (best so far) to Ray; the last report
adds the best-validation metrics and the test metrics. The best trial is chosen on
``best_valid_score`` (the config's ``valid_metric``, direction ``valid_metric_bigger``)
over all trials that did not fail; test metrics are only reported, never used to select.

Outputs (``output_dir``/``<dataset>-<model>-<name>``): ``.md`` and ``.csv`` (one row per
trial), ``.png`` (validation metric over the varied parameters) and ``-best.yaml`` (the
best trial's parameters, usable with ``--config_files``). Ray's own files go to
``<storage_path>/<name>`` (default ``saved/ray_results`` in the working directory).
"""
import ast
import math
import os
import sys
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

import yaml

from recbole_eager.experiments.tune_report import STATUS_FAILED, STATUS_OK, STATUS_STOPPED, to_python, write_reports
from recbole_eager.experiments.records import git_commit, hardware, portable_path
from recbole_eager.utils import PACKAGE_DIR, PROJECT_ROOT, RecBoleEagerError

PARAM_TYPES = ("choice", "uniform", "loguniform", "quniform")
# keys that name files the trials read: made absolute in the driver (trials run in their own dirs)
PATH_KEYS = ("behavior_checkpoint", "behavior_embedding_file", "semantic_embedding_file", "semantic_model", "pre_model_path")


# --------------------------------------------------------------------------- search space
@dataclass
class HyperParam:
    """One line of a RecBole hyper-parameter file."""

    name: str
    kind: str  # choice | uniform | loguniform | quniform
    values: List[Any] = field(default_factory=list)  # choice
    low: float = 0.0
    high: float = 0.0
    q: float = 1.0
    integer: bool = False  # quniform with integer bounds and step -> ints

    @property
    def varied(self):
        return self.kind != "choice" or len({repr(v) for v in self.values}) > 1

    def domain(self, algo="grid"):
        """The ray.tune search-space object. ``loguniform`` bounds are natural logs, as in
        RecBole (hyperopt): ``lr loguniform -8,0`` samples in [e^-8, e^0]."""
        from ray import tune

        if self.kind == "choice":
            return tune.grid_search(list(self.values)) if algo == "grid" else tune.choice(list(self.values))
        if self.kind == "uniform":
            return tune.uniform(self.low, self.high)
        if self.kind == "loguniform":
            return tune.loguniform(math.exp(self.low), math.exp(self.high))
        if self.integer:
            return tune.qrandint(int(self.low), int(self.high), int(self.q))
        return tune.quniform(self.low, self.high, self.q)

    def describe(self):
        if self.kind == "choice":
            return f"{self.name} choice {self.values}"
        if self.kind == "quniform":
            return f"{self.name} quniform {self.low:g},{self.high:g},{self.q:g}"
        return f"{self.name} {self.kind} {self.low:g},{self.high:g}"


def _parse_list(text):
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError):
        try:
            value = yaml.safe_load(text)  # bare words: [SASRec,GRU4Rec]
        except yaml.YAMLError:
            raise ValueError(f"choice needs a list like [0,0.5,1], got {text!r}") from None
    if not isinstance(value, (list, tuple)) or not value:
        raise ValueError(f"choice needs a non-empty list like [0,0.5,1], got {text!r}")
    return list(value)


def _is_int_literal(text):
    try:
        int(text)
        return True
    except ValueError:
        return False


def parse_params_text(text, source="<params>"):
    """Parse RecBole's hyper-parameter format, one ``name type value`` per line::

        lambda1 choice [0,0.5,1,2]
        learning_rate loguniform -8,0      # natural-log bounds, as RecBole/hyperopt
        dropout_prob uniform 0.1,0.5
        n_layers quniform 1,4,1            # integer bounds and step -> ints

    Blank lines and ``#`` comments are skipped. Returns ``[HyperParam]`` in file order.
    """
    params, seen = [], set()
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        parts = line.split()
        where = f"{source}:{lineno}"
        if len(parts) < 3:
            raise RecBoleEagerError(f"{where}: expected 'name type value', got {raw.strip()!r}")
        name, kind, value = parts[0], parts[1], "".join(parts[2:])  # as RecBole: spaces in the value are dropped
        if kind not in PARAM_TYPES:
            raise RecBoleEagerError(f"{where}: unknown type {kind!r} (one of {', '.join(PARAM_TYPES)})")
        if name in seen:
            raise RecBoleEagerError(f"{where}: {name} given twice")
        seen.add(name)
        try:
            if kind == "choice":
                params.append(HyperParam(name, kind, values=_parse_list(value)))
                continue
            bounds = value.split(",")
            if len(bounds) != (3 if kind == "quniform" else 2):
                raise ValueError(f"{kind} needs {'low,high,q' if kind == 'quniform' else 'low,high'}, got {value!r}")
            low, high = float(bounds[0]), float(bounds[1])
            if not low < high:
                raise ValueError(f"low must be below high, got {value!r}")
            hp = HyperParam(name, kind, low=low, high=high)
            if kind == "quniform":
                hp.q = float(bounds[2])
                if hp.q <= 0:
                    raise ValueError(f"q must be positive, got {value!r}")
                hp.integer = all(_is_int_literal(b) for b in bounds)
            params.append(hp)
        except ValueError as err:
            raise RecBoleEagerError(f"{where}: {err}") from None
    if not params:
        raise RecBoleEagerError(f"{source}: no hyper-parameters found")
    return params


def parse_params_file(path):
    with open(path, encoding="utf-8") as f:
        return parse_params_text(f.read(), source=str(path))


def build_search_space(params, algo="grid"):
    """``{name: ray.tune domain}``. ``algo='grid'``: every ``choice`` is a grid axis (all
    combinations, each ``num_samples`` times); ``'random'``: choices are sampled too."""
    if algo not in ("grid", "random"):
        raise RecBoleEagerError(f"unknown search algo {algo!r} (grid or random)")
    return {p.name: p.domain(algo) for p in params}


# --------------------------------------------------------------------------- command line
@contextmanager
def _clean_process_state():
    """RecBole's Config parses ``sys.argv`` for ``--key=value`` and sets
    ``CUDA_VISIBLE_DEVICES``: hide the driver's argv and undo the env change, so Ray
    (started later in this process) still sees every GPU."""
    argv, cuda = sys.argv, os.environ.get("CUDA_VISIBLE_DEVICES")
    sys.argv = argv[:1]
    try:
        yield
    finally:
        sys.argv = argv
        if cuda is None:
            os.environ.pop("CUDA_VISIBLE_DEVICES", None)
        else:
            os.environ["CUDA_VISIBLE_DEVICES"] = cuda


def _resolve_file(path, what):
    for candidate in (path, os.path.join(PROJECT_ROOT, path), os.path.join(PACKAGE_DIR, path)):
        if os.path.isfile(candidate):
            return os.path.abspath(candidate)
    raise RecBoleEagerError(f"{what} not found: {path}")


# --------------------------------------------------------------------------- trial
def recbole_trial(trial_params, model=None, dataset=None, config_files=None, fixed=None, bigger=True, cpus=1):
    """Ray Tune function trainable: one training run, reporting after each validation."""
    import torch
    from ray.air import session

    from recbole_eager.quick_start import run_recbole_eager

    sys.argv = sys.argv[:1]  # a Ray worker's argv (--node-ip-address=...) is not ours: keep it from RecBole's Config
    torch.set_num_threads(max(1, int(cpus)))
    config_dict = dict(fixed or {})
    config_dict.update({k: to_python(v) for k, v in trial_params.items()})
    config_dict.setdefault("show_progress", False)
    if "gpu_id" not in config_dict:  # the GPUs Ray gave this trial ("" -> CPU); RecBole's default '0' would override Ray's CUDA_VISIBLE_DEVICES
        import ray

        config_dict["gpu_id"] = ",".join(str(g) for g in ray.get_gpu_ids())

    state = {"best": None, "last": None, "epoch": 0}

    def better(a, b):
        return b is None or (a > b if bigger else a < b)

    def on_validation(epoch_idx, valid_score):
        score = float(valid_score)
        if not math.isnan(score) and better(score, state["best"]):
            state["best"] = score
        state["last"], state["epoch"] = score, epoch_idx + 1
        session.report({
            "epoch": epoch_idx + 1,
            "valid_score": score,
            "best_valid_score": state["best"] if state["best"] is not None else float("nan"),
            "final": False,
        })

    result = run_recbole_eager(model, dataset, config_files, config_dict, saved=True, callback_fn=on_validation)
    best = float(result["best_valid_score"])
    session.report({
        "epoch": state["epoch"],
        "valid_score": state["last"] if state["last"] is not None else best,
        "best_valid_score": best,  # selection key (validation only)
        "final": True,
        "best_valid_result": {k: float(v) for k, v in result["best_valid_result"].items()},
        "test_result": {k: float(v) for k, v in result["test_result"].items()},  # reported, never used to select
        "epochs": result["epochs"],
        "train_seconds": float(sum(result["train_epoch_seconds"])),
        "wall_seconds": float(result["wall_seconds"]),
    })


def _trial_dirname(trial):
    return f"trial_{trial.trial_id}"


# --------------------------------------------------------------------------- results
def _error_message(error):
    if error is None:
        return ""
    cause = getattr(error, "cause", None)
    if isinstance(cause, BaseException):
        return f"{type(cause).__name__}: {cause}".strip()
    lines = [line.strip() for line in str(error).strip().splitlines() if line.strip()]
    return lines[-1] if lines else type(error).__name__


def _nested(metrics, prefix):
    value = metrics.get(prefix)
    if isinstance(value, dict):
        return dict(value)
    return {k[len(prefix) + 1:]: v for k, v in metrics.items() if k.startswith(prefix + "/")}


def _valid_curve(result):
    """The per-epoch validation scores a trial reported (Ray's progress), oldest first."""
    frame = getattr(result, "metrics_dataframe", None)
    if frame is None or "valid_score" not in frame or "final" not in frame:
        return []
    return [float(v) for v in frame.loc[~frame["final"].astype(bool), "valid_score"]]


def rows_from_results(result_grid, param_names, valid_metric):
    """One dict per trial (Ray's trial order): ``trial_id, status, params, best_valid_score,
    valid (dict), test (dict), curve (valid score per epoch), epochs, seconds, error, trial_dir``."""
    rows = []
    for result in result_grid:
        metrics = dict(result.metrics or {})
        config = metrics.get("config") or getattr(result, "config", None) or {}
        error = result.error
        if error is not None:
            status = STATUS_FAILED
        elif metrics.get("final"):
            status = STATUS_OK
        else:
            status = STATUS_STOPPED  # ended by the scheduler (ASHA) or interrupted
        best = metrics.get("best_valid_score")
        valid = _nested(metrics, "best_valid_result")
        if best is not None and valid_metric not in valid:
            valid[valid_metric] = best
        rows.append({
            "trial_id": metrics.get("trial_id", ""),
            "status": status,
            "params": {name: to_python(config.get(name)) for name in param_names},
            "best_valid_score": float(best) if best is not None else float("nan"),
            "valid": valid,
            "test": _nested(metrics, "test_result"),
            "curve": _valid_curve(result),
            "epochs": metrics.get("epochs", metrics.get("epoch")),
            "seconds": metrics.get("wall_seconds", metrics.get("time_total_s")),
            "finished": metrics.get("timestamp"),  # Ray's: Unix time of the trial's last report
            "error": _error_message(error),
            "trial_dir": str(getattr(result, "path", None) or result.log_dir or ""),
        })
    rows.sort(key=lambda r: r["trial_id"])
    return rows


# --------------------------------------------------------------------------- driver
@dataclass
class SweepResult:
    rows: List[Dict[str, Any]]
    best_index: Optional[int]
    paths: Dict[str, str]
    experiment_dir: str
    valid_metric: str

    @property
    def best(self):
        return None if self.best_index is None else self.rows[self.best_index]


def _driver_config(model, dataset, config_files, overrides):
    from recbole_eager.config import Config

    with _clean_process_state():
        return Config(model=model, dataset=dataset, config_file_list=config_files, config_dict=dict(overrides))


def run_hyper(model, dataset, params_file, config_files=None, overrides=None, *, name=None, algo="grid",
              num_samples=None, max_concurrent=None, cpus_per_trial=1.0, gpus_per_trial=0.0, scheduler="none",
              grace_period=1, reduction_factor=2, address=None, num_cpus=None, storage_path="saved/ray_results",
              output_dir="results/tune", log_to_driver=False, progress_seconds=30, resume=False, report_only=False,
              command=None):
    """Run a sweep; returns a :class:`SweepResult` (rows, best index, report paths).
    ``resume``: continue the interrupted sweep ``name`` in ``storage_path`` (Ray Tune's
    restore): finished and failed trials keep their results, unfinished ones continue.
    ``report_only``: write the reports of sweep ``name`` as it stands, running nothing
    (unfinished trials are rows with status ``stopped``). ``command``: the command line, for the report."""
    import ray
    from ray import air, tune

    overrides = dict(overrides or {})
    params = parse_params_file(_resolve_file(params_file, "params file"))
    clash = sorted(set(overrides) & {p.name for p in params})
    if clash:
        raise RecBoleEagerError(f"{', '.join(clash)} both swept (params file) and fixed (--key=value)")
    config_files = [_resolve_file(f, "config file") for f in (config_files or [])]
    name = name or os.path.splitext(os.path.basename(params_file))[0]
    if resume and report_only:
        raise RecBoleEagerError("--resume runs the sweep on, --report_only runs nothing: give one of them")
    if scheduler not in ("asha", "none"):
        raise RecBoleEagerError(f"unknown scheduler {scheduler!r} (asha or none)")
    if num_samples is None:
        num_samples = 1 if algo == "grid" else 10

    # What every trial needs, resolved once here: metric, direction, absolute paths.
    config = _driver_config(model, dataset, config_files, overrides)
    model, dataset = config["model"], config["dataset"]
    valid_metric = str(config["valid_metric"]).lower()
    bigger = bool(config["valid_metric_bigger"])
    fixed = dict(overrides)
    # RecBole's final data_path is <data_path>/<dataset>: pass the parent, absolute
    fixed["data_path"] = os.path.abspath(os.path.dirname(os.path.normpath(config["data_path"])))
    for key in PATH_KEYS:
        value = fixed.get(key, config[key] if key in config else None)
        if isinstance(value, str) and not os.path.isabs(value) and os.path.exists(value):
            fixed[key] = os.path.abspath(value)
    if "code_cache_dir" in config:  # item codes do not depend on swept loss weights: share one cache, as a plain run would
        cache = config["code_cache_dir"] or os.path.join(config["checkpoint_dir"], "codes")
        fixed["code_cache_dir"] = os.path.abspath(cache)
    # checkpoint_dir stays as configured: relative -> inside each trial's own directory (no name clashes)
    eval_step = int(config["eval_step"] or 0)
    if scheduler == "asha" and eval_step <= 0:
        raise RecBoleEagerError("--scheduler=asha needs validation during training (eval_step > 0)")
    n_reports = int(config["epochs"]) // eval_step if eval_step > 0 else 0

    storage = os.path.abspath(storage_path)
    experiment_dir = os.path.join(storage, name)
    if (resume or report_only) and not tune.Tuner.can_restore(experiment_dir):
        flag, verb = ("--resume", "resume") if resume else ("--report_only", "report")
        raise RecBoleEagerError(
            f"{flag}: no sweep '{name}' in {portable_path(storage)} to {verb}; start it without {flag} "
            "(the same --name and --storage_path)"
        )
    started_ray = False
    if not ray.is_initialized():
        init_kwargs = {"log_to_driver": log_to_driver}
        if address:
            init_kwargs["address"] = address
        else:
            init_kwargs.update(include_dashboard=False)
            if num_cpus:
                init_kwargs["num_cpus"] = int(num_cpus)
        ray.init(**init_kwargs)
        started_ray = True
    try:
        trainable = tune.with_resources(
            tune.with_parameters(recbole_trial, model=model, dataset=dataset, config_files=config_files,
                                 fixed=fixed, bigger=bigger, cpus=cpus_per_trial),
            {"cpu": cpus_per_trial, "gpu": gpus_per_trial},
        )
        mode = "max" if bigger else "min"
        tune_scheduler = None
        if scheduler == "asha":
            from ray.tune.schedulers import ASHAScheduler

            # max_t one past the last epoch report: ASHA must not stop a trial at its last
            # epoch, before the final report with the test metrics.
            tune_scheduler = ASHAScheduler(time_attr="training_iteration", metric="valid_score", mode=mode,
                                           max_t=n_reports + 1, grace_period=grace_period,
                                           reduction_factor=reduction_factor)
        varied = [p.name for p in params if p.varied]
        reporter = tune.CLIReporter(
            parameter_columns=varied,
            metric_columns={"epoch": "epoch", "valid_score": f"valid {valid_metric}", "best_valid_score": "best valid"},
            max_report_frequency=progress_seconds,
            max_column_length=20,
        )
        os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")  # the new output engine ignores progress_reporter
        if report_only:
            result_grid = tune.Tuner.restore(experiment_dir, trainable).get_results()
        elif resume:
            result_grid = tune.Tuner.restore(experiment_dir, trainable, resume_unfinished=True).fit()
        else:
            result_grid = tune.Tuner(
                trainable,
                param_space=build_search_space(params, algo),
                tune_config=tune.TuneConfig(num_samples=num_samples, max_concurrent_trials=max_concurrent,
                                            scheduler=tune_scheduler, reuse_actors=False, chdir_to_trial_dir=True,
                                            trial_dirname_creator=_trial_dirname),
                run_config=air.RunConfig(name=name, storage_path=storage, progress_reporter=reporter, verbose=1,
                                         failure_config=air.FailureConfig(max_failures=0)),
            ).fit()
    finally:
        if started_ray:
            ray.shutdown()

    rows = rows_from_results(result_grid, [p.name for p in params], valid_metric)
    if scheduler == "asha":
        unit = "epochs" if eval_step == 1 else f"validations (one every {eval_step} epochs)"
        scheduler = (f"asha on valid {valid_metric} (grace period {grace_period}, reduction factor {reduction_factor}, "
                     f"at most {n_reports} {unit})")
    per_trial = f"{cpus_per_trial:g} CPU, {gpus_per_trial:g} GPU per trial, " + (
        f"at most {max_concurrent} at once" if max_concurrent else "as many at once as fit")
    meta = {"model": model, "dataset": dataset, "name": name, "algo": algo, "scheduler": scheduler,
            "config_files": config_files, "overrides": overrides, "experiment_dir": experiment_dir,
            "command": command, "commit": git_commit(), "hardware": f"{hardware(threads=False)} (driver); {per_trial}"}
    paths, best_index = write_reports(rows, params, valid_metric, bigger, output_dir, meta)
    return SweepResult(rows, best_index, paths, experiment_dir, valid_metric)
