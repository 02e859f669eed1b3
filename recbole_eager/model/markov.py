r"""
Markov
################################################
A first-order Markov count model: the score of item j after a history is the number of
times j followed the history's last item in the training sequences, plus a popularity
tie-break below one count. The floor every sequential model should clear; nothing to
train (one epoch of a zero loss, as RecBole's ``Pop``).
"""
import numpy as np
import scipy.sparse as sp
import torch
from torch import nn

from recbole.model.abstract_recommender import SequentialRecommender
from recbole.utils import InputType


class Markov(SequentialRecommender):
    input_type = InputType.POINTWISE

    def __init__(self, config, dataset):
        super().__init__(config, dataset)
        feat = dataset.inter_feat  # the training split: one row per (history, next item)
        last = self._last_items(feat[self.ITEM_SEQ], feat[self.ITEM_SEQ_LEN]).numpy()
        target = feat[self.POS_ITEM_ID].numpy()
        self.counts = sp.csr_matrix((np.ones(len(target), dtype=np.float32), (last, target)), shape=(self.n_items, self.n_items))
        popularity = np.bincount(target, minlength=self.n_items).astype(np.float32)
        self.tie_break = torch.from_numpy(popularity / (popularity.max() + 1))  # < 1: counts decide first
        self.fake_loss = nn.Parameter(torch.zeros(1))

    @staticmethod
    def _last_items(item_seq, item_seq_len):
        return item_seq.gather(1, (item_seq_len - 1).clamp(min=0).unsqueeze(1)).squeeze(1)

    def calculate_loss(self, interaction):
        return self.fake_loss

    def _scores(self, interaction):
        last = self._last_items(interaction[self.ITEM_SEQ], interaction[self.ITEM_SEQ_LEN]).cpu().numpy()
        return torch.from_numpy(self.counts[last].toarray()) + self.tie_break

    def predict(self, interaction):
        items = interaction[self.ITEM_ID].cpu()
        return self._scores(interaction).gather(1, items.unsqueeze(1)).squeeze(1).to(self.fake_loss.device)

    def full_sort_predict(self, interaction):
        return self._scores(interaction).to(self.fake_loss.device)
