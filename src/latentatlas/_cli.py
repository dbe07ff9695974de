"""What every command shares: the console, the ``--atlas`` option, the command line as typed (recorded
in metrics.json as provenance) and the metrics table. Used by the root ``cli.py`` and each lab's
``cli.py``; it imports nothing of the labs."""

from __future__ import annotations

import typer

AtlasOpt = typer.Option(None, "--atlas", help="Atlas folder (default: $LATENTATLAS_ATLAS or ./atlas).")

ARGV: list[str] = []  # the arguments of this invocation, set by cli.main


def command_line() -> str:
    return " ".join(["latentatlas", *ARGV])


def console(stderr: bool = False):
    from rich.console import Console

    return Console(stderr=stderr, highlight=False)


def esc(text: object) -> str:
    """Paths and messages may hold '[' and ']': never let rich read them as markup."""
    from rich.markup import escape

    return escape(str(text))


def metrics_table(title: str, metrics: dict, console_=None) -> None:
    """A metric → value → 95% CI table, as ``eval`` prints it."""
    from rich.table import Table

    table = Table(title=title, title_justify="left")
    for col, just in (("metric", "left"), ("value", "right"), ("95% CI", "right")):
        table.add_column(col, justify=just)
    for key, m in metrics.items():
        ci = "" if m.get("ci_low") is None else f"[{m['ci_low']:.4g}, {m['ci_high']:.4g}]"
        table.add_row(esc(key), f"{m['value']:.4g}", ci)
    (console_ or console()).print(table)

