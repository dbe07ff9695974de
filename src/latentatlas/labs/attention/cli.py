"""``latentatlas attention show|heads|induction``."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ..._cli import AtlasOpt, Flag, console, esc, nonempty, open_explorer
from ...errors import LatentAtlasError
from ...limits import MAX_SEED, MAX_STEPS

app = typer.Typer(help="Attention and model internals: head, model, matrix and neuron views, the head atlas, induction heads.",
                  no_args_is_help=True)

ModelArg = typer.Argument(..., callback=nonempty, help="minilm (built in), induction (the built-in induction-heads model, trained on first use), a transformers model folder, a hub id, or a run of this lab.")


def _text(text: Optional[str], text_file: Optional[str]) -> str:
    if (text is None) == (text_file is None):
        raise LatentAtlasError("give the text with --text or --text-file (one of the two)")
    if text_file is not None:
        path = Path(text_file).expanduser()
        if not path.is_file():
            raise LatentAtlasError(f"--text-file '{text_file}' does not exist")
        try:
            return path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            raise LatentAtlasError(f"--text-file '{text_file}' is not UTF-8 text") from None
    return text


@app.command()
def show(
    model: str = ModelArg,
    text: Optional[str] = typer.Option(None, "--text", help="The text to look at (for a model trained here: token ids separated by spaces)."),
    text_file: Optional[str] = typer.Option(None, "--text-file", help="Or read it from this UTF-8 file."),
    atlas: Optional[str] = AtlasOpt,
    device: str = typer.Option("cpu", "--device", help="cpu, cuda, cuda:N or mps."),
    no_serve: bool = Flag(False, "--no-serve", help="Capture only; do not start the explorer."),
    port: int = typer.Option(8765, "--port", min=1, max=65535, help="Port of the explorer."),
) -> None:
    """Capture a text's attention at every layer and head and open the head view on it."""
    from ...atlas import Atlas
    from .jobs import resolve, show as show_job

    the_atlas = Atlas(atlas)
    body = _text(text, text_file)
    subject, run = resolve(model, the_atlas, device, progress=True)
    with run.lock():
        meta = show_job(subject, run, body)
    console().print(f"captured {meta['n_tokens']:,} tokens × {meta['n_layers']} layers × {meta['n_heads']} heads of {esc(meta['model'])} "
                    f"into run [bold]{esc(run.name)}[/] (sample {meta['id']}, {meta['seconds']:.2f} s)")
    if meta.get("note"):
        console(stderr=True).print(f"[yellow]note:[/] {esc(meta['note'])}")
    if not no_serve:
        open_explorer(the_atlas.root, f"run={run.name}&view=head&sample={meta['id']}", port)


@app.command()
def heads(
    model: str = ModelArg,
    corpus: str = typer.Option("builtin", "--corpus", callback=nonempty, help="builtin (Python stdlib docstrings), a .txt/.md file or folder, or a .jsonl file."),
    tokens: int = typer.Option(20_000, "--tokens", min=1, max=100_000_000, help="Corpus tokens to average over."),
    batch_size: int = typer.Option(16, "--batch-size", min=1, max=4096, help="Documents per forward pass."),
    max_length: int = typer.Option(128, "--max-length", min=2, max=1 << 20, help="Tokens per document at most."),
    atlas: Optional[str] = AtlasOpt,
    device: str = typer.Option("cpu", "--device", help="cpu, cuda, cuda:N or mps."),
    quiet: bool = Flag(False, "--quiet", help="No progress bar."),
) -> None:
    """The head atlas: every head's entropy, attention distance, first/self/previous-token shares, prefix-matching and copying scores."""
    import numpy as np
    from rich.table import Table

    from ...atlas import Atlas
    from .jobs import heads as heads_job
    from .jobs import resolve

    subject, run = resolve(model, Atlas(atlas), device, progress=not quiet)
    with run.lock():
        got = heads_job(subject, run, corpus=None if subject.tokenizer is None else corpus, tokens=tokens, batch_size=batch_size,
                        max_length=max_length, progress=not quiet)
    table = Table(title=f"head atlas of {esc(got['model'])} — {got['tokens']:,} tokens ({got['seconds']:.1f} s) → run {esc(run.name)}",
                  title_justify="left")
    table.add_column("head")
    for s in got["stats"]:
        table.add_column(s.replace("_", " "), justify="right")
    t = got["table"]
    for layer in range(t.shape[0]):
        for h in range(t.shape[1]):
            table.add_row(f"{layer}.{h}", *("–" if not np.isfinite(v) else f"{v:.3g}" for v in t[layer, h]))
    console().print(table)


@app.command()
def induction(
    name: Optional[str] = typer.Option(None, "--name", callback=nonempty, help="Run name (default: induction, induction-2, …)."),
    steps: int = typer.Option(1600, "--steps", min=1, max=MAX_STEPS, help="Training steps (the phase change comes near 1,100)."),
    seed: int = typer.Option(0, "--seed", min=0, max=MAX_SEED),
    positions: str = typer.Option("rotary", "--positions", help="rotary (RoPE: a previous-token head forms reliably) or learned (absolute embeddings)."),
    atlas: Optional[str] = AtlasOpt,
    resume: bool = Flag(False, "--resume", help="Continue run --name from its last checkpoint."),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda, cuda:N or mps."),
    quiet: bool = Flag(False, "--quiet", help="No progress bar."),
) -> None:
    """Train the induction-heads ground truth: a 2-layer attention-only transformer on repeated random spans (about a minute)."""
    from ...trainer import TrainingInterrupted
    from .jobs import train_induction

    try:
        if positions not in ("rotary", "learned"):
            raise LatentAtlasError(f"--positions '{positions}' is not one of rotary, learned")
        run, result, report = train_induction(atlas, name=name, steps=steps, seed=seed, positions=positions, resume=resume, device=device,
                                              progress=not quiet)
    except TrainingInterrupted as exc:
        raise LatentAtlasError(f"training interrupted at step {exc.step}; continue with `latentatlas attention induction --name "
                               f"{name or 'RUN'} --resume`") from None
    h = report["headline"]
    change = f"at step {h['phase_change_step']:,}" if h.get("phase_change_step") else "not seen"
    console().print(f"trained [bold]{esc(run.name)}[/] in {result.seconds:.1f} s; phase change {change}; ICL score {h['icl_score']:.2f} nats")
    for note in report["notes"]:
        console().print(esc(note))


@app.command()
def graph(
    model: str = typer.Argument(..., callback=nonempty, help="A run of any lab (its model), minilm, a transformers model folder or hub id, "
                                                              "or a diffusers AutoencoderKL folder."),
    tracer: str = typer.Option("hooks", "--tracer", help="hooks (module hooks + a TorchFunctionMode recorder; any model) or export "
                                                          "(torch.export's op graph where the model exports; falls back to hooks)."),
    text: Optional[str] = typer.Option(None, "--text", help="The example text for a language model (default: a short sentence)."),
    expand: Optional[str] = typer.Option(None, "--expand", callback=nonempty, help="Comma-separated module names to show opened."),
    atlas: Optional[str] = AtlasOpt,
    device: str = typer.Option("cpu", "--device", help="cpu, cuda, cuda:N or mps."),
    no_serve: bool = Flag(False, "--no-serve", help="Trace only; do not start the explorer."),
    port: int = typer.Option(8765, "--port", min=1, max=65535, help="Port of the explorer."),
) -> None:
    """Trace a model into its module tree and data flow on one example batch, and open the module graph."""
    from urllib.parse import quote

    from ... import tracing
    from ...atlas import Atlas
    from . import graph as graph_job

    if tracer not in tracing.TRACERS:
        raise LatentAtlasError(f"--tracer '{tracer}' is not one of {', '.join(tracing.TRACERS)}")
    the_atlas = Atlas(atlas)
    subject, run = graph_job.resolve(model, the_atlas, device, text)
    opened = [n.strip() for n in (expand or "").split(",") if n.strip()]
    names = dict(subject.model.named_modules())
    for name in opened:
        if name not in names:
            raise tracing.unknown_module(name, names, subject.label)
    doc = graph_job.build(subject, run, tracer)
    s = graph_job.summary(doc)
    console().print(f"traced {esc(doc['model'])} ({esc(doc['architecture'])}, {doc['tracer']}, {doc['seconds']:.2f} s): "
                    f"{s['modules']:,} modules, {s['ops']:,} ops, {s['edges']:,} edges, {s['parameters']:,} parameters "
                    f"→ run [bold]{esc(run.name)}[/]")
    if doc.get("note"):
        console(stderr=True).print(f"[yellow]note:[/] {esc(doc['note'])}")
    if not no_serve:
        query = f"run={quote(run.name)}&view=graph" + (f"&gx={quote(','.join(opened))}" if opened else "")
        open_explorer(the_atlas.root, query, port)


@app.command()
def ablate(
    model: str = typer.Argument(..., callback=nonempty, help="sdvae (the SD-style VAE, trained here on first use), a run (VAE, SD-VAE, attention), "
                                                             "an AutoencoderKL folder, minilm, a transformers model folder or a hub id."),
    module: Optional[list[str]] = typer.Option(None, "--module", help="A module to ablate, by dotted name (repeatable)."),
    sweep: bool = Flag(False, "--sweep", help="Ablate every block-level module in turn (the default without --module)."),
    depth: int = typer.Option(1, "--depth", min=1, max=8, help="Sweep depth: 1 = the entries of the first module lists (blocks); 2 adds the blocks inside those."),
    mode: str = typer.Option("skip", "--mode", help="zero, mean (over the batch) or skip (the module's input passed through)."),
    text: Optional[list[str]] = typer.Option(None, "--text", help="A text to measure on (repeatable; default: --n documents of --corpus)."),
    corpus: str = typer.Option("builtin", "--corpus", callback=nonempty, help="Texts for a language model or encoder: builtin, a .txt/.md file or folder, or .jsonl."),
    n: Optional[int] = typer.Option(None, "--n", min=1, max=4096, help="Images (default 32) or texts (default 16) to measure on."),
    data: Optional[str] = typer.Option(None, "--data", callback=nonempty, help="Images for an autoencoder (default: the run's own data; sprites for an AutoencoderKL folder)."),
    max_length: int = typer.Option(64, "--max-length", min=2, max=1 << 16, help="Tokens per text at most."),
    seed: int = typer.Option(0, "--seed", min=0, max=MAX_SEED, help="Which images or sequences are drawn, and the bootstrap's resamples."),
    resamples: int = typer.Option(200, "--resamples", min=10, max=100_000, help="Bootstrap resamples for each 95% interval."),
    steps: int = typer.Option(400, "--steps", min=1, max=MAX_STEPS, help="Training steps of the built-in sdvae (first use only)."),
    atlas: Optional[str] = AtlasOpt,
    device: str = typer.Option("cpu", "--device", help="cpu, cuda, cuda:N or mps."),
    json_out: bool = Flag(False, "--json", help="Print the report as JSON instead of a table."),
    quiet: bool = Flag(False, "--quiet", help="No progress bar."),
) -> None:
    """Ablate modules (zero, mean or skip) and measure how far the output moves, with 95% bootstrap intervals, sorted by effect."""
    import json

    from rich.table import Table

    from ..._cli import command_line
    from ...atlas import Atlas
    from ...trainer import TrainingInterrupted, check_device
    from .ablate import ablate as ablate_job
    from .ablate import make_batch, resolve

    check_device(device)
    if module and sweep:
        raise LatentAtlasError("give --module NAME (repeatable) or --sweep, not both")
    try:
        target = resolve(model, Atlas(atlas), device, train={"steps": steps}, progress=not quiet)
    except TrainingInterrupted as exc:
        raise LatentAtlasError(f"training interrupted at step {exc.step}; run the same command again to continue it") from None
    batch = make_batch(target, n=n, texts=text, corpus=corpus, data=data, max_length=max_length, seed=seed)
    with target.run.lock():
        report = ablate_job(target, list(module) if module else "sweep", mode, batch, depth=depth, seed=seed, num_resamples=resamples,
                            command=command_line(), progress=not quiet and not json_out)
    if json_out:
        from ..._io import to_plain

        print(json.dumps(to_plain(report, nonfinite_as_none=True), indent=1))
        return
    labels = {m["key"]: m["label"] for m in report["metrics"]}
    keys = [m["key"] for m in report["metrics"]]

    def cell(e: dict | None) -> str:
        if not e or e.get("value") is None:
            return "–"
        ci = f" [{e['ci_low']:.3g}, {e['ci_high']:.3g}]" if e.get("ci_low") is not None and e.get("ci_high") is not None else ""
        return f"{e['value']:.3g}{ci}"

    table = Table(title=f"{report['mode']} ablation of {esc(report['model'])} on {report['n']} {report['items']}, sorted by "
                        f"{esc(labels[report['primary']])} (95% bootstrap intervals) → run {esc(target.run.name)}", title_justify="left")
    table.add_column("module")
    table.add_column("type")
    for k in keys:
        table.add_column(esc(labels[k]), justify="right")
    for r in report["rows"]:
        table.add_row(esc(r["module"]), esc(r["type"]), *(cell(r["metrics"].get(k)) for k in keys))
    out = console()
    out.print(table)
    for k, e in report["base"].items():
        out.print(f"unablated {esc(labels.get(k, k))}: {cell(e)}")
    for p in report["pairs"]:
        rows = {r["module"]: r for r in report["rows"]}
        a, b = rows[p["attention"]]["metrics"][p["metric"]], rows[p["resnet"]]["metrics"][p["metric"]]
        out.print(f"[bold]{report['mode']} {esc(p['attention'])}[/]: {esc(labels[p['metric']])} {cell(a)}  beside  "
                  f"[bold]{esc(p['resnet'])}[/]: {cell(b)};  difference {cell(p['difference'])}")
    for r in report["refused"]:
        out.print(f"[yellow]not ablated:[/] {esc(r['reason'])}")
    if report["figure"]:
        out.print(f"figure: {esc(target.run.figures_dir / report['figure'])}  (ablation {report['id']}, {report['seconds']:.1f} s)")


@app.command()
def vit(
    data: str = typer.Option("digits", "--data", help="digits (scikit-learn's 8×8 digits) or sprites (the sprites' shape is the class)."),
    steps: Optional[int] = typer.Option(None, "--steps", min=1, max=MAX_STEPS, help="Training steps (default 3,000 for digits, 1,500 for sprites)."),
    seed: int = typer.Option(0, "--seed", min=0, max=MAX_SEED),
    name: Optional[str] = typer.Option(None, "--name", callback=nonempty, help="Run name (default: vit-digits, vit-sprites, …)."),
    resume: bool = Flag(False, "--resume", help="Continue run --name from its last checkpoint."),
    model: Optional[str] = typer.Option(None, "--model", callback=nonempty,
                                        help="A transformers ViT folder to look at on --data's test images, instead of training one."),
    atlas: Optional[str] = AtlasOpt,
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda, cuda:N or mps."),
    quiet: bool = Flag(False, "--quiet", help="No progress bar."),
) -> None:
    """Train a small ViT on digits or sprites (about a minute on a CPU) and evaluate it on a held-out split; or, with --model, record a transformers ViT folder as a run."""
    from ..._cli import command_line
    from ...trainer import TrainingInterrupted
    from .vit import DATASETS, register_vit, train_vit

    if data not in DATASETS:
        raise LatentAtlasError(f"--data '{data}' is not a dataset the ViT lab uses; expected one of {', '.join(DATASETS)}")
    if model is not None:
        if resume or steps is not None:
            raise LatentAtlasError("--model looks at a trained transformers ViT; --steps and --resume are for training one here")
        run = register_vit(atlas, model, data=data, name=name)
        console().print(f"recorded ViT folder {esc(model)} as run [bold]{esc(run.name)}[/]; open it with `latentatlas serve` (run {esc(run.name)})")
        return
    try:
        run, result, report = train_vit(atlas, data=data, steps=steps, seed=seed, name=name, resume=resume, device=device,
                                         progress=not quiet, command=command_line())
    except TrainingInterrupted as exc:
        raise LatentAtlasError(f"training interrupted at step {exc.step}; continue with `latentatlas attention vit --name "
                               f"{name or 'RUN'} --resume`") from None
    acc = report["metrics"]["test_accuracy"]
    console().print(f"trained [bold]{esc(run.name)}[/] in {report['headline']['train_seconds']:.1f} s; test accuracy {acc['value']:.2%} "
                    f"(95% Wilson interval {acc['ci_low']:.2%}–{acc['ci_high']:.2%}, {acc['n']:,} held-out images)")
