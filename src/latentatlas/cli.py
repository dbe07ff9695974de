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
from ._cli import ARGV, AtlasOpt, console, esc
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
def _root(version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version and exit.")) -> None:
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
    command.main(args=args, prog_name=f"latentatlas {name}", standalone_mode=True)


@app.command()
def runs(atlas: Optional[str] = AtlasOpt, as_json: bool = typer.Option(False, "--json")) -> None:
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
        console().print(f"no runs in {esc(the_atlas.root)} yet; try `latentatlas train vae --data digits`")
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
    err = console(stderr=True)
    if host not in ("127.0.0.1", "localhost", "::1"):
        err.print(f"[bold yellow]warning:[/] binding {esc(host)}: anyone who can reach this machine can read this atlas")
    console().print(f"serving {esc(root)} at http://{esc(host)}:{port}/  (API docs: http://{esc(host)}:{port}/docs)")
    run_server(root, host=host, port=port)


@app.command()
def demo(
    atlas: Optional[str] = AtlasOpt,
    no_serve: bool = typer.Option(False, "--no-serve", help="Do not start the explorer afterwards."),
    steps: int = typer.Option(_vae_cli.DEMO["steps"], "--steps", min=1, help="Training steps."),
    retrain: bool = typer.Option(False, "--retrain", help="Train again even if the demo run is already complete."),
    n: int = typer.Option(10000, "--n", min=10, help="Samples to evaluate on."),
) -> None:
    """Train a β-TCVAE on procedural sprites, evaluate it and write its figures."""
    from .atlas import Atlas

    the_atlas = Atlas(atlas)
    run = _vae_cli.demo_run(the_atlas, steps=steps, retrain=retrain, n=n)
    if not no_serve:
        from .server import serve as run_server

        console().print(f"\n[bold]explorer:[/] http://127.0.0.1:8765/?run={run.name}&view=map   (Ctrl-C stops it)")
        run_server(the_atlas.root, host="127.0.0.1", port=8765)


def main(argv: Optional[List[str]] = None) -> None:
    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args or os.environ.get("LATENTATLAS_DEBUG") == "1"
    args = [a for a in args if a != "--debug"]
    ARGV[:] = args
    err = console(stderr=True)
    try:
        # Standalone mode: typer itself reports usage errors (exit 2) and --help; we handle the rest.
        app(args=args, prog_name="latentatlas", standalone_mode=True)
        code = 0
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


if __name__ == "__main__":
    main()
