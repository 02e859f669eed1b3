"""Build (or load) the item codes of a dataset and print their statistics.

``python -m recbole_eager.codes --dataset=amazon-beauty [--kmeans_k=256 --data_path=... ...] [--export=DIR]``

``--export=DIR`` also writes each stream's item embeddings to ``DIR/<dataset>-<stream>.npz``
(``tokens``, ``embeddings``): ``<stream>_embedding_file`` of a run on a machine without the
text encoder's weights or the behavior checkpoint builds the same codes from them.
"""
import io
import os
import sys

import numpy as np

from recbole.utils import init_logger, init_seed

from recbole_eager.codes import load_or_build_item_codes
from recbole_eager.config import Config
from recbole_eager.data import create_dataset
from recbole_eager.utils import RecBoleEagerError, atomic_write


def _source(name, s):
    if "embedding_file" in s:
        return f"file {s['embedding_file']} (rows by {s['keyed_by']}, {s['ignored_rows']} rows of other items ignored)"
    if name == "behavior":
        return (
            f"{s['model']} checkpoint {s['checkpoint']} (best valid {s['valid_metric']} = "
            f"{s['best_valid_score']:.4f}, epoch {s['epoch']}; {s['embed_seconds']:.1f}s)"
        )
    return (
        f"{s['encoder']} ({s['encode_seconds']:.1f}s); items without the first text field: "
        f"{s['empty_first_field']}, without any text: {s['no_text']}"
    )


def describe(codes):
    """Lines of statistics per stream."""
    lines = [f"cache: {codes['path']} ({'hit' if codes['cache_hit'] else 'miss: built'})"]
    for name in [n for n in ("behavior", "semantic") if n in codes]:
        c, s = codes[name], codes[name].stats
        if s.get("code_method") == "rqvae":
            method = (f"RQ-VAE in {s['rqvae_seconds']:.1f}s: codebook usage {[round(u, 3) for u in s['codebook_usage']]}, "
                      f"{s['items_in_collisions']} items in collisions (largest {s['largest_collision']}), "
                      f"reconstruction MSE {s['reconstruction_mse']:.4f}")
        else:
            method = f"fallbacks {s['fallbacks']}, k-means {s['kmeans_calls']} calls in {s['kmeans_seconds']:.1f}s"
        lines += [
            f"{name}: {s['items']} items, K={c.num_clusters}, depth {c.depth}, depth histogram {s['depth_histogram']}",
            f"  level-1 clusters {s['level1_clusters']}, sizes min/median/max {s['level1_size_min']}/"
            f"{s['level1_size_median']:g}/{s['level1_size_max']}, {method}",
            f"  source: {_source(name, s)}",
        ]
    return lines


def export_embeddings(codes, dataset, folder):
    """``folder/<dataset>-<stream>.npz`` per stream, rows by item token; returns the paths."""
    os.makedirs(folder, exist_ok=True)
    tokens = dataset.id2token(dataset.iid_field, np.arange(1, dataset.item_num)).astype(str)
    paths = {}
    for name in [n for n in ("behavior", "semantic") if n in codes]:
        paths[name] = os.path.join(folder, f"{dataset.dataset_name}-{name}.npz")
        buffer = io.BytesIO()
        np.savez(buffer, tokens=tokens, embeddings=codes[name].embeddings[1:].numpy())
        atomic_write(paths[name], buffer.getvalue())
    return paths


def main():
    if {"-h", "--help"} & set(sys.argv[1:]):
        print(__doc__.strip() + "\n\nAny EAGER config key as --key=value (kmeans_k, kmeans_balanced, behavior_checkpoint, "
              "semantic_model, item_text_fields, rebuild_codes, ...; defaults in recbole_eager/properties/model/EAGER.yaml), "
              "and --export=DIR.")
        return 0
    export = [a for a in sys.argv[1:] if a.startswith("--export=")]
    sys.argv = [a for a in sys.argv if a not in export]
    # Command-line --key=value pairs are read by Config (RecBole style).
    try:
        config = Config(model="EAGER")
    except RecBoleEagerError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    init_seed(config["seed"], config["reproducibility"])
    init_logger(config)
    dataset = create_dataset(config)
    codes = load_or_build_item_codes(config, dataset)
    for line in describe(codes):
        print(line)
    if export:
        for name, path in export_embeddings(codes, dataset, export[-1].split("=", 1)[1]).items():
            print(f"{name} embeddings: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
