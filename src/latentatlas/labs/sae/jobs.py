"""The SAE lab's jobs over the atlas: capture a store of transformer activations, train an SAE on it (or import
one, saelens.py), evaluate it.

Each returns what it made (an :class:`ActivationStore`, a :class:`Run`, a metrics report) and keeps
everything in the atlas: ``activations/<name>/`` and ``runs/<name>/`` (kind ``sae``, data
``{"kind": "activations", "name": …}``).
"""

from __future__ import annotations

import json
import math
import shutil
import time
from typing import Any

import numpy as np

from ... import __version__
from ..._progress import progress_bar
from ...activations import ActivationStore, ShuffledBatches
from ...atlas import Atlas, Run, check_name, is_name, now_iso, writer_lock, writes_run
from ...errors import LatentAtlasError
from ...models import SAEConfig, build, config_from_dict
from ...models.io import config_to_dict
from ...limits import MAX_SEED, MAX_TOKENS, check_float, check_int, check_memory
from ...trainer import TrainConfig, TrainResult, fit, resolve_device

HEADLINE = ("l0", "fvu", "explained_variance", "cosine", "dead_fraction", "embedding_cosine", "ce_loss_recovered")


def _atlas(atlas: Atlas | str | None) -> Atlas:
    return atlas if isinstance(atlas, Atlas) else Atlas(atlas)


def capture_store(
    model: str = "minilm",
    layer: int | str = 3,
    corpus: str | dict = "builtin",
    tokens: int = 100_000,
    name: str | None = None,
    atlas: Atlas | str | None = None,
    *,
    text_field: str = "text",
    batch_size: int = 32,
    max_length: int = 128,
    keep_special: bool = False,
    shard_tokens: int = 32768,
    outlier_factor: float = 10.0,
    resume: bool = False,
    device: str = "auto",
    progress: bool = True,
    on_shard=None,
) -> ActivationStore:
    """``latentatlas capture``: ``tokens`` activations of ``model`` at ``layer`` over ``corpus``."""
    from ...capture import capture
    from ...data.text import load_corpus
    from ...models.hf import load_transformer, resolve_layer

    atlas = _atlas(atlas)
    check_int(tokens, "--tokens", 1, MAX_TOKENS)
    check_int(shard_tokens, "--shard-tokens", 1, 1 << 24)
    check_int(batch_size, "--batch-size", 1, 4096)
    check_int(max_length, "--max-length", 2, 1 << 20)
    if resume and not name:
        raise LatentAtlasError("--resume needs --name to say which activation store to continue")
    corp = load_corpus(corpus, field=text_field)
    name = name or f"{model if isinstance(model, str) and '/' not in model else 'model'}-L{layer}-{corp.name}"
    path = atlas.activations_path(name)
    if path.exists() and not resume:
        raise LatentAtlasError(f"activation store '{name}' already exists in atlas '{atlas.root}'; pick another --name, or pass --resume to continue it")
    if resume and not (path / "index.json").is_file():
        raise LatentAtlasError(f"activation store '{name}' does not exist in atlas '{atlas.root}'; leave out --resume to capture it")
    tf = load_transformer(model, device=resolve_device(device))
    module = resolve_layer(tf.model, layer)
    positions = next((getattr(tf.model.config, a) for a in ("max_position_embeddings", "n_positions", "n_ctx") if isinstance(getattr(tf.model.config, a, None), int)), None)
    if positions is not None and max_length > positions:
        raise LatentAtlasError(f"--max-length {max_length:,} is longer than the {positions:,} positions {tf.info.get('architecture', 'the model')} has")
    meta = {"name": name, "model": tf.spec, "model_info": tf.info, "causal": tf.causal, "layer_arg": str(layer),
            "created_at": now_iso(), "latentatlas": __version__}
    existed = path.exists()
    atlas.inside(atlas.activations_root, "the activations folder")
    try:
        with writer_lock(path, f"activation store '{name}'", atlas):
            return capture(tf.model, tf.tokenizer, corp, module, path, tokens=tokens, meta=meta, batch_size=batch_size,
                           max_length=max_length, keep_special=keep_special, shard_tokens=shard_tokens,
                           outlier_factor=outlier_factor, resume=resume, progress=progress, on_shard=on_shard)
    except BaseException:
        # a capture that failed before its first shard leaves no store behind to block the name
        index = path / "index.json"
        if not existed and path.is_dir() and not path.is_symlink():
            try:
                committed = bool(json.loads(index.read_text()).get("shards")) if index.is_file() else False
            except (OSError, ValueError):
                committed = False
            if not committed:
                shutil.rmtree(path, ignore_errors=True)
        raise


NOT_HELD_OUT = ("NOT HELD OUT: this SAE was trained on every token of its store (--holdout 0), so these metrics score tokens "
                "it was trained on and flatter it; train with a held-out range (the default) to measure it")
HOLDOUT = 0.05  # the default share of a store's tokens held out for `sae eval`
MIN_HOLDOUT = 4096


def holdout_range(store: ActivationStore, fraction: float) -> dict[str, Any]:
    """The held-out range of a store: its last tokens, at least ``fraction`` of them (and at least 4,096,
    or a fifth of a smaller store), starting at a document boundary (so no document is split between training and evaluation). Training sees rows
    ``[0, from_row)``, `sae eval` scores rows ``[from_row, n)``. ``fraction`` 0 holds nothing out (eval then
    says loudly that it scored training tokens)."""
    check_float(fraction, "--holdout", 0.0, 0.5)
    n = store.n_tokens
    if fraction == 0:
        return {"fraction": 0.0, "from_row": n, "tokens": 0, "from_doc": None}
    # at least 4,096 tokens (or a fifth of a smaller store) whatever the fraction, so that the block
    # bootstrap of the eval's intervals has blocks to resample
    want = max(1, math.ceil(fraction * n), min(MIN_HOLDOUT, n // 5))
    cut, doc = store.document_start(n - want)
    if cut == 0 or n - cut > 0.5 * n:
        raise LatentAtlasError(f"activation store '{store.name}' ({n:,} tokens) is too small to hold out {fraction:.0%} of its tokens "
                               f"at a document boundary (its last documents span {n - cut:,} tokens); capture more tokens, or pass "
                               "--holdout 0 to train on all of them (eval then scores tokens the SAE was trained on)")
    return {"fraction": float(fraction), "from_row": int(cut), "tokens": int(n - cut), "from_doc": doc}


def train_sae(
    activations: str,
    arch: str = "topk",
    *,
    expansion: int = 8,
    k: int = 32,
    steps: int = 2000,
    batch_size: int = 4096,
    lr: float = 2e-3,
    l1_coeff: float | None = None,
    l0_coeff: float | None = None,
    sparsity_warmup: int | None = None,
    lr_warmup: int | None = None,
    lr_decay: float = 0.2,
    dead_tokens: int | None = None,
    normalize_input: bool = True,
    grad_clip: float | None = 1.0,
    holdout: float = HOLDOUT,
    seed: int = 0,
    name: str | None = None,
    atlas: Atlas | str | None = None,
    resume: bool = False,
    checkpoint_every: int = 500,
    log_every: int = 50,
    device: str = "auto",
    progress: bool = True,
    on_step=None,
) -> tuple[Run, TrainResult]:
    """``latentatlas sae train``: an SAE on store ``activations``, through the one trainer."""
    import torch

    atlas = _atlas(atlas)
    if resume:
        if not name:
            raise LatentAtlasError("--resume needs --name to say which SAE run to continue")
        run = atlas.run(name)
        with run.lock():
            cfg = run.config()
            if isinstance(cfg.get("origin"), dict):
                raise LatentAtlasError(f"run '{name}' was imported from {cfg['origin']['format']} ({cfg['origin']['folder']}), "
                                       "not trained here; there is nothing to resume")
            data = sae_data(run, cfg)
            store = atlas.activations(data["name"])
            train_cfg = TrainConfig.from_dict(cfg.get("train"))
            if run.has_model and not run.has_checkpoint:
                raise LatentAtlasError(f"run '{name}' already finished its {train_cfg.steps} steps; there is nothing to resume")
            torch.manual_seed(train_cfg.seed)
            model = build(config_from_dict("sae", cfg.get("model") or {}))
            stop = train_rows(run, data, store)
            _init(model, store, stop, train_cfg.seed)
            source = ShuffledBatches(store, train_cfg.batch_size, train_cfg.seed, stop=stop)
            return run, fit(model, source, run, train_cfg, resume=True, progress=progress, on_step=on_step)

    from ...models.sae import ARCHS

    if arch not in ARCHS:
        raise LatentAtlasError(f"--arch '{arch}' is not an SAE architecture; expected one of: {', '.join(ARCHS)}")
    store = atlas.activations(activations)
    if not store.complete:
        raise LatentAtlasError(f"activation store '{activations}' is incomplete; finish it with `latentatlas capture --resume --name {activations} …`")
    check_sae_settings(arch, store.d, expansion, k, l1_coeff, l0_coeff, batch_size)
    held = holdout_range(store, holdout)
    defaults = SAEConfig()
    try:
        model_cfg = SAEConfig(
            arch=arch, d_in=store.d, d_sae=expansion * store.d, k=k,
            l1_coeff=defaults.l1_coeff if l1_coeff is None else l1_coeff,
            l0_coeff=defaults.l0_coeff if l0_coeff is None else l0_coeff,
            sparsity_warmup=(steps // 20 if arch in ("relu", "jumprelu") else 0) if sparsity_warmup is None else sparsity_warmup,
            aux_k=min(defaults.aux_k, store.d // 2 if store.d >= 2 else 1),
            dead_tokens=min(defaults.dead_tokens, max(batch_size, steps * batch_size // 10)) if dead_tokens is None else dead_tokens,
            normalize_input=normalize_input,
        )
    except ValueError as exc:
        raise LatentAtlasError(f"cannot build a {arch} SAE: {exc}") from exc
    resolve_device(device)
    train_cfg = TrainConfig(steps=steps, batch_size=batch_size, lr=lr, seed=seed, checkpoint_every=checkpoint_every, log_every=log_every,
                            device=device, lr_warmup=min(steps // 20, 1000) if lr_warmup is None else lr_warmup, lr_decay=lr_decay,
                            grad_clip=grad_clip)
    name = name or atlas.unique_run_name(f"sae-{arch}-{activations}")
    torch.manual_seed(seed)
    model = build(model_cfg)
    _init(model, store, held["from_row"], seed)
    config: dict[str, Any] = {
        "name": name, "kind": "sae", "model": config_to_dict(model_cfg), "train": train_cfg.to_dict(),
        "data": {"kind": "activations", "name": activations, "d": store.d, "tokens": store.n_tokens,
                 "holdout": held, "shuffle": "global", "store_model": store.index.get("model"), "layer": store.index.get("layer")},
        "versions": {"latentatlas": __version__, "torch": torch.__version__},
        "created_at": now_iso(),
    }
    run = atlas.create_run(name, config)
    try:
        with run.lock():
            source = ShuffledBatches(store, batch_size, seed, stop=held["from_row"])
            result = fit(model, source, run, train_cfg, resume=False, progress=progress, on_step=on_step)
    except BaseException:
        if not (run.has_checkpoint or run.has_model):
            atlas.delete_run(name)  # nothing worth keeping; do not block the name
        raise
    return run, result


def check_sae_settings(arch: str, d: int, expansion: int, k: int | None, l1_coeff: float | None, l0_coeff: float | None,
                       batch_size: int) -> None:
    """The settings of an SAE on width ``d``, each named by its option: in range, meant for this arch, and
    small enough for this machine's memory (weights, gradients and Adam's two moments, plus a batch of
    codes)."""
    from ...limits import MAX_EXPANSION

    check_int(expansion, "--expansion", 1, MAX_EXPANSION)
    d_sae = expansion * d
    check_memory(4 * 4 * 2 * d_sae * d + 4 * 3 * batch_size * d_sae, f"an SAE of {d_sae:,} latents on width {d} with --batch-size {batch_size:,}")
    if arch in ("topk", "batchtopk") and k is not None:
        check_int(k, "--k", 1, d_sae)
    if l1_coeff is not None:
        check_float(l1_coeff, "--l1-coeff", 0.0)
    if l0_coeff is not None:
        check_float(l0_coeff, "--l0-coeff", 0.0)


def sae_data(run: Run, cfg: dict[str, Any] | None = None) -> dict[str, Any]:
    """The ``data`` section of an SAE run's config, checked (the config is untrusted): the store's name and
    its held-out range (``holdout``; runs made before it held out whole shards, ``holdout_shards``)."""
    cfg = run.config() if cfg is None else cfg
    data = cfg.get("data")
    name = data.get("name") if isinstance(data, dict) else None
    ok = isinstance(name, str) and is_name(name)
    if ok and "holdout" in data:
        held = data["holdout"]
        row = held.get("from_row") if isinstance(held, dict) else None
        ok = isinstance(row, int) and not isinstance(row, bool) and row >= 0
    elif ok:
        h = data.get("holdout_shards", 0)
        ok = isinstance(h, int) and not isinstance(h, bool) and h >= 0
    if not ok:
        raise LatentAtlasError(f"run '{run.name}' config's data section should name its activation store and its held-out range; "
                               "the config is damaged")
    return data


def train_rows(run: Run, data: dict[str, Any], store: ActivationStore) -> int:
    """Where run's training rows end in ``store`` (its held-out range begins there; 0 for an imported SAE)."""
    whole = False  # an imported SAE was trained on none of the store: all of it is held out (from row 0)
    if "holdout" in data:
        stop = data["holdout"]["from_row"]
        whole = stop == 0 and data["holdout"].get("fraction") == 1.0
    else:
        h = data.get("holdout_shards", 0)
        stop = store.shards[len(store.shards) - h].first_row if 0 < h < len(store.shards) else (store.n_tokens if h == 0 else -1)
    if not (0 < stop <= store.n_tokens or whole):
        raise LatentAtlasError(f"run '{run.name}' holds out rows from {stop} of store '{store.name}', which has {store.n_tokens:,} tokens; "
                               "the config does not match the store")
    return stop


def _init(model, store: ActivationStore, stop: int, seed: int, rows: int = 65536) -> None:
    """Input scale and b_dec from a seeded sample of training rows (the same sample on resume)."""
    import torch

    idx = np.sort(np.random.default_rng([seed, 7]).choice(stop, size=min(rows, stop), replace=False))
    model.init_from_data(torch.from_numpy(store.rows(idx)))


def load_sae(run: Run):
    cfg = run.config()
    if cfg.get("kind") != "sae":
        raise LatentAtlasError(f"run '{run.name}' is a {cfg.get('kind')}, not an SAE")
    return run.load_model()


@writes_run
def evaluate_sae(
    run: Run,
    activations: str | None = None,
    tokens: int = 200_000,
    batch_size: int = 4096,
    seed: int = 0,
    device: str = "auto",
    command: str | None = None,
    progress: bool = True,
    downstream: bool = True,
    docs: int = 256,
    features: bool = True,
    feature_tokens: int = 200_000,
) -> dict[str, Any]:
    """``latentatlas sae eval``: the streaming metrics on held-out tokens, written to metrics.json.

    With ``downstream`` the reconstruction is also spliced back into the store's model over ``docs``
    held-out documents (fidelity.py): sentence-embedding cosine and neighbour overlap for encoders, CE
    loss recovered and KL for causal LMs."""
    import torch

    from ...analysis.sae_metrics import SAEStats

    t0 = time.perf_counter()
    check_int(seed, "--seed", 0, MAX_SEED)
    check_int(tokens, "--tokens", 1, MAX_TOKENS)
    cfg = run.config()
    model = load_sae(run)
    atlas = run.atlas
    data = sae_data(run, cfg)
    store_name = activations or data["name"]
    store = atlas.activations(store_name)
    store.check_width(model.config.d_in, f"SAE '{run.name}'")
    notes = []
    origin = cfg.get("origin")
    imported = isinstance(origin, dict)
    if imported:
        notes.append(f"imported from the {origin['format']} folder '{origin['folder']}': trained elsewhere, not here, so no "
                     f"token of store '{store_name}' was trained on here; whether its documents were in the SAE's own training "
                     "data is not known")
    start, held_out = 0, True
    if activations is None or activations == data["name"]:
        start = train_rows(run, data, store)
        if start >= store.n_tokens:
            start, held_out = 0, False
            notes.append(NOT_HELD_OUT)
    elif not imported:
        notes.append(f"evaluated on store '{store_name}', not the run's own held-out range; it is held out only if that store "
                     "shares no documents with the training store")
    dev = resolve_device(device)
    model.to(dev).eval()
    n_eval = min(tokens, store.n_tokens - start)
    # bootstrap blocks of 1,024 tokens (several documents each); smaller on small evaluations, so that
    # there are at least ~50 blocks to resample
    stats = SAEStats(model.config.d_sae, block=int(min(1024, max(64, n_eval // 50))))
    with progress_bar(progress, "tokens") as bar, torch.inference_mode():
        task = bar.add_task(f"evaluating {run.name}", total=n_eval)
        for _, a in store.iter_chunks(rows=batch_size, limit=n_eval, start=start):
            x = torch.from_numpy(a).to(dev)
            x_hat, f = model(x)
            stats.update(x, x_hat, f)
            bar.update(task, advance=len(x))
    metrics = {k: v.to_dict() for k, v in stats.result(rng=seed).items()}
    timings = {"reconstruction": time.perf_counter() - t0}
    if downstream:
        t1 = time.perf_counter()
        found = _downstream(model, store, start, stats, docs, dev, seed)
        if found is None:
            notes.append("no downstream fidelity: the store's model could not be loaded")
        else:
            metrics.update({k: v.to_dict() for k, v in found.items()})
        timings["downstream"] = time.perf_counter() - t1
    if not imported:  # an imported SAE carries no record of which latents fired during its training
        train_dead = float((model.tokens_since_fired >= model.config.dead_tokens).float().mean())
        metrics["dead_fraction_train"] = {"name": "dead_fraction_train", "value": train_dead, "ci_low": None, "ci_high": None,
                                          "n": int(model.config.d_sae), "details": {"dead_tokens": model.config.dead_tokens}}
    report = {
        "run": run.name, "kind": "sae", "command": command or f"latentatlas sae eval {run.name}", "created_at": now_iso(),
        "latentatlas": __version__, "activations": store_name, "rows": [start, start + stats.n], "held_out": held_out, "n": stats.n, "seed": seed,
        "metrics": metrics, "density_histogram": stats.density_histogram(),
        "headline": {k: metrics[k]["value"] for k in HEADLINE if k in metrics}, "notes": notes,
        "timings_s": {**{k: round(v, 3) for k, v in timings.items()}, "total": round(time.perf_counter() - t0, 3)},
    }
    if features:
        t1 = time.perf_counter()
        scan_features(run, model=model, tokens=feature_tokens, device=dev, seed=seed, progress=progress)
        report["timings_s"]["features"] = round(time.perf_counter() - t1, 3)
        if downstream and not store.index.get("causal"):
            # steering's neighbours: embedded here, so that the explorer never computes them in a request
            t1 = time.perf_counter()
            from .explore import SAEExplorer

            SAEExplorer(run).corpus_index(compute=True)
            report["timings_s"]["steering_index"] = round(time.perf_counter() - t1, 3)
    run.write_metrics(report)
    return report


@writes_run
def scan_features(run: Run, model=None, tokens: int = 200_000, device="cpu", seed: int = 0, progress: bool = False,
                  batch_size: int = 1024) -> dict[str, Any]:
    """The feature tables behind the explorer's feature pages, over the first ``tokens`` of the store
    (analysis/sae_features.py), written to ``runs/<run>/features/``."""
    import torch

    from ...analysis.sae_features import FeatureScan

    cfg = run.config()
    model = model if model is not None else load_sae(run)
    model.to(device).eval()
    store = run.atlas.activations(sae_data(run, cfg)["name"])
    store.check_width(model.config.d_in, f"SAE '{run.name}'")
    scan = FeatureScan(model.config.d_sae, seed=seed)

    def codes():
        for first_row, a in store.iter_chunks(rows=batch_size, limit=tokens):
            with torch.inference_mode():
                f = model.encode(torch.from_numpy(a).to(device)).cpu()
            yield first_row, f

    for first_row, f in codes():
        scan.first(f, torch.arange(first_row, first_row + len(f)))
    scanned = [i for i, s in enumerate(store.shards) if s.first_row < tokens]  # only the token tables the scan reads
    token_ids = torch.from_numpy(np.concatenate([store.shard_tokens(i)["token_id"].to_numpy() for i in scanned]))
    for first_row, f in codes():
        scan.second(f, torch.arange(first_row, first_row + len(f)), token_ids[first_row : first_row + len(f)])
    tables = scan.result()
    meta = {"activations": store.name, "n_tokens": tables.n_tokens, "k": scan.k, "bins": scan.bins, "created_at": now_iso()}
    run.write_features(tables.arrays(), meta)
    return meta


def _downstream(model, store: ActivationStore, start: int, stats, docs: int, device, seed: int):
    """Splice the SAE into the store's own model over up to ``docs`` documents from row ``start`` on."""
    import torch

    from ...models.hf import load_transformer
    from .fidelity import causal_fidelity, encoder_fidelity

    spec = store.index.get("model")
    if not spec:
        return None
    tf = load_transformer(spec, device=device)
    first_doc = store.document_start(start)[1] if start < store.n_tokens else 0
    last = store.shards[-1]
    ids = set(range(first_doc, last.first_doc + last.docs))
    table = store.documents()
    texts = table[table["doc"].isin(ids)].sort_values("doc")["text"].tolist()[:docs]
    if len(texts) < 2:
        return None
    kw = dict(max_length=int(store.index.get("max_length", 128)), prepend_bos=bool(store.index.get("prepend_bos")), seed=seed)
    if tf.causal:
        return causal_fidelity(tf.model, tf.tokenizer, store.index["layer"], model, texts, **kw)
    mean = torch.from_numpy(stats.mean().astype(np.float32))
    return encoder_fidelity(tf.model, tf.tokenizer, store.index["layer"], model, texts, mean=mean, **kw)


SWEEP_PARAM = {"topk": "k", "batchtopk": "k", "relu": "l1_coeff", "jumprelu": "l0_coeff"}


def sweep_sae(
    activations: str,
    arch: str,
    values: list[float],
    *,
    name: str | None = None,
    atlas: Atlas | str | None = None,
    downstream: bool = False,
    eval_tokens: int = 200_000,
    progress: bool = True,
    command: str | None = None,
    **train_kw: Any,
) -> dict[str, Any]:
    """``latentatlas sae sweep``: one SAE per value of the arch's sparsity knob (k, or λ), each trained and
    evaluated, then the frontier (L0 and rate in bits against FVU) stored as a run of kind ``sae_sweep``
    with its figure. Finished members are reused and half-trained ones resumed, so a sweep that was
    stopped continues where it was."""
    from ... import figures as F
    from ...models.sae import ARCHS
    from .figures import rate_distortion

    atlas = _atlas(atlas)
    if arch not in ARCHS:
        raise LatentAtlasError(f"--arch '{arch}' is not an SAE architecture; expected one of: {', '.join(ARCHS)}")
    if not values:
        raise LatentAtlasError("a sweep needs at least one value")
    knob = SWEEP_PARAM[arch]
    name = name or f"sweep-{arch}-{activations}"
    check_name(name, "sweep name")
    store = atlas.activations(activations)  # the store must exist before anything is created
    expansion = train_kw.get("expansion", 8)
    for v in values:
        if knob == "k":
            if not (isinstance(v, (int, float)) and np.isfinite(v) and float(v).is_integer()):
                raise LatentAtlasError(f"--values {v:g} is not a whole number; a {arch} sweep varies k, the active latents per token")
            check_int(int(v), "--values (k)", 1, expansion * store.d)
        else:
            check_float(v, f"--values ({knob.replace('_', '-')})", 0.0)
    check_sae_settings(arch, store.d, expansion, None, None, None, train_kw.get("batch_size", 4096))
    members = []
    for v in values:
        tag = f"{knob.split('_')[0]}{v:g}"
        member = f"{name}-{tag}"
        kw = dict(train_kw)
        kw[knob] = int(v) if knob == "k" else float(v)
        if atlas.has_run(member):
            run = atlas.run(member)
            if run.has_checkpoint or not run.has_model:
                run, _ = train_sae(activations, arch, name=member, atlas=atlas, resume=True, progress=progress)
        else:
            run, _ = train_sae(activations, arch, name=member, atlas=atlas, progress=progress, **kw)
        report = run.read_metrics()
        if report is None or report.get("kind") != "sae":
            report = evaluate_sae(run, tokens=eval_tokens, downstream=downstream, progress=progress)
        m = report["metrics"]
        members.append({"run": member, "label": f"{knob}={v:g}", "value": v, "l0": m["l0"]["value"], "fvu": m["fvu"]["value"],
                        "fvu_low": m["fvu"]["ci_low"], "fvu_high": m["fvu"]["ci_high"], "rate_bits": m["rate_bits"]["value"],
                        "rate_support_bits": m["rate_support_bits"]["value"], "dead_fraction": m["dead_fraction"]["value"],
                        **({"embedding_cosine": m["embedding_cosine"]["value"]} if "embedding_cosine" in m else {}),
                        **({"ce_loss_recovered": m["ce_loss_recovered"]["value"]} if "ce_loss_recovered" in m else {})})
    config = {"name": name, "kind": "sae_sweep", "data": {"kind": "activations", "name": activations}, "arch": arch,
              "param": knob, "values": list(values), "members": [p["run"] for p in members], "created_at": now_iso()}
    sweep = atlas.run(name) if atlas.has_run(name) else atlas.create_run(name, config)
    with sweep.lock():
        sweep.write_config(config)
        fig_path = F.save(rate_distortion(members, title=f"{arch} SAEs on {activations}: sweep over {knob}"),
                          sweep.figure_path("rate_distortion.png"))
        report = {"run": name, "kind": "sae_sweep", "command": command or f"latentatlas sae sweep --activations {activations} --arch {arch}",
                  "created_at": now_iso(), "param": knob, "frontier": members, "figures": {"rate_distortion": str(fig_path)},
                  "headline": {}, "metrics": {}}
        sweep.write_metrics(report)
    return report
