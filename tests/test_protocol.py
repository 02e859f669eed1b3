"""Protocol options any model runs under: history exclusion, the authors' item order, a test
pass after every epoch; and the Markov count floor."""
import os
from collections import Counter

import numpy as np
import pandas as pd
import pytest
import torch
from recbole.data import data_preparation

from conftest import TINY_DATA
from recbole_eager.config import Config
from recbole_eager.data import create_dataset
from recbole_eager.quick_start import build_model, run_recbole_eager
from recbole_eager.trainer import with_run_mixins
from recbole_eager.utils import RecBoleEagerError, get_trainer


def prepared(tiny_config, model="SASRec", **overrides):
    config = Config(model=model, dataset="eager-tiny", config_dict={**tiny_config, **overrides})
    dataset = create_dataset(config)
    return config, dataset, *data_preparation(config, dataset)


@pytest.mark.parametrize("exclude", [False, True])
def test_exclude_history_never_ranks_the_input_history(tiny_config, exclude):
    config, _, train_data, _, test_data = prepared(tiny_config, exclude_history=exclude)
    model = build_model(config, train_data)
    trainer = with_run_mixins(get_trainer(config["MODEL_TYPE"], config["model"]))(config, model)
    trainer.tot_item_num = test_data._dataset.item_num  # as RecBole's evaluate sets it
    interaction, scores, _, _ = trainer._full_sort_batch_eval(next(iter(test_data)))
    seq = interaction[model.ITEM_SEQ]
    history = scores[torch.arange(seq.size(0)).unsqueeze(1).expand_as(seq)[seq > 0], seq[seq > 0]]
    assert torch.isinf(history).all() == exclude and torch.isfinite(scores[:, 1:]).any()


def test_item_order_puts_each_users_largest_item_token_last(tiny_config, caplog):
    _, dataset, _, valid_data, test_data = prepared(tiny_config, sequence_order="item")
    assert "not a valid evaluation" in caplog.text
    rows = pd.read_csv(TINY_DATA / "eager-tiny" / "eager-tiny.inter", sep="\t", dtype=str)
    rows.columns = ["user", "item", "timestamp"]
    by_user = rows.groupby("user")["item"].apply(sorted)

    def targets(data):
        feat = data._dataset.inter_feat
        return dict(zip(dataset.id2token("user_id", feat["user_id"].numpy()), dataset.id2token("item_id", feat["item_id"].numpy())))

    test, valid = targets(test_data), targets(valid_data)
    assert all(test[u] == items[-1] and valid[u] == items[-2] for u, items in by_user.items())
    _, time_dataset, _, _, time_test = prepared(tiny_config)
    assert targets(time_test) != test  # the tiny set's time order is not its item order


def test_sequence_order_value_is_checked(tiny_config):
    with pytest.raises(RecBoleEagerError, match="sequence_order='asin'"):
        prepared(tiny_config, sequence_order="asin")


def test_report_best_test_keeps_the_best_test_epoch_beside_the_valid_choice(tiny_config):
    result = run_recbole_eager(model="SASRec", dataset="eager-tiny", config_dict={**tiny_config, "epochs": 3, "report_best_test": True})
    assert result["best_test_epoch"] in (0, 1, 2)
    assert result["best_test_result"]["ndcg@10"] >= result["test_result"]["ndcg@10"]  # the valid-chosen epoch is among them
    assert [r["epoch"] for r in result["test_curve"]] == [0, 1, 2] and len(result["valid_curve"]) == 3
    assert result["test_curve"][result["best_test_epoch"]]["ndcg@10"] == result["best_test_result"]["ndcg@10"]
    assert max(r["ndcg@10"] for r in result["valid_curve"]) == result["best_valid_result"]["ndcg@10"]


def test_markov_scores_are_next_item_counts_of_the_training_split(tiny_config):
    config, _, train_data, _, test_data = prepared(tiny_config, model="Markov")
    model = build_model(config, train_data)
    feat = train_data._dataset.inter_feat
    last = feat[model.ITEM_SEQ].gather(1, (feat[model.ITEM_SEQ_LEN] - 1).unsqueeze(1)).squeeze(1).numpy()
    target = feat[model.POS_ITEM_ID].numpy()
    batch = next(iter(test_data))[0]
    scores = model.full_sort_predict(batch)
    user_last = batch[model.ITEM_SEQ].gather(1, (batch[model.ITEM_SEQ_LEN] - 1).unsqueeze(1)).squeeze(1).numpy()
    for row in range(5):
        expected = np.bincount(target[last == user_last[row]], minlength=model.n_items)
        assert np.array_equal(np.floor(scores[row].numpy()), expected)  # the tie-break stays below one count
    popular = np.bincount(target, minlength=model.n_items).argmax()
    unseen = scores[:, popular][torch.from_numpy(np.isin(user_last, last, invert=True))]
    assert torch.all(unseen == scores.max(dim=1).values[torch.from_numpy(np.isin(user_last, last, invert=True))])
    no_cap = {k: v for k, v in tiny_config.items() if k != "epochs"}  # Markov.yaml: one epoch
    result = run_recbole_eager(model="Markov", dataset="eager-tiny", config_dict={**no_cap, "exclude_history": True})
    assert result["epochs"] == 1 and result["test_result"]["ndcg@10"] > 0


def test_token_seq_fields_read_a_token_field_as_words_and_s3rec_takes_them_as_attributes(tiny_config):
    """The shared Sports file's only item text is a keyword string (a token field): S3-Rec
    can use its words as attributes."""
    config = Config(model="S3Rec", dataset="eager-tiny",
                    config_dict={**tiny_config, "token_seq_fields": ["title"], "item_attribute": "title"})
    dataset = create_dataset(config)
    assert dataset.field2type["title"].value == "token_seq" and dataset.field2seqlen["title"] == 5
    words = dataset.item_feat["title"][dataset.token2id("item_id", "I00000")]
    assert list(dataset.id2token("title", words[words > 0])) == ["OPI", "Classic", "Nail", "Polish", "No.1"]
    result = run_recbole_eager(model="S3Rec", dataset="eager-tiny", config_dict={
        **tiny_config, "token_seq_fields": ["title"], "item_attribute": "title", "epochs": 1, "pretrain_epochs": 1})
    assert result["epochs"] == 1 and 0 <= result["test_result"]["ndcg@10"] <= 1


def test_token_seq_min_count_keeps_the_words_found_in_that_many_rows(tiny_config):
    """Sports' 14,651 keyword words make S3-Rec's attribute objectives hours per epoch on a CPU;
    ``token_seq_min_count`` keeps a smaller vocabulary of the words shared by several items."""
    config = Config(model="S3Rec", dataset="eager-tiny", config_dict={
        **tiny_config, "token_seq_fields": ["title"], "item_attribute": "title", "token_seq_min_count": 6})
    dataset = create_dataset(config)
    with open(os.path.join(config["data_path"], "eager-tiny.item"), encoding="utf-8") as f:
        titles = [line.split("\t")[1].split() for line in f.readlines()[1:]]
    rows = Counter(w for t in titles for w in set(t))
    kept = set(dataset.field2id_token["title"][1:])  # 0: padding
    assert kept == {w for w, n in rows.items() if n >= 6} and kept and len(kept) < len(rows)
    words = dataset.item_feat["title"][dataset.token2id("item_id", "I00000")]
    assert list(dataset.id2token("title", words[words > 0])) == [w for w in titles[0] if rows[w] >= 6]
    with pytest.raises(RecBoleEagerError, match=r"token_seq_min_count: 0 is not a whole number of rows >= 1"):
        Config(model="S3Rec", dataset="eager-tiny", config_dict={**tiny_config, "token_seq_min_count": 0})


def test_token_seq_fields_must_be_loaded_fields(tiny_config):
    with pytest.raises(RecBoleEagerError, match=r"token_seq_fields: 'name' is not a field dataset 'eager-tiny' loads"):
        Config(model="SASRec", dataset="eager-tiny", config_dict={**tiny_config, "token_seq_fields": ["name"]})
