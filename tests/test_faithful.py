"""EAGER as the paper describes it, one flag per fix (``PAPER``): STT positions, masking,
contrastive reconstruction, valid-looking recognition negatives, GCT at the generation
loss's scale, STT detach; the defaults keep the measured model until each is measured."""
import math

import pytest
import torch

from conftest import synthetic_codes
from test_eager import build, first_batch

from recbole_eager.model.stt import choose_positions, prefix_partners
from recbole_eager.model.trie import CodeTrie
from recbole_eager.trainer import EAGERTrainer


PAPER = {"stt_positions": True, "stt_mask": "exact", "stt_recon_loss": "contrastive",
         "stt_recog_negatives": "prefix_partner", "gct_normalize": True}


def losses_of(model, batch):
    torch.manual_seed(0)
    values = model.calculate_loss(batch)
    return dict(zip(model.loss_names, values))


def test_stt_outputs_differ_between_masked_positions(fake_codes, tiny_config):
    for positions in (False, True):
        _, model, train_data, _ = build(tiny_config, stt_mask_ratio=1.0, dropout_prob=0.0, stt_positions=positions)
        captured = []
        model.stt.transformer.register_forward_hook(lambda module, args, out: captured.append(out))
        model.calculate_loss(first_batch(train_data))
        masked_view = captured[0][: first_batch(train_data).length]  # every code position masked
        assert torch.allclose(masked_view[:, 1], masked_view[:, 2], atol=1e-6) != positions


@pytest.mark.parametrize("depth, expected", [(2, 1), (3, 2), (4, 2), (1, 1)])
def test_stt_masks_exactly_the_ratio_of_each_code(depth, expected):
    chosen = choose_positions(500, depth, 0.5, "cpu")
    assert (chosen.sum(dim=1) == expected).all()
    assert chosen.float().mean(dim=0).min() > 0.3 * expected / depth  # every position gets chosen
    if depth == 2:  # Bernoulli plus one forced (the default until measured): 75 % of a 2-digit code, all of it for half the rows
        assert abs(choose_positions(4000, 2, 0.5, "cpu", exact=False).all(dim=1).float().mean() - 0.5) < 0.05


def test_recognition_negatives_are_other_items_codes_sharing_the_prefix():
    codes = synthetic_codes(72)
    trie = CodeTrie(codes, node_tokens=True)
    items = torch.arange(1, 72).repeat(5)
    for prefix in range(codes.size(1)):
        partners = prefix_partners(trie, items, prefix)
        assert (partners != items).all() and (partners >= 1).all() and (partners < 72).all()
        same = (codes[partners, :prefix] == codes[items, :prefix]).all(dim=1)
        siblings = torch.tensor([((codes[1:, :prefix] == codes[i, :prefix]).all(dim=1).sum() > 1).item() for i in items])
        assert torch.equal(same | ~siblings, torch.ones_like(same))  # the prefix is kept wherever a sibling exists
    # Every negative is a path of the trie: token ids alone cannot tell it from a matched code.
    tokens = trie.token_ids(codes[partners], trie.item_states[partners])
    assert (trie.table(0)[0, codes[partners, 0]] >= 0).all() and tokens.min() >= 0


def test_contrastive_reconstruction_starts_near_uniform_over_its_candidates(fake_codes, tiny_config):
    _, model, train_data, _ = build(tiny_config, **PAPER, stt_recon_negatives=15, stt_temperature=1.0)
    recon = losses_of(model, first_batch(train_data))["recon"].item()
    assert abs(recon - math.log(16)) < 0.3  # 1 true + 15 sampled tokens, near-orthogonal at initialisation
    _, softmax_model, _, _ = build(tiny_config, stt_recon_loss="softmax")
    assert torch.isfinite(losses_of(softmax_model, first_batch(train_data))["recon"])


@pytest.mark.parametrize("gct_loss, normalize, low, high", [
    ("smooth_l1", True, 0.2, 2.0), ("infonce", True, 4.0, 12.0), ("smooth_l1", False, 0.0, 0.05),  # the last: inert
])
def test_gct_loss_is_on_the_generation_losss_scale(fake_codes, tiny_config, gct_loss, normalize, low, high):
    _, model, train_data, _ = build(tiny_config, gct_loss=gct_loss, gct_normalize=normalize, gct_negatives=256)
    for stream in ("behavior", "semantic"):  # the scale of real embeddings: unit-norm text vectors, small ID tables
        getattr(model, f"{stream}_embedding").mul_(0.05)
    losses = losses_of(model, first_batch(train_data))
    for stream in ("behavior", "semantic"):
        assert low < losses[f"con_{stream}"].item() < high, losses  # 1 - cos ~ 1; log(batch + 256) ~ 6
        assert losses[f"gen_{stream}"].item() > 1


def test_stt_detach_keeps_its_gradient_off_the_semantic_decoder_and_behavior_tokens(fake_codes, tiny_config):
    for detach in (False, True):
        _, model, train_data, _ = build(tiny_config, **PAPER, stt_detach=detach, use_gct=False)
        losses = losses_of(model, first_batch(train_data))
        (losses["recon"] + losses["recog"]).backward()
        semantic = [p.grad for p in model.decoders["semantic"].parameters()]
        behavior_tokens = model.decoders["behavior"].token_embedding.weight.grad
        reached = any(g is not None and g.abs().sum() > 0 for g in semantic + [behavior_tokens])
        assert reached != detach
        assert model.stt.position_embedding.weight.grad.abs().sum() > 0


def test_training_log_names_each_loss(fake_codes, tiny_config):
    config, model, train_data, _ = build(tiny_config)
    losses_of(model, first_batch(train_data))
    line = EAGERTrainer(config, model)._generate_train_loss_output(3, 0.0, 1.5, (2.5, 0.9, 2.0, 0.8, 4.1, 0.7))
    assert line == ("epoch 3 training [time: 1.50s, gen_behavior: 2.5000, con_behavior: 0.9000, gen_semantic: 2.0000, "
                    "con_semantic: 0.8000, recon: 4.1000, recog: 0.7000]")
