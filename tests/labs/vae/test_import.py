"""Your own embeddings as a run, nothing trained (`latentatlas vae import`): vectors from .npy, safetensors,
parquet or CSV, a metadata table whose text columns become named categories, and the map's routes on it."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from fastapi.testclient import TestClient
from safetensors.torch import save_file

from latentatlas.atlas import Atlas
from latentatlas.errors import LatentAtlasError
from latentatlas.labs.vae.jobs import evaluate_run, import_embeddings
from latentatlas.server import create_app


@pytest.fixture
def files(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((60, 8)).astype(np.float32)
    np.save(tmp_path / "v.npy", x)
    save_file({"emb": torch.from_numpy(x), "proj": torch.zeros(8, 2)}, str(tmp_path / "v.safetensors"))
    save_file({"emb": torch.from_numpy(x), "bias": torch.zeros(8)}, str(tmp_path / "one.safetensors"))
    pd.DataFrame({"embedding": list(x.astype(np.float64))}).to_parquet(tmp_path / "v.parquet")
    meta = pd.DataFrame({"kind": rng.choice(["cat", "dog", "bird"], 60), "score": rng.random(60), "text": [f"doc {i}" for i in range(60)],
                         "index": np.arange(60) * 2})
    meta.to_csv(tmp_path / "meta.csv", index=False)
    return tmp_path, x, meta


def test_import_npy_with_metadata_and_browse_it(files):
    tmp, x, meta = files
    run = import_embeddings(str(tmp / "v.npy"), str(tmp / "meta.csv"), name="e", atlas=str(tmp / "atlas"))
    arrays, rows = run.read_latents("eval")
    np.testing.assert_array_equal(arrays["mu"], x)
    # text with few values is a named category, a reserved name ("index") is renamed, numbers stay numbers
    assert set(rows.columns) >= {"index", "kind", "score", "meta_index"}
    factors = {f["name"]: f["value_names"] for f in run.read_latent_meta()["factors"]}
    assert factors["kind"] == ["bird", "cat", "dog"]
    assert [factors["kind"][int(c)] for c in rows["kind"]] == meta["kind"].tolist()
    np.testing.assert_allclose(rows["score"], meta["score"])
    assert run.read_projection("eval-pca") is not None and Atlas(tmp / "atlas").summary("e").status == "evaluated"
    with TestClient(create_app(tmp / "atlas"), base_url="http://127.0.0.1") as c:
        info = c.get("/api/runs/e").json()
        assert info["config"]["kind"] == "embeddings" and info["lab"] == "vae" and info["has_images"] is False and info["imported"] is True
        rec = c.get("/api/runs/e/inspect/4").json()
        assert rec["factor_names"]["kind"] == meta["kind"][4]
        nb = c.get("/api/runs/e/neighbours/4", params={"k": 3}).json()["neighbours"]
        cos = x @ x[4] / (np.linalg.norm(x, axis=1) * np.linalg.norm(x[4]))
        cos[4] = -np.inf
        assert [n["row"] for n in nb] == np.argsort(-cos)[:3].tolist()
        assert c.get("/api/runs/e/input/4.png").status_code == 404  # no images to show, said as 404
    with pytest.raises(LatentAtlasError, match="imported embeddings.*nothing to evaluate"):
        evaluate_run(run, n=10)


def test_safetensors_and_parquet_vectors(files):
    tmp, x, _ = files
    with pytest.raises(LatentAtlasError, match="2 2-D tensors .* name one with --key"):
        import_embeddings(str(tmp / "v.safetensors"), atlas=str(tmp / "atlas"))
    run = import_embeddings(str(tmp / "v.safetensors"), key="emb", name="s", atlas=str(tmp / "atlas"))
    np.testing.assert_array_equal(run.read_latents("eval")[0]["mu"], x)
    run = import_embeddings(str(tmp / "one.safetensors"), name="s1", atlas=str(tmp / "atlas"))  # its one 2-D tensor
    np.testing.assert_array_equal(run.read_latents("eval")[0]["mu"], x)
    run = import_embeddings(str(tmp / "v.parquet"), key="embedding", name="p", atlas=str(tmp / "atlas"))
    np.testing.assert_allclose(run.read_latents("eval")[0]["mu"], x, rtol=1e-6)


def test_bad_embeddings_are_one_sentence_and_leave_nothing(files):
    tmp, x, _ = files
    atlas = tmp / "atlas"
    np.save(tmp / "nan.npy", np.full((4, 3), np.nan, np.float32))
    np.save(tmp / "one.npy", np.zeros(5, np.float32))
    pd.DataFrame({"a": [1, 2]}).to_csv(tmp / "short.csv", index=False)
    (tmp / "bad.parquet").write_bytes(b"PAR1 not really")
    pd.DataFrame({"t": ["a", "b"]}).to_csv(tmp / "text.csv", index=False)
    cases = [(str(tmp / "missing.npy"), None, "does not exist"), (str(tmp / "nan.npy"), None, "NaN|finite"),
             (str(tmp / "one.npy"), None, r"shape \(5,\)"), (str(tmp / "v.npy"), str(tmp / "short.csv"), "2 rows for 60 vectors"),
             (str(tmp / "bad.parquet"), None, "not a readable .parquet"), (str(tmp / "text.csv"), None, "no numeric columns"),
             (str(tmp / "v.npy"), str(tmp / "v.npy"), "not a .parquet or .csv"), (str(tmp / "v.parquet"), None, "no numeric columns")]
    for vectors, meta, message in cases:
        with pytest.raises(LatentAtlasError, match=message):
            import_embeddings(vectors, meta, name="bad", atlas=str(atlas))
        assert not Atlas(atlas).has_run("bad")
