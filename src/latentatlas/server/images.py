"""PNG encoding for images the API sends: (C, H, W) floats in [0, 1] to PNG bytes with Pillow."""

from __future__ import annotations

import io
import math

import numpy as np

from ..errors import LatentAtlasError

MIN_SIDE = 64  # small images (16 px sprites, 8 px digits) are upscaled so a browser shows pixels, not a blur


def to_uint8(image: np.ndarray) -> np.ndarray:
    """(C, H, W) in [0, 1] to (H, W) or (H, W, 3) uint8."""
    a = np.asarray(image, dtype=np.float32)
    if a.ndim != 3 or a.shape[0] not in (1, 3):
        raise LatentAtlasError(f"only images with 1 or 3 channels can be drawn as PNG, but this one has shape {tuple(a.shape)}.")
    a = np.nan_to_num(a, nan=0.0, posinf=1.0, neginf=0.0)
    u = np.round(np.clip(a, 0.0, 1.0) * 255.0).astype(np.uint8)
    return u[0] if u.shape[0] == 1 else u.transpose(1, 2, 0)


def upscale(pixels: np.ndarray, min_side: int = MIN_SIDE) -> np.ndarray:
    """Nearest-neighbour upscale by an integer factor so the shorter side is at least ``min_side``."""
    h, w = pixels.shape[:2]
    factor = max(1, math.ceil(min_side / max(1, min(h, w))))
    if factor == 1:
        return pixels
    return np.repeat(np.repeat(pixels, factor, axis=0), factor, axis=1)


def encode_png(pixels: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    # uint8 (H, W) becomes mode "L", (H, W, 3) mode "RGB"
    Image.fromarray(np.ascontiguousarray(pixels)).save(buf, format="PNG")
    return buf.getvalue()


def image_png(image: np.ndarray) -> bytes:
    """One (C, H, W) image in [0, 1] as an upscaled PNG."""
    return encode_png(upscale(to_uint8(image)))


def strip_png(images: np.ndarray, gap: int = 2) -> bytes:
    """(N, C, H, W) images side by side, left to right, with a white gap between tiles."""
    tiles = [upscale(to_uint8(im)) for im in images]
    h = tiles[0].shape[0]
    spacer = np.full((h, gap) + tiles[0].shape[2:], 255, np.uint8)
    parts: list[np.ndarray] = []
    for i, t in enumerate(tiles):
        if i:
            parts.append(spacer)
        parts.append(t)
    return encode_png(np.concatenate(parts, axis=1))
