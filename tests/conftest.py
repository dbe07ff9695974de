import os

import numpy as np
import pytest
import torch

os.environ.setdefault("MPLBACKEND", "Agg")
torch.set_num_threads(min(2, torch.get_num_threads()))


def make_bars(n: int, positions: int, widths: int, size: int, scale: int = 1, seed: int = 0):
    """Images of one vertical bar, with two ground-truth factors: its position and its width - 1.

    Column span: scale·pos up to scale·(pos + 1 + w). Every test data set of bars comes from here.
    """
    rng = np.random.default_rng(seed)
    pos = rng.integers(0, positions, n)
    width = rng.integers(0, widths, n)
    x = np.zeros((n, 1, size, size), np.float32)
    for i in range(n):
        x[i, 0, :, scale * pos[i] : scale * (pos[i] + 1 + width[i])] = 1.0
    return x, np.stack([pos, width], 1)


def save_bars(path, x, factors):
    np.savez(path, x=x, factors=factors, factor_names=np.array(["position", "width"]))
    return path


@pytest.fixture(scope="session")
def bars():
    """The bar helpers for test modules and fixtures: ``bars.make(...)``, ``bars.save(path, x, factors)``."""
    import types

    return types.SimpleNamespace(make=make_bars, save=save_bars)


@pytest.fixture
def atlas_dir(tmp_path):
    return tmp_path / "atlas"


@pytest.fixture
def tiny_images():
    """A small image set with two ground-truth factors: bar position (8) and bar width (2)."""
    return make_bars(256, positions=8, widths=2, size=8)


@pytest.fixture
def tiny_npz(tmp_path, tiny_images):
    return save_bars(tmp_path / "bars.npz", *tiny_images)


# -- a tiny evaluated atlas for the server tests (one per test module that asks for it) -------------
SERVER_N, SERVER_D = 200, 3
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    from latentatlas.atlas import Atlas
    from latentatlas.labs.vae.jobs import evaluate_run
    from latentatlas.labs.vae.jobs import train_run

    x, factors = make_bars(SERVER_N, positions=8, widths=2, size=16, scale=2)
    data = save_bars(tmp_path_factory.mktemp("data") / "bars.npz", x, factors)
    root = tmp_path_factory.mktemp("atlas")
    atlas = Atlas(root)
    run, _ = train_run("vae", str(data), latent_dim=SERVER_D, steps=20, batch_size=16, name="r", atlas=atlas, progress=False)
    evaluate_run(run, n=SERVER_N, projections=["pca"], progress=False)
    # a second run with a model but no evaluation yet
    train_run("vae", str(data), latent_dim=SERVER_D, steps=2, batch_size=16, name="bare", atlas=atlas, progress=False)
    outside = tmp_path_factory.mktemp("outside") / "secret.png"
    outside.write_bytes(PNG_SIGNATURE + b"secret")
    return {"atlas": atlas, "run": run, "x": x, "outside": outside}




# -- tiny transformers built offline for the SAE-lab tests ---------------------------------------------------
# A random-config BERT (MiniLM's WordPiece tokenizer) and GPT-2 (a byte-level BPE trained here) in folders.
import shutil as _shutil  # noqa: E402
from pathlib import Path  # noqa: E402

TEXTS = [
    "The quick brown fox jumps over the lazy dog.",
    "Sparse autoencoders read the residual stream of a transformer.",
    "Every latent has a decoder direction and a firing rate.",
    "Return the number of items in the container.",
    "A dictionary maps keys to values; a list keeps them in order.",
    "Open the file, read its lines, and close it again.",
] * 4


def write_tiny_bert(folder: Path, layers: int = 2, hidden: int = 32) -> Path:
    import torch
    from transformers import BertConfig, BertModel

    from latentatlas.models.hf import builtin_path

    torch.manual_seed(0)
    cfg = BertConfig(vocab_size=30522, hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=2,
                     intermediate_size=2 * hidden, max_position_embeddings=128)
    BertModel(cfg).save_pretrained(folder, safe_serialization=True)
    src = builtin_path("minilm")
    for f in ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json"):
        _shutil.copy(src / f, folder / f)
    return folder


def write_tiny_gpt2(folder: Path, layers: int = 2, hidden: int = 32) -> Path:
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(TEXTS, trainers.BpeTrainer(vocab_size=300, special_tokens=["<|endoftext|>"],
                                                       initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<|endoftext|>", eos_token="<|endoftext|>",
                                   pad_token="<|endoftext|>")
    fast.save_pretrained(folder)
    torch.manual_seed(0)
    cfg = GPT2Config(vocab_size=len(fast), n_embd=hidden, n_layer=layers, n_head=2, n_positions=128,
                     bos_token_id=fast.bos_token_id, eos_token_id=fast.eos_token_id)
    GPT2LMHeadModel(cfg).save_pretrained(folder, safe_serialization=True)
    return folder


def write_corpus(path: Path, n: int = 60) -> Path:
    paras = [f"{TEXTS[i % len(TEXTS)]} Paragraph {i} says something about item {i * 7 % 13}." for i in range(n)]
    path.write_text("\n\n".join(paras) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def tiny_tf(tmp_path_factory):
    """Folders of a tiny BERT and GPT-2 and a small text corpus: {"bert", "gpt2", "corpus"} as strings."""
    root = tmp_path_factory.mktemp("tiny-models")
    return {"bert": str(write_tiny_bert(root / "bert")), "gpt2": str(write_tiny_gpt2(root / "gpt2")),
            "corpus": str(write_corpus(root / "corpus.txt"))}


def sigkill_at_checkpoint(proc, latest, target: int, timeout: float = 120) -> None:
    """SIGKILL ``proc`` once the checkpoint pointer ``latest`` (latest.json) reaches step ``target``."""
    import json
    import signal
    import time

    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            if json.loads(latest.read_text())["step"] >= target:
                break
        except (OSError, ValueError):
            pass
        time.sleep(0.002)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, f"the run ended before it was killed: {proc.stderr.read()!r}"
