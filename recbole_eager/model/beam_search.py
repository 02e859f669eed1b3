"""Trie-constrained beam search over one stream's codes, and the merges of the streams'
candidates (EAGER's confidence rule, or the joint sum of both streams)."""
import torch
import torch.nn.functional as F

MERGE_RULES = ("confidence", "joint")  # or one stream's name: that stream alone


@torch.no_grad()
def beam_search(decoder, memory_kvs, memory_mask, beam_size):
    """Batched over the users of ``memory_kvs`` (``decoder.transformer.memory_kv``).

    Returns item ids [B, beam_size] sorted by code log-probability (descending) and those
    log-probabilities; slots without a valid code hold item 0 and ``-inf``.
    """
    trie, vocab = decoder.trie, decoder.vocab
    batch = memory_kvs[0][0].size(0)
    caches = [{} for _ in decoder.transformer.layers]
    states = torch.zeros((batch, 1), dtype=torch.long, device=memory_mask.device)
    tokens = torch.full_like(states, decoder.bos)
    scores = torch.zeros((batch, 1), device=memory_mask.device)
    for level in range(decoder.depth):
        beams = states.size(1)
        log_probs = decoder.step(tokens.view(-1), level, states.view(-1), memory_kvs, memory_mask, caches)
        candidates = log_probs.view(batch, beams, vocab) + scores.unsqueeze(-1)
        if not trie.node_tokens:  # node-token logits are already -inf outside the prefix's children
            candidates = candidates.masked_fill(trie.table(level)[states] < 0, float("-inf"))
        scores, index = candidates.view(batch, -1).topk(min(beam_size, beams * vocab), dim=1)
        beam, digit = index // vocab, index % vocab
        states = trie.table(level)[states.gather(1, beam), digit].clamp(min=0)
        if level + 1 < decoder.depth:
            tokens = trie.token_ids(digit, states, level)
            rows = (beam + torch.arange(batch, device=beam.device).unsqueeze(1) * beams).view(-1)
            for cache in caches:
                cache["k"], cache["v"] = cache["k"][rows], cache["v"][rows]
    items = states.masked_fill(torch.isinf(scores), 0)
    return items, scores


def merge_candidates(found, merge_rule, rescore):
    """The streams' beams ``{stream: (items, scores)}`` as one candidate list: item ids
    [B, streams * beam] and their scores. ``confidence`` (the paper's rule): each beam keeps
    its own code log-probability, and a full-sort score takes the best of the streams.
    ``joint``: each candidate is scored by the sum over all streams, the others by teacher
    forcing (``rescore(stream, items)``)."""
    if merge_rule == "joint":
        found = {
            stream: (items, scores + sum(rescore(other, items) for other in found if other != stream))
            for stream, (items, scores) in found.items()
        }
    return torch.cat([f[0] for f in found.values()], dim=1), torch.cat([f[1] for f in found.values()], dim=1)


def top_candidates(items, scores, k, exclude=None):
    """The ``k`` best distinct items of candidate lists ``items``/``scores`` [B, C] (an item
    listed twice keeps its best score), without a dense [B, n_items] matrix: item ids and
    scores [B, k], sorted descending. Item 0 and the ids of ``exclude`` [B, S] never rank;
    rows with fewer than ``k`` candidates end in item 0 at ``-inf``."""
    scores = scores.float().masked_fill(items == 0, float("-inf"))
    if exclude is not None:
        scores = scores.masked_fill((items.unsqueeze(2) == exclude.unsqueeze(1)).any(2), float("-inf"))
    scores, order = scores.sort(dim=1, descending=True, stable=True)
    items = items.gather(1, order)
    earlier = torch.ones(items.size(1), items.size(1), dtype=torch.bool, device=items.device).tril(-1)
    repeated = ((items.unsqueeze(2) == items.unsqueeze(1)) & earlier).any(2)  # listed before with a higher score
    scores, order = scores.masked_fill(repeated, float("-inf")).topk(min(k, items.size(1)), dim=1)
    items = items.gather(1, order).masked_fill(torch.isinf(scores), 0)
    if items.size(1) < k:
        pad = k - items.size(1)
        items, scores = F.pad(items, (0, pad)), F.pad(scores, (0, pad), value=float("-inf"))
    return items, scores
