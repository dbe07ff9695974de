"""``latentatlas flow train|eval|sample|reflow``."""

from __future__ import annotations

from typing import Optional

import typer

from ..._cli import AtlasOpt, Flag, console, esc, nonempty
from ...errors import LatentAtlasError
from ...limits import MAX_SEED, MAX_STEPS

app = typer.Typer(help="Flow matching and diffusion on 2-D toys, every sampler counted in NFE and checked against the exact answer.",
                  no_args_is_help=True)

RunArg = typer.Argument(..., callback=nonempty, help="A flow run in the atlas.")


def _interrupted(exc, name: Optional[str]) -> LatentAtlasError:
    return LatentAtlasError(f"training interrupted at step {exc.step}; continue with `latentatlas flow train --name {name or 'RUN'} --resume`")


@app.command()
def train(
    data: str = typer.Option("three-modes", "--data", callback=nonempty,
                             help="three-modes, 8gaussians, 25gaussians, moons, spirals, checkerboard, rings, or a .npy/.csv file of N×2 points."),
    objective: str = typer.Option("fm", "--objective", help="fm (flow matching / rectified flow), ddpm (VP diffusion, ε-prediction) or v (VP, v-prediction)."),
    schedule: str = typer.Option("linear", "--schedule", help="The VP objectives' noise schedule: linear or cosine."),
    net: str = typer.Option("sinusoidal", "--net", help="sinusoidal (embeddings of t and x, the better baseline) or plain (Diffusion Explorer's 3×64 ELU MLP)."),
    steps: int = typer.Option(3000, "--steps", min=1, max=MAX_STEPS),
    batch_size: int = typer.Option(512, "--batch-size", min=1, max=1 << 20),
    lr: float = typer.Option(2e-3, "--lr", min=0.0),
    seed: int = typer.Option(0, "--seed", min=0, max=MAX_SEED),
    name: Optional[str] = typer.Option(None, "--name", callback=nonempty, help="Run name (default: flow-<data>-<objective>)."),
    atlas: Optional[str] = AtlasOpt,
    resume: bool = Flag(False, "--resume", help="Continue run --name from its last checkpoint."),
    no_eval: bool = Flag(False, "--no-eval", help="Train only; evaluate later with `latentatlas flow eval`."),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda, cuda:N or mps."),
    quiet: bool = Flag(False, "--quiet", help="No progress bar."),
) -> None:
    """Train a flow-matching or diffusion model on a 2-D toy, then evaluate every sampler against the target."""
    from ...trainer import TrainingInterrupted
    from .jobs import train as train_job

    obj = {"ddpm": "eps", "eps": "eps", "fm": "fm", "v": "v"}.get(objective)
    if obj is None:
        raise LatentAtlasError(f"--objective '{objective}' is not one of fm, ddpm, v")
    try:
        run, result, report = train_job(atlas, data=data, objective=obj, schedule=schedule, net=net, steps=steps, batch_size=batch_size,
                                        lr=lr, seed=seed, name=name, resume=resume, device=device, progress=not quiet,
                                        evaluate=not no_eval)
    except TrainingInterrupted as exc:
        raise _interrupted(exc, name) from None
    console().print(f"trained [bold]{esc(run.name)}[/] for {result.steps_done:,} steps in {result.seconds:.1f} s")
    if report is not None:
        _print_report(report)


@app.command("eval")
def eval_(
    run: str = RunArg,
    n: int = typer.Option(2000, "--n", min=10, max=200_000, help="Samples per sampler and NFE (and fresh target samples)."),
    seed: int = typer.Option(0, "--seed", min=0, max=MAX_SEED),
    atlas: Optional[str] = AtlasOpt,
    quiet: bool = Flag(False, "--quiet", help="No progress bar."),
) -> None:
    """Energy distance per sampler and NFE (with its noise floor), field error and loss floor for mixtures, straightness, per-mode errors."""
    from ...atlas import Atlas
    from .jobs import evaluate

    from .latent import evaluate_latent, is_latent_run, table_text

    r = Atlas(atlas).run(run)
    with r.lock():
        if is_latent_run(r):  # a flow in a VAE's latent space: the latent-diffusion table
            report = evaluate_latent(r, seed=seed, progress=not quiet)
            console().print(esc(table_text(report)))
            return
        report = evaluate(r, n=n, seed=seed, progress=not quiet)
    _print_report(report)


@app.command()
def sample(
    run: str = RunArg,
    sampler: str = typer.Option("euler", "--sampler", help="euler, midpoint, heun, dpm++, ddim, ddim-eta1 or ddpm."),
    nfe: int = typer.Option(30, "--nfe", min=1, max=10_000, help="Network evaluations at most (Heun makes 2N − 1, midpoint 2N)."),
    n: int = typer.Option(2000, "--n", min=1, max=200_000),
    seed: int = typer.Option(0, "--seed", min=0, max=MAX_SEED),
    atlas: Optional[str] = AtlasOpt,
) -> None:
    """Sample a flow run; the samples, their noise and their trajectory go to runs/<run>/samples/<sampler>-<nfe>."""
    from ...atlas import Atlas
    from ...analysis.sample_quality import energy_distance
    from .jobs import sample as sample_job, target_of

    from .latent import is_latent_run

    r = Atlas(atlas).run(run)
    if is_latent_run(r):
        _sample_latent(r, sampler, nfe, n, seed)
        return
    with r.lock():
        res, meta = sample_job(r, sampler, nfe, n=n, seed=seed)
    y = target_of(r).sample(max(n, 2), seed=seed + 1)
    ed = energy_distance(res.x, y, num_resamples=100) if n >= 2 else None
    msg = f"{meta['n']:,} samples with {esc(sampler)} in {meta['nfe']} NFE ({meta['steps']} steps, {meta['seconds']:.2f} s) → samples/{esc(sampler)}-{nfe}"
    if ed is not None:
        msg += f"; energy distance to the target {ed.value:.4f} [{ed.ci_low:.4f}, {ed.ci_high:.4f}]"
    console().print(msg)


def _sample_latent(r, sampler: str, nfe: int, n: int, seed: int) -> None:
    """A latent flow's samples in the VAE's own latent coordinates (not the flow's standardised ones)."""
    import torch

    from ..._io import atomic_save_safetensors
    from ...analysis.sample_quality import energy_distance
    from .latent import sample_latents, training_latents

    with r.lock():
        got = sample_latents(r, "flow", n, seed=seed, sampler=sampler, nfe=nfe, trajectory=True)
        folder = r.file("samples")
        folder.mkdir(parents=True, exist_ok=True)
        atomic_save_safetensors(folder / f"latent-{sampler}-{nfe}.safetensors",
                                {"z": torch.from_numpy(got["z"]).contiguous(), "trajectory": torch.from_numpy(got["trajectory"]).contiguous()})
    ref = training_latents(r)
    means = ref["z"]  # the training means, in the VAE's coordinates
    msg = f"{n:,} latents with {esc(sampler)} in {got['nfe']} NFE → samples/latent-{esc(sampler)}-{nfe} (the VAE's latent coordinates)"
    if n >= 2:
        ed = energy_distance(got["z"], means[: max(2, min(len(means), 5000))], num_resamples=100)
        msg += f"; energy distance to the encoder means {ed.value:.4f} [{ed.ci_low:.4f}, {ed.ci_high:.4f}]"
    console().print(msg)


@app.command()
def reflow(
    run: str = RunArg,
    pairs: int = typer.Option(20_000, "--pairs", min=2, max=200_000, help="(noise, sample) pairs drawn from the run's ODE."),
    sampler: str = typer.Option("midpoint", "--sampler", help="The deterministic sampler that draws the coupling."),
    nfe: int = typer.Option(100, "--nfe", min=1, max=10_000),
    steps: int = typer.Option(3000, "--steps", min=1, max=MAX_STEPS),
    seed: int = typer.Option(0, "--seed", min=0, max=MAX_SEED),
    name: Optional[str] = typer.Option(None, "--name", callback=nonempty, help="The new run's name (default: <run>-reflow)."),
    atlas: Optional[str] = AtlasOpt,
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda, cuda:N or mps."),
    quiet: bool = Flag(False, "--quiet", help="No progress bar."),
) -> None:
    """Rectified flow's reflow: retrain a flow-matching run on the coupling its own ODE produces (straighter paths, fewer steps)."""
    from ...trainer import TrainingInterrupted
    from .jobs import reflow as reflow_job

    try:
        new, result, report = reflow_job(atlas, run, pairs=pairs, sampler=sampler, nfe=nfe, steps=steps, seed=seed, name=name,
                                         device=device, progress=not quiet)
    except TrainingInterrupted as exc:
        raise LatentAtlasError(f"reflow training interrupted at step {exc.step}; start it again (the coupling is redrawn)") from None
    console().print(f"reflowed [bold]{esc(run)}[/] into [bold]{esc(new.name)}[/] ({result.steps_done:,} steps, {result.seconds:.1f} s)")
    if report is not None:
        _print_report(report)


@app.command()
def latent(
    vae: str = typer.Option("demo", "--vae", callback=nonempty, help="The VAE run whose encoder means the flow learns (default: the demo's)."),
    name: Optional[str] = typer.Option(None, "--name", callback=nonempty, help="Run name (default: <vae>-latent-flow)."),
    resume: bool = Flag(False, "--resume", help="Finish run --name."),
    classifier: Optional[str] = typer.Option(None, "--classifier", callback=nonempty, help="A factor-classifier run to score samples (default: found or trained)."),
    steps: int = typer.Option(5000, "--steps", min=1, max=MAX_STEPS, help="Training steps of the latent flow."),
    stage2_steps: int = typer.Option(5000, "--stage2-steps", min=1, max=MAX_STEPS, help="Training steps of the second-stage VAE (Dai & Wipf)."),
    classifier_steps: int = typer.Option(1500, "--classifier-steps", min=1, max=MAX_STEPS),
    sampler: str = typer.Option("dpm++", "--sampler"),
    nfe: int = typer.Option(30, "--nfe", min=1, max=10_000),
    seed: int = typer.Option(0, "--seed", min=0, max=MAX_SEED),
    atlas: Optional[str] = AtlasOpt,
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda, cuda:N or mps."),
    quiet: bool = Flag(False, "--quiet", help="No progress bar."),
) -> None:
    """Latent diffusion: a flow on a VAE run's encoder means, against the prior and a two-stage VAE, scored by a factor classifier."""
    from ...trainer import TrainingInterrupted
    from .latent import latent_diffusion, table_text

    try:
        run, report = latent_diffusion(atlas, vae, name=name, resume=resume, classifier=classifier, steps=steps, stage2_steps=stage2_steps,
                                       classifier_steps=classifier_steps, sampler=sampler, nfe=nfe, seed=seed, device=device,
                                       progress=not quiet)
    except TrainingInterrupted as exc:
        raise LatentAtlasError(f"training interrupted at step {exc.step}; continue with `latentatlas flow latent --name {name or 'RUN'} --resume`") from None
    console().print(f"latent flow run [bold]{esc(run.name)}[/]")
    console().print(esc(table_text(report)))
    for note in report.get("notes", []):
        console().print(esc(note))


@app.command("dit")
def dit_(
    data: str = typer.Option("digits", "--data", callback=nonempty, help="digits (8×8, 10 classes)."),
    steps: int = typer.Option(1000, "--steps", min=1, max=MAX_STEPS),
    batch_size: int = typer.Option(128, "--batch-size", min=1, max=1 << 20),
    lr: float = typer.Option(1e-3, "--lr", min=0.0),
    per_class: int = typer.Option(100, "--per-class", min=2, max=10_000, help="Generated digits per class for the probe and the energy distance."),
    seed: int = typer.Option(0, "--seed", min=0, max=MAX_SEED),
    name: Optional[str] = typer.Option(None, "--name", callback=nonempty),
    atlas: Optional[str] = AtlasOpt,
    resume: bool = Flag(False, "--resume", help="Continue run --name from its last checkpoint."),
    no_eval: bool = Flag(False, "--no-eval", help="Train only."),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda, cuda:N or mps."),
    quiet: bool = Flag(False, "--quiet", help="No progress bar."),
) -> None:
    """Train a small class-conditional DiT with flow matching, capture every layer × sampling step, and measure its digits."""
    from ...trainer import TrainingInterrupted
    from .dit import summary_lines, train as train_dit

    try:
        run, result, report = train_dit(atlas, data=data, steps=steps, batch_size=batch_size, lr=lr, seed=seed, name=name,
                                        resume=resume, device=device, progress=not quiet, evaluate=not no_eval, per_class=per_class)
    except TrainingInterrupted as exc:
        raise LatentAtlasError(f"training interrupted at step {exc.step}; continue with `latentatlas flow dit --name {name or 'RUN'} --resume`") from None
    console().print(f"trained [bold]{esc(run.name)}[/] for {result.steps_done:,} steps in {result.seconds:.1f} s")
    for line in summary_lines(report) if report else []:
        console().print(esc(line))


def _print_report(report: dict) -> None:
    from rich.table import Table

    h = report.get("headline", {})
    floor = report.get("noise_floor", {})
    table = Table(title=f"{esc(report['run'])}: energy distance to {report['n']:,} target samples (noise floor, 95 %: {floor.get('quantile', float('nan')):.4f})",
                  title_justify="left")
    for col in ("field", "sampler", "NFE", "energy distance", "95 % interval", "at floor"):
        table.add_column(col, justify="right" if col not in ("field", "sampler") else "left")
    for r in report.get("samplers", []):
        e = r["energy_distance"]
        table.add_row(r["field"], r["sampler"], str(r["nfe"]), f"{e['value']:.4f}", f"[{e['ci_low']:.4f}, {e['ci_high']:.4f}]",
                      "yes" if r["at_floor"] else "")
    console().print(table)
    for k, v in h.items():
        console().print(f"{k.replace('_', ' ')}: {v:.4g}")
    for note in report.get("notes", []):
        console().print(esc(note))
