"""The README's notebook snippet runs as written: copied verbatim out of README.md, run in a fresh
interpreter in an empty folder, and its printed MIG (a pure function on the stored latents) equals the one
`la.evaluate` wrote."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


def notebook_snippet() -> str:
    text = README.read_text(encoding="utf-8")
    section = text[text.index("## In a notebook"):]
    match = re.search(r"```python\n(.*?)```", section, re.S)
    assert match, "README's 'In a notebook' section has no python block"
    return match.group(1)


def test_the_snippet_is_what_this_test_runs():
    code = notebook_snippet()
    assert code.startswith("import latentatlas as la\n") and "la.evaluate(run" in code and "la.analysis.mig(codes, factors)" in code


@pytest.mark.slow
def test_readme_notebook_snippet_runs_verbatim(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "LATENTATLAS_ATLAS"}
    env["MPLBACKEND"] = "Agg"
    proc = subprocess.run([sys.executable, "-c", notebook_snippet()], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    value, low, high, reported = (float(v) for v in proc.stdout.split()[-4:])
    # the same codes give the same MIG; its bootstrap bias correction draws its own resamples, so the two
    # values differ by a little of the interval's width
    assert low <= value <= high and abs(value - reported) <= (high - low)
    assert (tmp_path / "atlas" / "runs" / "beta_tcvae-sprites" / "metrics.json").is_file()
