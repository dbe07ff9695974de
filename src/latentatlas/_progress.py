"""One progress-bar style for every long job (training, capture, evaluation)."""

from __future__ import annotations


def progress_bar(enabled: bool, extra: str | None = None):
    """A rich ``Progress``: description, bar, done/total, an optional ``extra`` column (a unit such as
    ``"tokens"``, or a task field such as ``"{task.fields[metrics]}"``), time elapsed and remaining.
    Disabled (silent) when ``enabled`` is false."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    columns = [TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn()]
    if extra:
        columns.append(TextColumn(extra))
    return Progress(*columns, TimeElapsedColumn(), TimeRemainingColumn(), disable=not enabled)
