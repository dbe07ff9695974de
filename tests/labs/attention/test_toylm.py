"""The attention-only model's rotary positions: a rotation (norms kept) whose query·key depends only on the
offset between positions, which is what makes a previous-token head one fixed pattern; learned positions
stay the default for runs written before the option existed."""

from __future__ import annotations

import pytest
import torch

from latentatlas.errors import LatentAtlasError
from latentatlas.models import config_from_dict
from latentatlas.models.toylm import AttnOnlyConfig, AttnOnlyTransformer, rotate


def test_rotation_keeps_norms_and_scores_depend_on_offset_only():
    torch.manual_seed(0)
    q, k = torch.randn(1, 1, 1, 16), torch.randn(1, 1, 1, 16)
    t = 12
    qs, ks = rotate(q.expand(1, 1, t, 16).clone()), rotate(k.expand(1, 1, t, 16).clone())
    assert torch.allclose(qs.norm(dim=-1), q.norm(dim=-1).expand(1, 1, t), atol=1e-5)
    s = (qs[0, 0] @ ks[0, 0].T)
    for off in range(1, 5):  # every (i, i - off) pair scores the same
        d = torch.diagonal(s, -off)
        assert torch.allclose(d, d[0].expand_as(d), atol=1e-4)
    assert torch.allclose(rotate(q)[..., 0, :], q[..., 0, :])  # position 0 is not rotated


def test_rotary_model_has_no_position_embedding_and_old_configs_load():
    m = AttnOnlyTransformer(AttnOnlyConfig(vocab=10, d_model=16, n_heads=2, ctx=8, positions="rotary"))
    assert m.pos is None and m(torch.randint(0, 10, (2, 8))).shape == (2, 8, 10)
    old = config_from_dict("attn_only", {"kind": "attn_only", "vocab": 10, "d_model": 16, "n_heads": 2, "n_layers": 2, "ctx": 8})
    assert old.positions == "learned"
    with pytest.raises(LatentAtlasError, match="expected learned or rotary"):
        AttnOnlyConfig(positions="alibi")


@pytest.mark.parametrize("positions", ["rotary", "learned"])
def test_fused_training_path_equals_the_explicit_one(positions):
    """Without a recorder the models trained here run sdpa's fused kernel (training and sampling); with one,
    the explicit softmax whose probabilities capture reads. Both compute the same function."""
    from latentatlas.models.attention import recording
    from latentatlas.models.vit import ViT, ViTConfig

    torch.manual_seed(0)
    model = AttnOnlyTransformer(AttnOnlyConfig(vocab=11, d_model=16, n_heads=2, n_layers=2, ctx=12, positions=positions))
    tokens = torch.randint(0, 11, (3, 12))
    seen = []
    fused = model(tokens)
    with recording(lambda module, **kw: seen.append(kw["probs"])):
        explicit = model(tokens)
    assert len(seen) == 2 and seen[0].shape == (3, 2, 12, 12)
    torch.testing.assert_close(fused, explicit, rtol=1e-5, atol=1e-5)
    vit = ViT(ViTConfig(d_model=16, n_heads=2, n_layers=2, mlp_ratio=1)).eval()
    images = torch.rand(4, 1, 8, 8)
    fused = vit(images)
    with recording(lambda module, **kw: None):
        explicit = vit(images)
    torch.testing.assert_close(fused, explicit, rtol=1e-5, atol=1e-5)
