"""Helpers for tests that train tiny torch models."""

from __future__ import annotations

import contextlib

import torch


@contextlib.contextmanager
def one_thread():
    """Run the block on one torch thread: a model this small runs no faster on two, and on a busy shared
    CPU two spin-waiting threads made a training step ten times slower."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)
