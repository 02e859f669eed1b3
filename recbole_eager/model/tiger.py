r"""
TIGER
################################################
Reference:
    Shashank Rajput et al. "Recommender Systems with Generative Retrieval." in NeurIPS 2023.

An encoder over the item history and an autoregressive decoder that generates the next
item's semantic ID: RQ-VAE codeword indices of its text embedding plus a de-duplicating
digit (``code_method: rqvae``, ``recbole_eager/codes/rqvae.py``), decoded by
trie-constrained beam search. That is EAGER's semantic stream alone, so TIGER reuses
EAGER's encoder, decoder, trie and beam search; ``properties/model/TIGER.yaml`` holds
TIGER's hyper-parameters. Differences from the paper: no user-id token, Adam 1e-3 with
warm-up, 4 heads of 32 instead of T5's 6 of 64, MiniLM text embeddings by default.
"""
from recbole_eager.model.eager import EAGER


class TIGER(EAGER):
    CONFIG_BASES = ("EAGER",)  # properties/model/EAGER.yaml loads before TIGER.yaml
