"""The module graph job, its routes and its command: a VAE run's graph (traced through ``loss`` on its own
data), a tiny GPT-2's (stored in the lab's ``attention`` run, with an `sae capture` command that runs), a
diffusers AutoencoderKL folder's; bad input is one sentence (HTTP 4xx, exit 2); a damaged graph.json is
refused by its schema."""

from __future__ import annotations

import json
import shlex

import pytest
from fastapi.testclient import TestClient

from latentatlas.atlas import Atlas
from latentatlas.errors import LatentAtlasError
from latentatlas.labs.attention import graph
from latentatlas.server import create_app



@pytest.fixture(autouse=True)
def _wide_console(monkeypatch):
    monkeypatch.setenv("COLUMNS", "400")  # rich wraps at 80 columns when captured; tmp paths are long


def cli(argv, capsys):
    """Run the command in-process; (exit code, stdout, stderr)."""
    from latentatlas.cli import main

    capsys.readouterr()
    with pytest.raises(SystemExit) as exc:
        main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return exc.value.code, out, err


@pytest.fixture(scope="module")
def lab(tmp_path_factory, tiny_tf, bars):
    from latentatlas.labs.vae.jobs import train_run

    root = tmp_path_factory.mktemp("graph-atlas")
    npz = bars.save(root / "bars.npz", *bars.make(64, positions=4, widths=2, size=16))
    atlas = Atlas(root / "atlas")
    train_run("vae", str(npz), latent_dim=2, steps=2, batch_size=16, name="v", atlas=atlas, progress=False)
    subject, vrun = graph.resolve("v", atlas)
    vdoc = graph.build(subject, vrun)
    subject, grun = graph.resolve(tiny_tf["gpt2"], atlas)
    gdoc = graph.build(subject, grun)
    return {"atlas": atlas, "vae": vrun, "vdoc": vdoc, "gpt": grun, "gdoc": gdoc,
            "client": TestClient(create_app(atlas.root), base_url="http://127.0.0.1")}


def test_a_vae_run_is_traced_through_its_loss_on_its_own_data(lab):
    doc, run = lab["vdoc"], lab["vae"]
    assert graph.graph_file(run).is_file() and doc["method"] == "loss" and doc["inputs"] == {"x": [4, 1, 16, 16]}
    model = run.load_model()
    s = graph.summary(doc)
    assert s["modules"] == len(list(model.named_modules())) - 1 and s["parameters"] == sum(p.numel() for p in model.parameters())
    g = graph.read(run)
    assert ("encoder" in g.nodes and "decoder" in g.nodes and any(n.label == "randn_like" for n in g.nodes.values()))
    v = graph.view(run, graph.read_doc(run), [])
    enc = next(n for n in v["nodes"] if n["id"] == "encoder")
    assert enc["expandable"] and enc["capture"] is None and "transformers language models" in enc["capture_note"]


def test_the_graph_routes(lab):
    client, run = lab["client"], lab["gpt"]
    assert client.get(f"/api/runs/{run.name}/graph/exists").json() == {"graph": True}
    closed = client.get(f"/api/runs/{run.name}/graph").json()
    ids = {n["id"] for n in closed["nodes"]}
    assert {"transformer", "lm_head", ".in.input_ids", ".out"} <= ids and closed["frames"] == []
    opened = client.get(f"/api/runs/{run.name}/graph", params={"expanded": "transformer,transformer.h"}).json()
    ids = {n["id"] for n in opened["nodes"]}
    assert {"transformer.h.0", "transformer.h.1", "transformer.wte"} <= ids and "transformer" not in ids
    assert [f["id"] for f in opened["frames"]] == ["transformer", "transformer.h"]
    for e in opened["edges"]:
        assert e["from"] in ids and e["to"] in ids and len(e["points"]) >= 2
    block = next(n for n in opened["nodes"] if n["id"] == "transformer.h.0")
    assert block["params_total"] > 0 and block["shapes"] == [[1, lab["gdoc"]["inputs"]["input_ids"][1], 32]] and set(block["stats"]) == {"mean", "std", "zeros", "norm"}
    r = client.get(f"/api/runs/{run.name}/graph", params={"expanded": "transformer.hh"})
    assert r.status_code == 422 and "module 'transformer.hh' is not in the graph of" in r.json()["detail"] and "transformer.h" in r.json()["detail"]
    r = client.get(f"/api/runs/{run.name}/graph", params={"expanded": "x" * 20_001})
    assert r.status_code == 422
    client.get(f"/api/runs/{run.name}/graph")
    other = lab["atlas"].create_run("empty", {"kind": "attention", "model": {"spec": {"name": "minilm"}}})
    assert client.get(f"/api/runs/{other.name}/graph/exists").json() == {"graph": False}
    r = client.get(f"/api/runs/{other.name}/graph")
    assert r.status_code == 404 and "latentatlas attention graph empty" in r.json()["detail"]


def test_the_capture_command_in_the_panel_runs(lab, tiny_tf, capsys):
    view = graph.view(lab["gpt"], lab["gdoc"], ["transformer", "transformer.h"])
    block = next(n for n in view["nodes"] if n["id"] == "transformer.h.1")
    assert block["capture"] == f"latentatlas sae capture --model {shlex.quote(tiny_tf['gpt2'])} --layer transformer.h.1"
    argv = shlex.split(block["capture"])[1:] + ["--corpus", tiny_tf["corpus"], "--tokens", "30", "--name", "from-graph",
                                                "--atlas", str(lab["atlas"].root), "--quiet", "--device", "cpu"]
    code, out, err = cli(argv, capsys)
    assert code == 0, err
    index = json.loads((lab["atlas"].activations_path("from-graph") / "index.json").read_text())
    assert index["layer"] == "transformer.h.1" and index["d"] == 32


def test_a_damaged_graph_file_is_refused(lab, tmp_path):
    run = lab["atlas"].create_run("damaged", {"kind": "attention", "model": {"spec": {"name": "minilm"}}})
    doc = json.loads(json.dumps(lab["vdoc"]))
    doc["edges"].append(["encoder", "nowhere"])
    graph.graph_file(run).parent.mkdir(parents=True)
    graph.graph_file(run).write_text(json.dumps(doc))
    with pytest.raises(LatentAtlasError, match=r"module graph '.*graph.json' is invalid at .*names a node that is not in the graph"):
        graph.read(run)
    r = lab["client"].get(f"/api/runs/{run.name}/graph")
    assert r.status_code == 422 and "invalid" in r.json()["detail"]


def test_a_diffusers_autoencoder_folder(lab, tmp_path):
    import torch
    from diffusers import AutoencoderKL

    torch.manual_seed(0)
    AutoencoderKL(block_out_channels=(8, 16), down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2,
                  latent_channels=2, norm_num_groups=4, sample_size=16, layers_per_block=1).save_pretrained(tmp_path / "kl", safe_serialization=True)
    subject, run = graph.resolve(str(tmp_path / "kl"), lab["atlas"])
    doc = graph.build(subject, run)
    assert run.config()["model"]["spec"] == {"path": str((tmp_path / "kl").resolve()), "library": "diffusers"}
    assert doc["inputs"] == {"sample": [1, 3, 16, 16]} and doc["capture_model"] is None
    again, same = graph.resolve(run.name, lab["atlas"])  # the run reopens the folder it names
    assert same.name == run.name and type(again.model).__name__ == "AutoencoderKL"


def test_the_command(lab, capsys):
    root = str(lab["atlas"].root)
    code, out, err = cli(["attention", "graph", "v", "--atlas", root, "--no-serve"], capsys)
    assert code == 0 and "modules" in out and "ops" in out and "parameters" in out and "run v" in out
    code, out, err = cli(["attention", "graph", "v", "--atlas", root, "--no-serve", "--tracer", "export"], capsys)
    assert code == 0 and "note:" in err and "traced with hooks instead" in err  # a model's loss is not exported
    for argv, needle in [(["--tracer", "fx"], "--tracer 'fx' is not one of hooks, export"),
                         (["--expand", "encodr"], "module 'encodr' is not in run 'v'; the nearest names: encoder"),
                         (["--text", "hello"], "--text is for language models")]:
        code, out, err = cli(["attention", "graph", "v", "--atlas", root, "--no-serve", *argv], capsys)
        assert code == 2 and needle in err and "Traceback" not in err, err
    code, out, err = cli(["attention", "graph", "./no-such-folder", "--atlas", root, "--no-serve"], capsys)
    assert code == 2 and "does not exist" in err


def test_the_notebook_functions(lab):
    import torch

    import latentatlas as la

    run, doc = la.graph("v", lab["atlas"])
    assert run.name == "v" and graph.summary(doc) == graph.summary(lab["vdoc"])
    g = la.trace(torch.nn.Sequential(torch.nn.Linear(2, 2)), torch.zeros(1, 2))
    assert g.modules == ["", "0"]
