"""A synthetic catalogue: N items in latent clusters, users whose sequences follow the
clusters, written as RecBole atomic files plus one embedding file per stream.

``python -m recbole_eager.experiments.synthetic --n_items=100000 --n_users=10000 --out=dataset``
writes ``<out>/<name>/<name>.inter`` (user, item, timestamp), ``<name>.item`` (item,
cluster) and ``<name>-behavior.npz`` / ``<name>-semantic.npz`` (``tokens``, ``embeddings``;
``behavior_embedding_file`` / ``semantic_embedding_file``). The same arguments and seed
give the same bytes.

Items: ``n_items / cluster_size`` clusters with centres N(0, I_d); an item is its centre
plus N(0, 0.5² I_d). Its behavior embedding is that latent plus noise; its semantic
embedding a fixed random rotation of the latent plus other noise, L2-normalised (two
views of one structure, as behavior and text are). Users: a session of
``min_length..max_length`` interactions that stays in its cluster with probability
``stay`` and jumps to a cluster drawn by popularity otherwise; within a cluster an item's
rank is drawn from a power law (a few popular items per cluster).
"""
import argparse
import os

import numpy as np

from recbole_eager.utils import RecBoleEagerError


def _power_rank(rng, sizes):
    """Index in 0..size-1 per entry of ``sizes``, low indices likelier (~ u^3)."""
    return np.minimum((rng.random(len(sizes)) ** 3 * sizes).astype(np.int64), sizes - 1)


def generate(n_items, n_users, dim=64, cluster_size=100, min_length=5, max_length=30, stay=0.8, seed=0):
    """Arrays of the catalogue: ``users``, ``items``, ``times`` (one row per interaction,
    users' rows consecutive and in time order), ``cluster`` [n_items], ``behavior`` and
    ``semantic`` [n_items, dim] float32. Item ``i`` is token ``i + 1``."""
    if n_items < 2 * cluster_size or n_users < 1 or not 2 <= min_length <= max_length:
        raise RecBoleEagerError(
            f"synthetic catalogue: need n_items >= 2 * cluster_size ({n_items}, {cluster_size}), n_users >= 1, "
            f"2 <= min_length <= max_length ({min_length}, {max_length})"
        )
    rng = np.random.default_rng(seed)
    n_clusters = n_items // cluster_size
    cluster = rng.permutation(np.arange(n_items) % n_clusters)
    centres = rng.standard_normal((n_clusters, dim), dtype=np.float32)
    latent = centres[cluster] + 0.5 * rng.standard_normal((n_items, dim), dtype=np.float32)
    behavior = latent + 0.5 * rng.standard_normal((n_items, dim), dtype=np.float32)
    rotation, _ = np.linalg.qr(rng.standard_normal((dim, dim)))
    semantic = latent @ rotation.astype(np.float32) + 0.5 * rng.standard_normal((n_items, dim), dtype=np.float32)
    semantic /= np.linalg.norm(semantic, axis=1, keepdims=True)

    by_cluster = np.argsort(cluster, kind="stable")  # items of cluster c: by_cluster[start[c]:start[c] + size[c]]
    size = np.bincount(cluster, minlength=n_clusters)
    start = np.cumsum(size) - size
    popularity = 1.0 / np.arange(1, n_clusters + 1)  # cluster c's popularity ~ 1 / (c + 1)
    popularity /= popularity.sum()

    lengths = rng.integers(min_length, max_length + 1, n_users)
    current = rng.choice(n_clusters, n_users, p=popularity)
    steps = []
    for step in range(max_length):
        jump = rng.random(n_users) > stay
        current = np.where(jump, rng.choice(n_clusters, n_users, p=popularity), current)
        steps.append(by_cluster[start[current] + _power_rank(rng, size[current])])
    items = np.stack(steps, axis=1)
    keep = np.arange(max_length)[None, :] < lengths[:, None]
    users = np.broadcast_to(np.arange(n_users)[:, None], keep.shape)[keep]
    times = np.broadcast_to(np.arange(max_length)[None, :], keep.shape)[keep] + 1_000_000
    return {"users": users, "items": items[keep], "times": times, "cluster": cluster, "behavior": behavior, "semantic": semantic}


def write(data, out, name):
    """RecBole atomic files and embedding files of ``generate``'s arrays under ``out/name``."""
    folder = os.path.join(out, name)
    os.makedirs(folder, exist_ok=True)
    tokens = np.arange(1, len(data["cluster"]) + 1)
    with open(os.path.join(folder, f"{name}.inter"), "w") as f:
        f.write("user_id:token\titem_id:token\ttimestamp:float\n")
        np.savetxt(f, np.stack([data["users"] + 1, tokens[data["items"]], data["times"]], axis=1), fmt="%d", delimiter="\t")
    with open(os.path.join(folder, f"{name}.item"), "w") as f:
        f.write("item_id:token\tcluster:token\n")
        np.savetxt(f, np.stack([tokens, data["cluster"]], axis=1), fmt="%d", delimiter="\t")
    paths = {}
    for stream in ("behavior", "semantic"):
        paths[stream] = os.path.join(folder, f"{name}-{stream}.npz")
        with open(paths[stream], "wb") as f:  # a file object: savez adds no .npz, keeps no timestamps
            np.savez(f, tokens=tokens.astype(str), embeddings=data[stream])
    return folder, paths


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n_items", type=int, required=True)
    parser.add_argument("--n_users", type=int, default=10_000)
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--cluster_size", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="dataset")
    parser.add_argument("--name", default=None, help="default: synthetic-<n_items>")
    args = parser.parse_args(argv)
    name = args.name or f"synthetic-{args.n_items}"
    data = generate(args.n_items, args.n_users, args.dim, args.cluster_size, seed=args.seed)
    folder, _ = write(data, args.out, name)
    print(f"{len(data['users'])} interactions of {args.n_users} users over {args.n_items} items written to {folder}")


if __name__ == "__main__":
    main()
