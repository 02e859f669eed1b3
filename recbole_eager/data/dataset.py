"""RecBole's SequentialDataset with this plugin's checks and orders: malformed ``.inter``
rows are an error naming file and line; a dataset without a time field keeps each user's
row order; ``token_seq_fields`` splits token fields into words; ``sequence_order: item``
orders by item token (the authors' code)."""
import os
from collections import Counter
from logging import getLogger

import numpy as np
from recbole.data.dataset import SequentialDataset
from recbole.utils import FeatureSource, FeatureType

from recbole_eager.utils import RecBoleEagerError

ROW_ORDER_FIELD = "row_order"  # the time field of a dataset that has none: the row's position in the file


class PluginSequentialDataset(SequentialDataset):
    def _load_inter_feat(self, token, dataset_path):
        super()._load_inter_feat(token, dataset_path)
        feat = self.inter_feat
        if feat is None:
            return
        plain = [c for c in feat.columns if not self.field2type[c].value.endswith("seq")]
        bad = feat[plain].isna().any(axis=1).to_numpy()
        if bad.any():
            path = os.path.join(dataset_path, f"{token}.inter")
            if not self.config["skip_malformed_rows"]:
                line = int(np.flatnonzero(bad)[0]) + 2  # line 1 is the header
                raise RecBoleEagerError(
                    f"{path} line {line}: a field is empty or missing ({int(bad.sum())} such rows); "
                    "fix the file, or set skip_malformed_rows=True to skip them"
                )
            getLogger().warning(f"{path}: skipped {int(bad.sum())} malformed rows (skip_malformed_rows=True)")
            self.inter_feat = feat[~bad].reset_index(drop=True)

    def _load_feat(self, filepath, source):
        """``token_seq_fields`` of a token header: RecBole reads a field's type from the header
        only, so a keyword string (Sports' ``title``) becomes words here, as RecBole splits token_seq;
        words in fewer rows than ``token_seq_min_count`` are dropped."""
        df = super()._load_feat(filepath, source)
        for field in self.config["token_seq_fields"] or []:
            if df is not None and field in df and self.field2type[field] == FeatureType.TOKEN:
                sep = self.config["seq_separator"]
                words = [[w for w in str(v).split(sep) if w] for v in df[field].fillna("")]
                rows = Counter(w for row in words for w in set(row))
                least = self.config["token_seq_min_count"]
                df[field] = [np.array([w for w in row if rows[w] >= least]) for row in words]
                self.field2type[field], self.field2seqlen[field] = FeatureType.TOKEN_SEQ, max(map(len, df[field]))
        return df

    def _data_processing(self):
        field = self.time_field
        if field not in self.inter_feat:  # no time field: the file's row order (stable within each user)
            if field != ROW_ORDER_FIELD:
                raise RecBoleEagerError(f"TIME_FIELD={field!r} is not a column of {self.dataset_name}.inter; set TIME_FIELD to one")
            self.inter_feat[field] = np.arange(len(self.inter_feat), dtype=float)
            self.field2type[field], self.field2source[field] = FeatureType.FLOAT, FeatureSource.INTERACTION
            self.field2seqlen[field], self.field2bucketnum[field] = 1, 2
        if self.config["sequence_order"] == "item":
            self.inter_feat[field] = self.inter_feat[self.iid_field].astype(str).rank(method="dense").astype(float)
        super()._data_processing()


def read_header(path):
    """``[(field, type)]`` of an atomic file's header."""
    with open(path, encoding="utf-8") as f:
        return [tuple(cell.split(":", 1)) for cell in f.readline().rstrip("\n").split("\t") if ":" in cell]


def infer_fields(folder, name):
    """Config of a dataset folder without a YAML, from its atomic files' headers: id and time
    fields, the columns to load, the item text fields. ``None`` if there is no ``.inter``."""
    inter = os.path.join(folder, f"{name}.inter")
    if not os.path.isfile(inter):
        return None
    fields = read_header(inter)
    tokens = [f for f, t in fields if t == "token"]
    names = [f for f, _ in fields]
    user = "user_id" if "user_id" in names else (tokens[0] if tokens else None)
    item = "item_id" if "item_id" in names else next((t for t in tokens if t != user), None)
    if user is None or item is None:
        raise RecBoleEagerError(f"{inter}: need two token fields (user and item) in its header, e.g. user_id:token item_id:token")
    floats = [f for f, t in fields if t == "float"]
    time = "timestamp" if "timestamp" in floats else next((f for f in floats if "time" in f or "date" in f), None)
    config = {
        "USER_ID_FIELD": user, "ITEM_ID_FIELD": item, "TIME_FIELD": time or ROW_ORDER_FIELD,
        "load_col": {"inter": [user, item] + ([time] if time else [])},
    }
    item_file = os.path.join(folder, f"{name}.item")
    if os.path.isfile(item_file):
        text = [f for f, t in read_header(item_file) if t in ("token", "token_seq") and f != item]
        text.sort(key=lambda f: f != "title")
        config["load_col"]["item"] = [item] + text
        config["item_text_fields"] = text
    return config
