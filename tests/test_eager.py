"""EAGER model: losses, flags, beam search, full-sort contract, save/load round-trip.

Codes here are synthetic (fixed digits, random embeddings) so these tests check the
model alone (the ``fake_codes`` fixture, conftest.py); building real codes is covered by
test_codes.py.
"""
import pytest
import torch
from recbole.data import data_preparation

from recbole_eager.config import Config
from recbole_eager.data import create_dataset
from recbole_eager.model import eager as eager_module
from recbole_eager.model.beam_search import beam_search
from recbole_eager.model.eager import EAGER
from recbole_eager.model.trie import build_trie
from recbole_eager.quick_start import load_data_and_model, run_recbole_eager

from conftest import K, synthetic_codes


def build(tiny_config, **overrides):
    config = Config(model="EAGER", dataset="eager-tiny", config_dict={**tiny_config, "decoder_layers": 2, **overrides})
    dataset = create_dataset(config)
    train_data, valid_data, test_data = data_preparation(config, dataset)
    torch.manual_seed(0)
    return config, EAGER(config, train_data._dataset), train_data, test_data


def search(model, stream, memory, valid, beam_size):
    decoder = model.decoders[stream]
    return beam_search(decoder, decoder.transformer.memory_kv(memory), valid[:, None, None, :], beam_size)


def code_log_prob(model, stream, memory, valid, items):
    """Teacher-forced log-probability of items [B] or [B, n] (row b against user b)."""
    decoder = model.decoders[stream]
    scores = decoder.log_prob(items.view(items.size(0), -1), decoder.transformer.memory_kv(memory), valid[:, None, None, :])
    return scores.view_as(items)


def first_batch(data):
    batch = next(iter(data))
    return batch[0] if isinstance(batch, tuple) else batch


@pytest.mark.parametrize("code_tokens, precision", [("level", "float32"), ("node", "float32"), ("node", "bfloat16")])
def test_losses_finite_and_decrease(fake_codes, tiny_config, code_tokens, precision):
    _, model, train_data, _ = build(tiny_config, dropout_prob=0.0, code_tokens=code_tokens, precision=precision)
    assert_losses_finite_and_decrease(model, first_batch(train_data))


def assert_losses_finite_and_decrease(model, batch):
    """12 Adam steps on one batch: each of the six losses starts finite and ends lower."""
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    history = []
    for _ in range(12):
        torch.manual_seed(1)  # same STT masks each step
        losses = model.calculate_loss(batch)
        history.append([loss.item() for loss in losses])
        optimizer.zero_grad()
        sum(losses).backward()
        optimizer.step()
    assert len(history[0]) == 6  # gen x2, con x2, recon, recog
    for first, last in zip(history[0], history[-1]):
        assert torch.isfinite(torch.tensor(first)) and last < first


def test_bfloat16_scores_stay_float32_and_close(fake_codes, tiny_config):
    _, model, _, test_data = build(tiny_config, code_tokens="node")
    model.eval()
    interaction = first_batch(test_data)
    with torch.no_grad():
        full = model.full_sort_predict(interaction)
        model.autocast_dtype = torch.bfloat16
        half = model.full_sort_predict(interaction)
    assert half.dtype == torch.float32
    both = torch.isfinite(full) & torch.isfinite(half)
    assert both.sum(dim=1).min() >= 15  # the beams find mostly the same items
    torch.testing.assert_close(half[both], full[both], atol=0.05, rtol=0.02)


def test_precision_value_is_checked(fake_codes, tiny_config):
    with pytest.raises(ValueError, match="precision='float16'"):
        build(tiny_config, precision="float16")


@pytest.mark.parametrize(
    "flags, gone_params, n_losses",
    [
        ({"use_gct": False}, ["summary_head"], 4),
        ({"use_stt_recon": False, "use_stt_recog": False}, ["stt"], 4),
        ({"use_stt_recog": False}, ["recog_head"], 5),
        ({"use_semantic_stream": False}, ["decoders.semantic", "stt"], 2),
        ({"use_behavior_stream": False}, ["decoders.behavior", "stt"], 2),
    ],
)
def test_flags_remove_parameters_and_losses(fake_codes, tiny_config, flags, gone_params, n_losses):
    _, full_model, train_data, _ = build(tiny_config)
    _, model, _, _ = build(tiny_config, **flags)
    names = [name for name, _ in model.named_parameters()]
    for prefix in gone_params:
        assert any(prefix in n for n, _ in full_model.named_parameters())
        assert not any(prefix in n for n in names)
    assert len(model.calculate_loss(first_batch(train_data))) == n_losses


def test_trie_maps_every_code_to_its_item():
    codes = synthetic_codes(72)
    tries = build_trie(codes, K + 1)
    for item in range(1, 72):
        state = 0
        for level, table in enumerate(tries):
            state = table[state, codes[item, level]].item()
            assert state >= 0
        assert state == item
    assert (tries[0][0, K] == -1).item()  # END never starts a code


@pytest.mark.parametrize("code_tokens", ["level", "node"])
def test_beam_search_valid_distinct_sorted(fake_codes, tiny_config, code_tokens):
    _, model, _, test_data = build(tiny_config, code_tokens=code_tokens)
    model.eval()
    interaction = first_batch(test_data)
    memory, mask = model.encode(interaction[model.ITEM_SEQ])
    for stream in model.streams:
        items, scores = search(model, stream, memory, mask, beam_size=20)
        assert items.shape == (memory.size(0), 20)
        assert (items > 0).all() and (items < model.n_items).all()
        assert all(len(set(row.tolist())) == 20 for row in items)
        assert (scores[:, :-1] >= scores[:, 1:]).all()
        # Each score is the teacher-forced log-probability of that item's code.
        exact = code_log_prob(model, stream, memory[:1].expand(20, -1, -1), mask[:1].expand(20, -1), items[0])
        torch.testing.assert_close(exact, scores[0], atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("code_tokens", ["level", "node"])
def test_beam_search_matches_exhaustive_ranking(fake_codes, tiny_config, code_tokens):
    """With a beam as large as the item set, beam search is exact: it equals scoring all items."""
    _, model, _, test_data = build(tiny_config, code_tokens=code_tokens)
    model.eval()
    interaction = first_batch(test_data)
    memory, mask = model.encode(interaction[model.ITEM_SEQ][:3])
    n = model.n_items - 1
    items, scores = search(model, "behavior", memory, mask, beam_size=n)
    for user in range(3):
        all_items = torch.arange(1, model.n_items)
        exact = code_log_prob(model, "behavior", memory[user : user + 1].expand(n, -1, -1), mask[user : user + 1].expand(n, -1), all_items)
        order = exact.argsort(descending=True)
        assert items[user, :10].tolist() == all_items[order[:10]].tolist()


@pytest.mark.parametrize("code_tokens", ["level", "node"])
def test_full_sort_predict_contract(fake_codes, tiny_config, code_tokens):
    config, model, _, test_data = build(tiny_config, code_tokens=code_tokens)
    model.eval()
    interaction = first_batch(test_data)
    with torch.no_grad():
        scores = model.full_sort_predict(interaction)
    assert_full_sort_contract(scores, model, config, interaction.length)
    # Merged order: each finite score is the best of the two streams' beam scores.
    memory, mask = model.encode(interaction[model.ITEM_SEQ])
    best = torch.full_like(scores, float("-inf"))
    for stream in model.streams:
        items, log_probs = search(model, stream, memory, mask, model.beam_size)
        best.scatter_reduce_(1, items, log_probs, reduce="amax")
    best[:, 0] = float("-inf")
    torch.testing.assert_close(scores, best)


def assert_full_sort_contract(scores, model, config, n_users):
    """[users, n_items] float32 log-probabilities: padding never ranks, >= max(topk) finite per user."""
    assert scores.shape == (n_users, model.n_items) and scores.dtype == torch.float32
    assert torch.isinf(scores[:, 0]).all()
    finite = torch.isfinite(scores)
    assert (finite.sum(dim=1) >= max(config["topk"])).all()
    assert (scores[finite] <= 0).all()  # log-probabilities


def test_node_tokens_score_only_children_with_one_token_per_item(fake_codes, tiny_config):
    _, model, _, _ = build(tiny_config, code_tokens="node")
    decoder = model.decoders["behavior"]
    codes = model.behavior_codes
    n_prefixes = [len({tuple(c[: t + 1].tolist()) for c in codes[1:]}) for t in range(codes.size(1))]
    assert n_prefixes[-1] == model.n_items - 1
    assert decoder.trie.level_size.tolist() == n_prefixes[:-1] + [model.n_items]  # last level: item ids
    assert decoder.token_embedding.num_embeddings == sum(n_prefixes[:-1]) + model.n_items + 2
    first_digits = sorted({c[0].item() for c in codes[1:]})
    items = [next(i for i in range(1, model.n_items) if codes[i, 0] == d) for d in first_digits]
    parents = decoder.trie.item_states[items, 0]  # one row per first-level prefix, in one grouped call
    logits = decoder.child_logits(torch.randn(len(items), model.hidden_size), 1, parents)
    for digit, row in zip(first_digits, logits):
        children = {c[1].item() for c in codes[1:] if c[0] == digit}
        assert set(torch.isfinite(row).nonzero().view(-1).tolist()) == children
    assert any(len({c[1].item() for c in codes[1:] if c[0] == d}) < K for d in first_digits)  # some prefix lacks digits


needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


@needs_cuda
@pytest.mark.parametrize("precision", ["float32", "bfloat16"])
def test_cuda_losses_decrease_and_full_sort_keeps_the_contract(fake_codes, tiny_config, precision):
    config, model, train_data, test_data = build(tiny_config, dropout_prob=0.0, code_tokens="node", precision=precision)
    model.cuda()
    assert_losses_finite_and_decrease(model, first_batch(train_data).to("cuda"))
    model.eval()
    interaction = first_batch(test_data).to("cuda")
    with torch.no_grad():
        scores = model.full_sort_predict(interaction)
    assert scores.device.type == "cuda"
    assert_full_sort_contract(scores, model, config, interaction.length)


@needs_cuda
@pytest.mark.parametrize("code_tokens", ["level", "node"])
def test_cuda_scores_match_cpu(fake_codes, tiny_config, code_tokens):
    _, model, _, test_data = build(tiny_config, code_tokens=code_tokens)
    model.eval()
    interaction = first_batch(test_data)
    with torch.no_grad():
        cpu_scores, cpu_point = model.full_sort_predict(interaction), model.predict(interaction)
        model.cuda()
        gpu = interaction.to("cuda")
        cuda_scores, cuda_point = model.full_sort_predict(gpu).cpu(), model.predict(gpu).cpu()
    torch.testing.assert_close(cuda_point, cpu_point, atol=1e-4, rtol=1e-4)
    both = torch.isfinite(cpu_scores) & torch.isfinite(cuda_scores)
    assert both.sum(dim=1).min() >= 15  # near-ties at the beam edge may swap
    torch.testing.assert_close(cuda_scores[both], cpu_scores[both], atol=1e-4, rtol=1e-4)


def test_code_tokens_value_is_checked(fake_codes, tiny_config):
    with pytest.raises(ValueError, match="code_tokens='leaf'"):
        build(tiny_config, code_tokens="leaf")


def test_state_dict_with_other_codes_is_refused(fake_codes, tiny_config):
    _, model, _, _ = build(tiny_config)
    state = model.state_dict()
    state["behavior_codes"] = state["behavior_codes"].roll(1, dims=0)
    with pytest.raises(ValueError, match="behavior_codes differ"):
        model.load_state_dict(state)


def test_joint_merge_sums_both_streams_over_the_union(fake_codes, tiny_config):
    _, model, _, test_data = build(tiny_config, merge_rule="joint")
    model.eval()
    interaction = first_batch(test_data)
    with torch.no_grad():
        scores = model.full_sort_predict(interaction)
        memory, mask = model.encode(interaction[model.ITEM_SEQ])
        union = torch.cat([search(model, s, memory, mask, model.beam_size)[0] for s in model.streams], dim=1)
        expected = torch.full_like(scores, float("-inf"))
        joint = sum(code_log_prob(model, s, memory, mask, union) for s in model.streams)
        expected.scatter_(1, union, joint)
        expected[:, 0] = float("-inf")
        torch.testing.assert_close(scores, expected)
        # The pointwise score is the same sum.
        interaction[model.ITEM_ID] = union[:, 0]
        torch.testing.assert_close(model.predict(interaction), joint[:, 0])


@pytest.mark.parametrize("merge_rule", ["confidence", "joint"])
def test_full_sort_in_chunks_matches_one_pass(fake_codes, tiny_config, merge_rule):
    _, model, _, test_data = build(tiny_config, merge_rule=merge_rule)
    model.eval()
    interaction = first_batch(test_data)
    assert interaction.length > 3
    with torch.no_grad():
        whole = model.full_sort_predict(interaction)
        model.search_chunk_size = 3  # the last chunk is shorter
        torch.testing.assert_close(model.full_sort_predict(interaction), whole)


def test_full_sort_scores_follow_their_users_in_any_order(fake_codes, tiny_config):
    """Users are searched in order of history length, histories cut after their last item."""
    _, model, _, test_data = build(tiny_config)
    model.eval()
    interaction = first_batch(test_data)
    lengths = (interaction[model.ITEM_SEQ] != 0).sum(dim=1)
    assert lengths.max() < interaction[model.ITEM_SEQ].size(1) and lengths.unique().numel() > 1  # cuts happen
    model.search_chunk_size = 2
    permutation = torch.randperm(interaction.length, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        scores = model.full_sort_predict(interaction)
        torch.testing.assert_close(model.full_sort_predict(interaction[permutation]), scores[permutation])
        memory, valid = model.encode(interaction[model.ITEM_SEQ][:1])  # one user, the whole padded history
        items, log_probs = search(model, "behavior", memory, valid, model.beam_size)
        assert (scores[0, items[0]] >= log_probs[0] - 1e-5).all()


def test_search_chunk_size_value_is_checked(fake_codes, tiny_config):
    with pytest.raises(ValueError, match="search_chunk_size=0"):
        build(tiny_config, search_chunk_size=0)


def test_beam_size_below_topk_is_an_error(fake_codes, tiny_config):
    with pytest.raises(ValueError, match="beam_size"):
        build(tiny_config, beam_size=5)


@pytest.mark.parametrize("code_tokens", ["level", "node"])
def test_save_load_round_trip_identical_scores(fake_codes, tiny_config, monkeypatch, code_tokens):
    result = run_recbole_eager(
        model="EAGER", dataset="eager-tiny", config_dict={**tiny_config, "epochs": 1, "decoder_layers": 2, "code_tokens": code_tokens}
    )
    assert result["epochs"] == 1 and set(result["test_result"]) >= {"recall@10", "ndcg@10"}

    def no_rebuild(config, dataset):
        raise AssertionError("reloading a checkpoint must take the item codes from it")

    monkeypatch.setattr(eager_module, "load_or_build_item_codes", no_rebuild)
    config, model, _, _, _, test_data = load_data_and_model(result["saved_model_file"])
    torch.testing.assert_close(model.behavior_codes, synthetic_codes(model.n_items))
    model.eval()
    interaction = first_batch(test_data)
    with torch.no_grad():
        first = model.full_sort_predict(interaction)
    # A second, independently built model with the checkpoint's weights scores identically.
    _, again, _, _, _, _ = load_data_and_model(result["saved_model_file"])
    again.eval()
    with torch.no_grad():
        torch.testing.assert_close(again.full_sort_predict(interaction), first)
    # Inference settings can be overridden at reload.
    _, joint, _, _, _, _ = load_data_and_model(result["saved_model_file"], {"merge_rule": "joint"})
    assert (model.merge_rule, joint.merge_rule) == ("confidence", "joint")


def test_same_seed_same_metrics(fake_codes, tiny_config):
    runs = [
        run_recbole_eager(model="EAGER", dataset="eager-tiny", config_dict={**tiny_config, "epochs": 1, "decoder_layers": 1}, saved=False)
        for _ in range(2)
    ]
    assert runs[0]["test_result"] == runs[1]["test_result"]


def test_nan_loss_stops_with_named_component(fake_codes, tiny_config):
    _, model, train_data, _ = build(tiny_config)
    model.lambda1 = float("nan")  # the config refuses it; a diverging run gets there another way
    with pytest.raises(ValueError, match="EAGER loss 'con_behavior' is nan"):
        model.calculate_loss(first_batch(train_data))


def test_resume_continues_after_saved_epoch(fake_codes, tiny_config):
    config = {**tiny_config, "decoder_layers": 1, "epochs": 1}
    first = run_recbole_eager(model="EAGER", dataset="eager-tiny", config_dict=config)
    resumed = run_recbole_eager(
        model="EAGER", dataset="eager-tiny", config_dict={**config, "epochs": 3, "resume_from": first["saved_model_file"]}
    )
    assert resumed["epochs"] == 2  # epochs 1 and 2; epoch 0 came from the checkpoint
    assert resumed["stopped_by"] == "epoch_cap"  # ran to epochs=3, counting the resumed epoch
