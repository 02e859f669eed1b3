r"""
EAGER
################################################
Reference:
    Ye Wang et al. "EAGER: Two-Stream Generative Recommender with Behavior-Semantic
    Collaboration." in KDD 2024.

Items carry a behavior code and a semantic code (``recbole_eager.codes``). A shared
Transformer encoder reads the history; one autoregressive decoder per stream generates
that stream's code. GCT pulls a summary token of each decoder toward the stream's
pretrained item embedding; STT lets the semantic summary guide behavior tokens through
masked reconstruction and matched/corrupted recognition. Inference runs a trie-
constrained beam search per stream and merges the 2k candidates by log-probability.

Scores of ``full_sort_predict``: an item found by a beam gets the log-probability of its
code (the higher of the two streams if both found it; with ``merge_rule: joint``, the sum
of both streams' log-probabilities of its codes); every other item gets ``-inf``.
At least ``beam_size >= max(topk)`` distinct items are finite.
"""
import functools
import logging

import torch
import torch.nn.functional as F
from torch import nn

from recbole.model.abstract_recommender import SequentialRecommender
from recbole.model.layers import TransformerEncoder
from recbole.utils import InputType

from recbole_eager.codes import ItemCodes, load_or_build_item_codes

STREAMS = ("behavior", "semantic")
MERGE_RULES = ("confidence", "joint")  # or one stream's name: that stream alone
PRECISIONS = {"float32": None, "bfloat16": torch.bfloat16}


def attention(q, k, v, mask=None, causal=False):
    """Scaled dot-product attention; mask True = attend. On CPU, bfloat16 takes two matmuls,
    because the fused kernel is 2-4x slower at our lengths (at most 21 keys; results/speed.md)."""
    if q.is_cuda or q.dtype != torch.bfloat16:
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=causal)
    scores = (q @ k.transpose(-1, -2)) * q.size(-1) ** -0.5
    if causal:
        mask = torch.ones(q.size(-2), k.size(-2), dtype=torch.bool, device=q.device).tril()
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    return _softmax(scores).to(v.dtype) @ v


def _softmax(scores):
    """Float32 softmax over the last axis. In inference on CPU, ``torch.softmax`` is 3-5x
    slower than this below 16 entries (a decoding step's keys, a history cut short;
    results/speed.md); in training its fused backward pass keeps it level."""
    if scores.is_cuda or scores.size(-1) >= 16 or scores.requires_grad:
        return torch.softmax(scores, dim=-1, dtype=torch.float)
    scores = scores.float()
    weights = (scores - scores.amax(-1, keepdim=True)).exp_()
    return weights / weights.sum(-1, keepdim=True)


def decode_attention(q, segments):
    """One query per beam over the cached keys of earlier positions, by products and sums
    (cheaper on CPU than tiny batched matmuls). q: [B, beams, heads, 1, d]; segments: (keys,
    values) pairs [B, beams or 1, heads, t, d], where 1 means shared by every beam of a user
    (positions decoded before the beams split), so beams never copy them."""
    scores = torch.cat([(q * k).sum(-1) for k, _ in segments], dim=-1).float() * q.size(-1) ** -0.5
    weights = _softmax(scores).to(q.dtype).unsqueeze(-1)
    parts = [w * v for w, (_, v) in zip(weights.split([k.size(-2) for k, _ in segments], dim=-2), segments)]
    return functools.reduce(torch.add, [p if p.size(-2) == 1 else p.sum(-2, keepdim=True) for p in parts])  # CPU sums over an axis of 1 are slow


class Dropout(nn.Dropout):
    """``nn.Dropout`` whose CPU mask comes from 16-bit slices of 64-bit random words.

    PyTorch's CPU ``bernoulli_`` draws one random number per element, serially: 19% of a
    bfloat16 training step at 2 threads (results/speed.md); this draws one per 4 elements.
    ``p`` is rounded to a multiple of 1/65536 (0.1 -> 0.100006), and the scale uses it.
    """

    def forward(self, x):
        if not self.training or self.p == 0 or x.is_cuda:
            return super().forward(x)
        threshold = round(self.p * 65536)
        words = torch.empty((x.numel() + 3) // 4, dtype=torch.int64, device=x.device).random_(-(2**63), 2**63 - 1)
        drop = words.view(torch.int16)[: x.numel()].view(x.shape) < threshold - 32768
        return x.masked_fill(drop, 0).mul_(65536 / (65536 - threshold))


def _use_fast_dropout(module):
    """Every ``nn.Dropout`` under ``module`` (RecBole's encoder too) becomes ``Dropout``."""
    for name, child in module.named_children():
        if type(child) is nn.Dropout:
            setattr(module, name, Dropout(child.p))
        else:
            _use_fast_dropout(child)


class CodeTransformerLayer(nn.Module):
    """Pre-LN layer: self-attention over code tokens, cross-attention to a per-user memory, FFN.

    Cross-attention takes the memory once per user and the queries of all its beams
    stacked along the query axis, so beams never copy the memory or its projections.
    """

    def __init__(self, hidden_size, n_heads, inner_size, dropout, eps):
        super().__init__()
        self.n_heads = n_heads
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

    def _merge(self, x):  # [N, heads, T, d] -> [N, T, heads * d]
        return x.transpose(1, 2).reshape(x.size(0), x.size(2), -1)

    def forward(self, x, memory_kv, memory_mask, causal):
        """x: [B * beams, T, H]; memory_kv: ([B, heads, S, d],) * 2; memory_mask: [B, 1, 1, S] (True = attend)."""
        return self.attend_memory(self.self_attend(x, memory_kv[0].size(0), causal)[0], memory_kv, memory_mask)

    def self_attend(self, x, batch, causal, cache=None):
        """Self-attention sublayer over code tokens (it never sees the memory). With ``cache``
        (the ``decode_attention`` segments of earlier positions; ``None`` or empty at the first
        step), x holds only the newest position. Returns x and the segments extended by its
        keys and values."""
        q, k, v = (t.unflatten(0, (batch, x.size(0) // batch)) for t in self._heads_qkv(self.norms[0](x)))
        segments = (cache or []) + [(k, v)]
        if cache:
            attn = decode_attention(q, segments).flatten(0, 1)
        else:
            attn = attention(q.flatten(0, 1), k.flatten(0, 1), v.flatten(0, 1), causal=causal)
        return x + self.dropout(self.self_out(self._merge(attn))), segments

    def attend_memory(self, x, memory_kv, memory_mask):
        """Cross-attention to the memory, then the FFN."""
        batch, length = memory_kv[0].size(0), x.size(1)
        q = self._heads(self.cross_q(self.norms[1](x)).reshape(batch, -1, x.size(-1)))
        attn = attention(q, *memory_kv, mask=memory_mask)
        x = x + self.dropout(self.cross_out(self._merge(attn).reshape(x.size(0), length, -1)))
        return x + self.dropout(self.ffn(self.norms[2](x)))

    def _heads_qkv(self, x):
        return [self._heads(t) for t in self.qkv(x).chunk(3, dim=-1)]


class CodeTransformer(nn.Module):
    def __init__(self, n_layers, hidden_size, n_heads, inner_size, dropout, eps):
        super().__init__()
        self.layers = nn.ModuleList(
            CodeTransformerLayer(hidden_size, n_heads, inner_size, dropout, eps) for _ in range(n_layers)
        )
        self.final_norm = nn.LayerNorm(hidden_size, eps=eps)

    def memory_kv(self, memory, valid=None):
        """Cross-attention keys/values of every layer, projected at valid positions only
        (histories are mostly padding: Beauty's average training history is 6.7 of 20).
        One buffer per layer: one for all four would exceed glibc's 32 MB mmap threshold at
        batch 1024 and be page-faulted afresh every step (results/speed.md)."""
        rows = None if valid is None else memory[valid]
        kvs = []
        for layer in self.layers:
            if valid is None:
                kv = layer.cross_kv(memory)
            else:
                projected = layer.cross_kv(rows)
                kv = projected.new_zeros(*memory.shape[:2], projected.size(-1))
                kv[valid] = projected
            kvs.append(tuple(layer._heads(t).contiguous() for t in kv.chunk(2, dim=-1)))  # matmuls read them as is, every step
        return kvs

    def forward(self, x, memory_kvs, memory_mask, causal):
        for layer, kv in zip(self.layers, memory_kvs):
            x = layer(x, kv, memory_mask, causal)
        return self.final_norm(x)

    def decode(self, x, memory_kvs, memory_mask, caches):
        """One decoding step from x [B * beams, 1, H]: the newest position, already through the
        first layer's self-attention (``StreamDecoder.prefix_self_attention``). ``caches`` hold
        the later layers' segments. Returns the final states and the new caches."""
        x = self.layers[0].attend_memory(x, memory_kvs[0], memory_mask)
        new_caches = []
        for layer, kv, cache in zip(self.layers[1:], memory_kvs[1:], caches):
            x, cache = layer.self_attend(x, kv[0].size(0), True, cache)
            x = layer.attend_memory(x, kv, memory_mask)
            new_caches.append(cache)
        return self.final_norm(x), new_caches


class StreamDecoder(nn.Module):
    """Autoregressive decoder of one stream's codes, with the GCT summary token.

    ``code_tokens`` picks what a code token is. ``level``: digit ``c`` at level ``t`` is one
    token shared by every prefix. ``node``: each trie node (code prefix) is its own token,
    so the last level holds one token per item. The output layer is tied to the token
    embeddings and scores only the children of the current prefix (node) or every digit
    of the level (level). Then come BOS and SUMMARY.
    """

    def __init__(self, codes, target_dim, config):
        super().__init__()
        self.depth, self.vocab = codes.size(1), int(codes.max()) + 1
        self.node_tokens = config["code_tokens"] == "node"
        tries = build_trie(codes, self.vocab)
        self.child_counts = []  # per level: children of each prefix, as a list (for split)
        for level, table in enumerate(tries):
            self.register_buffer(f"trie_{level}", table, persistent=False)
            present = table >= 0  # row-major: children sorted by (prefix, digit)
            count = present.sum(1)
            parents, digits = present.nonzero().unbind(1)
            self.register_buffer(f"children_{level}", table[present], persistent=False)
            self.register_buffer(f"child_parents_{level}", parents, persistent=False)
            self.register_buffer(f"child_digits_{level}", digits, persistent=False)
            self.register_buffer(f"child_count_{level}", count, persistent=False)
            self.register_buffer(f"child_start_{level}", count.cumsum(0) - count, persistent=False)
            self.child_counts.append(count.tolist())
        self.register_buffer("item_states", _walk_trie(codes, tries), persistent=False)
        sizes = torch.tensor([int(t.max()) + 1 if self.node_tokens else self.vocab for t in tries])
        self.register_buffer("level_size", sizes, persistent=False)
        self.register_buffer("level_offset", sizes.cumsum(0) - sizes, persistent=False)
        hidden, n_tokens = config["hidden_size"], int(sizes.sum())
        self.bos, self.summary = n_tokens, n_tokens + 1
        self.token_embedding = nn.Embedding(n_tokens + 2, hidden)
        self.position_embedding = nn.Embedding(self.depth + 2, hidden)
        self.transformer = CodeTransformer(
            config["decoder_layers"], hidden, config["n_heads"], config["inner_size"],
            config["dropout_prob"], config["layer_norm_eps"],
        )
        self.summary_head = nn.Linear(hidden, target_dim) if config["use_gct"] else None

    def trie(self, level):  # [n_prefixes, vocab] -> next prefix state (item id at the last level), -1 if none
        return getattr(self, f"trie_{level}")

    def level_index(self, codes, states):
        """Index of a code token within its level: the trie state (node) or the digit (level)."""
        return states if self.node_tokens else codes

    def token_ids(self, codes, states, levels=slice(None)):
        """Token ids of code digits whose prefixes are the trie ``states`` (same shape), at
        ``levels`` (the last axis by default holds every level)."""
        return self.level_offset[levels] + self.level_index(codes, states)

    def child_logits(self, hidden, level, parent):
        """Logits [N, vocab] of the level-``level`` digit after prefix state ``parent`` [N].

        Node tokens: only the prefix's children are scored (others ``-inf``). On CPU rows are
        sorted by prefix so each prefix is one matmul against its block of the level's
        children (``_grouped_child_logits``); CUDA gathers instead (``_gathered_child_logits``).
        Level tokens: every digit of the level. Always float32, so beam scores and losses
        keep full precision under a ``bfloat16`` autocast.
        """
        with torch.autocast(hidden.device.type, enabled=False):
            return self._child_logits(hidden.float(), level, parent)

    def _child_logits(self, hidden, level, parent):
        if not self.node_tokens:
            table = self.token_embedding.weight[self.level_offset[level] : self.level_offset[level] + self.vocab]
            return hidden @ table.T
        if not hidden.is_cuda:
            return self._grouped_child_logits(hidden, level, parent)
        return self._gathered_child_logits(hidden, level, self.trie(level)[parent])

    def _grouped_child_logits(self, hidden, level, parent):
        """Node-token logits with one matmul per prefix present, against that prefix's block of
        the level's children (split views: the backward pass writes one gradient for the level,
        not one per prefix), placed at their digits by one ``index_put`` (the CPU path)."""
        blocks = self.token_embedding(self.level_offset[level] + getattr(self, f"children_{level}")).split(self.child_counts[level])
        groups, group_of_row = torch.unique(parent, return_inverse=True)
        order = group_of_row.argsort()
        rows = hidden[order].split(torch.bincount(group_of_row, minlength=groups.numel()).tolist())
        values = torch.cat([(r @ blocks[g].T).flatten() for r, g in zip(rows, groups.tolist())])
        # values are row-major over the sorted rows; value e of row r is child e + shift[r] of the level
        sorted_parent = parent[order]
        n_children = getattr(self, f"child_count_{level}")[sorted_parent]
        shift = getattr(self, f"child_start_{level}")[sorted_parent] - (n_children.cumsum(0) - n_children)
        child = torch.arange(values.numel(), device=parent.device) + shift.repeat_interleave(n_children)
        flat = (order * self.vocab).repeat_interleave(n_children) + getattr(self, f"child_digits_{level}")[child]
        logits = hidden.new_full((hidden.size(0), self.vocab), float("-inf"))
        logits.view(-1).index_put_((flat,), values)
        return logits

    def _gathered_child_logits(self, hidden, level, children):
        """Node-token logits by one gather and one batched matmul: no host sync and no
        launch per prefix, at the memory of [N, vocab, H] embeddings (the CUDA path)."""
        child_emb = self.token_embedding(self.level_offset[level] + children.clamp(min=0))
        logits = torch.bmm(child_emb, hidden.unsqueeze(-1)).squeeze(-1)
        return logits.masked_fill(children < 0, float("-inf"))

    def embed(self, token_ids):
        positions = torch.arange(token_ids.size(1), device=token_ids.device)
        return self.token_embedding(token_ids) + self.position_embedding(positions)

    def teacher_forced(self, items, codes, memory_kvs, memory_mask, summary=True):
        """[BOS, c_1..c_L, SUMMARY] in one causal pass: logits [B, L, vocab] and the summary
        state [B, H]. Without ``summary`` (scoring only), [BOS, c_1..c_{L-1}] suffices."""
        batch, states = codes.size(0), self.item_states[items]
        tokens = [codes.new_full((batch, 1), self.bos), self.token_ids(codes, states)]
        if summary:
            tokens.append(codes.new_full((batch, 1), self.summary))
        else:
            tokens[1] = tokens[1][:, :-1]
        hidden = self.transformer(self.embed(torch.cat(tokens, dim=1)), memory_kvs, memory_mask, causal=True)
        parents = torch.cat([states.new_zeros(batch, 1), states[:, :-1]], dim=1)
        logits = torch.stack([self.child_logits(hidden[:, t], t, parents[:, t]) for t in range(self.depth)], dim=1)
        return logits, (hidden[:, -1] if summary else None)

    def prefix_self_attention(self):
        """The first layer's self-attention output at the newest position of every code prefix,
        per level ``t``: [n_prefixes_t, 1, H] (level 0: BOS alone). It depends on the prefix
        only, never on the user, so the beam search looks it up instead of computing it per
        beam and user. Decoded like a beam search whose beams are all prefixes at once."""
        layer = self.transformer.layers[0]
        x, segments = layer.self_attend(self._step_input(self.bos, 0).view(1, 1, -1), 1, causal=True)
        outputs = [x]
        for level in range(1, self.depth):  # a level's prefixes, in (parent, digit) order, are its states 0, 1, ... (build_trie)
            parent = getattr(self, f"child_parents_{level - 1}")
            cache = [tuple(_select_beams(t, parent.unsqueeze(0)) for t in segment) for segment in segments]
            token_ids = self.token_ids(getattr(self, f"child_digits_{level - 1}"), getattr(self, f"children_{level - 1}"), level - 1)
            x, segments = layer.self_attend(self._step_input(token_ids, level).unsqueeze(1), 1, True, cache)
            outputs.append(x)
        return outputs

    def _step_input(self, token_ids, position):
        x = self.token_embedding.weight[token_ids] + self.position_embedding.weight[position]
        if torch.is_autocast_enabled(x.device.type):  # inference: the residual stream in bfloat16 too
            x = x.to(torch.get_autocast_dtype(x.device.type))
        return x

    def step(self, attended, position, parent, caches, memory_kvs, memory_mask):
        """One decoding step of the beams whose prefix states at ``position`` are ``parent``
        [B * beams] (``attended``: ``self.prefix_self_attention()``) -> log-probs of the next digit
        [B * beams, vocab] and the later layers' new caches."""
        hidden, caches = self.transformer.decode(attended[position][parent], memory_kvs, memory_mask, caches)
        return torch.log_softmax(self.child_logits(hidden[:, -1], position, parent), dim=-1), caches


def _select_beams(segment, parent):
    """Reorder a cache segment [B, beams, ...] to the surviving beams parent [B, new_beams];
    a segment shared by every beam (beam axis 1) stays shared."""
    if segment.size(1) == 1:
        return segment
    rows = (parent + torch.arange(parent.size(0), device=parent.device).unsqueeze(1) * segment.size(1)).view(-1)
    return segment.flatten(0, 1).index_select(0, rows).unflatten(0, parent.shape)


def build_trie(codes, vocab):
    """Dense prefix trie over the codes of items 1..n-1.

    Returns one LongTensor per level ``t``: ``[n_prefixes_t, vocab]`` holding the index of
    the extended prefix (``-1`` if no item has it); at the last level, the item id. Prefixes
    are numbered in lexicographic order, so in (parent, digit) order.
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


def _walk_trie(codes, tries):
    """Trie state of every prefix of every item's code: [n_items, L] (0 where a code is not in the trie)."""
    states = torch.empty_like(codes)
    state = torch.zeros(codes.size(0), dtype=torch.long, device=codes.device)
    for level, table in enumerate(tries):
        state = table[state, codes[:, level]].clamp(min=0)
        states[:, level] = state
    return states


class EAGER(SequentialRecommender):
    input_type = InputType.POINTWISE

    def __init__(self, config, dataset, item_codes=None):
        super().__init__(config, dataset)
        self.hidden_size = config["hidden_size"]
        self.beam_size = config["beam_size"]
        chunk = config["search_chunk_size"]
        self.search_chunk_size = 512 if chunk is None else chunk  # None: a checkpoint from before the key
        if self.search_chunk_size < 1:
            raise ValueError(f"search_chunk_size={self.search_chunk_size} must be at least 1")
        self.lambda1, self.lambda2 = config["lambda1"], config["lambda2"]
        self.stt_mask_ratio, self.stt_replace_ratio = config["stt_mask_ratio"], config["stt_replace_ratio"]
        self.recon_temperature = config["recon_temperature"]
        self.merge_rule = config["merge_rule"]
        precision = config["precision"] or "float32"  # checkpoints from before the key were float32
        if precision not in PRECISIONS:
            raise ValueError(f"precision={precision!r}: use one of {list(PRECISIONS)}")
        self.autocast_dtype = PRECISIONS[precision]
        max_topk = max(config["topk"])
        if self.beam_size < max_topk:
            raise ValueError(f"beam_size={self.beam_size} must be at least max(topk)={max_topk}")
        self.streams = [s for s in STREAMS if config[f"use_{s}_stream"]]
        if not self.streams:
            raise ValueError("EAGER needs at least one stream: set use_behavior_stream or use_semantic_stream")
        if self.merge_rule not in MERGE_RULES + tuple(self.streams):
            raise ValueError(f"merge_rule={self.merge_rule!r}: use one of {MERGE_RULES} or an enabled stream {self.streams}")
        if config["code_tokens"] not in ("level", "node"):
            raise ValueError(f"code_tokens={config['code_tokens']!r}: use 'level' or 'node'")
        self.use_gct = config["use_gct"]
        both = len(self.streams) == 2
        self.use_stt_recon = config["use_stt_recon"] and both
        self.use_stt_recog = config["use_stt_recog"] and both
        if (config["use_stt_recon"] or config["use_stt_recog"]) and not both:
            logging.getLogger().warning("STT needs both streams: disabled for this run")

        if item_codes is None:
            item_codes = load_or_build_item_codes(config, dataset)
        self.decoders = nn.ModuleDict()
        for stream in self.streams:
            codes = item_codes[stream]
            if codes.codes.size(0) != self.n_items:
                raise ValueError(f"{stream} codes cover {codes.codes.size(0)} items, the dataset has {self.n_items}")
            self.register_buffer(f"{stream}_codes", codes.codes.long())
            self.register_buffer(f"{stream}_embedding", codes.embeddings.float())
            self.decoders[stream] = StreamDecoder(codes.codes.long(), codes.embeddings.size(1), config)

        self.item_embedding = nn.Embedding(self.n_items, self.hidden_size, padding_idx=0)
        self.position_embedding = nn.Embedding(self.max_seq_length, self.hidden_size)
        self.encoder = TransformerEncoder(
            n_layers=config["encoder_layers"], n_heads=config["n_heads"], hidden_size=self.hidden_size,
            inner_size=config["inner_size"], hidden_dropout_prob=config["dropout_prob"],
            attn_dropout_prob=config["dropout_prob"], hidden_act="gelu", layer_norm_eps=config["layer_norm_eps"],
        )
        self.input_norm = nn.LayerNorm(self.hidden_size, eps=config["layer_norm_eps"])
        self.dropout = nn.Dropout(config["dropout_prob"])

        if self.use_stt_recon or self.use_stt_recog:
            self.stt = CodeTransformer(
                config["stt_layers"], self.hidden_size, config["n_heads"], config["inner_size"],
                config["dropout_prob"], config["layer_norm_eps"],
            )
            self.stt_cls = nn.Parameter(torch.zeros(1, 1, self.hidden_size))
            self.stt_mask = nn.Parameter(torch.zeros(1, 1, self.hidden_size))
            self.recog_head = nn.Linear(self.hidden_size, 1) if self.use_stt_recog else None
        _use_fast_dropout(self)
        self.apply(self._init_weights)

    @classmethod
    def prepare(cls, config, dataset):
        """Build (or find cached) the item codes before the seeded construction of the model."""
        load_or_build_item_codes(config, dataset)

    @classmethod
    def init_kwargs_from_checkpoint(cls, config, state_dict):
        """The item codes a checkpoint holds as buffers, so reloading never rebuilds them."""
        return {"item_codes": {
            stream: ItemCodes(state_dict[f"{stream}_codes"], state_dict[f"{stream}_embedding"], config["kmeans_k"])
            for stream in STREAMS if f"{stream}_codes" in state_dict
        }}

    @staticmethod
    def _init_weights(module):
        if isinstance(module, (nn.Linear, nn.Embedding)):
            module.weight.data.normal_(mean=0.0, std=0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            module.bias.data.zero_()
        elif isinstance(module, nn.LayerNorm):
            module.bias.data.zero_()
            module.weight.data.fill_(1.0)

    def codes(self, stream):
        return getattr(self, f"{stream}_codes")

    def load_state_dict(self, state_dict, *args, **kwargs):
        """The decoders' tries and token tables come from the codes at construction, so a
        state_dict with other codes is refused rather than silently mismatched."""
        for stream in self.streams:
            theirs = state_dict.get(f"{stream}_codes")
            if theirs is not None and not torch.equal(theirs.cpu(), self.codes(stream).cpu()):
                raise ValueError(
                    f"the state_dict's {stream}_codes differ from this model's: build the model with "
                    "EAGER.init_kwargs_from_checkpoint (as recbole_eager.quick_start does)"
                )
        return super().load_state_dict(state_dict, *args, **kwargs)

    def autocast(self):
        """Matmuls and attention in ``precision`` (mixed precision); code logits, losses and
        scores stay float32."""
        return torch.autocast(self.device.type, dtype=self.autocast_dtype, enabled=self.autocast_dtype is not None)

    def encode(self, item_seq):
        """Shared history encoder, run once per batch for both streams: memory [B, S, H] and
        its valid positions [B, S]."""
        positions = torch.arange(item_seq.size(1), device=item_seq.device)
        x = self.dropout(self.input_norm(self.item_embedding(item_seq) + self.position_embedding(positions)))
        memory = self.encoder(x, self.get_attention_mask(item_seq, bidirectional=True), output_all_encoded_layers=False)[-1]
        return memory, item_seq != 0

    def calculate_loss(self, interaction):
        with self.autocast():
            return self._calculate_loss(interaction)

    def _calculate_loss(self, interaction):
        memory, valid = self.encode(interaction[self.ITEM_SEQ])
        memory_mask = valid[:, None, None, :]
        items = interaction[self.POS_ITEM_ID]
        losses, summaries = {}, {}
        for stream in self.streams:
            decoder = self.decoders[stream]
            codes = self.codes(stream)[items]
            memory_kvs = decoder.transformer.memory_kv(memory, valid)
            logits, summaries[stream] = decoder.teacher_forced(items, codes, memory_kvs, memory_mask)
            losses[f"gen_{stream}"] = F.cross_entropy(logits.reshape(-1, logits.size(-1)), codes.reshape(-1))
            if self.use_gct:
                target = getattr(self, f"{stream}_embedding")[items]
                losses[f"con_{stream}"] = self.lambda1 * F.smooth_l1_loss(decoder.summary_head(summaries[stream]).float(), target)
        if self.use_stt_recon or self.use_stt_recog:
            losses.update(self._stt_losses(items, summaries["semantic"]))
        for name, value in losses.items():
            if not torch.isfinite(value):
                raise ValueError(f"EAGER loss '{name}' is {value.item()}: lower learning_rate or raise warmup_steps")
        return tuple(losses.values())

    def _stt_losses(self, items, semantic_summary):
        """STT over [CLS, behavior tokens], cross-attending to the semantic summary feature.

        All views (masked, original, corrupted) run as one batch.
        """
        decoder = self.decoders["behavior"]
        codes, states = self.codes("behavior")[items], decoder.item_states[items]
        batch, depth = codes.size(0), codes.size(1)
        token_emb = decoder.token_embedding(decoder.token_ids(codes, states))
        views, losses = [], {}
        if self.use_stt_recon:
            masked = torch.rand(batch, depth, device=codes.device) < self.stt_mask_ratio
            masked[torch.arange(batch), torch.randint(depth, (batch,), device=codes.device)] = True
            views.append(torch.where(masked[..., None], self.stt_mask.expand(batch, depth, -1), token_emb))
        if self.use_stt_recog:
            replaced = torch.rand(batch, depth, device=codes.device) < self.stt_replace_ratio
            replaced[torch.arange(batch), torch.randint(depth, (batch,), device=codes.device)] = True
            true_index = decoder.level_index(codes, states)
            shift = 1 + (torch.rand(batch, depth, device=codes.device) * (decoder.level_size - 1)).long()
            corrupted = torch.where(replaced, (true_index + shift) % decoder.level_size, true_index)
            views += [token_emb, decoder.token_embedding(corrupted + decoder.level_offset)]
        x = torch.cat(views, dim=0)
        x = torch.cat([self.stt_cls.expand(x.size(0), 1, -1), x], dim=1)
        memory = semantic_summary.unsqueeze(1).repeat(len(views), 1, 1)
        hidden = self.stt(x, self.stt.memory_kv(memory), None, causal=False).split(batch, dim=0)
        if self.use_stt_recon:
            parents = torch.cat([states.new_zeros(batch, 1), states[:, :-1]], dim=1)
            rows = [(t, masked[:, t]) for t in range(depth) if masked[:, t].any()]  # only masked positions are scored
            logits = torch.cat([decoder.child_logits(hidden[0][m, 1 + t], t, parents[m, t]) for t, m in rows])
            targets = torch.cat([codes[m, t] for t, m in rows])
            losses["recon"] = self.lambda2 * F.cross_entropy(logits / self.recon_temperature, targets)
            hidden = hidden[1:]
        if self.use_stt_recog:
            scores = self.recog_head(torch.cat([hidden[0][:, 0], hidden[1][:, 0]], dim=0)).squeeze(-1).float()
            labels = torch.cat([scores.new_ones(batch), scores.new_zeros(batch)])
            losses["recog"] = self.lambda2 * F.binary_cross_entropy_with_logits(scores, labels)
        return losses

    @torch.no_grad()
    def beam_search(self, stream, memory, valid, beam_size, memory_kvs=None, attended=None):
        """Trie-constrained beam search over one stream's codes, batched over users
        (``memory_kvs``: that decoder's keys/values of the memory; ``attended``: its
        ``prefix_self_attention()``; each if the caller has them).

        Returns item ids [B, beam_size] sorted by code log-probability (descending) and
        those log-probabilities; slots without a valid code hold item 0 and ``-inf``.
        """
        decoder = self.decoders[stream]
        if memory_kvs is None:
            memory_kvs = decoder.transformer.memory_kv(memory, valid)
        memory_mask = valid[:, None, None, :]
        batch, vocab = memory.size(0), decoder.vocab
        if attended is None:
            attended = decoder.prefix_self_attention()
        caches = [None] * (len(memory_kvs) - 1)
        states = memory.new_zeros((batch, 1), dtype=torch.long)
        scores = memory.new_zeros((batch, 1), dtype=torch.float)
        for level in range(decoder.depth):
            beams, parents = states.size(1), states.clamp(min=0)
            log_probs, caches = decoder.step(attended, level, parents.view(-1), caches, memory_kvs, memory_mask)
            candidates = log_probs.view(batch, beams, vocab).add_(scores.unsqueeze(-1)).view(batch, -1)
            if not decoder.node_tokens:  # node tokens: child_logits already gave non-children -inf
                candidates = candidates.masked_fill(decoder.trie(level)[parents].view(batch, -1) < 0, float("-inf"))
            scores, index = candidates.topk(min(beam_size, candidates.size(1)), dim=1)
            parent, token = index // vocab, index % vocab
            states = decoder.trie(level)[parents.gather(1, parent), token]
            if level + 1 < decoder.depth:
                caches = [[tuple(_select_beams(t, parent) for t in segment) for segment in cache] for cache in caches]
        items = states.clamp(min=0).masked_fill(torch.isinf(scores), 0)
        return items, scores

    def _merged_streams(self):
        return self.streams if self.merge_rule in MERGE_RULES else [self.merge_rule]

    def full_sort_predict(self, interaction):
        """Scores [B, n_items] (module docstring), searched ``search_chunk_size`` users at a time.

        Users are taken in order of history length and each chunk's histories are cut after
        their last item, so the encoder and cross-attention skip most of the padding (Beauty's
        test histories average 7.2 of 20); the result does not depend on the order.
        """
        item_seq = interaction[self.ITEM_SEQ]
        occupied = item_seq != 0
        order = occupied.sum(dim=1).argsort(stable=True)
        scores = torch.full((item_seq.size(0), self.n_items), float("-inf"), device=item_seq.device)
        with self.autocast():
            attended = {stream: self.decoders[stream].prefix_self_attention() for stream in self._merged_streams()}
            for rows in order.split(self.search_chunk_size):
                columns = occupied[rows].any(dim=0).nonzero()
                width = int(columns[-1]) + 1 if len(columns) else 1
                items, log_probs = self._candidates(item_seq[rows, :width], attended)
                flat = (rows.unsqueeze(1) * self.n_items + items).view(-1)
                scores.view(-1).scatter_reduce_(0, flat, log_probs.view(-1), reduce="amax")  # an item in both streams keeps its best
        scores[:, 0] = float("-inf")
        return scores

    def _candidates(self, item_seq, attended):
        """Every merged stream's beams: item ids [B, streams * beam_size] and their scores
        (``attended``: each merged stream's ``prefix_self_attention()``)."""
        memory, valid = self.encode(item_seq)
        kvs = {stream: self.decoders[stream].transformer.memory_kv(memory, valid) for stream in attended}
        found = [self.beam_search(stream, memory, valid, self.beam_size, kvs[stream], attended[stream]) for stream in kvs]
        if self.merge_rule == "joint":  # a beam's own score is its stream's term; the other streams score it by teacher forcing
            found = [(f_items, f_scores + sum(
                self.code_log_prob(other, memory, valid, f_items, kvs[other]) for other in self.streams if other != stream
            )) for stream, (f_items, f_scores) in zip(self.streams, found)]
        return torch.cat([f[0] for f in found], dim=1), torch.cat([f[1] for f in found], dim=1)

    def code_log_prob(self, stream, memory, valid, items, memory_kvs=None):
        """Teacher-forced log-probability of the code in ``stream`` of items [B] or [B, n]
        (row ``b`` scored against user ``b``'s history); same shape as ``items``."""
        decoder, flat = self.decoders[stream], items.reshape(-1)
        codes = self.codes(stream)[flat]
        if memory_kvs is None:
            memory_kvs = decoder.transformer.memory_kv(memory, valid)
        logits, _ = decoder.teacher_forced(flat, codes, memory_kvs, valid[:, None, None, :], summary=False)
        return torch.log_softmax(logits, dim=-1).gather(2, codes[..., None]).squeeze(-1).sum(dim=1).view_as(items)

    def predict(self, interaction):
        """Log-probability of each candidate item's code: the best over the merged streams,
        or their sum under ``merge_rule: joint``."""
        with self.autocast():
            return self._predict(interaction)

    def _predict(self, interaction):
        memory, valid = self.encode(interaction[self.ITEM_SEQ])
        log_probs = torch.stack([self.code_log_prob(s, memory, valid, interaction[self.ITEM_ID]) for s in self._merged_streams()])
        return log_probs.sum(dim=0) if self.merge_rule == "joint" else log_probs.amax(dim=0)
