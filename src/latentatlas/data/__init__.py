"""Datasets as plain arrays with labels and ground-truth factors; no torch, no training code.

``load_dataset`` turns a name ("sprites", "digits"), a path (an image folder, a .npy/.npz file) or a
dataset's own ``.spec`` dict back into the dataset.
"""

from __future__ import annotations

import os
from pathlib import Path

from latentatlas.data.base import ArrayDataset
from latentatlas.data.digits import load_digits
from latentatlas.data.files import ARRAY_SUFFIXES, load_array_file, load_image_folder
from latentatlas.data.sprites import Sprites
from latentatlas.errors import LatentAtlasError

__all__ = [
    "ArrayDataset",
    "Sprites",
    "load_array_file",
    "load_dataset",
    "load_digits",
    "load_image_folder",
]

NAMES = ("sprites", "digits")
# Spec keys each kind accepts; "classes" is recorded by load_image_folder for reference only.
_KINDS = {
    "sprites": ("n", "seed"),
    "digits": (),
    "image_folder": ("path", "size", "grayscale", "classes"),
    "array_file": ("path",),
}
_VALID = "'sprites', 'digits', a folder of images, a .npy/.npz file, or a spec dict with a 'kind'"


def _looks_like_path(s: str) -> bool:
    return any(sep in s for sep in ("/", os.sep)) or s.startswith((".", "~")) or Path(s).suffix != ""


def _spec_from_path(spec: str | os.PathLike) -> dict:
    p = Path(spec).expanduser()
    if p.is_dir():
        return {"kind": "image_folder", "path": str(spec)}
    if p.exists():
        if p.suffix.lower() in ARRAY_SUFFIXES:
            return {"kind": "array_file", "path": str(spec)}
        raise LatentAtlasError(f"data path '{spec}' is neither a folder of images nor a .npy/.npz file.")
    if isinstance(spec, str) and not _looks_like_path(spec):
        raise LatentAtlasError(f"unknown dataset '{spec}'; expected one of {_VALID}.")
    raise LatentAtlasError(f"data path '{spec}' does not exist.")


def load_dataset(spec: str | os.PathLike | dict, **kw) -> Sprites | ArrayDataset:
    """A dataset from a name, a path or a spec dict; ``kw`` adds to or overrides the spec.

    "sprites" gives the lazy full grid; with ``n=`` (and ``seed=``) a materialised random sample.
    Folder paths take ``size=`` and ``grayscale=``.
    """
    if isinstance(spec, dict):
        params = dict(spec)
    elif isinstance(spec, str) and spec in NAMES:
        params = {"kind": spec}
    elif isinstance(spec, (str, os.PathLike)):
        params = _spec_from_path(spec)
    else:
        raise LatentAtlasError(f"dataset spec {spec!r} is invalid; expected {_VALID}.")
    params.update(kw)

    kind = params.pop("kind", None)
    if kind not in _KINDS:
        raise LatentAtlasError(
            f"dataset kind {kind!r} is unknown; expected one of {', '.join(repr(k) for k in _KINDS)}."
        )
    unknown = sorted(set(params) - set(_KINDS[kind]))
    if unknown:
        allowed = ", ".join(_KINDS[kind]) or "none"
        raise LatentAtlasError(
            f"dataset spec for '{kind}' has unknown keys {', '.join(map(str, unknown))}; expected only: {allowed}."
        )

    if kind == "sprites":
        if "n" in params:
            return Sprites().sample(params["n"], params.get("seed", 0))
        if "seed" in params:
            raise LatentAtlasError("dataset spec for 'sprites' has a 'seed' but no 'n'; expected both or neither.")
        return Sprites()
    if kind == "digits":
        return load_digits()
    if "path" not in params:
        raise LatentAtlasError(f"dataset spec for '{kind}' has no 'path'; expected the data's location.")
    if kind == "image_folder":
        params.pop("classes", None)
        return load_image_folder(**params)
    return load_array_file(params["path"])
