"""The ``latentatlas`` command.

Every error caused by input is one sentence on stderr and exit code 2; ``--debug`` (anywhere on the
command line) shows the traceback instead.
"""

from __future__ import annotations

import json
import os
import sys
from typing import List, Optional

import typer

from .errors import LatentAtlasError

app = typer.Typer(
    name="latentatlas",
    help="A workbench for understanding latent spaces: train, measure, draw and explore them.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

AtlasOpt = typer.Option(None, "--atlas", help="Atlas folder (default: $LATENTATLAS_ATLAS or ./atlas).")
DEMO = dict(kind="beta_tcvae", data="sprites", latent_dim=10, beta=6.0, steps=2500, batch_size=64, lr=1e-3, seed=0)


_ARGV: list[str] = []


def _console(stderr: bool = False):
    from rich.console import Console

    return Console(stderr=stderr, highlight=False)


def _esc(text: object) -> str:
    """Paths and messages may hold '[' and ']': never let rich read them as markup."""
    from rich.markup import escape

    return escape(str(text))


@app.command()
def train(
    kind: str = typer.Argument(..., help="Model kind: ae, vae, beta_vae or beta_tcvae."),
    data: str = typer.Option("sprites", "--data", help="sprites, digits, an image folder, or a .npy/.npz file."),
    latent_dim: int = typer.Option(10, "--latent-dim", min=1, help="Number of latent dimensions."),
    beta: Optional[float] = typer.Option(None, "--beta", help="KL weight (β-VAE) or TC weight (β-TCVAE); default by kind."),
    steps: int = typer.Option(3000, "--steps", min=1),
    batch_size: int = typer.Option(64, "--batch-size", min=1),
    lr: float = typer.Option(1e-3, "--lr"),
    seed: int = typer.Option(0, "--seed"),
    name: Optional[str] = typer.Option(None, "--name", help="Run name (default: KIND-DATA)."),
    atlas: Optional[str] = AtlasOpt,
    resume: bool = typer.Option(False, "--resume", help="Continue the run --name from its latest checkpoint."),
    learned_variance: bool = typer.Option(False, "--learned-variance", help="Gaussian decoder with a learned variance (Dai & Wipf 2019)."),
    checkpoint_every: int = typer.Option(500, "--checkpoint-every", min=1),
    device: str = typer.Option("auto", "--device", help="auto, cpu or cuda."),
    quiet: bool = typer.Option(False, "--quiet", help="No progress bar."),
) -> None:
    """Train an autoencoder-family model and store it as a run in the atlas."""
    from .runs import train_run

    if beta is not None and beta < 0:
        raise LatentAtlasError(f"--beta must be >= 0, got {beta}")
    run, result = train_run(
        kind, data, latent_dim=latent_dim, beta=beta, steps=steps, batch_size=batch_size, lr=lr, seed=seed,
        name=name, atlas=atlas, resume=resume, learned_variance=learned_variance,
        checkpoint_every=checkpoint_every, device=device, progress=not quiet,
    )
    how = f" (resumed from step {result.resumed_from})" if result.resumed_from is not None else ""
    _console().print(f"trained [bold]{_esc(run.name)}[/] for {result.steps_done} steps{how} in {result.seconds:.1f} s → {_esc(run.path)}")


@app.command("eval")
def eval_cmd(
    run: str = typer.Argument(..., help="Run name in the atlas."),
    atlas: Optional[str] = AtlasOpt,
    as_json: bool = typer.Option(False, "--json", help="Print the metrics as JSON instead of a table."),
    n: int = typer.Option(10000, "--n", min=10, help="Number of samples to evaluate on."),
    seed: int = typer.Option(0, "--seed"),
    projections: str = typer.Option("pca", "--projections", help="Comma-separated: pca, umap, tsne."),
    full: bool = typer.Option(False, "--full", help="BetaVAE/FactorVAE with disentanglement_lib's full sample sizes (slow)."),
    quiet: bool = typer.Option(False, "--quiet", help="No progress output."),
) -> None:
    """Measure a run: reconstruction, KL, active units, disentanglement; write metrics.json and figures."""
    from .atlas import Atlas
    from .evaluate import evaluate_run

    methods = [m.strip() for m in projections.split(",") if m.strip()]
    bad = [m for m in methods if m not in ("pca", "umap", "tsne")]
    if bad:
        raise LatentAtlasError(f"--projections got '{', '.join(bad)}'; expected a comma-separated list of pca, umap, tsne")
    the_run = Atlas(atlas).run(run)
    report = evaluate_run(the_run, n=n, seed=seed, projections=methods, full=full, progress=not (quiet or as_json),
                          command=" ".join(["latentatlas", *_ARGV]))
    if as_json:
        sys.stdout.write(json.dumps(report, indent=2) + "\n")
    else:
        _print_report(report, the_run)


def _print_report(report: dict, run) -> None:
    from rich.table import Table

    table = Table(title=f"{run.name} — {report['n']} samples", title_justify="left")
    table.add_column("metric")
    table.add_column("value", justify="right")
    table.add_column("95% CI", justify="right")
    for name, m in report["metrics"].items():
        ci = "" if m.get("ci_low") is None else f"[{m['ci_low']:.4g}, {m['ci_high']:.4g}]"
        table.add_row(name, f"{m['value']:.4g}", ci)
    con = _console()
    con.print(table)
    con.print(f"metrics → {_esc(run.path / 'metrics.json')}")
    con.print(f"figures → {_esc(run.figures_dir)}")


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
        _console().print(f"no runs in {_esc(the_atlas.root)} yet; try `latentatlas train vae --data digits`")
        return
    keys = [k for k in ("mig", "dci_disentanglement", "active_units", "kl") if any(k in s.metrics for s in summaries)]
    table = Table(title=str(the_atlas.root), title_justify="left")
    for col in ["run", "kind", "data", "steps", "created", *keys]:
        table.add_column(col, justify="right" if col in keys or col == "steps" else "left")
    for s in summaries:
        table.add_row(s.name, s.kind, s.data, str(s.steps or ""), s.created_at.replace("T", " ")[:19],
                      *[f"{s.metrics[k]:.3g}" if k in s.metrics else "" for k in keys])
    _console().print(table)


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
    err = _console(stderr=True)
    if host not in ("127.0.0.1", "localhost", "::1"):
        err.print(f"[bold yellow]warning:[/] binding {_esc(host)}: anyone who can reach this machine can read this atlas")
    _console().print(f"serving {_esc(root)} at http://{_esc(host)}:{port}/  (API docs: http://{_esc(host)}:{port}/docs)")
    run_server(root, host=host, port=port)


@app.command()
def demo(
    atlas: Optional[str] = AtlasOpt,
    no_serve: bool = typer.Option(False, "--no-serve", help="Do not start the explorer afterwards."),
    steps: int = typer.Option(DEMO["steps"], "--steps", min=1, help="Training steps."),
    retrain: bool = typer.Option(False, "--retrain", help="Train again even if the demo run is already complete."),
    n: int = typer.Option(10000, "--n", min=10, help="Samples to evaluate on."),
) -> None:
    """Train a β-TCVAE on procedural sprites, evaluate it and write its figures."""
    from .atlas import Atlas
    from .evaluate import evaluate_run
    from .runs import train_run

    the_atlas = Atlas(atlas)
    con = _console()
    name = "demo"
    settings = {k: v for k, v in DEMO.items() if k != "kind"}
    settings["steps"] = steps
    run = None
    if the_atlas.has_run(name) and not retrain:
        existing = the_atlas.run(name)
        cfg = existing.config()
        if cfg.get("kind") == DEMO["kind"] and (cfg.get("train") or {}).get("steps") == steps:
            if existing.has_model:
                con.print(f"the demo run is already trained ({_esc(existing.path)}); pass --retrain to train it again")
                run = existing
            elif existing.has_checkpoint:
                con.print("continuing the unfinished demo run from its checkpoint")
                run, _ = train_run(DEMO["kind"], name=name, atlas=the_atlas, resume=True)
    if run is None:
        if the_atlas.has_run(name):
            if the_atlas.run(name).config().get("origin") != "demo":
                raise LatentAtlasError(f"atlas '{the_atlas.root}' has a run named 'demo' that the demo did not create; "
                                       "rename it or use another --atlas")
            the_atlas.delete_run(name)
        con.print(f"training a β-TCVAE (β={DEMO['beta']}, {DEMO['latent_dim']} latents) on procedural sprites for {steps} steps")
        run, _ = train_run(DEMO["kind"], **settings, name=name, atlas=the_atlas, origin="demo")
    report = evaluate_run(run, n=n, seed=0, projections=["pca"], progress=True, command="latentatlas demo")
    _print_report(report, run)
    con.print(f"\n[bold]demo figures:[/] {_esc(run.figures_dir)}")
    for p in sorted(run.figures_dir.glob("*.png")):
        con.print(f"  {_esc(p)}")
    if not no_serve:
        from .server import serve as run_server

        con.print(f"\n[bold]explorer:[/] http://127.0.0.1:8765/?run={name}&view=map   (Ctrl-C stops it)")
        run_server(the_atlas.root, host="127.0.0.1", port=8765)


# -- the SAE lab ----------------------------------------------------------------------------------------
sae_app = typer.Typer(help="Sparse autoencoders on captured activations: train, eval.", no_args_is_help=True)
app.add_typer(sae_app, name="sae")


@app.command()
def capture(
    model: str = typer.Option("minilm", "--model", help="minilm (built in, offline), a transformers model folder, or a hub id."),
    layer: str = typer.Option("3", "--layer", help="Block number (its output, the residual stream) or a dotted module name."),
    corpus: str = typer.Option("builtin", "--corpus", help="builtin (Python stdlib docstrings), a .txt/.md file or folder, or a .jsonl file."),
    text_field: str = typer.Option("text", "--text-field", help="The text field of a .jsonl corpus."),
    tokens: int = typer.Option(100_000, "--tokens", min=1, help="How many token activations to store."),
    name: Optional[str] = typer.Option(None, "--name", help="Store name (default: MODEL-LLAYER-CORPUS)."),
    atlas: Optional[str] = AtlasOpt,
    batch_size: int = typer.Option(32, "--batch-size", min=1, help="Documents per forward pass."),
    max_length: int = typer.Option(128, "--max-length", min=2, help="Tokens per document at most (longer ones are truncated)."),
    keep_special: bool = typer.Option(False, "--keep-special", help="Also store [CLS]/[SEP]/BOS-style special tokens."),
    shard_tokens: int = typer.Option(32768, "--shard-tokens", min=1, help="Tokens per shard (memory is bounded by one shard plus one batch)."),
    resume: bool = typer.Option(False, "--resume", help="Continue the store --name from its last shard."),
    device: str = typer.Option("auto", "--device", help="auto, cpu or cuda."),
    quiet: bool = typer.Option(False, "--quiet", help="No progress bar."),
) -> None:
    """Capture a transformer's activations at one layer over a corpus into a sharded store."""
    from .atlas import Atlas
    from .sae_runs import capture_store

    the_atlas = Atlas(atlas)
    try:
        store = capture_store(model, layer, corpus, tokens, name, the_atlas, text_field=text_field, batch_size=batch_size,
                              max_length=max_length, keep_special=keep_special, shard_tokens=shard_tokens, resume=resume,
                              device=device, progress=not quiet)
    except KeyboardInterrupt:
        raise LatentAtlasError("capture interrupted; the shards written so far are kept: continue with the same command and --resume") from None
    norm = store.index.get("norm", {})
    _console().print(f"captured [bold]{store.n_tokens:,}[/] tokens × {store.d} at {_esc(store.index['layer'])} in "
                     f"{len(store.shards)} shards ({store.index.get('seconds', 0):.1f} s); median norm {norm.get('median', 0):.3g}, "
                     f"{norm.get('outliers', 0)} outlier tokens → {_esc(store.path)}")
    if store.index.get("exhausted"):
        _console().print(f"[yellow]note:[/] the corpus ran out before {tokens:,} tokens")


@sae_app.command("train")
def sae_train(
    activations: str = typer.Option(..., "--activations", help="Activation store name (from `latentatlas capture`)."),
    arch: str = typer.Option("topk", "--arch", help="topk, batchtopk, jumprelu or relu."),
    expansion: int = typer.Option(8, "--expansion", min=1, help="Latents per input dimension."),
    k: int = typer.Option(32, "--k", min=1, help="Active latents per token (topk, batchtopk)."),
    steps: int = typer.Option(2000, "--steps", min=1),
    batch_size: int = typer.Option(4096, "--batch-size", min=1, help="Tokens per step."),
    lr: float = typer.Option(2e-3, "--lr"),
    grad_clip: float = typer.Option(1.0, "--grad-clip", min=0, help="Clip the gradient's global norm to this (0: no clipping)."),
    l1_coeff: Optional[float] = typer.Option(None, "--l1-coeff", help="relu: L1 weight λ (default 5)."),
    l0_coeff: Optional[float] = typer.Option(None, "--l0-coeff", help="jumprelu: L0 weight λ (default 0.5)."),
    holdout_shards: Optional[int] = typer.Option(None, "--holdout-shards", help="Shards kept for eval (default: the last shards holding 5% of the tokens, if the store has ≥ 5)."),
    seed: int = typer.Option(0, "--seed"),
    name: Optional[str] = typer.Option(None, "--name", help="Run name (default: sae-ARCH-STORE)."),
    atlas: Optional[str] = AtlasOpt,
    resume: bool = typer.Option(False, "--resume", help="Continue the run --name from its latest checkpoint."),
    checkpoint_every: int = typer.Option(500, "--checkpoint-every", min=1),
    device: str = typer.Option("auto", "--device", help="auto, cpu or cuda."),
    quiet: bool = typer.Option(False, "--quiet", help="No progress bar."),
) -> None:
    """Train a sparse autoencoder on a stored set of activations."""
    from .sae_runs import train_sae

    if resume and not name:
        raise LatentAtlasError("--resume needs --name to say which SAE run to continue")
    run, result = train_sae(activations, arch, expansion=expansion, k=k, steps=steps, batch_size=batch_size, lr=lr,
                            grad_clip=grad_clip or None, l1_coeff=l1_coeff, l0_coeff=l0_coeff, holdout_shards=holdout_shards, seed=seed, name=name,
                            atlas=atlas, resume=resume, checkpoint_every=checkpoint_every, device=device, progress=not quiet)
    how = f" (resumed from step {result.resumed_from})" if result.resumed_from is not None else ""
    last = "  ".join(f"{k_} {v:.3g}" for k_, v in result.last.items() if k_ in ("l0", "fvu", "dead"))
    _console().print(f"trained [bold]{_esc(run.name)}[/] for {result.steps_done} steps{how} in {result.seconds:.1f} s ({last}) → {_esc(run.path)}")


@sae_app.command("sweep")
def sae_sweep(
    activations: str = typer.Option(..., "--activations", help="Activation store name."),
    arch: str = typer.Option("topk", "--arch", help="topk, batchtopk (sweep --k), relu (--l1-coeff) or jumprelu (--l0-coeff)."),
    values: str = typer.Option(..., "--values", help="Comma-separated values of the arch's sparsity knob, e.g. 8,16,32,64."),
    expansion: int = typer.Option(8, "--expansion", min=1),
    steps: int = typer.Option(2000, "--steps", min=1),
    batch_size: int = typer.Option(4096, "--batch-size", min=1),
    lr: float = typer.Option(2e-3, "--lr"),
    downstream: bool = typer.Option(False, "--downstream", help="Also splice each SAE into the model (slower)."),
    name: Optional[str] = typer.Option(None, "--name", help="Sweep name (default: sweep-ARCH-STORE); members are NAME-k8 …"),
    atlas: Optional[str] = AtlasOpt,
    as_json: bool = typer.Option(False, "--json", help="Print the frontier as JSON."),
    quiet: bool = typer.Option(False, "--quiet", help="No progress bars."),
) -> None:
    """Train and evaluate one SAE per value and draw the L0/rate-vs-FVU frontier (resumable)."""
    from .sae_runs import sweep_sae

    try:
        vals = [float(v) for v in values.split(",") if v.strip()]
    except ValueError:
        raise LatentAtlasError(f"--values '{values}' is not a comma-separated list of numbers") from None
    report = sweep_sae(activations, arch, vals, name=name, atlas=atlas, downstream=downstream, progress=not (quiet or as_json),
                       command=" ".join(["latentatlas", *_ARGV]), expansion=expansion, steps=steps, batch_size=batch_size, lr=lr)
    if as_json:
        sys.stdout.write(json.dumps(report, indent=2) + "\n")
        return
    from rich.table import Table

    table = Table(title=f"{report['run']}: {arch} over {report['param']}", title_justify="left")
    for col in ("run", "L0", "FVU", "95% CI", "rate (bits)", "dead"):
        table.add_column(col, justify="left" if col == "run" else "right")
    for p in report["frontier"]:
        ci = "" if p["fvu_low"] is None else f"[{p['fvu_low']:.4g}, {p['fvu_high']:.4g}]"
        table.add_row(p["run"], f"{p['l0']:.3g}", f"{p['fvu']:.4g}", ci, f"{p['rate_bits']:.4g}", f"{p['dead_fraction']:.3g}")
    con = _console()
    con.print(table)
    con.print(f"figure → {_esc(report['figures']['rate_distortion'])}")


@sae_app.command("eval")
def sae_eval(
    run: str = typer.Argument(..., help="SAE run name."),
    activations: Optional[str] = typer.Option(None, "--activations", help="Evaluate on another store (default: the run's held-out shards)."),
    tokens: int = typer.Option(200_000, "--tokens", min=1, help="Evaluate on at most this many tokens."),
    feature_tokens: int = typer.Option(200_000, "--feature-tokens", min=1, help="Tokens (from the store's start) the feature tables scan."),
    downstream: bool = typer.Option(True, "--downstream/--no-downstream", help="Splice the SAE into the model (embedding cosine, CE recovered)."),
    atlas: Optional[str] = AtlasOpt,
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON instead of a table."),
    seed: int = typer.Option(0, "--seed"),
    device: str = typer.Option("auto", "--device", help="auto, cpu or cuda."),
    quiet: bool = typer.Option(False, "--quiet", help="No progress output."),
) -> None:
    """Measure an SAE: L0, MSE, FVU (centred), cosine, shrinkage, dead and dense latents; write metrics.json."""
    from .atlas import Atlas
    from .sae_runs import evaluate_sae

    the_run = Atlas(atlas).run(run)
    report = evaluate_sae(the_run, activations=activations, tokens=tokens, seed=seed, device=device,
                          feature_tokens=feature_tokens, downstream=downstream, command=" ".join(["latentatlas", *_ARGV]), progress=not (quiet or as_json))
    if as_json:
        sys.stdout.write(json.dumps(report, indent=2) + "\n")
        return
    from rich.table import Table

    table = Table(title=f"{the_run.name} — {report['n']:,} tokens of {report['activations']}", title_justify="left")
    for col, just in (("metric", "left"), ("value", "right"), ("95% CI", "right")):
        table.add_column(col, justify=just)
    for key, m in report["metrics"].items():
        ci = "" if m.get("ci_low") is None else f"[{m['ci_low']:.4g}, {m['ci_high']:.4g}]"
        table.add_row(key, f"{m['value']:.4g}", ci)
    con = _console()
    con.print(table)
    for note in report["notes"]:
        con.print(f"[yellow]note:[/] {_esc(note)}")
    con.print(f"metrics → {_esc(the_run.path / 'metrics.json')}")


def main(argv: Optional[List[str]] = None) -> None:
    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args or os.environ.get("LATENTATLAS_DEBUG") == "1"
    args = [a for a in args if a != "--debug"]
    _ARGV[:] = args
    err = _console(stderr=True)
    try:
        # Standalone mode: typer itself reports usage errors (exit 2) and --help; we handle the rest.
        app(args=args, prog_name="latentatlas", standalone_mode=True)
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except LatentAtlasError as exc:
        if debug:
            raise
        err.print(f"[bold red]error:[/] {_esc(exc)}", soft_wrap=True)
        code = 2
    except KeyboardInterrupt:
        err.print("interrupted")
        code = 130
    except Exception as exc:
        from .train import TrainingInterrupted

        if isinstance(exc, TrainingInterrupted):
            err.print(_esc(exc))
            code = 130
        elif debug:
            raise
        elif isinstance(exc, OSError) and exc.filename:
            err.print(f"[bold red]error:[/] {_esc(exc.strerror or exc)} for '{_esc(exc.filename)}'", soft_wrap=True)
            code = 2
        else:
            err.print(f"[bold red]internal error:[/] {exc.__class__.__name__}: {_esc(exc)} (rerun with --debug for the traceback)", soft_wrap=True)
            code = 1
    sys.exit(code)


if __name__ == "__main__":
    main()
