"""SAEs saved in SAELens's format, read as untrusted input and imported into the atlas as ordinary SAE runs.

A SAELens folder holds ``cfg.json`` and ``sae_weights.safetensors`` (``W_enc`` [d_in, d_sae], ``b_enc``
[d_sae], ``W_dec`` [d_sae, d_in], ``b_dec`` [d_in]; JumpReLU SAEs also ``threshold`` [d_sae], older
saves ``log_threshold``), and optionally ``sparsity.safetensors`` (``sparsity``: log10 firing rates).
SAELens encodes ``f = act((x − b_dec·apply_b_dec_to_input) W_enc + b_enc)`` and decodes
``x̂ = f W_dec + b_dec``, with act:

- ``standard``: ReLU (SAELens before 6.0 also saved TopK SAEs as ``standard`` with ``activation_fn``
  ``topk`` and ``activation_fn_kwargs`` ``{"k": …}``);
- ``topk``: the k largest pre-activations, ReLU'd; with ``rescale_acts_by_decoder_norm`` the
  pre-activations are first multiplied by each decoder row's norm and the code divided by it again
  before decoding (our own TopK parameterisation, ``SAEConfig.rescale_by_decoder_norm``);
- ``jumprelu``: ``relu(pre) · (pre > θ)``; a θ ≤ 0 lets every positive pre-activation through.

The weights are mapped into :class:`latentatlas.models.SAE` so that its ``encode``/``decode`` equal
SAELens's: ``apply_b_dec_to_input`` false becomes ``b_enc + b_dec W_enc`` (our encoder always subtracts
``b_dec``), a fine-tuning scaling factor is folded into the decoder rows, θ becomes ``log θ`` (a θ ≤ 0
becomes the smallest normal float32, which differs from 0 only for pre-activations below 1.2e-38).
What cannot be reproduced exactly (gated and other architectures, tanh-relu, run-time input
normalisation, a norm scaling factor that is not in the folder) is refused with one sentence.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field, StrictBool, StrictInt, StrictStr

from ... import __version__
from ..._io import read_json
from ...atlas import Atlas, Run, check_name, now_iso
from ...errors import LatentAtlasError
from ...limits import MAX_CONFIG_BYTES, MAX_EXPANSION, MAX_WIDTH, check_memory
from ...schemas import _Open, validate

CFG_FILE = "cfg.json"
WEIGHTS_FILE = "sae_weights.safetensors"
SPARSITY_FILE = "sparsity.safetensors"
ARCHITECTURES = ("standard", "topk", "jumprelu")
DTYPES = ("float32", "float64", "float16", "bfloat16")  # cfg.json's dtype, with or without "torch."
TENSOR_DTYPES = ("F16", "BF16", "F32", "F64")  # what a weight may be stored as
_Name = Annotated[StrictStr, Field(max_length=500)]


class SAELensConfig(_Open):
    """The fields of a SAELens ``cfg.json`` that decide what the SAE computes; the rest (dataset, training
    and Neuronpedia fields) are kept as they are."""

    architecture: Annotated[StrictStr, Field(max_length=64)] | None = None
    d_in: StrictInt = Field(ge=1, le=MAX_WIDTH)
    d_sae: StrictInt = Field(ge=1, le=MAX_WIDTH * MAX_EXPANSION)
    dtype: Annotated[StrictStr, Field(max_length=32)] | None = None
    apply_b_dec_to_input: StrictBool = True
    normalize_activations: Annotated[StrictStr, Field(max_length=64)] | StrictBool | None = None
    activation_fn: Annotated[StrictStr, Field(max_length=64)] | None = None
    activation_fn_str: Annotated[StrictStr, Field(max_length=64)] | None = None
    activation_fn_kwargs: dict[str, Any] | None = None
    k: StrictInt | None = Field(None, ge=1, le=MAX_WIDTH * MAX_EXPANSION)
    rescale_acts_by_decoder_norm: StrictBool = False
    finetuning_scaling_factor: StrictBool = False
    reshape_activations: Annotated[StrictStr, Field(max_length=64)] | None = None
    hook_name: _Name | None = None
    hook_point: _Name | None = None
    hook_layer: StrictInt | None = None
    model_name: _Name | None = None
    metadata: dict[str, Any] | None = None  # SAELens 6: model_name, hook_name … live here
    meta: dict[str, Any] | None = None  # (an earlier 6.0 pre-release's name for it)


def _meta(cfg: SAELensConfig, key: str) -> Any:
    """A metadata field, at the top level (before SAELens 6) or under ``metadata`` / ``meta``."""
    value = getattr(cfg, key, None)
    for section in (cfg.metadata, cfg.meta):
        if value is None and isinstance(section, dict):
            value = section.get(key)
    return value


def _short(value: Any, n: int = 500) -> str | None:
    return value[:n] if isinstance(value, str) else None


def _architecture(cfg: SAELensConfig, path: Path) -> tuple[str, int | None]:
    """(our arch, k) for the SAE ``cfg`` describes, or one sentence for what we cannot reproduce."""
    arch = cfg.architecture or "standard"
    if arch not in ARCHITECTURES:
        hint = " (SAELens saves a trained BatchTopK SAE as a jumprelu one: save it with save_inference_model)" if arch == "batchtopk" else ""
        raise LatentAtlasError(f"SAELens config '{path}' has architecture '{arch[:64]}'; latentatlas imports only "
                               f"{', '.join(ARCHITECTURES)} SAEs{hint}")
    # SAELens 6's topk architecture ignores activation_fn; before 6, a standard SAE named its TopK there
    act = "topk" if arch == "topk" else cfg.activation_fn or cfg.activation_fn_str or "relu"
    kwargs = cfg.activation_fn_kwargs or {}
    if arch == "jumprelu" and act != "relu":
        raise LatentAtlasError(f"SAELens config '{path}' has a jumprelu SAE with activation_fn '{act}'; expected 'relu'")
    if act == "relu":
        return ("jumprelu" if arch == "jumprelu" else "relu"), None
    if act != "topk":
        raise LatentAtlasError(f"SAELens config '{path}' has activation_fn '{act}'; latentatlas imports 'relu' and 'topk' SAEs only")
    k = cfg.k if cfg.k is not None else kwargs.get("k")
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= cfg.d_sae:
        raise LatentAtlasError(f"SAELens config '{path}' describes a TopK SAE without a whole k between 1 and d_sae={cfg.d_sae:,} "
                               f"(got {str(k)[:40]}); expected 'k' or activation_fn_kwargs {{\"k\": …}}")
    return "topk", k


def _check_normalisation(cfg: SAELensConfig, path: Path) -> None:
    norm = cfg.normalize_activations
    if norm in (None, False, "none"):
        return
    if norm is True or norm == "expected_average_only_in":
        raise LatentAtlasError(f"SAELens config '{path}' has normalize_activations 'expected_average_only_in', whose scaling "
                               "factor is not in the folder; latentatlas imports 'none' only (fold the factor into the weights "
                               "with SAELens's fold_activation_norm_scaling_factor and save again)")
    raise LatentAtlasError(f"SAELens config '{path}' has normalize_activations '{str(norm)[:64]}', a per-token normalisation "
                           "latentatlas does not reproduce; expected 'none'")


def _open_tensors(path: Path, what: str):
    """The safetensors file at ``path`` opened lazily, or one sentence (never a pickle: only safetensors)."""
    from safetensors import SafetensorError, safe_open

    try:
        return safe_open(str(path), framework="pt")
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise LatentAtlasError(f"{what} '{path}' is not a readable safetensors file ({str(exc)[:120]}); it is truncated or corrupt") from None


def _read(handle, path: Path, expected: dict[str, tuple[int, ...]]):
    """The tensors named in ``expected`` from an open file, each checked for shape, float dtype and finiteness."""
    import torch
    from safetensors import SafetensorError

    out = {}
    for key, shape in expected.items():
        try:
            piece = handle.get_slice(key)
            got, dtype = tuple(piece.get_shape()), piece.get_dtype()
        except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
            raise LatentAtlasError(f"'{path}' cannot give tensor '{key}' ({str(exc)[:120]}); the file is corrupt") from None
        if got != shape:
            raise LatentAtlasError(f"tensor '{key}' in '{path}' has shape {list(got)}; cfg.json's d_in and d_sae make it {list(shape)}")
        if dtype not in TENSOR_DTYPES:
            raise LatentAtlasError(f"tensor '{key}' in '{path}' is stored as {dtype}; expected a float type ({', '.join(TENSOR_DTYPES)})")
        try:
            t = handle.get_tensor(key)
        except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
            raise LatentAtlasError(f"'{path}' cannot give tensor '{key}' ({str(exc)[:120]}); the file is truncated or corrupt") from None
        t = t.to(torch.float64)
        if not bool(torch.isfinite(t).all()):
            raise LatentAtlasError(f"tensor '{key}' in '{path}' holds NaN or infinite values; the weights are damaged")
        out[key] = t
    return out


def read_saelens(folder: str | Path):
    """The SAE saved in SAELens's format in ``folder`` as our :class:`SAE` (whose ``encode`` equals
    SAELens's), and an info dict: where it came from, what the config said, the stored dtypes, and the
    log10 firing rates of ``sparsity.safetensors`` when the folder has one (else None)."""
    import torch

    from ...models import SAE, SAEConfig

    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise LatentAtlasError(f"SAELens folder '{folder}' {'is not a folder' if folder.exists() else 'does not exist'}; "
                               f"expected a folder with {CFG_FILE} and {WEIGHTS_FILE}")
    cfg_path = folder / CFG_FILE
    if not cfg_path.is_file():
        raise LatentAtlasError(f"SAELens config '{cfg_path}' does not exist; a SAELens folder holds {CFG_FILE} and {WEIGHTS_FILE}")
    raw = read_json(cfg_path, "SAELens config", MAX_CONFIG_BYTES)
    if not isinstance(raw, dict):
        raise LatentAtlasError(f"SAELens config '{cfg_path}' should hold a JSON object")
    cfg = validate(SAELensConfig, raw, "SAELens config", cfg_path)
    arch, k = _architecture(cfg, cfg_path)
    _check_normalisation(cfg, cfg_path)
    if cfg.dtype is not None and cfg.dtype.removeprefix("torch.") not in DTYPES:
        raise LatentAtlasError(f"SAELens config '{cfg_path}' has dtype '{cfg.dtype}'; expected one of {', '.join(DTYPES)}")
    if cfg.reshape_activations not in (None, "none", "hook_z"):
        raise LatentAtlasError(f"SAELens config '{cfg_path}' has reshape_activations '{cfg.reshape_activations}'; expected 'none' or 'hook_z'")
    rescale = bool(cfg.rescale_acts_by_decoder_norm) and arch == "topk"
    d_in, d_sae = cfg.d_in, cfg.d_sae
    # the file's float64 copy, ours in float32 and the module's own initial weights
    check_memory(8 * 2 * d_in * d_sae + 4 * 3 * d_in * d_sae, f"the SAELens SAE in '{folder}' ({d_sae:,} latents on width {d_in:,})")

    path = folder / WEIGHTS_FILE
    if not path.is_file():
        raise LatentAtlasError(f"SAELens weights '{path}' do not exist; a SAELens folder holds {CFG_FILE} and {WEIGHTS_FILE} "
                               "(latentatlas reads safetensors only and never unpickles a file)")
    expected = {"W_enc": (d_in, d_sae), "b_enc": (d_sae,), "W_dec": (d_sae, d_in), "b_dec": (d_in,)}
    optional = ("scaling_factor", "finetuning_scaling_factor")
    with _open_tensors(path, "SAELens weights") as handle:
        names = set(handle.keys())
        if arch == "jumprelu":
            found = [n for n in ("threshold", "log_threshold") if n in names]
            if len(found) != 1:
                raise LatentAtlasError(f"SAELens weights '{path}' should hold one of the tensors 'threshold' or 'log_threshold' "
                                       f"of a jumprelu SAE, found {len(found) or 'neither'}")
            expected[found[0]] = (d_sae,)
        for name in optional:
            if name in names:
                expected[name] = (d_sae,)
        missing = [n for n in expected if n not in names]
        if missing:
            raise LatentAtlasError(f"SAELens weights '{path}' lack tensor '{missing[0]}' of a {cfg.architecture or 'standard'} SAE "
                                   f"(expected {', '.join(expected)})")
        extra = sorted(names - set(expected))
        if extra:
            raise LatentAtlasError(f"SAELens weights '{path}' hold tensor '{extra[0][:80]}', which a {cfg.architecture or 'standard'} "
                                   f"SAE does not have (expected {', '.join(expected)})")
        stored = {n: handle.get_slice(n).get_dtype() for n in expected}
        t = _read(handle, path, expected)

    W_enc, b_enc, W_dec, b_dec = t["W_enc"], t["b_enc"], t["W_dec"], t["b_dec"]
    if not cfg.apply_b_dec_to_input:
        b_enc = b_enc + b_dec @ W_enc  # our encoder always subtracts b_dec: (x − b_dec) W_enc + b_dec W_enc = x W_enc
    scale = next((t[n] for n in optional if n in t), None)
    if scale is not None and not bool((scale == 1).all()):
        if not cfg.finetuning_scaling_factor:
            raise LatentAtlasError(f"SAELens weights '{path}' hold a scaling factor other than 1, but cfg.json's "
                                   "finetuning_scaling_factor is false; the folder is inconsistent")
        if rescale:
            raise LatentAtlasError(f"SAELens weights '{path}' hold a fine-tuning scaling factor for a TopK SAE with "
                                   "rescale_acts_by_decoder_norm, which latentatlas cannot reproduce")
        W_dec = W_dec * scale[:, None]  # decoding (f·s) W_dec is decoding f with the rows s_i W_dec,i
    model_cfg = SAEConfig(arch=arch, d_in=d_in, d_sae=d_sae, normalize_input=False,
                          **({"k": k, "rescale_by_decoder_norm": rescale} if arch == "topk" else {}))
    model = SAE(model_cfg)
    state = {key: value.clone() for key, value in model.state_dict().items()}
    state.update(W_enc=W_enc.float(), b_enc=b_enc.float(), W_dec=W_dec.float(), b_dec=b_dec.float(), input_scale=torch.ones(()))
    if arch == "jumprelu":
        if "log_threshold" in t:
            state["log_threshold"] = t["log_threshold"].float()
        else:
            tiny = torch.finfo(torch.float32).tiny
            state["log_threshold"] = t["threshold"].clamp_min(tiny).log().float()
    model.load_state_dict(state, strict=True)
    model.eval()

    sparsity = None
    sparsity_path = folder / SPARSITY_FILE
    if sparsity_path.is_file():
        with _open_tensors(sparsity_path, "SAELens sparsity") as handle:
            if set(handle.keys()) != {"sparsity"}:
                raise LatentAtlasError(f"SAELens sparsity '{sparsity_path}' should hold the one tensor 'sparsity'")
            piece = handle.get_slice("sparsity")
            if tuple(piece.get_shape()) != (d_sae,) or piece.get_dtype() not in TENSOR_DTYPES:
                raise LatentAtlasError(f"tensor 'sparsity' in '{sparsity_path}' should be {d_sae:,} floats (d_sae), "
                                       f"got {piece.get_dtype()} of shape {list(piece.get_shape())}")
            sparsity = handle.get_tensor("sparsity").float()
        if bool(torch.isnan(sparsity).any() | (sparsity == math.inf).any()):
            raise LatentAtlasError(f"tensor 'sparsity' in '{sparsity_path}' holds NaN or +inf; log10 firing rates are at most 0")

    info = {
        "format": "saelens", "folder": str(folder.resolve()), "architecture": cfg.architecture or "standard",
        "activation": "topk" if arch == "topk" else "relu", "k": k, "d_in": d_in, "d_sae": d_sae,
        "apply_b_dec_to_input": cfg.apply_b_dec_to_input, "rescale_acts_by_decoder_norm": rescale,
        "hook_name": _short(_meta(cfg, "hook_name") or _meta(cfg, "hook_point")), "hook_layer": _meta(cfg, "hook_layer"),
        "model_name": _short(_meta(cfg, "model_name")), "sae_lens_version": _short(_meta(cfg, "sae_lens_version"), 64),
        "dtype": cfg.dtype, "tensor_dtypes": stored, "sparsity": sparsity,
    }
    return model, info


def _default_name(folder: Path) -> str:
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "-", folder.resolve().name).strip("-._")[:100]
    return f"saelens-{stem}" if stem else "saelens"


def import_saelens(folder: str | Path, activations: str, name: str | None = None, atlas: Atlas | str | None = None) -> Run:
    """``latentatlas sae import``: the SAELens SAE in ``folder`` as an SAE run over store ``activations``
    (of the width it reads). Nothing of the store was trained on here, so the whole store is its held-out
    range; ``sae eval`` then measures it and writes the feature tables its pages show."""
    import torch

    from ...models.io import config_to_dict
    from .jobs import _atlas

    atlas = _atlas(atlas)
    if name is not None:
        check_name(name)
        if atlas.has_run(name):
            raise LatentAtlasError(f"run '{name}' already exists in atlas '{atlas.root}'; pick another --name")
    store = atlas.activations(activations)
    if not store.complete:
        raise LatentAtlasError(f"activation store '{activations}' is incomplete; finish it with `latentatlas capture --resume --name {activations} …`")
    model, info = read_saelens(folder)
    if store.d != info["d_in"]:
        hook = f" at {info['hook_name']}" if info["hook_name"] else ""
        of = f" of {info['model_name']}" if info["model_name"] else ""
        raise LatentAtlasError(f"the SAELens SAE in '{folder}' reads activations of width {info['d_in']:,}{hook}{of}, but store "
                               f"'{activations}' holds width {store.d:,}; capture the layer the SAE was trained on")
    name = name or atlas.unique_run_name(_default_name(Path(folder)))
    n = store.n_tokens
    versions = {"latentatlas": __version__, "torch": torch.__version__}
    if info["sae_lens_version"]:
        versions["sae_lens"] = info["sae_lens_version"]
    config: dict[str, Any] = {
        "name": name, "kind": "sae", "model": config_to_dict(model.config),
        "data": {"kind": "activations", "name": activations, "d": store.d, "tokens": n,
                 "holdout": {"fraction": 1.0, "from_row": 0, "tokens": n, "from_doc": 0},
                 "store_model": store.index.get("model"), "layer": store.index.get("layer")},
        "origin": {"format": "saelens", "folder": info["folder"], "architecture": info["architecture"],
                   "hook_name": info["hook_name"], "model_name": info["model_name"]},
        "versions": versions, "created_at": now_iso(),
    }
    run = atlas.create_run(name, config)
    try:
        with run.lock():
            run.save_model(model)
    except BaseException:
        atlas.delete_run(name)
        raise
    return run
