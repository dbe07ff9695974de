"""Capture: hooks by module name, the sharded store, special tokens, norms, resume, damaged shards."""

from __future__ import annotations


import numpy as np
import pytest
import torch

from latentatlas.activations import ActivationStore, ShuffledBatches, permute
from latentatlas.capture import hooked, run_to
from latentatlas.data.text import load_corpus
from latentatlas.errors import LatentAtlasError
from latentatlas.models.hf import load_transformer, resolve_layer
from latentatlas.labs.sae.jobs import capture_store


@pytest.fixture
def tiny(tiny_tf):
    return tiny_tf


def test_run_to_equals_hidden_state_and_stops_early(tiny):
    tf = load_transformer(tiny["bert"])
    assert resolve_layer(tf.model, 0) == "encoder.layer.0" and resolve_layer(tf.model, -1) == "encoder.layer.1"
    batch = tf.tokenizer(["a small test sentence", "two"], padding=True, return_tensors="pt")
    with torch.inference_mode():
        hidden = tf.model(**batch, output_hidden_states=True).hidden_states
    later = []
    handle = tf.model.encoder.layer[1].register_forward_hook(lambda *a: later.append(1))
    got = run_to(tf.model, "encoder.layer.0", dict(batch))
    handle.remove()
    assert torch.allclose(got, hidden[1], atol=1e-6)
    assert later == [], "the layer after the captured one ran"
    with hooked(tf.model, "encoder.layer.1") as out, torch.inference_mode():
        tf.model(**batch)
    assert torch.allclose(out["out"], hidden[2], atol=1e-6)


def test_bad_layer_names_are_one_sentence(tiny):
    tf = load_transformer(tiny["bert"])
    with pytest.raises(LatentAtlasError, match="out of range: BertModel has 2 blocks"):
        resolve_layer(tf.model, 5)
    with pytest.raises(LatentAtlasError, match="--layer 'encoder.layer.9' is neither a block number nor a module of BertModel"):
        resolve_layer(tf.model, "encoder.layer.9")
    with pytest.raises(LatentAtlasError, match="does not exist"):
        load_transformer("./no/such/model/folder")


def test_capture_bert_store_matches_model_and_drops_special_tokens(tiny, tmp_path):
    store = capture_store(tiny["bert"], 1, tiny["corpus"], tokens=700, name="b", atlas=tmp_path, shard_tokens=200,
                          max_length=32, progress=False)
    assert store.complete and store.n_tokens == 700 and store.d == 32
    # a shard ends at the first batch boundary past shard_tokens: at most one batch (32 docs × 32 tokens) over
    assert all(s.rows < 200 + 32 * 32 for s in store.shards), "a shard outgrew its bound (shard_tokens + one batch)"
    tokens = store.tokens()
    assert len(tokens) == 700
    assert not set(tokens["token"]) & {"[CLS]", "[SEP]", "[PAD]"}
    # the stored rows of document 3 are the model's activations at its non-special positions
    tf = load_transformer(tiny["bert"])
    docs = store.documents()
    text = docs.loc[docs["doc"] == 3, "text"].item()
    enc = tf.tokenizer([text], truncation=True, max_length=32, return_tensors="pt")
    want = run_to(tf.model, "encoder.layer.1", dict(enc))[0].numpy()
    rows = np.nonzero(tokens["doc"].to_numpy() == 3)[0]
    pos = tokens["pos"].to_numpy()[rows]
    np.testing.assert_allclose(store.rows(rows), want[pos], atol=1e-5)
    # scattered rows in any order, across shards, equal the whole-shard reads
    every = np.concatenate([store.shard_array(i) for i in range(len(store.shards))])
    pick = np.random.default_rng(0).integers(0, store.n_tokens, 300)
    np.testing.assert_array_equal(store.rows(pick), every[pick])
    with pytest.raises(LatentAtlasError, match=r"row numbers must be in \[0, "):
        store.rows(np.array([store.n_tokens]))
    assert pos.min() == 1 and pos.max() == enc["input_ids"].shape[1] - 2  # [CLS] at 0 and [SEP] at the end left out
    np.testing.assert_allclose(tokens["norm"].to_numpy()[rows], np.linalg.norm(want[pos], axis=1), rtol=1e-5)


def test_keep_special_keeps_them(tiny, tmp_path):
    store = capture_store(tiny["bert"], 0, tiny["corpus"], tokens=100, name="k", atlas=tmp_path, keep_special=True, progress=False)
    assert {"[CLS]", "[SEP]"} <= set(store.tokens()["token"])
    assert "[PAD]" not in set(store.tokens()["token"])  # padding is never activation data


def test_gpt2_gets_bos_and_leaves_it_out(tiny, tmp_path):
    store = capture_store(tiny["gpt2"], 1, tiny["corpus"], tokens=300, name="g", atlas=tmp_path, progress=False)
    t = store.tokens()
    assert store.index["prepend_bos"] is True and store.index["causal"] is True
    assert t["pos"].min() == 1 and "<|endoftext|>" not in set(t["token"])


def test_norm_outliers_are_counted(tiny, tmp_path):
    store = capture_store(tiny["bert"], 1, tiny["corpus"], tokens=300, name="n", atlas=tmp_path, progress=False)
    norms = store.tokens()["norm"].to_numpy()
    info = store.index["norm"]
    assert info["median"] == pytest.approx(float(np.median(norms)), rel=1e-6)
    assert info["outliers"] == int((norms > 10 * info["median"]).sum())
    low = capture_store(tiny["bert"], 1, tiny["corpus"], tokens=300, name="n2", atlas=tmp_path, outlier_factor=1.0, progress=False)
    assert low.index["norm"]["outliers"] == int((norms > np.median(norms)).sum()) > 0


def test_capture_resumes_after_a_kill_to_the_same_store(tiny, tmp_path):
    full = capture_store(tiny["bert"], 1, tiny["corpus"], tokens=600, name="full", atlas=tmp_path, shard_tokens=150, batch_size=4, progress=False)

    class Killed(Exception):
        pass

    def kill(i):
        if i == 1:
            raise Killed

    with pytest.raises(Killed):
        capture_store(tiny["bert"], 1, tiny["corpus"], tokens=600, name="part", atlas=tmp_path, shard_tokens=150, batch_size=4,
                      progress=False, on_shard=kill)
    part = ActivationStore(tmp_path / "activations" / "part")
    assert not part.complete and len(part.shards) == 2
    with pytest.raises(LatentAtlasError, match="already exists"):
        capture_store(tiny["bert"], 1, tiny["corpus"], tokens=600, name="part", atlas=tmp_path, progress=False)
    done = capture_store(tiny["bert"], 1, tiny["corpus"], tokens=600, name="part", atlas=tmp_path, shard_tokens=150,
                         batch_size=4, resume=True, progress=False)
    assert done.complete and done.n_tokens == full.n_tokens
    np.testing.assert_array_equal(done.rows(np.arange(600)), full.rows(np.arange(600)))
    assert done.tokens()["doc"].tolist() == full.tokens()["doc"].tolist()


def test_damaged_or_missing_shard_is_named_and_left_alone(tiny, tmp_path):
    store = capture_store(tiny["bert"], 1, tiny["corpus"], tokens=400, name="d", atlas=tmp_path, shard_tokens=100, batch_size=4, progress=False)
    shard = store.path / store.shards[1].file
    data = shard.read_bytes()
    shard.write_bytes(data[: len(data) // 2])
    before = shard.read_bytes()
    with pytest.raises(LatentAtlasError, match=r"shard '.*shard-00001.safetensors' is corrupt"):
        list(store.iter_chunks())
    assert shard.read_bytes() == before
    with pytest.raises(LatentAtlasError, match=r"shard '.*shard-00001.safetensors' is corrupt"):
        store.rows(np.array([store.shards[1].first_row + 3]))
    assert shard.read_bytes() == before
    # a header that no longer describes float32 [rows, d] (same size on disk): named, before any mapped read
    n = int.from_bytes(data[:8], "little")
    header = data[8 : 8 + n].replace(b'"F32"', b'"I32"')
    shard.write_bytes(data[:8] + header + data[8 + n :])
    with pytest.raises(LatentAtlasError, match=r"shard '.*shard-00001.safetensors' is corrupt: its safetensors header"):
        ActivationStore(store.path).rows(np.array([store.shards[1].first_row]))
    shard.write_bytes(data[:-8] + b"\x00" * 8)  # same size, different bytes: only the checksum sees it
    store.shard_array(1)
    with pytest.raises(LatentAtlasError, match="checksum"):
        store.verify()
    shard.unlink()
    with pytest.raises(LatentAtlasError, match=r"shard '.*shard-00001.safetensors' listed in the store's index.json is missing"):
        store.rows(np.array([store.shards[1].first_row]))
    (store.path / "index.json").write_text("{not json")
    with pytest.raises(LatentAtlasError, match="index .* is not valid JSON.*corrupt"):
        ActivationStore(store.path)


def test_shuffled_batches_are_a_function_of_the_step(tiny, tmp_path):
    store = capture_store(tiny["bert"], 1, tiny["corpus"], tokens=500, name="s", atlas=tmp_path, shard_tokens=100, batch_size=4, progress=False)
    a = ShuffledBatches(store, 64, seed=3)
    b = ShuffledBatches(store, 64, seed=3)
    seq = [a.batch_at(t) for t in range(20)]  # 1,280 rows: two and a half epochs
    assert all(x.shape == (64, store.d) for x in seq)
    for t in (17, 3, 9):  # any order, fresh object: same batch (what resume relies on)
        np.testing.assert_array_equal(b.batch_at(t), seq[t])
    # one epoch is a permutation of the whole store
    epoch = np.concatenate(seq)[: store.n_tokens]
    all_rows = store.rows(np.arange(store.n_tokens))
    assert sorted(map(bytes, epoch)) == sorted(map(bytes, all_rows))
    assert not np.array_equal(epoch, all_rows)
    # drawn from the whole store: the first batch already touches every shard, and epochs differ
    first = a.indices(0)
    shard_of = np.searchsorted([s.first_row for s in store.shards], first, side="right") - 1
    assert len(np.unique(shard_of)) == len(store.shards)
    assert not np.array_equal(np.concatenate(seq)[store.n_tokens : 2 * store.n_tokens], epoch)
    # the training range (rows before the held-out range, cutting a shard in two) is all a run ever sees,
    # each of its rows once per epoch
    stop = store.shards[2].first_row + 7
    sub = ShuffledBatches(store, 64, seed=3, stop=stop)
    drawn = np.concatenate([sub.indices(t) for t in range(8)])
    assert drawn.max() < stop and sorted(drawn[:stop].tolist()) == list(range(stop))
    # a range that ends where whole shards end draws what the shard-based holdout drew (old runs resume alike)
    whole = ShuffledBatches(store, 64, seed=3, stop=store.shards[2].first_row)
    assert whole.total == store.shards[2].first_row


def test_document_start_and_chunks_from_a_row(tiny, tmp_path):
    store = capture_store(tiny["bert"], 1, tiny["corpus"], tokens=500, name="s", atlas=tmp_path, shard_tokens=100, batch_size=4, progress=False)
    toks = store.tokens()
    for row in (0, 1, 137, store.n_tokens - 1):
        first, doc = store.document_start(row)
        assert toks["doc"].iloc[row] == doc and toks["doc"].iloc[first] == doc
        assert first == 0 or toks["doc"].iloc[first - 1] != doc
    start = store.shards[1].first_row + 5
    got = np.concatenate([a for _, a in store.iter_chunks(rows=16, start=start, limit=50)])
    np.testing.assert_array_equal(got, store.rows(np.arange(start, start + 50)))
    assert next(store.iter_chunks(rows=16, start=start))[0] == start


@pytest.mark.parametrize("n", [1, 2, 3, 7, 64, 1000, 4097])
def test_permute_is_a_seeded_bijection(n):
    p = permute(np.arange(n), n, (5, 0))
    assert sorted(p.tolist()) == list(range(n))
    np.testing.assert_array_equal(permute(np.arange(n), n, (5, 0)), p)  # a function of the key
    if n >= 64:
        assert not np.array_equal(permute(np.arange(n), n, (5, 1)), p)
        # not a near-identity: consecutive positions land far apart
        assert np.abs(np.diff(p)).mean() > n / 10


def test_corpora(tmp_path):
    docs = load_corpus("builtin").take(300)
    assert len(docs) == 300 and len({d.text for d in docs}) == 300 and all(len(d.text) >= 40 for d in docs)
    assert load_corpus("builtin").spec["python"].count(".") == 2
    jl = tmp_path / "c.jsonl"
    jl.write_text('{"body": "first doc"}\n\n{"body": "second  doc"}\n')
    got = list(load_corpus(str(jl), field="body"))
    assert [d.text for d in got] == ["first doc", "second doc"]
    with pytest.raises(LatentAtlasError, match="line 1 has no field 'text'"):
        list(load_corpus(str(jl)))
    jl.write_text('{"text": "ok"}\nnot json\n')
    with pytest.raises(LatentAtlasError, match="line 2 is not valid JSON"):
        list(load_corpus(str(jl)))
    with pytest.raises(LatentAtlasError, match="does not exist"):
        load_corpus(str(tmp_path / "nope.txt"))
    with pytest.raises(LatentAtlasError, match="expected .txt, .md or .jsonl"):
        (tmp_path / "x.csv").write_text("a")
        load_corpus(str(tmp_path / "x.csv"))


@pytest.mark.slow
def test_builtin_minilm_capture(tmp_path):
    store = capture_store("minilm", 3, "builtin", tokens=256, name="m", atlas=tmp_path, progress=False)
    assert store.d == 384 and store.index["layer"] == "encoder.layer.3" and store.index["model"] == {"name": "minilm"}
    assert store.n_tokens == 256 and store.index["norm"]["median"] > 0


def test_length_batches_pad_each_batch_to_its_own_longest_and_keep_every_text(tiny):
    from latentatlas.capture import length_batches

    tf = load_transformer(tiny["bert"])
    words = "the cat sat on a mat and then it ran far away from every dog in town".split()
    texts = [" ".join(words[: 1 + (7 * i) % len(words)]) for i in range(23)]
    want = [len(tf.tokenizer(t, truncation=True, max_length=12)["input_ids"]) for t in texts]
    seen, widths = [], []
    batches = list(length_batches(tf.tokenizer, iter(texts), batch_size=4, max_length=12, pool=3))
    for inputs, valid in batches:
        lengths = valid.sum(1).tolist()
        assert inputs["input_ids"].shape[1] == max(lengths)  # padded to the batch's own longest, no further
        assert lengths == sorted(lengths)
        for row, n in zip(inputs["input_ids"], lengths):
            seen.append(tf.tokenizer.decode(row[:n], skip_special_tokens=True))
        widths.append(max(lengths))
    assert sorted(seen) == sorted(tf.tokenizer.decode(tf.tokenizer(t, truncation=True, max_length=12)["input_ids"], skip_special_tokens=True) for t in texts)
    assert sum(v.sum().item() for _, v in batches) == sum(want)
    # pools of 3 batches (12 texts): sorted inside a pool, so a pool's widths never fall
    assert widths[:3] == sorted(widths[:3]) and widths[3:6] == sorted(widths[3:6])
    again = [b[0]["input_ids"].tolist() for b in length_batches(tf.tokenizer, iter(texts), 4, 12, pool=3)]
    assert again == [b[0]["input_ids"].tolist() for b in batches]
