import json

import numpy as np
import pandas as pd
import pytest

from latentatlas.atlas import Atlas, check_name, resolve_atlas_path
from latentatlas.errors import LatentAtlasError


@pytest.mark.parametrize("bad", ["..", "../x", "a/b", "/abs", ".hidden", "", "a" * 200, "x\\y", "%2e%2e"])
def test_names_that_could_leave_the_atlas_are_refused(bad):
    with pytest.raises(LatentAtlasError, match="not allowed"):
        check_name(bad)


def test_atlas_location_precedence(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("LATENTATLAS_ATLAS", raising=False)
    assert resolve_atlas_path() == tmp_path / "atlas"
    monkeypatch.setenv("LATENTATLAS_ATLAS", str(tmp_path / "env"))
    assert resolve_atlas_path() == tmp_path / "env"
    assert resolve_atlas_path(tmp_path / "flag") == tmp_path / "flag"


def test_create_list_and_open_runs(atlas_dir):
    atlas = Atlas(atlas_dir)
    assert atlas.run_names() == []
    atlas.create_run("b", {"kind": "vae", "data": {"kind": "digits"}, "train": {"steps": 3}})
    atlas.create_run("a", {"kind": "ae", "data": {"kind": "sprites"}})
    assert atlas.run_names() == ["a", "b"]
    assert atlas.run("b").config()["created_at"]
    with pytest.raises(LatentAtlasError, match="already exists"):
        atlas.create_run("a", {"kind": "vae"})
    with pytest.raises(LatentAtlasError, match="run 'zz' was not found.*runs there: a, b"):
        atlas.run("zz")
    summaries = {s.name: s for s in atlas.summaries()}
    assert summaries["b"].kind == "vae" and summaries["b"].data == "digits" and summaries["b"].steps == 3
    assert atlas.unique_run_name("a") == "a-2"


def test_history_truncation_keeps_only_rows_up_to_the_checkpoint(atlas_dir):
    run = Atlas(atlas_dir).create_run("r", {"kind": "vae"})
    run.append_history([{"step": s, "loss": float(s)} for s in (10, 20, 30)])
    with open(run.history_path, "a") as fh:
        fh.write('{"step": 40, "lo')  # cut short by a kill
    assert [r["step"] for r in run.read_history()] == [10, 20, 30]
    run.truncate_history(20)
    assert [r["step"] for r in run.read_history()] == [10, 20]


def test_checkpoint_commit_point_is_latest_json(atlas_dir):
    import torch

    run = Atlas(atlas_dir).create_run("r", {"kind": "vae"})

    def parts(value):
        return {"model": {"w": torch.full((2,), value)}, "optimizer": {"0.exp_avg": torch.zeros(2)}, "rng": {"torch_cpu": torch.get_rng_state()}}

    def meta(step):
        return {"step": step, "optimizer": {"param_groups": [{"lr": 0.1, "params": [0]}], "scalars": {}}, "train": {"steps": 20}}

    run.write_checkpoint(5, parts(1.0), meta(5))
    run.write_checkpoint(10, parts(2.0), meta(10))
    step, parts, meta = run.read_checkpoint()
    assert step == 10 and torch.equal(parts["model"]["w"], torch.full((2,), 2.0)) and meta["step"] == 10
    assert [p.name for p in run.checkpoint_dir.glob("step-*")] == ["step-000000010"]
    # a half-written next checkpoint (no latest.json flip yet) is ignored
    (run.checkpoint_dir / "step-000000015").mkdir()
    (run.checkpoint_dir / "step-000000015" / "model.safetensors").write_bytes(b"junk")
    assert run.read_checkpoint()[0] == 10
    (run.checkpoint_dir / "latest.json").write_text("{not json")
    with pytest.raises(LatentAtlasError, match="checkpoint pointer .* corrupt"):
        run.read_checkpoint()


def test_latents_and_projections_roundtrip(atlas_dir):
    run = Atlas(atlas_dir).create_run("r", {"kind": "vae"})
    mu = np.random.default_rng(0).normal(size=(7, 3)).astype(np.float32)
    run.write_latents({"mu": mu}, pd.DataFrame({"index": np.arange(7), "shape": [0, 1, 2, 0, 1, 2, 0]}))
    arrays, rows = run.read_latents()
    assert np.array_equal(arrays["mu"], mu) and list(rows["shape"]) == [0, 1, 2, 0, 1, 2, 0]
    run.write_projection("eval-pca", mu[:, :2], {"method": "pca"})
    coords, params = run.read_projection("eval-pca")
    assert np.array_equal(coords, mu[:, :2]) and params == {"method": "pca"}
    assert run.read_projection("eval-umap") is None
    with pytest.raises(LatentAtlasError):
        run.read_projection("../../x")


def test_no_temporary_files_are_left_behind(atlas_dir):
    run = Atlas(atlas_dir).create_run("r", {"kind": "vae"})
    run.write_metrics({"a": 1})
    run.update_config(extra=2)
    leftovers = [p for p in run.path.rglob("*") if p.name.endswith(".tmp")]
    assert leftovers == []
    assert json.loads((run.path / "metrics.json").read_text()) == {"a": 1}


def test_failed_write_keeps_the_old_file(atlas_dir, monkeypatch):
    run = Atlas(atlas_dir).create_run("r", {"kind": "vae"})
    run.write_metrics({"old": True})

    class Unserialisable:
        pass

    with pytest.raises(TypeError):
        run.write_metrics({"new": Unserialisable()})
    assert json.loads((run.path / "metrics.json").read_text()) == {"old": True}
    assert not [p for p in run.path.iterdir() if p.name.endswith(".tmp")]
