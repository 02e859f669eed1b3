"""The Transformer layer EAGER's decoders and STT share: self-attention over code tokens,
cross-attention to a per-user memory, feed-forward (pre-LN)."""
import torch
import torch.nn.functional as F
from torch import nn

from recbole_eager.model import cpu_fast


class CodeTransformerLayer(nn.Module):
    """One pre-LN layer. The memory is projected once per user (``memory_kv``); the queries
    of all rows that share a user (its beams) are stacked along the query axis, so beams
    never copy the memory."""

    def __init__(self, hidden_size, n_heads, inner_size, dropout, eps, cpu_fast_paths=True):
        super().__init__()
        self.n_heads = n_heads
        self.cpu_fast_paths = cpu_fast_paths
        self.qkv = nn.Linear(hidden_size, 3 * hidden_size)
        self.self_out = nn.Linear(hidden_size, hidden_size)
        self.cross_q = nn.Linear(hidden_size, hidden_size)
        self.cross_kv = nn.Linear(hidden_size, 2 * hidden_size)
        self.cross_out = nn.Linear(hidden_size, hidden_size)
        self.ffn = nn.Sequential(nn.Linear(hidden_size, inner_size), nn.GELU(), nn.Linear(inner_size, hidden_size))
        self.norms = nn.ModuleList(nn.LayerNorm(hidden_size, eps=eps) for _ in range(3))
        self.dropout = nn.Dropout(dropout)

    def _heads(self, x):  # [N, T, H] -> [N, heads, T, H / heads]
        return x.view(x.size(0), x.size(1), self.n_heads, -1).transpose(1, 2)

    def _merge(self, x):  # [N, heads, T, d] -> [N, T, H]
        return x.transpose(1, 2).reshape(x.size(0), x.size(2), -1)

    def memory_kv(self, memory, valid=None, rows=None):
        """Cross-attention keys and values of a memory [B, S, H]: ([B, heads, S, d],) * 2.
        With ``valid`` [B, S], only those positions are projected (``rows``: ``memory[valid]``);
        the others stay zero, as attention masks them: histories are mostly padding."""
        if valid is None:
            kv = self.cross_kv(memory)
        else:
            projected = self.cross_kv(memory[valid] if rows is None else rows)
            kv = projected.new_zeros(*valid.shape, projected.size(-1))
            kv[valid] = projected
        return tuple(self._heads(t) for t in kv.chunk(2, dim=-1))

    def forward(self, x, memory_kv, memory_mask=None, causal=True, cache=None):
        """x [B * rows, T, H], ``rows`` per user of the memory; memory_mask [B, 1, 1, S]
        (True = attend). With ``cache`` (a dict, empty at the first step) x holds only the
        newest positions: the keys and values of earlier ones are read from it and the new
        ones appended."""
        q, k, v = (self._heads(t) for t in self.qkv(self.norms[0](x)).chunk(3, dim=-1))
        if cache is not None:
            if cache:
                k, v = torch.cat([cache["k"], k], dim=2), torch.cat([cache["v"], v], dim=2)
            cache["k"], cache["v"] = k, v
            causal = causal and q.size(2) > 1
        if cache is not None and q.size(2) == 1 and cpu_fast.applies(self.cpu_fast_paths, q):
            attn = cpu_fast.single_query_attention(q, k, v)
        else:
            attn = F.scaled_dot_product_attention(q, k, v, is_causal=causal)
        x = x + self.dropout(self.self_out(self._merge(attn)))

        users, length = memory_kv[0].size(0), x.size(1)
        q = self._heads(self.cross_q(self.norms[1](x)).reshape(users, -1, x.size(-1)))
        attn = F.scaled_dot_product_attention(q, *memory_kv, attn_mask=memory_mask)
        x = x + self.dropout(self.cross_out(self._merge(attn).reshape(x.size(0), length, -1)))
        return x + self.dropout(self.ffn(self.norms[2](x)))


class CodeTransformer(nn.Module):
    """A stack of ``CodeTransformerLayer`` and a final LayerNorm."""

    def __init__(self, n_layers, hidden_size, n_heads, inner_size, dropout, eps, cpu_fast_paths=True):
        super().__init__()
        self.layers = nn.ModuleList(
            CodeTransformerLayer(hidden_size, n_heads, inner_size, dropout, eps, cpu_fast_paths) for _ in range(n_layers)
        )
        self.final_norm = nn.LayerNorm(hidden_size, eps=eps)

    def memory_kv(self, memory, valid=None):
        """Every layer's cross-attention keys and values of ``memory`` [B, S, H] (at its
        ``valid`` positions only, if given)."""
        rows = None if valid is None else memory[valid]
        return [layer.memory_kv(memory, valid, rows) for layer in self.layers]

    def forward(self, x, memory_kvs, memory_mask=None, causal=True, caches=None):
        """``caches``: one dict per layer for incremental decoding (see the layer)."""
        for i, (layer, kv) in enumerate(zip(self.layers, memory_kvs)):
            x = layer(x, kv, memory_mask, causal, None if caches is None else caches[i])
        return self.final_norm(x)
