"""The bounds every input is checked against: one place, used by the CLI's options, the model configs
and the schemas of the atlas's files, so that a number that would exhaust memory, overflow an integer or
run for centuries is refused with one sentence instead of failing deep inside torch.

The memory bounds are estimates of what one tensor or one step needs, compared with what this machine
has (``memory_bytes``); they are deliberately generous, and they say in the sentence what fits.
"""

from __future__ import annotations

import math
import os

from .errors import LatentAtlasError

MAX_SEED = 2**32 - 1  # numpy's seeds are 32-bit words; torch takes 64-bit, the smaller bound holds for both
MAX_STEPS = 100_000_000  # 10^8 steps: years on a CPU at the sizes here
MAX_BATCH = 1 << 20
MAX_LATENT_DIM = 4096
MAX_WIDTH = 1 << 16  # activation / input widths (d_in of an SAE; hidden sizes)
MAX_EXPANSION = 1024
MAX_TOKENS = 1 << 40
MAX_SIDE = 4096  # image side in pixels
MAX_JSON_BYTES = 64 << 20  # the largest JSON file of an atlas read at all (a store index of 10^5 shards is ~20 MB)
MAX_CONFIG_BYTES = 4 << 20


def memory_bytes() -> int:
    """This machine's physical memory (a conservative 4 GiB when it cannot be read)."""
    try:
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):
        return 4 << 30


def fmt_bytes(n: float) -> str:
    for unit in ("bytes", "KB", "MB", "GB", "TB", "PB"):
        if abs(n) < 1024 or unit == "PB":
            return f"{n:,.0f} {unit}" if unit == "bytes" else f"{n:,.1f} {unit}"
        n /= 1024
    return f"{n:.1f} PB"


def check_int(value, name: str, lo: int, hi: int) -> int:
    """``value`` as an int in ``[lo, hi]``, or one sentence naming ``name`` (an option such as ``--seed``)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise LatentAtlasError(f"{name} must be a whole number between {lo:,} and {hi:,}, got {value!r}")
    if not lo <= value <= hi:
        raise LatentAtlasError(f"{name} must be between {lo:,} and {hi:,}, got {value:,}")
    return value


def check_float(value, name: str, lo: float | None = None, hi: float | None = None, *, lo_open: bool = False) -> float:
    """``value`` as a finite float within the bounds (``lo_open``: strictly above ``lo``)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(float(value)):
        raise LatentAtlasError(f"{name} must be a finite number, got {value!r}")
    v = float(value)
    if lo is not None and (v <= lo if lo_open else v < lo):
        raise LatentAtlasError(f"{name} must be {'above' if lo_open else 'at least'} {lo:g}, got {v:g}")
    if hi is not None and v > hi:
        raise LatentAtlasError(f"{name} must be at most {hi:g}, got {v:g}")
    return v


def check_memory(need: float, what: str, fraction: float = 0.8) -> None:
    """Refuse a job whose estimated memory ``need`` (bytes) exceeds ``fraction`` of this machine's."""
    have = memory_bytes()
    if need > fraction * have:
        raise LatentAtlasError(f"{what} needs about {fmt_bytes(need)}, more than this machine's {fmt_bytes(have)} of memory allows; "
                               "choose smaller sizes")
