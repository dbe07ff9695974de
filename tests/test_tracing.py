"""The module graph tracer on models whose graph is known by hand (a Sequential with a residual block), on
tiny random transformers (GPT-2, Llama, a ViT) and a tiny diffusers AutoencoderKL: the tree holds every
module, ops between modules are listed with their shapes, data flow follows tensors, collapsing moves edges
to the visible ancestors, grandalf lays it out, torch.export is used where it traces and falls back to hooks
with a note where it does not, and an unknown module name is one sentence with the nearest names."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from latentatlas import tracing
from latentatlas.errors import LatentAtlasError


class Residual(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 4)
        self.act = nn.ReLU()

    def forward(self, x):
        return x + self.act(self.fc(x))


def hand_model() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(3, 4), Residual(), nn.ReLU())


def test_a_hand_built_graph_is_exactly_known():
    net = hand_model()
    x = torch.randn(5, 3)
    g = tracing.trace(net, x)
    assert [n.id for n in g.nodes.values() if n.kind == "module"] == ["", "0", "1", "1.fc", "1.act", "2"]
    ops = [n for n in g.nodes.values() if n.kind == "op"]
    # linear and relu run inside leaf modules and belong to them; only the residual add is between modules
    assert [(o.label, o.parent, o.shapes) for o in ops] == [("add", "1", [[5, 4]])]
    add = ops[0].id
    assert set(g.edges) == {(".in.x", "0"), ("0", "1"), ("0", "1.fc"), ("1.fc", "1.act"), ("0", add), ("1.act", add),
                            (add, "2"), ("2", ".out")}
    n = g.nodes
    assert (n["0"].params, n["1"].params, n["1"].params_total, n[""].params_total) == (16, 0, 20, 36)
    assert n["1.fc"].shapes == [[5, 4]] and n["1.fc"].in_shapes == [[5, 4]] and n["1.fc"].dtypes == ["float32"]
    # statistics of a known activation: the ReLU's zeros are exactly its non-positive inputs
    with torch.no_grad():
        h = net[1].fc(net[0](x))
        relu = torch.relu(h)
        out = torch.relu(net[0](x) + relu)
    assert n["1.act"].stats["zeros"] == pytest.approx(float((h <= 0).float().mean()))
    assert n["1.act"].stats["mean"] == pytest.approx(float(relu.mean()), rel=1e-5)
    assert n["1.act"].stats["std"] == pytest.approx(float(relu.std(unbiased=False)), rel=1e-5)
    assert n["2"].stats["norm"] == pytest.approx(float(out.norm(dim=1).mean()), rel=1e-5)
    assert n["1.act"].calls == 1 and n[""].calls == 0


def test_collapse_moves_edges_to_visible_ancestors_and_drops_self_loops():
    g = tracing.trace(hand_model(), torch.randn(2, 3))
    closed = tracing.collapse(g, set())
    assert [n.id for n in closed.nodes] == ["0", "1", "2", ".in.x", ".out"]
    # 0→1, 0→1.fc and 0→add all become 0→1 (three traced edges); 1.fc→1.act and 1.act→add fall inside 1
    assert sorted(closed.edges) == sorted([(".in.x", "0", 1), ("0", "1", 3), ("1", "2", 1), ("2", ".out", 1)])
    assert closed.expandable == {"1"} and closed.groups == []
    opened = tracing.collapse(g, {"1"})
    add = next(n.id for n in g.nodes.values() if n.kind == "op")
    assert {n.id for n in opened.nodes} == {"0", "1.fc", "1.act", add, "2", ".in.x", ".out"}
    assert ("0", "1", 3) not in opened.edges and ("0", "1.fc", 1) in opened.edges and (add, "2", 1) in opened.edges
    assert opened.groups == ["1"]
    lay = tracing.layout(opened)
    pos = {n["id"]: n for n in lay["nodes"]}
    assert pos["0"]["y"] < pos["1.fc"]["y"] < pos["1.act"]["y"] < pos[add]["y"] < pos["2"]["y"]  # layered top to bottom
    frame = lay["frames"][0]
    for i in ("1.fc", "1.act", add):  # the open module's frame holds its children
        assert frame["x0"] < pos[i]["x"] < frame["x1"] and frame["y0"] < pos[i]["y"] < frame["y1"]
    assert all(len(e["points"]) >= 2 for e in lay["edges"])


def test_a_tensor_handed_through_and_a_module_called_twice():
    class Twice(nn.Module):
        def __init__(self):
            super().__init__()
            self.act = nn.Tanh()
            self.keep = nn.Identity()

        def forward(self, x):
            return self.act(self.act(self.keep(x)))

    g = tracing.trace(Twice(), torch.zeros(2, 2) + 1)
    assert g.nodes["act"].calls == 2 and g.nodes["keep"].calls == 1
    assert (".in.x", "keep") in g.edges and ("keep", "act") in g.edges and ("act", ".out") in g.edges
    expected = (math.tanh(1) + math.tanh(math.tanh(1))) / 2  # the mean over both calls
    assert g.nodes["act"].stats["mean"] == pytest.approx(expected, rel=1e-6)


def _every_module_is_traced(model, inputs, **kw):
    g = tracing.trace(model, inputs, **kw)
    names = [n for n, _ in model.named_modules()]
    assert set(names) <= set(g.nodes), set(names) - set(g.nodes)
    assert all(g.nodes[n].params_total == sum(p.numel() for p in m.parameters()) for n, m in model.named_modules())
    for a, b in g.edges:
        assert a in g.nodes and b in g.nodes and a != b
    # the data reaches the output
    assert any(b == ".out" for _, b in g.edges)
    return g


def test_a_tiny_gpt2_and_llama():
    from transformers import GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    gpt = GPT2LMHeadModel(GPT2Config(vocab_size=64, n_embd=16, n_layer=2, n_head=2, n_positions=32, bos_token_id=0, eos_token_id=0))
    g = _every_module_is_traced(gpt, {"input_ids": torch.randint(0, 64, (1, 8)), "use_cache": False})
    ops = {n.label for n in g.nodes.values() if n.kind == "op" and n.parent == "transformer.h.0"}
    assert "add" in ops  # the residual additions sit in the block, between its modules
    assert g.nodes["transformer.h.1.mlp"].shapes == [[1, 8, 16]]
    llama = LlamaForCausalLM(LlamaConfig(vocab_size=64, hidden_size=16, intermediate_size=32, num_hidden_layers=2, num_attention_heads=2,
                                         num_key_value_heads=1, max_position_embeddings=32, bos_token_id=0, eos_token_id=0))
    g = _every_module_is_traced(llama, {"input_ids": torch.randint(0, 64, (1, 8)), "use_cache": False})
    attn_ops = {n.label for n in g.nodes.values() if n.kind == "op" and n.parent == "model.layers.0.self_attn"}
    assert "matmul" in attn_ops or "scaled_dot_product_attention" in attn_ops
    act = g.nodes["model.layers.0.mlp.act_fn"]
    assert act.stats is not None and 0 <= act.stats["zeros"] <= 1


def test_a_tiny_vit_and_autoencoder_kl():
    from diffusers import AutoencoderKL
    from transformers import ViTConfig, ViTModel

    torch.manual_seed(0)
    vit = ViTModel(ViTConfig(image_size=16, patch_size=8, hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32))
    g = _every_module_is_traced(vit, {"pixel_values": torch.randn(1, 3, 16, 16)})
    assert g.nodes["embeddings.patch_embeddings.projection"].shapes == [[1, 16, 2, 2]]
    vae = AutoencoderKL(block_out_channels=(8, 16), down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2,
                        latent_channels=2, norm_num_groups=4, sample_size=16, layers_per_block=1)
    g = _every_module_is_traced(vae, {"sample": torch.rand(1, 3, 16, 16)})
    assert g.nodes["encoder.conv_in"].shapes == [[1, 8, 16, 16]] and g.nodes["decoder.conv_out"].shapes == [[1, 3, 16, 16]]
    # the encoder's output reaches the decoder through the ops between them (sampling the posterior's mean)
    closed = tracing.collapse(g, set())
    ids = {n.id for n in closed.nodes}
    assert {"encoder", "decoder", "quant_conv", "post_quant_conv"} <= ids
    reach = {"encoder"}
    for _ in range(len(closed.edges)):
        reach |= {b for a, b, _ in closed.edges if a in reach}
    assert "decoder" in reach and ".out" in reach


def test_export_where_it_traces_and_the_fallback_where_it_does_not():
    net = hand_model()
    g = tracing.trace(net, torch.randn(2, 3), tracer="export")
    assert g.tracer == "export" and g.note is None
    ops = [n for n in g.nodes.values() if n.kind == "op"]
    assert [o.label for o in ops] == ["add"] and ops[0].parent == "1"
    assert ("1.act", ops[0].id) in g.edges and (ops[0].id, "2") in g.edges and g.nodes["1.act"].stats is not None

    class Branchy(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(3, 3)

        def forward(self, x):
            h = self.fc(x)
            return h * 2 if h.sum() > 0 else h  # data-dependent control flow: torch.export cannot trace it

    g = tracing.trace(Branchy(), torch.randn(2, 3), tracer="export")
    assert g.tracer == "hooks" and "torch.export could not trace Branchy" in g.note and "traced with hooks instead" in g.note
    assert ("fc" in g.nodes) and any(b == ".out" for _, b in g.edges)


def test_bad_names_and_tracers_are_one_sentence():
    net = hand_model()
    with pytest.raises(LatentAtlasError, match=r"module '1\.fcc' is not in Sequential; the nearest names: 1\.fc"):
        tracing.find_module(net, "1.fcc")
    assert tracing.find_module(net, "1.act") is net[1].act
    with pytest.raises(LatentAtlasError, match="--tracer 'fx' is not one of hooks, export"):
        tracing.trace(net, torch.randn(1, 3), tracer="fx")
    with pytest.raises(LatentAtlasError, match=r"Sequential did not run on the example batch \(RuntimeError"):
        tracing.trace(net, torch.randn(1, 7))


def test_round_trip_through_a_dict():
    g = tracing.trace(hand_model(), torch.randn(2, 3))
    back = tracing.ModuleGraph.from_dict(g.to_dict())
    assert back.nodes == g.nodes and back.edges == g.edges
