"""``latentatlas sae capture|train|import|eval|sweep`` (``capture`` at the top level is an alias)."""

from __future__ import annotations

import json
import sys
from typing import Optional

import typer

from ..._cli import AtlasOpt, Flag, check_resume, given, command_line, console, esc, metrics_table, nonempty
from ...errors import LatentAtlasError
from ...limits import MAX_BATCH, MAX_EXPANSION, MAX_SEED, MAX_STEPS, MAX_TOKENS

app = typer.Typer(help="Sparse autoencoders on captured transformer activations: capture, train, import, eval, sweep.", no_args_is_help=True)


@app.command()
def capture(
    model: str = typer.Option("minilm", "--model", callback=nonempty, help="minilm (built in, offline), a transformers model folder, or a hub id."),
    layer: str = typer.Option("3", "--layer", callback=nonempty, help="Block number (its output, the residual stream) or a dotted module name."),
    corpus: str = typer.Option("builtin", "--corpus", callback=nonempty, help="builtin (Python stdlib docstrings), a .txt/.md file or folder, or a .jsonl file."),
    text_field: str = typer.Option("text", "--text-field", callback=nonempty, help="The text field of a .jsonl corpus."),
    tokens: int = typer.Option(100_000, "--tokens", min=1, max=MAX_TOKENS, help="How many token activations to store."),
    name: Optional[str] = typer.Option(None, "--name", callback=nonempty, help="Store name (default: MODEL-LLAYER-CORPUS)."),
    atlas: Optional[str] = AtlasOpt,
    batch_size: int = typer.Option(32, "--batch-size", min=1, max=4096, help="Documents per forward pass."),
    max_length: int = typer.Option(128, "--max-length", min=2, max=1 << 20, help="Tokens per document at most (longer ones are truncated)."),
    keep_special: bool = Flag(False, "--keep-special", help="Also store [CLS]/[SEP]/BOS-style special tokens."),
    shard_tokens: int = typer.Option(32768, "--shard-tokens", min=1, max=1 << 24, help="Tokens per shard (memory is bounded by one shard plus one batch)."),
    resume: bool = Flag(False, "--resume", help="Continue the store --name from its last shard."),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda, cuda:N or mps."),
    quiet: bool = Flag(False, "--quiet", help="No progress bar."),
) -> None:
    """Capture a transformer's activations at one layer over a corpus into a sharded store."""
    from ...atlas import Atlas
    from .jobs import capture_store

    the_atlas = Atlas(atlas)
    try:
        store = capture_store(model, layer, corpus, tokens, name, the_atlas, text_field=text_field, batch_size=batch_size,
                              max_length=max_length, keep_special=keep_special, shard_tokens=shard_tokens, resume=resume,
                              device=device, progress=not quiet)
    except KeyboardInterrupt:
        raise LatentAtlasError("capture interrupted; the shards written so far are kept: continue with the same command and --resume") from None
    norm = store.index.get("norm", {})
    console().print(f"captured [bold]{store.n_tokens:,}[/] tokens × {store.d} at {esc(store.index['layer'])} in "
                     f"{len(store.shards)} shards ({store.index.get('seconds', 0):.1f} s); median norm {norm.get('median', 0):.3g}, "
                     f"{norm.get('outliers', 0)} outlier tokens → {esc(store.path)}")
    if store.index.get("exhausted"):
        console().print(f"[yellow]note:[/] the corpus ran out before {tokens:,} tokens")


@app.command("train")
def sae_train(
    ctx: typer.Context,
    activations: str = typer.Option(..., "--activations", callback=nonempty, help="Activation store name (from `latentatlas capture`)."),
    arch: str = typer.Option("topk", "--arch", help="topk, batchtopk, jumprelu or relu."),
    expansion: int = typer.Option(8, "--expansion", min=1, max=MAX_EXPANSION, help="Latents per input dimension."),
    k: int = typer.Option(32, "--k", min=1, help="Active latents per token (topk, batchtopk)."),
    steps: int = typer.Option(2000, "--steps", min=1, max=MAX_STEPS),
    batch_size: int = typer.Option(4096, "--batch-size", min=1, max=MAX_BATCH, help="Tokens per step."),
    lr: float = typer.Option(2e-3, "--lr"),
    grad_clip: float = typer.Option(1.0, "--grad-clip", min=0, help="Clip the gradient's global norm to this (0: no clipping)."),
    l1_coeff: Optional[float] = typer.Option(None, "--l1-coeff", help="relu: L1 weight λ (default 5)."),
    l0_coeff: Optional[float] = typer.Option(None, "--l0-coeff", help="jumprelu: L0 weight λ (default 0.5)."),
    holdout: float = typer.Option(0.05, "--holdout", min=0.0, max=0.5, help="Share of the store's tokens held out for eval: its last documents, cut at a document boundary (0: none, eval then scores training tokens)."),
    seed: int = typer.Option(0, "--seed", min=0, max=MAX_SEED),
    name: Optional[str] = typer.Option(None, "--name", callback=nonempty, help="Run name (default: sae-ARCH-STORE)."),
    atlas: Optional[str] = AtlasOpt,
    resume: bool = Flag(False, "--resume", help="Continue the run --name from its latest checkpoint."),
    checkpoint_every: int = typer.Option(500, "--checkpoint-every", min=1, max=MAX_STEPS),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda, cuda:N or mps."),
    quiet: bool = Flag(False, "--quiet", help="No progress bar."),
) -> None:
    """Train a sparse autoencoder on a stored set of activations."""
    from .jobs import train_sae

    if resume and not name:
        raise LatentAtlasError("--resume needs --name to say which SAE run to continue")
    if resume:
        _check_resume(ctx, name, atlas)
    # a flag typed for another architecture would be ignored without a word
    if l1_coeff is not None and arch != "relu":
        raise LatentAtlasError(f"--l1-coeff weights the L1 penalty of a relu SAE; a {arch} SAE has none (leave it out)")
    if l0_coeff is not None and arch != "jumprelu":
        raise LatentAtlasError(f"--l0-coeff weights the L0 penalty of a jumprelu SAE; a {arch} SAE has none (leave it out)")
    run, result = train_sae(activations, arch, expansion=expansion, k=k, steps=steps, batch_size=batch_size, lr=lr,
                            grad_clip=grad_clip or None, l1_coeff=l1_coeff, l0_coeff=l0_coeff, holdout=holdout, seed=seed, name=name,
                            atlas=atlas, resume=resume, checkpoint_every=checkpoint_every, device=device, progress=not quiet)
    how = f" (resumed from step {result.resumed_from})" if result.resumed_from is not None else ""
    last = "  ".join(f"{k_} {v:.3g}" for k_, v in result.last.items() if k_ in ("l0", "fvu", "dead"))
    con = console()
    con.print(f"trained [bold]{esc(run.name)}[/] for {result.steps_done} steps{how} in {result.seconds:.1f} s ({last}) → {esc(run.path)}")
    held = (run.config().get("data") or {}).get("holdout") or {}
    if held.get("tokens"):
        con.print(f"held out for eval: the last {held['tokens']:,} tokens of '{esc(activations)}' (from document {held['from_doc']})")
    elif not resume:
        con.print("[bold red]warning:[/] nothing was held out (--holdout 0); `sae eval` will score tokens this SAE was trained on")


def _check_resume(ctx, name: str, atlas: str | None) -> None:
    from ...atlas import Atlas

    cfg = Atlas(atlas).run(name).config()
    train, model, data = (cfg.get(k) if isinstance(cfg.get(k), dict) else {} for k in ("train", "model", "data"))
    typed = given(ctx, "activations", "arch", "expansion", "k", "steps", "batch_size", "lr", "grad_clip", "l1_coeff", "l0_coeff",
                  "holdout", "seed", "checkpoint_every")
    d_in = model.get("d_in") or 0
    stored = {"activations": data.get("name"), "arch": model.get("arch"), "expansion": model.get("d_sae", 0) // d_in if d_in else None,
              "k": model.get("k"), "l1_coeff": model.get("l1_coeff"), "l0_coeff": model.get("l0_coeff"),
              "holdout": (data.get("holdout") or {}).get("fraction") if isinstance(data.get("holdout"), dict) else None,
              **{key: train.get(key) for key in ("steps", "batch_size", "lr", "seed", "checkpoint_every")},
              "grad_clip": train.get("grad_clip") or 0.0}
    check_resume(name, [("--" + key.replace("_", "-"), value, stored[key]) for key, value in typed.items()])


@app.command("import")
def sae_import(
    folder: str = typer.Argument(..., callback=nonempty, help="A folder saved by SAELens: cfg.json and sae_weights.safetensors."),
    activations: str = typer.Option(..., "--activations", callback=nonempty, help="Activation store of the SAE's hook (its width must match)."),
    name: Optional[str] = typer.Option(None, "--name", callback=nonempty, help="Run name (default: saelens-FOLDER)."),
    atlas: Optional[str] = AtlasOpt,
) -> None:
    """Import an SAE saved by SAELens as an SAE run (then `sae eval RUN` measures it and fills its feature pages)."""
    from .saelens import import_saelens

    run = import_saelens(folder, activations, name=name, atlas=atlas)
    model = run.config()["model"]
    k = f", k={model['k']}" if model["arch"] == "topk" else ""
    con = console()
    con.print(f"imported [bold]{esc(run.name)}[/] ({model['arch']}{k}, {model['d_sae']:,} latents on width {model['d_in']}) from "
              f"{esc(folder)} over store '{esc(activations)}' → {esc(run.path)}")
    con.print(f"measure it and build its feature pages with `latentatlas sae eval {esc(run.name)}`")


@app.command("sweep")
def sae_sweep(
    activations: str = typer.Option(..., "--activations", callback=nonempty, help="Activation store name."),
    arch: str = typer.Option("topk", "--arch", help="topk, batchtopk (sweep --k), relu (--l1-coeff) or jumprelu (--l0-coeff)."),
    values: str = typer.Option(..., "--values", help="Comma-separated values of the arch's sparsity knob, e.g. 8,16,32,64."),
    expansion: int = typer.Option(8, "--expansion", min=1, max=MAX_EXPANSION),
    steps: int = typer.Option(2000, "--steps", min=1, max=MAX_STEPS),
    batch_size: int = typer.Option(4096, "--batch-size", min=1, max=MAX_BATCH),
    lr: float = typer.Option(2e-3, "--lr"),
    downstream: bool = Flag(False, "--downstream", help="Also splice each SAE into the model (slower)."),
    name: Optional[str] = typer.Option(None, "--name", callback=nonempty, help="Sweep name (default: sweep-ARCH-STORE); members are NAME-k8 …"),
    atlas: Optional[str] = AtlasOpt,
    as_json: bool = Flag(False, "--json", help="Print the frontier as JSON."),
    quiet: bool = Flag(False, "--quiet", help="No progress bars."),
) -> None:
    """Train and evaluate one SAE per value and draw the L0/rate-vs-FVU frontier (resumable)."""
    from .jobs import sweep_sae

    try:
        vals = [float(v) for v in values.split(",") if v.strip()]
    except ValueError:
        raise LatentAtlasError(f"--values '{values}' is not a comma-separated list of numbers") from None
    if not vals:
        raise LatentAtlasError(f"--values '{values}' lists no number; expected e.g. 8,16,32,64")
    report = sweep_sae(activations, arch, vals, name=name, atlas=atlas, downstream=downstream, progress=not (quiet or as_json),
                       command=command_line(), expansion=expansion, steps=steps, batch_size=batch_size, lr=lr)
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
    con = console()
    con.print(table)
    con.print(f"figure → {esc(report['figures']['rate_distortion'])}")


@app.command("eval")
def sae_eval(
    run: str = typer.Argument(..., help="SAE run name."),
    activations: Optional[str] = typer.Option(None, "--activations", callback=nonempty, help="Evaluate on another store (default: the run's held-out range)."),
    tokens: int = typer.Option(200_000, "--tokens", min=1, max=MAX_TOKENS, help="Evaluate on at most this many tokens."),
    feature_tokens: int = typer.Option(200_000, "--feature-tokens", min=1, max=MAX_TOKENS, help="Tokens (from the store's start) the feature tables scan."),
    downstream: bool = Flag(True, "--downstream/--no-downstream", help="Splice the SAE into the model (embedding cosine, CE recovered)."),
    atlas: Optional[str] = AtlasOpt,
    as_json: bool = Flag(False, "--json", help="Print the report as JSON instead of a table."),
    seed: int = typer.Option(0, "--seed", min=0, max=MAX_SEED),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda, cuda:N or mps."),
    quiet: bool = Flag(False, "--quiet", help="No progress output."),
) -> None:
    """Measure an SAE: L0, MSE, FVU (centred), cosine, shrinkage, dead and dense latents; write metrics.json."""
    from ...atlas import Atlas
    from .jobs import evaluate_sae

    the_run = Atlas(atlas).run(run)
    report = evaluate_sae(the_run, activations=activations, tokens=tokens, seed=seed, device=device,
                          feature_tokens=feature_tokens, downstream=downstream, command=command_line(), progress=not (quiet or as_json))
    if as_json:
        sys.stdout.write(json.dumps(report, indent=2) + "\n")
        return
    con = console()
    metrics_table(f"{the_run.name} — {report['n']:,} tokens of {report['activations']}", report["metrics"], con)
    for note in report["notes"]:
        if note.startswith("NOT HELD OUT"):
            con.print(f"[bold red]warning:[/] {esc(note)}")
        else:
            con.print(f"[yellow]note:[/] {esc(note)}")
    con.print(f"metrics → {esc(the_run.path / 'metrics.json')}")
