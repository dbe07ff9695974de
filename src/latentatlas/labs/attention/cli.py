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

ModelArg = typer.Argument(..., callback=nonempty, help="minilm (built in), a transformers model folder, a hub id, or a run of this lab.")


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
    subject, run = resolve(model, the_atlas, device)
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

    subject, run = resolve(model, Atlas(atlas), device)
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
