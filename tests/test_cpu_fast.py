"""The CPU fast paths (recbole_eager/model/cpu_fast.py) compute what the plain path computes."""
import torch

from test_eager import build, first_batch

from recbole_eager.model import cpu_fast


def test_grouped_child_logits_match_the_plain_gather_in_values_and_gradients(fake_codes, tiny_config):
    _, model, _, _ = build(tiny_config, code_tokens="node")
    decoder = model.decoders["behavior"]
    trie = decoder.trie
    for level in range(trie.depth):
        parents = trie.parents(torch.arange(1, model.n_items))[:, level].flip(0)  # every prefix, repeated, unsorted
        hidden = torch.randn(parents.numel(), model.hidden_size, requires_grad=True)
        results = []
        for logits_of in (
            lambda h: trie.child_logits(h, level, parents, decoder.token_embedding),
            lambda h: cpu_fast.grouped_child_logits(
                decoder.child_blocks, h, level, parents, trie.level_offset[level], decoder.token_embedding, trie.vocab),
        ):
            decoder.zero_grad()
            hidden.grad = None
            logits = logits_of(hidden)
            logits.masked_fill(torch.isinf(logits), 0).square().sum().backward()
            results.append((logits.detach(), hidden.grad.clone(), decoder.token_embedding.weight.grad.clone()))
        assert torch.isinf(results[0][0]).any()  # some prefixes lack digits: the -inf placement is tested
        for plain, grouped in zip(*results):
            torch.testing.assert_close(grouped, plain)


def test_grouped_child_logits_look_up_only_the_children_of_the_prefixes_present(fake_codes, tiny_config):
    """A beam-search step must not cost O(catalogue): only the given prefixes' children are embedded."""
    _, model, _, _ = build(tiny_config, code_tokens="node")
    decoder = model.decoders["behavior"]
    trie = decoder.trie
    level = trie.depth - 1
    parents = trie.parents(torch.arange(1, model.n_items))[:, level][:3]
    looked_up = []
    hook = decoder.token_embedding.register_forward_hook(lambda module, inputs, output: looked_up.append(inputs[0].numel()))
    cpu_fast.grouped_child_logits(
        decoder.child_blocks, torch.randn(3, model.hidden_size), level, parents, trie.level_offset[level], decoder.token_embedding, trie.vocab)
    hook.remove()
    expected = int((trie.table(level)[parents.unique()] >= 0).sum())
    assert expected < int((trie.table(level) >= 0).sum())
    assert looked_up == [expected]


def test_switching_the_fast_paths_off_gives_the_same_scores_and_losses(fake_codes, tiny_config):
    outputs = []
    for fast in (True, False):
        _, model, train_data, test_data = build(tiny_config, code_tokens="node", cpu_fast_paths=fast)
        assert (model.decoders["behavior"].child_blocks is not None) == fast
        model.eval()
        with torch.no_grad():
            torch.manual_seed(0)
            losses = model.calculate_loss(first_batch(train_data))
            outputs.append((torch.stack(losses), model.full_sort_predict(first_batch(test_data))))
    for fast, plain in zip(*outputs):
        torch.testing.assert_close(fast, plain)


def test_single_query_attention_matches_the_fused_kernel():
    q, k, v = torch.randn(6, 4, 1, 8), torch.randn(6, 4, 3, 8), torch.randn(6, 4, 3, 8)
    expected = torch.nn.functional.scaled_dot_product_attention(q, k, v)
    torch.testing.assert_close(cpu_fast.single_query_attention(q, k, v), expected)
