"""Dual item codes (behavior and semantic), built once per input and cached on disk."""
import hashlib
import io
import json
import os
from dataclasses import dataclass, field
from logging import getLogger

import numpy as np
import torch

from recbole_eager.codes.behavior import behavior_embeddings
from recbole_eager.codes.embedding_file import embeddings_from_file
from recbole_eager.codes.kmeans import check_num_clusters, hierarchical_kmeans
from recbole_eager.codes.rqvae import rqvae_codes
from recbole_eager.codes.semantic import semantic_embeddings
from recbole_eager.utils import PROPERTIES_DIR, RecBoleEagerError, atomic_write

FORMAT_VERSION = 1
STREAMS = ("behavior", "semantic")
REQUIRED_KEYS = ("kmeans_k", "kmeans_max_depth", "kmeans_seed", "kmeans_balanced")
TEXT_KEYS = ("semantic_model", "semantic_batch_size", "item_text_fields")
RQVAE_KEYS = ("rqvae_levels", "rqvae_codebook_size", "rqvae_epochs", "rqvae_batch_size", "rqvae_learning_rate",
              "rqvae_hidden", "rqvae_latent_dim", "rqvae_commitment", "rqvae_dead_code_threshold")


@dataclass
class ItemCodes:
    """Codes of one stream. ``codes`` [item_num, L]: level tokens in ``0..K-1``, shorter
    codes padded with END = K; row 0 (padding item) is all END. ``embeddings``
    [item_num, d] are the vectors the codes were built from (row 0 zeros)."""

    codes: torch.Tensor
    embeddings: torch.Tensor
    num_clusters: int
    stats: dict = field(default_factory=dict)

    @property
    def depth(self):
        return self.codes.shape[1]

    @property
    def end_token(self):
        return self.num_clusters


def _sha256_file(path):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def cache_inputs(config, streams=STREAMS):
    """Everything the codes depend on, as a JSON string (its hash names the cache file)."""
    files = {}
    for suffix in ("inter", "item"):
        path = os.path.join(config["data_path"], f"{config['dataset']}.{suffix}")
        if os.path.isfile(path):
            files[suffix] = _sha256_file(path)
    embedding_files = {s: config[f"{s}_embedding_file"] for s in streams if config[f"{s}_embedding_file"]}
    checkpoint = config["behavior_checkpoint"]
    if "behavior" in embedding_files:
        behavior = None
    elif checkpoint:
        if not os.path.isfile(checkpoint):
            raise RecBoleEagerError(f"behavior_checkpoint {checkpoint} does not exist")
        behavior = {"checkpoint": _sha256_file(checkpoint)}
    else:
        defaults = PROPERTIES_DIR / "model" / f"{config['behavior_model']}.yaml"
        behavior = {
            "model": config["behavior_model"],
            "epochs": config["behavior_epochs"],
            "seed": config["seed"],
            "model_yaml": defaults.read_text() if defaults.is_file() else None,
            **({"sequence_order": config["sequence_order"]} if config["sequence_order"] not in (None, "time") else {}),
        }
    inputs = {
        "format": FORMAT_VERSION,
        "files": files,
        "dataset_args": {k: config[k] for k in sorted(config.parameters["Dataset"]) if k != "MAX_ITEM_LIST_LENGTH"},
        "eval_args": config["eval_args"],
        "behavior": behavior,
        **{k: config[k] for k in REQUIRED_KEYS + TEXT_KEYS if k != "semantic_batch_size"},
        **({"streams": list(streams)} if tuple(streams) != STREAMS else {}),
        **({"embedding_files": {s: _sha256_file(p) for s, p in embedding_files.items()}} if embedding_files else {}),
        **({k: config[k] for k in ("code_method",) + RQVAE_KEYS} if uses_rqvae(config, streams) else {}),
    }
    return json.dumps(inputs, sort_keys=True, default=str)


def cache_path(config, inputs):
    directory = config["code_cache_dir"] or os.path.join(config["checkpoint_dir"], "codes")
    return os.path.join(directory, f"{config['dataset']}-{hashlib.sha256(inputs.encode()).hexdigest()[:16]}.pt")


def enabled_streams(config):
    """The streams a run uses (``use_<stream>_stream``); each needs only its own inputs."""
    return [s for s in STREAMS if config[f"use_{s}_stream"] is not False]


def _checksum(streams):
    digest = hashlib.sha256()
    for name in sorted(streams):
        s = streams[name]
        for tensor in (s["codes"], s["embeddings"]):
            digest.update(json.dumps([str(tensor.dtype), list(tensor.shape)]).encode())
            digest.update(tensor.contiguous().numpy().tobytes())
        digest.update(json.dumps([name, s["num_clusters"], s["stats"]], sort_keys=True, default=str).encode())
    return digest.hexdigest()


def _save(codes, path, inputs):
    streams = {name: dict(vars(c)) for name, c in codes.items()}
    payload = {"format": FORMAT_VERSION, "inputs": inputs, "streams": streams, "checksum": _checksum(streams)}
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    atomic_write(path, buffer.getvalue())


def _load(path, item_num):
    """Cached codes, or None (logged) when the file is unreadable, corrupted or stale."""
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
        streams = payload["streams"]
        if payload["checksum"] != _checksum(streams):
            raise ValueError("checksum mismatch")
        codes = {name: ItemCodes(**value) for name, value in streams.items()}
        if any(len(c.codes) != item_num or len(c.embeddings) != item_num for c in codes.values()):
            raise ValueError(f"codes do not cover the dataset's {item_num} items")
        return codes
    except Exception as err:  # any unreadable file is rebuilt
        getLogger().warning(f"item code cache {path} is unusable ({type(err).__name__}: {err}); rebuilding it")
        return None


def uses_rqvae(config, streams=STREAMS):
    """RQ-VAE codes (``code_method: rqvae``) are for the semantic stream; behavior codes stay k-means."""
    return config["code_method"] == "rqvae" and "semantic" in streams


def num_clusters(config, stream):
    """Codewords per level of ``stream``'s codes (its END token)."""
    return config["rqvae_codebook_size"] if stream == "semantic" and uses_rqvae(config) else config["kmeans_k"]


def build_item_codes(embeddings, config, stats, stream="behavior"):
    """ItemCodes of one stream from its embeddings [item_num, d] (row 0 = padding)."""
    k = num_clusters(config, stream)
    if stream == "semantic" and uses_rqvae(config):
        codes, code_stats = rqvae_codes(
            embeddings[1:], k, config["rqvae_levels"], config["kmeans_seed"], epochs=config["rqvae_epochs"],
            batch_size=config["rqvae_batch_size"], learning_rate=config["rqvae_learning_rate"], hidden=tuple(config["rqvae_hidden"]),
            latent_dim=config["rqvae_latent_dim"], commitment=config["rqvae_commitment"],
            dead_code_threshold=config["rqvae_dead_code_threshold"], show_progress=bool(config["show_progress"]),
        )
    else:
        codes, code_stats = hierarchical_kmeans(embeddings[1:], k, config["kmeans_seed"], config["kmeans_max_depth"], config["kmeans_balanced"])
    codes = np.vstack([np.full((1, codes.shape[1]), k, dtype=np.int64), codes])
    stats = {**stats, "items": len(codes) - 1, "depth": codes.shape[1], **code_stats}
    return ItemCodes(torch.from_numpy(codes), torch.from_numpy(np.asarray(embeddings, dtype=np.float32)), k, stats)


def load_or_build_item_codes(config, dataset):
    """Behavior and semantic codes of every item of ``dataset`` (the enabled streams only: a
    behavior-only run needs no item text, a semantic-only run no behavior model), from cache
    when inputs match. ``<stream>_embedding_file`` replaces that stream's behavior model or
    text encoder by a file (``embedding_file.py``).

    Returns ``{"behavior": ItemCodes, "semantic": ItemCodes, "path": cache file,
    "cache_hit": bool}``. ``rebuild_codes: True`` ignores the cache.
    """
    logger = getLogger()
    streams = enabled_streams(config)
    from_file = {s for s in streams if config[f"{s}_embedding_file"]}
    behavior = "behavior" in streams and "behavior" not in from_file and not config["behavior_checkpoint"]
    text = "semantic" in streams and "semantic" not in from_file
    required = (REQUIRED_KEYS + (("behavior_model", "behavior_epochs") if behavior else ()) + (TEXT_KEYS if text else ())
                + (RQVAE_KEYS if uses_rqvae(config, streams) else ()))
    missing = [k for k in required if config[k] is None]
    if missing:
        raise RecBoleEagerError(f"config lacks {missing} (defaults: properties/model/EAGER.yaml)")
    if streams != ["semantic"] or not uses_rqvae(config, streams):  # some stream's codes by k-means
        check_num_clusters(config["kmeans_k"], dataset.item_num - 1)
    inputs = cache_inputs(config, streams)
    path = cache_path(config, inputs)
    if os.path.isfile(path) and not config["rebuild_codes"]:
        codes = _load(path, dataset.item_num)
        if codes is not None:
            logger.info(f"item codes loaded from {path}")
            return {**codes, "path": path, "cache_hit": True}

    codes = {}
    for name, embed in (("semantic", semantic_embeddings), ("behavior", behavior_embeddings)):  # text errors first: fast
        if name not in streams:
            continue
        if name in from_file:
            embeddings, stats = embeddings_from_file(f"{name}_embedding_file", config[f"{name}_embedding_file"], dataset)
        else:
            embeddings, stats = embed(config, dataset)
        codes[name] = build_item_codes(embeddings, config, stats, name)
        logger.info(f"{name} codes: depth {codes[name].depth}, {codes[name].stats}")
    _save(codes, path, inputs)
    logger.info(f"item codes saved to {path}")
    return {**codes, "path": path, "cache_hit": False}
