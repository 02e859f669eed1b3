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
import csv
import io
import math
import os
import sys
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

import yaml

from recbole_eager.utils import PROJECT_ROOT, RecBoleEagerError

PARAM_TYPES = ("choice", "uniform", "loguniform", "quniform")
# keys that name files the trials read: made absolute in the driver (trials run in their own dirs)
PATH_KEYS = ("behavior_checkpoint", "semantic_model", "pre_model_path")
STATUS_OK, STATUS_STOPPED, STATUS_FAILED = "ok", "stopped", "failed"
MAX_HEATMAP_CELLS = 12  # distinct values per axis; more (sampled floats) -> scatter plot


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
def parse_overrides(args):
    """RecBole-style ``--key=value`` arguments -> ``{key: value}`` with RecBole's own type
    conversion (``eval``; ``true``/``false``; else the string)."""
    from recbole.config import Config as RecBoleConfig

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
    for candidate in (path, os.path.join(PROJECT_ROOT, path)):
        if os.path.isfile(candidate):
            return os.path.abspath(candidate)
    raise RecBoleEagerError(f"{what} not found: {path}")


# --------------------------------------------------------------------------- trial
def _to_python(value):
    if hasattr(value, "item") and not isinstance(value, (list, dict, str)):
        return value.item()
    if isinstance(value, tuple):
        return [_to_python(v) for v in value]
    if isinstance(value, list):
        return [_to_python(v) for v in value]
    if isinstance(value, dict):
        return {k: _to_python(v) for k, v in value.items()}
    return value


def recbole_trial(trial_params, model=None, dataset=None, config_files=None, fixed=None, bigger=True, cpus=1):
    """Ray Tune function trainable: one training run, reporting after each validation."""
    import torch
    from ray.air import session

    from recbole_eager.quick_start import run_recbole_eager

    sys.argv = sys.argv[:1]  # a Ray worker's argv (--node-ip-address=...) is not ours: keep it from RecBole's Config
    torch.set_num_threads(max(1, int(cpus)))
    config_dict = dict(fixed or {})
    config_dict.update({k: _to_python(v) for k, v in trial_params.items()})
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


def rows_from_results(result_grid, param_names, valid_metric):
    """One dict per trial (Ray's trial order): ``trial_id, status, params, best_valid_score,
    valid (dict), test (dict), epochs, seconds, error, trial_dir``."""
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
            "params": {name: _to_python(config.get(name)) for name in param_names},
            "best_valid_score": float(best) if best is not None else float("nan"),
            "valid": valid,
            "test": _nested(metrics, "test_result"),
            "epochs": metrics.get("epochs", metrics.get("epoch")),
            "seconds": metrics.get("wall_seconds", metrics.get("time_total_s")),
            "error": _error_message(error),
            "trial_dir": str(getattr(result, "path", None) or result.log_dir or ""),
        })
    rows.sort(key=lambda r: r["trial_id"])
    return rows


def select_best(rows, bigger=True):
    """Index of the trial with the best ``best_valid_score`` among trials that did not fail
    (first one on ties), or ``None``. Test metrics play no part."""
    best_index = None
    for i, row in enumerate(rows):
        score = row["best_valid_score"]
        if row["status"] == STATUS_FAILED or score is None or math.isnan(score) or math.isinf(score):
            continue
        if best_index is None:
            best_index = i
            continue
        current = rows[best_index]["best_valid_score"]
        if (score > current) if bigger else (score < current):
            best_index = i
    return best_index


# --------------------------------------------------------------------------- reports
def _atomic_write(path, data):
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix="." + os.path.basename(path) + ".", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data.encode("utf-8") if isinstance(data, str) else data)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _fmt(value, digits=4):
    if value is None:
        return ""
    if isinstance(value, float):
        if math.isnan(value):
            return ""
        return f"{value:.{digits}f}" if abs(value) < 1e4 else f"{value:.4g}"
    return str(value)


def _metric_names(rows, key, valid_metric):
    names = []
    for row in rows:
        for name in row[key]:
            if name not in names:
                names.append(name)
    if valid_metric in names:  # the selection metric first
        names.remove(valid_metric)
        names.insert(0, valid_metric)
    return names


def _columns(rows, param_names, valid_metric):
    valid_names = _metric_names(rows, "valid", valid_metric) or [valid_metric]
    test_names = _metric_names(rows, "test", valid_metric)
    return valid_names, test_names


def write_csv(path, rows, param_names, valid_metric, best_index):
    valid_names, test_names = _columns(rows, param_names, valid_metric)
    header = (["trial_id", "status", "is_best"] + list(param_names) + ["best_valid_score"]
              + [f"valid_{m}" for m in valid_names] + [f"test_{m}" for m in test_names]
              + ["epochs", "seconds", "error", "trial_dir"])
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(header)
    for i, row in enumerate(rows):
        writer.writerow(
            [row["trial_id"], row["status"], int(i == best_index)]
            + [row["params"].get(p) for p in param_names]
            + ["" if math.isnan(row["best_valid_score"]) else repr(row["best_valid_score"])]
            + [row["valid"].get(m, "") for m in valid_names] + [row["test"].get(m, "") for m in test_names]
            + [row["epochs"] if row["epochs"] is not None else "", _fmt(row["seconds"], 1), row["error"], row["trial_dir"]]
        )
    _atomic_write(path, buf.getvalue())


def _md_cell(value):
    return _fmt(value).replace("|", "\\|").replace("\n", " ")


def write_markdown(path, rows, param_names, valid_metric, best_index, meta):
    valid_names, test_names = _columns(rows, param_names, valid_metric)
    lines = [f"# Ray Tune sweep `{meta['name']}`: {meta['model']} on {meta['dataset']}", ""]
    n_failed = sum(r["status"] == STATUS_FAILED for r in rows)
    n_stopped = sum(r["status"] == STATUS_STOPPED for r in rows)
    lines += [
        f"- selection: best validation `{valid_metric}` ({'max' if meta['bigger'] else 'min'}) per trial; test metrics are reported only",
        f"- trials: {len(rows)} ({len(rows) - n_failed - n_stopped} ok, {n_stopped} stopped early, {n_failed} failed)",
        f"- search ({meta['algo']}): " + "; ".join(f"`{d}`" for d in meta["space"]),
        f"- scheduler: {meta['scheduler']}; config files: {', '.join(meta['config_files']) or 'none'}",
        f"- fixed overrides: {', '.join(f'`{k}={v}`' for k, v in meta['overrides'].items()) or 'none'}",
        f"- Ray results: `{meta['experiment_dir']}`",
    ]
    if best_index is not None:
        best = rows[best_index]
        params = ", ".join(f"{k}={v}" for k, v in best["params"].items())
        test = best["test"].get(valid_metric)
        lines.append(f"- **best**: trial `{best['trial_id']}` ({params}): valid {valid_metric} = {_fmt(best['best_valid_score'])}"
                     + (f", test {valid_metric} = {_fmt(test)}" if test is not None else "")
                     + f"; config: `{meta['best_yaml']}`")
    else:
        lines.append("- **best**: none (no trial finished)")
    lines.append("")
    header = (["trial", "status", "best"] + list(param_names) + [f"valid {m}" for m in valid_names]
              + [f"test {m}" for m in test_names] + ["epochs", "time (s)", "error"])
    lines.append("| " + " | ".join(header) + " |")
    lines.append("|" + "|".join("---" for _ in header) + "|")
    for i, row in enumerate(rows):
        valid = dict(row["valid"])
        cells = ([row["trial_id"], row["status"], "★" if i == best_index else ""]
                 + [str(row["params"].get(p)) for p in param_names]
                 + [valid.get(m) for m in valid_names] + [row["test"].get(m) for m in test_names]
                 + [row["epochs"], _fmt(row["seconds"], 1), row["error"]])
        lines.append("| " + " | ".join(_md_cell(c) for c in cells) + " |")
    lines.append("")
    _atomic_write(path, "\n".join(lines))


def write_best_yaml(path, row, overrides, meta):
    config = {k: _to_python(v) for k, v in overrides.items() if k not in ("model", "dataset")}
    config.update(row["params"])
    header = [
        f"# Best trial {row['trial_id']} of Ray Tune sweep '{meta['name']}': {meta['model']} on {meta['dataset']}",
        f"# selected on best valid {meta['valid_metric']} = {_fmt(row['best_valid_score'], 6)}"
        + (f" (test {meta['valid_metric']} = {_fmt(row['test'].get(meta['valid_metric']), 6)}, not used to select)" if row["test"] else ""),
        "# fixed config files of the sweep: " + (" ".join(meta["config_files"]) or "none"),
        "# rerun: python run_recbole_eager.py --model={} --dataset={} --config_files=\"{}\"".format(
            meta["model"], meta["dataset"], " ".join(meta["config_files"] + [os.path.abspath(path)])),
    ]
    body = yaml.safe_dump(_to_python(config), default_flow_style=False, sort_keys=False)
    _atomic_write(path, "\n".join(header) + "\n" + body)


def _is_number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _axis(values):
    """Sorted distinct values and their tick labels."""
    distinct = []
    for v in values:
        if not any(repr(v) == repr(d) for d in distinct):
            distinct.append(v)
    if all(_is_number(v) for v in distinct):
        distinct.sort()
    else:
        distinct.sort(key=repr)
    return distinct, [format(v, "g") if isinstance(v, float) else str(v) for v in distinct]


def plot_sweep(path, rows, varied, valid_metric, best_index, title):
    """PNG: heatmap of the best valid metric over two varied parameters (mean over trials
    in a cell; failed = blank), lines over one, bars per trial otherwise."""
    import numpy as np
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.patches import Rectangle

    scored = [r for r in rows if r["status"] != STATUS_FAILED and not math.isnan(r["best_valid_score"])]
    fig = Figure(figsize=(6.4, 4.8), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    label = f"valid {valid_metric}"
    axes = {p: _axis([r["params"][p] for r in rows])[0] for p in varied}
    numeric = all(_is_number(x) for values in axes.values() for x in values)
    if len(varied) == 2 and numeric and any(len(values) > MAX_HEATMAP_CELLS for values in axes.values()):
        # sampled continuous values: a heatmap would be mostly empty -> scatter coloured by the metric
        (px, py) = varied
        points = ax.scatter([r["params"][px] for r in scored], [r["params"][py] for r in scored],
                            c=[r["best_valid_score"] for r in scored], cmap="viridis", s=40)
        fig.colorbar(points, ax=ax, label=label)
        failed = [r for r in rows if r not in scored]
        if failed:
            ax.scatter([r["params"][px] for r in failed], [r["params"][py] for r in failed], marker="x", color="red", label="failed")
            ax.legend()
        if best_index is not None:
            best = rows[best_index]["params"]
            ax.scatter([best[px]], [best[py]], s=160, facecolors="none", edgecolors="red", linewidths=2)
        ax.set_xlabel(px)
        ax.set_ylabel(py)
    elif len(varied) == 2:
        (px, py) = varied
        xs, xlabels = _axis([r["params"][px] for r in rows])
        ys, ylabels = _axis([r["params"][py] for r in rows])
        grid = np.full((len(ys), len(xs)), np.nan)
        counts = np.zeros_like(grid)
        for r in scored:
            i = next(k for k, v in enumerate(ys) if repr(v) == repr(r["params"][py]))
            j = next(k for k, v in enumerate(xs) if repr(v) == repr(r["params"][px]))
            grid[i, j] = r["best_valid_score"] if counts[i, j] == 0 else grid[i, j] + r["best_valid_score"]
            counts[i, j] += 1
        with np.errstate(invalid="ignore"):
            grid = np.where(counts > 0, grid / np.maximum(counts, 1), np.nan)
        image = ax.imshow(np.ma.masked_invalid(grid), origin="lower", cmap="viridis", aspect="auto")
        fig.colorbar(image, ax=ax, label=label)
        ax.set_xticks(range(len(xs)), xlabels)
        ax.set_yticks(range(len(ys)), ylabels)
        ax.set_xlabel(px)
        ax.set_ylabel(py)
        finite = grid[np.isfinite(grid)]
        middle = (finite.min() + finite.max()) / 2 if finite.size else 0
        failed_cells = {(repr(r["params"][py]), repr(r["params"][px])) for r in rows if r not in scored}
        for i in range(len(ys)):
            for j in range(len(xs)):
                if counts[i, j] == 0:
                    text = "failed" if (repr(ys[i]), repr(xs[j])) in failed_cells else ""
                else:
                    text = f"{grid[i, j]:.4f}"
                color = "black" if counts[i, j] == 0 or grid[i, j] > middle else "white"
                ax.text(j, i, text, ha="center", va="center", color=color, fontsize=8)
        if best_index is not None:
            best = rows[best_index]["params"]
            j = next(k for k, v in enumerate(xs) if repr(v) == repr(best[px]))
            i = next(k for k, v in enumerate(ys) if repr(v) == repr(best[py]))
            ax.add_patch(Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, edgecolor="red", linewidth=2))
    elif len(varied) == 1:
        (p,) = varied
        xs, xlabels = _axis([r["params"][p] for r in rows])
        numeric = all(_is_number(v) for v in xs)
        means = []
        for v in xs:
            scores = [r["best_valid_score"] for r in scored if repr(r["params"][p]) == repr(v)]
            means.append(sum(scores) / len(scores) if scores else float("nan"))
        positions = xs if numeric else list(range(len(xs)))
        ax.plot(positions, means, marker="o", label=label + (" (mean)" if len(scored) > len(xs) else ""))
        ax.scatter([r["params"][p] if numeric else xs.index(r["params"][p]) for r in scored],
                   [r["best_valid_score"] for r in scored], s=12, color="gray", zorder=3)
        if not numeric:
            ax.set_xticks(positions, xlabels)
        ax.set_xlabel(p)
        ax.set_ylabel(label)
        ax.legend()
        ax.grid(alpha=0.3)
    else:
        names = [r["trial_id"][-5:] for r in rows]
        values = [0.0 if r["status"] == STATUS_FAILED or math.isnan(r["best_valid_score"]) else r["best_valid_score"] for r in rows]
        colors = ["red" if i == best_index else ("lightgray" if r["status"] == STATUS_FAILED else "tab:blue") for i, r in enumerate(rows)]
        ax.bar(range(len(rows)), values, color=colors)
        ax.set_xticks(range(len(rows)), names, rotation=90, fontsize=7)
        ax.set_xlabel("trial")
        ax.set_ylabel(label)
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    _atomic_write(path, buf.getvalue())


def write_reports(rows, params, valid_metric, bigger, output_dir, meta):
    """Write .md, .csv, .png and -best.yaml; returns ``{kind: path}`` and the best index."""
    stem = os.path.join(output_dir, f"{meta['dataset']}-{meta['model']}-{meta['name']}")
    paths = {"md": stem + ".md", "csv": stem + ".csv", "png": stem + ".png", "best_yaml": stem + "-best.yaml"}
    param_names = [p.name for p in params]
    varied = [p.name for p in params if p.varied]
    best_index = select_best(rows, bigger)
    meta = dict(meta, valid_metric=valid_metric, bigger=bigger, best_yaml=paths["best_yaml"],
                space=[p.describe() for p in params])
    if best_index is not None:
        write_best_yaml(paths["best_yaml"], rows[best_index], meta.get("overrides", {}), meta)
    else:
        paths.pop("best_yaml")
        if os.path.exists(stem + "-best.yaml"):  # a stale best from an earlier sweep of the same name would mislead
            os.unlink(stem + "-best.yaml")
    write_csv(paths["csv"], rows, param_names, valid_metric, best_index)
    write_markdown(paths["md"], rows, param_names, valid_metric, best_index, meta)
    plot_sweep(paths["png"], rows, varied, valid_metric, best_index,
               f"{meta['model']} on {meta['dataset']}: best valid {valid_metric} per trial ({meta['name']})")
    return paths, best_index


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
              output_dir="results/tune", log_to_driver=False, progress_seconds=30):
    """Run a sweep; returns a :class:`SweepResult` (rows, best index, report paths)."""
    import ray
    from ray import air, tune

    overrides = dict(overrides or {})
    params = parse_params_file(_resolve_file(params_file, "params file"))
    clash = sorted(set(overrides) & {p.name for p in params})
    if clash:
        raise RecBoleEagerError(f"{', '.join(clash)} both swept (params file) and fixed (--key=value)")
    config_files = [_resolve_file(f, "config file") for f in (config_files or [])]
    name = name or os.path.splitext(os.path.basename(params_file))[0]
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
        storage = os.path.abspath(storage_path)
        tuner = tune.Tuner(
            trainable,
            param_space=build_search_space(params, algo),
            tune_config=tune.TuneConfig(num_samples=num_samples, max_concurrent_trials=max_concurrent,
                                        scheduler=tune_scheduler, reuse_actors=False, chdir_to_trial_dir=True,
                                        trial_dirname_creator=_trial_dirname),
            run_config=air.RunConfig(name=name, storage_path=storage, progress_reporter=reporter, verbose=1,
                                     failure_config=air.FailureConfig(max_failures=0)),
        )
        result_grid = tuner.fit()
    finally:
        if started_ray:
            ray.shutdown()

    rows = rows_from_results(result_grid, [p.name for p in params], valid_metric)
    experiment_dir = os.path.join(storage, name)
    meta = {"model": model, "dataset": dataset, "name": name, "algo": algo, "scheduler": scheduler,
            "config_files": config_files, "overrides": overrides, "experiment_dir": experiment_dir}
    paths, best_index = write_reports(rows, params, valid_metric, bigger, output_dir, meta)
    return SweepResult(rows, best_index, paths, experiment_dir, valid_metric)
