"""The ``latentatlas`` command, driven for real: in-process through ``cli.main(argv)`` and, for what only
a real console shows (exit status, one clean line on stderr, --debug), as a subprocess."""

import contextlib
import importlib
import io
import json
import os
import pickle
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from latentatlas.atlas import Atlas
from latentatlas.cli import main
from latentatlas.errors import LatentAtlasError
from latentatlas.models import load_model
from latentatlas.labs.vae.jobs import train_run

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
COLOUR_VARS = ("FORCE_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE")  # would make rich add escape codes


@pytest.fixture(autouse=True)
def _wide_console(monkeypatch):
    # rich wraps and truncates at the terminal width (80 when captured); paths in tmp folders are long.
    monkeypatch.setenv("COLUMNS", "400")
    for var in ("LATENTATLAS_DEBUG", "LATENTATLAS_ATLAS", *COLOUR_VARS):
        monkeypatch.delenv(var, raising=False)


def _exit_code(argv):
    with pytest.raises(SystemExit) as exc:
        main([str(a) for a in argv])
    return exc.value.code


def cli(argv, capsys):
    """Run the command in-process; (exit code, stdout, stderr)."""
    capsys.readouterr()
    code = _exit_code(argv)
    out, err = capsys.readouterr()
    return code, out, err


def cli_quietly(argv):
    """For module-scoped fixtures, where capsys is not available."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = _exit_code(argv)
    return code, out.getvalue(), err.getvalue()


def assert_clean_error(code, out, err, *needles):
    """Exit code 2, one line on stderr that starts with 'error:', no traceback anywhere."""
    assert code == 2, (code, out, err)
    assert "Traceback" not in out + err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("error:"), err
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])


def _bars_npz(path):
    rng = np.random.default_rng(0)
    n = 256
    pos, width = rng.integers(0, 8, n), rng.integers(0, 2, n)
    x = np.zeros((n, 1, 8, 8), np.float32)
    for i in range(n):
        x[i, 0, :, pos[i] : pos[i] + 1 + width[i]] = 1.0
    np.savez(path, x=x, factors=np.stack([pos, width], 1), factor_names=np.array(["position", "width"]))
    return path


def _weights(run_path):
    return load_file(str(run_path / "model.safetensors"))


def _same_weights(a, b):
    return sorted(a) == sorted(b) and all(torch.equal(a[k], b[k]) for k in a)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """An atlas with run r1 (a VAE trained 30 steps on 8x8 bars through the CLI), then `eval r1 --json`."""
    root = tmp_path_factory.mktemp("cli").resolve()  # the CLI prints resolved paths
    npz = _bars_npz(root / "bars.npz")
    atlas = root / "atlas"
    train = cli_quietly(["train", "vae", "--data", npz, "--steps", "30", "--atlas", atlas, "--name", "r1", "--quiet"])
    evaluated = cli_quietly(["eval", "r1", "--atlas", atlas, "--json"])
    return {"root": root, "npz": npz, "atlas": atlas, "r1": atlas / "runs" / "r1", "train": train, "eval": evaluated}


def _copy_run(world, name):
    dest = world["atlas"] / "runs" / name
    shutil.copytree(world["r1"], dest)
    return dest


# -- train, runs, eval --------------------------------------------------------------------------------


def test_train_writes_a_complete_run(world):
    code, out, err = world["train"]
    assert code == 0, err
    assert "trained r1 for 30 steps" in out and str(world["r1"]) in out
    run = world["r1"]
    cfg = json.loads((run / "config.json").read_text())
    assert cfg["kind"] == "vae" and cfg["name"] == "r1"
    assert cfg["model"]["latent_dim"] == 10 and cfg["model"]["input_shape"] == [1, 8, 8]
    assert cfg["train"]["steps"] == 30 and cfg["train"]["seed"] == 0 and cfg["train"]["batch_size"] == 64
    assert cfg["data"] == {"kind": "array_file", "path": str(world["npz"].resolve())}
    assert {"latentatlas", "torch", "numpy", "python"} <= set(cfg["versions"])
    assert cfg["versions"]["torch"] == torch.__version__
    assert cfg["created_at"][:2] == "20" and "T" in cfg["created_at"]
    model = load_model(run)
    assert model.config.kind == "vae" and model.latent_dim == 10
    history = [json.loads(line) for line in (run / "history.jsonl").read_text().splitlines()]
    assert [row["step"] for row in history] == [30]
    assert {"loss", "recon", "kl"} <= set(history[-1])
    assert not (run / "checkpoint").exists()  # a finished run keeps no checkpoint


def test_runs_lists_the_run_as_a_table_and_as_json(world, capsys):
    code, out, _ = cli(["runs", "--atlas", world["atlas"]], capsys)
    assert code == 0
    assert "r1" in out and "vae" in out and str(world["atlas"]) in out
    code, out, _ = cli(["runs", "--atlas", world["atlas"], "--json"], capsys)
    assert code == 0
    rows = {row["name"]: row for row in json.loads(out)}
    assert rows["r1"]["kind"] == "vae" and rows["r1"]["data"] == "array_file" and rows["r1"]["steps"] == 30
    assert set(rows["r1"]["metrics"]) >= {"recon_error", "mig"}  # headline of the eval in the fixture


def test_eval_json_prints_the_report_and_writes_its_files(world):
    code, out, err = world["eval"]
    assert code == 0, err
    report = json.loads(out)  # stdout is nothing but the JSON document
    assert report["run"] == "r1" and report["n"] == 256
    for name in ("recon_error", "kl", "elbo", "active_units", "mig", "dci_disentanglement"):
        m = report["metrics"][name]
        assert {"value", "ci_low", "ci_high"} <= set(m), name
        if m["ci_low"] is not None:
            assert m["ci_low"] <= m["value"] <= m["ci_high"], name
    run = world["r1"]
    assert json.loads((run / "metrics.json").read_text())["metrics"] == report["metrics"]
    pngs = sorted((run / "figures").glob("*.png"))
    assert {p.name for p in pngs} == set(report["figures"])
    assert {"reconstructions.png", "traversals.png", "latent_map.png", "kl_per_dim.png"} <= set(report["figures"])
    from PIL import Image

    for p in pngs:
        assert p.read_bytes()[:8] == PNG_MAGIC, p
        with Image.open(p) as im:
            im.verify()
    arrays, rows = Atlas(world["atlas"]).run("r1").read_latents()
    assert arrays["mu"].shape == (256, 10) and len(rows) == 256
    assert (run / "projections" / "eval-pca.safetensors").is_file()


def test_eval_records_the_command_it_was_given(world):
    report = json.loads(world["eval"][1])
    assert report["command"] == f"latentatlas eval r1 --atlas {world['atlas']} --json"


def test_eval_table_names_every_metric(world, capsys):
    dest = _copy_run(world, "r1-table")
    code, out, err = cli(["eval", "r1-table", "--atlas", world["atlas"], "--n", "60", "--quiet"], capsys)
    assert code == 0, err
    assert "r1-table — 60 samples" in out
    report = json.loads((dest / "metrics.json").read_text())
    assert report["n"] == 60
    for name in report["metrics"]:
        assert name in out, name
    assert f"metrics → {dest / 'metrics.json'}" in out
    assert f"figures → {dest / 'figures'}" in out


def test_atlas_comes_from_the_environment_then_the_working_folder(world, tmp_path, monkeypatch, capsys):
    env_atlas, cwd = tmp_path.resolve() / "from-env", tmp_path.resolve() / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    monkeypatch.setenv("LATENTATLAS_ATLAS", str(env_atlas))
    code, out, err = cli(["train", "ae", "--data", world["npz"], "--steps", "3", "--name", "e1", "--quiet"], capsys)
    assert code == 0, err
    assert (env_atlas / "runs" / "e1" / "model.safetensors").is_file()
    assert not (cwd / "atlas").exists()
    code, out, _ = cli(["runs", "--json"], capsys)
    assert [row["name"] for row in json.loads(out)] == ["e1"]

    monkeypatch.delenv("LATENTATLAS_ATLAS")
    code, out, _ = cli(["runs", "--json"], capsys)
    assert code == 0 and json.loads(out) == []
    code, out, _ = cli(["runs"], capsys)
    assert f"no runs in {cwd / 'atlas'} yet" in out
    code, _, err = cli(["train", "ae", "--data", world["npz"], "--steps", "3", "--name", "c1", "--quiet"], capsys)
    assert code == 0, err
    assert (cwd / "atlas" / "runs" / "c1" / "model.safetensors").is_file()
    # --atlas beats the environment
    monkeypatch.setenv("LATENTATLAS_ATLAS", str(env_atlas))
    code, out, _ = cli(["runs", "--json", "--atlas", cwd / "atlas"], capsys)
    assert [row["name"] for row in json.loads(out)] == ["c1"]


# -- errors -------------------------------------------------------------------------------------------


def test_missing_data_path(world, capsys):
    missing = world["root"] / "nope" / "data.npz"
    code, out, err = cli(["train", "vae", "--data", missing, "--atlas", world["atlas"], "--name", "x1"], capsys)
    assert_clean_error(code, out, err, str(missing), "does not exist")
    assert not (world["atlas"] / "runs" / "x1").exists()


def test_unknown_dataset_name(world, capsys):
    code, out, err = cli(["train", "vae", "--data", "mnist", "--atlas", world["atlas"], "--name", "x2"], capsys)
    assert_clean_error(code, out, err, "'mnist'", "sprites")


def test_unknown_kind(world, capsys):
    code, out, err = cli(["train", "gan", "--data", world["npz"], "--atlas", world["atlas"], "--name", "x3"], capsys)
    assert_clean_error(code, out, err, "'gan'", "ae, vae, beta_vae, beta_tcvae")
    assert not (world["atlas"] / "runs" / "x3").exists()


def test_eval_of_an_unknown_run(world, capsys):
    code, out, err = cli(["eval", "nosuchrun", "--atlas", world["atlas"]], capsys)
    assert_clean_error(code, out, err, "'nosuchrun'", "r1")


def test_resume_needs_a_name(world, capsys):
    code, out, err = cli(["train", "vae", "--resume", "--atlas", world["atlas"]], capsys)
    assert_clean_error(code, out, err, "--resume", "--name")


def test_training_an_existing_name_is_refused_and_the_run_kept(world, capsys):
    before = {p: p.read_bytes() for p in world["r1"].glob("*") if p.is_file()}
    code, out, err = cli(["train", "vae", "--data", world["npz"], "--steps", "5", "--atlas", world["atlas"],
                          "--name", "r1", "--quiet"], capsys)
    assert_clean_error(code, out, err, "'r1'", "already exists", "--resume")
    assert {p: p.read_bytes() for p in world["r1"].glob("*") if p.is_file()} == before


def test_bad_projection_method(world, capsys):
    metrics = (world["r1"] / "metrics.json").read_bytes()
    code, out, err = cli(["eval", "r1", "--atlas", world["atlas"], "--projections", "pca,isomap"], capsys)
    assert_clean_error(code, out, err, "isomap", "pca, umap, tsne")
    assert (world["r1"] / "metrics.json").read_bytes() == metrics


@pytest.mark.parametrize("damage", ["half", "empty", "garbage"])
def test_corrupt_weights_are_named_and_left_alone(world, capsys, damage):
    dest = _copy_run(world, f"corrupt-{damage}")
    weights = dest / "model.safetensors"
    data = weights.read_bytes()
    weights.write_bytes({"half": data[: len(data) // 2], "empty": b"", "garbage": b"\x07" * 64}[damage])
    before = {p.name: p.read_bytes() for p in dest.glob("*") if p.is_file()}
    code, out, err = cli(["eval", f"corrupt-{damage}", "--atlas", world["atlas"], "--json"], capsys)
    assert_clean_error(code, out, err, str(weights))
    assert out == ""
    assert {p.name: p.read_bytes() for p in dest.glob("*") if p.is_file()} == before  # byte-identical, nothing new


def test_eval_of_a_run_without_weights(world, capsys):
    dest = _copy_run(world, "noweights")
    (dest / "model.safetensors").unlink()
    code, out, err = cli(["eval", "noweights", "--atlas", world["atlas"]], capsys)
    assert_clean_error(code, out, err, "'noweights'", "no trained model")


def test_eval_when_the_training_data_has_gone(world, tmp_path, capsys):
    npz = _bars_npz(tmp_path / "moving.npz")
    atlas = tmp_path / "atlas"
    assert _exit_code(["train", "vae", "--data", npz, "--steps", "3", "--atlas", atlas, "--name", "m", "--quiet"]) == 0
    npz.unlink()
    code, out, err = cli(["eval", "m", "--atlas", atlas], capsys)
    assert_clean_error(code, out, err, str(npz.resolve()), "does not exist")


class _Payload:
    """Unpickling this creates a folder: proof that a file was unpickled."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (os.mkdir, (self.path,))


def test_a_pickle_given_as_data_is_refused_unopened(world, tmp_path, capsys):
    marker = tmp_path / "unpickled"
    pt = tmp_path / "data.pt"
    pt.write_bytes(pickle.dumps(_Payload(str(marker))))
    code, out, err = cli(["train", "vae", "--data", pt, "--atlas", world["atlas"], "--name", "pt"], capsys)
    assert_clean_error(code, out, err, str(pt), ".npy/.npz")
    assert not marker.exists()
    assert not (world["atlas"] / "runs" / "pt").exists()


def test_an_object_array_in_npy_is_refused_unpickled(world, tmp_path, capsys):
    marker = tmp_path / "unpickled"
    npy = tmp_path / "data.npy"
    np.save(npy, np.array([_Payload(str(marker))], dtype=object), allow_pickle=True)
    code, out, err = cli(["train", "vae", "--data", npy, "--atlas", world["atlas"], "--name", "npy"], capsys)
    assert_clean_error(code, out, err, str(npy), "object array")
    assert not marker.exists()


def test_a_string_array_as_x_is_refused(world, tmp_path, capsys):
    npz = tmp_path / "strings.npz"
    np.savez(npz, x=np.array([["a", "b"], ["c", "d"]]))
    code, out, err = cli(["train", "vae", "--data", npz, "--atlas", world["atlas"], "--name", "s"], capsys)
    assert_clean_error(code, out, err, "'x'", str(npz), "numeric")
    assert not (world["atlas"] / "runs" / "s").exists()


@pytest.mark.parametrize("argv", [["eval", "r1", "--n", "5"], ["train"], ["train", "vae", "--latent-dim", "0"]])
def test_usage_errors_exit_2_without_a_traceback(world, capsys, argv):
    code, out, err = cli([*argv, "--atlas", world["atlas"]], capsys)
    assert code == 2
    assert "Traceback" not in out + err and err.strip()


def test_a_failed_train_leaves_no_run_behind(world, capsys):
    code, out, err = cli(["train", "vae", "--data", world["npz"], "--steps", "3", "--atlas", world["atlas"],
                          "--name", "baddevice", "--device", "nonsense", "--quiet"], capsys)
    assert_clean_error(code, out, err, "'nonsense'")
    # the same command with a good device must work now, not say "already exists"
    assert not (world["atlas"] / "runs" / "baddevice").exists()


def test_an_error_message_with_brackets_is_printed_not_parsed(world, tmp_path, capsys):
    missing = tmp_path / "a[/]b.npz"
    code, out, err = cli(["train", "vae", "--data", missing, "--atlas", world["atlas"]], capsys)
    assert_clean_error(code, out, err, str(missing))


def test_an_error_message_names_a_bracketed_path_verbatim(world, tmp_path, capsys):
    missing = tmp_path / "x[red]y.npz"
    code, out, err = cli(["train", "vae", "--data", missing, "--atlas", world["atlas"]], capsys)
    assert_clean_error(code, out, err, str(missing))


def test_debug_env_var_raises_instead_of_printing(world, monkeypatch):
    monkeypatch.setenv("LATENTATLAS_DEBUG", "1")
    with pytest.raises(LatentAtlasError, match="does not exist"):
        main(["train", "vae", "--data", str(world["root"] / "missing.npz"), "--atlas", str(world["atlas"])])


# -- the real console ---------------------------------------------------------------------------------


def _subprocess(*args, cwd):
    env = {k: v for k, v in os.environ.items() if k not in ("LATENTATLAS_DEBUG", "LATENTATLAS_ATLAS", *COLOUR_VARS)}
    env["COLUMNS"] = "400"
    return subprocess.run([sys.executable, "-m", "latentatlas.cli", *map(str, args)], capture_output=True,
                          text=True, cwd=cwd, env=env, timeout=120)


def test_console_error_is_one_line_and_exit_code_2(world, tmp_path):
    missing = tmp_path / "missing.npz"
    proc = _subprocess("train", "vae", "--data", missing, "--atlas", world["atlas"], cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert proc.stderr == f"error: data path '{missing}' does not exist.\n"


def test_console_debug_shows_the_traceback(tmp_path):
    # `runs` imports no torch, so these subprocesses are cheap. A damaged metrics.json hides that run's
    # metrics in the listing; a damaged config.json (the run's identity) is an error naming the file.
    run = tmp_path.resolve() / "atlas" / "runs" / "broken"
    run.mkdir(parents=True)
    (run / "config.json").write_text(json.dumps({"kind": "vae", "data": {"kind": "digits"}}))
    (run / "metrics.json").write_text('{"headline": {')
    proc = _subprocess("runs", "--atlas", tmp_path / "atlas", cwd=tmp_path)
    assert proc.returncode == 0 and "broken" in proc.stdout
    (run / "config.json").write_text('{"kind": ')
    proc = _subprocess("eval", "broken", "--atlas", tmp_path / "atlas", cwd=tmp_path)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.startswith("error: run config") and str(run / "config.json") in proc.stderr
    proc = _subprocess("eval", "broken", "--atlas", tmp_path / "atlas", "--debug", cwd=tmp_path)
    assert proc.returncode != 0
    assert "Traceback" in proc.stderr and "LatentAtlasError" in proc.stderr and "JSONDecodeError" in proc.stderr


def test_console_runs_json_is_clean_json(world, tmp_path):
    proc = _subprocess("runs", "--json", "--atlas", world["atlas"], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    rows = {row["name"]: row for row in json.loads(proc.stdout)}
    assert rows["r1"]["kind"] == "vae"


# -- resume -------------------------------------------------------------------------------------------


class _Kill(Exception):
    pass


def _train_until_killed(npz, atlas, name, kill_at, **kw):
    def on_step(step):
        if step == kill_at:
            raise _Kill

    with pytest.raises(_Kill):
        train_run("vae", str(npz), name=name, atlas=str(atlas), on_step=on_step, progress=False, **kw)


SMALL = ["--batch-size", "16", "--quiet"]


def test_resume_continues_from_the_checkpoint(world, tmp_path, capsys):
    atlas = tmp_path / "atlas"
    code, _, err = cli(["train", "vae", "--data", world["npz"], "--steps", "20", "--checkpoint-every", "5",
                        "--atlas", atlas, "--name", "whole", *SMALL], capsys)
    assert code == 0, err
    _train_until_killed(world["npz"], atlas, "cut", 13, steps=20, checkpoint_every=5, batch_size=16)
    assert json.loads((atlas / "runs" / "cut" / "checkpoint" / "latest.json").read_text())["step"] == 10
    assert not (atlas / "runs" / "cut" / "model.safetensors").exists()
    code, out, err = cli(["train", "vae", "--resume", "--name", "cut", "--atlas", atlas, "--quiet"], capsys)
    assert code == 0, err
    assert "trained cut for 20 steps (resumed from step 10)" in out
    assert _same_weights(_weights(atlas / "runs" / "cut"), _weights(atlas / "runs" / "whole"))
    assert not (atlas / "runs" / "cut" / "checkpoint").exists()
    history = [json.loads(line) for line in (atlas / "runs" / "cut" / "history.jsonl").read_text().splitlines()]
    assert [row["step"] for row in history] == [20]


def test_resume_of_a_finished_run_is_refused_and_changes_nothing(world, tmp_path, capsys):
    atlas = tmp_path / "atlas"
    argv = ["train", "vae", "--data", world["npz"], "--steps", "8", "--atlas", atlas, "--name", "done", *SMALL]
    assert cli(argv, capsys)[0] == 0
    dest = atlas / "runs" / "done"
    before = {p.name: p.read_bytes() for p in dest.iterdir() if p.is_file()}
    code, out, err = cli(["train", "vae", "--resume", "--name", "done", "--atlas", atlas, "--quiet"], capsys)
    assert_clean_error(code, out, err, "already finished its 8 steps")
    assert {p.name: p.read_bytes() for p in dest.iterdir() if p.is_file()} == before


@pytest.mark.slow
def test_resume_before_the_first_checkpoint_matches_an_uninterrupted_run(world, tmp_path, capsys):
    # README: "A run killed at any point continues with --resume --name NAME and ends with the same
    # weights as an uninterrupted run". A SIGKILL before the first checkpoint leaves only the config.
    import signal
    import time

    atlas = tmp_path / "atlas"
    args = ["train", "vae", "--data", world["npz"], "--steps", "1500", "--checkpoint-every", "100000", "--atlas", atlas, *SMALL]
    code, _, err = cli([*args, "--name", "whole"], capsys)
    assert code == 0, err
    proc = subprocess.Popen([sys.executable, "-m", "latentatlas.cli", *map(str, args), "--name", "early"], stderr=subprocess.PIPE)
    config = atlas / "runs" / "early" / "config.json"
    deadline = time.time() + 120
    while not config.is_file():
        assert time.time() < deadline and proc.poll() is None, proc.stderr.read() if proc.poll() is not None else "timeout"
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (atlas / "runs" / "early" / "checkpoint").exists() and not (atlas / "runs" / "early" / "model.safetensors").exists()
    code, _, err = cli(["train", "vae", "--resume", "--name", "early", "--atlas", atlas, "--quiet"], capsys)
    assert code == 0, err
    assert _same_weights(_weights(atlas / "runs" / "early"), _weights(atlas / "runs" / "whole"))


def test_a_train_that_fails_before_its_first_checkpoint_leaves_nothing(world, tmp_path, capsys):
    """An error (not a kill) before the first checkpoint removes the run, so the name is free again."""
    atlas = tmp_path / "atlas"
    _train_until_killed(world["npz"], atlas, "early", 3, steps=8, batch_size=16)
    assert not (atlas / "runs" / "early").exists()
    code, _, err = cli(["train", "vae", "--data", world["npz"], "--steps", "8", "--atlas", atlas, "--name", "early", *SMALL], capsys)
    assert code == 0, err


# -- demo ---------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_demo_trains_once_evaluates_and_prints_its_figures(tmp_path, capsys, monkeypatch):
    # BetaVAE/FactorVAE scores render and encode ~100k sprites at their default sizes (minutes on two
    # cores); their sample sizes are settings, not the model, so shrink them.
    evaluate_module = importlib.import_module("latentatlas.labs.vae.jobs")
    monkeypatch.setattr(evaluate_module, "FAST_SCORES", {
        "beta_vae": dict(batch_size=8, num_train=40, num_eval=20),
        "factor_vae": dict(batch_size=8, num_train=40, num_eval=20, num_variance_estimate=200),
    })
    atlas = tmp_path.resolve() / "atlas"
    run = atlas / "runs" / "demo"
    argv = ["demo", "--atlas", atlas, "--no-serve", "--steps", "3", "--n", "100"]  # a 64x64 conv net: tiny
    code, out, err = cli(argv, capsys)
    assert code == 0, err
    assert "training a β-TCVAE" in out
    assert f"demo figures: {run / 'figures'}" in out
    report = json.loads((run / "metrics.json").read_text())
    assert report["n"] == 100 and report["command"] == "latentatlas demo"
    assert {"mig", "dci_disentanglement", "sap", "modularity", "beta_vae", "factor_vae", "kl"} <= set(report["metrics"])
    cfg = json.loads((run / "config.json").read_text())
    assert cfg["kind"] == "beta_tcvae" and cfg["train"]["steps"] == 3 and cfg["model"]["input_shape"] == [1, 64, 64]
    for name in report["figures"]:
        assert str(run / "figures" / name) in out
        assert (run / "figures" / name).read_bytes()[:8] == PNG_MAGIC
    weights = (run / "model.safetensors").read_bytes()
    history = (run / "history.jsonl").read_bytes()

    code, out, err = cli(argv, capsys)
    assert code == 0, err
    assert "already trained" in out and "training a β-TCVAE" not in out
    assert (run / "model.safetensors").read_bytes() == weights
    assert (run / "history.jsonl").read_bytes() == history
    assert f"demo figures: {run / 'figures'}" in out
