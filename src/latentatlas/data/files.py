"""Datasets from disk: a folder of images (one subfolder per class) and .npy/.npz arrays.

Nothing is ever unpickled: arrays are read with ``allow_pickle=False`` and object arrays are refused.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from latentatlas.data.base import ArrayDataset, as_index_array, check_finite_range, check_numeric
from latentatlas.errors import LatentAtlasError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff")
ARRAY_SUFFIXES = (".npy", ".npz")


def existing_path(path) -> Path:
    p = Path(path).expanduser()
    if not p.exists():
        raise LatentAtlasError(f"data path '{path}' does not exist.")
    return p.resolve()


# -- image folders ----------------------------------------------------------------------------


def _image_files(folder: Path) -> list[Path]:
    return sorted(
        f for f in folder.iterdir()
        if f.is_file() and not f.name.startswith(".") and f.suffix.lower() in IMAGE_SUFFIXES
    )


def _read_image(file: Path, size: int, grayscale: bool) -> np.ndarray:
    """One image as uint8 (C, size, size): centre-cropped to a square, then resized (no distortion)."""
    from PIL import Image, ImageOps

    try:
        with Image.open(file) as im:
            im.load()
            im = im.convert("L" if grayscale else "RGB")
            im = ImageOps.fit(im, (size, size), method=Image.Resampling.BILINEAR)
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        raise LatentAtlasError(f"image '{file}' could not be read ({exc}); expected a readable image file.") from None
    arr = np.asarray(im, dtype=np.uint8)
    return arr[None] if grayscale else arr.transpose(2, 0, 1)


def load_image_folder(path, size: int = 64, grayscale: bool = False) -> ArrayDataset:
    """Images under ``path/<class>/``; labels index the sorted class names.

    A folder with images but no class subfolders is read as one class. Every image is centre-cropped
    to a square and resized to ``size`` x ``size``; x is (N, 3, size, size), or (N, 1, size, size)
    when ``grayscale``, in [0, 1]. The class is also the one factor, named "class". The class names
    are kept in ``spec["classes"]``.
    """
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 1:
        raise LatentAtlasError(f"image size {size!r} is invalid; expected a positive integer.")
    size, grayscale = int(size), bool(grayscale)
    root = existing_path(path)
    if not root.is_dir():
        raise LatentAtlasError(f"data path '{path}' is not a folder; expected a folder of images.")

    classes: list[tuple[str, list[Path]]] = []
    for sub in sorted(d for d in root.iterdir() if d.is_dir() and not d.name.startswith(".")):
        files = _image_files(sub)
        if files:
            classes.append((sub.name, files))
    if not classes:
        files = _image_files(root)
        if files:
            classes = [(root.name, files)]
    if not classes:
        raise LatentAtlasError(
            f"folder '{path}' holds no images; expected image files ({', '.join(IMAGE_SUFFIXES)}) "
            "in one subfolder per class."
        )

    n = sum(len(files) for _, files in classes)
    x = np.empty((n, 1 if grayscale else 3, size, size), dtype=np.uint8)
    labels = np.empty(n, dtype=np.int64)
    i = 0
    for label, (_, files) in enumerate(classes):
        for file in files:
            x[i] = _read_image(file, size, grayscale)
            labels[i] = label
            i += 1
    x = x.astype(np.float32)
    x /= 255.0
    return ArrayDataset(
        x=x,
        labels=labels,
        factors=labels[:, None].copy(),
        factor_names=("class",),
        factor_sizes=(len(classes),),
        value_names={"class": [name for name, _ in classes]},
        name=root.name,
        spec={
            "kind": "image_folder",
            "path": str(root),
            "size": size,
            "grayscale": grayscale,
            "classes": [name for name, _ in classes],
        },
    )


# -- .npy / .npz --------------------------------------------------------------------------------


def _check_header(fh, size: int, what: str) -> None:
    """Read an .npy header from ``fh`` and refuse an array that claims more bytes than the ``size`` bytes
    the file (or zip member) holds, or more memory than this machine has, before numpy allocates it: a
    64-byte file claiming (10⁹, 1000) float32 is 3.6 TiB."""
    from numpy.lib import format as npformat

    from ..limits import check_memory, fmt_bytes

    start = fh.tell()
    try:
        version = npformat.read_magic(fh)
        read = npformat.read_array_header_1_0 if version == (1, 0) else npformat.read_array_header_2_0
        shape, _, dtype = read(fh, max_header_size=10_000)
    except (ValueError, OSError, EOFError):
        return  # not a header numpy reads: np.load says so below
    header = fh.tell() - start
    if dtype.hasobject:
        return  # refused below without being unpickled
    need = int(np.prod(shape, dtype=object)) * dtype.itemsize
    if need > size - header:
        raise LatentAtlasError(f"{what} claims shape {tuple(shape)} ({fmt_bytes(need)}) but the file holds {fmt_bytes(size - header)}; "
                               "it is truncated or not what it says")
    check_memory(need, f"{what} of shape {tuple(shape)}")


def _read_npy(file: Path, path) -> dict[str, np.ndarray]:
    with open(file, "rb") as fh:
        _check_header(fh, file.stat().st_size, f"array file '{path}'")
    try:
        return {"x": np.load(file, allow_pickle=False)}
    except ValueError as exc:
        if "allow_pickle" in str(exc):
            raise LatentAtlasError(
                f"array file '{path}' holds an object array; expected a numeric array (nothing is unpickled)."
            ) from None
        raise LatentAtlasError(f"array file '{path}' is not a readable .npy file ({exc}).") from None
    except (OSError, EOFError) as exc:
        raise LatentAtlasError(f"array file '{path}' is not a readable .npy file ({exc}).") from None


def _read_npz(file: Path, path) -> dict[str, np.ndarray]:
    wanted = ("x", "labels", "factors", "factor_names")
    arrays = {}
    try:
        with np.load(file, allow_pickle=False) as z:
            if "x" not in z.files:
                raise LatentAtlasError(
                    f"array file '{path}' has no array named 'x' (it has: {', '.join(z.files) or 'none'}); "
                    "expected 'x' and optionally 'labels', 'factors', 'factor_names'."
                )
            for key in wanted:
                if key not in z.files:
                    continue
                member = f"{key}.npy" if f"{key}.npy" in z.zip.namelist() else key
                with z.zip.open(member) as fh:
                    _check_header(fh, z.zip.getinfo(member).file_size, f"array '{key}' in '{path}'")
                try:
                    arrays[key] = z[key]
                except ValueError as exc:
                    if "allow_pickle" in str(exc):
                        raise LatentAtlasError(
                            f"array '{key}' in '{path}' is an object array; expected a numeric array "
                            "(nothing is unpickled)."
                        ) from None
                    raise
    except LatentAtlasError:
        raise
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as exc:
        raise LatentAtlasError(f"array file '{path}' is not a readable .npz file ({exc}).") from None
    return arrays


def _to_model_layout(x: np.ndarray, what: str) -> np.ndarray:
    """(N,H,W) -> (N,1,H,W); (N,H,W,C) with C in {1,3} -> (N,C,H,W); (N,C,H,W) and (N,D) as they are."""
    if x.ndim == 3:
        return x[:, None]
    if x.ndim == 4 and x.shape[1] not in (1, 3) and x.shape[3] in (1, 3):
        return np.ascontiguousarray(x.transpose(0, 3, 1, 2))
    if x.ndim in (2, 4):
        return x
    raise LatentAtlasError(
        f"{what} has shape {x.shape}; expected vectors (N, D) or images (N, H, W), (N, H, W, C) or (N, C, H, W)."
    )


def load_array_file(path) -> ArrayDataset:
    """x from a .npy file, or x plus optional labels, factors and factor_names from a .npz file.

    uint8 arrays are scaled by 1/255; other images must already lie in [0, 1]. Factor sizes are
    taken as the largest index per column plus one.
    """
    file = existing_path(path)
    if file.is_dir() or file.suffix.lower() not in ARRAY_SUFFIXES:
        raise LatentAtlasError(f"data path '{path}' is not a .npy or .npz file; expected one of those.")
    arrays = _read_npy(file, path) if file.suffix.lower() == ".npy" else _read_npz(file, path)

    what = f"array 'x' in '{path}'"
    x = arrays["x"]
    check_numeric(x, what)
    x = _to_model_layout(x, what)
    if x.shape[0] == 0:
        raise LatentAtlasError(f"{what} holds no samples; expected at least one.")
    if 0 in x.shape[1:]:
        raise LatentAtlasError(f"{what} has shape {x.shape}: its samples are empty; expected at least one value per sample.")
    if x.dtype == np.uint8:
        x = x.astype(np.float32)
        x /= 255.0
    else:
        x = x.astype(np.float32, copy=False)
    check_finite_range(x, what, unit_range=x.ndim == 4)
    n = len(x)

    labels = arrays.get("labels")
    if labels is not None:
        labels = as_index_array(labels, f"array 'labels' in '{path}'", n, ndim=1)

    factors, names, sizes = arrays.get("factors"), (), ()
    if factors is not None:
        factors = as_index_array(factors, f"array 'factors' in '{path}'", n, ndim=2)
        if factors.size and factors.min() < 0:
            raise LatentAtlasError(f"array 'factors' in '{path}' holds negative values; expected factor indices 0 .. size-1.")
        k = factors.shape[1]
        sizes = tuple(int(s) for s in factors.max(axis=0) + 1)
        if "factor_names" in arrays:
            raw = arrays["factor_names"]
            if raw.dtype.kind not in "US" or raw.ndim != 1 or len(raw) != k:
                raise LatentAtlasError(
                    f"array 'factor_names' in '{path}' has dtype {raw.dtype} and shape {raw.shape}; "
                    f"expected {k} strings, one per factor column."
                )
            names = tuple(s.decode() if isinstance(s, bytes) else str(s) for s in raw.tolist())
        else:
            names = tuple(f"factor_{j}" for j in range(k))
    elif "factor_names" in arrays:
        raise LatentAtlasError(f"array file '{path}' has 'factor_names' but no 'factors'; expected both or neither.")

    return ArrayDataset(
        x=x,
        labels=labels,
        factors=factors,
        factor_names=names,
        factor_sizes=sizes,
        name=file.stem,
        spec={"kind": "array_file", "path": str(file)},
    )
