"""Where one EAGER training step spends its time on a synthetic catalogue (results/scale.md).

    python scripts/profile_train_step.py --n_items 100000 [--work dataset/scale]

Needs the catalogue that ``python -m recbole_eager.experiments.scale`` writes under
``--work``. Prints torch.profiler's operator table of one step (after two untimed ones).
"""
import argparse
import sys
import warnings

import numpy as np
import torch
from torch.profiler import ProfilerActivity, profile

from recbole_eager.codes import ItemCodes, hierarchical_kmeans
from recbole_eager.codes.embedding_file import embeddings_from_file
from recbole_eager.config import Config
from recbole_eager.data import create_dataset
from recbole_eager.experiments import scale
from recbole_eager.utils import get_model


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n_items", type=int, default=100_000)
    parser.add_argument("--work", default="dataset/scale")
    parser.add_argument("--batch", type=int, default=256)
    args = parser.parse_args()
    sys.argv = sys.argv[:1]  # RecBole's Config reads --key=value from the command line
    warnings.filterwarnings("ignore", category=FutureWarning)
    torch.set_num_threads(1)
    name = f"synthetic-{args.n_items}"
    files = {s: f"{args.work}/{name}/{name}-{s}.npz" for s in ("behavior", "semantic")}
    config = Config(model="EAGER", dataset=name, config_dict={
        "data_path": args.work, "show_progress": False, "state": "WARNING", "item_text_fields": None,
        **{f"{s}_embedding_file": p for s, p in files.items()}})
    dataset = create_dataset(config)
    codes = {}
    for stream in files:
        embeddings, _ = embeddings_from_file(f"{stream}_embedding_file", files[stream], dataset)
        code, _ = hierarchical_kmeans(embeddings[1:], config["kmeans_k"], 0, config["kmeans_max_depth"])
        full = np.vstack([np.full((1, code.shape[1]), config["kmeans_k"]), code])
        codes[stream] = ItemCodes(torch.from_numpy(full), torch.from_numpy(embeddings), config["kmeans_k"])
    model = get_model("EAGER")(config, dataset, item_codes=codes)
    seq, lengths, targets = scale.last_histories(dataset, config["MAX_ITEM_LIST_LENGTH"])
    step = scale.train_step(model, scale.interaction_of(model, seq, lengths, targets, torch.arange(args.batch)))
    step()
    step()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        step()
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=25))


if __name__ == "__main__":
    main()
