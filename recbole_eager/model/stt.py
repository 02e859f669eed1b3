"""STT, the semantic-guided transfer task: a bidirectional Transformer over [CLS, behavior
code tokens] (with position embeddings) that cross-attends to the semantic decoder's
summary state, trained by masked-token reconstruction and matched/corrupted-code
recognition."""
import torch
import torch.nn.functional as F
from torch import nn

from recbole_eager.model.layers import CodeTransformer

RECON_LOSSES = ("contrastive", "softmax")


def choose_positions(batch, depth, ratio, device, exact=True):
    """Boolean [batch, depth]: exactly ``max(1, round(ratio * depth))`` positions per row
    (``exact``, the paper's m %), else Bernoulli(``ratio``) plus one forced position."""
    if not exact:
        chosen = torch.rand(batch, depth, device=device) < ratio
        chosen[torch.arange(batch), torch.randint(depth, (batch,), device=device)] = True
        return chosen
    n = min(depth, max(1, round(ratio * depth)))
    chosen = torch.zeros(batch, depth, dtype=torch.bool, device=device)
    return chosen.scatter_(1, torch.rand(batch, depth, device=device).argsort(dim=1)[:, :n], True)


def sample_other(values, size, device):
    """Per row, a uniform draw from ``0..size-1`` other than ``values`` (``size`` >= 2)."""
    draw = (torch.rand(values.shape, device=device) * (size - 1)).long()
    return draw + (draw >= values).long()


def prefix_partners(trie, items, prefix_length):
    """For each item, another item whose code shares its first ``prefix_length`` digits
    (any other item where it has no such sibling): its code is a valid code that differs
    from the item's in the remaining digits."""
    n_items = trie.codes.size(0)
    others = 1 + sample_other(items - 1, n_items - 1, items.device)  # a uniform other real item
    if prefix_length == 0:
        return others
    groups = trie.item_states[1:, prefix_length - 1]  # items 1..n-1 sharing the prefix share this state
    order = groups.argsort(stable=True)
    sizes = torch.bincount(groups, minlength=int(groups.max()) + 1)
    starts = sizes.cumsum(0) - sizes
    rank = torch.empty_like(order)
    rank[order] = torch.arange(order.numel(), device=order.device)
    group, own = groups[items - 1], rank[items - 1] - starts[groups[items - 1]]
    has_sibling = sizes[group] > 1
    pick = sample_other(own, sizes[group].clamp(min=2), items.device)
    partners = 1 + order[starts[group] + pick.clamp(max=sizes[group] - 1)]
    return torch.where(has_sibling, partners, others)


class SemanticTransfer(nn.Module):
    def __init__(self, config, depth, reconstruction=True, recognition=True):
        super().__init__()
        hidden = config["hidden_size"]
        self.transformer = CodeTransformer(
            config["stt_layers"], hidden, config["n_heads"], config["inner_size"],
            config["dropout_prob"], config["layer_norm_eps"],
        )
        # CLS, then one per code level; without them two masked positions are indistinguishable
        self.position_embedding = nn.Embedding(depth + 1, hidden) if config["stt_positions"] else None
        self.cls = nn.Parameter(torch.zeros(1, 1, hidden))
        self.mask = nn.Parameter(torch.zeros(1, 1, hidden))
        self.recog_head = nn.Linear(hidden, 1) if recognition else None
        self.reconstruction = reconstruction
        self.mask_ratio, self.replace_ratio = config["stt_mask_ratio"], config["stt_replace_ratio"]
        self.recon_loss = config["stt_recon_loss"]
        self.recon_temperature = config["recon_temperature"]
        self.negatives, self.temperature = config["stt_recon_negatives"], config["stt_temperature"]
        self.exact_mask = config["stt_mask"] == "exact"
        self.prefix_partners = config["stt_recog_negatives"] == "prefix_partner"
        self.detach = config["stt_detach"]

    def forward(self, decoder, items, semantic_summary):
        """Losses ``{"recon": ..., "recog": ...}`` (unweighted) for ``items`` [B] of the
        behavior ``decoder``; ``semantic_summary`` [B, H]. All views (masked, original,
        corrupted) run as one batch. With ``stt_detach`` no gradient reaches the semantic
        decoder or the behavior token table (as in the authors' code)."""
        trie = decoder.trie
        table = decoder.token_embedding.weight.detach() if self.detach else decoder.token_embedding.weight
        if self.detach:
            semantic_summary = semantic_summary.detach()
        tokens = trie.token_ids(trie.codes[items], trie.item_states[items])
        batch, depth = tokens.shape
        token_emb = F.embedding(tokens, table)
        views, losses = [], {}
        if self.reconstruction:
            masked = choose_positions(batch, depth, self.mask_ratio, items.device, self.exact_mask)
            views.append(torch.where(masked[..., None], self.mask.expand(batch, depth, -1), token_emb))
        if self.recog_head is not None:
            views += [token_emb, F.embedding(self._corrupted(trie, items, tokens), table)]
        x = torch.cat(views, dim=0)
        x = torch.cat([self.cls.expand(x.size(0), 1, -1), x], dim=1)
        if self.position_embedding is not None:
            x = x + self.position_embedding.weight
        memory = semantic_summary.unsqueeze(1).repeat(len(views), 1, 1)
        hidden = self.transformer(x, self.transformer.memory_kv(memory), causal=False).split(batch, dim=0)
        if self.reconstruction:
            losses["recon"] = self._reconstruction(decoder, table, items, tokens, masked, hidden[0][:, 1:])
            hidden = hidden[1:]
        if self.recog_head is not None:
            scores = self.recog_head(torch.cat([hidden[0][:, 0], hidden[1][:, 0]], dim=0)).squeeze(-1).float()
            labels = torch.cat([scores.new_ones(batch), scores.new_zeros(batch)])
            losses["recog"] = F.binary_cross_entropy_with_logits(scores, labels)
        return losses

    def _corrupted(self, trie, items, tokens):
        """Recognition negatives. ``prefix_partner``: another item's code sharing all but the
        last ``max(1, round(stt_replace_ratio * L))`` digits, a valid code. ``random_tokens``:
        positions replaced by other tokens of their level (Bernoulli plus one forced); with
        node tokens the result is no path of the trie, so token ids alone give it away."""
        depth = tokens.size(1)
        if self.prefix_partners:
            replaced = min(depth, max(1, round(self.replace_ratio * depth)))
            partners = prefix_partners(trie, items, depth - replaced)
            return trie.token_ids(trie.codes[partners], trie.item_states[partners])
        replaced = choose_positions(tokens.size(0), depth, self.replace_ratio, tokens.device, exact=False)
        index = tokens - trie.level_offset
        shift = 1 + (torch.rand(tokens.shape, device=tokens.device) * (trie.level_size - 1)).long()
        return torch.where(replaced, (index + shift) % trie.level_size, index) + trie.level_offset

    def _reconstruction(self, decoder, table, items, tokens, masked, hidden):
        """Masked positions only. ``contrastive`` (the paper): the output against the true
        token's embedding and ``stt_negatives`` other tokens of its level (cosine /
        ``stt_temperature``). ``softmax``: over the prefix's children through the decoder's
        tied output layer (``recon_temperature``)."""
        trie = decoder.trie
        rows, levels = masked.nonzero(as_tuple=True)
        output = hidden[rows, levels].float()
        if self.recon_loss == "softmax":
            logits = torch.cat([
                decoder.child_logits(output[levels == t], t, trie.parents(items)[rows[levels == t], t]) for t in levels.unique().tolist()
            ])
            targets = torch.cat([trie.codes[items][rows[levels == t], t] for t in levels.unique().tolist()])
            return F.cross_entropy(logits / self.recon_temperature, targets)
        true = tokens[rows, levels]
        offset, size = trie.level_offset[levels], trie.level_size[levels]
        negatives = offset[:, None] + sample_other((true - offset)[:, None].expand(-1, self.negatives), size[:, None], true.device)
        candidates = F.normalize(F.embedding(torch.cat([true[:, None], negatives], dim=1), table).float(), dim=-1)
        logits = (candidates @ F.normalize(output, dim=-1).unsqueeze(-1)).squeeze(-1) / self.temperature
        return F.cross_entropy(logits, torch.zeros_like(true))
