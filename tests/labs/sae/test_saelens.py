"""SAEs saved in SAELens's format: folders built here by hand with SAELens's file and tensor names, read
into our SAE, whose encode and decode must equal the folder's weights applied by hand with SAELens's
formulas; then imported over a store, evaluated, and shown as feature pages; and bad folders refused."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from latentatlas.atlas import Atlas
from latentatlas.errors import LatentAtlasError
from latentatlas.labs.sae.jobs import capture_store, evaluate_sae, train_sae
from latentatlas.labs.sae.saelens import import_saelens, read_saelens
from latentatlas.models import load_model

D_IN, D_SAE = 32, 96


def write_saelens(folder, architecture="standard", *, d_in=D_IN, d_sae=D_SAE, seed=0, cfg=None, tensors=None, drop=(),
                  log_threshold=False, sparsity=True):
    """A folder as SAELens's save_model writes it: cfg.json, sae_weights.safetensors (W_enc [d_in, d_sae],
    b_enc, W_dec [d_sae, d_in], b_dec, and a JumpReLU's threshold) and sparsity.safetensors. Decoder rows
    have norms far from 1, and some JumpReLU thresholds are ≤ 0, so that every part of the mapping counts."""
    g = torch.Generator().manual_seed(seed)
    w = {
        "W_enc": torch.randn(d_in, d_sae, generator=g) * 0.3,
        "b_enc": torch.randn(d_sae, generator=g) * 0.5,
        "W_dec": torch.randn(d_sae, d_in, generator=g) * (0.2 + 2 * torch.rand(d_sae, 1, generator=g)),
        "b_dec": torch.randn(d_in, generator=g),
    }
    if architecture == "jumprelu":
        theta = torch.rand(d_sae, generator=g) * 1.5
        theta[:5] = torch.tensor([0.0, -0.3, -1.0, 0.0, -0.01])
        if log_threshold:
            w["log_threshold"] = (torch.rand(d_sae, generator=g) * 1.5 + 0.05).log()
        else:
            w["threshold"] = theta
    w.update(tensors or {})
    for key in drop:
        w.pop(key)
    c = {"architecture": architecture, "d_in": d_in, "d_sae": d_sae, "dtype": "float32", "device": "cpu",
         "apply_b_dec_to_input": True, "normalize_activations": "none", "hook_name": "blocks.1.hook_resid_post", "hook_layer": 1,
         "model_name": "tiny-bert", "activation_fn_str": "relu", "activation_fn_kwargs": {}, "context_size": 128,
         "sae_lens_training_version": "3.0.0"}
    if architecture == "topk":
        c.update(activation_fn_str="topk", activation_fn_kwargs={"k": 8})
    c.update(cfg or {})
    c = {k: v for k, v in c.items() if v is not ...}  # (... in ``cfg``: leave the key out)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "cfg.json").write_text(json.dumps(c))
    save_file({k: v.contiguous() for k, v in w.items()}, str(folder / "sae_weights.safetensors"))
    if sparsity:
        save_file({"sparsity": torch.log10(torch.rand(d_sae, generator=g) * 0.1 + 1e-6)}, str(folder / "sparsity.safetensors"))
    return folder, w, c


# -- SAELens's forward pass, written out from its documented formulas ------------------------------------------
def by_hand_encode(w, c, x):
    pre = (x - w["b_dec"] * c.get("apply_b_dec_to_input", True)) @ w["W_enc"] + w["b_enc"]
    act = c.get("activation_fn") or c.get("activation_fn_str") or ("topk" if c["architecture"] == "topk" else "relu")
    if c["architecture"] == "jumprelu":
        theta = w["threshold"] if "threshold" in w else w["log_threshold"].exp()
        return torch.relu(pre) * (pre > theta)
    if act == "topk":
        if c.get("rescale_acts_by_decoder_norm"):
            pre = pre * w["W_dec"].norm(dim=-1)
        k = c.get("k") or c["activation_fn_kwargs"]["k"]
        vals, idx = torch.topk(pre, k, dim=-1)
        return torch.zeros_like(pre).scatter(-1, idx, torch.relu(vals))
    return torch.relu(pre)


def by_hand_decode(w, c, f):
    if c.get("finetuning_scaling_factor"):
        f = f * w["scaling_factor"]
    if c.get("rescale_acts_by_decoder_norm"):
        f = f / w["W_dec"].norm(dim=-1)
    return f @ w["W_dec"] + w["b_dec"]


def _x(n=300, d=D_IN, seed=1):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, d, generator=g) * 1.5 + 0.5


CASES = {
    "standard": ("standard", {}, {}),
    "standard-no-b_dec-in": ("standard", {"apply_b_dec_to_input": False}, {}),
    "standard-finetuning-scale": ("standard", {"finetuning_scaling_factor": True}, {"scaling_factor": torch.linspace(0.5, 2.0, D_SAE)}),
    "pre6-standard-topk": ("standard", {"activation_fn_str": "topk", "activation_fn_kwargs": {"k": 8}}, {}),
    "topk": ("topk", {"k": 8, "activation_fn_str": ..., "activation_fn_kwargs": ...}, {}),
    "topk-rescaled-v6": ("topk", {"k": 8, "rescale_acts_by_decoder_norm": True, "activation_fn_str": ..., "activation_fn_kwargs": ...,
                                  "hook_name": ..., "model_name": ...,
                                  "metadata": {"hook_name": "blocks.1.hook_resid_post", "model_name": "tiny-bert", "sae_lens_version": "6.5.0"}}, {}),
    "jumprelu": ("jumprelu", {}, {}),
    "jumprelu-no-b_dec-in": ("jumprelu", {"apply_b_dec_to_input": False}, {}),
}


@pytest.mark.parametrize("case", list(CASES))
def test_our_encode_and_decode_equal_the_folders_weights_applied_by_hand(tmp_path, case):
    architecture, cfg, tensors = CASES[case]
    folder, w, c = write_saelens(tmp_path / case, architecture, cfg=cfg, tensors=tensors)
    model, info = read_saelens(folder)
    x = _x()
    want = by_hand_encode(w, c, x)
    with torch.no_grad():
        f = model.encode(x)
        torch.testing.assert_close(f, want, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(model.decode(want), by_hand_decode(w, c, want), rtol=1e-5, atol=1e-4)
        x_hat, f2 = model(x)
        torch.testing.assert_close(x_hat, by_hand_decode(w, c, want), rtol=1e-5, atol=1e-4)
    # the cases are not trivially equal: every part of the mapping changes the answer
    fired = (want > 0).float().sum(1)
    assert 0 < fired.mean() < D_SAE
    if "k" in cfg or "topk" in str(cfg.get("activation_fn_str")):
        assert torch.equal((f > 0).sum(1), (want > 0).sum(1)) and fired.max() <= 8 and fired.mean() > 6
    if architecture == "jumprelu":
        pre = (x - w["b_dec"] * c["apply_b_dec_to_input"]) @ w["W_enc"] + w["b_enc"]
        gated = (pre > 0) & ~(pre > w["threshold"])
        assert gated.any(), "some positive pre-activations must fall below their threshold"
        assert (f[:, :5] > 0).any(), "a threshold ≤ 0 lets every positive pre-activation through"
    if not c.get("apply_b_dec_to_input", True):
        wrong = torch.relu((x - w["b_dec"]) @ w["W_enc"] + w["b_enc"])
        assert not torch.allclose(wrong, torch.relu(want), atol=1e-3)
    if c.get("rescale_acts_by_decoder_norm"):
        assert info["rescale_acts_by_decoder_norm"] and model.rescaled
    elif architecture == "topk":
        assert not model.rescaled
    assert info["hook_name"] == "blocks.1.hook_resid_post" and info["model_name"] == "tiny-bert"
    assert info["sparsity"].shape == (D_SAE,)


def test_an_older_save_with_log_threshold(tmp_path):
    folder, w, c = write_saelens(tmp_path / "old", "jumprelu", log_threshold=True, sparsity=False)
    model, info = read_saelens(folder)
    x = _x()
    torch.testing.assert_close(model.encode(x).detach(), by_hand_encode(w, c, x), rtol=1e-5, atol=1e-5)
    assert info["sparsity"] is None


def test_bf16_weights_are_read_exactly(tmp_path):
    folder, w, c = write_saelens(tmp_path / "bf16", "standard", cfg={"dtype": "bfloat16"})
    bf = {k: v.to(torch.bfloat16) for k, v in w.items()}
    save_file(bf, str(folder / "sae_weights.safetensors"))
    model, info = read_saelens(folder)
    assert info["tensor_dtypes"]["W_enc"] == "BF16"
    x = _x()
    by_hand = by_hand_encode({k: v.float() for k, v in bf.items()}, c, x)
    torch.testing.assert_close(model.encode(x).detach(), by_hand, rtol=1e-5, atol=1e-5)


@pytest.fixture(scope="module")
def store(tiny_tf, tmp_path_factory):
    root = tmp_path_factory.mktemp("saelens-atlas")
    capture_store(tiny_tf["bert"], 1, tiny_tf["corpus"], tokens=600, name="acts", atlas=root, shard_tokens=200, batch_size=4, progress=False)
    return root


def test_an_imported_sae_is_evaluated_on_the_whole_store_and_has_feature_pages(store, tmp_path):
    from latentatlas.labs.sae.explore import SAEExplorer

    folder, w, c = write_saelens(tmp_path / "my-sae", "jumprelu", cfg={"apply_b_dec_to_input": False})
    run = import_saelens(folder, "acts", atlas=store)
    assert run.name == "saelens-my-sae"
    cfg = run.config()
    assert cfg["origin"] == {"format": "saelens", "folder": str(folder.resolve()), "architecture": "jumprelu",
                             "hook_name": "blocks.1.hook_resid_post", "model_name": "tiny-bert"}
    acts = Atlas(store).activations("acts")
    assert cfg["data"]["holdout"] == {"fraction": 1.0, "from_row": 0, "tokens": acts.n_tokens, "from_doc": 0}
    assert "train" not in cfg and Atlas(store).summary(run.name).status == "trained"
    # the saved run is the same SAE
    x = torch.from_numpy(acts.rows(np.arange(0, 300)))
    want = by_hand_encode(w, c, x)
    torch.testing.assert_close(load_model(run.path).encode(x).detach(), want, rtol=1e-5, atol=1e-5)

    report = evaluate_sae(run, progress=False, features=True, feature_tokens=acts.n_tokens)
    m = report["metrics"]
    assert report["rows"] == [0, acts.n_tokens] and report["held_out"] and report["n"] == acts.n_tokens
    assert any(n.startswith("imported from the saelens folder") for n in report["notes"])
    assert not any("NOT HELD OUT" in n for n in report["notes"]) and "dead_fraction_train" not in m
    x_all = torch.from_numpy(acts.rows(np.arange(acts.n_tokens)))
    f_all = by_hand_encode(w, c, x_all)
    err = (by_hand_decode(w, c, f_all) - x_all).pow(2).sum(1).mean()
    var = (x_all - x_all.mean(0)).pow(2).sum(1).mean()
    assert m["fvu"]["value"] == pytest.approx(float(err / var), rel=1e-3)
    assert m["l0"]["value"] == pytest.approx(float((f_all > 0).float().sum(1).mean()), rel=1e-4)
    assert "embedding_cosine" in m

    # the feature pages read the same SAE: a page's top example is that feature's largest activation
    ex = SAEExplorer(run)
    i = int(f_all.amax(0).argmax())
    page = ex.feature_page(i)
    assert page["fires"] == int((f_all[:, i] > 0).sum())
    top = page["top"][0]
    assert top["row"] == int(f_all[:, i].argmax()) and top["act"] == pytest.approx(float(f_all[:, i].max()), rel=1e-5)
    assert ex.feature_list(limit=5)


def test_import_through_the_cli_and_its_refusals(store, tmp_path, capsys):
    from latentatlas.cli import main

    folder, _, _ = write_saelens(tmp_path / "topk sae", "topk", cfg={"k": 8, "activation_fn_str": ..., "activation_fn_kwargs": ...})

    def cli(*args):
        with pytest.raises(SystemExit) as exc:
            main([str(a) for a in args])
        out = capsys.readouterr()
        return exc.value.code, out.out, out.err

    code, out, err = cli("sae", "import", folder, "--activations", "acts", "--name", "imp", "--atlas", store)
    assert code == 0, err
    assert "imported imp (topk, k=8, 96 latents on width 32)" in out and "latentatlas sae eval imp" in out
    code, _, err = cli("sae", "import", folder, "--activations", "acts", "--name", "imp", "--atlas", store)
    assert code == 2 and "run 'imp' already exists" in err
    wide, _, _ = write_saelens(tmp_path / "wide", d_in=48)
    code, _, err = cli("sae", "import", wide, "--activations", "acts", "--name", "wide", "--atlas", store)
    assert code == 2 and "reads activations of width 48 at blocks.1.hook_resid_post of tiny-bert" in err and "width 32" in err
    assert not Atlas(store).has_run("wide")
    code, _, err = cli("sae", "import", folder, "--activations", "nope", "--atlas", store)
    assert code == 2 and "store 'nope' was not found" in err
    with pytest.raises(LatentAtlasError, match="imported from saelens .* not trained here; there is nothing to resume"):
        train_sae("acts", name="imp", atlas=store, resume=True, progress=False)


def _bad(tmp_path, name, **kw):
    folder, _, _ = write_saelens(tmp_path / name, kw.pop("architecture", "standard"), **kw)
    return folder


BAD = {
    "missing cfg.json": (lambda f: (f / "cfg.json").unlink(), "cfg.json", "does not exist"),
    "cfg.json not JSON": (lambda f: (f / "cfg.json").write_text("{\"d_in\": 32,"), "cfg.json", "is not valid JSON"),
    "cfg.json a list": (lambda f: (f / "cfg.json").write_text("[1, 2]"), "cfg.json", "should hold a JSON object"),
    "d_in a string": (lambda f: _edit(f, d_in="32"), "cfg.json", "d_in"),
    "unknown architecture": (lambda f: _edit(f, architecture="gated"), "cfg.json", "architecture 'gated'"),
    "batchtopk training save": (lambda f: _edit(f, architecture="batchtopk"), "cfg.json", "save_inference_model"),
    "tanh-relu": (lambda f: _edit(f, activation_fn_str="tanh-relu"), "cfg.json", "activation_fn 'tanh-relu'"),
    "topk without k": (lambda f: _edit(f, activation_fn_str="topk", activation_fn_kwargs={}), "cfg.json", "without a whole k"),
    "constant_norm_rescale": (lambda f: _edit(f, normalize_activations="constant_norm_rescale"), "cfg.json", "'constant_norm_rescale'"),
    "expected_average_only_in": (lambda f: _edit(f, normalize_activations="expected_average_only_in"), "cfg.json", "scaling factor is not in the folder"),
    "missing weights": (lambda f: (f / "sae_weights.safetensors").unlink(), "sae_weights.safetensors", "do not exist"),
    "truncated weights": (lambda f: _truncate(f / "sae_weights.safetensors"), "sae_weights.safetensors", "truncated or corrupt"),
    "missing tensor": (lambda f: _retensor(f, drop="b_dec"), "sae_weights.safetensors", "lack tensor 'b_dec'"),
    "extra tensor": (lambda f: _retensor(f, add={"b_gate": torch.zeros(D_SAE)}), "sae_weights.safetensors", "tensor 'b_gate'"),
    "wrong shape": (lambda f: _retensor(f, add={"W_enc": torch.zeros(D_SAE, D_IN)}), "sae_weights.safetensors", "shape [96, 32]"),
    "NaN weights": (lambda f: _retensor(f, add={"W_dec": torch.full((D_SAE, D_IN), float("nan"))}), "sae_weights.safetensors", "NaN"),
    "integer weights": (lambda f: _retensor(f, add={"b_enc": torch.zeros(D_SAE, dtype=torch.int32)}), "sae_weights.safetensors", "stored as I32"),
    "bad sparsity": (lambda f: save_file({"sparsity": torch.zeros(3)}, str(f / "sparsity.safetensors")), "sparsity.safetensors", "'sparsity'"),
}


def _edit(folder, **changes):
    path = folder / "cfg.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), **changes}))


def _truncate(path):
    path.write_bytes(path.read_bytes()[:200])


def _retensor(folder, drop=None, add=None):
    from safetensors.torch import load_file

    path = folder / "sae_weights.safetensors"
    w = load_file(str(path))
    w.pop(drop, None)
    w.update(add or {})
    save_file(w, str(path))


@pytest.mark.parametrize("case", list(BAD))
def test_a_bad_folder_is_one_sentence_naming_its_file(tmp_path, case):
    spoil, file, expect = BAD[case]
    folder = _bad(tmp_path, "sae")
    spoil(folder)
    with pytest.raises(LatentAtlasError) as exc:
        read_saelens(folder)
    msg = str(exc.value)
    assert str(folder / file) in msg and expect in msg, msg
    assert "\n" not in msg


def test_a_jumprelu_folder_needs_its_threshold_and_no_folder_is_no_folder(tmp_path):
    folder = _bad(tmp_path, "j", architecture="jumprelu", drop=("threshold",))
    with pytest.raises(LatentAtlasError, match=re.escape(str(folder / "sae_weights.safetensors")) + ".*'threshold' or 'log_threshold'"):
        read_saelens(folder)
    with pytest.raises(LatentAtlasError, match="SAELens folder '.*nowhere' does not exist"):
        read_saelens(tmp_path / "nowhere")
