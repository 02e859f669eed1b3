"""TIGER: RQ-VAE semantic IDs and EAGER's semantic stream alone."""
import numpy as np
import pytest
import torch

from test_codes import assert_valid_codes, make
from test_eager import first_batch

from recbole_eager.codes import load_or_build_item_codes
from recbole_eager.codes.rqvae import deduplicate, rqvae_codes, train_rqvae
from recbole_eager.config import Config, ConfigError
from recbole_eager.model import eager as eager_module
from recbole_eager.model.beam_search import beam_search
from recbole_eager.quick_start import add_new_defaults, load_data_and_model, run_recbole_eager
from recbole_eager.utils import RecBoleEagerError, get_model

RQVAE_SMALL = {"rqvae_codebook_size": 8, "rqvae_levels": 2, "rqvae_epochs": 20, "rqvae_batch_size": 64, "rqvae_hidden": [32], "rqvae_latent_dim": 8}


def test_rqvae_codes_are_unique_and_deterministic_with_a_seed():
    x = np.random.default_rng(0).standard_normal((600, 16)).astype(np.float32)
    kwargs = dict(epochs=10, batch_size=128, hidden=(32,), latent_dim=8, show_progress=False)
    first, stats = rqvae_codes(x, 16, 2, seed=0, **kwargs)
    again, _ = rqvae_codes(x, 16, 2, seed=0, **kwargs)
    other, _ = rqvae_codes(x, 16, 2, seed=1, **kwargs)
    assert first.shape == (600, 3) and len(np.unique(first, axis=0)) == 600
    assert (first == again).all() and not (first == other).all()
    assert stats["items_in_collisions"] == int((first[:, 2] > 0).sum() + len({tuple(r[:2]) for r in first[first[:, 2] > 0]}))
    assert all(0 < u <= 1 for u in stats["codebook_usage"]) and stats["largest_collision"] == first[:, 2].max() + 1


def test_dead_codewords_are_reinitialised_against_collapse():
    """Four tight clusters far from the initial codebook: without the guard every item picks
    the same first-level codeword; with it, unused codewords move onto the data."""
    rng = np.random.default_rng(0)
    x = ((rng.standard_normal((4, 16)) * 3)[rng.integers(0, 4, 512)] + 0.3 * rng.standard_normal((512, 16)) + 10).astype(np.float32)
    usage = {}
    for threshold in (0, 2):
        _, stats = train_rqvae(x, 16, 2, seed=0, epochs=30, batch_size=128, kmeans_init=False, dead_code_threshold=threshold, show_progress=False)
        usage[threshold] = stats["codebook_usage"][0]
    assert usage[0] <= 2 / 16 and usage[2] >= 8 / 16


def test_deduplicate_numbers_items_sharing_a_code():
    codes, sizes = deduplicate(np.array([[1, 2], [0, 0], [1, 2], [1, 2], [3, 1]]), k=4)
    assert codes[:, 2].tolist() == [0, 0, 1, 2, 0] and sorted(sizes.tolist()) == [1, 1, 3]
    with pytest.raises(RecBoleEagerError, match="gave 3 items one code, more than rqvae_codebook_size=2"):
        deduplicate(np.zeros((3, 2), dtype=np.int64), k=2)


def test_semantic_codes_by_rqvae_keep_behavior_codes_by_kmeans(tiny_config, monkeypatch):
    from recbole_eager.codes import build

    def no_text(config, dataset):  # no encoder download in tests: any fixed embeddings
        n = dataset.item_num
        table = np.random.default_rng(0).standard_normal((n, 12)).astype(np.float32)
        table[0] = 0
        return table, {"encoder": "fixed", "encode_seconds": 0.0, "empty_first_field": 0, "no_text": 0}

    monkeypatch.setattr(build, "semantic_embeddings", no_text)
    config, dataset = make(tiny_config, use_behavior_stream=False, code_method="rqvae", **RQVAE_SMALL)
    codes = load_or_build_item_codes(config, dataset)
    semantic = codes["semantic"]
    assert "behavior" not in codes and semantic.num_clusters == 8 and semantic.depth == 3
    assert semantic.stats["code_method"] == "rqvae"
    assert_valid_codes(semantic.codes, 8)
    assert load_or_build_item_codes(config, dataset)["cache_hit"]


def test_tiger_config_is_eager_s_semantic_stream_with_tiger_s_values(tiny_config):
    config = Config(model="TIGER", dataset="eager-tiny", config_dict=tiny_config)
    assert (config["use_behavior_stream"], config["use_gct"], config["code_method"], config["code_tokens"]) == (False, False, "rqvae", "level")
    assert (config["encoder_layers"], config["inner_size"], config["beam_size"]) == (4, 1024, 20)  # TIGER's; EAGER's beam
    with pytest.raises(ConfigError, match="TIGER generates the semantic code alone"):
        Config(model="TIGER", dataset="eager-tiny", config_dict={**tiny_config, "use_behavior_stream": True})


def _tiny_tiger(tiny_config, **overrides):
    return {**tiny_config, "epochs": 1, "encoder_layers": 1, "decoder_layers": 1, "inner_size": 64, **overrides}


def test_tiger_beams_are_valid_sorted_and_scored_by_their_code(fake_codes, tiny_config):
    from recbole.data import data_preparation
    from recbole_eager.data import create_dataset

    config = Config(model="TIGER", dataset="eager-tiny", config_dict=_tiny_tiger(tiny_config))
    dataset = create_dataset(config)
    _, _, test_data = data_preparation(config, dataset)
    torch.manual_seed(0)
    model = get_model("TIGER")(config, test_data._dataset).eval()
    assert list(model.decoders) == ["semantic"] and model.stt is None
    interaction = first_batch(test_data)
    with torch.no_grad():
        memory, valid = model.encode(interaction[model.ITEM_SEQ])
        decoder = model.decoders["semantic"]
        kvs = decoder.transformer.memory_kv(memory, valid)
        items, scores = beam_search(decoder, kvs, valid[:, None, None, :], 20)
        teacher = decoder.log_prob(items, kvs, valid[:, None, None, :])
    finite = torch.isfinite(scores)
    assert finite.all(dim=1).any() and (items[finite] > 0).all()
    assert (scores[:, 1:] <= scores[:, :-1]).all()
    torch.testing.assert_close(teacher[finite], scores[finite], atol=1e-4, rtol=1e-4)
    for row, f in zip(items, finite):
        assert len(set(row[f].tolist())) == int(f.sum())


def test_tiger_save_load_round_trip(fake_codes, tiny_config, monkeypatch):
    result = run_recbole_eager(model="TIGER", dataset="eager-tiny", config_dict=_tiny_tiger(tiny_config))
    assert result["model"] == "TIGER" and result["test_result"]["recall@20"] >= 0
    monkeypatch.setattr(eager_module, "load_or_build_item_codes", lambda *a: pytest.fail("codes come from the checkpoint"))
    _, model, _, _, _, test_data = load_data_and_model(result["saved_model_file"])
    _, again, _, _, _, _ = load_data_and_model(result["saved_model_file"])
    model.eval(), again.eval()
    interaction = first_batch(test_data)
    with torch.no_grad():
        torch.testing.assert_close(again.full_sort_predict(interaction), model.full_sort_predict(interaction))
    assert type(model).__name__ == "TIGER" and not hasattr(model, "behavior_codes")


def test_a_tiger_checkpoint_from_before_a_key_existed_gets_the_key_from_its_models_yamls():
    """A key added to EAGER.yaml (TIGER's base) after a TIGER checkpoint was saved: loading fills
    it in, and TIGER's own value wins where both YAMLs set the key."""
    saved = {"model": "TIGER", "dataset": "amazon-beauty", "epochs": 7}
    add_new_defaults(saved)
    assert saved["behavior_epochs"] == 30 and saved["epochs"] == 7
    assert saved["code_method"] == "rqvae"  # EAGER.yaml: kmeans
