"""Catalogue scale: item embeddings from files, the synthetic catalogue, EAGER's top-k path."""
import hashlib
import json
import os

import numpy as np
import pytest
import torch

from test_codes import EAGER_YAML, assert_valid_codes, make
from test_eager import build, first_batch

from recbole_eager.codes import load_or_build_item_codes
from recbole_eager.codes.embedding_file import embeddings_from_file
from recbole_eager.config import Config, ConfigError
from recbole_eager.data import create_dataset
from recbole_eager.experiments import synthetic
from recbole_eager.model.beam_search import top_candidates
from recbole_eager.utils import RecBoleEagerError


@pytest.fixture
def dataset(tiny_config):
    return make(tiny_config)[1]


def real_tokens(dataset):
    return list(dataset.id2token(dataset.iid_field, np.arange(1, dataset.item_num)))


# --- embedding files ------------------------------------------------------------------


def test_embedding_file_by_item_id_and_by_token_give_the_same_table(dataset, tmp_path):
    n, rng = dataset.item_num - 1, np.random.default_rng(0)
    table = rng.standard_normal((n, 8)).astype(np.float32)
    np.save(tmp_path / "ids.npy", table)
    torch.save(torch.from_numpy(np.vstack([np.ones((1, 8), np.float32), table])), tmp_path / "padded.pt")
    order = rng.permutation(n)  # any row order, plus a row of an item the dataset lacks
    tokens = np.array(real_tokens(dataset), dtype=str)[order].tolist() + ["not-an-item"]
    np.savez(tmp_path / "tokens.npz", tokens=np.array(tokens), embeddings=np.vstack([table[order], np.zeros((1, 8))]))
    torch.save({"tokens": tokens, "embeddings": torch.from_numpy(np.vstack([table[order], np.zeros((1, 8), np.float32)]))}, tmp_path / "tokens.pt")
    expected = np.vstack([np.zeros((1, 8), np.float32), table])
    for name in ("ids.npy", "padded.pt", "tokens.npz", "tokens.pt"):
        loaded, stats = embeddings_from_file("semantic_embedding_file", str(tmp_path / name), dataset)
        np.testing.assert_array_equal(loaded, expected)
        assert stats["ignored_rows"] == (1 if name.startswith("tokens") else 0)


def test_embedding_file_errors(dataset, tmp_path):
    n = dataset.item_num - 1
    tokens = real_tokens(dataset)
    cases = {
        "rows.npy": (np.zeros((n + 2, 4)), "rows, but dataset 'eager-tiny' has"),
        "flat.npy": (np.zeros(n), "expected [items, dim]"),
        "nan.npy": (np.full((n, 4), np.nan), "NaN or infinite"),
        "missing.npz": ({"tokens": np.array(tokens[1:]), "embeddings": np.zeros((n - 1, 4))}, f"no embedding for 1 of the dataset's {n} items (e.g. {tokens[0]})"),
        "twice.npz": ({"tokens": np.array(tokens + tokens[:1]), "embeddings": np.zeros((n + 1, 4))}, "item tokens repeat"),
        "unequal.npz": ({"tokens": np.array(tokens), "embeddings": np.zeros((n + 1, 4))}, f"{n} tokens but {n + 1} embedding rows"),
        "nokey.npz": ({"vectors": np.zeros((n, 4))}, "has no 'embeddings' array"),
        "table.csv": (None, "use a .npy, .npz, .pt file"),
    }
    for name, (content, message) in cases.items():
        path = str(tmp_path / name)
        if name.endswith(".npy"):
            np.save(path, content)
        elif name.endswith(".npz"):
            np.savez(path, **content)
        else:
            open(path, "w").close()
        with pytest.raises(RecBoleEagerError, match=message.replace("[", r"\[").replace("(", r"\(").replace(")", r"\)")):
            embeddings_from_file("behavior_embedding_file", path, dataset)
    with pytest.raises(RecBoleEagerError, match="no such file"):
        embeddings_from_file("behavior_embedding_file", str(tmp_path / "absent.npy"), dataset)


def test_config_checks_embedding_files_before_anything_runs(tiny_config, tmp_path):
    np.save(tmp_path / "e.npy", np.zeros((3, 2)))
    for overrides, message in (
        ({"behavior_embedding_file": str(tmp_path / "absent.npy")}, "behavior_embedding_file=.*: no such file"),
        ({"semantic_embedding_file": str(tmp_path / "e.txt")}, "semantic_embedding_file=.*: no such file"),
        ({"behavior_embedding_file": str(tmp_path / "e.npy"), "behavior_checkpoint": str(tmp_path / "e.npy")}, "both set"),
    ):
        with pytest.raises(ConfigError, match=message):
            Config(model="EAGER", dataset="eager-tiny", config_dict={**tiny_config, **overrides})


def test_codes_from_embedding_files_need_no_behavior_model_or_text(tiny_config, tmp_path, monkeypatch):
    from recbole_eager.codes import build as codes_build

    def refuse(*args):
        raise AssertionError("no behavior model or text encoder may run")

    monkeypatch.setattr(codes_build, "behavior_embeddings", refuse)
    monkeypatch.setattr(codes_build, "semantic_embeddings", refuse)
    config, dataset = make(tiny_config)
    rng = np.random.default_rng(1)
    for stream in ("behavior", "semantic"):
        np.save(tmp_path / f"{stream}.npy", rng.standard_normal((dataset.item_num - 1, 6)).astype(np.float32))
    config, dataset = make(tiny_config, behavior_embedding_file=str(tmp_path / "behavior.npy"),
                           semantic_embedding_file=str(tmp_path / "semantic.npy"), item_text_fields=None, semantic_model=None)
    codes = load_or_build_item_codes(config, dataset)
    assert not codes["cache_hit"] and codes["behavior"].stats["embedding_file"] == "behavior.npy"
    for stream in ("behavior", "semantic"):
        assert_valid_codes(codes[stream].codes, 4)
        np.testing.assert_array_equal(codes[stream].embeddings[1:].numpy(), np.load(tmp_path / f"{stream}.npy"))
    assert load_or_build_item_codes(config, dataset)["cache_hit"]
    np.save(tmp_path / "semantic.npy", rng.standard_normal((dataset.item_num - 1, 6)).astype(np.float32))
    assert load_or_build_item_codes(config, dataset)["path"] != codes["path"]  # new file content, new codes


# --- the synthetic catalogue ------------------------------------------------------------


def _digests(folder):
    return {name: hashlib.sha256(open(os.path.join(folder, name), "rb").read()).hexdigest() for name in sorted(os.listdir(folder))}


def test_synthetic_catalogue_is_deterministic_and_loads(tmp_path, tiny_config):
    folders = [synthetic.write(synthetic.generate(1000, 200, dim=8, seed=seed), str(tmp_path / run), "syn")[0]
               for run, seed in (("a", 3), ("b", 3), ("c", 4))]
    assert _digests(folders[0]) == _digests(folders[1])
    assert _digests(folders[0]) != _digests(folders[2])
    assert set(_digests(folders[0])) == {"syn.inter", "syn.item", "syn-behavior.npz", "syn-semantic.npz"}

    data = synthetic.generate(1000, 200, dim=8, seed=3)
    assert np.all(np.diff(data["users"]) >= 0) and data["items"].max() < 1000
    same = data["users"][1:] == data["users"][:-1]
    stays = (data["cluster"][data["items"][1:]] == data["cluster"][data["items"][:-1]])[same].mean()
    assert stays > 0.7  # sequences follow the clusters (stay 0.8, plus returns by chance)

    config = Config(model="EAGER", dataset="syn", config_file_list=[EAGER_YAML], config_dict={
        **tiny_config, "data_path": str(tmp_path / "a"), "kmeans_k": 8,
        "behavior_embedding_file": os.path.join(folders[0], "syn-behavior.npz"),
        "semantic_embedding_file": os.path.join(folders[0], "syn-semantic.npz")})
    dataset = create_dataset(config)
    assert dataset.item_num == 1001  # items without interactions still count: the .item file lists them
    codes = load_or_build_item_codes(config, dataset)
    tokens = dataset.id2token(dataset.iid_field, np.arange(1, 1001)).astype(int)
    np.testing.assert_array_equal(codes["behavior"].embeddings[1:].numpy(), data["behavior"][tokens - 1])
    assert codes["behavior"].depth >= 4  # 1000 items, K 8: 8^3 < 1000


def test_synthetic_catalogue_rejects_bad_sizes():
    with pytest.raises(RecBoleEagerError, match="n_items >= 2 \\* cluster_size"):
        synthetic.generate(150, 10)


# --- EAGER's top-k path -------------------------------------------------------------------


def test_top_candidates_keeps_each_items_best_score_and_leaves_out_exclusions():
    inf = float("-inf")
    items = torch.tensor([[4, 2, 4, 0, 7], [3, 3, 5, 6, 6]])
    scores = torch.tensor([[-1.0, -0.5, -0.2, 0.0, -3.0], [-2.0, -1.0, -4.0, -0.1, -0.3]])
    top_items, top_scores = top_candidates(items, scores, 3, exclude=torch.tensor([[9, 0], [6, 0]]))
    assert top_items.tolist() == [[4, 2, 7], [3, 5, 0]]
    torch.testing.assert_close(top_scores, torch.tensor([[-0.2, -0.5, -3.0], [-1.0, -4.0, inf]]))
    padded_items, padded_scores = top_candidates(items[:, :2], scores[:, :2], 4)
    assert padded_items.tolist() == [[2, 4, 0, 0], [3, 0, 0, 0]]
    assert padded_scores[0, 2:].tolist() == [inf, inf]


def test_full_sort_topk_equals_the_top_k_of_full_sort_predict(fake_codes, tiny_config):
    _, model, _, test_data = build(tiny_config, search_chunk_size=7)
    model.eval()
    interaction = first_batch(test_data)
    with torch.no_grad():
        dense = model.full_sort_predict(interaction)
    for exclude in (False, True):
        scores = dense.clone()
        if exclude:
            seq = interaction[model.ITEM_SEQ]
            scores.scatter_(1, seq, float("-inf"))
        expected = scores.topk(10, dim=1).values
        items, top = model.full_sort_topk(interaction, 10, exclude_history=exclude)
        torch.testing.assert_close(top, expected)
        finite = torch.isfinite(top)
        torch.testing.assert_close(scores.gather(1, items)[finite], top[finite])  # the items carry those scores
        assert all(len(set(row[f].tolist())) == int(f.sum()) for row, f in zip(items, finite))
        if exclude:
            assert not (items.unsqueeze(2) == interaction[model.ITEM_SEQ].unsqueeze(1))[finite].any(-1).any()


# --- the scale experiment -------------------------------------------------------------------


def test_scale_experiment_measures_resumes_and_reports(tmp_path, capsys):
    from recbole_eager.experiments import scale

    args = ["--n_items", "600", "--n_users", "80", "--kmeans_k", "8", "--balanced_max", "600", "--users", "40",
            "--batch", "16", "--repeats", "1", "--threads", "1", "--work", "work", "--out", "out"]
    os.makedirs("results")
    scale.main(args)
    record = json.load(open("out/scale-600.json"))
    assert set(record["codes"]) == {"behavior-plain", "behavior-balanced", "semantic-plain", "semantic-balanced"}
    assert record["codes"]["behavior-balanced"]["level1_size_max"] - record["codes"]["behavior-balanced"]["level1_size_min"] <= 1
    for key in ("eager_topk", "eager_dense_topk", "sasrec_dense_topk"):
        assert record[key]["seconds"] > 0 and record[key]["seconds_per_1000_users"] == pytest.approx(record[key]["seconds"] * 25)
    assert record["timed_users"] == 40 and record["work"] == "work" and "/" not in record["command"].split()[-1]
    report = open("results/scale.md").read()
    assert "| 600 | " in report and os.path.isfile("results/scale.png")
    scale.main(args)  # a finished size is not measured again
    assert "out/scale-600.json exists, skipped" in capsys.readouterr().out


def test_crossover_interpolates_on_log_log_axes():
    from recbole_eager.experiments.scale_report import crossover

    def record(n, eager, sasrec):
        return {"n_items": n, "eager_topk": {"seconds": eager}, "sasrec_dense_topk": {"seconds": sasrec}}

    assert crossover([record(10, 4.0, 1.0), record(1000, 1.0, 4.0)]) == 100
    assert crossover([record(10, 4.0, 1.0), record(1000, 2.0, 1.0)]) is None


def test_last_histories_are_each_users_last_items_before_the_target(tiny_config):
    from recbole_eager.experiments.scale import last_histories

    dataset = make(tiny_config)[1]
    seq, lengths, targets = last_histories(dataset, 3)
    feat = dataset.inter_feat.sort_values([dataset.uid_field, dataset.time_field], kind="stable")
    first = feat.groupby(dataset.uid_field)[dataset.iid_field].apply(list).iloc[0]
    assert targets[0] == first[-1] and seq[0, : lengths[0]].tolist() == first[-4:-1][-3:]
    assert (seq[torch.arange(len(seq)), lengths - 1] > 0).all() and (lengths <= 3).all()


@pytest.mark.parametrize("exclude_history", [False, True])
def test_topk_eval_gives_the_dense_evaluation_s_metrics(fake_codes, tiny_config, exclude_history):
    from recbole_eager.trainer import EAGERTrainer, TopKCollector, with_run_mixins

    results = []
    for topk_eval in (False, True):
        config, model, _, test_data = build(tiny_config, topk_eval=topk_eval, exclude_history=exclude_history)
        trainer = with_run_mixins(EAGERTrainer)(config, model)
        assert isinstance(trainer.eval_collector, TopKCollector) == topk_eval
        results.append(trainer.evaluate(test_data, load_best_model=False))
    assert results[0] == results[1] and results[0]["recall@20"] > 0


def test_topk_eval_refuses_metrics_that_need_dense_scores(fake_codes, tiny_config):
    from recbole_eager.trainer import EAGERTrainer

    config, model, _, test_data = build(tiny_config, topk_eval=True, metrics=["Recall", "AveragePopularity"])
    with pytest.raises(RecBoleEagerError, match="topk_eval=True gives top-k metrics only"):
        EAGERTrainer(config, model).evaluate(test_data, load_best_model=False)
