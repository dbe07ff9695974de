"""The SAE lab's API routes over a tiny real atlas: a BERT store, a TopK SAE with its feature tables."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from latentatlas.labs.sae.jobs import capture_store, evaluate_sae, train_sae
from latentatlas.server import create_app


@pytest.fixture(scope="module")
def sae_atlas(tiny_tf, tmp_path_factory):
    root = tmp_path_factory.mktemp("sae-atlas")
    capture_store(tiny_tf["bert"], 1, tiny_tf["corpus"], tokens=1200, name="acts", atlas=root, shard_tokens=200, batch_size=4, progress=False)
    run, _ = train_sae("acts", "topk", expansion=4, k=4, steps=80, batch_size=64, lr=3e-3, name="s", atlas=root, progress=False)
    evaluate_sae(run, progress=False, downstream=False)
    train_sae("acts", "topk", expansion=2, k=4, steps=5, batch_size=64, name="bare", atlas=root, progress=False)  # no eval
    return root


@pytest.fixture(scope="module")
def client(sae_atlas):
    with TestClient(create_app(sae_atlas), base_url="http://127.0.0.1") as c:
        yield c


def test_feature_list_sorts_pages_and_filters(client, sae_atlas):
    # the default order: the interpretability proxy, highest first, equal to its definition on the tables
    default = client.get("/api/runs/s/features", params={"limit": 1000}).json()["items"]
    focus = [i["interpretability"] for i in default]
    assert focus == sorted(focus, reverse=True)
    from latentatlas.atlas import Atlas
    from latentatlas.labs.sae.explore import SAEExplorer

    x = SAEExplorer(Atlas(sae_atlas).run("s"))
    tables, meta = x.tables
    for item in default[:5] + default[-5:]:
        f = item["id"]
        fires = int(tables["fires"][f])
        want = tables["token_counts"][f, :3].clip(min=0).sum() / max(fires, 1)
        ok = fires >= 20 and fires / meta["n_tokens"] <= 0.01 and any(c.isalnum() for c in x._token_lookup()[int(tables["token_ids"][f, 0])])
        assert item["interpretability"] == pytest.approx(want if ok else 0.0)
    r = client.get("/api/runs/s/features", params={"limit": 1000, "sort": "density"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["total"] == 128 and len(body["items"]) == 128 and body["n_tokens"] == 1200
    dens = [i["density"] for i in body["items"]]
    assert dens == sorted(dens, reverse=True)
    by_max = client.get("/api/runs/s/features", params={"sort": "max_act", "order": "asc", "limit": 1000}).json()["items"]
    assert [i["max_act"] for i in by_max] == sorted(i["max_act"] for i in by_max)
    page2 = client.get("/api/runs/s/features", params={"offset": 10, "limit": 5, "sort": "density"}).json()["items"]
    assert [i["id"] for i in page2] == [i["id"] for i in body["items"][10:15]]
    word = body["items"][0]["top_tokens"][0]
    hits = client.get("/api/runs/s/features", params={"token": word, "limit": 1000}).json()
    assert 1 <= hits["total"] <= 128 and all(word.lower() in [t.lower() for t in i["top_tokens"]] for i in hits["items"])
    assert client.get("/api/runs/s/features", params={"sort": "colour"}).status_code == 422
    assert client.get("/api/runs/nope/features").status_code == 404
    r = client.get("/api/runs/bare/features")
    assert r.status_code == 404 and "sae eval bare" in r.json()["detail"]


def test_feature_page_is_consistent(client):
    fid = client.get("/api/runs/s/features").json()["items"][0]["id"]
    page = client.get(f"/api/runs/s/features/{fid}").json()
    assert page["id"] == fid and page["fires"] == sum(page["histogram"]["counts"])
    assert page["density"] == pytest.approx(page["fires"] / 1200)
    acts = [ex["act"] for ex in page["top"]]
    assert acts == sorted(acts, reverse=True) and acts[0] == pytest.approx(page["max_act"], rel=1e-5)
    for ex in page["top"]:  # the highlighted token is the example's own, with its activation
        assert ex["tokens"][ex["focus"]]["a"] == pytest.approx(ex["act"], abs=1e-3)
        assert len(ex["tokens"]) <= 21
    for q in page["quantiles"]:
        assert q["bin"][0] - 1e-6 <= q["act"] <= q["bin"][1] + 1e-6
    assert len(page["neighbours"]) == 10 and all(-1 <= n["cos"] <= 1 for n in page["neighbours"])
    assert page["top_tokens"] and all(0 < t["share"] <= 1 for t in page["top_tokens"])
    assert client.get("/api/runs/s/features/128").status_code == 422
    assert client.get("/api/runs/s/features/-1").status_code == 422


def test_probe(client):
    r = client.post("/api/runs/s/probe", json={"text": "Return the number of items in the container."})
    assert r.status_code == 200, r.text
    body = r.json()
    toks = body["tokens"]
    assert toks[0]["special"] and toks[0]["t"] == "[CLS]" and toks[0]["features"] == []
    assert toks[-1]["special"] and not toks[1]["special"]
    assert all(len(t["features"]) <= 4 for t in toks)  # TopK with k=4
    peaks = [f["max"] for f in body["features"]]
    assert peaks == sorted(peaks, reverse=True)
    for bad in ({"text": ""}, {"text": "   "}, {"text": "x" * 5000}, {}):
        assert client.post("/api/runs/s/probe", json=bad).status_code == 422


def steer(client, body):
    """POST a steering request; the first one, on a run evaluated without its steering index, starts a
    background job (202) to poll before asking again."""
    import time

    r = client.post("/api/runs/s/steer", json=body)
    if r.status_code == 202:
        job = r.json()["job"]
        deadline = time.time() + 120
        while job["state"] in ("queued", "running"):
            assert time.time() < deadline
            time.sleep(0.1)
            job = client.get(f"/api/jobs/{job['id']}").json()
        assert job["state"] == "done", job
        r = client.post("/api/runs/s/steer", json=body)
    return r


def test_the_first_steer_builds_the_index_in_the_background(client, sae_atlas):
    from latentatlas.atlas import Atlas
    from latentatlas.labs.sae.explore import SAEExplorer

    cache = sae_atlas / "runs" / "s" / "features" / "corpus_index.safetensors"
    assert not cache.exists()  # evaluated with downstream=False: no index
    first = client.post("/api/runs/s/steer", json={"text": "Open the file.", "feature": 0, "alpha": 1})
    assert first.status_code == 202 and first.json()["job"]["what"] == "steering index of run 's'"
    assert "building the steering index" in first.json()["detail"]
    assert steer(client, {"text": "Open the file.", "feature": 0, "alpha": 1}).status_code == 200
    assert cache.is_file() and not SAEExplorer(Atlas(sae_atlas).run("s")).needs_corpus_index


def test_steer(client, sae_atlas):
    from latentatlas.activations import ActivationStore

    fid = client.get("/api/runs/s/features").json()["items"][0]["id"]
    same = steer(client, {"text": "Open the file.", "feature": fid, "alpha": 0}).json()
    assert same["kind"] == "embedding" and same["cos_before_after"] == pytest.approx(1.0, abs=1e-5)
    assert [d["doc"] for d in same["before"]] == [d["doc"] for d in same["after"]]
    # one unit for both modes: the store's median activation norm; α = 0 adds nothing and scores nothing
    unit = ActivationStore(sae_atlas / "activations" / "acts").index["norm"]["median"]
    assert same["unit"] == pytest.approx(unit) and same["info"]["added_norm"] == 0
    assert same["effect"]["effect"] == 0 and same["effect"]["p"] == 1.0
    # every answer carries the standard strengths, each with its cosine to the original
    moved = client.post("/api/runs/s/steer", json={"text": "Open the file.", "feature": fid, "alpha": 2}).json()
    assert [d["alpha"] for d in moved["dose"]] == [0.25, 0.5, 1.0, 2.0, 4.0]
    assert all(-1 <= d["cos"] <= 1 and -1 <= d["control_cos"] <= 1 for d in moved["dose"])
    assert moved["info"]["added_norm"] == pytest.approx(2 * unit)
    assert moved["info"]["strength"] == pytest.approx(2 * unit / moved["info"]["decoder_norm"])
    assert moved["cos_before_after"] < 0.999 and len(moved["after"]) == 5
    e = moved["effect"]
    assert e["control_low"] <= e["control_mean"] <= e["control_high"] and 1 / 33 <= e["p"] <= 1
    assert moved["targets"] >= 3
    negative = client.post("/api/runs/s/steer", json={"text": "Open the file.", "feature": fid, "alpha": -0.3}).json()
    assert [d["alpha"] for d in negative["dose"]] == [-0.25, -0.3, -0.5, -1.0, -2.0, -4.0]
    # the same request gives the same answer (the controls are seeded by the request, not the process)
    again = client.post("/api/runs/s/steer", json={"text": "Open the file.", "feature": fid, "alpha": 2}).json()
    assert again["effect"] == moved["effect"]
    # code(a) − code(b) is normalised to the same unit
    diff = client.post("/api/runs/s/steer", json={"text": "Open the file.", "a": "a list of items", "b": "a dictionary", "alpha": 1})
    assert diff.status_code == 200 and "code(a)" in diff.json()["direction"]
    assert diff.json()["info"]["added_norm"] == pytest.approx(unit) and "nearest text a" in diff.json()["target_note"]
    assert client.post("/api/runs/s/steer", json={"text": "x"}).status_code == 422
    assert client.post("/api/runs/s/steer", json={"text": "x", "feature": 999}).status_code == 422
    assert client.post("/api/runs/s/steer", json={"text": "x", "feature": 0, "alpha": 1e9}).status_code == 422
    same_text = client.post("/api/runs/s/steer", json={"text": "x", "a": "same words", "b": "same words", "alpha": 1})
    assert same_text.status_code == 422 and "same mean code" in same_text.json()["detail"]


def test_the_steering_pool_spans_the_whole_store_and_knows_where_features_fire(client, sae_atlas):
    from latentatlas.atlas import Atlas
    from latentatlas.labs.sae.explore import SAEExplorer

    steer(client, {"text": "Open the file.", "feature": 0, "alpha": 1})
    x = SAEExplorer(Atlas(sae_atlas).run("s"))
    index = x.corpus_index(docs=8)
    n_docs = len(x.store.documents())
    assert index["doc"][0] == 0 and index["doc"][-1] == n_docs - 1 and len(index["doc"]) == 8  # spread, not the first 8
    # top_docs: for every feature, the pool documents with its largest activation, worked out here from the codes
    tok = x.tokens
    with torch.inference_mode():
        codes = x.sae.encode(torch.from_numpy(x.store.rows(np.arange(x.store.n_tokens)))).numpy()
    for feat in (0, 5, 77):
        doc_max = np.array([codes[tok["doc"].to_numpy() == d, feat].max(initial=0) for d in index["doc"]])
        k = index["top_docs"].shape[1]
        np.testing.assert_allclose(np.sort(index["top_acts"][feat])[::-1], np.sort(doc_max)[::-1][:k], rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(doc_max[index["top_docs"][feat]], index["top_acts"][feat], rtol=1e-5, atol=1e-6)


def test_steering_corpus_index_is_cached_in_the_run(client, sae_atlas):
    from latentatlas.atlas import Atlas
    from latentatlas.labs.sae.explore import SAEExplorer

    steer(client, {"text": "Open the file.", "feature": 0, "alpha": 1})
    cache = sae_atlas / "runs" / "s" / "features" / "corpus_index.safetensors"
    assert cache.is_file()
    first = SAEExplorer(Atlas(sae_atlas).run("s")).corpus_index()
    fresh = SAEExplorer(Atlas(sae_atlas).run("s"))
    got = fresh.corpus_index()
    assert fresh._tf is None, "a cached index must not need the transformer"
    for key in ("doc", "emb", "top_docs", "top_acts"):
        np.testing.assert_array_equal(got[key], first[key])
    cache.write_bytes(b"garbage")  # a damaged cache is recomputed and replaced, not an error
    again = SAEExplorer(Atlas(sae_atlas).run("s"))
    np.testing.assert_allclose(again.corpus_index()["emb"], got["emb"], atol=1e-5)
    assert again._tf is not None and cache.stat().st_size > 100


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True, database=None)
@given(text=st.text(max_size=300), alpha=st.floats(allow_nan=True, allow_infinity=True), feature=st.integers(-5, 200))
def test_no_request_is_a_server_error(client, text, alpha, feature):
    r = client.post("/api/runs/s/probe", json={"text": text})
    assert r.status_code in (200, 422), r.text
    r = client.post("/api/runs/s/steer", content=f'{{"text": {__import__("json").dumps(text)}, "alpha": {alpha}, "feature": {feature}}}',
                    headers={"content-type": "application/json"})
    assert r.status_code in (200, 202, 422), r.text


def test_display_tokens_reads_like_text():
    from latentatlas.labs.sae.explore import display_tokens

    assert "".join(display_tokens(["return", "the", "count", "##er", "(", "x", ")", "."])) == "return the counter (x)."
    assert "".join(display_tokens(["Open", "Ġthe", "Ġfile", ".", "Ċ", "Done"])) == "Open the file.\nDone"


def test_logit_effect_on_a_causal_lm_and_none_on_an_encoder(tiny_tf, tmp_path, client):
    """A GPT-2 SAE's feature page lists the tokens its decoder direction promotes and suppresses through
    the unembedding (final layer-norm gain folded in); a BERT page has none."""
    from latentatlas.atlas import Atlas
    from latentatlas.labs.sae.explore import SAEExplorer

    assert client.get("/api/runs/s/features/0").json()["logits"] is None
    capture_store(tiny_tf["gpt2"], 1, tiny_tf["corpus"], tokens=600, name="g", atlas=tmp_path, shard_tokens=200, batch_size=4, progress=False)
    run, _ = train_sae("g", "topk", expansion=2, k=4, steps=10, batch_size=64, name="gs", atlas=tmp_path, progress=False)
    evaluate_sae(run, progress=False, downstream=False)
    ex = SAEExplorer(Atlas(tmp_path).run("gs"))
    model = ex.transformer.model
    with torch.no_grad():  # a random init leaves the gain at 1; make it matter, so the fold is tested
        model.transformer.ln_f.weight.copy_(torch.rand(model.transformer.ln_f.weight.shape, generator=torch.Generator().manual_seed(0)) * 3)
    page = ex.feature_page(3)
    pos, neg = page["logits"]["positive"], page["logits"]["negative"]
    assert len(pos) == len(neg) == 10
    # the same ranking computed here, by hand, from the model's own weights
    w_u = model.lm_head.weight.detach() * model.transformer.ln_f.weight.detach()
    d = ex.sae.decoder()[3].detach()
    scores = w_u @ (d / d.norm())
    assert [t["id"] for t in pos] == torch.topk(scores, 10).indices.tolist()
    assert [t["id"] for t in neg] == torch.topk(-scores, 10).indices.tolist()
    assert pos[0]["logit"] == pytest.approx(float(scores.max()), rel=1e-5) and neg[0]["logit"] == pytest.approx(float(scores.min()), rel=1e-5)
    unfolded = model.lm_head.weight.detach() @ (d / d.norm())
    assert torch.topk(unfolded, 10).indices.tolist() != [t["id"] for t in pos]  # the gain changes the answer
