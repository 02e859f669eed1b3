"""Hierarchical k-means: one discrete code (a path of cluster labels) per item."""
import time
import warnings
from collections import Counter

import numpy as np
from sklearn.cluster import KMeans
from sklearn.exceptions import ConvergenceWarning

from recbole_eager.utils import RecBoleEagerError


def check_num_clusters(k, n_items):
    """Raise unless ``k`` clusters per level can code ``n_items`` real items."""
    if k < 2:
        raise RecBoleEagerError(f"kmeans_k={k}: hierarchical k-means needs at least 2 clusters per level")
    if n_items < k:
        raise RecBoleEagerError(f"dataset has {n_items} items, fewer than kmeans_k={k}; lower kmeans_k")


def _split(x, k, seed, path, stats, balanced):
    """Cluster labels of a group larger than ``k``. ``balanced``: every cluster holds
    ``floor(n / k)`` or ``ceil(n / k)`` items (k-means-constrained's min-cost-flow
    assignment). Groups k-means cannot split (identical vectors, or a single non-empty
    cluster) fall back to ``k`` contiguous chunks in item order."""
    if np.ptp(x, axis=0).max() > 0:
        random_state = int(np.random.SeedSequence([seed % 2**32, len(path), *path]).generate_state(1)[0])
        with warnings.catch_warnings():  # few distinct vectors: k-means warns, leaves clusters empty
            warnings.simplefilter("ignore", ConvergenceWarning)
            if balanced:
                from k_means_constrained import KMeansConstrained

                size = len(x) // k
                model = KMeansConstrained(k, size_min=size, size_max=size + (len(x) % k > 0), n_init=1, random_state=random_state)
                labels = model.fit_predict(x.astype(np.float64))
            else:
                labels = KMeans(n_clusters=k, n_init=1, random_state=random_state).fit_predict(x)
        stats["kmeans_calls"] += 1
        if len(np.unique(labels)) > 1:
            return labels
    stats["fallbacks"] += 1
    return np.arange(len(x)) * k // len(x)


def hierarchical_kmeans(embeddings, k, seed, max_depth, balanced=False):
    """Codes of ``embeddings`` [n, d] (real items only) by recursive k-means.

    Each group larger than ``k`` is split into ``k`` clusters (level token = cluster
    label; ``balanced``: of equal sizes, as the paper's even splits); a group of 2..k items gives every item its own token, ordered by distance
    to the group centroid (closest = 0, ties by item order); a single item is a leaf.
    Returns ``codes`` [n, L] (L = longest code; shorter codes padded with the END token
    ``k``) and ``stats``. Deterministic for a given ``seed``: each split's random state is
    derived from the seed and the group's code prefix.
    """
    x = np.ascontiguousarray(embeddings, dtype=np.float32)
    n = len(x)
    check_num_clusters(k, n)
    start = time.perf_counter()
    stats = {"kmeans_calls": 0, "fallbacks": 0}
    paths = [()] * n
    groups = [(np.arange(n), ())]
    while groups:
        idx, path = groups.pop()
        if len(idx) == 1:
            paths[idx[0]] = path
            continue
        if len(path) >= max_depth:
            raise RecBoleEagerError(
                f"hierarchical k-means needs more than kmeans_max_depth={max_depth} levels: {len(idx)} items "
                f"still share the code prefix {list(path)}; raise kmeans_max_depth or kmeans_k"
            )
        if len(idx) <= k:
            distance = np.linalg.norm(x[idx] - x[idx].mean(axis=0), axis=1)
            for token, i in enumerate(idx[np.argsort(distance, kind="stable")]):
                paths[i] = path + (token,)
            continue
        labels = _split(x[idx], k, seed, path, stats, balanced)
        groups += [(idx[labels == label], path + (int(label),)) for label in np.unique(labels)]

    codes = np.full((n, max(map(len, paths))), k, dtype=np.int64)
    for i, path in enumerate(paths):
        codes[i, : len(path)] = path
    level1 = np.bincount(codes[:, 0], minlength=k)
    level1 = level1[level1 > 0]
    stats.update(
        depth_histogram=dict(sorted(Counter(map(len, paths)).items())),
        level1_clusters=len(level1),
        level1_size_min=int(level1.min()),
        level1_size_median=float(np.median(level1)),
        level1_size_max=int(level1.max()),
        kmeans_seconds=time.perf_counter() - start,
    )
    return codes, stats
