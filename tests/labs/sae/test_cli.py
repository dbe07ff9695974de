"""`latentatlas capture`, `sae train`, `sae eval` from the command line: outputs, files, and bad input."""

from __future__ import annotations

import json

import pytest

from latentatlas.cli import main


def _cli(capsys, *args):
    with pytest.raises(SystemExit) as exc:
        main([str(a) for a in args])
    out = capsys.readouterr()
    return exc.value.code, out.out, out.err


def test_capture_train_eval_round_trip(tiny_tf, tmp_path, capsys):
    atlas = tmp_path / "atlas"
    code, out, err = _cli(capsys, "capture", "--model", tiny_tf["bert"], "--layer", "1", "--corpus", tiny_tf["corpus"],
                          "--tokens", "1000", "--shard-tokens", "200", "--batch-size", "4", "--name", "acts", "--atlas", atlas, "--quiet")
    assert code == 0, err
    assert "captured 1,000 tokens × 32 at encoder.layer.1" in out
    index = json.loads((atlas / "activations" / "acts" / "index.json").read_text())
    assert index["complete"] and index["tokens"] == 1000 and index["corpus"]["kind"] == "text"
    code, out, err = _cli(capsys, "sae", "train", "--activations", "acts", "--arch", "topk", "--expansion", "2", "--k", "4",
                          "--steps", "20", "--batch-size", "64", "--name", "s", "--atlas", atlas, "--quiet")
    assert code == 0, err
    assert "trained s for 20 steps" in out
    code, out, err = _cli(capsys, "sae", "eval", "s", "--atlas", atlas, "--json")
    assert code == 0, err
    report = json.loads(out)
    assert report["kind"] == "sae" and report["metrics"]["l0"]["value"] == pytest.approx(4)
    assert report["metrics"]["fvu"]["ci_low"] <= report["metrics"]["fvu"]["value"] <= report["metrics"]["fvu"]["ci_high"]
    assert json.loads((atlas / "runs" / "s" / "metrics.json").read_text())["headline"]["l0"] == pytest.approx(4)
    assert "embedding_cosine" in report["metrics"]  # downstream is on by default
    code, out, err = _cli(capsys, "sae", "eval", "s", "--atlas", atlas, "--feature-tokens", "300", "--no-downstream")
    assert code == 0 and "fvu" in out and "explained_variance" in out and "embedding_cosine" not in out
    assert json.loads((atlas / "runs" / "s" / "features" / "features.json").read_text())["n_tokens"] == 300
    # a VAE command on an SAE run says what to use instead
    code, out, err = _cli(capsys, "vae", "eval", "s", "--atlas", atlas)
    assert code == 2 and "latentatlas sae eval s" in err
    # the top-level `eval` hands an SAE run to `sae eval`, with that command's options
    code, out, err = _cli(capsys, "eval", "s", "--atlas", atlas, "--json", "--no-downstream", "--feature-tokens", "200")
    assert code == 0, err
    assert json.loads(out)["kind"] == "sae" and "embedding_cosine" not in json.loads(out)["metrics"]
    assert json.loads((atlas / "runs" / "s" / "features" / "features.json").read_text())["n_tokens"] == 200


@pytest.mark.parametrize(
    "args, message",
    [
        (["capture", "--model", "./missing-model", "--tokens", "10"], "model folder './missing-model' does not exist"),
        (["capture", "--corpus", "nope.txt", "--tokens", "10"], "corpus 'nope.txt' does not exist"),
        (["sae", "train", "--activations", "nope"], "activation store 'nope' was not found"),
        (["sae", "train", "--activations", "acts", "--arch", "gated"], "is not an SAE architecture"),
        (["sae", "train", "--activations", "acts", "--resume"], "--resume needs --name"),
        (["sae", "eval", "nope"], "run 'nope' was not found"),
        (["sae", "sweep", "--activations", "nope", "--values", "8,16"], "activation store 'nope' was not found"),
        (["sae", "sweep", "--activations", "acts", "--values", "8,many"], "--values '8,many' is not a comma-separated list of numbers"),
        (["capture", "--model", "TINY", "--layer", "7", "--tokens", "10"], "--layer 7 is out of range"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(tiny_tf, tmp_path, capsys, args, message):
    atlas = tmp_path / "atlas"
    (atlas / "activations").mkdir(parents=True)
    args = [tiny_tf["bert"] if a == "TINY" else a for a in args]
    code, out, err = _cli(capsys, *args, "--atlas", atlas)
    assert code == 2, err
    assert message in err and "Traceback" not in err
    assert len(err.strip().splitlines()) <= 2  # one sentence (rich may wrap it once)


def test_sweep_draws_the_frontier_and_resumes(tiny_tf, tmp_path, capsys):
    atlas = tmp_path / "atlas"
    code, _, err = _cli(capsys, "capture", "--model", tiny_tf["bert"], "--layer", "1", "--corpus", tiny_tf["corpus"],
                        "--tokens", "1000", "--shard-tokens", "200", "--batch-size", "4", "--name", "acts", "--atlas", atlas, "--quiet")
    assert code == 0, err
    args = ["sae", "sweep", "--activations", "acts", "--arch", "topk", "--values", "2,8,16", "--expansion", "2", "--steps", "60",
            "--batch-size", "64", "--lr", "3e-3", "--name", "sw", "--atlas", atlas]
    code, out, err = _cli(capsys, *args, "--json")
    assert code == 0, err
    report = json.loads(out)
    front = report["frontier"]
    assert [p["run"] for p in front] == ["sw-k2", "sw-k8", "sw-k16"]
    assert [round(p["l0"]) for p in front] == [2, 8, 16]
    assert front[0]["fvu"] > front[2]["fvu"], "more active latents should reconstruct better"
    assert front[0]["rate_bits"] < front[1]["rate_bits"] < front[2]["rate_bits"]
    png = atlas / "runs" / "sw" / "figures" / "rate_distortion.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    stamp = (atlas / "runs" / "sw-k8" / "model.safetensors").stat().st_mtime_ns
    code, out, err = _cli(capsys, *args)  # again: members are reused, not retrained
    assert code == 0 and "sw-k16" in out
    assert (atlas / "runs" / "sw-k8" / "model.safetensors").stat().st_mtime_ns == stamp
