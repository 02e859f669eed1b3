"""Side-by-side benchmark: each model under the same protocol, resumable, one JSON per run.

    python -m recbole_eager.benchmark --dataset amazon-beauty --models GRU4Rec Caser SASRec BERT4Rec S3Rec

A run whose JSON exists in ``results/runs/`` is skipped; ``results/<dataset>.md`` is
rewritten from all JSONs of the dataset, with the paper's numbers beside ours.
``--evaluate CHECKPOINT`` records a saved model's metrics without training, under the
``--set`` overrides (inference settings such as ``merge_rule=joint``).
"""
import argparse
import datetime
import json
import os
import platform
import re
import subprocess
import sys

import torch

from recbole_eager.utils import PROJECT_ROOT, atomic_write

METRICS = ["recall@5", "recall@10", "recall@20", "ndcg@5", "ndcg@10", "ndcg@20"]
PAPER_NAMES = {"S3Rec": "S3-Rec"}
PAPER_DATASETS = {"amazon-beauty": "Beauty", "amazon-sports-outdoors": "Sports", "amazon-toys-games": "Toys", "yelp": "Yelp"}
DEFAULT_PAPER_TABLE = PROJECT_ROOT.parent / "shared" / "paper" / "eager-table.md"


def git_commit():
    """HEAD, with ``-dirty`` when tracked code differs from it (``results/`` does not count:
    benchmarks rewrite it while they run); ``$RECBOLE_EAGER_COMMIT`` when set (a copy of
    the tree on a GPU machine, whose ``.git`` need not match what was copied)."""
    if os.environ.get("RECBOLE_EAGER_COMMIT"):
        return os.environ["RECBOLE_EAGER_COMMIT"]
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=PROJECT_ROOT, capture_output=True, text=True, check=True)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", ".", ":(exclude)results"], cwd=PROJECT_ROOT, capture_output=True, text=True).stdout.strip()
        return out.stdout.strip() + ("-dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def hardware():
    if torch.cuda.is_available():
        return f"GPU: {torch.cuda.get_device_name(0)}"
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return f"CPU: {cpu}, {os.cpu_count()} cores, torch threads {torch.get_num_threads()}"


SPEED_ENVIRONMENT = ("MALLOC_", "OMP_", "MKL_", "KMP_", "GOMP_", "LD_PRELOAD")


def speed_environment():
    """Environment variables that change CPU speed (allocator, thread pools, preloaded
    libraries), so a record says what its seconds ran under."""
    return {name: value for name, value in sorted(os.environ.items()) if name.startswith(SPEED_ENVIRONMENT)}


def read_paper_table(path, dataset):
    """``{model: {metric: value}}`` from the paper's Markdown table (rows: dataset, metric)."""
    if not path or not os.path.isfile(path) or dataset not in PAPER_DATASETS:
        return {}
    header, table = None, {}
    with open(path) as f:
        for line in f:
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            if cells[:2] == ["Dataset", "Metric"]:
                header = cells
            elif header and len(cells) == len(header) and cells[0] == PAPER_DATASETS[dataset]:
                metric = cells[1].lower()
                for model, value in zip(header[2:], cells[2:]):
                    number = re.sub(r"[^0-9.]", "", value)
                    if number:
                        table.setdefault(model, {})[metric] = float(number)
    return table


def run_name(model, tag):
    return f"{model}-{tag}" if tag else model


def run_one(model, dataset, overrides, out_path, command, checkpoint=None):
    from recbole_eager.quick_start import evaluate_checkpoint, run_recbole_eager

    commit = git_commit()  # the code that trains, not the code at the end of a long run
    if checkpoint:
        result = evaluate_checkpoint(checkpoint, overrides)
        if (result["model"], result["dataset"]) != (model, dataset):
            raise ValueError(f"--evaluate {checkpoint} holds {result['model']} on {result['dataset']}, not {model} on {dataset}")
    else:
        result = run_recbole_eager(model=model, dataset=dataset, config_dict=overrides)
    epoch_seconds = result["train_epoch_seconds"]
    record = {
        "model": model,
        "dataset": dataset,
        "test_result": result["test_result"],
        "best_valid_result": result["best_valid_result"],
        "command": command,
        "overrides": overrides,
        "commit": commit,
        "hardware": hardware(),
        "environment": speed_environment(),
        "epochs": result["epochs"],
        "epoch_cap": result["config"].get("epochs"),
        "stopping_step": result["config"].get("stopping_step"),
        "stopped_by": result["stopped_by"],
        "train_time_budget": result["config"].get("train_time_budget"),
        "seconds_per_epoch": sum(epoch_seconds) / max(len(epoch_seconds), 1),
        "valid_seconds_mean": sum(result["valid_seconds"]) / max(len(result["valid_seconds"]), 1),
        "test_seconds": result["test_seconds"],
        "saved_model_file": os.path.abspath(result["saved_model_file"]) if result["saved_model_file"] else None,
        **({"evaluated_checkpoint": os.path.abspath(checkpoint)} if checkpoint else {}),
        "wall_seconds": result["wall_seconds"],
        "finished_at": datetime.datetime.now().isoformat(timespec="seconds"),
    }
    atomic_write(out_path, json.dumps(record, indent=2))
    return record


def write_table(dataset, runs_dir, md_path, paper_table_path):
    paper = read_paper_table(paper_table_path, dataset)
    records = []
    for name in sorted(os.listdir(runs_dir)):
        if name.endswith(".json"):
            with open(os.path.join(runs_dir, name)) as f:
                record = json.load(f)
            if record.get("dataset") == dataset:
                records.append((name[: -len(".json")].split("__", 1)[1], record))
    lines = [
        f"# {dataset}: leave-one-out, full ranking, history ≤ 20, selection on valid NDCG@10",
        "",
        "Ours: test metrics of the epoch with the best validation NDCG@10. Paper: the EAGER",
        "paper's table (`shared/paper/eager-table.md`). Generated by `python -m recbole_eager.benchmark`;",
        "one JSON per run in `results/runs/` holds the command, commit, hardware and config.",
        "Runs tagged `speed-*` train one or two epochs for timing only; `cap<N>`/`cpu-cap<N>` runs stop at an",
        "epoch cap; other tags name the flag a run changes (ablations; the JSON's `overrides`). Rows with 0",
        "epochs re-evaluate another run's checkpoint (the JSON's `evaluated_checkpoint`) under those overrides.",
        "Seconds depend on the machine's load at the time: see `results/README.md`.",
        "",
        "| run | source | " + " | ".join(m.replace("recall", "R").replace("ndcg", "N") for m in METRICS)
        + " | valid N@10 | epochs (cap, stop) | s/epoch | test pass s | hardware |",
        "|---|---|" + "---|" * len(METRICS) + "---|---|---|---|---|",
    ]
    order = ["GRU4Rec", "Caser", "SASRec", "BERT4Rec", "S3Rec", "EAGER"]
    records.sort(key=lambda nr: (order.index(nr[1]["model"]) if nr[1]["model"] in order else len(order), nr[1]["model"], nr[0]))
    for i, (name, r) in enumerate(records):
        stop = {"early_stopping": "early stop", "epoch_cap": "cap reached",
                "time_budget": f"time budget {r.get('train_time_budget')} s reached",
                "evaluated_checkpoint": "checkpoint re-evaluated"}[r["stopped_by"]]
        values = " | ".join(f"{r['test_result'].get(m, float('nan')):.4f}" for m in METRICS)
        valid = r["best_valid_result"].get("ndcg@10", float("nan"))
        lines.append(
            f"| {name} | ours | {values} | {valid:.4f} | {r['epochs']} ({r['epoch_cap']}, {stop}; patience {r['stopping_step']}) "
            f"| {r['seconds_per_epoch']:.1f} | {r['test_seconds']:.1f} | {r['hardware']} |"
        )
        reported = paper.get(PAPER_NAMES.get(r["model"], r["model"]))
        last_of_model = i + 1 == len(records) or records[i + 1][1]["model"] != r["model"]
        if reported and last_of_model:
            values = " | ".join(f"{reported[m]:.4f}" if m in reported else "-" for m in METRICS)
            lines.append(f"| {r['model']} | paper | {values} | | | | | |")
    for model in ("EAGER",):
        if model in paper and not any(r["model"] == model for _, r in records):
            values = " | ".join(f"{paper[model][m]:.4f}" if m in paper[model] else "-" for m in METRICS)
            lines.append(f"| {model} | paper | {values} | | | | | |")
    atomic_write(md_path, "\n".join(lines) + "\n")


def parse_overrides(pairs):
    """``KEY=VALUE`` pairs -> config dict, values converted as RecBole converts ``--key=value``."""
    from recbole_eager.tune import parse_overrides as parse_cli_overrides

    return parse_cli_overrides([f"--{pair}" for pair in pairs])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="amazon-beauty")
    parser.add_argument("--models", nargs="+", default=["GRU4Rec", "Caser", "SASRec", "BERT4Rec", "S3Rec"])
    parser.add_argument("--tag", default="", help="suffix of the run names (e.g. cpu-cap5)")
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="config overrides for every model")
    parser.add_argument("--results", default=str(PROJECT_ROOT / "results"))
    parser.add_argument("--paper_table", default=str(DEFAULT_PAPER_TABLE))
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument("--evaluate", metavar="CHECKPOINT", help="evaluate this saved model (of the one --models) instead of training")
    args = parser.parse_args(argv)
    if args.evaluate and len(args.models) != 1:
        parser.error("--evaluate takes exactly one model in --models (the checkpoint's)")
    if args.threads:
        torch.set_num_threads(args.threads)

    runs_dir = os.path.join(args.results, "runs")
    os.makedirs(runs_dir, exist_ok=True)
    overrides = parse_overrides(args.set)
    command = "python -m recbole_eager.benchmark " + " ".join(argv if argv is not None else sys.argv[1:])
    for model in args.models:
        out_path = os.path.join(runs_dir, f"{args.dataset}__{run_name(model, args.tag)}.json")
        if os.path.exists(out_path):
            print(f"skip {model}: {out_path} exists")
            continue
        # RecBole reads sys.argv for --key=value; keep ours out of it.
        sys.argv = sys.argv[:1]
        record = run_one(model, args.dataset, overrides, out_path, command, checkpoint=args.evaluate)
        print(f"{model}: {record['epochs']} epochs, {record['seconds_per_epoch']:.1f} s/epoch, test {record['test_result']}")
        write_table(args.dataset, runs_dir, os.path.join(args.results, f"{args.dataset}.md"), args.paper_table)
    write_table(args.dataset, runs_dir, os.path.join(args.results, f"{args.dataset}.md"), args.paper_table)


if __name__ == "__main__":
    main()
