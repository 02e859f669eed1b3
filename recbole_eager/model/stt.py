"""STT, the semantic-guided transfer task: a bidirectional Transformer over [CLS, behavior
code tokens] that cross-attends to the semantic decoder's summary state, trained by
masked-token reconstruction and matched/corrupted-code recognition."""
import torch
import torch.nn.functional as F
from torch import nn

from recbole_eager.model.layers import CodeTransformer


class SemanticTransfer(nn.Module):
    def __init__(self, config, reconstruction=True, recognition=True):
        super().__init__()
        hidden = config["hidden_size"]
        self.transformer = CodeTransformer(
            config["stt_layers"], hidden, config["n_heads"], config["inner_size"],
            config["dropout_prob"], config["layer_norm_eps"],
        )
        self.cls = nn.Parameter(torch.zeros(1, 1, hidden))
        self.mask = nn.Parameter(torch.zeros(1, 1, hidden))
        self.recog_head = nn.Linear(hidden, 1) if recognition else None
        self.reconstruction = reconstruction
        self.mask_ratio, self.replace_ratio = config["stt_mask_ratio"], config["stt_replace_ratio"]
        self.recon_temperature = config["recon_temperature"]

    def _corrupt(self, batch, depth, ratio, device):
        """Positions to mask or replace: Bernoulli(ratio), plus one forced per row."""
        chosen = torch.rand(batch, depth, device=device) < ratio
        chosen[torch.arange(batch), torch.randint(depth, (batch,), device=device)] = True
        return chosen

    def forward(self, decoder, items, semantic_summary):
        """Losses ``{"recon": ..., "recog": ...}`` (unweighted) for ``items`` [B] of the
        behavior ``decoder``; ``semantic_summary`` [B, H]. All views (masked, original,
        corrupted) run as one batch."""
        trie = decoder.trie
        codes, states = trie.codes[items], trie.item_states[items]
        batch, depth = codes.size(0), codes.size(1)
        token_emb = decoder.token_embedding(trie.token_ids(codes, states))
        views, losses = [], {}
        if self.reconstruction:
            masked = self._corrupt(batch, depth, self.mask_ratio, codes.device)
            views.append(torch.where(masked[..., None], self.mask.expand(batch, depth, -1), token_emb))
        if self.recog_head is not None:
            replaced = self._corrupt(batch, depth, self.replace_ratio, codes.device)
            true_index = trie.level_index(codes, states)
            shift = 1 + (torch.rand(batch, depth, device=codes.device) * (trie.level_size - 1)).long()
            corrupted = torch.where(replaced, (true_index + shift) % trie.level_size, true_index)
            views += [token_emb, decoder.token_embedding(corrupted + trie.level_offset)]
        x = torch.cat(views, dim=0)
        x = torch.cat([self.cls.expand(x.size(0), 1, -1), x], dim=1)
        memory = semantic_summary.unsqueeze(1).repeat(len(views), 1, 1)
        hidden = self.transformer(x, self.transformer.memory_kv(memory), causal=False).split(batch, dim=0)
        if self.reconstruction:
            parents = trie.parents(items)
            rows = [(t, masked[:, t]) for t in range(depth) if masked[:, t].any()]  # only masked positions are scored
            logits = torch.cat([decoder.child_logits(hidden[0][m, 1 + t], t, parents[m, t]) for t, m in rows])
            targets = torch.cat([codes[m, t] for t, m in rows])
            losses["recon"] = F.cross_entropy(logits / self.recon_temperature, targets)
            hidden = hidden[1:]
        if self.recog_head is not None:
            scores = self.recog_head(torch.cat([hidden[0][:, 0], hidden[1][:, 0]], dim=0)).squeeze(-1).float()
            labels = torch.cat([scores.new_ones(batch), scores.new_zeros(batch)])
            losses["recog"] = F.binary_cross_entropy_with_logits(scores, labels)
        return losses
