r"""
EAGER
################################################
Reference:
    Ye Wang et al. "EAGER: Two-Stream Generative Recommender with Behavior-Semantic
    Collaboration." in KDD 2024.

Items carry a behavior and a semantic code (``recbole_eager.codes``). A shared Transformer
encoder reads the history; one autoregressive decoder per stream generates that stream's
code (``decoder.py``). GCT pulls each decoder's summary token toward the stream's pretrained
item embedding; STT (``stt.py``) lets the semantic summary guide the behavior tokens.
Inference: a trie-constrained beam search per stream, candidates merged by
log-probability (``beam_search.py``).

``full_sort_predict``: an item found by a beam gets its code's log-probability (the higher
of the two streams; with ``merge_rule: joint``, the sum of both streams'), every other item
``-inf``. At least ``beam_size >= max(topk)`` items are finite.
"""
import torch
import torch.nn.functional as F
from torch import nn

from recbole.model.abstract_recommender import SequentialRecommender
from recbole.model.layers import TransformerEncoder
from recbole.utils import InputType

from recbole_eager.codes import STREAMS, ItemCodes, load_or_build_item_codes
from recbole_eager.codes.build import num_clusters
from recbole_eager.model.beam_search import MERGE_RULES, beam_search, merge_candidates, top_candidates
from recbole_eager.model.decoder import StreamDecoder
from recbole_eager.model.stt import SemanticTransfer

# Parameters renamed since earlier checkpoints: old prefix -> new prefix.
RENAMED_PARAMETERS = {
    "stt.layers.": "stt.transformer.layers.", "stt.final_norm.": "stt.transformer.final_norm.",
    "stt_cls": "stt.cls", "stt_mask": "stt.mask", "recog_head.": "stt.recog_head.",
}


class EAGER(SequentialRecommender):
    input_type = InputType.POINTWISE

    def __init__(self, config, dataset, item_codes=None):
        super().__init__(config, dataset)

        # load parameters info (checked by recbole_eager.config.check_config)
        self.hidden_size = config["hidden_size"]
        self.beam_size = config["beam_size"]
        self.search_chunk_size = config["search_chunk_size"]
        self.merge_rule = config["merge_rule"]
        self.lambda1, self.lambda2 = config["lambda1"], config["lambda2"]
        self.autocast_dtype = None if config["precision"] == "float32" else getattr(torch, config["precision"])
        self.streams = [s for s in STREAMS if config[f"use_{s}_stream"]]
        self.use_gct = config["use_gct"]
        self.gct_loss, self.gct_normalize = config["gct_loss"], config["gct_normalize"]
        self.gct_negatives, self.gct_temperature = config["gct_negatives"], config["gct_temperature"]
        use_stt = len(self.streams) == 2 and (config["use_stt_recon"] or config["use_stt_recog"])

        # item codes and embeddings: buffers, so a checkpoint carries them
        if item_codes is None:
            item_codes = load_or_build_item_codes(config, dataset)
        for stream in self.streams:
            codes = item_codes[stream]
            if codes.codes.size(0) != self.n_items:
                raise ValueError(f"{stream} codes cover {codes.codes.size(0)} items, the dataset has {self.n_items}")
            self.register_buffer(f"{stream}_codes", codes.codes.long())
            self.register_buffer(f"{stream}_embedding", codes.embeddings.float())

        # define layers
        self.item_embedding = nn.Embedding(self.n_items, self.hidden_size, padding_idx=0)
        self.position_embedding = nn.Embedding(self.max_seq_length, self.hidden_size)
        self.encoder = TransformerEncoder(
            n_layers=config["encoder_layers"], n_heads=config["n_heads"], hidden_size=self.hidden_size,
            inner_size=config["inner_size"], hidden_dropout_prob=config["dropout_prob"],
            attn_dropout_prob=config["dropout_prob"], hidden_act="gelu", layer_norm_eps=config["layer_norm_eps"],
        )
        self.input_norm = nn.LayerNorm(self.hidden_size, eps=config["layer_norm_eps"])
        self.dropout = nn.Dropout(config["dropout_prob"])
        self.decoders = nn.ModuleDict({
            s: StreamDecoder(self.codes(s), getattr(self, f"{s}_embedding").size(1), config) for s in self.streams
        })
        self.stt = None
        if use_stt:
            self.stt = SemanticTransfer(config, self.codes("behavior").size(1), config["use_stt_recon"], config["use_stt_recog"])
        self.apply(self._init_weights)

    @staticmethod
    def _init_weights(module):
        if isinstance(module, (nn.Linear, nn.Embedding)):
            module.weight.data.normal_(mean=0.0, std=0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            module.bias.data.zero_()
        elif isinstance(module, nn.LayerNorm):
            module.bias.data.zero_()
            module.weight.data.fill_(1.0)

    @classmethod
    def prepare(cls, config, dataset):
        """Build (or find cached) the item codes before the seeded construction of the model."""
        load_or_build_item_codes(config, dataset)

    @classmethod
    def init_kwargs_from_checkpoint(cls, config, state_dict):
        """The item codes a checkpoint holds as buffers, so reloading never rebuilds them."""
        return {"item_codes": {
            stream: ItemCodes(state_dict[f"{stream}_codes"], state_dict[f"{stream}_embedding"], num_clusters(config, stream))
            for stream in STREAMS if f"{stream}_codes" in state_dict
        }}

    def load_state_dict(self, state_dict, *args, **kwargs):
        """Also reads checkpoints with the earlier parameter names (``RENAMED_PARAMETERS``).
        The decoders' tries come from the codes at construction, so a state_dict with other
        codes is refused rather than silently mismatched."""
        for stream in self.streams:
            theirs = state_dict.get(f"{stream}_codes")
            if theirs is not None and not torch.equal(theirs.cpu(), self.codes(stream).cpu()):
                raise ValueError(
                    f"the state_dict's {stream}_codes differ from this model's: build the model with "
                    "EAGER.init_kwargs_from_checkpoint (as recbole_eager.quick_start does)"
                )
        renamed = {}
        for key, value in state_dict.items():
            old = next((o for o in RENAMED_PARAMETERS if key.startswith(o)), None)
            renamed[key if old is None else RENAMED_PARAMETERS[old] + key[len(old):]] = value
        return super().load_state_dict(renamed, *args, **kwargs)

    def codes(self, stream):
        return getattr(self, f"{stream}_codes")

    def autocast(self):
        """Matmuls and attention in ``precision``; code logits, losses and scores stay float32."""
        return torch.autocast(self.device.type, dtype=self.autocast_dtype, enabled=self.autocast_dtype is not None)

    def encode(self, item_seq):
        """Shared history encoder, run once per batch for both streams: memory [B, S, H] and
        its valid positions [B, S]."""
        positions = torch.arange(item_seq.size(1), device=item_seq.device)
        x = self.dropout(self.input_norm(self.item_embedding(item_seq) + self.position_embedding(positions)))
        memory = self.encoder(x, self.get_attention_mask(item_seq, bidirectional=True), output_all_encoded_layers=False)[-1]
        return memory, item_seq != 0

    def calculate_loss(self, interaction):
        """L = sum over streams of L_gen (+ lambda1 * L_con) + lambda2 * (L_recon + L_recog),
        returned term by term."""
        with self.autocast():
            memory, valid = self.encode(interaction[self.ITEM_SEQ])
            memory_mask = valid[:, None, None, :]
            items = interaction[self.POS_ITEM_ID]
            losses, summaries = {}, {}
            for stream in self.streams:
                decoder = self.decoders[stream]
                logits, summaries[stream] = decoder.teacher_forced(items, decoder.transformer.memory_kv(memory, valid), memory_mask)
                losses[f"gen_{stream}"] = F.cross_entropy(logits.flatten(0, 1), self.codes(stream)[items].flatten())
                if self.use_gct:
                    losses[f"con_{stream}"] = self.lambda1 * self._gct_loss(decoder.summary_head(summaries[stream]).float(), stream, items)
            if self.stt is not None:
                stt_losses = self.stt(self.decoders["behavior"], items, summaries["semantic"])
                losses.update({name: self.lambda2 * loss for name, loss in stt_losses.items()})
        for name, value in losses.items():
            if not torch.isfinite(value):
                raise ValueError(f"EAGER loss '{name}' is {value.item()}: lower learning_rate or raise warmup_steps")
        self.loss_names = tuple(losses)
        return tuple(losses.values())

    def _gct_loss(self, predicted, stream, items):
        """GCT between the projected summary and the stream's pretrained item embedding.
        ``smooth_l1`` (the paper): with ``gct_normalize``, of the L2-normalised vectors summed
        over the dimensions (≈ 1 - cos for near vectors), else of the raw vectors averaged
        over all elements. ``infonce`` (the authors' code): normalised, against
        ``gct_negatives`` sampled items (0: the batch's items), temperature ``gct_temperature``."""
        table = getattr(self, f"{stream}_embedding")
        if self.gct_loss == "smooth_l1" and not self.gct_normalize:  # raw vectors, mean over elements: ~1e-3, inert
            return F.smooth_l1_loss(predicted, table[items])
        predicted = F.normalize(predicted, dim=-1)
        if self.gct_loss == "smooth_l1":
            return F.smooth_l1_loss(predicted, F.normalize(table[items], dim=-1), reduction="none").sum(dim=-1).mean()
        candidates = items
        if self.gct_negatives:
            candidates = torch.cat([items, torch.randint(1, self.n_items, (self.gct_negatives,), device=items.device)])
        logits = predicted @ F.normalize(table[candidates], dim=-1).T / self.gct_temperature
        return F.cross_entropy(logits, torch.arange(items.size(0), device=items.device))

    def merged_streams(self):
        return self.streams if self.merge_rule in MERGE_RULES else [self.merge_rule]

    def predict(self, interaction):
        """Log-probability of each candidate item's code: the best over the merged streams,
        or their sum under ``merge_rule: joint``."""
        with self.autocast():
            memory, valid = self.encode(interaction[self.ITEM_SEQ])
            items = interaction[self.ITEM_ID].unsqueeze(1)
            log_probs = torch.stack([
                self.decoders[s].log_prob(items, self.decoders[s].transformer.memory_kv(memory, valid), valid[:, None, None, :])[:, 0]
                for s in self.merged_streams()
            ])
        return log_probs.sum(dim=0) if self.merge_rule == "joint" else log_probs.amax(dim=0)

    def candidates(self, item_seq):
        """Every merged stream's beams for histories ``item_seq``: item ids
        [B, streams * beam_size] and their scores (``merge_candidates``)."""
        memory, valid = self.encode(item_seq)
        memory_mask = valid[:, None, None, :]
        kvs = {s: self.decoders[s].transformer.memory_kv(memory, valid) for s in self.merged_streams()}
        found = {s: beam_search(self.decoders[s], kvs[s], memory_mask, self.beam_size) for s in kvs}
        return merge_candidates(found, self.merge_rule, lambda s, items: self.decoders[s].log_prob(items, kvs[s], memory_mask))

    def _searched_chunks(self, item_seq):
        """``(rows, items, log_probs)`` of ``candidates``, ``search_chunk_size`` users at a
        time. Users go in order of history length and each chunk's histories are cut after
        their longest, so the encoder and cross-attention skip most padding."""
        lengths = (item_seq != 0).sum(dim=1)
        for rows in lengths.argsort(stable=True).split(self.search_chunk_size):
            yield rows, *self.candidates(item_seq[rows, : max(int(lengths[rows].max()), 1)])

    def full_sort_predict(self, interaction):
        """Scores [B, n_items] (module docstring): RecBole's contract, dense in the catalogue."""
        item_seq = interaction[self.ITEM_SEQ]
        scores = torch.full((item_seq.size(0), self.n_items), float("-inf"), device=item_seq.device)
        with torch.no_grad(), self.autocast():
            for rows, items, log_probs in self._searched_chunks(item_seq):
                flat = (rows.unsqueeze(1) * self.n_items + items).view(-1)  # in place: no copy of the chunk's score rows
                scores.view(-1).scatter_reduce_(0, flat, log_probs.view(-1), reduce="amax")  # an item in both streams keeps its best
        scores[:, 0] = float("-inf")
        return scores

    def full_sort_topk(self, interaction, k, exclude_history=False):
        """The top ``k`` of ``full_sort_predict`` without its dense [B, n_items] matrix, whose
        cost grows with the catalogue (``results/scale.md``): item ids and scores [B, k]
        (``top_candidates``). ``exclude_history``: the history's items never rank."""
        item_seq = interaction[self.ITEM_SEQ]
        top_items = item_seq.new_zeros(item_seq.size(0), k)
        top_scores = torch.full((item_seq.size(0), k), float("-inf"), device=item_seq.device)
        with torch.no_grad(), self.autocast():
            for rows, items, log_probs in self._searched_chunks(item_seq):
                exclude = item_seq[rows] if exclude_history else None
                top_items[rows], top_scores[rows] = top_candidates(items, log_probs, k, exclude)
        return top_items, top_scores
