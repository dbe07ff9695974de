"""Attention capture reads each model's own query and key and gives the probabilities its eager path
gives (`output_attentions`), also when the model was loaded with sdpa; the neuron view's softmax of
q·k·scale + mask, recomputed from the captured q and k, gives them again."""

from __future__ import annotations

import pytest
import torch

from latentatlas import capture
from latentatlas.analysis.attention import neuron
from latentatlas.errors import LatentAtlasError


def _bert():
    from transformers import BertConfig, BertModel

    return BertModel(BertConfig(vocab_size=100, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=37,
                                attn_implementation="sdpa"))


def _gpt2():
    from transformers import GPT2Config, GPT2LMHeadModel

    return GPT2LMHeadModel(GPT2Config(vocab_size=100, n_embd=32, n_layer=2, n_head=4, bos_token_id=0, eos_token_id=0,
                                      attn_implementation="sdpa"))


def _llama():
    from transformers import LlamaConfig, LlamaForCausalLM

    # grouped-query attention (4 query heads read 2 kv heads) and rotary embeddings
    return LlamaForCausalLM(LlamaConfig(vocab_size=100, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                                        num_key_value_heads=2, intermediate_size=37, attn_implementation="sdpa"))


@pytest.fixture(params=["bert", "gpt2", "llama"])
def model(request):
    torch.manual_seed(0)
    m = {"bert": _bert, "gpt2": _gpt2, "llama": _llama}[request.param]().eval()
    return request.param, m


def _batch(name: str):
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(0, 100, (2, 11), generator=g)
    mask = torch.ones_like(ids)
    mask[1, -3:] = 0  # the second text is shorter: right padding
    return {"input_ids": ids, "attention_mask": mask}


def test_probabilities_equal_eager_output_attentions(model):
    name, m = model
    batch = _batch(name)
    assert m.config._attn_implementation == "sdpa"
    got = capture.attention(m, batch, keep_qk=True)
    assert m.config._attn_implementation == "sdpa"  # switched back after the pass
    assert got.source == "attend" and got.implementation == "sdpa" and len(got.layers) == 2
    m.set_attn_implementation("eager")
    with torch.no_grad():
        ref = m(**batch, output_attentions=True).attentions
    valid = batch["attention_mask"].bool()
    for layer, r in zip(got.layers, ref):
        assert layer.probs.shape == r.shape
        for b in range(2):
            q = valid[b]
            assert torch.allclose(layer.probs[b][:, q][..., q], r[b][:, q][..., q], atol=1e-5), (name, layer.name)
    assert got.layers[0].name.endswith(("attention.self", "attn", "self_attn"))


def test_capture_leaves_the_model_output_unchanged(model):
    name, m = model
    batch = {"input_ids": _batch(name)["input_ids"][:1]}
    with torch.no_grad():
        before = m(**batch)[0]
    captured = {}

    def keep(i, layer):
        captured[i] = layer.probs.shape

    capture.attention(m, batch, on_layer=keep)
    with torch.no_grad():
        after = m(**batch)[0]
    assert torch.allclose(before, after) and sorted(captured) == [0, 1]


def test_neuron_view_recomputes_the_probabilities(model):
    name, m = model
    batch = _batch(name)
    got = capture.attention(m, batch, keep_qk=True)
    for layer in got.layers:
        for head in range(4):
            for pos in (0, 5, 10):
                n = neuron(layer.query, layer.key, head, pos, layer.scaling, layer.mask)
                assert n["q"].shape == (8,) and n["k"].shape == (11, 8) and n["qk"].shape == (11, 8)
                assert torch.allclose(torch.from_numpy(n["probs"]).float(), layer.probs[0, head, pos], atol=1e-5), (name, head, pos)
    if name == "llama":  # heads 0, 1 read kv head 0; heads 2, 3 kv head 1
        layer = got.layers[0]
        assert torch.equal(torch.from_numpy(neuron(layer.query, layer.key, 1, 3, layer.scaling)["k"]).float(), layer.key[0, 0].float())
        assert torch.equal(torch.from_numpy(neuron(layer.query, layer.key, 2, 3, layer.scaling)["k"]).float(), layer.key[0, 1].float())


def test_keys_are_taken_after_rotary():
    """Llama's captured key is the rotated one: it differs from k_proj's output, except at position 0."""
    torch.manual_seed(0)
    m = _llama().eval()
    ids = torch.randint(0, 100, (1, 6))
    got = capture.attention(m, {"input_ids": ids}, keep_qk=True, layers={0})
    with capture.hooked(m, "model.layers.0.self_attn.k_proj") as raw, torch.no_grad():
        m(input_ids=ids)
    # the key projection sees the input after its layer norm
    k_raw = raw["out"].view(1, 6, 2, 8).transpose(1, 2)
    k = got.layers[0].key
    assert torch.allclose(k[..., 0, :], k_raw[..., 0, :], atol=1e-6)
    assert not torch.allclose(k[..., 1:, :], k_raw[..., 1:, :], atol=1e-3)


def test_attention_only_model_probabilities_by_hand():
    from latentatlas.models.toylm import AttnOnlyConfig, AttnOnlyTransformer

    torch.manual_seed(0)
    m = AttnOnlyTransformer(AttnOnlyConfig(vocab=10, d_model=8, n_heads=2, n_layers=1, ctx=6)).eval()
    tokens = torch.tensor([[1, 2, 3, 1, 2, 3]])
    got = capture.attention(m, tokens)
    x = m.embed(tokens) + m.pos(torch.arange(6))
    a = m.layers[0]
    q = a.q_proj(x).view(1, 6, 2, 4).transpose(1, 2)
    k = a.k_proj(x).view(1, 6, 2, 4).transpose(1, 2)
    s = q @ k.transpose(-1, -2) / 2.0
    s = s.masked_fill(~torch.ones(6, 6, dtype=torch.bool).tril(), float("-inf"))
    assert got.layers[0].name == "layers.0"
    assert torch.allclose(got.layers[0].probs, s.softmax(-1), atol=1e-6)


def test_a_model_without_readable_attention_is_refused():
    with pytest.raises(LatentAtlasError, match="cannot read"):
        capture.attention(torch.nn.Linear(3, 3), torch.zeros(1, 3))
