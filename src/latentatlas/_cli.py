"""What every command shares: the console, the ``--atlas`` option, the command line as typed (recorded
in metrics.json as provenance) and the metrics table. Used by the root ``cli.py`` and each lab's
``cli.py``; it imports nothing of the labs."""

from __future__ import annotations

import os

import typer

from .errors import LatentAtlasError


def _atlas_option(value):
    """``--atlas ''`` would fall back to ./atlas without a word, and a file is no atlas."""
    if value is None:
        return value
    if not value.strip():
        raise typer.BadParameter("is empty; expected an atlas folder")
    from pathlib import Path

    if Path(value).expanduser().exists() and not Path(value).expanduser().is_dir():
        raise typer.BadParameter(f"'{value}' is a file; expected an atlas folder")
    return value


def nonempty(value):
    """An option that names something (``--name``, ``--activations``) may be left out, never given empty."""
    if value is not None and not str(value).strip():
        raise typer.BadParameter("is empty; leave the option out for the default, or give a value")
    return value


def given(ctx, *names: str) -> dict:
    """The options among ``names`` the user typed (on the command line or through the environment), not
    left at their defaults: what ``--resume`` must compare with the stored run."""
    out = {}
    for name in names:
        source = ctx.get_parameter_source(name)
        if source is not None and source.name in ("COMMANDLINE", "ENVIRONMENT"):
            out[name] = ctx.params[name]
    return out


def check_resume(run_name: str, differences: list[tuple[str, object, object]]) -> None:
    """``--resume`` continues a run with its stored settings: an option typed with another value is said,
    not silently replaced by the stored one. ``differences``: (option, typed, stored)."""
    bad = [f"{opt} {typed} (the run has {stored})" for opt, typed, stored in differences if typed != stored]
    if bad:
        raise LatentAtlasError(f"--resume continues run '{run_name}' with its stored settings, but the command line asks for "
                               f"{'; '.join(bad)}; leave {'them' if len(bad) > 1 else 'it'} out to continue the run, or train a new run "
                               "under another --name")


def Flag(default: bool, *names: str, help: str, **kw):
    """An on/off option, shown in help as a flag (this typer prints ``<bool>`` beside a flag otherwise)."""
    return typer.Option(default, *names, help=help, metavar="", **kw)


AtlasOpt = typer.Option(None, "--atlas", callback=_atlas_option, help="Atlas folder (default: $LATENTATLAS_ATLAS or ./atlas).")

ARGV: list[str] = []  # the arguments of this invocation, set by cli.main


def command_line() -> str:
    return " ".join(["latentatlas", *ARGV])


def console(stderr: bool = False):
    from rich.console import Console

    con = Console(stderr=stderr, highlight=False)
    if not con.is_terminal and "COLUMNS" not in os.environ:
        con.width = 200  # into a file or a pipe: no 80-column truncation of tables ("stat…")
    return con


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


def check_port(host: str, port: int) -> None:
    """One sentence, before uvicorn starts, when ``host`` does not resolve or ``port`` is taken."""
    import socket

    if not host.strip():
        raise LatentAtlasError("--host is empty; expected an interface such as 127.0.0.1 (or 0.0.0.0 for every interface)")
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError):
        raise LatentAtlasError(f"--host '{host}' is not a name or address of this machine") from None
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as s:
        try:
            s.bind(address)
        except PermissionError:
            raise LatentAtlasError(f"port {port} on {host} needs privileges this process does not have; pass another --port") from None
        except OSError as exc:
            if exc.errno in (98, 48, 10048):  # EADDRINUSE on Linux, macOS, Windows
                raise LatentAtlasError(f"port {port} on {host} is already in use (another server?); pass another --port") from None
            raise LatentAtlasError(f"cannot serve on {host}:{port} ({exc.strerror or exc})") from None


def open_explorer(atlas_root, query: str, port: int = 8765, host: str = "127.0.0.1") -> None:
    """Serve the atlas and print the explorer's address for ``query`` (e.g. ``run=x&view=head``) until Ctrl-C."""
    from .server import serve as run_server

    check_port(host, port)
    console().print(f"\n[bold]explorer:[/] http://{esc(host)}:{port}/?{esc(query)}   (Ctrl-C stops it)")
    run_server(atlas_root, host=host, port=port)
