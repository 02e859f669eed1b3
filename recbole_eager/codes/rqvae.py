"""RQ-VAE item codes (TIGER, Rajput et al., NeurIPS 2023): residual quantisation of an
item's semantic embedding, plus one digit that makes colliding codes unique.

An MLP encoder maps the embedding to a latent vector; ``levels`` codebooks of ``K``
codewords quantise it residually (vector-quantize-pytorch's ``ResidualVQ``: codebooks
initialised by k-means on the first batch, updated by exponential moving averages,
commitment loss); an MLP decoder reconstructs the embedding. Loss: reconstruction MSE +
commitment. A codeword no batch has chosen for a while (EMA cluster size below
``dead_code_threshold``) is re-initialised from the batch, the guard against codebook
collapse. The item's code is its ``levels`` codeword indices, then a digit numbering the
items that share them (0 for an item alone), as TIGER does.
"""
import time

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from recbole_eager.utils import RecBoleEagerError


def _mlp(sizes):
    layers = []
    for i, (a, b) in enumerate(zip(sizes, sizes[1:])):
        layers.append(nn.Linear(a, b))
        if i + 2 < len(sizes):
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


class RQVAE(nn.Module):
    def __init__(self, dim, hidden, latent_dim, levels, codebook_size, commitment, kmeans_init, dead_code_threshold):
        super().__init__()
        from vector_quantize_pytorch import ResidualVQ

        self.encoder = _mlp([dim, *hidden, latent_dim])
        self.decoder = _mlp([latent_dim, *reversed(hidden), dim])
        self.quantizer = ResidualVQ(
            dim=latent_dim, num_quantizers=levels, codebook_size=codebook_size, kmeans_init=kmeans_init, kmeans_iters=10,
            threshold_ema_dead_code=dead_code_threshold, commitment_weight=commitment, decay=0.99,
        )

    def forward(self, x):
        """Reconstruction, codeword indices [n, levels] and the commitment loss."""
        quantized, indices, commitment = self.quantizer(self.encoder(x))
        return self.decoder(quantized), indices, commitment.sum()


def deduplicate(indices, k):
    """``indices`` [n, levels] plus a last digit numbering the items that share them."""
    _, group = np.unique(indices, axis=0, return_inverse=True)
    group = group.reshape(-1)
    order = np.argsort(group, kind="stable")
    sizes = np.bincount(group)
    rank = np.empty(len(group), dtype=np.int64)
    rank[order] = np.arange(len(group)) - np.repeat(np.cumsum(sizes) - sizes, sizes)
    if rank.max() >= k:
        raise RecBoleEagerError(
            f"RQ-VAE gave {rank.max() + 1} items one code, more than rqvae_codebook_size={k} can number; "
            "raise rqvae_levels, rqvae_codebook_size or rqvae_epochs"
        )
    return np.concatenate([indices, rank[:, None]], axis=1), sizes


def train_rqvae(embeddings, k, levels, seed, epochs=200, batch_size=1024, learning_rate=1e-3, hidden=(512, 256, 128),
                latent_dim=32, commitment=0.25, kmeans_init=True, dead_code_threshold=2, show_progress=True):
    """Codeword indices [n, levels] of ``embeddings`` [n, d] after training, and stats
    (codebook usage per level: the share of codewords some item uses). Deterministic for
    a given ``seed`` (on CPU)."""
    start = time.perf_counter()
    x = torch.as_tensor(np.ascontiguousarray(embeddings, dtype=np.float32))
    if len(x) < k:
        raise RecBoleEagerError(f"dataset has {len(x)} items, fewer than rqvae_codebook_size={k}; lower it")
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = RQVAE(x.size(1), hidden, latent_dim, levels, k, commitment, kmeans_init, dead_code_threshold)
        optimizer = torch.optim.Adam(model.parameters(), lr=learning_rate)
        generator = torch.Generator().manual_seed(seed)
        model.train()
        for _ in tqdm(range(epochs), desc="RQ-VAE", disable=not show_progress):
            for rows in torch.randperm(len(x), generator=generator).split(batch_size):
                reconstruction, _, commit = model(x[rows])
                loss = F.mse_loss(reconstruction, x[rows]) + commit
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
        model.eval()
        with torch.no_grad():
            reconstruction, indices, _ = model(x)
    indices = indices.numpy().astype(np.int64)
    return indices, {
        "code_method": "rqvae",
        "codebook_usage": [len(np.unique(indices[:, level])) / k for level in range(levels)],
        "reconstruction_mse": float(F.mse_loss(reconstruction, x)),
        "rqvae_seconds": time.perf_counter() - start,
    }


def rqvae_codes(embeddings, k, levels, seed, **kwargs):
    """Codes [n, levels + 1] (``train_rqvae`` plus the de-duplicating digit) and stats."""
    indices, stats = train_rqvae(embeddings, k, levels, seed, **kwargs)
    codes, sizes = deduplicate(indices, k)
    level1 = np.bincount(codes[:, 0], minlength=k)
    level1 = level1[level1 > 0]
    stats.update(
        items_in_collisions=int(sizes[sizes > 1].sum()), largest_collision=int(sizes.max()),
        depth_histogram={levels + 1: len(codes)}, level1_clusters=len(level1), level1_size_min=int(level1.min()),
        level1_size_median=float(np.median(level1)), level1_size_max=int(level1.max()),
    )
    return codes, stats
