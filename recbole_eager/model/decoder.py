"""One stream's code decoder: token embeddings, teacher forcing, one decoding step and the
GCT summary token."""
import torch
from torch import nn

from recbole_eager.model import cpu_fast
from recbole_eager.model.layers import CodeTransformer
from recbole_eager.model.trie import CodeTrie


class StreamDecoder(nn.Module):
    """Autoregressive decoder of one stream's item codes (``CodeTrie``).

    Tokens: the trie's code tokens, then BOS and SUMMARY. The output layer is tied to the
    token embeddings. A training sequence is [BOS, c_1..c_L, SUMMARY]; the SUMMARY state,
    projected by ``summary_head``, is GCT's item representation.
    """

    def __init__(self, codes, target_dim, config):
        super().__init__()
        self.trie = CodeTrie(codes, node_tokens=config["code_tokens"] == "node")
        self.depth, self.vocab = self.trie.depth, self.trie.vocab
        hidden = config["hidden_size"]
        self.bos, self.summary = self.trie.n_tokens, self.trie.n_tokens + 1
        self.token_embedding = nn.Embedding(self.trie.n_tokens + 2, hidden)
        self.position_embedding = nn.Embedding(self.depth + 2, hidden)
        self.cpu_fast_paths = config["cpu_fast_paths"] is not False
        self.transformer = CodeTransformer(
            config["decoder_layers"], hidden, config["n_heads"], config["inner_size"],
            config["dropout_prob"], config["layer_norm_eps"], self.cpu_fast_paths,
        )
        self.summary_head = nn.Linear(hidden, target_dim) if config["use_gct"] else None
        self.child_blocks = cpu_fast.ChildBlocks(self.trie) if self.cpu_fast_paths and self.trie.node_tokens else None

    def child_logits(self, hidden, level, parent):
        """Float32 logits [N, vocab] of the level-``level`` digit after prefix states ``parent``
        [N] (``CodeTrie.child_logits``), also under a bfloat16 autocast."""
        with torch.autocast(hidden.device.type, enabled=False):
            hidden = hidden.float()
            if self.child_blocks is not None and cpu_fast.applies(self.cpu_fast_paths, hidden):
                offset = self.trie.level_offset[level]
                return cpu_fast.grouped_child_logits(self.child_blocks, hidden, level, parent, offset, self.token_embedding, self.vocab)
            return self.trie.child_logits(hidden, level, parent, self.token_embedding)

    def embed(self, token_ids, start=0):
        positions = torch.arange(start, start + token_ids.size(1), device=token_ids.device)
        return self.token_embedding(token_ids) + self.position_embedding(positions)

    def code_tokens(self, items):
        """Token ids [n, L] of the items' codes."""
        return self.trie.token_ids(self.trie.codes[items], self.trie.item_states[items])

    def teacher_forced(self, items, memory_kvs, memory_mask, summary=True):
        """[BOS, c_1..c_L, SUMMARY] of ``items`` [n] in one causal pass: logits [n, L, vocab]
        and the SUMMARY state [n, H]. Without ``summary`` (scoring only), [BOS, c_1..c_{L-1}]."""
        bos = items.new_full((items.size(0), 1), self.bos)
        tokens = [bos, self.code_tokens(items)]
        if summary:
            tokens.append(items.new_full((items.size(0), 1), self.summary))
        else:
            tokens[1] = tokens[1][:, :-1]
        hidden = self.transformer(self.embed(torch.cat(tokens, dim=1)), memory_kvs, memory_mask)
        parents = self.trie.parents(items)
        logits = torch.stack([self.child_logits(hidden[:, t], t, parents[:, t]) for t in range(self.depth)], dim=1)
        return logits, (hidden[:, -1] if summary else None)

    def log_prob(self, items, memory_kvs, memory_mask):
        """Teacher-forced log-probability of each item's code, items [B, n] scored against
        user ``b``'s memory: [B, n]."""
        flat = items.reshape(-1)
        logits, _ = self.teacher_forced(flat, memory_kvs, memory_mask, summary=False)
        digits = self.trie.codes[flat]
        return torch.log_softmax(logits, dim=-1).gather(2, digits[..., None]).squeeze(-1).sum(dim=1).view_as(items)

    def step(self, token_ids, position, parent, memory_kvs, memory_mask, caches):
        """One decoding step: ``token_ids`` [N] (BOS, or the previous digit's token) at
        ``position`` for rows whose prefix states are ``parent`` [N] -> log-probs of the next
        digit [N, vocab]. ``caches``: one dict per layer, extended in place."""
        hidden = self.transformer(self.embed(token_ids[:, None], position), memory_kvs, memory_mask, caches=caches)
        return torch.log_softmax(self.child_logits(hidden[:, -1], position, parent), dim=-1)
