"""A small class-conditional DiT trained here with flow matching: diffusers' ``DiTTransformer2DModel`` built
from a small config, so that the blocks, attention modules and module names are those of every DiT (and,
block for block, of PixArt's ``BasicTransformerBlock``), and a user's DiT folder is read with the same code.

The objective is the flow lab's (``models/flow.py``): FM time t ∈ [0, 1] with t = 0 noise and t = 1 data,
x_t = (1 − t)·x0 + t·x1 for noise x0 ~ N(0, I) and an image x1, and the network predicts the velocity
x1 − x0. Images are in [0, 1] outside and in [−1, 1] inside (x1 = 2·image − 1). DiT's timestep embedding
was made for steps 0 … 999, so the network is given ``time_scale``·t (1000·t by default).

Classifier-free guidance (Ho & Salimans 2022): during training the label is replaced by the null class
(index ``n_classes``, the extra row diffusers' ``LabelEmbedding`` keeps) with probability ``label_dropout``.
The replacement is made here, once per image, before the network is called: diffusers' own label dropout
draws separately in every block (each DiT block has its own ``AdaLayerNormZero`` with its own label table),
so it is switched off. Guided velocity at scale s: v = v_u + s·(v_c − v_u), so s = 1 is the conditional
prediction and s = 0 the unconditional one; both halves are one batch of 2n, as DiT's pipeline runs them.

A user's folder (``load_dit_folder``): a ``DiTTransformer2DModel`` folder (or a pipeline folder with a
``transformer/`` inside; diffusers remaps the older ``Transformer2DModel`` class name with
``norm_type: ada_norm_zero`` to it), read offline from safetensors only. Such a DiT predicts ε on the VP
(DDPM) path (with a learned variance in its second half of channels when ``out_channels`` is twice
``in_channels``); :class:`FolderField` gives it to the samplers with guidance on ε as DiT's pipeline does. A
``PixArtTransformer2DModel`` folder loads too and :class:`BlockRecorder` reads its blocks, but it is
conditioned on T5 caption embeddings, which this tool does not compute, so it is not sampled here.

:class:`BlockRecorder` records, for every call of any such transformer, every block's output (the hidden
states after block i) and its self-attention probabilities, read from diffusers' own ``AttnProcessor``
(which forms them with ``attn.get_attention_scores``) in place of the fused sdpa processor while it records.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch import nn

from ..errors import LatentAtlasError
from .flow import fm_time_of
from .registry import register

KIND = "flow_dit"
WEIGHT_SUFFIX = ".safetensors"
DIT_CLASSES = ("DiTTransformer2DModel", "PixArtTransformer2DModel", "Transformer2DModel")


@dataclass
class DiTConfig:
    kind: str = KIND
    image_size: int = 8  # DiT's sample_size: the side of the (square) image it denoises
    channels: int = 1
    patch: int = 2
    n_heads: int = 4
    head_dim: int = 24
    n_layers: int = 4
    n_classes: int = 10
    label_dropout: float = 0.1  # probability that a training image's label becomes the null class
    time_scale: float = 1000.0  # the network sees time_scale·t

    def __post_init__(self) -> None:
        for name, lo, hi in (("image_size", 2, 1024), ("channels", 1, 16), ("patch", 1, 64), ("n_heads", 1, 64),
                             ("head_dim", 2, 1024), ("n_layers", 1, 64), ("n_classes", 1, 100_000)):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
                raise LatentAtlasError(f"DiT config has {name}={v!r}; expected a whole number from {lo} to {hi:,}")
        if self.image_size % self.patch:
            raise LatentAtlasError(f"DiT config: image_size {self.image_size} is not a multiple of patch {self.patch}")
        if not 0.0 <= self.label_dropout < 1.0:
            raise LatentAtlasError(f"DiT config has label_dropout={self.label_dropout}; expected a probability in [0, 1)")
        if not 0.0 < self.time_scale <= 1e5:
            raise LatentAtlasError(f"DiT config has time_scale={self.time_scale}; expected a positive number up to 100,000")

    @property
    def grid(self) -> int:
        return self.image_size // self.patch

    @property
    def pixels(self) -> int:
        return self.channels * self.image_size * self.image_size


def _quiet_diffusers() -> None:
    from diffusers.utils import logging as dlog

    dlog.set_verbosity_error()


@register(KIND, config=DiTConfig)
class FlowDiT(nn.Module):
    """``dit`` is the diffusers model (module names ``dit.transformer_blocks.3.attn1`` …); ``forward`` is
    the velocity at FM time t for images in [−1, 1] and labels (``null_class`` for none)."""

    def __init__(self, config: DiTConfig):
        super().__init__()
        from diffusers import DiTTransformer2DModel

        _quiet_diffusers()
        self.config = config
        self.dit = DiTTransformer2DModel(num_attention_heads=config.n_heads, attention_head_dim=config.head_dim,
                                         in_channels=config.channels, out_channels=config.channels, num_layers=config.n_layers,
                                         sample_size=config.image_size, patch_size=config.patch, num_embeds_ada_norm=config.n_classes)
        for block in self.dit.transformer_blocks:  # label dropout is drawn in ``loss``, once per image (see the module's docstring)
            block.norm1.emb.class_embedder.dropout_prob = 0.0

    @property
    def null_class(self) -> int:
        return self.config.n_classes

    def _check(self, x: torch.Tensor) -> None:
        c = self.config
        if x.ndim != 4 or tuple(x.shape[1:]) != (c.channels, c.image_size, c.image_size):
            raise LatentAtlasError(f"DiT input has shape {tuple(x.shape)}; expected (batch, {c.channels}, {c.image_size}, {c.image_size})")

    def forward(self, x: torch.Tensor, t: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        self._check(x)
        t = torch.as_tensor(t, dtype=x.dtype, device=x.device).reshape(-1).expand(x.shape[0])
        return self.dit(x, timestep=t * self.config.time_scale, class_labels=labels.long().reshape(-1), return_dict=False)[0]

    def loss(self, batch: torch.Tensor) -> dict[str, torch.Tensor]:
        """``batch`` (B, 1 + C·H·W): the class in column 0, the image in [0, 1] after it. The random draws,
        in this order from torch's generator: noise x0, times t ~ U(0, 1), label drops (U(0, 1) < p). Squared
        error summed over pixels, mean over the batch (the flow lab's scale)."""
        c = self.config
        if batch.ndim != 2 or batch.shape[1] != 1 + c.pixels:
            raise LatentAtlasError(f"DiT training batch has shape {tuple(batch.shape)}; expected (batch, {1 + c.pixels}) with the class first")
        labels = batch[:, 0].long()
        x1 = batch[:, 1:].reshape(-1, c.channels, c.image_size, c.image_size) * 2 - 1
        x0 = torch.randn_like(x1)
        t = torch.rand(x1.shape[0], device=x1.device, dtype=x1.dtype)
        drop = torch.rand(x1.shape[0], device=x1.device) < c.label_dropout
        labels = torch.where(drop, torch.full_like(labels, self.null_class), labels)
        tt = t[:, None, None, None]
        xt = (1 - tt) * x0 + tt * x1
        pred = self(xt, t, labels)
        return {"loss": ((pred - (x1 - x0)) ** 2).flatten(1).sum(1).mean()}

    @torch.no_grad()
    def guided(self, x: torch.Tensor, t: torch.Tensor, labels: torch.Tensor, scale: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(guided, conditional, unconditional) velocities at FM time t, from one call on the batch of 2n:
        the n images with their labels first, then the same images with the null class."""
        n = x.shape[0]
        both = self(torch.cat([x, x]), torch.as_tensor(t, dtype=x.dtype).reshape(-1).expand(n).repeat(2),
                    torch.cat([labels.long(), torch.full_like(labels.long(), self.null_class)]))
        vc, vu = both[:n], both[n:]
        return vu + scale * (vc - vu), vc, vu


# -- the samplers' view of a guided model -------------------------------------------------------------------

@dataclass
class StepRecord:
    """One network call during sampling: its FM time t, the state x_t (images in [−1, 1]), the guided
    velocity (for a VP model, ε) the sampler was given, and the conditional and unconditional halves."""
    t: float
    x: torch.Tensor
    out: torch.Tensor
    cond: torch.Tensor
    uncond: torch.Tensor


class GuidedField:
    """A :class:`FlowDiT` with labels and a guidance scale, seen as the samplers' ``Field`` on flattened
    images (n, C·H·W) in [−1, 1]: ``velocity`` at FM time t, and ``eps`` at VP level ᾱ (the FM model's
    velocity converted as ``flow.Prediction`` does). Every call is counted in ``nfe`` and, with
    ``record``, kept as a :class:`StepRecord`."""

    def __init__(self, model: FlowDiT, labels: torch.Tensor, scale: float, record: bool = False):
        c = model.config
        self.model, self.labels, self.scale = model, labels.long().reshape(-1), float(scale)
        self.shape = (c.channels, c.image_size, c.image_size)
        self.nfe = 0
        self.records: list[StepRecord] | None = [] if record else None

    def _v(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        t = torch.as_tensor(t, dtype=torch.float64).reshape(-1)
        img = x.reshape(-1, *self.shape)
        self.nfe += 1
        v, vc, vu = self.model.guided(img, t.to(img.dtype).expand(img.shape[0]), self.labels, self.scale)
        if self.records is not None:
            self.records.append(StepRecord(float(t[0]), img.detach().clone(), v, vc, vu))
        return v.reshape(x.shape[0], -1)

    def velocity(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return self._v(x, t)

    def eps(self, x: torch.Tensor, tau: torch.Tensor, abar: torch.Tensor) -> torch.Tensor:
        t, scale = fm_time_of(torch.as_tensor(abar, dtype=torch.float64).reshape(-1)[:1])
        xf = x / scale.to(x.dtype)
        return xf - t.to(x.dtype) * self._v(xf, t)  # x0 = x_t − t·v on the FM path


# -- recording every block ----------------------------------------------------------------------------------

class BlockRecorder:
    """``with BlockRecorder(transformer) as rec: ...`` records, for every forward call of a diffusers
    transformer with ``transformer_blocks`` (DiT, PixArt), each block's output ``hidden[layer][call]``
    (batch, tokens, width) and, with ``attention=True``, its self-attention probabilities
    ``attention[layer][call]`` (batch, heads, tokens, tokens). While recording, each block's ``attn1`` runs
    diffusers' ``AttnProcessor`` (explicit softmax) and its ``get_attention_scores`` is wrapped to keep what
    it returns; the processors are put back on exit. Tensors are kept as the model made them (no copy)."""

    def __init__(self, transformer: nn.Module, hidden: bool = True, attention: bool = True):
        blocks = getattr(transformer, "transformer_blocks", None)
        if not isinstance(blocks, nn.ModuleList) or not len(blocks):
            raise LatentAtlasError(f"{type(transformer).__name__} has no transformer_blocks; expected a diffusers DiT or PixArt transformer")
        self.blocks = list(blocks)
        self.want_hidden, self.want_attention = hidden, attention
        self.hidden: list[list[torch.Tensor]] = [[] for _ in self.blocks]
        self.attention: list[list[torch.Tensor]] = [[] for _ in self.blocks]
        self._handles: list[Any] = []
        self._processors: list[Any] = []

    def __enter__(self) -> "BlockRecorder":
        from diffusers.models.attention_processor import AttnProcessor

        try:
            for i, block in enumerate(self.blocks):
                if self.want_hidden:
                    self._handles.append(block.register_forward_hook(self._hidden_hook(i)))
                if self.want_attention:
                    attn = block.attn1
                    self._processors.append((attn, attn.get_processor()))
                    attn.set_processor(AttnProcessor())
                    attn.get_attention_scores = self._scores(i, attn)
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, *exc) -> None:
        for h in self._handles:
            h.remove()
        self._handles.clear()
        for attn, proc in self._processors:
            if "get_attention_scores" in attn.__dict__:
                del attn.get_attention_scores
            attn.set_processor(proc)
        self._processors.clear()

    def _hidden_hook(self, i: int) -> Callable:
        def hook(_module, _inputs, output):
            self.hidden[i].append((output[0] if isinstance(output, tuple) else output).detach())
        return hook

    def _scores(self, i: int, attn: nn.Module) -> Callable:
        original = type(attn).get_attention_scores

        def scores(query, key, attention_mask=None):
            probs = original(attn, query, key, attention_mask)
            self.attention[i].append(probs.detach().unflatten(0, (-1, attn.heads)))
            return probs
        return scores

    @property
    def calls(self) -> int:
        return len(self.hidden[0]) if self.want_hidden else len(self.attention[0])

    def stacked(self) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """(hidden (calls, layers, batch, tokens, width), attention (calls, layers, batch, heads, tokens, tokens))."""
        h = torch.stack([torch.stack(per) for per in self.hidden], dim=1) if self.want_hidden and self.calls else None
        a = torch.stack([torch.stack(per) for per in self.attention], dim=1) if self.want_attention and self.attention[0] else None
        return h, a


# -- a user's DiT or PixArt folder ----------------------------------------------------------------------------

@dataclass
class DiTFolder:
    """What ``load_dit_folder`` found: the transformer (eval mode), its family (``dit`` or ``pixart``) and the
    few config values the samplers and views need."""
    model: nn.Module
    family: str
    folder: Path
    in_channels: int
    sample_size: int
    patch: int
    n_layers: int
    n_heads: int
    n_classes: int | None  # DiT: the label table's classes (its null class is this index)
    learned_sigma: bool
    config: dict[str, Any] = field(default_factory=dict)


def dit_folder(path: str | Path) -> tuple[Path, str] | None:
    """The folder holding a DiT or PixArt transformer's config.json (``path`` or its ``transformer/``) and
    the class name it declares, or None."""
    p = Path(path).expanduser()
    for folder in (p, p / "transformer"):
        cfg = folder / "config.json"
        if cfg.is_file() and cfg.stat().st_size < (1 << 20):
            try:
                meta = json.loads(cfg.read_text(encoding="utf-8"))
            except (ValueError, UnicodeDecodeError):
                continue
            name = meta.get("_class_name") if isinstance(meta, dict) else None
            if name in DIT_CLASSES:
                if name == "Transformer2DModel":
                    name = {"ada_norm_zero": "DiTTransformer2DModel", "ada_norm_single": "PixArtTransformer2DModel"}.get(meta.get("norm_type"))
                    if name is None:
                        continue
                return folder, name
    return None


def load_dit_folder(path: str | Path, device: str | torch.device = "cpu") -> DiTFolder:
    """A diffusers DiT (``DiTTransformer2DModel``) or PixArt (``PixArtTransformer2DModel``) transformer from
    a local folder or a pipeline folder's ``transformer/``, offline and from safetensors only."""
    found = dit_folder(path)
    if found is None:
        raise LatentAtlasError(f"'{path}' is not a DiT or PixArt folder; expected a config.json with \"_class_name\" "
                               "DiTTransformer2DModel or PixArtTransformer2DModel (or a pipeline folder with a transformer/ inside)")
    folder, name = found
    if not any(folder.glob(f"*{WEIGHT_SUFFIX}")):
        raise LatentAtlasError(f"DiT folder '{folder}' has no .safetensors weights; only safetensors are loaded, never pickles")
    import diffusers

    _quiet_diffusers()
    cls = getattr(diffusers, name)
    try:
        model = cls.from_pretrained(str(folder), local_files_only=True, use_safetensors=True)
    except (OSError, ValueError, RuntimeError, KeyError, TypeError, NotImplementedError) as exc:
        raise LatentAtlasError(f"could not load the {name} in '{folder}': {(str(exc).splitlines() or [type(exc).__name__])[0][:300]}") from None
    model = model.to(device).eval()
    c = model.config
    out = c.out_channels if c.out_channels is not None else c.in_channels
    family = "dit" if name == "DiTTransformer2DModel" else "pixart"
    return DiTFolder(model, family, folder, int(c.in_channels), int(c.sample_size), int(c.patch_size), int(c.num_layers),
                     int(c.num_attention_heads), int(c.num_embeds_ada_norm) if family == "dit" else None,
                     bool(out == 2 * c.in_channels), {k: v for k, v in dict(c).items() if not k.startswith("_")})


class FolderField:
    """A user's DiT (ε-prediction on the VP path, DDPM's discrete steps τ = 0 … 999) seen as the samplers'
    ``Field`` on flattened latents, with guidance on ε as DiT's pipeline applies it (the first
    ``in_channels`` channels; a learned variance is dropped). Only the VP samplers (ddim, ddpm, dpm++ with
    ``objective="eps"``) call ``eps``; ``velocity`` is refused in one sentence."""

    def __init__(self, loaded: DiTFolder, labels: torch.Tensor, scale: float, record: bool = False):
        if loaded.family != "dit":
            raise LatentAtlasError(f"the {loaded.family} model in '{loaded.folder}' is conditioned on T5 caption embeddings, which this tool "
                                   "does not compute; only class-conditional DiT folders are sampled here")
        self.loaded, self.labels, self.scale = loaded, labels.long().reshape(-1), float(scale)
        self.shape = (loaded.in_channels, loaded.sample_size, loaded.sample_size)
        self.nfe = 0
        self.records: list[StepRecord] | None = [] if record else None

    @torch.no_grad()
    def eps(self, x: torch.Tensor, tau: torch.Tensor, abar: torch.Tensor) -> torch.Tensor:
        tau = torch.as_tensor(tau, dtype=torch.float64).reshape(-1)[:1]
        img = x.reshape(-1, *self.shape)
        n = img.shape[0]
        self.nfe += 1
        null = torch.full_like(self.labels, int(self.loaded.n_classes))
        out = self.loaded.model(torch.cat([img, img]), timestep=tau.to(img.dtype).expand(2 * n), class_labels=torch.cat([self.labels, null]),
                                return_dict=False)[0][:, : self.shape[0]]
        ec, eu = out[:n], out[n:]
        e = eu + self.scale * (ec - eu)
        if self.records is not None:
            t, _ = fm_time_of(torch.as_tensor(abar, dtype=torch.float64).reshape(-1)[:1])
            self.records.append(StepRecord(float(t[0]), img.detach().clone(), e, ec, eu))
        return e.reshape(n, -1)

    def velocity(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        raise LatentAtlasError("a DiT folder predicts ε on the VP path; sample it with ddim, ddpm or dpm++ (objective eps), not a flow sampler")


def describe(loaded: DiTFolder) -> dict[str, Any]:
    return {"family": loaded.family, "folder": str(loaded.folder), "in_channels": loaded.in_channels, "sample_size": loaded.sample_size,
            "patch": loaded.patch, "n_layers": loaded.n_layers, "n_heads": loaded.n_heads, "n_classes": loaded.n_classes,
            "learned_sigma": loaded.learned_sigma}


def to_image(x: torch.Tensor | np.ndarray) -> np.ndarray:
    """Images in [−1, 1] (the model's space) as float32 in [0, 1] space, not clipped."""
    a = x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)
    return ((a + 1) / 2).astype(np.float32)
