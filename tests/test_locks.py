"""One writer per run and per store: a second `--resume`, `eval`, `capture --resume` or server job on the same
run or store, in another process, gets one sentence naming the first writer and changes nothing."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time

import pytest
from conftest import sigkill_at_checkpoint

from latentatlas.atlas import Atlas
from latentatlas.errors import Busy

HOLD = """
import sys, time
from latentatlas.atlas import Atlas, writer_lock
from pathlib import Path
root, what, name = sys.argv[1:4]
atlas = Atlas(root)
lock = atlas.run(name).lock() if what == "run" else writer_lock(atlas.activations_path(name), "store", atlas)
with lock:
    print("held", flush=True)
    time.sleep(60)
"""


@pytest.fixture
def world(env, tmp_path):
    root = tmp_path / "atlas"
    shutil.copytree(env["atlas"].root, root)
    return root


def hold(root, what, name):
    """A process holding the lock of run (or store) ``name`` until killed."""
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(root), what, name], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "held"
    return proc


def cli(*args, cwd=None):
    env = {k: v for k, v in os.environ.items() if k != "LATENTATLAS_ATLAS"}
    env["COLUMNS"] = "400"
    return subprocess.run([sys.executable, "-c", "from latentatlas.cli import main; main()", *map(str, args)],
                          capture_output=True, text=True, env=env, timeout=300)


def one_line(proc, *needles):
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    assert len(lines) == 1 and lines[0].startswith("error:") and "Traceback" not in proc.stderr, proc.stderr
    for n in needles:
        assert n in lines[0], (n, lines[0])


def test_a_second_writer_of_a_run_gets_one_sentence_and_changes_nothing(world):
    run = world / "runs" / "r"
    before = {p: p.read_bytes() for p in run.rglob("*") if p.is_file() and p.name != ".lock"}
    holder = hold(world, "run", "r")
    try:
        one_line(cli("eval", "r", "--atlas", world, "--n", "50"), "run 'r' is being written by process", str(holder.pid))
        one_line(cli("vae", "eval", "r", "--atlas", world), "is being written")
        with pytest.raises(Busy):
            with Atlas(world).run("r").lock():
                pass
    finally:
        holder.kill()
        holder.wait()
    assert {p: p.read_bytes() for p in run.rglob("*") if p.is_file() and p.name != ".lock"} == before
    # the lock goes with the process that held it, however it ended
    with Atlas(world).run("r").lock():
        pass


def test_the_lock_is_reentrant_within_a_process(world):
    run = Atlas(world).run("r")
    with run.lock():
        with run.lock():
            pass
        holder = subprocess.run([sys.executable, "-c", HOLD, str(world), "run", "r"], capture_output=True, text=True, timeout=60)
        assert holder.returncode != 0 and "is being written by" in holder.stderr


@pytest.mark.slow
def test_two_resumes_of_one_run_do_not_both_run(tmp_path, tiny_npz):
    atlas = tmp_path / "atlas"
    train = [sys.executable, "-c", "from latentatlas.cli import main; main()", "train", "beta_tcvae", "--data", str(tiny_npz),
             "--latent-dim", "3", "--steps", "600", "--batch-size", "16", "--checkpoint-every", "3", "--name", "x", "--atlas", str(atlas), "--quiet"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(train, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    sigkill_at_checkpoint(proc, atlas / "runs" / "x" / "checkpoint" / "latest.json", 30)
    first = subprocess.Popen(train + ["--resume"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lock = atlas / "runs" / "x" / ".lock"
    deadline = time.time() + 60
    while not (lock.is_file() and f"process {first.pid} " in lock.read_text()):  # the killed run's lock file is still there
        assert time.time() < deadline and first.poll() is None
        time.sleep(0.01)
    second = subprocess.run(train + ["--resume"], env=env, capture_output=True, text=True, timeout=120)
    one_line(second, "run 'x' is being written by process")
    out, err = first.communicate(timeout=300)
    assert first.returncode == 0, err
    steps = [json.loads(line)["step"] for line in (atlas / "runs" / "x" / "history.jsonl").read_text().splitlines()]
    assert steps == sorted(set(steps)), "history rows were written twice"


def test_a_second_capture_into_one_store_gets_one_sentence(tmp_path, tiny_tf):
    from latentatlas.labs.sae.jobs import capture_store

    atlas = tmp_path / "atlas"
    capture_store(tiny_tf["bert"], 1, tiny_tf["corpus"], tokens=100, name="acts", atlas=atlas, shard_tokens=50, batch_size=4, progress=False)
    holder = hold(atlas, "store", "acts")
    try:
        proc = cli("sae", "capture", "--model", tiny_tf["bert"], "--layer", "1", "--corpus", tiny_tf["corpus"], "--tokens", "200",
                   "--name", "acts", "--atlas", atlas, "--quiet", "--resume")
        one_line(proc, "activation store 'acts' is being written by process")
    finally:
        holder.kill()
        holder.wait()


def test_a_server_job_on_a_locked_run_fails_with_the_reason(world):
    from fastapi.testclient import TestClient

    from latentatlas.server import create_app

    holder = hold(world, "run", "r")
    try:
        with TestClient(create_app(world), base_url="http://127.0.0.1") as c:
            job = c.post("/api/runs/r/projection/umap").json()["job"]
            deadline = time.time() + 60
            while job["state"] in ("queued", "running"):
                assert time.time() < deadline
                time.sleep(0.05)
                job = c.get(f"/api/jobs/{job['id']}").json()
            assert job["state"] == "failed" and "is being written by process" in job["error"]
            assert not (world / "runs" / "r" / "projections" / "eval-umap.safetensors").exists()
    finally:
        holder.kill()
        holder.wait()
