"""Validation against test metrics per slice of users, for saved models of one dataset.

    python -m recbole_eager.experiments.slices --checkpoints saved/EAGER-….pth saved/SASRec-….pth \
        --out results/slices/amazon-beauty

Each checkpoint is re-evaluated as RecBole's full-sort evaluator does (one positive per
user, so NDCG@k is 1/log2(rank + 1) within the top k). The users of each split are cut by
their target's training count, by whether the target shares its day with the last history
item, and by history length. ``valid_at_test_mix`` is validation NDCG@10 with the slices
weighted as in the test split: how much of the valid→test drop the mix of targets explains.
Writes ``<out>.json`` and ``<out>.md``.
"""
import argparse
import json
import os
import sys

import numpy as np
import torch
from tqdm import tqdm

from recbole_eager.experiments.records import git_commit, hardware, portable_command, portable_path
from recbole_eager.quick_start import build_trainer, load_data_and_model

K = 10
POPULARITY_BINS = (0, 5, 10, 20, 50)  # lower edges of the target's training-count slices
LENGTH_BINS = (1, 5, 10, 20)  # lower edges of the history-length slices
DAY = 86400


def _bin_labels(edges):
    return [f"{lo}–{hi - 1}" for lo, hi in zip(edges, edges[1:])] + [f"{edges[-1]}+"]


def target_ranks(trainer, data, show_progress=False):
    """Per user row of ``data``: the target's rank in the top K (1 = top; inf below it, nan
    when the model gives it no score; a target in the history under ``exclude_history`` is
    inf) and the row's fields as numpy."""
    model = trainer.model
    model.eval()
    trainer.tot_item_num = data._dataset.item_num  # as Trainer.evaluate sets them
    trainer.item_tensor = data._dataset.get_item_feature().to(trainer.device)
    ranks, fields = [], {}
    with torch.no_grad():
        for batched_data in tqdm(data, desc="ranking targets", disable=not show_progress):
            interaction, scores, positive_u, positive_i = trainer._full_sort_batch_eval(batched_data)
            top = scores.topk(max(trainer.config["topk"]), dim=1).indices[positive_u, :K]  # ties broken as RecBole's collector does
            found, position = (top == positive_i.unsqueeze(1)).max(dim=1)
            rank = torch.full((scores.size(0),), float("inf"))
            rank[positive_u] = torch.where(found, position + 1.0, float("inf")).cpu()  # inf: beyond the top K
            missing = torch.isinf(scores[positive_u, positive_i])
            if trainer.config["exclude_history"]:  # -inf by the protocol, not by the model: a miss, not a non-candidate
                seq = interaction[model.ITEM_SEQ].to(scores.device)
                missing &= ~(seq[positive_u] == positive_i.unsqueeze(1)).any(dim=1)
            rank[positive_u[missing.cpu()]] = float("nan")  # not among the candidates at all
            ranks.append(rank.numpy())
            for name in interaction.columns:
                fields.setdefault(name, []).append(interaction[name].cpu().numpy())
    return np.concatenate(ranks), {name: np.concatenate(parts) for name, parts in fields.items()}


def user_slices(config, fields, train_counts):
    """``{slicing: (label per row, labels in order)}``: ``popularity`` (the target's training
    count), ``history`` (length) and ``same_day`` (target and last history item on one
    calendar day; absent without a time field)."""
    length, target = fields[config["ITEM_LIST_LENGTH_FIELD"]], fields[config["ITEM_ID_FIELD"]]
    pop_labels, len_labels = _bin_labels(POPULARITY_BINS), _bin_labels(LENGTH_BINS)
    slices = {
        "popularity": (np.array(pop_labels)[np.searchsorted(POPULARITY_BINS, train_counts[target], side="right") - 1], pop_labels),
        "history": (np.array(len_labels)[np.searchsorted(LENGTH_BINS, length, side="right") - 1], len_labels),
    }
    time_field = config["TIME_FIELD"]
    if time_field and time_field + config["LIST_SUFFIX"] in fields:
        last_time = fields[time_field + config["LIST_SUFFIX"]][np.arange(len(length)), length - 1]
        same = np.floor_divide(fields[time_field], DAY) == np.floor_divide(last_time, DAY)
        slices["same_day"] = (np.where(same, "same day", "other day"), ["same day", "other day"])
    return slices


def metrics(ranks):
    """NDCG@K, Recall@K and the share of targets the model scores at all (EAGER: its beams'
    candidates), from ranks (inf beyond the top K, nan when not scored)."""
    if not len(ranks):
        return {"users": 0, f"ndcg@{K}": 0.0, f"recall@{K}": 0.0, "in_candidates": 0.0}
    hit = ranks <= K
    ndcg = np.where(hit, 1.0 / np.log2(np.where(hit, ranks, 1) + 1), 0.0)
    return {"users": int(len(ranks)), f"ndcg@{K}": float(ndcg.mean()), f"recall@{K}": float(hit.mean()),
            "in_candidates": float((~np.isnan(ranks)).mean())}


def analyse(checkpoint, show_progress=False):
    """Per split (valid, test): overall metrics, metrics per slice, and the validation NDCG@10
    re-weighted to the test split's mix of each slicing."""
    config, model, dataset, train_data, valid_data, test_data = load_data_and_model(checkpoint, {"topk_eval": False})  # dense scores
    trainer = build_trainer(config, model)
    train_counts = np.bincount(train_data.dataset.inter_feat[config["ITEM_ID_FIELD"]].numpy(), minlength=dataset.item_num)
    out = {"model": config["model"], "dataset": config["dataset"], "checkpoint": portable_path(checkpoint), "splits": {}}
    for split, data in (("valid", valid_data), ("test", test_data)):
        ranks, fields = target_ranks(trainer, data, show_progress)
        slices = user_slices(config, fields, train_counts)
        out["splits"][split] = {
            "overall": metrics(ranks),
            "slices": {name: {label: metrics(ranks[labels == label]) for label in order} for name, (labels, order) in slices.items()},
        }
    out["valid_at_test_mix"] = {
        name: reweighted(out["splits"]["valid"]["slices"][name], out["splits"]["test"]["slices"][name]) for name in out["splits"]["test"]["slices"]
    }
    return out


def reweighted(valid, test, key=f"ndcg@{K}"):
    """Validation ``key`` with each slice weighted by its share of test users."""
    n_test = sum(s["users"] for s in test.values())
    return sum(valid[label][key] * s["users"] / n_test for label, s in test.items())


def markdown(analyses):
    key = f"ndcg@{K}"
    lines = [f"| model | split | users | N@{K} | R@{K} | target among candidates |", "|---|---|---:|---:|---:|---:|"]
    for a in analyses:
        for split, s in a["splits"].items():
            o = s["overall"]
            lines.append(f"| {a.get('label', a['model'])} | {split} | {o['users']} | {o[key]:.4f} | {o[f'recall@{K}']:.4f} | {o['in_candidates']:.3f} |")
    lines += ["", f"| model | test N@{K} / valid N@{K} | valid N@{K} at the test mix of: " + " | ".join(analyses[0]["valid_at_test_mix"]) + " |",
              "|---|---:|" + "---:|" * len(analyses[0]["valid_at_test_mix"])]
    for a in analyses:
        valid, test = a["splits"]["valid"]["overall"][key], a["splits"]["test"]["overall"][key]
        mixes = " | ".join(f"{v:.4f} ({test / v:.2f})" for v in a["valid_at_test_mix"].values())
        lines.append(f"| {a.get('label', a['model'])} | {test / valid:.2f} | {mixes} |")
    for name in analyses[0]["splits"]["test"]["slices"]:
        labels = list(analyses[0]["splits"]["test"]["slices"][name])
        lines += ["", f"**{name}** (N@{K} valid → test, share of users valid / test)", "",
                  "| model | " + " | ".join(labels) + " |", "|---|" + "---:|" * len(labels)]
        for a in analyses:
            v, t = a["splits"]["valid"]["slices"][name], a["splits"]["test"]["slices"][name]
            nv, nt = a["splits"]["valid"]["overall"]["users"], a["splits"]["test"]["overall"]["users"]
            cells = [f"{v[x][key]:.4f} → {t[x][key]:.4f} ({v[x]['users'] / nv:.0%} / {t[x]['users'] / nt:.0%})" for x in labels]
            lines.append(f"| {a.get('label', a['model'])} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoints", nargs="+", required=True)
    parser.add_argument("--out", required=True, help="path without suffix; writes <out>.json and <out>.md")
    parser.add_argument("--labels", nargs="+", help="row names, one per checkpoint (default: the model names)")
    parser.add_argument("--threads", type=int)
    args = parser.parse_args(argv)
    command = portable_command(argv if argv is not None else sys.argv[1:], "-m recbole_eager.experiments.slices")
    sys.argv = sys.argv[:1]  # RecBole's Config reads --key=value from the command line
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.labels and len(args.labels) != len(args.checkpoints):
        parser.error(f"--labels: {len(args.labels)} names for {len(args.checkpoints)} checkpoints")
    analyses = [analyse(path, show_progress=True) for path in args.checkpoints]
    for analysis, label in zip(analyses, args.labels or []):
        analysis["label"] = label
    record = {"command": command, "commit": git_commit(), "hardware": hardware(), "analyses": analyses}
    os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
    with open(args.out + ".json", "w") as f:
        json.dump(record, f, indent=1)
    table = markdown(analyses)
    with open(args.out + ".md", "w") as f:
        f.write(f"# Validation against test, per slice of users\n\n`{record['command']}` (commit `{record['commit']}`, {record['hardware']})\n\n{table}")
    print(table)


if __name__ == "__main__":
    main()
