"""The prefix trie of one stream's item codes, its code tokens, and the logits over a
prefix's children."""
import torch
from torch import nn


def build_trie(codes, vocab):
    """Dense prefix trie over the codes [n_items, L] of items 1..n-1.

    Returns one LongTensor per level ``t``: ``[n_prefixes_t, vocab]`` holding the index of
    the extended prefix (``-1`` if no item has it); at the last level, the item id.
    Prefixes are numbered in lexicographic order, so a prefix's children are contiguous.
    """
    real = codes[1:]
    item_ids = torch.arange(1, codes.size(0), device=codes.device)
    parent = torch.zeros(real.size(0), dtype=torch.long, device=codes.device)
    tries = []
    for level in range(codes.size(1)):
        if level + 1 < codes.size(1):
            _, child = torch.unique(real[:, : level + 1], dim=0, return_inverse=True)
        else:
            child = item_ids
        table = torch.full((int(parent.max()) + 1, vocab), -1, dtype=torch.long, device=codes.device)
        table[parent, real[:, level]] = child
        tries.append(table)
        parent = child
    return tries


def walk_trie(codes, tries):
    """Trie state of every prefix of every item's code: [n_items, L] (0 where a code is not in the trie)."""
    states = torch.empty_like(codes)
    state = torch.zeros(codes.size(0), dtype=torch.long, device=codes.device)
    for level, table in enumerate(tries):
        state = table[state, codes[:, level]].clamp(min=0)
        states[:, level] = state
    return states


class CodeTrie(nn.Module):
    """Codes [n_items, L] (digits ``0..K-1``, END = K), their trie, and their token ids.

    ``node_tokens``: each trie node (code prefix) is its own token, so the last level has
    one token per item and a step scores only the children of the current prefix.
    Otherwise digit ``c`` of level ``t`` is one token under every prefix. Token ids are
    offset per level (``level_offset``). All buffers are rebuilt from the codes, never saved.
    """

    def __init__(self, codes, node_tokens):
        super().__init__()
        self.depth, self.vocab = codes.size(1), int(codes.max()) + 1
        self.node_tokens = node_tokens
        tables = build_trie(codes, self.vocab)
        self.register_buffer("codes", codes, persistent=False)
        self.register_buffer("item_states", walk_trie(codes, tables), persistent=False)
        for level, table in enumerate(tables):
            self.register_buffer(f"table_{level}", table, persistent=False)
        sizes = torch.tensor([int(t.max()) + 1 if node_tokens else self.vocab for t in tables])
        self.register_buffer("level_size", sizes, persistent=False)
        self.register_buffer("level_offset", sizes.cumsum(0) - sizes, persistent=False)
        self.n_tokens = int(sizes.sum())

    def table(self, level):
        """[n_prefixes, vocab]: next prefix state (item id at the last level), -1 if none."""
        return getattr(self, f"table_{level}")

    def level_index(self, digits, states):
        """Index of a code token within its level: the trie state (node) or the digit (level)."""
        return states if self.node_tokens else digits

    def token_ids(self, digits, states, levels=slice(None)):
        """Token ids of ``digits`` whose prefixes are the trie ``states`` (same shape), at
        ``levels`` (by default the last axis holds every level)."""
        return self.level_offset[levels] + self.level_index(digits, states)

    def parents(self, items):
        """Trie state before each level of the items' codes: [n, L] (root = 0)."""
        states = self.item_states[items]
        return torch.cat([states.new_zeros(states.size(0), 1), states[:, :-1]], dim=1)

    def child_logits(self, hidden, level, parent, token_embedding):
        """Logits [N, vocab] of the level-``level`` digit after prefix states ``parent`` [N],
        against the tied token embeddings. Node tokens: only the prefix's children are
        scored (the others ``-inf``), by a gather and one batched matmul. Level tokens:
        every digit of the level."""
        offset = self.level_offset[level]
        if not self.node_tokens:
            return hidden @ token_embedding.weight[offset : offset + self.vocab].T
        children = self.table(level)[parent]
        child_emb = token_embedding(offset + children.clamp(min=0))
        logits = torch.bmm(child_emb, hidden.unsqueeze(-1)).squeeze(-1)
        return logits.masked_fill(children < 0, float("-inf"))
