"""Attention rollout and attention flow (Abnar & Zuidema 2020, "Quantifying Attention Flow in
Transformers", ACL): how much each input token reaches an output token through every layer's attention
and the residual connections around it. Pure functions on arrays.

Both start from the same residual-mixed attention of each layer ``l``::

    Ã_l = (1 − r) · fuse_h(A_l) + r · I,   then each ROW divided by its sum

``A_l[i, j]`` is query ``i``'s weight on key ``j`` (a row is a query's distribution over keys), ``fuse_h``
merges the heads (mean, max or min) and ``r`` (``residual``, 0.5 in the paper) is the share of the skip
connection. A row (not a column) is re-normalised so that ``Ã_l`` stays a row-stochastic matrix: the
popular vit-explain code divides by the wrong axis (its issue #16), and its maps stop summing to one.

* **Rollout** multiplies them: ``R = Ã_L · … · Ã_2 · Ã_1``; ``R[i, j]`` is the share of input token
  ``j`` in output token ``i``, summed over every path (each row sums to 1).
* **Flow** treats the layers as a graph — node ``(l, i)`` is token ``i`` after layer ``l`` — with an edge
  ``(l−1, j) → (l, i)`` of capacity ``Ã_l[i, j]``, and takes the maximum flow from each input node
  ``(0, j)`` to the output node ``(L, i)`` (networkx's ``maximum_flow_value``). Paths share capacity
  instead of multiplying, so a strong path is limited by its weakest edge. As in the paper's code the
  values over the input tokens are divided by their sum (``normalize``).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from ..errors import LatentAtlasError

FUSIONS = ("mean", "max", "min")


def _layers(attn_per_layer: Sequence[np.ndarray] | np.ndarray) -> list[np.ndarray]:
    """Each layer as (heads, T, T) float64, checked."""
    layers = [np.asarray(a, dtype=np.float64) for a in attn_per_layer]
    if not layers:
        raise LatentAtlasError("attention rollout needs at least one layer of attention; got none")
    out = []
    for i, a in enumerate(layers):
        if a.ndim == 2:
            a = a[None]
        if a.ndim != 3 or a.shape[-1] != a.shape[-2] or not a.shape[-1]:
            raise LatentAtlasError(f"attention of layer {i} has shape {a.shape}; expected (heads, T, T) or (T, T)")
        if a.shape[-1] != layers[0].shape[-1]:
            raise LatentAtlasError(f"attention of layer {i} covers {a.shape[-1]} tokens, layer 0 covers {layers[0].shape[-1]}; expected the same tokens at every layer")
        if not np.all(np.isfinite(a)) or np.any(a < 0):
            raise LatentAtlasError(f"attention of layer {i} holds negative, NaN or infinite weights; expected probabilities")
        out.append(a)
    return out


def mixed_attention(attn_per_layer: Sequence[np.ndarray] | np.ndarray, residual: float = 0.5,
                    head_fusion: str = "mean") -> list[np.ndarray]:
    """``Ã_l`` for every layer: heads fused, the identity mixed in with weight ``residual``, rows
    re-normalised to sum to 1 (a row left all zero, a padding query, stays the identity's)."""
    if head_fusion not in FUSIONS:
        raise LatentAtlasError(f"head_fusion '{head_fusion}' is unknown; expected one of {', '.join(FUSIONS)}")
    if isinstance(residual, bool) or not isinstance(residual, (int, float)) or not 0.0 <= residual <= 1.0:
        raise LatentAtlasError(f"residual {residual!r} is not a share in [0, 1]")
    out = []
    for a in _layers(attn_per_layer):
        fused = {"mean": np.mean, "max": np.max, "min": np.min}[head_fusion](a, axis=0)
        eye = np.eye(fused.shape[-1])
        m = (1.0 - residual) * fused + residual * eye
        sums = m.sum(axis=-1, keepdims=True)  # a query's row: its distribution over keys
        m = np.where(sums > 0, m / np.where(sums > 0, sums, 1.0), eye)
        out.append(m)
    return out


def attention_rollout(attn_per_layer: Sequence[np.ndarray] | np.ndarray, residual: float = 0.5,
                      head_fusion: str = "mean") -> np.ndarray:
    """The rollout ``R = Ã_L ⋯ Ã_1`` (T, T) of attention given per layer, first layer first, each as
    (heads, T, T) or (T, T). Row ``i`` is output token ``i``'s distribution over the input tokens; for a
    ViT, row 0 (CLS) over columns 1: is the map drawn over the patches."""
    mixed = mixed_attention(attn_per_layer, residual, head_fusion)
    r = mixed[0]
    for m in mixed[1:]:
        r = m @ r  # a later layer reads the tokens the earlier layers made
    return r


def attention_flow(attn_per_layer: Sequence[np.ndarray] | np.ndarray, residual: float = 0.5, head_fusion: str = "mean",
                   output: int | None = 0, normalize: bool = True) -> np.ndarray:
    """The maximum flow from every input token to output token ``output`` (a (T,) vector), or to every
    output token (``output=None``: (T, T), row ``i`` for output ``i``), through the layered graph whose
    capacities are the residual-mixed attention. ``normalize``: divide each output's flows by their sum,
    as the paper's code does (rows then sum to 1, comparable with rollout)."""
    import networkx as nx
    from networkx.algorithms.flow import build_residual_network, preflow_push

    mixed = mixed_attention(attn_per_layer, residual, head_fusion)
    n_layers, t = len(mixed), mixed[0].shape[0]
    if output is not None and (isinstance(output, bool) or not isinstance(output, (int, np.integer)) or not 0 <= output < t):
        raise LatentAtlasError(f"output token {output!r} is out of range; expected 0..{t - 1}")
    outputs = range(t) if output is None else [int(output)]
    flows = np.zeros((len(outputs), t))
    for row, i in enumerate(outputs):
        # only the one output node of the last layer can reach the sink: the others are left out of its graph
        g = nx.DiGraph()
        for layer, m in enumerate(mixed, start=1):
            last = layer == n_layers
            rows, cols = np.nonzero(m[i:i + 1] > 0) if last else np.nonzero(m > 0)
            g.add_edges_from(((layer - 1, int(j)), (layer, int(i) if last else int(q)), {"capacity": float(m[i if last else q, j])})
                             for q, j in zip(rows, cols))
        sink = (n_layers, int(i))
        if sink not in g:
            continue
        # one residual network serves every source (the algorithm resets it); preflow-push is the fastest
        # of networkx's algorithms on these dense layered graphs (about 3x Edmonds-Karp)
        res = build_residual_network(g, "capacity")
        for j in range(t):
            if (0, j) in g:
                flows[row, j] = nx.maximum_flow_value(g, (0, j), sink, flow_func=preflow_push, residual=res)
    if normalize:
        sums = flows.sum(axis=1, keepdims=True)
        flows = np.where(sums > 0, flows / np.where(sums > 0, sums, 1.0), 0.0)
    return flows[0] if output is not None else flows


def cls_map(matrix_or_row: np.ndarray, grid: tuple[int, int], skip: int = 1) -> np.ndarray:
    """Output token 0's (CLS's) weights on the patches, as the patch grid (rows, cols): the first ``skip``
    tokens (CLS, and register or distillation tokens) are left out."""
    row = np.asarray(matrix_or_row)
    row = row[0] if row.ndim == 2 else row
    patches = row[skip:]
    if patches.size != grid[0] * grid[1]:
        raise LatentAtlasError(f"{patches.size} patch tokens do not fill a {grid[0]}×{grid[1]} grid")
    return patches.reshape(grid)
