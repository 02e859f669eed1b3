"""Dual item codes for generative recommenders (EAGER, KDD 2024).

Every item gets a behavior code (from the item table of an ID-based model trained on
the same split) and a semantic code (from a sentence encoder over its text), both by
hierarchical k-means; see ``load_or_build_item_codes``. CLI: ``python -m recbole_eager.codes``.
"""
from recbole_eager.codes.build import STREAMS, ItemCodes, load_or_build_item_codes
from recbole_eager.codes.kmeans import hierarchical_kmeans

__all__ = ["STREAMS", "ItemCodes", "hierarchical_kmeans", "load_or_build_item_codes"]
