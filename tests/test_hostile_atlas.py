"""An atlas is untrusted input: a shared run folder may be hostile. Links out of the atlas are never followed
(on read or on write), every JSON file is validated before a value of it is used, a bad run is listed as bad
and never takes the others down (the CLI's `runs`, the server's runs list, every route), a store whose
index names files elsewhere is refused, and a model named by an atlas is never downloaded."""

from __future__ import annotations

import json
import os
import shutil

import numpy as np
import pytest
import torch
from fastapi.testclient import TestClient

from latentatlas.atlas import Atlas
from latentatlas.errors import LatentAtlasError

SECRET = b"\x89PNG\r\n\x1a\nsecret"


@pytest.fixture
def world(env, tmp_path):
    """A private copy of the shared tiny atlas (runs r, evaluated, and bare), and a secret outside it."""
    root = tmp_path / "atlas"
    shutil.copytree(env["atlas"].root, root)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.png").write_bytes(SECRET)
    return {"root": root, "atlas": Atlas(root), "outside": outside}


def client_for(root):
    from latentatlas.server import create_app

    return TestClient(create_app(root), base_url="http://127.0.0.1")


def every_get_route(run: str) -> list[str]:
    """One concrete URL per GET route of the API that takes a run."""
    return [f"/api/runs/{run}{s}" for s in ("", "/metrics", "/history", "/latents", "/latents/meta", "/latents/column.bin?name=index",
                                              "/latents/mu.bin", "/projection/pca.bin", "/figures/latent_map.png", "/input/0.png",
                                              "/reconstruction/0.png", "/inspect/0", "/decode.png?z=0,0,0", "/interpolate.png?a=0&b=1",
                                              "/directions", "/features", "/features/0")]


def every_post_route() -> list[tuple[str, dict]]:
    return [("/api/runs/{run}/decode", {"z": [0.0, 0.0, 0.0]}), ("/api/runs/{run}/interpolate", {"a": 0, "b": 1}),
            ("/api/runs/{run}/projection/umap", {}), ("/api/runs/{run}/probe", {"text": "a"}),
            ("/api/runs/{run}/steer", {"text": "a", "feature": 0})]


# -- links out of the atlas ------------------------------------------------------------------------------------
def test_a_run_folder_linked_out_of_the_atlas_is_bad_not_followed(world):
    atlas = world["atlas"]
    elsewhere = world["outside"] / "r-copy"
    shutil.copytree(atlas.runs_dir / "r", elsewhere)
    os.symlink(elsewhere, atlas.runs_dir / "linked")
    with pytest.raises(LatentAtlasError, match="leads outside the atlas"):
        atlas.run("linked")
    summary = {s.name: s for s in atlas.summaries()}
    assert summary["linked"].status == "bad" and "outside the atlas" in summary["linked"].error
    assert summary["r"].status == "evaluated"
    with client_for(world["root"]) as c:
        runs = {r["name"]: r for r in c.get("/api/runs").json()}
        assert runs["linked"]["status"] == "bad" and runs["r"]["status"] == "evaluated"
        for url in every_get_route("linked"):
            r = c.get(url)
            assert 400 <= r.status_code < 500, (url, r.status_code, r.text)
            assert b"secret" not in r.content


def test_linked_files_and_folders_inside_a_run_are_refused_on_read_and_write(world):
    run = world["atlas"].run("r")
    outside = world["outside"]
    # metrics.json a link to a file elsewhere: not read
    (outside / "metrics.json").write_text(run.file("metrics.json").read_text())
    run.file("metrics.json").unlink()
    os.symlink(outside / "metrics.json", run.path / "metrics.json")
    with pytest.raises(LatentAtlasError, match="leads outside the atlas"):
        run.read_metrics()
    # the projections folder a link to a folder elsewhere: nothing is written there
    shutil.rmtree(run.path / "projections")
    os.symlink(outside, run.path / "projections")
    with pytest.raises(LatentAtlasError, match="leads outside the atlas"):
        run.write_projection("eval-umap", np.zeros((3, 2), np.float32), {"method": "umap"})
    assert sorted(p.name for p in outside.iterdir()) == ["metrics.json", "secret.png"]
    with client_for(world["root"]) as c:
        r = c.post("/api/runs/r/projection/umap")
        assert r.status_code in (404, 422) and "outside the atlas" in r.json()["detail"]
        assert c.get("/api/runs").status_code == 200
    assert sorted(p.name for p in outside.iterdir()) == ["metrics.json", "secret.png"]


def test_a_linked_figure_is_not_served_or_listed(world):
    run = world["atlas"].run("r")
    os.symlink(world["outside"] / "secret.png", run.path / "figures" / "escape.png")
    with client_for(world["root"]) as c:
        assert "escape.png" not in c.get("/api/runs/r").json()["figures"]
        r = c.get("/api/runs/r/figures/escape.png")
        assert r.status_code == 404 and b"secret" not in r.content


def test_the_steering_cache_is_not_written_through_a_link(world):
    run = world["atlas"].run("r")
    run.file("features").mkdir(exist_ok=True)
    os.symlink(world["outside"] / "index.safetensors", run.path / "features" / "corpus_index.safetensors")
    with pytest.raises(LatentAtlasError, match="leads outside the atlas"):
        run.file("features", "corpus_index.safetensors")
    assert not (world["outside"] / "index.safetensors").exists()


# -- malformed JSON files ----------------------------------------------------------------------------------
CONFIGS = {
    "not an object": "[1, 2, 3]",
    "deep nesting": "[" * 50_000 + "]" * 50_000,
    "a huge integer": '{"name": "x", "kind": "vae", "train": {"steps": 1' + "0" * 5000 + "}}",
    "no kind": '{"name": "x"}',
    "unknown key": '{"name": "x", "kind": "vae", "evil": 1}',
    "kind with markup": '{"name": "x", "kind": "<script>"}',
    "steps a string": '{"name": "x", "kind": "vae", "train": {"steps": "many"}, "model": {}, "data": {"kind": "digits"}}',
    "truncated": '{"name": "x", "kind": "va',
    "not utf-8": b'{"name": "\xff\xfe"}',
}


@pytest.mark.parametrize("what", sorted(CONFIGS))
def test_a_malformed_config_makes_a_bad_run_and_nothing_else(world, what, capsys):
    from latentatlas.cli import main

    bad = world["root"] / "runs" / "x"
    shutil.copytree(world["root"] / "runs" / "r", bad)
    text = CONFIGS[what]
    (bad / "config.json").write_bytes(text if isinstance(text, bytes) else text.encode())
    summary = {s.name: s for s in world["atlas"].summaries()}
    assert summary["x"].status == "bad" and summary["x"].error and summary["r"].status == "evaluated"
    with pytest.raises(SystemExit) as exit_:
        main(["runs", "--atlas", str(world["root"])])
    out, err = capsys.readouterr()
    assert exit_.value.code == 0 and "bad" in out and " r " in out.replace("│", " ")
    with client_for(world["root"]) as c:
        assert {r["name"]: r["status"] for r in c.get("/api/runs").json()} == {"r": "evaluated", "bare": "trained", "x": "bad"}
        for url in every_get_route("x"):
            r = c.get(url)
            assert 400 <= r.status_code < 500, (url, r.status_code, r.text[:300])
            assert isinstance(r.json()["detail"], str)
        for url, body in every_post_route():
            r = c.post(url.format(run="x"), json=body)
            assert 400 <= r.status_code < 500, (url, r.status_code, r.text[:300])
    with pytest.raises(SystemExit) as exit_:
        main(["eval", "x", "--atlas", str(world["root"])])
    out, err = capsys.readouterr()
    assert exit_.value.code == 2 and err.startswith("error:") and "Traceback" not in err


METRICS = {
    "headline a string": {"headline": {"mig": "<b>high</b>"}},
    "metric value a list": {"metrics": {"mig": {"value": [1, 2]}}},
    "dims_by_kl out of range": {"dims_by_kl": [0, 7, 99]},
    "notes not strings": {"notes": [{"x": 1}]},
}


@pytest.mark.parametrize("what", sorted(METRICS))
def test_a_malformed_metrics_file_hides_the_metrics_not_the_run(world, what):
    path = world["root"] / "runs" / "r" / "metrics.json"
    report = json.loads(path.read_text())
    report.update(METRICS[what])
    path.write_text(json.dumps(report))
    summary = {s.name: s for s in world["atlas"].summaries()}
    assert summary["r"].metrics == {} and "metrics file" in summary["r"].error
    with client_for(world["root"]) as c:
        assert c.get("/api/runs").status_code == 200
        for url in every_get_route("r"):
            assert c.get(url).status_code < 500, url
        assert c.get("/api/runs/r/metrics").status_code == 422


def test_malformed_latents_are_one_sentence(world):
    run = world["atlas"].run("r")
    from latentatlas._io import atomic_save_safetensors

    arrays, rows = run.read_latents()
    cases = {
        "NaN means": {**{k: torch.from_numpy(v) for k, v in arrays.items()}, "mu": torch.full(arrays["mu"].shape, float("nan"))},
        "a 1-D mu": {"mu": torch.zeros(10)},
        "logvar of another shape": {"mu": torch.from_numpy(arrays["mu"]), "logvar": torch.zeros(3, 3)},
        "fewer rows than the table": {"mu": torch.from_numpy(arrays["mu"][:-5])},
        "another width than the model's": {"mu": torch.zeros(arrays["mu"].shape[0], 5)},
    }
    with client_for(world["root"]) as c:
        for what, tensors in cases.items():
            atomic_save_safetensors(run.file("latents", "eval.safetensors"), tensors)
            if what != "another width than the model's":  # consistent in itself; the explorer compares it with the model
                with pytest.raises(LatentAtlasError):
                    run.read_latents()
            for url in every_get_route("r"):
                r = c.get(url)
                assert r.status_code < 500, (what, url, r.text[:200])
            for url, body in every_post_route():
                r = c.post(url.format(run="r"), json=body)
                assert r.status_code < 500, (what, url, r.text[:200])
            assert c.get("/api/runs/r/latents/meta").status_code == 422, what


def test_a_checkpoint_pointer_is_checked(world, tmp_path):
    run = world["atlas"].run("bare")
    run.file("checkpoint").mkdir()
    for pointer in ({"step": 5, "folder": "../../r"}, {"step": -1, "folder": "step--0000001"}, {"step": "5", "folder": "step-000000005"},
                    {"step": 5, "folder": "step-000000005", "evil": 1}):
        run.file("checkpoint", "latest.json").write_text(json.dumps(pointer))
        with pytest.raises(LatentAtlasError, match="checkpoint pointer .* is invalid"):
            run.read_checkpoint()


# -- stores ---------------------------------------------------------------------------------------------------
@pytest.fixture
def store(tmp_path):
    """A tiny valid store written by StoreWriter (3 shards), inside an atlas."""
    from latentatlas.activations import StoreWriter

    root = tmp_path / "atlas"
    path = root / "activations" / "acts"
    writer = StoreWriter(path, {"d": 4, "layer": "x", "model": {"name": "minilm"}})
    rng = np.random.default_rng(0)
    for _ in range(3):
        writer.write_shard(rng.normal(size=(10, 4)).astype(np.float32), {"doc": np.zeros(10, np.int64), "pos": np.arange(10), "token_id": np.arange(10),
                                                                           "token": np.array(["t"] * 10), "norm": np.ones(10)},
                           {"doc": [0], "source": ["s"], "text": ["t"]}, 1)
    writer.finish({})
    return {"root": root, "path": path, "index": json.loads((path / "index.json").read_text())}


@pytest.mark.parametrize("file", ["../../secret.safetensors", "/etc/passwd", "shard-00000.safetensors/../../x", "subdir/shard-00000.safetensors"])
def test_a_store_index_naming_files_elsewhere_is_refused(store, file):
    index = store["index"]
    index["shards"][0]["file"] = file
    (store["path"] / "index.json").write_text(json.dumps(index))
    with pytest.raises(LatentAtlasError, match="activation store index .* is invalid at shards.0.file"):
        Atlas(store["root"]).activations("acts")


def test_a_linked_shard_is_refused(store, tmp_path):
    victim = tmp_path / "victim.safetensors"
    shutil.copy(store["path"] / "shard-00001.safetensors", victim)
    (store["path"] / "shard-00001.safetensors").unlink()
    os.symlink(victim, store["path"] / "shard-00001.safetensors")
    s = Atlas(store["root"]).activations("acts")
    with pytest.raises(LatentAtlasError, match="is a link"):
        s.rows(np.array([15]))
    with pytest.raises(LatentAtlasError, match="is a link"):
        s.shard_array(1)
    assert s.rows(np.array([0, 5])).shape == (2, 4)  # the other shards still read


@pytest.mark.parametrize("change, field", [
    (lambda ix: ix["shards"][1].update(first_row=3), "the top level: shard 1 starts at row 3"),
    (lambda ix: ix["shards"][0].update(rows=-4), "shards.0.rows"),
    (lambda ix: ix["shards"][0].update(rows=10**15), "shards.0.rows"),
    (lambda ix: ix.update(d="4"), "d"),
    (lambda ix: ix.update(d=0), "d"),
    (lambda ix: ix.update(format=2), "format"),
    (lambda ix: ix.update(model={"hub": "a", "path": "/b"}), "model"),
    (lambda ix: ix["shards"][0].update(bytes=10**12), "the top level: shard 0 claims"),
    (lambda ix: ix["shards"].append(dict(ix["shards"][0])), "the top level: shard 3 starts"),
])
def test_a_malformed_store_index_is_one_sentence(store, change, field):
    index = store["index"]
    change(index)
    (store["path"] / "index.json").write_text(json.dumps(index))
    with pytest.raises(LatentAtlasError, match=f"is invalid at {field}"):
        Atlas(store["root"]).activations("acts")


def test_a_model_named_by_a_store_is_never_downloaded(monkeypatch):
    import socket

    from latentatlas.models.hf import load_transformer

    def no_network(*a, **kw):
        raise AssertionError("a network connection was attempted for a model named by an atlas")

    monkeypatch.setattr(socket, "create_connection", no_network)
    monkeypatch.setattr(socket.socket, "connect", no_network)
    with pytest.raises(LatentAtlasError, match="never downloaded"):
        load_transformer({"hub": "someone/not-cached-anywhere"})
