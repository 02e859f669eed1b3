"""Recommendations from a saved model: by user or history token, CLI and Python."""
import json
import logging

import pytest
import torch
from recbole.data.interaction import Interaction


from recbole_eager import recommend
from recbole_eager.quick_start import run_recbole_eager
from recbole_eager.recommend import Recommender
from recbole_eager.utils import RecBoleEagerError


def train(tiny_config, model):
    config = {**tiny_config, "epochs": 1, "decoder_layers": 1}
    return run_recbole_eager(model=model, dataset="eager-tiny", config_dict=config)["saved_model_file"]


@pytest.mark.parametrize("model", ["SASRec", "EAGER"])
def test_k_distinct_known_items_none_from_the_history(fake_codes, tiny_config, model):
    r = Recommender(train(tiny_config, model))
    user = r.dataset.id2token(r.uid, 5)
    history = {r.dataset.id2token(r.iid, i) for i in r.user_items(user)}
    assert len(history) >= 5  # the 5-core tiny set: train, valid and test items
    result = r.recommend(user=user, k=10)
    items = [x["item"] for x in result]
    assert len(items) == len(set(items)) == 10 and not set(items) & history
    assert [x["rank"] for x in result] == list(range(1, 11))
    assert all(a["score"] >= b["score"] for a, b in zip(result, result[1:]))
    assert all(x["title"] for x in result)  # eager-tiny.item has titles
    assert ("streams" in result[0]) == (model == "EAGER")
    kept = r.recommend(user=user, k=60, exclude_history=False)
    assert len(kept) >= 20


def test_eager_equals_the_top_k_of_its_full_sort_predict(fake_codes, tiny_config):
    r = Recommender(train(tiny_config, "EAGER"))
    tokens = [r.dataset.id2token(r.iid, i) for i in (3, 9, 14, 2)]
    ids = r.history_items(tokens)
    model = r.model
    seq = torch.zeros(1, r.max_length, dtype=torch.long)
    seq[0, :4] = torch.tensor(ids)
    interaction = Interaction({model.ITEM_SEQ: seq, model.ITEM_SEQ_LEN: torch.tensor([4])})
    for exclude, beam in ((False, model.beam_size), (True, 10 + len(ids))):
        configured, model.beam_size = model.beam_size, beam
        with torch.no_grad():
            scores = model.full_sort_predict(interaction)[0]
        model.beam_size = configured
        if exclude:
            scores[ids] = float("-inf")
        expected_scores, expected_items = scores.topk(10)
        result = r.recommend(history=tokens, k=10, exclude_history=exclude)
        assert [x["item"] for x in result] == [r.dataset.id2token(r.iid, i) for i in expected_items.tolist()]
        torch.testing.assert_close(torch.tensor([x["score"] for x in result]), expected_scores)
        assert all(set(x["streams"]) <= {"behavior", "semantic"} and x["streams"] for x in result)


def test_unknown_tokens(fake_codes, tiny_config, caplog):
    r = Recommender(train(tiny_config, "SASRec"))
    with pytest.raises(RecBoleEagerError, match="unknown user 'nobody'"):
        r.recommend(user="nobody")
    known = r.dataset.id2token(r.iid, 3)
    with caplog.at_level(logging.WARNING):
        result = r.recommend(history=["NOPE1", known], k=5)
    assert "unknown items skipped: NOPE1" in caplog.text and len(result) == 5
    with pytest.raises(RecBoleEagerError, match="no known item"):
        r.recommend(history=["NOPE1", "NOPE2"])


def test_cli_json_input_file_and_errors(fake_codes, tiny_config, tmp_path, capsys):
    model_file = train(tiny_config, "EAGER")
    queries = tmp_path / "queries.txt"
    queries.write_text("I01008 I05009\n\nI00003\n")
    assert recommend.main(["--model_file", model_file, "--input", str(queries), "--topk", "3", "--json"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [x["history"] for x in lines] == ["I01008 I05009", "I00003"]
    assert all(len(x["items"]) == 3 and x["items"][0]["streams"] for x in lines)
    assert recommend.main(["--model_file", model_file, "--user", "nobody"]) == 2
    assert capsys.readouterr().err.strip().splitlines() == ["error: unknown user 'nobody': not a user_id of dataset 'eager-tiny'"]
    assert recommend.main(["--model_file", str(tmp_path / "none.pth"), "--history", "I01008"]) == 2
    assert "does not exist" in capsys.readouterr().err
