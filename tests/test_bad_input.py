"""Every bad input to every command is treated the same way: one sentence on stderr that starts with
``error:`` and names the input and what was expected, exit code 2, no traceback, no click usage box,
within seconds, and nothing left in the atlas (no run or store folder that would then block the name).

The cases (tests/bad_input_cases.py) go through every option of every command for the classes of bad
value: negative, zero, huge (10^12, overflowing int64, sizes that need terabytes), NaN/inf, empty,
whitespace- or newline-suffixed names, wrong type, paths that are missing, folders, files of the wrong
kind or corrupt (truncated, a header claiming terabytes, zero-width arrays, deeply nested JSON lines,
invalid UTF-8), conflicting options, a port in use and a hub id that cannot be fetched offline.

Each command runs in-process through ``cli.main(argv)`` (as in tests/test_cli.py) on a fresh copy of a
small atlas, with stdout and stderr captured at the file-descriptor level (so text printed by C++ or by
a library's logger counts), under a time limit and, on a CPU-only Linux machine, an address-space cap
that makes a runaway allocation fail instead of taking the machine down.
"""

from __future__ import annotations

import contextlib
import os
import resource
import shutil
import signal
import socket
import sys
import time

import pytest

from bad_input_cases import CASES, build_inputs
from latentatlas.cli import main

BOUND_S = 10.0  # a bad input is refused at once: before any training, download or allocation
COLOUR_VARS = ("FORCE_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE")


class CaseTimeout(BaseException):
    """Raised by the alarm; a BaseException so that ``main``'s ``except Exception`` cannot swallow it."""


@contextlib.contextmanager
def time_limit(seconds: float):
    def on_alarm(signum, frame):
        raise CaseTimeout

    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _address_space() -> int:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")


@contextlib.contextmanager
def memory_cap(headroom: int = 8 << 30):
    """Cap the address space at what the process maps now plus ``headroom`` (not with CUDA, which maps
    far more address space than it uses)."""
    import torch

    if not sys.platform.startswith("linux") or torch.cuda.is_available():
        yield
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    cap = _address_space() + headroom
    if hard != resource.RLIM_INFINITY:
        cap = min(cap, hard)
    resource.setrlimit(resource.RLIMIT_AS, (cap, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


def run_cli(argv: list[str], capfd, bound: float):
    """(exit code or None if it ran past ``bound``, stdout, stderr, seconds)."""
    capfd.readouterr()
    code, t0 = None, time.perf_counter()
    with memory_cap(), time_limit(bound):
        try:
            main(argv)
        except SystemExit as exc:
            code = exc.code
        except CaseTimeout:
            code = None
    seconds = time.perf_counter() - t0
    out, err = capfd.readouterr()
    return code, out, err, seconds


def listing(atlas, cwd) -> set[str]:
    """The run and store folders of the atlas, and whatever is in the working folder."""
    found = set()
    for sub in ("runs", "activations"):
        if (atlas / sub).is_dir():
            found |= {f"{sub}/{p.name}" for p in (atlas / sub).iterdir()}
    return found | {f"./{p.name}" for p in cwd.iterdir()}


@pytest.fixture(scope="module")
def inputs(tmp_path_factory, tiny_tf, bars):
    root = tmp_path_factory.mktemp("bad-input").resolve()
    return root, build_inputs(root, tiny_tf, bars)


@pytest.fixture
def clean_env(monkeypatch):
    monkeypatch.setenv("COLUMNS", "400")  # no wrapping of long paths
    for var in ("LATENTATLAS_DEBUG", "LATENTATLAS_ATLAS", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", *COLOUR_VARS):
        monkeypatch.delenv(var, raising=False)
    # a hub id is looked up as a user without HF_HUB_OFFLINE would: it must fail fast without a network
    constants = sys.modules.get("huggingface_hub.constants")
    if constants is not None and getattr(constants, "HF_HUB_OFFLINE", False):
        monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)


def _params():
    for case in CASES:
        cid, argv, expect = case[:3]
        bound = case[3] if len(case) > 3 else BOUND_S
        yield pytest.param(argv, expect, bound, id=cid)


@pytest.mark.parametrize("argv, expect, bound", list(_params()))
def test_bad_input_is_one_sentence_exit_2_and_leaves_nothing(inputs, tmp_path, monkeypatch, capfd, clean_env, argv, expect, bound):
    root, placeholders = inputs
    atlas, cwd, own = tmp_path / "atlas", tmp_path / "cwd", tmp_path / "tmp"
    shutil.copytree(root / "atlas", atlas)
    cwd.mkdir()
    own.mkdir()
    monkeypatch.chdir(cwd)
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            free = probe.getsockname()[1]
        values = {**placeholders, "atlas": str(atlas), "tmp": str(own), "busy": str(busy.getsockname()[1]), "free": str(free)}
        argv = [a.format(**values) for a in argv]
        expect = [e.format(**values) for e in expect]
        before = listing(atlas, cwd)
        code, out, err, seconds = run_cli(argv, capfd, bound)
    left = sorted(listing(atlas, cwd) - before)

    problems = []
    if code is None:
        problems.append(f"still running after {bound:g} s")  # what it printed until then is not judged
    else:
        problems += _judge(code, out, err, seconds, bound, expect)
    if left:
        problems.append(f"left behind {left}")
    assert not problems, (
        f"{'; '.join(problems)} | exit {code!r} after {seconds:.1f} s | stderr: {_gist(err)}\n"
        f"  argv: {argv!r}\n  stderr (last 2000 chars): {err[-2000:]!r}\n  stdout (last 500 chars): {out[-500:]!r}"
    )


def _judge(code, out, err, seconds, bound, expect) -> list[str]:
    problems = []
    if code != 2:
        problems.append(f"exit code {code!r}")
    if seconds > bound:
        problems.append(f"took {seconds:.1f} s (bound {bound:g} s)")
    both = out + err
    if "Traceback" in both:
        problems.append("a traceback")
    if "Usage:" in both or "╭" in both:
        problems.append("a click usage box")
    lines = [line for line in err.splitlines() if line.strip()]
    if len(lines) != 1:
        problems.append(f"{len(lines)} non-empty lines on stderr")
    sentence = next((line for line in lines if line.startswith("error:")), None)
    if sentence is None:
        problems.append("no line starting with 'error:'")
    else:
        missing = [e for e in expect if e not in sentence]
        if missing:
            problems.append(f"the sentence does not name {missing}")
    return problems


def _gist(err: str) -> str:
    """What a reader of the failure needs: the usage box's message, or the error line, or the first line."""
    lines = [line.strip() for line in err.splitlines() if line.strip()]
    if not lines:
        return "(empty)"
    if any(line.startswith("Usage:") for line in lines):
        return "usage box: " + next((line.strip("│ ") for line in lines if line.startswith("│")), lines[-1])
    said = next((line for line in lines if line.startswith(("error:", "internal error:"))), lines[0])
    return (said if len(said) <= 400 else said[:400] + "…") + (f" (+{len(lines) - 1} more lines)" if len(lines) > 1 else "")
