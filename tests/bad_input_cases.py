"""Data for tests/test_bad_input.py: the bad inputs, built on disk, and the table of cases that use them.

``build_inputs(root, tiny_tf, bars)`` writes every bad file, model folder and corpus under ``root/bad`` and
an atlas template under ``root/atlas`` (runs ``v`` (VAE), ``s`` (SAE), broken runs, the store ``acts`` and
broken stores), and returns the placeholders the cases are written with: ``{bad}``, ``{bars}``, ``{bert}``,
``{corpus}``, ``{jsonl}``. The test adds ``{atlas}`` (a fresh copy of the template per case), ``{tmp}``
(an empty folder of the case's own), ``{busy}`` (a port that is already bound) and ``{free}`` (one that
is not).

Every case is (id, argv, expected substrings of the one error sentence[, time bound in seconds]). The
argv of a case is a good command with one bad input put last: click keeps the last value of an option
given twice, so ``[*TRAIN, "--seed", "-1"]`` is ``vae train`` with ``--seed -1``.
"""

from __future__ import annotations

import io
import json
import shutil
import struct
import zipfile
import zlib
from pathlib import Path

import numpy as np

I63, I64, TERA = str(2**63), str(2**64), str(10**12)  # overflows int64, overflows uint64, 10^12

# -- the inputs ---------------------------------------------------------------------------------------


def _npy_header(shape, descr="<f4") -> bytes:
    from numpy.lib import format as npformat

    buf = io.BytesIO()
    npformat.write_array_header_1_0(buf, {"descr": descr, "fortran_order": False, "shape": tuple(shape)})
    return buf.getvalue()


def _png_claiming(path: Path, width: int, height: int) -> None:
    """A tiny PNG whose header claims width x height pixels (a decompression bomb)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b""))


def _data_files(bad: Path, bars) -> Path:
    x, factors = bars.make(64, positions=8, widths=2, size=8)
    good = bars.save(bad / "bars.npz", x, factors)
    raw = good.read_bytes()
    (bad / "trunc.npz").write_bytes(raw[: len(raw) // 2])
    np.save(bad / "good.npy", x)
    npy = (bad / "good.npy").read_bytes()
    (bad / "trunc.npy").write_bytes(npy[: len(npy) // 2])
    # headers that claim terabytes over a few bytes of data
    (bad / "huge_header.npy").write_bytes(_npy_header((10**9, 1000)) + b"\0" * 64)
    with zipfile.ZipFile(bad / "huge_header.npz", "w") as z:
        z.writestr("x.npy", _npy_header((10**9, 1000)) + b"\0" * 64)
    # zero-width arrays
    np.save(bad / "zero_width.npy", np.zeros((64, 0), np.float32))
    np.save(bad / "zero_width_img.npy", np.zeros((64, 1, 8, 0), np.float32))
    np.save(bad / "zero_channels.npy", np.zeros((64, 0, 8, 8), np.float32))
    np.savez(bad / "zero_width.npz", x=np.zeros((64, 0), np.float32), factors=factors)
    # wrong kinds of array
    np.save(bad / "object.npy", np.array([1, "a", None], dtype=object), allow_pickle=True)
    np.save(bad / "structured.npy", np.zeros(64, dtype=[("a", "<f4"), ("b", "<i4")]))
    np.save(bad / "complex.npy", np.zeros((64, 4), np.complex64))
    np.save(bad / "scalar.npy", np.float32(1.0))
    np.save(bad / "onedim.npy", np.zeros(64, np.float32))
    np.save(bad / "fivedim.npy", np.zeros((4, 1, 2, 8, 8), np.float32))
    np.save(bad / "nan.npy", np.full((64, 4), np.nan, np.float32))
    (bad / "empty.npy").write_bytes(b"")
    (bad / "garbage.npy").write_bytes(b"\x07" * 256)
    (bad / "text.npy").write_text("hello, this is not an array\n")
    (bad / "dir.npz").mkdir()
    (bad / "data.csv").write_text("a,b\n1,2\n")
    np.savez(bad / "labels_short.npz", x=x, labels=np.zeros(3, np.int64))
    # image folders
    (bad / "imgs_empty").mkdir()
    (bad / "imgs_corrupt" / "a").mkdir(parents=True)
    (bad / "imgs_corrupt" / "a" / "one.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 40)
    (bad / "imgs_bomb" / "a").mkdir(parents=True)
    _png_claiming(bad / "imgs_bomb" / "a" / "bomb.png", 100_000, 100_000)
    return good


def _corpora(bad: Path) -> None:
    deep = 100_000
    (bad / "nested.jsonl").write_text('{"text": "a fine line of text"}\n' + '{"text": "x", "deep": ' + "[" * deep + "]" * deep + "}\n")
    (bad / "nested_text.jsonl").write_text('{"text": ' + "[" * deep + "]" * deep + "}\n")
    (bad / "bigint.jsonl").write_text('{"text": "a line", "n": ' + "9" * 5000 + "}\n")
    (bad / "bad_utf8.jsonl").write_bytes(b'{"text": "caf\xe9 au lait, a line"}\n')
    (bad / "bad_utf8.txt").write_bytes(b"caf\xe9 au lait is a drink.\n\nanother paragraph\n")
    (bad / "empty.txt").write_text("")
    (bad / "blank.jsonl").write_text("\n\n   \n")
    (bad / "corpus.csv").write_text("text\nhello\n")
    (bad / "corpus_empty_dir").mkdir()
    # one paragraph far longer than the tiny BERT's 128 positions
    (bad / "long.txt").write_text(" ".join(f"word{i} and more" for i in range(400)) + "\n")


def _model_folders(bad: Path, bert: Path) -> None:
    def clone(name: str, skip=()) -> Path:
        dest = bad / name
        shutil.copytree(bert, dest, ignore=shutil.ignore_patterns(*skip))
        return dest

    (bad / "model_nocfg").mkdir()
    clone("model_garbage_cfg")
    (bad / "model_garbage_cfg" / "config.json").write_text("{ not json")
    clone("model_garbage_weights")
    (bad / "model_garbage_weights" / "model.safetensors").write_bytes(b"\x07" * 128)
    clone("model_truncated_weights")
    w = (bert / "model.safetensors").read_bytes()
    (bad / "model_truncated_weights" / "model.safetensors").write_bytes(w[: len(w) // 2])
    clone("model_no_tokenizer", skip=("tokenizer*", "vocab.txt", "special_tokens_map.json"))
    clone("model_unknown_type")
    (bad / "model_unknown_type" / "config.json").write_text(json.dumps({"model_type": "no-such-architecture"}))


def _store_from_acts(src: Path, dest: Path, **index_changes) -> Path:
    shutil.copytree(src, dest)
    index = json.loads((dest / "index.json").read_text())
    index.update(index_changes)
    (dest / "index.json").write_text(json.dumps(index))
    return dest


def _zero_width_store(src: Path, dest: Path) -> None:
    """A copy of store ``src`` whose shards hold (rows, 0) arrays, with an index that says d = 0."""
    import hashlib

    from safetensors.numpy import save_file

    shutil.copytree(src, dest)
    index = json.loads((dest / "index.json").read_text())
    for shard in index["shards"]:
        path = dest / shard["file"]
        save_file({"acts": np.zeros((shard["rows"], 0), np.float32)}, str(path))
        shard["bytes"] = path.stat().st_size
        shard["hash"] = hashlib.blake2b(path.read_bytes(), digest_size=16).hexdigest()
    index["d"] = 0
    (dest / "index.json").write_text(json.dumps(index))


def _saelens_folders(bad: Path) -> None:
    """Folders in SAELens's format (cfg.json + sae_weights.safetensors) for `sae import`: one good for the
    store ``acts`` (width 32) and one spoilt each way."""
    import torch
    from safetensors.torch import save_file

    d, m = 32, 64

    def write(name, cfg=None, weights=None):
        folder = bad / name
        folder.mkdir()
        c = {"architecture": "standard", "d_in": d, "d_sae": m, "dtype": "float32", "apply_b_dec_to_input": True,
             "normalize_activations": "none", "hook_name": "blocks.1.hook_resid_post", **(cfg or {})}
        (folder / "cfg.json").write_text(json.dumps(c))
        w = {"W_enc": torch.zeros(d, m), "b_enc": torch.zeros(m), "W_dec": torch.zeros(m, d), "b_dec": torch.zeros(d), **(weights or {})}
        save_file({k: v for k, v in w.items() if v is not None}, str(folder / "sae_weights.safetensors"))
        return folder

    write("saelens")
    write("saelens_gated", {"architecture": "gated"})
    write("saelens_norm", {"normalize_activations": "constant_norm_rescale"})
    write("saelens_wide", {"d_in": 48}, {"W_enc": torch.zeros(48, m), "W_dec": torch.zeros(m, 48), "b_dec": torch.zeros(48)})
    write("saelens_nan", weights={"W_dec": torch.full((m, d), float("nan"))})
    write("saelens_shape", weights={"W_enc": torch.zeros(m, d)})
    write("saelens_nob", weights={"b_dec": None})
    (write("saelens_badjson") / "cfg.json").write_text("{")
    (write("saelens_nocfg") / "cfg.json").unlink()
    (write("saelens_noweights") / "sae_weights.safetensors").unlink()


def build_inputs(root: Path, tiny_tf: dict, bars) -> dict[str, str]:
    """Every bad input under ``root/bad`` and the atlas template under ``root/atlas``; the placeholders."""
    from latentatlas.atlas import Atlas
    from latentatlas.labs.sae.jobs import capture_store, train_sae
    from latentatlas.labs.vae.jobs import train_run

    bad = root / "bad"
    bad.mkdir(parents=True)
    good = _data_files(bad, bars)
    _corpora(bad)
    _model_folders(bad, Path(tiny_tf["bert"]))
    _saelens_folders(bad)
    jsonl = bad / "corpus.jsonl"
    jsonl.write_text("".join(json.dumps({"text": line}) + "\n" for line in Path(tiny_tf["corpus"]).read_text().split("\n\n") if line.strip()))

    atlas = Atlas(root / "atlas")
    train_run("vae", str(good), steps=2, batch_size=16, name="v", atlas=atlas, progress=False)
    capture_store(tiny_tf["bert"], "1", tiny_tf["corpus"], 400, "acts", atlas, batch_size=8, shard_tokens=100, device="cpu", progress=False)
    train_sae("acts", "topk", expansion=2, k=4, steps=2, batch_size=32, name="s", atlas=atlas, device="cpu", progress=False)
    # runs whose config points at data that is now corrupt, or that lost its data entry
    for name, change in (("gone_data", {"data": {"kind": "array_file", "path": str(bad / "trunc.npz")}}), ("nodata", None)):
        dest = atlas.runs_dir / name
        shutil.copytree(atlas.runs_dir / "v", dest)
        cfg = json.loads((dest / "config.json").read_text())
        cfg["name"] = name
        if change is None:
            cfg.pop("data")
        else:
            cfg.update(change)
        (dest / "config.json").write_text(json.dumps(cfg))
    # broken stores
    acts = atlas.activations_path("acts")
    _store_from_acts(acts, atlas.activations_path("huge_d"), d=10**9)  # index.json claims a width of 10^9
    _store_from_acts(acts, atlas.activations_path("missing_shard"))
    (atlas.activations_path("missing_shard") / "shard-00001.safetensors").unlink()
    _store_from_acts(acts, atlas.activations_path("incomplete"), complete=False)
    atlas.activations_path("badindex").mkdir(parents=True)
    (atlas.activations_path("badindex") / "index.json").write_text("{")
    _zero_width_store(acts, atlas.activations_path("zerow"))
    return {"bad": str(bad), "bars": str(good), "bert": tiny_tf["bert"], "corpus": tiny_tf["corpus"], "jsonl": str(jsonl)}


# -- the cases ---------------------------------------------------------------------------------------

A = ["--atlas", "{atlas}"]
TRAIN = ["vae", "train", "vae", "--data", "{bars}", "--steps", "2", "--batch-size", "16", "--quiet", "--name", "bad", *A]
EVAL = ["vae", "eval", "v", "--n", "32", "--quiet", *A]
CAPTURE = ["sae", "capture", "--model", "{bert}", "--layer", "1", "--corpus", "{corpus}", "--tokens", "50", "--batch-size", "4",
           "--device", "cpu", "--quiet", "--name", "badstore", *A]
SAE_TRAIN = ["sae", "train", "--activations", "acts", "--expansion", "2", "--k", "4", "--steps", "2", "--batch-size", "32",
             "--device", "cpu", "--quiet", "--name", "badsae", *A]
# (--values 4 --steps 20, not 2 and 2: a 2-step k=2 sweep, good input, still crashes drawing its frontier with
# "'yerr' must not contain negative values", its FVU interval not holding its value; a bug of its own)
SWEEP = ["sae", "sweep", "--activations", "acts", "--arch", "topk", "--values", "4", "--expansion", "2", "--steps", "20",
         "--batch-size", "32", "--quiet", "--name", "badsweep", *A]
SAE_EVAL = ["sae", "eval", "s", "--no-downstream", "--tokens", "100", "--feature-tokens", "100", "--device", "cpu", "--quiet", *A]
SAE_IMPORT = ["sae", "import", "{bad}/saelens", "--activations", "acts", "--name", "badimport", *A]
SERVE = ["serve", "{atlas}", "--port", "{free}"]


def _opt(base, option, values, expect=None, label=None):
    """One case per value of ``option`` appended to ``base``; the error must name the option (or ``expect``)."""
    label = label or (" ".join(base[:2]) if base[0] in ("vae", "sae") else base[0])
    return [(f"{label} {option} {v!r}"[:90], [*base, option, v], (expect or option,)) for v in values]


def _data(values):
    return [(f"vae train --data {v}", [*TRAIN, "--data", f"{{bad}}/{v}"], (f"{{bad}}/{v}",)) for v in values]


CASES = [
    # ---- vae train ------------------------------------------------------------------------------------
    *_opt(TRAIN, "--latent-dim", ["0", "-1", TERA, I63, I64]),
    *_opt(TRAIN, "--beta", ["-1", "nan", "inf", "-inf"]),
    *_opt(TRAIN, "--steps", ["0", "-1", "abc", TERA]),
    *_opt(TRAIN, "--batch-size", ["0", "-1", I63]),
    *_opt(TRAIN, "--lr", ["0", "-1", "nan", "inf"]),
    *_opt(TRAIN, "--seed", ["-1", I63, I64, "1.5"]),
    *_opt(TRAIN, "--checkpoint-every", ["0", "-1"]),
    *_opt(TRAIN, "--device", ["meta", "mps", "xpu", "cuda:99", "", "nonsense"], expect="device '"),
    ("vae train --name ''", [*TRAIN, "--name", ""], ("--name", "is empty")),
    *_opt(TRAIN, "--name", ["bad\n", " bad", "bad name", "../bad", "x" * 200], expect="run name"),
    ("vae train --atlas ''", [*TRAIN, "--atlas", ""], ("--atlas",)),
    ("vae train --atlas FILE", [*TRAIN, "--atlas", "{bars}"], ("{bars}",)),
    ("vae train --atlas FILE/sub", [*TRAIN, "--atlas", "{bars}/atlas"], ("{bars}",)),
    ("vae train --data ''", [*TRAIN, "--data", ""], ("--data",)),
    ("vae train --data missing", [*TRAIN, "--data", "{tmp}/missing.npz"], ("{tmp}/missing.npz", "does not exist")),
    *_data(["trunc.npz", "trunc.npy", "huge_header.npy", "huge_header.npz", "zero_width.npy", "zero_width_img.npy",
            "zero_channels.npy", "zero_width.npz", "object.npy", "structured.npy", "complex.npy", "scalar.npy",
            "onedim.npy", "fivedim.npy", "nan.npy", "empty.npy", "garbage.npy", "text.npy", "dir.npz", "data.csv",
            "labels_short.npz", "imgs_empty", "imgs_corrupt", "imgs_bomb"]),
    ("vae train KIND ''", ["vae", "train", "", *TRAIN[3:]], ("model kind ''",)),
    ("vae train KIND sae", ["vae", "train", "sae", *TRAIN[3:]], ("sae train",)),
    ("vae train (no KIND)", ["vae", "train", *A], ("kind",)),
    ("vae train --bogus", [*TRAIN, "--bogus"], ("--bogus",)),
    ("vae train ae --beta 4 (an AE has no KL term to weight)", ["vae", "train", "ae", *TRAIN[3:], "--beta", "4"], ("--beta",)),
    ("vae train --resume without --name", ["vae", "train", "vae", "--resume", *A], ("--resume", "--name")),
    ("vae train --resume of a missing run", ["vae", "train", "vae", "--resume", "--name", "nosuch", *A], ("'nosuch'",)),
    ("vae train --resume of a finished run", ["vae", "train", "vae", "--resume", "--name", "v", *A], ("'v'", "already finished")),
    ("vae train --resume of an SAE run", ["vae", "train", "vae", "--resume", "--name", "s", *A], ("'s'",)),
    ("vae train --resume with other --steps", ["vae", "train", "vae", "--resume", "--name", "v", "--steps", "999", *A],
     ("--resume continues run 'v'", "--steps 999 (the run has 2)")),
    ("vae train --resume with another KIND and --data", ["vae", "train", "ae", "--resume", "--name", "v", "--data", "digits", *A],
     ("KIND ae (the run has vae)", "--data digits")),
    ("sae train --resume with another --k", ["sae", "train", "--activations", "acts", "--resume", "--name", "s", "--k", "999", *A],
     ("--resume continues run 's'", "--k 999")),
    ("train (alias) --seed -1", ["train", *TRAIN[2:], "--seed", "-1"], ("--seed",)),
    ("train (alias) --latent-dim 0", ["train", *TRAIN[2:], "--latent-dim", "0"], ("--latent-dim",)),
    # ---- vae eval / eval ------------------------------------------------------------------------------
    *_opt(EVAL, "--n", ["9", "-1", "abc"]),
    *_opt(EVAL, "--seed", ["-1", I64]),
    ("vae eval RUN ''", ["vae", "eval", "", *A], ("run name",)),
    ("vae eval RUN 'v\\n'", ["vae", "eval", "v\n", *A], ("run name",)),
    ("vae eval RUN ../v", ["vae", "eval", "../v", *A], ("run name",)),
    ("vae eval an SAE run", ["vae", "eval", "s", *A], ("sae eval s",)),
    ("vae eval a run whose data file is corrupt", ["vae", "eval", "gone_data", "--quiet", *A], ("{bad}/trunc.npz",)),
    ("vae eval a run whose config has no data", ["vae", "eval", "nodata", "--quiet", *A], ("nodata",)),
    ("eval (alias) --n 5", ["eval", "v", "--n", "5", *A], ("--n",)),
    ("eval (alias) --bogus", ["eval", "v", "--bogus", *A], ("--bogus",)),
    ("eval (alias) RUN ''", ["eval", "", *A], ("run name",)),
    # ---- sae capture / capture ------------------------------------------------------------------------
    ("sae capture --model ''", [*CAPTURE, "--model", ""], ("--model",)),
    ("sae capture --model offline hub id", [*CAPTURE, "--model", "some-org/does-not-exist"], ("some-org/does-not-exist",), 10),
    ("sae capture --model invalid hub id", [*CAPTURE, "--model", "not a valid/model id!"], ("not a valid/model id!",), 10),
    *[(f"sae capture --model {m}", [*CAPTURE, "--model", f"{{bad}}/{m}"], (f"{{bad}}/{m}",))
      for m in ("model_nocfg", "model_garbage_cfg", "model_garbage_weights", "model_truncated_weights",
                "model_no_tokenizer", "model_unknown_type")],
    ("sae capture --model a weights file", [*CAPTURE, "--model", "{bert}/model.safetensors"], ("{bert}/model.safetensors",)),
    *_opt(CAPTURE, "--layer", ["", "²", "99", "-99", I64]),
    *[(f"sae capture --layer {m}", [*CAPTURE, "--layer", m], (m,)) for m in ("pooler", "encoder.layer", "no.such.module")],
    ("sae capture --corpus ''", [*CAPTURE, "--corpus", ""], ("--corpus",)),
    ("sae capture --corpus missing", [*CAPTURE, "--corpus", "{tmp}/missing.txt"], ("{tmp}/missing.txt",)),
    *[(f"sae capture --corpus {c}", [*CAPTURE, "--corpus", f"{{bad}}/{c}"], (f"{{bad}}/{c}",))
      for c in ("nested.jsonl", "nested_text.jsonl", "bigint.jsonl", "bad_utf8.jsonl", "bad_utf8.txt", "empty.txt",
                "blank.jsonl", "corpus.csv", "corpus_empty_dir")],
    ("sae capture --text-field ''", [*CAPTURE, "--corpus", "{jsonl}", "--text-field", ""], ("--text-field",)),
    ("sae capture --text-field missing", [*CAPTURE, "--corpus", "{jsonl}", "--text-field", "body"], ("'body'", "--text-field")),
    *_opt(CAPTURE, "--tokens", ["0", "-1", TERA, I64]),
    *_opt(CAPTURE, "--batch-size", ["0", TERA]),
    *_opt(CAPTURE, "--max-length", ["1", I64]),
    ("sae capture --max-length 1000 past the model's 128 positions", [*CAPTURE, "--corpus", "{bad}/long.txt", "--max-length", "1000"],
     ("--max-length",)),
    *_opt(CAPTURE, "--shard-tokens", ["0", "-1"]),
    ("sae capture --name ''", [*CAPTURE, "--name", ""], ("--name", "is empty")),
    *_opt(CAPTURE, "--name", ["badstore\n", "../badstore", "bad store"], expect="store name"),
    *_opt(CAPTURE, "--device", ["meta", "cuda:99", ""], expect="device '"),
    ("sae capture --resume without --name", [*[a for a in CAPTURE if a not in ("--name", "badstore")], "--resume"], ("--resume", "--name")),
    ("sae capture --resume of a missing store", [*CAPTURE, "--resume", "--name", "nosuch"], ("'nosuch'",)),
    ("sae capture --atlas FILE", [*CAPTURE, "--atlas", "{bars}"], ("{bars}",)),
    ("capture (alias) --layer ''", ["capture", *CAPTURE[2:], "--layer", ""], ("--layer",)),
    # ---- sae train ------------------------------------------------------------------------------------
    *_opt(SAE_TRAIN, "--expansion", ["0", "-1", TERA, I63]),
    *_opt(SAE_TRAIN, "--k", ["0", "1000", I63]),
    *_opt(SAE_TRAIN, "--steps", ["0", TERA]),
    *_opt(SAE_TRAIN, "--batch-size", ["0", TERA, I63]),
    *_opt(SAE_TRAIN, "--lr", ["nan", "-1"]),
    *_opt(SAE_TRAIN, "--grad-clip", ["-1", "nan"]),
    *_opt([*SAE_TRAIN, "--arch", "relu"], "--l1-coeff", ["-1", "nan", "inf"], label="sae train --arch relu"),
    *_opt([*SAE_TRAIN, "--arch", "jumprelu"], "--l0-coeff", ["-1", "nan", "inf"], label="sae train --arch jumprelu"),
    *_opt(SAE_TRAIN, "--holdout", ["-1", "0.9", "nan", "inf", "x"]),
    *_opt(SAE_TRAIN, "--seed", ["-1", I64]),
    *_opt(SAE_TRAIN, "--checkpoint-every", ["0"]),
    ("sae train --name ''", [*SAE_TRAIN, "--name", ""], ("--name", "is empty")),
    *_opt(SAE_TRAIN, "--name", ["badsae\n", "../badsae"], expect="run name"),
    *_opt(SAE_TRAIN, "--device", ["meta", "cuda:99"], expect="device '"),
    ("sae train --arch ''", [*SAE_TRAIN, "--arch", ""], ("--arch",)),
    ("sae train --activations ''", [*SAE_TRAIN, "--activations", ""], ("--activations", "is empty")),
    ("sae train --activations 'acts\\n'", [*SAE_TRAIN, "--activations", "acts\n"], ("store name",)),
    ("sae train --activations ../acts", [*SAE_TRAIN, "--activations", "../acts"], ("store name",)),
    *[(f"sae train --activations {s}", [*SAE_TRAIN, "--activations", s], (s,))
      for s in ("nosuch", "zerow", "huge_d", "missing_shard", "incomplete", "badindex")],
    ("sae train (no --activations)", ["sae", "train", *A], ("--activations",)),
    ("sae train --arch topk --l1-coeff 3 (topk has no L1 term)", [*SAE_TRAIN, "--arch", "topk", "--l1-coeff", "3"], ("--l1-coeff",)),
    ("sae train --resume of a missing run", [*SAE_TRAIN, "--resume", "--name", "nosuch"], ("'nosuch'",)),
    ("sae train --resume of a VAE run", [*SAE_TRAIN, "--resume", "--name", "v"], ("'v'",)),
    # ---- sae sweep ------------------------------------------------------------------------------------
    *_opt(SWEEP, "--values", ["nan", "inf", "2.5", "4,nan", "0", "-1", "1e30", "", ","]),
    *_opt([*SWEEP, "--arch", "relu"], "--values", ["nan", "-1", "inf"], label="sae sweep --arch relu"),
    *_opt(SWEEP, "--expansion", ["0", TERA]),
    *_opt(SWEEP, "--steps", ["0", TERA]),
    *_opt(SWEEP, "--batch-size", ["0", TERA]),
    *_opt(SWEEP, "--lr", ["nan"]),
    *_opt(SWEEP, "--name", ["", "badsweep\n"], expect="name"),
    ("sae sweep --arch bogus", [*SWEEP, "--arch", "bogus"], ("'bogus'",)),
    ("sae sweep --activations zerow", [*SWEEP, "--activations", "zerow"], ("zerow",)),
    ("sae sweep (no --values)", ["sae", "sweep", "--activations", "acts", *A], ("--values",)),
    # ---- sae eval -------------------------------------------------------------------------------------
    *_opt(SAE_EVAL, "--tokens", ["0", "-1"]),
    *_opt(SAE_EVAL, "--feature-tokens", ["0"]),
    *_opt(SAE_EVAL, "--seed", ["-1", I64]),
    *_opt(SAE_EVAL, "--device", ["meta", "cuda:99"], expect="device '"),
    ("sae eval --activations ''", [*SAE_EVAL, "--activations", ""], ("--activations",)),
    ("sae eval --activations zerow", [*SAE_EVAL, "--activations", "zerow"], ("zerow",)),
    ("sae eval --activations nosuch", [*SAE_EVAL, "--activations", "nosuch"], ("nosuch",)),
    ("sae eval RUN ''", ["sae", "eval", "", *A], ("run name",)),
    ("sae eval RUN 's\\n'", ["sae", "eval", "s\n", *A], ("run name",)),
    ("sae eval a VAE run", ["sae", "eval", "v", *A], ("'v'",)),
    # ---- sae import -----------------------------------------------------------------------------------
    ("sae import FOLDER missing", ["sae", "import", "{tmp}/nope", "--activations", "acts", *A], ("{tmp}/nope", "does not exist")),
    ("sae import FOLDER is a file", ["sae", "import", "{bars}", "--activations", "acts", *A], ("{bars}", "is not a folder")),
    *[(f"sae import {{bad}}/{n}", ["sae", "import", f"{{bad}}/{n}", "--activations", "acts", *A], (f"{{bad}}/{n}", expect))
      for n, expect in (("saelens_gated", "architecture 'gated'"), ("saelens_norm", "constant_norm_rescale"),
                        ("saelens_wide", "width 48"), ("saelens_nan", "NaN"), ("saelens_shape", "shape [64, 32]"),
                        ("saelens_nob", "lack tensor 'b_dec'"), ("saelens_badjson", "cfg.json' is not valid JSON"),
                        ("saelens_nocfg", "cfg.json' does not exist"), ("saelens_noweights", "sae_weights.safetensors' do not exist"))],
    ("sae import --activations nosuch", [*SAE_IMPORT, "--activations", "nosuch"], ("nosuch",)),
    ("sae import --activations zerow", [*SAE_IMPORT, "--activations", "zerow"], ("zerow",)),
    ("sae import --activations incomplete", [*SAE_IMPORT, "--activations", "incomplete"], ("incomplete",)),
    ("sae import --activations ''", [*SAE_IMPORT, "--activations", ""], ("--activations", "is empty")),
    *_opt(SAE_IMPORT, "--name", ["badimport\n", "../badimport"], expect="run name"),
    ("sae import --name of an existing run", [*SAE_IMPORT, "--name", "s"], ("'s' already exists",)),
    ("sae import (no --activations)", ["sae", "import", "{bad}/saelens", *A], ("--activations",)),
    # ---- runs, serve, demo, the root ------------------------------------------------------------------
    ("runs --atlas FILE", ["runs", "--atlas", "{bars}"], ("{bars}",)),
    ("runs --bogus", ["runs", "--bogus"], ("--bogus",)),
    *_opt(SERVE, "--port", ["0", "70000", "-1", "abc"]),
    ("serve --port in use", [*SERVE, "--port", "{busy}"], ("{busy}", "in use")),
    ("serve --host ''", [*SERVE, "--host", ""], ("--host",)),
    ("serve --host unresolvable", [*SERVE, "--host", "no-such-host.invalid"], ("no-such-host.invalid",)),
    ("serve ATLAS is a file", ["serve", "{bars}", "--port", "{free}"], ("{bars}",)),
    ("serve ATLAS is missing", ["serve", "{tmp}/nope", "--port", "{free}"], ("{tmp}/nope",)),
    ("demo --steps 0", ["demo", "--no-serve", "--steps", "0", *A], ("--steps",)),
    ("demo --steps 10^12", ["demo", "--no-serve", "--steps", TERA, *A], ("--steps",)),
    ("demo --n 9", ["demo", "--no-serve", "--n", "9", *A], ("--n",)),
    ("demo --atlas FILE", ["demo", "--no-serve", "--steps", "1", "--n", "10", "--atlas", "{bars}"], ("{bars}",)),
    ("latentatlas --bogus", ["--bogus"], ("--bogus",)),
    ("latentatlas nosuchcommand", ["nosuchcommand"], ("nosuchcommand",)),
    ("latentatlas sae nosuchcommand", ["sae", "nosuchcommand"], ("nosuchcommand",)),
]
