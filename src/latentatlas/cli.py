"""The ``latentatlas`` command: ``demo``, ``serve``, ``runs``, and one sub-app per lab
(``latentatlas vae train|eval``, ``latentatlas sae capture|train|eval|sweep``).

``train``, ``capture`` and ``eval`` at the top level are aliases kept from before the labs: ``train`` is
``vae train``, ``capture`` is ``sae capture``, and ``eval RUN`` hands over to the ``eval`` of the run's lab.

Every error caused by input is one sentence on stderr and exit code 2; ``--debug`` (anywhere on the
command line) shows the traceback instead.
"""

from __future__ import annotations

import json
import os
import sys
from typing import List, Optional

import typer

from . import __version__
from ._cli import ARGV, AtlasOpt, Flag, check_port, console, esc
from .errors import LatentAtlasError
from .labs import LABS, lab_of_kind, part

app = typer.Typer(
    name="latentatlas",
    help="A workbench for understanding latent spaces: train, measure, draw and explore them.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _version(value: bool) -> None:
    if value:
        console().print(f"latentatlas {__version__}")
        raise typer.Exit()


@app.callback()
def _root(version: bool = Flag(False, "--version", callback=_version, is_eager=True, help="Print the version and exit.")) -> None:
    """A workbench for understanding latent spaces: train, measure, draw and explore them."""


# -- one sub-app per lab, and the aliases from before the labs ------------------------------------------
for _name in LABS:
    app.add_typer(part(_name, "cli").app, name=_name)

_vae_cli = part("vae", "cli")
_sae_cli = part("sae", "cli")
app.command("train", help="Alias of `latentatlas vae train`: train an autoencoder-family model.")(_vae_cli.train)
app.command("capture", help="Alias of `latentatlas sae capture`: capture a transformer's activations into a store.")(_sae_cli.capture)


@app.command("eval", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def eval_cmd(
    ctx: typer.Context,
    run: str = typer.Argument(..., help="Run name in the atlas."),
    atlas: Optional[str] = AtlasOpt,
) -> None:
    """Evaluate a run with its lab's `eval` (`vae eval` or `sae eval`; their --help lists the options)."""
    from .atlas import Atlas

    the_run = Atlas(atlas).run(run)
    kind = str(the_run.config().get("kind", "?"))
    name = lab_of_kind(kind)
    if name is None or kind == "sae_sweep":
        raise LatentAtlasError(f"run '{run}' is a {kind}, which has no `eval`" + ("; its frontier is written by `latentatlas sae sweep`" if kind == "sae_sweep" else ""))
    command = typer.main.get_command(part(name, "cli").app)
    args = ["eval", run, *(["--atlas", atlas] if atlas else []), *ctx.args]
    command.main(args=args, prog_name=f"latentatlas {name}", standalone_mode=False)


@app.command()
def runs(atlas: Optional[str] = AtlasOpt, as_json: bool = Flag(False, "--json", help="Print the runs as JSON.")) -> None:
    """List the runs in the atlas."""
    from dataclasses import asdict

    from rich.table import Table

    from .atlas import Atlas

    the_atlas = Atlas(atlas)
    summaries = the_atlas.summaries()
    if as_json:
        sys.stdout.write(json.dumps([asdict(s) for s in summaries], indent=2) + "\n")
        return
    if not summaries:
        console().print(f"no runs in {esc(the_atlas.root)} yet; try `latentatlas vae train vae --data digits`")
        return
    keys = [k for k in ("mig", "dci_disentanglement", "active_units", "kl", "l0", "fvu") if any(k in s.metrics for s in summaries)]
    table = Table(title=esc(the_atlas.root), title_justify="left")
    for col in ["run", "kind", "status", "data", "steps", "created", *keys]:
        table.add_column(col, justify="right" if col in keys or col == "steps" else "left")
    for s in summaries:
        table.add_row(esc(s.name), esc(s.kind), esc(s.status), esc(s.data), str(s.steps or ""), esc(s.created_at.replace("T", " ")[:19]),
                      *[f"{s.metrics[k]:.3g}" if k in s.metrics else "" for k in keys])
    con = console()
    con.print(table)
    for s in summaries:
        if s.error:
            con.print(f"[yellow]{esc(s.name)}:[/] {esc(s.error)}", soft_wrap=True)


@app.command()
def serve(
    atlas_dir: Optional[str] = typer.Argument(None, help="Atlas folder (default: $LATENTATLAS_ATLAS or ./atlas)."),
    host: str = typer.Option("127.0.0.1", "--host", help="Interface to bind; anything but loopback exposes the atlas."),
    port: int = typer.Option(8765, "--port", min=1, max=65535),
) -> None:
    """Serve the atlas's JSON/PNG API (OpenAPI docs at /docs)."""
    from .atlas import resolve_atlas_path
    from .server import serve as run_server

    root = resolve_atlas_path(atlas_dir)
    if not root.is_dir():
        raise LatentAtlasError(f"atlas folder '{root}' does not exist; train a run first or pass the atlas folder")
    check_port(host, port)
    err = console(stderr=True)
    if host not in ("127.0.0.1", "localhost", "::1"):
        err.print(f"[bold yellow]warning:[/] binding {esc(host)}: anyone who can reach this machine can read this atlas")
    console().print(f"serving {esc(root)} at http://{esc(host)}:{port}/  (API docs: http://{esc(host)}:{port}/docs)")
    run_server(root, host=host, port=port)


@app.command()
def demo(
    atlas: Optional[str] = AtlasOpt,
    no_serve: bool = Flag(False, "--no-serve", help="Do not start the explorer afterwards."),
    steps: int = typer.Option(_vae_cli.DEMO["steps"], "--steps", min=1, help="Training steps."),
    retrain: bool = Flag(False, "--retrain", help="Train again even if the demo run is already complete."),
    n: int = typer.Option(10000, "--n", min=10, max=10_000_000, help="Samples to evaluate on."),
    port: int = typer.Option(8765, "--port", min=1, max=65535, help="Port of the explorer afterwards."),
) -> None:
    """Train a β-TCVAE on procedural sprites, evaluate it and write its figures."""
    from .atlas import Atlas

    the_atlas = Atlas(atlas)
    if not no_serve:
        check_port("127.0.0.1", port)  # before minutes of training, not after
    run = _vae_cli.demo_run(the_atlas, steps=steps, retrain=retrain, n=n)
    if not no_serve:
        from .server import serve as run_server

        check_port("127.0.0.1", port)
        console().print(f"\n[bold]explorer:[/] http://127.0.0.1:{port}/?run={run.name}&view=map   (Ctrl-C stops it)")
        run_server(the_atlas.root, host="127.0.0.1", port=port)


def main(argv: Optional[List[str]] = None) -> None:
    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args or os.environ.get("LATENTATLAS_DEBUG") == "1"
    args = [a for a in args if a != "--debug"]
    ARGV[:] = args
    err = console(stderr=True)
    try:
        code = _run(args, err)
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except LatentAtlasError as exc:
        if debug:
            raise
        err.print(f"[bold red]error:[/] {esc(exc)}", soft_wrap=True)
        code = 2
    except KeyboardInterrupt:
        err.print("interrupted")
        code = 130
    except Exception as exc:
        from .trainer import TrainingInterrupted

        if isinstance(exc, TrainingInterrupted):
            err.print(esc(exc))
            code = 130
        elif debug:
            raise
        elif isinstance(exc, OSError) and exc.filename:
            err.print(f"[bold red]error:[/] {esc(exc.strerror or exc)} for '{esc(exc.filename)}'", soft_wrap=True)
            code = 2
        else:
            err.print(f"[bold red]internal error:[/] {exc.__class__.__name__}: {esc(exc)} (rerun with --debug for the traceback)", soft_wrap=True)
            code = 1
    sys.exit(code)


def _run(args: list[str], err) -> int:
    """The app, not standalone: click's usage errors come here, to be said in one line like every other
    error (click would print a usage box); --help and --version end with the code click gives them."""
    try:
        result = app(args=args, prog_name="latentatlas", standalone_mode=False)
        return result if isinstance(result, int) else 0
    except Exception as exc:
        kind = _click_kind(exc)
        if kind is None:
            raise
        if kind == "help":  # a group called without a command: its help, as --help would show
            ctx = getattr(exc, "ctx", None)
            typer.echo(ctx.get_help() if ctx is not None else str(exc))
            return 0
        if kind == "usage":
            err.print(f"[bold red]error:[/] {esc(_usage_sentence(exc))}", soft_wrap=True)
            return 2
        if kind == "exit":
            return int(getattr(exc, "exit_code", 0))
        err.print("interrupted")
        return 130


def _click_kind(exc: BaseException) -> str | None:
    """What a click exception means here ("help", "usage", "exit", "abort"), or None for any other error.
    Typer may bring its own copy of click, so the classes are told by name."""
    names = {c.__name__ for c in type(exc).__mro__}
    if "NoArgsIsHelpError" in names:
        return "help"
    if "UsageError" in names:
        return "usage"
    if "Exit" in names and hasattr(exc, "exit_code"):
        return "exit"
    if "Abort" in names:
        return "abort"
    return None


def _usage_sentence(exc) -> str:
    """click's usage error as one sentence, with the command it was for and where to read more."""
    message = " ".join(exc.format_message().split()).rstrip(".")
    command = exc.ctx.command_path if exc.ctx is not None else "latentatlas"
    return f"{message} (see `{command} --help`)"


if __name__ == "__main__":
    main()
