"""Reports of a Ray Tune sweep: trial selection on validation, Markdown and CSV tables,
the sweep plot and the best trial's YAML. No Ray import: usable on saved rows."""
import csv
import io
import math
import os
from datetime import datetime, timezone

import yaml

from recbole_eager.experiments.records import portable_path
from recbole_eager.utils import atomic_write

STATUS_OK, STATUS_STOPPED, STATUS_FAILED = "ok", "stopped", "failed"
MAX_HEATMAP_CELLS = 12  # distinct values per axis; more (sampled floats) -> scatter plot


def to_python(value):
    if hasattr(value, "item") and not isinstance(value, (list, dict, str)):
        return value.item()
    if isinstance(value, tuple):
        return [to_python(v) for v in value]
    if isinstance(value, list):
        return [to_python(v) for v in value]
    if isinstance(value, dict):
        return {k: to_python(v) for k, v in value.items()}
    return value


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
              + ["epochs_trained", "valid_curve", "seconds", "error", "trial_dir"])
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(header)
    for i, row in enumerate(rows):
        writer.writerow(
            [row["trial_id"], row["status"], int(i == best_index)]
            + [row["params"].get(p) for p in param_names]
            + ["" if math.isnan(row["best_valid_score"]) else repr(row["best_valid_score"])]
            + [row["valid"].get(m, "") for m in valid_names] + [row["test"].get(m, "") for m in test_names]
            + [row["epochs"] if row["epochs"] is not None else "", " ".join(repr(v) for v in row.get("curve", [])),
               _fmt(row["seconds"], 1), row["error"], row["trial_dir"]]
        )
    atomic_write(path, buf.getvalue())


def _md_cell(value):
    return _fmt(value).replace("|", "\\|").replace("\n", " ")


def write_markdown(path, rows, param_names, valid_metric, best_index, meta):
    valid_names, test_names = _columns(rows, param_names, valid_metric)
    lines = [f"# Ray Tune sweep `{meta['name']}`: {meta['model']} on {meta['dataset']}", ""]
    finished = [r["finished"] for r in rows if r.get("finished")]
    if finished or meta.get("commit"):
        date = datetime.fromtimestamp(max(finished), timezone.utc).strftime("%Y-%m-%d %H:%M UTC") if finished else "-"
        lines.append(f"- last trial report: {date}; commit `{meta.get('commit', 'unknown')}`; {meta.get('hardware', '')}")
    if meta.get("command"):
        lines.append(f"- command: `{meta['command']}`")
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
              + [f"test {m}" for m in test_names] + ["epochs trained", "time (s)", "error"])
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
    lines += _curve_table(rows, param_names, valid_metric)
    atomic_write(path, "\n".join(lines))


def _curve_table(rows, param_names, valid_metric):
    """Markdown lines: every trial's validation metric after each epoch (what ASHA compared)."""
    longest = max((len(r.get("curve", [])) for r in rows), default=0)
    if not longest:
        return []
    header = ["trial", "status"] + list(param_names) + [str(e) for e in range(1, longest + 1)]
    lines = [f"Valid {valid_metric} after each validation (blank: not run):", "",
             "| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    for row in rows:
        curve = row.get("curve", [])
        cells = ([row["trial_id"], row["status"]] + [str(row["params"].get(p)) for p in param_names]
                 + [curve[e] if e < len(curve) else None for e in range(longest)])
        lines.append("| " + " | ".join(_md_cell(c) for c in cells) + " |")
    return lines + [""]


def write_best_yaml(path, row, overrides, meta):
    config = {k: to_python(v) for k, v in overrides.items() if k not in ("model", "dataset")}
    config.update(row["params"])
    header = [
        f"# Best trial {row['trial_id']} of Ray Tune sweep '{meta['name']}': {meta['model']} on {meta['dataset']}",
        f"# selected on best valid {meta['valid_metric']} = {_fmt(row['best_valid_score'], 6)}"
        + (f" (test {meta['valid_metric']} = {_fmt(row['test'].get(meta['valid_metric']), 6)}, not used to select)" if row["test"] else ""),
        "# fixed config files of the sweep: " + (" ".join(meta["config_files"]) or "none"),
        "# rerun: python run_recbole_eager.py --model={} --dataset={} --config_files=\"{}\"".format(
            meta["model"], meta["dataset"], " ".join(meta["config_files"] + [portable_path(path)])),
    ]
    body = yaml.safe_dump(to_python(config), default_flow_style=False, sort_keys=False)
    atomic_write(path, "\n".join(header) + "\n" + body)


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
        stopped_cells = {(repr(r["params"][py]), repr(r["params"][px])): r["epochs"] for r in scored
                         if r["status"] == STATUS_STOPPED}
        for i in range(len(ys)):
            for j in range(len(xs)):
                cell = (repr(ys[i]), repr(xs[j]))
                if counts[i, j] == 0:
                    text = "failed" if cell in failed_cells else ""
                else:
                    text = f"{grid[i, j]:.4f}"
                    if cell in stopped_cells:  # best of fewer epochs: ASHA stopped it
                        text += f"\nstopped @{stopped_cells[cell]}"
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
    atomic_write(path, buf.getvalue())


def write_reports(rows, params, valid_metric, bigger, output_dir, meta):
    """Write .md, .csv, .png and -best.yaml; returns ``{kind: path}`` and the best index.
    Paths in them are relative to the working directory (no folder of this machine)."""
    rows = [dict(r, trial_dir=portable_path(r["trial_dir"])) for r in rows]
    meta = dict(meta, experiment_dir=portable_path(meta["experiment_dir"]),
                config_files=[portable_path(f) for f in meta["config_files"]],
                overrides={k: portable_path(v) if isinstance(v, str) and os.path.isabs(v) else v for k, v in meta.get("overrides", {}).items()})
    stem = os.path.join(output_dir, f"{meta['dataset']}-{meta['model']}-{meta['name']}")
    paths = {"md": stem + ".md", "csv": stem + ".csv", "png": stem + ".png", "best_yaml": stem + "-best.yaml"}
    param_names = [p.name for p in params]
    varied = [p.name for p in params if p.varied]
    best_index = select_best(rows, bigger)
    meta = dict(meta, valid_metric=valid_metric, bigger=bigger, best_yaml=portable_path(paths["best_yaml"]),
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
