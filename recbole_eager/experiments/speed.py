"""Speed comparison of models on the same batches, in one process.

    python -m recbole_eager.experiments.speed --dataset amazon-beauty --models EAGER SASRec --train_steps 20 --eval_batches 3

The batches are split in two halves; each model runs the first half as one block, then
the second half in reverse model order (A B B A), so a drift in the machine's load hits
all models alike. The first step of every block is repeated untimed (warm-up).
Per-epoch and per-test-pass seconds are extrapolated from the mean step / batch times
and the number of batches. After the timing, the same batches run once more under
PyTorch's FLOP counter, which counts matmuls and attention (forward and backward): the
arithmetic each model needs, to set against its seconds.
Writes ``results/speed/<dataset>-<models>[-<tag>].json``.
"""
import argparse
import contextlib
import itertools
import json
import os
import sys
import time

import torch
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode
from recbole.data import data_preparation
from recbole.utils import init_logger, init_seed

from recbole_eager.experiments.benchmark import parse_overrides, run_name
from recbole_eager.experiments.records import git_commit, portable_command, write_record
from recbole_eager.config import Config
from recbole_eager.data import create_dataset
from recbole_eager.quick_start import build_model


def timed(fn):
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def train_step(model, optimizer, batch):
    optimizer.zero_grad()
    losses = model.calculate_loss(batch)
    (sum(losses) if isinstance(losses, tuple) else losses).backward()
    optimizer.step()


def count_flops(fn):
    """Floating-point operations of the matmuls and attention ``fn()`` runs. Attention takes
    PyTorch's math kernel here: the counter has no formula for the fused CPU kernel."""
    counter = FlopCounterMode(display=False)
    with counter, sdpa_kernel(SDPBackend.MATH):
        fn()
    return counter.get_total_flops()


def precision_context(model, autocast_baselines):
    """EAGER sets its own precision; RecBole's models run in float32 unless ``autocast_baselines``."""
    if autocast_baselines and not hasattr(model, "autocast"):
        return torch.autocast(model.device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def timed_blocks(model_names, batches, run):
    """Seconds of ``run(model, batch)`` per model over ``batches``, in blocks A B B A
    (first half, then second half in reverse order), each block after one untimed warm-up."""
    half = (len(batches) + 1) // 2
    seconds = {m: [] for m in model_names}
    for block, order in ((batches[:half], model_names), (batches[half:], model_names[::-1])):
        for m in order:
            if block:
                run(m, block[0])
                seconds[m] += [run(m, batch) for batch in block]
    return seconds


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    command, commit = portable_command(argv, "-m recbole_eager.experiments.speed"), git_commit()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="amazon-beauty")
    parser.add_argument("--models", nargs="+", default=["EAGER", "SASRec"])
    parser.add_argument("--train_steps", type=int, default=20)
    parser.add_argument("--eval_batches", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE")
    parser.add_argument("--results", default=os.path.join("results", "speed"))
    parser.add_argument("--tag", default="", help="suffix of the report's file name (e.g. the flag --set changes)")
    parser.add_argument(
        "--autocast_baselines", action="store_true",
        help="run models without their own precision setting (RecBole's) under a bfloat16 autocast too",
    )
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    sys.argv = sys.argv[:1]  # RecBole's Config reads --key=value from sys.argv
    overrides = parse_overrides(args.set)

    configs = {m: Config(model=m, dataset=args.dataset, config_dict=overrides) for m in args.models}
    first = configs[args.models[0]]
    init_seed(first["seed"], first["reproducibility"])
    init_logger(first)
    train_data, _, test_data = data_preparation(first, create_dataset(first))
    models = {m: build_model(configs[m], train_data) for m in args.models}
    optimizers = {m: torch.optim.Adam(model.parameters(), lr=configs[m]["learning_rate"]) for m, model in models.items()}

    def train(m, batch):
        models[m].train()
        with precision_context(models[m], args.autocast_baselines):
            return timed(lambda: train_step(models[m], optimizers[m], batch))

    def evaluate(m, batch):
        models[m].eval()
        with torch.no_grad(), precision_context(models[m], args.autocast_baselines):
            return timed(lambda: models[m].full_sort_predict(batch[0]))

    train_batches = list(itertools.islice(train_data, args.train_steps))
    eval_batches = list(itertools.islice(test_data, args.eval_batches))
    step_seconds = timed_blocks(args.models, train_batches, train)
    eval_seconds = timed_blocks(args.models, eval_batches, evaluate)
    step_gflop = {m: [count_flops(lambda: train(m, batch)) / 1e9 for batch in train_batches] for m in args.models}
    eval_gflop = {m: [count_flops(lambda: evaluate(m, batch)) / 1e9 for batch in eval_batches] for m in args.models}

    mean = lambda xs: sum(xs) / len(xs)
    report = {
        "dataset": args.dataset,
        "command": command,
        "commit": commit,
        "train_batches_per_epoch": len(train_data),
        "test_batches": len(test_data),
        "train_batch_size": first["train_batch_size"],
        "eval_batch_size": first["eval_batch_size"],
        "precision": {
            m: configs[m]["precision"] or "float32" if hasattr(models[m], "autocast")
            else ("bfloat16 autocast" if args.autocast_baselines else "float32")
            for m in args.models
        },
        "models": {
            m: {
                "train_step_seconds_mean": mean(step_seconds[m]),
                "eval_batch_seconds_mean": mean(eval_seconds[m]),
                "epoch_seconds_estimate": mean(step_seconds[m]) * len(train_data),
                "test_pass_seconds_estimate": mean(eval_seconds[m]) * len(test_data),
                "train_step_gflop_mean": mean(step_gflop[m]),
                "eval_batch_gflop_mean": mean(eval_gflop[m]),
                "train_gflops_achieved": sum(step_gflop[m]) / sum(step_seconds[m]),
                "eval_gflops_achieved": sum(eval_gflop[m]) / sum(eval_seconds[m]),
                "train_steps_timed": len(step_seconds[m]),
                "eval_batches_timed": len(eval_seconds[m]),
            }
            for m in args.models
        },
    }
    base = args.models[-1]
    for m in args.models[:-1]:
        report["models"][m]["epoch_ratio_vs_" + base] = report["models"][m]["epoch_seconds_estimate"] / report["models"][base]["epoch_seconds_estimate"]
        report["models"][m]["test_ratio_vs_" + base] = report["models"][m]["test_pass_seconds_estimate"] / report["models"][base]["test_pass_seconds_estimate"]
        report["models"][m]["train_flop_ratio_vs_" + base] = mean(step_gflop[m]) / mean(step_gflop[base])
        report["models"][m]["eval_flop_ratio_vs_" + base] = mean(eval_gflop[m]) / mean(eval_gflop[base])
    write_record(os.path.join(args.results, run_name("-".join([args.dataset, *args.models]), args.tag) + ".json"), report)
    print(json.dumps(report["models"], indent=2))


if __name__ == "__main__":
    main()
