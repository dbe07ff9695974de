"""``latentatlas flow …`` driven in-process: a tiny run end to end, and bad input as one line and exit 2."""

from __future__ import annotations

import numpy as np
import pytest

from latentatlas.cli import main
from torch_helpers import one_thread


@pytest.fixture(autouse=True)
def _wide(monkeypatch):
    monkeypatch.setenv("COLUMNS", "300")
    for var in ("LATENTATLAS_DEBUG", "LATENTATLAS_ATLAS", "FORCE_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE"):
        monkeypatch.delenv(var, raising=False)


def run(argv, capsys):
    capsys.readouterr()
    with pytest.raises(SystemExit) as exc, one_thread():
        main(argv)
    out, err = capsys.readouterr()
    return exc.value.code, out, err


def clean_error(code, out, err, needle):
    lines = [x for x in err.splitlines() if x.strip()]
    assert code == 2 and "Traceback" not in out + err and len(lines) == 1 and lines[0].startswith("error:"), (code, out, err)
    assert needle in lines[0], lines[0]


def test_train_sample_eval_on_a_tiny_run(tmp_path, capsys):
    atlas = str(tmp_path / "atlas")
    code, out, err = run(["flow", "train", "--steps", "40", "--batch-size", "64", "--name", "t", "--atlas", atlas, "--quiet",
                          "--no-eval", "--device", "cpu"], capsys)
    assert code == 0, err
    assert "trained t for 40 steps" in out
    code, out, err = run(["flow", "sample", "t", "--sampler", "heun", "--nfe", "7", "--n", "300", "--atlas", atlas], capsys)
    assert code == 0, err
    assert "with heun in 7 NFE (4 steps" in out and "energy distance to the target" in out
    assert (tmp_path / "atlas" / "runs" / "t" / "samples" / "heun-7.safetensors").is_file()


@pytest.mark.parametrize("body,needle", [("1,nan\n2,3\n", "NaN or infinite values in row 1"), ("1,2,3\n4,5,6\n", "has 3 columns"),
                                         ("1\n2\n", "has 1 column")])
def test_bad_point_files_exit_2_with_one_line(tmp_path, capsys, body, needle):
    f = tmp_path / "pts.csv"
    f.write_text(body)
    clean_error(*run(["flow", "train", "--data", str(f), "--atlas", str(tmp_path / "a"), "--quiet"], capsys), needle)
    assert not (tmp_path / "a" / "runs").exists() or not any((tmp_path / "a" / "runs").iterdir())


def test_bad_options_exit_2(tmp_path, capsys):
    atlas = str(tmp_path / "atlas")
    clean_error(*run(["flow", "train", "--objective", "gan", "--atlas", atlas], capsys), "--objective 'gan'")
    clean_error(*run(["flow", "train", "--data", "nowhere", "--atlas", atlas], capsys), "nowhere")
    clean_error(*run(["flow", "sample", "ghost", "--atlas", atlas], capsys), "ghost")
    np.save(tmp_path / "p.npy", np.zeros((5, 2), np.float32))
    code, _, err = run(["flow", "train", "--data", str(tmp_path / "p.npy"), "--steps", "5", "--name", "z", "--atlas", atlas,
                        "--quiet", "--no-eval", "--device", "cpu"], capsys)
    assert code == 0, err
    clean_error(*run(["flow", "sample", "z", "--sampler", "midpoint", "--nfe", "1", "--atlas", atlas], capsys), "too few")
    clean_error(*run(["flow", "sample", "z", "--sampler", "rk4", "--atlas", atlas], capsys), "rk4")
