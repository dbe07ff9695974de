"""One progress style for every long job (training, capture, evaluation).

On a terminal: a rich bar (description, bar, done/total, an extra column, elapsed and remaining time).
Into a file or a pipe (``make demo > log``, a batch job): plain lines instead, one when a task starts,
then at most one every ``LINE_EVERY_S`` seconds and at every tenth of the way, and one at the end, so a
log says how far a job got and how fast (a rich bar written to a file is only its last frame).
"""

from __future__ import annotations

import sys
import time
from typing import Any

LINE_EVERY_S = 30.0


def progress_bar(enabled: bool, extra: str | None = None, stream=None):
    """A rich ``Progress`` on a terminal, :class:`PlainProgress` otherwise (``stream``: default stdout);
    silent when ``enabled`` is false. ``extra`` is a unit such as ``"tokens"`` or a task field such as
    ``"{task.fields[metrics]}"``."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    stream = sys.stdout if stream is None else stream
    if enabled and not (hasattr(stream, "isatty") and stream.isatty()):
        return PlainProgress(extra, stream)
    columns = [TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn()]
    if extra:
        columns.append(TextColumn(extra))
    return Progress(*columns, TimeElapsedColumn(), TimeRemainingColumn(), disable=not enabled)


def _clock(seconds: float) -> str:
    seconds = int(round(seconds))
    h, rest = divmod(seconds, 3600)
    return f"{h}:{rest // 60:02d}:{rest % 60:02d}" if h else f"{rest // 60}:{rest % 60:02d}"


class PlainProgress:
    """The part of rich's ``Progress`` the jobs use (``add_task``, ``update``, ``advance``, a context),
    written as plain periodic lines: ``training demo: 500/2500 (20%)  recon 107  kl 10.3  1:12 elapsed,
    ~4:48 left``."""

    def __init__(self, extra: str | None, stream, every_s: float = LINE_EVERY_S, clock=time.monotonic):
        self.extra, self.stream, self.every_s, self.clock = extra, stream, every_s, clock
        self.tasks: list[dict[str, Any]] = []

    def __enter__(self) -> PlainProgress:
        return self

    def __exit__(self, *exc) -> None:
        for t in self.tasks:
            if t["done"] != t["said_done"]:
                self._line(t)

    def add_task(self, description: str, total: float | None = None, completed: float = 0, **fields) -> int:
        now = self.clock()
        self.tasks.append({"description": description, "total": total, "done": completed, "start": now, "start_done": completed,
                           "said_at": now, "said_done": None, "said_tenth": -1, "fields": dict(fields)})
        self._line(self.tasks[-1])
        return len(self.tasks) - 1

    def advance(self, task: int, advance: float = 1) -> None:
        self.update(task, advance=advance)

    def update(self, task: int, completed: float | None = None, advance: float | None = None, **fields) -> None:
        t = self.tasks[task]
        if completed is not None:
            t["done"] = completed
        if advance is not None:
            t["done"] += advance
        t["fields"].update(fields)
        tenth = int(10 * t["done"] / t["total"]) if t["total"] else -1
        if self.clock() - t["said_at"] >= self.every_s or tenth > t["said_tenth"]:
            self._line(t)

    def _line(self, t: dict[str, Any]) -> None:
        now = self.clock()
        done, total = t["done"], t["total"]
        parts = [f"{t['description']}: {done:,.0f}" + (f"/{total:,.0f} ({100 * done / total:.0f}%)" if total else "")]
        if self.extra:
            if "{task.fields[" in self.extra:
                key = self.extra.split("{task.fields[", 1)[1].split("]", 1)[0]
                value = str(t["fields"].get(key, "")).strip()
                if value:
                    parts.append(value)
            else:
                parts[0] += f" {self.extra}"
        elapsed = now - t["start"]
        timing = f"{_clock(elapsed)} elapsed"
        rate = (done - t["start_done"]) / elapsed if elapsed > 0 else 0
        if total and rate > 0 and done < total:
            timing += f", ~{_clock((total - done) / rate)} left"
        parts.append(timing)
        self.stream.write("  ".join(parts) + "\n")
        self.stream.flush()
        t["said_at"], t["said_done"] = now, done
        t["said_tenth"] = int(10 * done / total) if total else -1
