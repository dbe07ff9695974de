"""Schemas of the atlas's own JSON files, which are untrusted input: a shared run folder may be hostile, a
disk may truncate, a hand edit may go wrong. Each file is parsed by ``_io.read_json`` (size, encoding,
nesting, digit limits) and then validated here, at the edge, before any code uses a value from it:
types, ranges that fit in memory, names that cannot leave the atlas, and the consistency between fields
(a checkpoint's step and folder, a store's shard offsets).

``validate(model, data, what, path)`` turns pydantic's report into one sentence naming the file and the
first field that is wrong.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, StrictStr, ValidationError, field_validator, model_validator

from .errors import LatentAtlasError
from .limits import MAX_BATCH, MAX_SEED, MAX_STEPS, MAX_TOKENS, MAX_WIDTH

NAME = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$"
KIND = r"^[a-z][a-z0-9_]{0,63}$"
SHARD_FILE = r"^shard-[0-9]{5,9}\.safetensors$"
Number = float | None  # JSON numbers; NaN and ±inf are allowed where an estimate may have none

T = TypeVar("T", bound=BaseModel)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class _Open(BaseModel):
    """Fields used by the code are typed; other keys (lab-specific report fields) are kept as they are."""

    model_config = ConfigDict(extra="allow", strict=True)


def validate(model: type[T], data: Any, what: str, path: Any) -> T:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err.get("loc", ())) or "the top level"
        msg = str(err.get("msg", "is invalid")).rstrip(".").removeprefix("Value error, ")
        if err.get("type") == "extra_forbidden":
            msg = "is not a field latentatlas writes there"
        raise LatentAtlasError(f"{what} '{path}' is invalid at {where}: {msg[0].lower() + msg[1:]}") from None


# -- runs/<run>/config.json ----------------------------------------------------------------------------
class TrainSection(_Strict):
    """``TrainConfig`` as a run records it (trainer.py re-checks the ranges when it builds one)."""

    steps: StrictInt = Field(1000, ge=1, le=MAX_STEPS)
    batch_size: StrictInt = Field(64, ge=1, le=MAX_BATCH)
    lr: float = Field(1e-3, gt=0, allow_inf_nan=False)
    seed: StrictInt = Field(0, ge=0, le=MAX_SEED)
    checkpoint_every: StrictInt = Field(500, ge=1, le=MAX_STEPS)
    log_every: StrictInt = Field(50, ge=1, le=MAX_STEPS)
    device: StrictStr = Field("auto", max_length=16)
    grad_clip: float | None = Field(None, ge=0, allow_inf_nan=False)
    adam_betas: list[float] = Field([0.9, 0.999], min_length=2, max_length=2)
    lr_warmup: StrictInt = Field(0, ge=0, le=MAX_STEPS)
    lr_decay: float = Field(0.0, ge=0, le=1, allow_inf_nan=False)
    weight_decay: float = Field(0.0, ge=0, le=10, allow_inf_nan=False)
    model_config = ConfigDict(extra="forbid", strict=False)

    @field_validator("lr", "grad_clip", "lr_decay", "weight_decay", mode="before")
    @classmethod
    def _number(cls, v):
        if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float))):
            raise ValueError("should be a number")
        return v


class ImportOrigin(_Strict):
    """Where an imported model came from (``sae import``): the format and folder it was read from."""

    format: Literal["saelens"]
    folder: StrictStr = Field(max_length=4096)
    architecture: StrictStr | None = Field(None, max_length=64)
    hook_name: StrictStr | None = Field(None, max_length=500)
    model_name: StrictStr | None = Field(None, max_length=500)


class RunConfig(_Strict):
    name: StrictStr = Field(pattern=NAME)
    kind: StrictStr = Field(pattern=KIND)
    created_at: StrictStr = Field("", max_length=64)
    model: dict[str, Any] | None = None
    train: TrainSection | None = None
    data: dict[str, Any] | StrictStr | None = None
    versions: dict[str, StrictStr] | None = None
    origin: Annotated[StrictStr, Field(max_length=64)] | ImportOrigin | None = None  # "demo", or where an imported model came from
    # an SAE sweep's own run
    arch: StrictStr | None = Field(None, max_length=64)
    param: StrictStr | None = Field(None, max_length=64)
    values: list[float] | None = Field(None, max_length=1000)
    members: list[StrictStr] | None = Field(None, max_length=1000)

    @field_validator("members")
    @classmethod
    def _member_names(cls, v):
        for m in v or ():
            if not re.match(NAME, m):
                raise ValueError(f"member '{m[:60]}' is not a run name")
        return v


# -- runs/<run>/checkpoint/latest.json and step-N/meta.json -------------------------------------------------
class CheckpointPointer(_Strict):
    step: StrictInt = Field(ge=1, le=MAX_STEPS)
    folder: StrictStr

    @model_validator(mode="after")
    def _folder_is_the_step(self):
        if self.folder != f"step-{self.step:09d}":
            raise ValueError(f"folder '{self.folder[:60]}' is not the folder of step {self.step} (step-{self.step:09d})")
        return self


class OptimizerMeta(_Strict):
    param_groups: list[dict[str, Any]] = Field(max_length=64)
    scalars: dict[str, dict[str, Any]] = Field(default_factory=dict)


class CheckpointMeta(_Strict):
    step: StrictInt = Field(ge=1, le=MAX_STEPS)
    optimizer: OptimizerMeta
    train: dict[str, Any]


# -- runs/<run>/metrics.json --------------------------------------------------------------------------------
class MetricEntry(_Open):
    value: Number = None
    ci_low: Number = None
    ci_high: Number = None
    n: StrictInt | None = Field(None, ge=0)
    details: dict[str, Any] | None = None

    model_config = ConfigDict(extra="allow", strict=False)  # numbers may be ints or floats

    @field_validator("value", "ci_low", "ci_high", mode="before")
    @classmethod
    def _number(cls, v):
        if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float))):
            raise ValueError("should be a number")
        return v


class FrontierPoint(_Open):
    run: StrictStr = Field(pattern=NAME)
    label: StrictStr = Field(max_length=200)
    l0: float
    fvu: float
    rate_bits: float
    dead_fraction: float
    model_config = ConfigDict(extra="allow", strict=False)


class DensityHistogram(_Open):
    counts: list[StrictInt] = Field(max_length=10_000)
    log10_density_edges: list[float] = Field(max_length=10_001)
    dead: StrictInt = Field(ge=0)
    model_config = ConfigDict(extra="allow", strict=False)


class MetricsReport(_Open):
    run: StrictStr | None = None
    kind: StrictStr | None = None
    n: StrictInt | None = Field(None, ge=0)
    metrics: dict[str, MetricEntry] = Field(default_factory=dict, max_length=10_000)
    headline: dict[str, Number] = Field(default_factory=dict)
    notes: list[StrictStr] = Field(default_factory=list, max_length=1000)
    dims_by_kl: list[StrictInt] | None = Field(None, max_length=MAX_WIDTH)
    kl_per_dim: list[Number] | None = Field(None, max_length=MAX_WIDTH)
    frontier: list[FrontierPoint] | None = Field(None, max_length=1000)
    density_histogram: DensityHistogram | None = None
    held_out: StrictBool | None = None
    model_config = ConfigDict(extra="allow", strict=False)

    @field_validator("metrics", "headline")
    @classmethod
    def _names(cls, v):
        for k in v:
            if len(k) > 200:
                raise ValueError("a metric name is longer than 200 characters")
        return v

    @field_validator("headline", mode="before")
    @classmethod
    def _headline_numbers(cls, v):
        if isinstance(v, dict):
            for k, x in v.items():
                if x is not None and (isinstance(x, bool) or not isinstance(x, (int, float))):
                    raise ValueError(f"headline '{str(k)[:60]}' should be a number")
        return v

    @model_validator(mode="after")
    def _dims(self):
        if self.dims_by_kl is not None and sorted(self.dims_by_kl) != list(range(len(self.dims_by_kl))):
            raise ValueError("dims_by_kl should be an ordering of the latent dims 0..D-1")
        return self


# -- runs/<run>/latents/<name>.json ----------------------------------------------------------------------------
class FactorInfo(_Strict):
    name: StrictStr = Field(max_length=200)
    size: StrictInt = Field(ge=1, le=1 << 31)
    value_names: list[StrictStr] | None = Field(None, max_length=100_000)

    @model_validator(mode="after")
    def _one_name_per_value(self):
        if self.value_names is not None and len(self.value_names) != self.size:
            raise ValueError(f"factor '{self.name[:60]}' has {len(self.value_names)} value names for {self.size} values")
        return self


class LatentMeta(_Strict):
    dataset: StrictStr = Field(max_length=500)
    factors: list[FactorInfo] = Field(default_factory=list, max_length=1000)
    classes: list[StrictStr] | None = Field(None, max_length=100_000)


# -- activations/<name>/index.json --------------------------------------------------------------------------
class ShardEntry(_Strict):
    file: StrictStr = Field(pattern=SHARD_FILE)
    rows: StrictInt = Field(ge=1, le=1 << 31)
    bytes: StrictInt = Field(ge=8, le=1 << 44)
    hash: StrictStr = Field(pattern=r"^[0-9a-f]{32}$")
    first_row: StrictInt = Field(ge=0, le=MAX_TOKENS)
    first_doc: StrictInt = Field(ge=0, le=MAX_TOKENS)
    docs: StrictInt = Field(ge=0, le=MAX_TOKENS)


class StoreIndex(_Open):
    format: Literal[1]
    d: StrictInt = Field(ge=1, le=MAX_WIDTH)
    dtype: Literal["float32"] = "float32"
    shards: list[ShardEntry] = Field(max_length=1_000_000)
    complete: StrictBool = False
    docs_done: StrictInt = Field(0, ge=0, le=MAX_TOKENS)
    layer: StrictStr = Field(max_length=500)
    model: dict[str, Any] | None = None
    causal: StrictBool | None = None
    max_length: StrictInt | None = Field(None, ge=2, le=1 << 20)
    prepend_bos: StrictBool | None = None
    keep_special: StrictBool | None = None
    norm: dict[str, Any] | None = None
    tokens: StrictInt | None = Field(None, ge=0, le=MAX_TOKENS)

    @field_validator("model")
    @classmethod
    def _model_spec(cls, v):
        if v is None:
            return v
        keys = set(v) & {"name", "path", "hub"}
        if len(keys) != 1 or not isinstance(v[next(iter(keys))], str) or len(v[next(iter(keys))]) > 1000:
            raise ValueError("should name the model by exactly one of 'name', 'path' or 'hub'")
        return v

    @model_validator(mode="after")
    def _consistent(self):
        row = doc = 0
        names = set()
        for i, s in enumerate(self.shards):
            if s.first_row != row:
                raise ValueError(f"shard {i} starts at row {s.first_row}, but the shards before it hold {row} rows")
            if s.first_doc != doc:
                raise ValueError(f"shard {i} starts at document {s.first_doc}, but the shards before it hold {doc}")
            if s.file in names:
                raise ValueError(f"shard file '{s.file}' is listed twice")
            payload = s.rows * self.d * 4
            if not payload + 8 < s.bytes <= payload + (1 << 20):
                raise ValueError(f"shard {i} claims {s.bytes:,} bytes for {s.rows:,} × {self.d} float32 values")
            names.add(s.file)
            row += s.rows
            doc += s.docs
        if self.tokens is not None and self.complete and self.tokens != row:
            raise ValueError(f"tokens is {self.tokens}, but the shards hold {row} rows")
        return self


# -- runs/<run>/features/features.json and projections/<key>.json ----------------------------------------------
class FeaturesMeta(_Strict):
    activations: StrictStr = Field(pattern=NAME)
    n_tokens: StrictInt = Field(ge=0, le=MAX_TOKENS)
    k: StrictInt = Field(ge=1, le=10_000)
    bins: StrictInt = Field(ge=1, le=10_000)
    created_at: StrictStr = Field("", max_length=64)


class ProjectionMeta(_Open):
    method: StrictStr = Field(max_length=32)
    n: StrictInt | None = Field(None, ge=0, le=MAX_TOKENS)
    model_config = ConfigDict(extra="allow", strict=False)


# -- runs/<run>/attention/… (the attention lab) --------------------------------------------------------------
class AttentionSampleMeta(_Strict):
    """``attention/samples/<id>/sample.json``: one text's captured attention."""

    id: StrictStr = Field(pattern=r"^[0-9a-f]{12}$")
    text: StrictStr = Field(max_length=1 << 22)
    tokens: list[Annotated[StrictStr, Field(max_length=1000)]] = Field(max_length=1 << 17)
    n_tokens: StrictInt = Field(ge=1, le=1 << 17)
    n_layers: StrictInt = Field(ge=1, le=4096)
    n_heads: StrictInt = Field(ge=1, le=4096)
    layers: list[Annotated[StrictStr, Field(max_length=500)]] = Field(max_length=4096)
    causal: StrictBool
    source: Literal["attend", "output_attentions"]
    implementation: StrictStr | None = Field(None, max_length=64)
    note: StrictStr | None = Field(None, max_length=2000)
    neuron: StrictBool
    model: StrictStr = Field(max_length=500)
    created_at: StrictStr = Field("", max_length=64)
    seconds: float = Field(0.0, ge=0)
    thumb: StrictInt = Field(ge=1, le=1024)
    model_config = ConfigDict(extra="forbid", strict=False)

    @model_validator(mode="after")
    def _consistent(self):
        if len(self.tokens) != self.n_tokens:
            raise ValueError(f"it lists {len(self.tokens)} tokens but n_tokens is {self.n_tokens}")
        if len(self.layers) != self.n_layers:
            raise ValueError(f"it names {len(self.layers)} layers but n_layers is {self.n_layers}")
        return self


class HeadAtlasMeta(_Strict):
    """``attention/heads.json``: what the head atlas's table holds."""

    stats: list[Annotated[StrictStr, Field(max_length=64)]] = Field(min_length=1, max_length=64)
    n_layers: StrictInt = Field(ge=1, le=4096)
    n_heads: StrictInt = Field(ge=1, le=4096)
    tokens: StrictInt = Field(ge=0)
    corpus: dict[str, Any]
    layers: list[Annotated[StrictStr, Field(max_length=500)]] = Field(max_length=4096)
    prefix_matching: dict[str, Any]
    copying: StrictBool
    seconds: float = Field(ge=0)
    forward_seconds: float = Field(0.0, ge=0)
    created_at: StrictStr = Field("", max_length=64)
    model: StrictStr = Field("", max_length=500)
    model_config = ConfigDict(extra="forbid", strict=False)


# -- runs/<run>/graph/graph.json (the module graph) ------------------------------------------------------------
MAX_GRAPH_NODES = 200_000
_Shape = Annotated[list[Annotated[StrictInt, Field(ge=0, le=1 << 40)]], Field(max_length=16)]
_GraphText = Annotated[StrictStr, Field(max_length=1000)]


class GraphNodeEntry(_Strict):
    id: _GraphText
    kind: Literal["module", "op", "input", "output"]
    label: _GraphText
    type: Annotated[StrictStr, Field(max_length=200)]
    parent: _GraphText | None
    params: StrictInt = Field(ge=0, le=1 << 50)
    params_total: StrictInt = Field(ge=0, le=1 << 50)
    shapes: list[_Shape] = Field(max_length=8)
    dtypes: list[Annotated[StrictStr, Field(max_length=32)]] = Field(max_length=8)
    in_shapes: list[_Shape] = Field(max_length=8)
    stats: dict[Literal["mean", "std", "zeros", "norm"], float | None] | None
    calls: StrictInt = Field(ge=0)


class GraphFile(_Strict):
    """``graph/graph.json``: a model's module tree and data flow, traced on one batch."""

    format: Literal["latentatlas-graph"]
    model: StrictStr = Field(max_length=500)
    architecture: StrictStr = Field("", max_length=200)
    spec: dict[str, Any]
    method: StrictStr = Field(max_length=32)
    tracer: Literal["hooks", "export"]
    requested: Literal["hooks", "export"]
    note: StrictStr | None = Field(None, max_length=2000)
    capture_model: StrictStr | None = Field(None, max_length=4096)
    created_at: StrictStr = Field("", max_length=64)
    seconds: float = Field(0.0, ge=0)
    inputs: dict[Annotated[StrictStr, Field(max_length=200)], _Shape] = Field(max_length=64)
    nodes: list[GraphNodeEntry] = Field(min_length=1, max_length=MAX_GRAPH_NODES)
    edges: list[Annotated[list[_GraphText], Field(min_length=2, max_length=2)]] = Field(max_length=4 * MAX_GRAPH_NODES)
    model_config = ConfigDict(extra="forbid", strict=False)

    @model_validator(mode="after")
    def _consistent(self):
        ids = [n.id for n in self.nodes]
        known = set(ids)
        if len(known) != len(ids):
            raise ValueError("two nodes share an id")
        if "" not in known:
            raise ValueError("it has no node for the model itself (id '')")
        for n in self.nodes:
            if (n.parent is None) != (n.id == ""):
                raise ValueError(f"node '{n.id[:60]}' has parent {n.parent!r}; only the model itself has none")
            if n.parent is not None and n.parent not in known:
                raise ValueError(f"node '{n.id[:60]}' names parent '{n.parent[:60]}', which is not a node")
            if n.kind != "module" and not n.id.startswith("."):
                raise ValueError(f"node '{n.id[:60]}' is a {n.kind}, whose id must start with '.'")
            if n.kind == "module" and n.id.startswith("."):
                raise ValueError(f"module '{n.id[:60]}' has an id starting with '.', which no module name does")
        for a, b in self.edges:
            if a not in known or b not in known:
                raise ValueError(f"edge {a[:60]!r} → {b[:60]!r} names a node that is not in the graph")
        # parents form a tree: walking up from any node reaches the model itself
        parent = {n.id: n.parent for n in self.nodes}
        depth: dict[str, int] = {"": 0}
        for start in ids:
            chain, cur = [], start
            while cur not in depth:
                chain.append(cur)
                cur = parent[cur]
                if len(chain) > len(ids):
                    raise ValueError(f"node '{start[:60]}''s parents go round in a loop")
            for i, c in enumerate(reversed(chain)):
                depth[c] = depth[cur] + i + 1
        return self


# -- runs/<run>/ablation/<id>.json (an ablation: per-module effects) --------------------------------------------
_AblText = Annotated[StrictStr, Field(max_length=500)]


class AblationEstimate(_Strict):
    value: Number
    ci_low: Number
    ci_high: Number
    n: StrictInt = Field(ge=0, le=1 << 20)
    model_config = ConfigDict(extra="forbid", strict=False)


class AblationRow(_Strict):
    module: _AblText
    type: Annotated[StrictStr, Field(max_length=200)]
    metrics: dict[Annotated[StrictStr, Field(max_length=32)], AblationEstimate] = Field(max_length=16)


class AblationMetric(_Strict):
    key: Annotated[StrictStr, Field(pattern=r"^[a-z_]{1,32}$")]
    label: Annotated[StrictStr, Field(max_length=200)]


class AblationRefusal(_Strict):
    module: _AblText
    reason: Annotated[StrictStr, Field(max_length=2000)]


class AblationPair(_Strict):
    attention: _AblText
    resnet: _AblText
    metric: Annotated[StrictStr, Field(max_length=32)]
    difference: AblationEstimate


class AblationReport(_Strict):
    """``ablation/<id>.json``: one ablation of many modules, each module's effect with its interval."""

    id: StrictStr = Field(pattern=r"^[0-9a-f]{12}$")
    created_at: StrictStr = Field("", max_length=64)
    model: _AblText
    family: Literal["autoencoder", "causal_lm", "encoder"]
    mode: Literal["zero", "mean", "skip"]
    items: Literal["images", "texts", "sequences"]
    n: StrictInt = Field(ge=1, le=1 << 20)
    primary: Annotated[StrictStr, Field(max_length=32)]
    metrics: list[AblationMetric] = Field(min_length=1, max_length=16)
    selection: Annotated[StrictStr, Field(max_length=200)]
    rows: list[AblationRow] = Field(min_length=1, max_length=4096)
    refused: list[AblationRefusal] = Field(max_length=4096)
    pairs: list[AblationPair] = Field(max_length=64)
    base: dict[Annotated[StrictStr, Field(max_length=32)], AblationEstimate] = Field(max_length=16)
    data: dict[str, Any]
    seed: StrictInt = Field(ge=0)
    num_resamples: StrictInt = Field(ge=1, le=1 << 20)
    seconds: float = Field(ge=0)
    command: StrictStr = Field("", max_length=4096)
    figure: Annotated[StrictStr, Field(pattern=r"^ablation-[0-9a-f]{12}\.png$")] | None = None
    info: dict[str, Any] = Field(default_factory=dict)
    model_config = ConfigDict(extra="forbid", strict=False)

    @model_validator(mode="after")
    def _consistent(self):
        keys = [m.key for m in self.metrics]
        if self.primary not in keys:
            raise ValueError(f"its primary metric '{self.primary[:32]}' is not among its metrics")
        for r in self.rows:
            if not set(r.metrics) <= set(keys) or self.primary not in r.metrics:
                raise ValueError(f"module '{r.module[:60]}' lists metrics other than the report's")
        return self


class ViTData(_Strict):
    """The ``data`` section of a ``vit`` run's config.json: the built-in images and the held-out split."""

    kind: Literal["digits", "sprites"]
    test: StrictInt = Field(ge=1, le=100_000)
    split_seed: StrictInt = Field(0, ge=0, le=MAX_SEED)
