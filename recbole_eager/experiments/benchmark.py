"""Side-by-side benchmark: each model under the same protocol, resumable, one JSON per run.

    python -m recbole_eager.experiments.benchmark --dataset amazon-beauty --models GRU4Rec Caser SASRec BERT4Rec S3Rec

A run whose JSON exists in ``results/runs/`` is skipped; a run that was killed continues after
its last finished epoch (``<checkpoint_dir>/resume/``, same settings and commit only); a run
stopped by ``train_time_budget`` keeps that checkpoint, and the same command with a larger
budget continues it (any commit; the record lists the earlier runs);
``results/<dataset>.md`` is rewritten from all JSONs of the dataset, with the paper's numbers
beside ours.
``--evaluate CHECKPOINT`` records a saved model's metrics without training, under the
``--set`` overrides (inference settings such as ``merge_rule=joint``). ``--runs LIST --jobs N``
runs a run list (``scripts/eager_components.txt``), one process per line, N at a time.
"""
import argparse
import datetime
import functools
import hashlib
import json
import os
import re
import subprocess
import sys
import time

import torch

from recbole_eager.codes.behavior import checkpoint_facts
from recbole_eager.config import parse_overrides as config_parse_overrides
from recbole_eager.experiments.records import git_commit, portable_command, portable_path, write_record
from recbole_eager.utils import PROJECT_ROOT, RecBoleEagerError, atomic_write, property_defaults

METRICS = ["recall@5", "recall@10", "recall@20", "ndcg@5", "ndcg@10", "ndcg@20"]
PAPER_NAMES = {"S3Rec": "S3-Rec"}
PAPER_DATASETS = {"amazon-beauty": "Beauty", "amazon-sports-outdoors": "Sports", "amazon-toys-games": "Toys", "yelp": "Yelp"}
DEFAULT_PAPER_TABLE = PROJECT_ROOT.parent / "shared" / "paper" / "eager-table.md"


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


def resume_file(out_path, overrides, commit):
    """Where a run keeps its last finished epoch: named by the run, its settings and commit,
    so a run is only continued by the same code under the same settings."""
    key = hashlib.sha1(json.dumps([overrides, commit], sort_keys=True, default=str).encode()).hexdigest()[:8]
    name = os.path.splitext(os.path.basename(out_path))[0]
    return os.path.join(overrides.get("checkpoint_dir", "saved"), "resume", f"{name}-{key}.pth")


def run_one(model, dataset, overrides, out_path, command, checkpoint=None, extends=None):
    """Train (or, given ``checkpoint``, evaluate) one run and write its record; ``extends``:
    the record of a budget-limited run that this one continues from its kept checkpoint."""
    from recbole_eager import quick_start

    commit = git_commit()  # the code that trains, not the code at the end of a long run
    resume = None if checkpoint else resume_file(out_path, overrides, commit)  # re-evaluations train nothing
    if extends:
        resume = extends["last_checkpoint_file"]
    if checkpoint:
        result = quick_start.evaluate_checkpoint(checkpoint, overrides)
        if (result["model"], result["dataset"]) != (model, dataset):
            raise ValueError(f"--evaluate {checkpoint} holds {result['model']} on {result['dataset']}, not {model} on {dataset}")
    else:
        config = {**overrides, "last_checkpoint_file": resume}
        if os.path.isfile(resume):
            print(f"{model}: continuing from {resume}")
            config["resume_from"] = resume
        result = quick_start.run_recbole_eager(model=model, dataset=dataset, config_dict=config)
    epoch_seconds = result["train_epoch_seconds"]
    record = {
        "model": model,
        "dataset": dataset,
        "test_result": result["test_result"],
        "best_valid_result": result["best_valid_result"],
        "command": command,
        "overrides": overrides,
        "model_config": {k: result["config"][k] for k in model_defaults(model, model_only=True) if k in result["config"]},
        # A reloaded EAGER checkpoint needs no behavior file: record the model only if it is still here.
        **({"behavior_model": checkpoint_facts(b)} if (b := result["config"].get("behavior_checkpoint")) and os.path.isfile(b) else {}),
        "commit": commit,
        "epochs": result["epochs"],
        "epoch_cap": result["config"].get("epochs"),
        "stopping_step": result["config"].get("stopping_step"),
        "stopped_by": result["stopped_by"],
        "train_time_budget": result["config"].get("train_time_budget"),
        "seconds_per_epoch": sum(epoch_seconds) / max(len(epoch_seconds), 1),
        "valid_seconds_mean": sum(result["valid_seconds"]) / max(len(result["valid_seconds"]), 1),
        "test_seconds": result["test_seconds"],
        "saved_model_file": portable_path(result["saved_model_file"]),
        **({"evaluated_checkpoint": portable_path(checkpoint)} if checkpoint else {}),
        "wall_seconds": result["wall_seconds"],
        **({"resumed_after_epoch": result["resumed_after_epoch"]} if "resumed_after_epoch" in result else {}),
        **({"earlier_runs": extends.get("earlier_runs", []) + [{k: extends.get(k) for k in EARLIER_RUN_KEYS}]} if extends else {}),
        # Kept so that a larger budget can continue the run (a local file, not in the repository).
        **({"last_checkpoint_file": portable_path(resume)} if resume and result["stopped_by"] == "time_budget" else {}),
        "valid_curve": result["valid_curve"],
        **{k: result[k] for k in ("best_test_epoch", "best_test_result", "test_curve") if k in result},
        "finished_at": datetime.datetime.now().isoformat(timespec="seconds"),
    }
    written = write_record(out_path, record)
    if resume and os.path.isfile(resume) and "last_checkpoint_file" not in record:
        os.remove(resume)
    return written


EARLIER_RUN_KEYS = ("command", "commit", "epochs", "train_time_budget", "finished_at")


def budget_extension(done, overrides, out_path):
    """``done`` if ``overrides`` continue that budget-limited run under a larger (or no)
    ``train_time_budget`` and otherwise the same settings; ``None`` if they are not that."""
    old, new = done["overrides"].get("train_time_budget"), overrides.get("train_time_budget")
    same = {k: v for k, v in done["overrides"].items() if k != "train_time_budget"} == {
        k: v for k, v in overrides.items() if k != "train_time_budget"}
    if not (same and done["stopped_by"] == "time_budget" and old and (new is None or new > old)):
        return None
    kept = done.get("last_checkpoint_file")
    if not kept or not os.path.isfile(kept):
        raise RecBoleEagerError(
            f"{out_path} stopped at its time budget; to continue it needs its last checkpoint {kept or '(none recorded)'}, "
            "which is not here (it stays on the machine that ran the run): name a new run with --tag to train from scratch"
        )
    return done


MODEL_ORDER = ["Markov", "GRU4Rec", "Caser", "HGN", "SASRec", "BERT4Rec", "S3Rec", "TIGER", "EAGER"]
# Overrides that leave a model's configuration at its default (protocol, budget, bookkeeping).
DEFAULT_CONFIG_KEYS = {
    "seed", "show_progress", "state", "data_path", "checkpoint_dir", "gpu_id", "behavior_checkpoint", "code_cache_dir",
    "search_chunk_size", "train_time_budget", "stopping_step", "epochs", "pretrain_epochs", "report_best_test",
    "item_attribute", "token_seq_fields", "token_seq_min_count",  # which words of the dataset are S3-Rec's attributes
}
# Earlier default configurations, named in the tables instead of listed key by key.
FORMER_DEFAULTS = {"EAGER": {"first reading": {
    "kmeans_balanced": False, "gct_normalize": False, "stt_positions": False, "stt_mask": "bernoulli",
    "stt_recon_loss": "softmax", "stt_recog_negatives": "random_tokens",
}}}
STOPS = {"early_stopping": "early stop", "epoch_cap": "epoch cap", "time_budget": "time budget", "evaluated_checkpoint": "re-evaluated"}


def load_records(runs_dir, dataset):
    """``[(run name, record)]`` of ``dataset``, in model order then name."""
    records = []
    for name in sorted(os.listdir(runs_dir)):
        if name.endswith(".json"):
            with open(os.path.join(runs_dir, name)) as f:
                record = json.load(f)
            if record.get("dataset") == dataset:
                records.append((name[: -len(".json")].split("__", 1)[1], record))
    rank = {m: i for i, m in enumerate(MODEL_ORDER)}
    return sorted(records, key=lambda nr: (rank.get(nr[1]["model"], len(rank)), nr[1]["model"], nr[0]))


@functools.lru_cache(maxsize=None)
def model_defaults(model, model_only=False, dataset=None):
    """The plugin's defaults for ``model`` (``utils.property_defaults``), cached: do not modify the returned dict."""
    return property_defaults(model, dataset, model_only)


def _same(a, b):
    """Equal config values; YAML reads ``1e-12`` (no dot) as a string, the run's config as a float."""
    try:
        return a == b or float(a) == float(b)
    except (TypeError, ValueError):
        return False


def changed_keys(record):
    """The keys in which the record's configuration differs from today's defaults (its model's and
    its dataset's YAMLs): its overrides, and the model keys of its ``model_config`` (the values it
    ran with, so a run made under defaults that have changed since does not pass for today's)."""
    defaults = model_defaults(record["model"], dataset=record["dataset"])
    changed = {k: v for k, v in record["overrides"].items() if not _same(defaults.get(k, object()), v)}
    changed.update({k: v for k, v in record.get("model_config", {}).items() if k in defaults and not _same(defaults[k], v)})
    changed = {k: v for k, v in changed.items() if k not in DEFAULT_CONFIG_KEYS}
    behavior = record.get("behavior_model")
    if record["overrides"].get("behavior_checkpoint") and not behavior:
        changed["behavior_checkpoint"] = record["overrides"]["behavior_checkpoint"]  # a model of unknown training
    elif behavior and (behavior["model"], behavior.get("epoch_cap")) != (defaults.get("behavior_model"), defaults.get("behavior_epochs")):
        changed["behavior_model"] = f"{behavior['model']} {behavior.get('epoch_cap') or behavior['best_epoch']} epochs"
    return changed


def describe_changes(record):
    """``changed_keys`` as table text, a former default configuration by its name."""
    changed, names = changed_keys(record), []
    for name, former in FORMER_DEFAULTS.get(record["model"], {}).items():
        if all(changed.get(k, object()) == v for k, v in former.items()):
            names.append(name)
            changed = {k: v for k, v in changed.items() if k not in former}
    return ", ".join(names + [f"{k}={v}" for k, v in changed.items()]) or "-"


def main_runs(records):
    """``{model: [records]}``: trained runs of each model's default configuration; the
    early-stopped ones where a model has any (budget- or cap-limited runs otherwise)."""
    runs = {}
    for _, r in records:
        if r["stopped_by"] != "evaluated_checkpoint" and not changed_keys(r):
            runs.setdefault(r["model"], []).append(r)
    for model, rs in runs.items():
        stopped = [r for r in rs if r["stopped_by"] == "early_stopping"]
        runs[model] = stopped or rs
    return runs


def _mean_std(values):
    mean = sum(values) / len(values)
    if len(values) < 2:
        return f"{mean:.4f}"
    std = (sum((v - mean) ** 2 for v in values) / (len(values) - 1)) ** 0.5
    return f"{mean:.4f} ± {std:.4f}"


def _stop(r):
    stop = STOPS[r["stopped_by"]]
    if r["stopped_by"] == "time_budget":
        stop += f" {r.get('train_time_budget')} s"
    model_config = r.get("model_config", {})
    pretrain = f"{model_config['pretrain_epochs']} pretrain + " if model_config.get("train_stage") == "pretrain_finetune" else ""
    return f"{pretrain}{r['epochs']} ({stop}, patience {r['stopping_step']})"


def _paper_row(model, reported, width):
    values = " | ".join(f"{reported[m]:.4f}" if m in reported else "-" for m in METRICS)
    return f"| {model} | paper | {values} |" + " |" * width


MAIN_COLUMNS = ("valid N@10", "test/valid N@10", "runs", "epochs (stop)", "s/epoch", "hardware")  # after the metrics


def write_table(dataset, runs_dir, md_path, paper_table_path):
    """``results/<dataset>.md``: the main table (one row per model, its default configuration,
    mean ± std over runs, the paper's row beside it), then every other run (ablations,
    other inference settings, re-evaluations)."""
    paper = read_paper_table(paper_table_path, dataset)
    records = load_records(runs_dir, dataset)
    metric_names = " | ".join(m.replace("recall", "R").replace("ndcg", "N") for m in METRICS)
    lines = [
        f"# {dataset}: leave-one-out, full ranking, history ≤ 20, selection on valid NDCG@10",
        "",
        "Test metrics at the epoch with the best validation NDCG@10 (ours), and the EAGER paper's table",
        "(paper). Generated by `python -m recbole_eager.experiments.benchmark` from the JSONs in `runs/`",
        "(command, commit, hardware, config of each run).",
        "",
        "## Main table: each model in its default configuration",
        "",
        f"| model | source | {metric_names} | {' | '.join(MAIN_COLUMNS)} |",
        "|---|---|" + "---|" * (len(METRICS) + len(MAIN_COLUMNS)),
    ]
    main = main_runs(records)
    for model, rs in main.items():
        values = " | ".join(_mean_std([r["test_result"][m] for r in rs]) for m in METRICS)
        valid = _mean_std([r["best_valid_result"]["ndcg@10"] for r in rs])
        ratio = sum(r["test_result"]["ndcg@10"] for r in rs) / sum(r["best_valid_result"]["ndcg@10"] for r in rs)
        stops = "; ".join(sorted({_stop(r) for r in rs}))
        seconds = sum(r["seconds_per_epoch"] for r in rs) / len(rs)
        hardware = "; ".join(sorted({r["hardware"] for r in rs}))
        lines.append(f"| {model} | ours | {values} | {valid} | {ratio:.2f} | {len(rs)} | {stops} | {seconds:.1f} | {hardware} |")
        reported = paper.get(PAPER_NAMES.get(model, model))
        if reported:
            lines.append(_paper_row(model, reported, len(MAIN_COLUMNS)))
    for model in MODEL_ORDER:
        reported = paper.get(PAPER_NAMES.get(model, model))
        if reported and model not in main:
            lines.append(_paper_row(model, reported, len(MAIN_COLUMNS)))
    others = [(n, r) for n, r in records if not any(r is m for rs in main.values() for m in rs)]
    if others:
        lines += [
            "", "## Other runs: ablations, inference settings, re-evaluations", "",
            f"| run | model | differs from the default | {metric_names} | valid N@10 | epochs (stop) | hardware |",
            "|---|---|---|" + "---|" * len(METRICS) + "---|---|---|",
        ]
        for name, r in others:
            differs = describe_changes(r)
            if r["stopped_by"] == "evaluated_checkpoint":
                differs = f"re-evaluated {r.get('evaluated_checkpoint')}" + (f"; {differs}" if differs != "-" else "")
            values = " | ".join(f"{r['test_result'].get(m, float('nan')):.4f}" for m in METRICS)
            valid = r["best_valid_result"].get("ndcg@10", float("nan"))
            lines.append(f"| {name} | {r['model']} | {differs} | {values} | {valid:.4f} | {_stop(r)} | {r['hardware']} |")
        for model, formers in FORMER_DEFAULTS.items():
            for former, keys in formers.items():
                if any(r["model"] == model and former in describe_changes(r) for _, r in others):
                    lines += ["", f"{model} \"{former}\" = a former default configuration: {', '.join(f'{k}={v}' for k, v in keys.items())}."]
    kept = ""
    if os.path.isfile(md_path):
        text = open(md_path).read()
        kept = text[text.index(READING):] if READING in text else ""
    atomic_write(md_path, "\n".join(lines) + "\n" + ("\n" + kept if kept else ""))


READING = "<!-- reading: written by hand; the benchmark keeps what follows -->"
SUMMARY_START, SUMMARY_END = "<!-- summary: generated by the benchmark -->", "<!-- /summary -->"


def write_summary(results_dir, paper_table_path):
    """The datasets × models table (test NDCG@10 and Recall@10 of each main-table row, ours /
    paper) between the summary markers of ``results/README.md``."""
    readme = os.path.join(results_dir, "README.md")
    runs_dir = os.path.join(results_dir, "runs")
    if not os.path.isfile(readme) or not os.path.isdir(runs_dir):
        return
    datasets = sorted({name.split("__", 1)[0] for name in os.listdir(runs_dir) if name.endswith(".json")})
    cells, models = {}, []
    fmt = lambda value: "-" if value is None else f"{value:.4f}"
    for dataset in datasets:
        paper = read_paper_table(paper_table_path, dataset)
        runs = main_runs(load_records(runs_dir, dataset))
        for model in list(runs) + [m for m in MODEL_ORDER if PAPER_NAMES.get(m, m) in paper and m not in runs]:
            rs = runs.get(model, [])
            ours = [sum(r["test_result"][m] for r in rs) / len(rs) if rs else None for m in ("ndcg@10", "recall@10")]
            reported = paper.get(PAPER_NAMES.get(model, model), {})
            limited = "†" if rs and all(r["stopped_by"] != "early_stopping" for r in rs) and model != "Markov" else ""
            cells[dataset, model] = " / ".join(f"{fmt(o)}{limited} ({fmt(reported.get(m))})" for o, m in zip(ours, ("ndcg@10", "recall@10")))
            models += [model] if model not in models else []
    rank = {m: i for i, m in enumerate(MODEL_ORDER)}
    models.sort(key=lambda m: rank.get(m, len(rank)))
    lines = [SUMMARY_START, "", "Test NDCG@10 / Recall@10 of each dataset's main-table row, ours (paper); `-`: not run or not",
             "reported; †: stopped by an epoch cap or time budget, not converged.", "",
             "| model | " + " | ".join(datasets) + " |", "|---|" + "---|" * len(datasets)]
    lines += [f"| {m} | " + " | ".join(cells.get((d, m), "-") for d in datasets) + " |" for m in models]
    text = open(readme).read()
    if SUMMARY_START in text and SUMMARY_END in text:
        head, rest = text.split(SUMMARY_START, 1)
        atomic_write(readme, head + "\n".join(lines) + "\n" + SUMMARY_END + rest.split(SUMMARY_END, 1)[1])


def parse_overrides(pairs):
    """``KEY=VALUE`` pairs -> config dict, converted as RecBole converts ``--key=value``."""
    return config_parse_overrides([f"--{pair}" for pair in pairs])


def read_run_list(path):
    """``[(tag, ["key=value", ...])]`` from a run list: one ``<tag> key=value ...`` per line,
    ``#`` starts a comment."""
    entries = []
    with open(path) as f:
        for number, line in enumerate(f, 1):
            words = line.split("#", 1)[0].split()
            if not words:
                continue
            tag, pairs = words[0], words[1:]
            bad = [pair for pair in pairs if "=" not in pair]
            if bad:
                raise RecBoleEagerError(f"{path} line {number}: {bad[0]!r} is not key=value; a line is '<tag> key=value ...'")
            if tag in (t for t, _ in entries):
                raise RecBoleEagerError(f"{path} line {number}: tag {tag!r} is used twice; each run needs its own")
            entries.append((tag, pairs))
    return entries


def run_list(args):
    """Each run-list line as its own benchmark process (``--set`` then the line's overrides),
    ``args.jobs`` at a time, logs in ``args.logs``; returns the failed run names."""
    entries = read_run_list(args.runs)
    for tag, pairs in entries:
        try:
            parse_overrides(args.set + pairs)
        except RecBoleEagerError as err:
            raise RecBoleEagerError(f"{args.runs}, run {tag!r}: {err} (--set and the line)") from None
    os.makedirs(args.logs, exist_ok=True)
    shared = ["--dataset", args.dataset, "--results", args.results]
    shared += ["--paper_table", args.paper_table] if args.paper_table != str(DEFAULT_PAPER_TABLE) else []
    shared += ["--threads", str(args.threads)] if args.threads else []
    pending = [(model, tag, pairs) for tag, pairs in entries for model in args.models]
    running, failed = {}, []
    while pending or running:
        while pending and len(running) < args.jobs:
            model, tag, pairs = pending.pop(0)
            tag = f"{tag}-{args.tag}" if args.tag else tag
            name = run_name(model, tag)
            log = open(os.path.join(args.logs, f"{name}.log"), "w")
            argv = [*shared, "--models", model, "--tag", tag, "--set", *args.set, *pairs]
            print(f"start {name}: log {log.name}")
            process = subprocess.Popen([sys.executable, "-m", "recbole_eager.experiments.benchmark", *argv], stdout=log, stderr=subprocess.STDOUT)
            running[process] = (name, log)
        time.sleep(0.5)
        for process in [p for p in running if p.poll() is not None]:
            name, log = running.pop(process)
            log.close()
            print(f"{name}: {'done' if process.returncode == 0 else f'failed (exit {process.returncode}), see {log.name}'}")
            failed += [name] if process.returncode else []
    return failed


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="amazon-beauty")
    parser.add_argument("--models", nargs="+", default=["GRU4Rec", "Caser", "SASRec", "BERT4Rec", "S3Rec"])
    parser.add_argument("--tag", default="", help="suffix of the run names (e.g. cpu-cap5); with --runs, after each line's tag")
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="config overrides for every model")
    parser.add_argument("--results", default="results", help="output folder (default: ./results)")
    parser.add_argument("--paper_table", default=str(DEFAULT_PAPER_TABLE))
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument("--evaluate", metavar="CHECKPOINT", help="evaluate this saved model (of the one --models) instead of training")
    parser.add_argument("--runs", metavar="LIST", help="a run list: one '<tag> key=value ...' per line, each run in its own process")
    parser.add_argument("--jobs", type=int, default=1, help="with --runs: processes at a time (default 1)")
    parser.add_argument("--logs", default=os.path.join("log", "benchmark"), help="with --runs: one log per run here")
    args = parser.parse_args(argv)
    if args.runs and args.evaluate:
        parser.error("--runs trains; leave out --evaluate")
    if args.evaluate and len(args.models) != 1:
        parser.error("--evaluate takes exactly one model in --models (the checkpoint's)")
    if args.threads:
        torch.set_num_threads(args.threads)

    runs_dir = os.path.join(args.results, "runs")
    if args.runs:
        failed = run_list(args)
        os.makedirs(runs_dir, exist_ok=True)
        write_table(args.dataset, runs_dir, os.path.join(args.results, f"{args.dataset}.md"), args.paper_table)
        write_summary(args.results, args.paper_table)
        if failed:
            raise RecBoleEagerError(f"runs failed: {', '.join(failed)} (their logs are in {args.logs})")
        return
    os.makedirs(runs_dir, exist_ok=True)
    overrides = parse_overrides(args.set)
    command = portable_command(argv if argv is not None else sys.argv[1:], "-m recbole_eager.experiments.benchmark")
    for model in args.models:
        out_path = os.path.join(runs_dir, f"{args.dataset}__{run_name(model, args.tag)}.json")
        extends = None
        if os.path.exists(out_path):
            with open(out_path) as f:
                done = json.load(f)
            extends = None if args.evaluate else budget_extension(done, overrides, out_path)
            if extends:
                print(f"{model}: continuing {out_path} after its epoch {done['epochs']} under train_time_budget={overrides.get('train_time_budget')}")
            elif done["overrides"] != overrides or done.get("evaluated_checkpoint") != portable_path(args.evaluate):
                raise RecBoleEagerError(
                    f"{out_path} holds a run with other settings ({done['overrides']}); name this one with --tag"
                )
            else:
                print(f"skip {model}: {out_path} exists")
                continue
        # RecBole reads sys.argv for --key=value; keep ours out of it.
        sys.argv = sys.argv[:1]
        record = run_one(model, args.dataset, overrides, out_path, command, checkpoint=args.evaluate, extends=extends)
        print(f"{model}: {record['epochs']} epochs, {record['seconds_per_epoch']:.1f} s/epoch, test {record['test_result']}")
        write_table(args.dataset, runs_dir, os.path.join(args.results, f"{args.dataset}.md"), args.paper_table)
    write_table(args.dataset, runs_dir, os.path.join(args.results, f"{args.dataset}.md"), args.paper_table)
    write_summary(args.results, args.paper_table)


if __name__ == "__main__":
    main()
