"""CPU-only kernels that compute what the plain path computes, kept because each is worth
more than 10 % of a test pass on CPU (``results/speed.md``). Each has an equivalence test
(tests/test_cpu_fast.py). ``applies`` decides where they run; ``cpu_fast_paths: False``
switches them off."""
import torch
from torch import nn


def applies(enabled, tensor):
    """The one rule: fast paths run where enabled and on CPU (CUDA takes the plain path)."""
    return enabled and not tensor.is_cuda


def single_query_attention(q, k, v):
    """``scaled_dot_product_attention`` of one query per row (a decoding step) over a few
    keys, q [N, heads, 1, d], k and v [N, heads, t, d], by products and sums: PyTorch's CPU
    attention kernel spends most of a beam-search step on its per-row overhead here."""
    weights = torch.softmax((q * k).sum(-1, keepdim=True) * q.size(-1) ** -0.5, dim=-2)
    return (weights * v).sum(-2, keepdim=True)


class ChildBlocks(nn.Module):
    """Per level, every prefix's children as one contiguous block (prefixes are numbered in
    (parent, digit) order): their states, digits, counts and block starts."""

    def __init__(self, trie):
        super().__init__()
        for level in range(trie.depth):
            table = trie.table(level)
            present = table >= 0
            count = present.sum(1)
            self.register_buffer(f"children_{level}", table[present], persistent=False)
            self.register_buffer(f"digits_{level}", present.nonzero()[:, 1], persistent=False)
            self.register_buffer(f"count_{level}", count, persistent=False)
            self.register_buffer(f"start_{level}", count.cumsum(0) - count, persistent=False)

    def get(self, name, level):
        return getattr(self, f"{name}_{level}")


def _ranges(starts, counts):
    """Concatenation of ``arange(s, s + c)`` for each start and count."""
    ends = counts.cumsum(0)
    return torch.arange(int(ends[-1]), device=starts.device) - (ends - counts - starts).repeat_interleave(counts)


def grouped_child_logits(blocks, hidden, level, parent, offset, token_embedding, vocab):
    """Node-token logits [N, vocab] as ``CodeTrie.child_logits`` computes them, by one matmul
    per prefix present against its block of children, instead of gathering [N, vocab, H]
    child embeddings (on CPU that gather dominates a beam-search step). Only the present
    prefixes' children are embedded, so a step's cost does not grow with the catalogue."""
    order = parent.argsort()
    groups, group_sizes = torch.unique_consecutive(parent[order], return_counts=True)
    start, count = blocks.get("start", level), blocks.get("count", level)
    group_counts = count[groups]
    children = blocks.get("children", level)[_ranges(start[groups], group_counts)]
    child_emb = token_embedding(offset + children).split(group_counts.tolist())
    rows = hidden[order].split(group_sizes.tolist())
    values = torch.cat([(r @ e.T).flatten() for r, e in zip(rows, child_emb)])
    counts = count[parent[order]]  # values: each sorted row's children, in block order
    digits = blocks.get("digits", level)[_ranges(start[parent[order]], counts)]
    logits = hidden.new_full((hidden.size(0), vocab), float("-inf"))
    logits.view(-1).index_put_((order.repeat_interleave(counts) * vocab + digits,), values)
    return logits
