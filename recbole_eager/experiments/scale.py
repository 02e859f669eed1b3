"""How EAGER's cost grows with the catalogue, against SASRec-CE's dense scoring.

    python -m recbole_eager.experiments.scale --n_items 10000 100000 1000000 [--threads 2]

For each catalogue size N, a synthetic catalogue (``synthetic.py``; ``--n_users`` users,
64-d embeddings, seed 0) is written under ``--work`` (once), then, in this process:

- **codes**: hierarchical k-means of each stream's embeddings (K = ``kmeans_k``), plain and,
  up to ``--balanced_max`` items, balanced: seconds, peak extra memory, depth;
- **training step**: one EAGER and one SASRec-CE step (forward, backward, Adam) on a batch
  of ``--batch`` users, median of ``--repeats``;
- **top-k per 1,000 users**: EAGER's beam search ranked without a dense matrix
  (``EAGER.full_sort_topk``), EAGER through RecBole's dense ``full_sort_predict`` + top-k,
  and SASRec-CE's dense scoring + top-k (``--score_chunk`` users at a time); median seconds
  and peak extra memory.

Models are untrained (costs do not depend on the weights). Peak memory is the process's
resident memory above its level before the step, sampled every 2 ms. One JSON per N in
``--out`` (an N whose JSON exists is skipped: a killed run resumes); ``--report`` writes
``results/scale.md`` and its plot from those JSONs.
"""
import argparse
import os
import sys
import threading
import time
import warnings
from datetime import date

import numpy as np
import torch
from recbole.data.interaction import Interaction
from recbole.utils import init_seed
from tqdm import tqdm

from recbole_eager.codes import ItemCodes, hierarchical_kmeans
from recbole_eager.codes.embedding_file import embeddings_from_file
from recbole_eager.config import Config
from recbole_eager.data import create_dataset
from recbole_eager.experiments import synthetic
from recbole_eager.experiments.records import portable_command, portable_path, write_record
from recbole_eager.utils import get_model

DIM, SEED = 64, 0
TOPK = 20


class PeakMemory:
    """Peak resident memory (MiB) above the level at entry, sampled every 2 ms."""

    def __enter__(self):
        self.base = self.peak = self._rss()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._rss())
        self.extra_mib = (self.peak - self.base) / 2**20

    @staticmethod
    def _rss():
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

    def _sample(self):
        while not self._stop.wait(0.002):
            self.peak = max(self.peak, self._rss())


def measure(fn, repeats):
    """Median seconds of ``repeats`` calls after one untimed call, and the peak extra MiB of a call."""
    fn()
    with PeakMemory() as memory:
        fn()
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        seconds.append(time.perf_counter() - start)
    return {"seconds": float(np.median(seconds)), "peak_extra_mib": round(memory.extra_mib, 1)}


def last_histories(dataset, max_length):
    """Per user with at least two interactions: the last item (target) and the up to
    ``max_length`` items before it, left-aligned as RecBole's item_id_list."""
    feat = dataset.inter_feat
    users, items = np.asarray(feat[dataset.uid_field]), np.asarray(feat[dataset.iid_field])
    order = np.lexsort((np.asarray(feat[dataset.time_field]), users))
    users, items = users[order], items[order]
    ends = np.flatnonzero(np.r_[users[1:] != users[:-1], True])  # each user's last row
    starts = np.r_[0, ends[:-1] + 1]
    keep = ends > starts
    ends, starts = ends[keep], starts[keep]
    lengths = np.minimum(ends - starts, max_length)
    seq = np.zeros((len(ends), max_length), dtype=np.int64)
    for offset in range(max_length):
        rows = offset < lengths
        seq[rows, offset] = items[(ends - lengths + offset)[rows]]
    return torch.from_numpy(seq), torch.from_numpy(lengths), torch.from_numpy(items[ends])


def interaction_of(model, seq, lengths, targets, rows):
    return Interaction({model.ITEM_SEQ: seq[rows], model.ITEM_SEQ_LEN: lengths[rows], model.ITEM_ID: targets[rows]})


def train_step(model, batch):
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)

    def step():
        optimizer.zero_grad(set_to_none=True)
        losses = model.calculate_loss(batch)
        (sum(losses) if isinstance(losses, tuple) else losses).backward()
        optimizer.step()

    return step


def run_one(n_items, args):
    name = f"synthetic-{n_items}"
    folder = os.path.join(args.work, name)
    if not os.path.isfile(os.path.join(folder, f"{name}.inter")):
        start = time.perf_counter()
        synthetic.write(synthetic.generate(n_items, args.n_users, dim=DIM, seed=SEED), args.work, name)
        print(f"  catalogue written in {time.perf_counter() - start:.1f}s")
    files = {s: os.path.join(folder, f"{name}-{s}.npz") for s in ("behavior", "semantic")}
    common = {"data_path": args.work, "show_progress": False, "state": "WARNING", "train_batch_size": args.batch}
    config = Config(model="EAGER", dataset=name, config_dict={
        **common, "kmeans_k": args.kmeans_k, "item_text_fields": None, **{f"{s}_embedding_file": p for s, p in files.items()}})
    dataset = create_dataset(config)
    record = {"n_items": n_items, "topk": TOPK, "users": args.n_users, "dim": DIM, "kmeans_k": args.kmeans_k, "interactions": len(dataset.inter_feat),
              "batch": args.batch, "score_chunk": args.score_chunk, "search_chunk_size": config["search_chunk_size"],
              "beam_size": config["beam_size"], "decoder_layers": config["decoder_layers"], "codes": {}}

    item_codes = {}
    for stream in ("behavior", "semantic"):
        embeddings, _ = embeddings_from_file(f"{stream}_embedding_file", files[stream], dataset)
        for balanced in (False, True) if n_items <= args.balanced_max else (False,):
            with PeakMemory() as memory:
                codes, stats = hierarchical_kmeans(embeddings[1:], args.kmeans_k, SEED, config["kmeans_max_depth"], balanced)
            record["codes"][f"{stream}-{'balanced' if balanced else 'plain'}"] = {
                "seconds": round(stats["kmeans_seconds"], 2), "peak_extra_mib": round(memory.extra_mib, 1),
                "depth": int(codes.shape[1]), "depth_histogram": {str(k): v for k, v in stats["depth_histogram"].items()},
                "level1_size_min": stats["level1_size_min"], "level1_size_max": stats["level1_size_max"],
            }
            print(f"  {stream} codes ({'balanced' if balanced else 'plain'}): depth {codes.shape[1]}, {stats['kmeans_seconds']:.1f}s")
            if not balanced:  # the model uses the default (plain) codes
                full = np.vstack([np.full((1, codes.shape[1]), args.kmeans_k, dtype=np.int64), codes])
                item_codes[stream] = ItemCodes(torch.from_numpy(full), torch.from_numpy(embeddings), args.kmeans_k)

    seq, lengths, targets = last_histories(dataset, config["MAX_ITEM_LIST_LENGTH"])
    users = torch.arange(min(args.users, len(seq)))
    train_rows = torch.arange(min(args.batch, len(seq)))
    record["timed_users"] = len(users)

    init_seed(SEED, True)
    eager = get_model("EAGER")(config, dataset, item_codes=item_codes)
    record["eager_parameters"] = sum(p.numel() for p in eager.parameters())
    eager.train()
    record["eager_train_step"] = measure(train_step(eager, interaction_of(eager, seq, lengths, targets, train_rows)), args.repeats)
    eager.eval()
    query = interaction_of(eager, seq, lengths, targets, users)
    record["eager_topk"] = measure(lambda: eager.full_sort_topk(query, TOPK), args.repeats)
    with torch.no_grad():
        record["eager_dense_topk"] = measure(lambda: eager.full_sort_predict(query).topk(TOPK, dim=1), args.repeats)
    del eager

    sasrec_config = Config(model="SASRec", dataset=name, config_dict=common)
    init_seed(SEED, True)
    sasrec = get_model("SASRec")(sasrec_config, dataset)
    record["sasrec_parameters"] = sum(p.numel() for p in sasrec.parameters())
    sasrec.train()
    record["sasrec_train_step"] = measure(train_step(sasrec, interaction_of(sasrec, seq, lengths, targets, train_rows)), args.repeats)
    sasrec.eval()

    def dense_topk():
        with torch.no_grad():
            for rows in users.split(args.score_chunk):
                sasrec.full_sort_predict(interaction_of(sasrec, seq, lengths, targets, rows)).topk(TOPK, dim=1)

    record["sasrec_dense_topk"] = measure(dense_topk, args.repeats)
    for key in ("eager_topk", "eager_dense_topk", "sasrec_dense_topk"):  # per 1,000 users
        record[key]["seconds_per_1000_users"] = record[key]["seconds"] * 1000 / len(users)
    return record


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n_items", type=int, nargs="+", default=[10_000, 30_000, 100_000, 300_000, 1_000_000])
    parser.add_argument("--n_users", type=int, default=10_000, help="users of each synthetic catalogue")
    parser.add_argument("--kmeans_k", type=int, default=256)
    parser.add_argument("--balanced_max", type=int, default=10_000, help="balanced k-means up to this many items")
    parser.add_argument("--users", type=int, default=1000, help="users per top-k measurement")
    parser.add_argument("--batch", type=int, default=256, help="users per training step")
    parser.add_argument("--score_chunk", type=int, default=256, help="users per dense scoring call")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--work", default=os.path.join("dataset", "scale"), help="folder of the synthetic catalogues")
    parser.add_argument("--out", default=os.path.join("results", "scale"))
    parser.add_argument("--report", action="store_true", help="only write results/scale.md and the plot from --out")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore", category=FutureWarning)  # RecBole 1.2.1's pandas calls, once per dataset
    if not args.report:
        sys.argv = sys.argv[:1]  # RecBole's Config reads --key=value from the command line
        for n_items in tqdm(args.n_items, desc="catalogues"):
            path = os.path.join(args.out, f"scale-{n_items}.json")
            if os.path.isfile(path):
                print(f"N={n_items}: {path} exists, skipped")
                continue
            print(f"N={n_items}")
            start = time.perf_counter()
            record = run_one(n_items, args)
            record.update(date=date.today().isoformat(), wall_seconds=round(time.perf_counter() - start, 1),
                          command=portable_command(argv or [], "-m recbole_eager.experiments.scale"),
                          work=portable_path(args.work))
            write_record(path, record)
    from recbole_eager.experiments.scale_report import write_report

    print(write_report(args.out))


if __name__ == "__main__":
    main(sys.argv[1:])
