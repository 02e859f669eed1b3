"""Item embeddings read from a file (``behavior_embedding_file`` / ``semantic_embedding_file``),
so codes can be built without training a behavior model or encoding text.

Two layouts:

- **by item token**: an ``.npz`` with arrays ``tokens`` [n] and ``embeddings`` [n, d], or a
  ``.pt`` dict with the same two keys. Every item of the dataset needs a row; rows of other
  tokens (items the dataset's filters removed) are ignored.
- **by item id**: an ``.npy`` array or a ``.pt`` tensor [n_items, d] in RecBole's item id
  order (``dataset.id2token``): ``item_num`` rows with row 0 the padding item, as a RecBole
  model's ``item_embedding`` table, or ``item_num - 1`` rows for ids 1..n.
"""
import os

import numpy as np
import torch

from recbole_eager.utils import RecBoleEagerError

SUFFIXES = (".npy", ".npz", ".pt")


def check_embedding_file(key, path):
    """Raise unless ``path`` (the value of config key ``key``) is a file of a readable kind."""
    if not os.path.isfile(path):
        raise RecBoleEagerError(f"{key}={path}: no such file")
    if not path.endswith(SUFFIXES):
        raise RecBoleEagerError(f"{key}={path}: use a {', '.join(SUFFIXES)} file (see recbole_eager/codes/embedding_file.py)")


def _read(key, path):
    """(tokens or None, embeddings [n, d] float32)."""
    check_embedding_file(key, path)
    if path.endswith(".npy"):
        return None, np.load(path, allow_pickle=False)
    if path.endswith(".npz"):
        with np.load(path, allow_pickle=False) as data:
            if "embeddings" not in data:
                raise RecBoleEagerError(f"{key}={path}: the .npz has no 'embeddings' array (it has {sorted(data.files)})")
            return (data["tokens"] if "tokens" in data else None), data["embeddings"]
    data = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(data, torch.Tensor):
        return None, data.numpy()
    if not isinstance(data, dict) or "embeddings" not in data:
        raise RecBoleEagerError(f"{key}={path}: a .pt file must hold a tensor or a dict with 'embeddings' (and 'tokens')")
    return data.get("tokens"), torch.as_tensor(data["embeddings"]).numpy()


def embeddings_from_file(key, path, dataset):
    """Embeddings [item_num, d] (row 0 zeros) of every item of ``dataset`` and stats."""
    tokens, values = _read(key, path)
    values = np.asarray(values, dtype=np.float32)
    n = dataset.item_num - 1
    if values.ndim != 2:
        raise RecBoleEagerError(f"{key}={path}: embeddings of shape {list(values.shape)}; expected [items, dim]")
    if tokens is None:
        if len(values) not in (n, n + 1):
            raise RecBoleEagerError(
                f"{key}={path}: {len(values)} rows, but dataset '{dataset.dataset_name}' has {n} items; give {n} rows "
                f"(RecBole item ids 1..{n}) or {n + 1} (row 0 padding), or an .npz with 'tokens' and 'embeddings'"
            )
        table = values if len(values) == n + 1 else np.vstack([np.zeros((1, values.shape[1]), np.float32), values])
    else:
        tokens = [str(t) for t in np.asarray(tokens).tolist()]
        if len(tokens) != len(values):
            raise RecBoleEagerError(f"{key}={path}: {len(tokens)} tokens but {len(values)} embedding rows")
        if len(set(tokens)) != len(tokens):
            raise RecBoleEagerError(f"{key}={path}: item tokens repeat; give each item one row")
        row = {token: i for i, token in enumerate(tokens)}
        wanted = dataset.id2token(dataset.iid_field, np.arange(1, n + 1))
        missing = [t for t in wanted if t not in row]
        if missing:
            raise RecBoleEagerError(
                f"{key}={path}: no embedding for {len(missing)} of the dataset's {n} items "
                f"(e.g. {', '.join(map(str, missing[:3]))}); every item token needs a row"
            )
        table = np.vstack([np.zeros((1, values.shape[1]), np.float32), values[[row[t] for t in wanted]]])
    table = table.copy()
    table[0] = 0
    if not np.isfinite(table).all():
        raise RecBoleEagerError(f"{key}={path}: embeddings contain NaN or infinite values")
    return table, {"embedding_file": os.path.basename(path), "keyed_by": "token" if tokens is not None else "item id",
                   "ignored_rows": 0 if tokens is None else len(tokens) - n}
