"""Progress into a file or a pipe: plain periodic lines, not the last frame of a bar."""

from __future__ import annotations

import io
import subprocess
import sys

from latentatlas._progress import PlainProgress, progress_bar


class Clock:
    def __init__(self):
        self.t = 0.0

    def __call__(self):
        return self.t


def test_plain_lines_at_start_every_tenth_every_30_s_and_at_the_end():
    out, clock = io.StringIO(), Clock()
    with PlainProgress("{task.fields[metrics]}", out, every_s=30, clock=clock) as bar:
        task = bar.add_task("training demo", total=1000, metrics="")
        for step in range(1, 1001):
            clock.t = step * 0.1  # 100 s in all
            bar.update(task, completed=step, metrics=f"loss {1000 / step:.3g}")
    lines = out.getvalue().splitlines()
    assert lines[0] == "training demo: 0/1,000 (0%)  0:00 elapsed"
    # one line per tenth (10 of them, the last at 100%), nothing in between: 30 s never passes between tenths
    assert len(lines) == 11 and lines[-1] == "training demo: 1,000/1,000 (100%)  loss 1  1:40 elapsed"
    assert lines[5] == "training demo: 500/1,000 (50%)  loss 2  0:50 elapsed, ~0:50 left"


def test_a_slow_job_says_something_every_30_s_and_the_last_count_at_exit():
    out, clock = io.StringIO(), Clock()
    with PlainProgress("tokens", out, every_s=30, clock=clock) as bar:
        task = bar.add_task("capturing acts", total=10_000)
        for i in range(50):  # 50 s per 100 tokens: a tenth takes 500 s
            clock.t += 10
            bar.update(task, advance=7)
    lines = out.getvalue().splitlines()
    assert lines[0] == "capturing acts: 0/10,000 (0%) tokens  0:00 elapsed"
    assert len(lines) == 1 + 50 * 10 // 30 + 1  # one every 30 s, plus the final count on leaving
    assert lines[-1].startswith("capturing acts: 350/10,000 (4%) tokens  8:20 elapsed, ~")


def test_a_terminal_gets_the_bar_and_a_pipe_gets_lines():
    class Tty(io.StringIO):
        def isatty(self):
            return True

    assert isinstance(progress_bar(True, stream=io.StringIO()), PlainProgress)
    assert not isinstance(progress_bar(True, stream=Tty()), PlainProgress)
    assert not isinstance(progress_bar(False, stream=io.StringIO()), PlainProgress)


def test_a_training_run_into_a_pipe_logs_plain_lines(tmp_path):
    out = subprocess.run([sys.executable, "-m", "latentatlas.cli", "vae", "train", "ae", "--data", "digits", "--steps", "30",
                          "--latent-dim", "2", "--batch-size", "16", "--atlas", str(tmp_path)], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    lines = [ln for ln in out.stdout.splitlines() if ln.startswith("training ae-digits: ")]
    assert lines[0].startswith("training ae-digits: 0/30 (0%)") and lines[-1].startswith("training ae-digits: 30/30 (100%)")
    assert "━" not in out.stdout
