"""``latentatlas vae train|eval`` (``train`` and ``eval`` at the top level are aliases)."""

from __future__ import annotations

import json
import sys
from typing import Optional

import typer

from ..._cli import AtlasOpt, Flag, check_resume, given, command_line, console, esc, metrics_table, nonempty
from ...errors import LatentAtlasError
from ...limits import MAX_BATCH, MAX_LATENT_DIM, MAX_SEED, MAX_STEPS

app = typer.Typer(help="Autoencoders and VAEs on images or vectors: train, eval.", no_args_is_help=True)

DEMO = dict(kind="beta_tcvae", data="sprites", latent_dim=10, beta=6.0, steps=2500, batch_size=64, lr=1e-3, seed=0)


@app.command()
def train(
    ctx: typer.Context,
    kind: str = typer.Argument(..., help="Model kind: ae, vae, beta_vae or beta_tcvae."),
    data: str = typer.Option("sprites", "--data", callback=nonempty, help="sprites, digits, an image folder, or a .npy/.npz file."),
    latent_dim: int = typer.Option(10, "--latent-dim", min=1, max=MAX_LATENT_DIM, help="Number of latent dimensions."),
    beta: Optional[float] = typer.Option(None, "--beta", help="KL weight (β-VAE) or TC weight (β-TCVAE); default by kind."),
    steps: int = typer.Option(3000, "--steps", min=1, max=MAX_STEPS),
    batch_size: int = typer.Option(64, "--batch-size", min=1, max=MAX_BATCH),
    lr: float = typer.Option(1e-3, "--lr"),
    seed: int = typer.Option(0, "--seed", min=0, max=MAX_SEED),
    name: Optional[str] = typer.Option(None, "--name", callback=nonempty, help="Run name (default: KIND-DATA)."),
    atlas: Optional[str] = AtlasOpt,
    resume: bool = Flag(False, "--resume", help="Continue the run --name from its latest checkpoint."),
    learned_variance: bool = Flag(False, "--learned-variance", help="Gaussian decoder with a learned variance (Dai & Wipf 2019)."),
    checkpoint_every: int = typer.Option(500, "--checkpoint-every", min=1, max=MAX_STEPS),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda, cuda:N or mps."),
    quiet: bool = Flag(False, "--quiet", help="No progress bar."),
) -> None:
    """Train an autoencoder-family model and store it as a run in the atlas."""
    from .jobs import train_run

    if resume and name:
        _check_resume(ctx, kind, name, atlas)

    run, result = train_run(
        kind, data, latent_dim=latent_dim, beta=beta, steps=steps, batch_size=batch_size, lr=lr, seed=seed,
        name=name, atlas=atlas, resume=resume, learned_variance=learned_variance,
        checkpoint_every=checkpoint_every, device=device, progress=not quiet,
    )
    how = f" (resumed from step {result.resumed_from})" if result.resumed_from is not None else ""
    console().print(f"trained [bold]{esc(run.name)}[/] for {result.steps_done} steps{how} in {result.seconds:.1f} s → {esc(run.path)}")


def _check_resume(ctx, kind: str, name: str, atlas: str | None) -> None:
    from pathlib import Path

    from ...atlas import Atlas
    from ...data import NAMES

    cfg = Atlas(atlas).run(name).config()
    train, model, data = (cfg.get(k) if isinstance(cfg.get(k), dict) else {} for k in ("train", "model", "data"))
    typed = given(ctx, "data", "latent_dim", "beta", "steps", "batch_size", "lr", "seed", "learned_variance", "checkpoint_every")
    diffs = [("KIND", kind, cfg.get("kind"))]
    if "data" in typed:
        stored = data.get("kind") if data.get("kind") in NAMES and "path" not in data else data.get("path")
        same = (typed["data"] == stored if typed["data"] in NAMES or stored in NAMES
                else Path(typed["data"]).expanduser().resolve() == Path(str(stored)).expanduser().resolve())
        diffs.append(("--data", typed["data"], typed["data"] if same else stored))
    for key, section in (("latent_dim", model), ("beta", model), ("learned_variance", model), ("steps", train), ("batch_size", train),
                         ("lr", train), ("seed", train), ("checkpoint_every", train)):
        if key in typed:
            diffs.append(("--" + key.replace("_", "-"), typed[key], section.get(key)))
    check_resume(name, diffs)


@app.command("eval")
def eval_cmd(
    run: str = typer.Argument(..., help="Run name in the atlas."),
    atlas: Optional[str] = AtlasOpt,
    as_json: bool = Flag(False, "--json", help="Print the metrics as JSON instead of a table."),
    n: int = typer.Option(10000, "--n", min=10, max=10_000_000, help="Number of samples to evaluate on."),
    seed: int = typer.Option(0, "--seed", min=0, max=MAX_SEED),
    projections: str = typer.Option("pca", "--projections", help="Comma-separated: pca, umap, tsne."),
    full: bool = Flag(False, "--full", help="BetaVAE/FactorVAE with disentanglement_lib's full sample sizes (slow)."),
    quiet: bool = Flag(False, "--quiet", help="No progress output."),
) -> None:
    """Measure a run: reconstruction, KL, active units, disentanglement; write metrics.json and figures."""
    from ...atlas import Atlas
    from .jobs import evaluate_run

    methods = [m.strip() for m in projections.split(",") if m.strip()]
    bad = [m for m in methods if m not in ("pca", "umap", "tsne")]
    if bad:
        raise LatentAtlasError(f"--projections got '{', '.join(bad)}'; expected a comma-separated list of pca, umap, tsne")
    the_run = Atlas(atlas).run(run)
    report = evaluate_run(the_run, n=n, seed=seed, projections=methods, full=full, progress=not (quiet or as_json), command=command_line())
    if as_json:
        sys.stdout.write(json.dumps(report, indent=2) + "\n")
    else:
        print_report(report, the_run)


@app.command("import")
def import_cmd(
    vectors: str = typer.Argument(..., help="Vectors: .npy (N×D), .safetensors (one 2-D tensor, or --key), .parquet/.csv (numeric columns, or --key)."),
    meta: Optional[str] = typer.Option(None, "--meta", callback=nonempty, help="Metadata table (.parquet/.csv), one row per vector."),
    key: Optional[str] = typer.Option(None, "--key", callback=nonempty, help="The tensor (safetensors) or list column (parquet/csv) holding the vectors."),
    name: Optional[str] = typer.Option(None, "--name", callback=nonempty, help="Run name (default: embeddings-FILE)."),
    projections: str = typer.Option("pca", "--projections", help="Comma-separated: pca, umap, tsne (others can be computed from the map)."),
    seed: int = typer.Option(0, "--seed", min=0, max=MAX_SEED),
    atlas: Optional[str] = AtlasOpt,
) -> None:
    """Load your own embeddings (and a metadata table) as a run for the map, without training anything."""
    from .jobs import import_embeddings

    methods = [m.strip() for m in projections.split(",") if m.strip()]
    run = import_embeddings(vectors, meta, key=key, name=name, atlas=atlas, projections=methods, seed=seed)
    con = console()
    report = run.read_metrics() or {}
    for note in report.get("notes", []):
        con.print(f"[yellow]note:[/] {esc(note)}")
    con.print(f"imported → {esc(run.path)}; open it with `latentatlas serve` (map: ?run={esc(run.name)}&view=map)")


def print_report(report: dict, run) -> None:
    con = console()
    metrics_table(f"{run.name} — {report['n']} samples", report["metrics"], con)
    for note in report.get("notes", []):
        con.print(f"[yellow]note:[/] {esc(note)}")
    con.print(f"metrics → {esc(run.path / 'metrics.json')}")
    con.print(f"figures → {esc(run.figures_dir)}")


def demo_run(atlas, steps: int, retrain: bool, n: int):
    """Train (or reuse, or finish) the demo's β-TCVAE on sprites and evaluate it; returns the run."""
    from ...atlas import Atlas
    from .jobs import evaluate_run, train_run

    the_atlas = atlas if isinstance(atlas, Atlas) else Atlas(atlas)
    con = console()
    name = "demo"
    settings = {k: v for k, v in DEMO.items() if k != "kind"}
    settings["steps"] = steps
    run = None
    if the_atlas.has_run(name) and not retrain:
        existing = the_atlas.run(name)
        cfg = existing.config()
        if cfg.get("kind") == DEMO["kind"] and (cfg.get("train") or {}).get("steps") == steps:
            if existing.has_model:
                con.print(f"the demo run is already trained ({esc(existing.path)}); pass --retrain to train it again")
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
    print_report(report, run)
    con.print(f"\n[bold]demo figures:[/] {esc(run.figures_dir)}")
    for p in sorted(run.figures_dir.glob("*.png")):
        con.print(f"  {esc(p)}")
    return run
