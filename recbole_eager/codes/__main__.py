"""Build (or load) the item codes of a dataset and print their statistics.

``python -m recbole_eager.codes --dataset=amazon-beauty [--kmeans_k=256 --data_path=... ...]``
"""
import sys

from recbole.utils import init_logger, init_seed

from recbole_eager.codes import load_or_build_item_codes
from recbole_eager.config import Config
from recbole_eager.data import create_dataset
from recbole_eager.utils import RecBoleEagerError


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


def main():
    if {"-h", "--help"} & set(sys.argv[1:]):
        print(__doc__.strip() + "\n\nAny EAGER config key as --key=value (kmeans_k, kmeans_balanced, behavior_checkpoint, "
              "semantic_model, item_text_fields, rebuild_codes, ...; defaults in recbole_eager/properties/model/EAGER.yaml).")
        return 0
    # Command-line --key=value pairs are read by Config (RecBole style).
    try:
        config = Config(model="EAGER")
    except RecBoleEagerError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    init_seed(config["seed"], config["reproducibility"])
    init_logger(config)
    dataset = create_dataset(config)
    for line in describe(load_or_build_item_codes(config, dataset)):
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
