"""Sequences with a repeated random span, the task on which a two-layer attention-only transformer grows
an induction head (Olsson et al. 2022).

Each sequence is ``length`` tokens drawn uniformly from ``vocab``; a span of ``span_min``–``span_max``
tokens starting at a random place is copied to a random later place (the gap between the two copies is
random too), so the only way to predict the second copy is to look back for the current token's earlier
occurrence and read what followed it: a fixed positional offset fails. Batches are a pure function of
(seed, step), which the trainer's exact resume needs.

A batch is int64 of shape (batch, 2, length): row 0 the tokens, row 1 each token's role: 0 random, 1 in the
first copy of the span, 2 in the second copy (3 for the second copy's first token, which cannot be
predicted: the copy's start is random).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from latentatlas.errors import LatentAtlasError

RANDOM, FIRST, REPEAT, REPEAT_START = 0, 1, 2, 3


@dataclass(frozen=True)
class RepeatedSpans:
    vocab: int = 64
    length: int = 64
    span_min: int = 8
    span_max: int = 24
    batch_size: int = 64
    seed: int = 0

    def __post_init__(self) -> None:
        if self.vocab < 4 or self.length < 8:
            raise LatentAtlasError(f"repeated-span data needs a vocabulary of at least 4 and sequences of at least 8 tokens, "
                                   f"got vocab {self.vocab} and length {self.length}")
        if not 2 <= self.span_min <= self.span_max or 2 * self.span_max + 1 > self.length:
            raise LatentAtlasError(f"spans of {self.span_min}–{self.span_max} tokens do not fit twice in a sequence of {self.length}; "
                                   f"expected 2 ≤ span_min ≤ span_max and 2·span_max + 1 ≤ length")

    @property
    def spec(self) -> dict:
        return {"kind": "repeated_spans", **asdict(self)}

    def __len__(self) -> int:  # an endless stream; the trainer only needs a size to report
        return self.batch_size

    def batch_at(self, step: int, batch_size: int | None = None) -> np.ndarray:
        rng = np.random.default_rng((self.seed, step))
        return sample(rng, batch_size or self.batch_size, self.vocab, self.length, self.span_min, self.span_max)


def sample(rng: np.random.Generator, n: int, vocab: int, length: int, span_min: int, span_max: int) -> np.ndarray:
    tokens = rng.integers(0, vocab, size=(n, length))
    role = np.zeros((n, length), dtype=np.int64)
    span = rng.integers(span_min, span_max + 1, size=n)
    for i in range(n):
        s = int(span[i])
        first = int(rng.integers(0, length - 2 * s + 1))
        second = int(rng.integers(first + s, length - s + 1))
        tokens[i, second:second + s] = tokens[i, first:first + s]
        role[i, first:first + s] = FIRST
        role[i, second:second + s] = REPEAT
        role[i, second] = REPEAT_START
    return np.stack([tokens, role], axis=1).astype(np.int64)


def repeated_random(rng: np.random.Generator, n: int, vocab: int, half: int, bos: int | None = None) -> np.ndarray:
    """Olsson et al.'s probe for prefix matching: ``half`` random tokens, then the same tokens again
    (after ``bos`` when given), shape (n, 2·half [+1]). The half holds no token twice when the vocabulary
    allows (a small one would otherwise make "the token after the earlier occurrence" ambiguous)."""
    if half <= vocab:
        r = np.stack([rng.permutation(vocab)[:half] for _ in range(n)])
    else:
        r = rng.integers(0, vocab, size=(n, half))
    seq = np.concatenate([r, r], axis=1)
    if bos is not None:
        seq = np.concatenate([np.full((n, 1), bos), seq], axis=1)
    return seq.astype(np.int64)
