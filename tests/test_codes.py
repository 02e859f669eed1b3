"""Dual item codes (recbole_eager.codes) on dataset/eager-tiny: 72 items, 2 without title."""
import logging
import os
import sys

import numpy as np
import pytest
import torch
from recbole.data import data_preparation

from recbole_eager.codes import ItemCodes, hierarchical_kmeans, load_or_build_item_codes
from recbole_eager.codes import __main__ as cli
from recbole_eager.codes import build
from recbole_eager.codes.behavior import behavior_config_dict, checkpoint_facts
from recbole_eager.codes.semantic import item_texts
from recbole_eager.config import Config
from recbole_eager.data import create_dataset
from recbole_eager.utils import PROPERTIES_DIR, RecBoleEagerError, trusted_torch_load

EAGER_YAML = str(PROPERTIES_DIR / "model" / "EAGER.yaml")
K = 4
_TRAINED = {}


def make(tiny_config, **overrides):
    config_dict = {**tiny_config, "kmeans_k": K, "behavior_epochs": 1, **overrides}
    config = Config(model="SASRec", dataset="eager-tiny", config_file_list=[EAGER_YAML], config_dict=config_dict)
    return config, create_dataset(config)


@pytest.fixture
def trained(tiny_config):
    """Codes built once with a behavior model trained on the spot; other tests reuse its checkpoint."""
    if not _TRAINED:
        config, dataset = make(tiny_config)
        _TRAINED.update(codes=load_or_build_item_codes(config, dataset), item_num=dataset.item_num)
        _TRAINED["checkpoint"] = _TRAINED["codes"]["behavior"].stats["checkpoint"]
    return _TRAINED


@pytest.fixture
def from_checkpoint(tiny_config, trained):
    """Config dict whose behavior embeddings come from the trained checkpoint (no training)."""
    return {**tiny_config, "behavior_checkpoint": trained["checkpoint"]}


def assert_valid_codes(codes, k):
    """Distinct codes for items 1.., tokens in 0..k-1 then END=k padding, row 0 all END."""
    codes = np.asarray(codes)
    assert (codes[0] == k).all()
    real = codes[1:]
    assert len(np.unique(real, axis=0)) == len(real)
    assert ((real >= 0) & (real <= k)).all() and (real[:, 0] < k).all()
    is_end = real == k
    assert (is_end[:, 1:] >= is_end[:, :-1]).all(), "END must pad every position after the first END"


# --- hierarchical k-means alone -----------------------------------------------------


def test_hierarchical_kmeans_is_deterministic_and_distinct():
    x = np.random.default_rng(0).normal(size=(120, 8))
    codes, stats = hierarchical_kmeans(x, 4, seed=7, max_depth=10)
    again, _ = hierarchical_kmeans(x, 4, seed=7, max_depth=10)
    other, _ = hierarchical_kmeans(x, 4, seed=8, max_depth=10)
    np.testing.assert_array_equal(codes, again)
    assert not np.array_equal(codes, other)
    assert_valid_codes(np.vstack([np.full((1, codes.shape[1]), 4), codes]), 4)
    assert sum(stats["depth_histogram"].values()) == 120 and max(stats["depth_histogram"]) == codes.shape[1]
    assert stats["level1_clusters"] == 4 and stats["fallbacks"] == 0
    assert stats["level1_size_min"] <= stats["level1_size_median"] <= stats["level1_size_max"]


def test_balanced_kmeans_splits_every_group_evenly():
    x = np.vstack([np.random.default_rng(0).normal(size=(90, 8)), np.random.default_rng(1).normal(5, 1, size=(10, 8))])
    codes, stats = hierarchical_kmeans(x, 4, seed=7, max_depth=10, balanced=True)
    assert_valid_codes(np.vstack([np.full((1, codes.shape[1]), 4), codes]), 4)
    assert np.bincount(codes[:, 0]).tolist() == [25, 25, 25, 25]  # plain k-means gives the 10 outliers a cluster
    second = [np.bincount(codes[codes[:, 0] == c, 1]).tolist() for c in range(4)]
    assert all(sorted(sizes) == [6, 6, 6, 7] for sizes in second)  # 25 items: floor and ceil of 25 / 4
    plain, _ = hierarchical_kmeans(x, 4, seed=7, max_depth=10)
    assert sorted(np.bincount(plain[:, 0]).tolist()) != [25, 25, 25, 25]
    np.testing.assert_array_equal(codes, hierarchical_kmeans(x, 4, seed=7, max_depth=10, balanced=True)[0])


def test_small_group_tokens_follow_distance_to_centroid():
    x = np.array([[3.0, 0], [0.5, 0], [-1.0, 0], [-2.5, 0]])  # centroid 0: distances 3, .5, 1, 2.5
    codes, stats = hierarchical_kmeans(x, 4, seed=0, max_depth=1)
    assert codes[:, 0].tolist() == [3, 0, 1, 2] and codes.shape == (4, 1)
    assert stats["kmeans_calls"] == 0


@pytest.mark.parametrize("n_identical", [50, 45])
def test_identical_embeddings_fall_back_to_chunks(n_identical):
    rng = np.random.default_rng(1)
    x = np.vstack([np.ones((n_identical, 3)), rng.normal(size=(50 - n_identical, 3))])
    codes, stats = hierarchical_kmeans(x, 4, seed=0, max_depth=10)
    assert_valid_codes(np.vstack([np.full((1, codes.shape[1]), 4), codes]), 4)
    assert stats["fallbacks"] >= 1
    if n_identical == 50:  # chunks of item order: the first 12-13 items share the first token
        assert stats["kmeans_calls"] == 0 and (codes[:12, 0] == 0).all() and (codes[-12:, 0] == 3).all()


def test_kmeans_errors():
    with pytest.raises(RecBoleEagerError, match="at least 2"):
        hierarchical_kmeans(np.eye(5), 1, seed=0, max_depth=3)
    with pytest.raises(RecBoleEagerError, match="dataset has 3 items, fewer than kmeans_k=4; lower kmeans_k"):
        hierarchical_kmeans(np.eye(3), 4, seed=0, max_depth=3)
    with pytest.raises(RecBoleEagerError, match="kmeans_max_depth=2"):
        hierarchical_kmeans(np.zeros((20, 2)), 2, seed=0, max_depth=2)


# --- item codes of a dataset ------------------------------------------------------------


def test_codes_with_trained_behavior_model(trained):
    codes, n = trained["codes"], trained["item_num"]
    assert set(codes) == {"behavior", "semantic", "path", "cache_hit"} and not codes["cache_hit"]
    assert os.path.isfile(codes["path"]) and os.path.basename(codes["path"]).startswith("eager-tiny-")
    for stream in (codes["behavior"], codes["semantic"]):
        assert isinstance(stream, ItemCodes) and stream.end_token == K == stream.num_clusters
        assert stream.codes.dtype == torch.long and stream.codes.shape == (n, stream.depth)
        assert stream.embeddings.dtype == torch.float32 and len(stream.embeddings) == n
        assert (stream.embeddings[0] == 0).all()
        assert_valid_codes(stream.codes, K)
        assert stream.stats["items"] == n - 1 and sum(stream.stats["depth_histogram"].values()) == n - 1
    behavior, semantic = codes["behavior"].stats, codes["semantic"].stats
    assert behavior["trained_here"] and behavior["model"] == "SASRec" and behavior["valid_metric"] == "NDCG@10"
    assert 0 <= behavior["best_valid_score"] <= 1
    with trusted_torch_load():
        table = torch.load(behavior["checkpoint"])["state_dict"]["item_embedding.weight"]
    torch.testing.assert_close(codes["behavior"].embeddings[1:], table[1:])
    norms = codes["semantic"].embeddings[1:].norm(dim=1)
    torch.testing.assert_close(norms, torch.ones_like(norms))
    assert semantic["empty_first_field"] == 2 and semantic["no_text"] == 0 and semantic["encoder"] == "all-MiniLM-L6-v2"


def test_checkpoint_facts_say_how_the_behavior_model_was_trained(trained):
    facts = checkpoint_facts(trained["checkpoint"])
    with trusted_torch_load():
        saved = torch.load(trained["checkpoint"], map_location="cpu")
    assert facts == {"model": "SASRec", "epoch_cap": 1, "best_epoch": 1, "sequence_order": "time",
                     "best_valid_score": round(float(saved["best_valid_score"]), 4)}


@pytest.mark.parametrize("order", ["time", "item"])
def test_behavior_model_trains_on_the_callers_sequence_order(tiny_config, order):
    config, _ = make(tiny_config, sequence_order=order)
    behavior = Config(model="SASRec", dataset="eager-tiny", config_dict=behavior_config_dict(config))
    assert behavior["sequence_order"] == order


def test_item_texts_fall_back_and_parse_categories(tiny_config, tiny_copy):
    item_file = tiny_copy / "eager-tiny" / "eager-tiny.item"
    lines = item_file.read_text().splitlines()
    lines[1] = lines[1].split("\t")[0] + "\t\t\t"  # I00000: no text at all
    item_file.write_text("\n".join(lines) + "\n")
    config, dataset = make({**tiny_config, "data_path": str(tiny_copy)})
    texts, stats = item_texts(dataset, ["title", "brand", "categories"])
    by_token = dict(zip(dataset.id2token(dataset.iid_field, np.arange(1, dataset.item_num)), texts[1:]))
    assert by_token["I00001"] == "Maybelline Matte Nail Polish No.2. Brand: Maybelline. Categories: Beauty, Nail Polish"
    assert by_token["I00005"] == "Brand: Revlon. Categories: Beauty, Nail Polish"  # empty title
    assert by_token["I00000"] == "I00000"  # no text: its item token
    assert stats == {"empty_first_field": 3, "no_text": 1}
    assert not any("nan" in t or "[PAD]" in t for t in texts)
    train_data, _, _ = data_preparation(config, dataset)  # item features become an Interaction
    assert item_texts(train_data._dataset, ["title", "brand", "categories"]) == (texts, stats)


def test_cache_hit_rebuild_flag_and_determinism(from_checkpoint, monkeypatch):
    config, dataset = make(from_checkpoint)
    first = load_or_build_item_codes(config, dataset)
    assert not first["cache_hit"]

    def fail(*args):
        raise AssertionError("rebuilt although the cache matches")

    with monkeypatch.context() as m:
        m.setattr(build, "semantic_embeddings", fail)
        m.setattr(build, "behavior_embeddings", fail)
        hit = load_or_build_item_codes(config, dataset)
    assert hit["cache_hit"] and hit["path"] == first["path"]
    for name in ("behavior", "semantic"):
        torch.testing.assert_close(hit[name].codes, first[name].codes)
        torch.testing.assert_close(hit[name].embeddings, first[name].embeddings)
        assert hit[name].stats == first[name].stats

    mtime = os.stat(first["path"]).st_mtime_ns
    config, dataset = make(from_checkpoint, rebuild_codes=True)
    rebuilt = load_or_build_item_codes(config, dataset)
    assert not rebuilt["cache_hit"] and rebuilt["path"] == first["path"] and os.stat(first["path"]).st_mtime_ns != mtime
    for name in ("behavior", "semantic"):  # same seed, same codes
        torch.testing.assert_close(rebuilt[name].codes, first[name].codes)


def test_changed_inputs_change_the_cache_file(from_checkpoint, tiny_copy):
    def path(**overrides):
        config, _ = make(from_checkpoint, **overrides)
        return build.cache_path(config, build.cache_inputs(config))

    base = path()
    changed = [
        path(kmeans_k=8),
        path(kmeans_seed=1),
        path(kmeans_max_depth=5),
        path(item_text_fields=["title", "brand"]),
        path(semantic_model="other-encoder"),
        path(behavior_checkpoint=None),
        path(behavior_checkpoint=None, sequence_order="item"),  # the behavior model trains on that order
        path(eval_args={"split": {"RS": [0.8, 0.1, 0.1]}, "order": "TO", "group_by": "user", "mode": "full"}),
        path(item_inter_num_interval="[6,inf)"),
        path(code_method="rqvae"),
        path(code_method="rqvae", rqvae_epochs=3),
    ]
    assert path(data_path=str(tiny_copy)) == base  # same content elsewhere: same codes
    item_file = tiny_copy / "eager-tiny" / "eager-tiny.item"
    item_file.write_text(item_file.read_text().replace("OPI Classic", "OPI Classic Red"))
    changed.append(path(data_path=str(tiny_copy)))
    assert len(set(changed + [base])) == len(changed) + 1
    assert path(semantic_batch_size=7, MAX_ITEM_LIST_LENGTH=5, rqvae_epochs=3) == base  # do not change the (k-means) codes
    assert path(sequence_order="item") == base  # a given behavior checkpoint and item text do not depend on it


@pytest.mark.parametrize("damage", ["truncate", "flip"])
def test_damaged_cache_is_detected_and_rebuilt(from_checkpoint, damage, caplog):
    config, dataset = make(from_checkpoint)
    first = load_or_build_item_codes(config, dataset)
    data = open(first["path"], "rb").read()
    if damage == "truncate":
        data = data[: len(data) // 2]
    else:  # flip bytes of the semantic embeddings, which the zip container does not check
        values = first["semantic"].embeddings[5].numpy().tobytes()
        start = data.index(values)
        data = data[:start] + bytes(b ^ 0xFF for b in values[:8]) + data[start + 8 :]
    open(first["path"], "wb").write(data)
    with caplog.at_level(logging.WARNING):
        again = load_or_build_item_codes(config, dataset)
    assert not again["cache_hit"] and "unusable" in caplog.text
    assert ("checksum mismatch" in caplog.text) == (damage == "flip")
    torch.testing.assert_close(again["semantic"].codes, first["semantic"].codes)
    assert load_or_build_item_codes(config, dataset)["cache_hit"]


# --- errors -------------------------------------------------------------------------------


def test_missing_text_field(from_checkpoint):
    config, dataset = make(from_checkpoint, item_text_fields=["title", "description"])
    with pytest.raises(RecBoleEagerError, match="'description'.*available item fields: item_id, title, brand, categories"):
        load_or_build_item_codes(config, dataset)


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"kmeans_k": 1}, "kmeans_k=1: hierarchical k-means needs at least 2"),
        ({"kmeans_k": 100}, "dataset has 72 items, fewer than kmeans_k=100; lower kmeans_k"),
        ({"semantic_model": "/no/such/encoder"}, "could not load semantic encoder '/no/such/encoder'"),
        ({"behavior_checkpoint": "missing.pth"}, "behavior_checkpoint missing.pth does not exist"),
    ],
)
def test_config_errors(from_checkpoint, overrides, message):
    config, dataset = make(from_checkpoint, **overrides)
    with pytest.raises(RecBoleEagerError, match=message):
        load_or_build_item_codes(config, dataset)


def test_all_items_without_text(tiny_config, tiny_copy):
    item_file = tiny_copy / "eager-tiny" / "eager-tiny.item"
    lines = item_file.read_text().splitlines()
    item_file.write_text("\n".join([lines[0]] + [line.split("\t")[0] + "\t\t\t" for line in lines[1:]]) + "\n")
    config, dataset = make({**tiny_config, "data_path": str(tiny_copy)})
    with pytest.raises(RecBoleEagerError, match="no item of dataset 'eager-tiny' has text"):
        load_or_build_item_codes(config, dataset)


def test_checkpoint_of_other_items(from_checkpoint, tmp_path):
    path = tmp_path / "other.pth"
    torch.save({"state_dict": {"item_embedding.weight": torch.randn(10, 4)}}, path)
    config, dataset = make(from_checkpoint, behavior_checkpoint=str(path))
    with pytest.raises(RecBoleEagerError, match="has 10 item rows but dataset 'eager-tiny' has 73"):
        load_or_build_item_codes(config, dataset)


# --- command line ---------------------------------------------------------------------------


def test_cli_builds_then_hits(from_checkpoint, monkeypatch, capsys):
    args = [f"--{k}={v}" for k, v in from_checkpoint.items()] + ["--dataset=eager-tiny", f"--kmeans_k={K}"]
    monkeypatch.setattr(sys, "argv", ["codes"] + args)
    cli.main()
    built = capsys.readouterr().out
    cli.main()
    hit = capsys.readouterr().out
    assert "(miss: built)" in built and "(hit)" in hit
    assert "behavior: 72 items, K=4" in hit and "semantic: 72 items, K=4" in hit
    assert "items without the first text field: 2" in hit and "level-1 clusters 4" in hit


def test_cli_exports_embeddings_that_rebuild_the_same_codes(from_checkpoint, tmp_path, monkeypatch, capsys):
    """``--export=DIR`` writes each stream's embeddings by item token, for a machine without the
    text encoder's weights; codes built from those files equal the originals."""
    args = [f"--{k}={v}" for k, v in from_checkpoint.items()] + ["--dataset=eager-tiny", f"--kmeans_k={K}"]
    monkeypatch.setattr(sys, "argv", ["codes"] + args + [f"--export={tmp_path}"])
    assert cli.main() == 0
    assert f"semantic embeddings: {tmp_path / 'eager-tiny-semantic.npz'}" in capsys.readouterr().out
    with np.load(tmp_path / "eager-tiny-semantic.npz") as data:
        assert data["embeddings"].shape == (72, 384) and data["tokens"].shape == (72,)
    config, dataset = make(from_checkpoint)
    original = load_or_build_item_codes(config, dataset)
    files = {f"{s}_embedding_file": str(tmp_path / f"eager-tiny-{s}.npz") for s in ("behavior", "semantic")}
    config, dataset = make(from_checkpoint, **files)
    rebuilt = load_or_build_item_codes(config, dataset)
    assert not rebuilt["cache_hit"]
    for stream in ("behavior", "semantic"):
        torch.testing.assert_close(rebuilt[stream].codes, original[stream].codes, rtol=0, atol=0)
        torch.testing.assert_close(rebuilt[stream].embeddings, original[stream].embeddings, rtol=0, atol=0)
