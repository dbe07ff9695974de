"""Trace any ``nn.Module`` into its module tree and the data flow between its parts (the module graph).

``trace(model, inputs)`` runs one batch through the model with a forward pre-hook and a forward hook on
every module and a ``torch.overrides.TorchFunctionMode`` that records the tensor functions called between
modules (``add``, ``matmul``, ``softmax``, ``cat``, …). torch.fx no longer traces current transformers
models and torch.export fuses attention into one op, so hooks plus the function mode is the default: it
works on any model that runs. ``tracer="export"`` tries ``torch.export.export`` instead for the op level
(the module tree, shapes and statistics still come from the hooks pass) and falls back to the hooks, saying
so in ``note``, when the model does not export.

Data flow is followed by tensor identity while the pass runs: each tensor a recorded node returns is
remembered (by ``id``, with a weak reference so a freed tensor's reused id is never mistaken for it), and
a node that later receives it gets an edge from its producer. Ops inside a leaf module (one without
children) belong to that module and are not listed; a module's output made by an op inside it keeps that
op as its producer, so expanding the module shows where its output came from.

``collapse(graph, expanded)`` is what the page shows: every module not in ``expanded`` is one node, edges
are moved to the visible ancestors of their ends and self-loops dropped. ``layout(visible)`` places it with
grandalf's Sugiyama layered layout.

Node ids: a module's qualified name (``""`` is the model itself); every other node's id starts with a dot,
which no qualified name does: ``.op<N>`` (a tensor function), ``.in.<name>`` (an input), ``.out`` (the output).
"""

from __future__ import annotations

import difflib
import math
import weakref
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Iterable

import torch

from .errors import LatentAtlasError

TRACERS = ("hooks", "export")
MAX_SHAPES = 8  # output tensors listed per node
STAT_NAMES = ("mean", "std", "zeros", "norm")


@dataclass
class GraphNode:
    id: str
    kind: str  # "module", "op", "input" or "output"
    label: str  # the function's name for an op, the attribute name for a module
    type: str  # the module's class, or the op's function name
    parent: str | None  # the id of the module it runs inside; None for the model itself
    params: int = 0  # parameters held by this module itself
    params_total: int = 0  # … and by everything inside it
    shapes: list[list[int]] = field(default_factory=list)  # output tensors' shapes (first call)
    dtypes: list[str] = field(default_factory=list)
    in_shapes: list[list[int]] = field(default_factory=list)
    stats: dict[str, float] | None = None  # of the first floating output, over the batch and every call
    calls: int = 0


@dataclass
class ModuleGraph:
    nodes: dict[str, GraphNode]  # in order: modules as named_modules lists them, then ops in call order
    edges: list[tuple[str, str]]  # producer → consumer, each pair once
    tracer: str = "hooks"
    note: str | None = None
    model: str = ""

    def children(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {i: [] for i in self.nodes}
        for n in self.nodes.values():
            if n.parent is not None and n.parent in out:
                out[n.parent].append(n.id)
        return out

    @property
    def modules(self) -> list[str]:
        return [n.id for n in self.nodes.values() if n.kind == "module"]

    def to_dict(self) -> dict[str, Any]:
        return {"model": self.model, "tracer": self.tracer, "note": self.note,
                "nodes": [asdict(n) for n in self.nodes.values()], "edges": [list(e) for e in self.edges]}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "ModuleGraph":
        nodes = {n["id"]: GraphNode(**n) for n in d["nodes"]}
        return cls(nodes, [tuple(e) for e in d["edges"]], d.get("tracer", "hooks"), d.get("note"), d.get("model", ""))


# -- names -----------------------------------------------------------------------------------------------

def nearest_names(name: str, names: Iterable[str], n: int = 5) -> list[str]:
    """The names closest to ``name`` (difflib's ratio), best first; names that end like it come next."""
    names = [x for x in names if x]
    near = difflib.get_close_matches(name, names, n=n, cutoff=0.5)
    tail = name.rsplit(".", 1)[-1]
    near += [x for x in names if x.endswith(tail) and x not in near]
    if len(near) < n:  # a far-off guess still gets pointed somewhere
        rest = sorted((difflib.SequenceMatcher(None, name, m).ratio(), m) for m in names if m not in near)
        near += [m for _, m in reversed(rest[-(n - len(near)):])]
    return near[:n]


def unknown_module(name: str, names: Iterable[str], where: str) -> LatentAtlasError:
    near = nearest_names(name, names)
    hint = f"; the nearest names: {', '.join(near)}" if near else ""
    return LatentAtlasError(f"module '{name[:200]}' is not in {where}{hint}")


def find_module(model: torch.nn.Module, name: str) -> torch.nn.Module:
    """Module ``name`` of ``model``; a name that is not there is one sentence listing the nearest names."""
    modules = dict(model.named_modules())
    if not name or name not in modules:
        raise unknown_module(name, modules, type(model).__name__)
    return modules[name]


# -- statistics --------------------------------------------------------------------------------------------

class _Stats:
    """Streaming statistics of one node's output over every call: mean, standard deviation and fraction of
    exact zeros over all elements, and the mean L2 norm of one example's output (all axes but the first)."""

    def __init__(self) -> None:
        self.n = 0
        self.s = 0.0
        self.ss = 0.0
        self.zeros = 0
        self.norm_sum = 0.0
        self.rows = 0

    def add(self, t: torch.Tensor) -> None:
        x = t.detach().to(torch.float64)
        if x.numel() == 0:
            return
        self.n += x.numel()
        self.s += float(x.sum())
        self.ss += float((x * x).sum())
        self.zeros += int((x == 0).sum())
        rows = x.reshape(x.shape[0], -1) if x.ndim > 1 else x.reshape(-1, 1)
        self.norm_sum += float(rows.norm(dim=1).sum())
        self.rows += rows.shape[0]

    def result(self) -> dict[str, float] | None:
        if not self.n:
            return None
        mean = self.s / self.n
        var = max(self.ss / self.n - mean * mean, 0.0)
        return {"mean": mean, "std": math.sqrt(var), "zeros": self.zeros / self.n, "norm": self.norm_sum / self.rows}


def _tensors(obj: Any, depth: int = 0) -> list[torch.Tensor]:
    """The tensors in a call's arguments or result (tuples, lists, dicts, ModelOutputs), in order."""
    if isinstance(obj, torch.Tensor):
        return [obj]
    if depth > 4:
        return []
    if isinstance(obj, dict):  # ModelOutput is an OrderedDict
        return [t for v in obj.values() for t in _tensors(v, depth + 1)]
    if isinstance(obj, (list, tuple)):
        return [t for v in obj for t in _tensors(v, depth + 1)]
    return []


def _shape(t: torch.Tensor) -> list[int]:
    return [int(s) for s in t.shape]


# -- the hooks tracer ------------------------------------------------------------------------------------

class _Recorder(torch.overrides.TorchFunctionMode):
    def __init__(self, tracer: "_HookTracer"):
        super().__init__()
        self.tracer = tracer

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        t = self.tracer
        if t.paused or not t.stack:
            return out
        top = t.stack[-1]
        if t.is_leaf.get(top, False):
            return out  # inside a leaf module: the module is the node
        produced = _tensors(out)
        if not produced:
            return out  # sizes, dtypes, flags: not data
        name = getattr(func, "__name__", None) or str(func)
        t.paused = True
        try:
            t.record_op(name, top, _tensors((args, kwargs)), produced)
        finally:
            t.paused = False
        return out


class _HookTracer:
    def __init__(self, model: torch.nn.Module):
        self.model = model
        self.names = {id(m): n for n, m in model.named_modules(remove_duplicate=False)}
        self.is_leaf = {n: not any(True for _ in m.children()) for n, m in model.named_modules()}
        self.nodes: dict[str, GraphNode] = {}
        self.stats: dict[str, _Stats] = {}
        self.edges: dict[tuple[str, str], None] = {}
        self.producer: dict[int, tuple[weakref.ref, str]] = {}
        self.stack: list[str] = []
        self.paused = False
        self.n_ops = 0
        for name, m in model.named_modules():
            own = sum(p.numel() for p in m.parameters(recurse=False))
            total = sum(p.numel() for p in m.parameters())
            parent = None if name == "" else name.rsplit(".", 1)[0] if "." in name else ""
            label = type(model).__name__ if name == "" else name.rsplit(".", 1)[-1]
            self.nodes[name] = GraphNode(name, "module", label, type(m).__name__, parent, int(own), int(total))

    # tensors by identity -----------------------------------------------------------------------------------
    def source(self, t: torch.Tensor) -> str | None:
        got = self.producer.get(id(t))
        if got is None:
            return None
        ref, node = got
        return node if ref() is t else None  # a dead reference: the id was reused by a new tensor

    def produce(self, t: torch.Tensor, node: str) -> None:
        try:
            self.producer[id(t)] = (weakref.ref(t), node)
        except TypeError:  # a tensor type that refuses weak references is simply not followed
            pass

    def consume(self, inputs: list[torch.Tensor], node: str) -> None:
        for t in inputs:
            src = self.source(t)
            if src is not None and src != node:
                self.edges[(src, node)] = None

    def observe(self, node: GraphNode, outputs: list[torch.Tensor]) -> None:
        node.calls += 1
        if node.calls == 1:
            node.shapes = [_shape(t) for t in outputs[:MAX_SHAPES]]
            node.dtypes = [str(t.dtype).removeprefix("torch.") for t in outputs[:MAX_SHAPES]]
        first = next((t for t in outputs if t.is_floating_point()), None)
        if first is not None:
            self.stats.setdefault(node.id, _Stats()).add(first)

    # ops -------------------------------------------------------------------------------------------------
    def record_op(self, name: str, parent: str, inputs: list[torch.Tensor], outputs: list[torch.Tensor]) -> None:
        node = GraphNode(f".op{self.n_ops}", "op", name, name, parent)
        self.n_ops += 1
        node.in_shapes = [_shape(t) for t in inputs[:MAX_SHAPES]]
        self.nodes[node.id] = node
        self.consume(inputs, node.id)
        self.observe(node, outputs)
        for t in outputs:
            self.produce(t, node.id)

    # module hooks ----------------------------------------------------------------------------------------
    def pre_hook(self, module, args, kwargs):
        name = self.names[id(module)]
        self.paused = True
        try:
            inputs = _tensors((args, kwargs))
            node = self.nodes[name]
            if not node.in_shapes:
                node.in_shapes = [_shape(t) for t in inputs[:MAX_SHAPES]]
            self.consume(inputs, name)
        finally:
            self.paused = False
        self.stack.append(name)

    def hook(self, module, args, kwargs, output):
        name = self.names[id(module)]
        if self.stack and self.stack[-1] == name:
            self.stack.pop()
        self.paused = True
        try:
            outputs = _tensors(output)
            self.observe(self.nodes[name], outputs)
            inside = name + "."
            for t in outputs:
                src = self.source(t)
                # an output made by a node inside this module keeps that producer (expanding shows it);
                # anything else (a leaf's own work, or an input handed straight through) comes from here
                if src is None or not (src.startswith(inside) or src.startswith(".op") and self._within(src, name, inside)):
                    self.produce(t, name)
        finally:
            self.paused = False

    def _within(self, node: str, module: str, prefix: str) -> bool:
        parent = self.nodes[node].parent
        return parent is not None and (parent == module or parent.startswith(prefix))

    def run(self, call: Callable[[], Any], inputs: dict[str, torch.Tensor]) -> Any:
        handles = []
        for name, m in self.model.named_modules():
            if name == "":
                continue  # the model itself is the frame every node sits in, never a node on the page
            handles.append(m.register_forward_pre_hook(self.pre_hook, with_kwargs=True))
            handles.append(m.register_forward_hook(self.hook, with_kwargs=True))
        for key, t in inputs.items():
            node = GraphNode(f".in.{key}", "input", key, "input", "")
            self.nodes[node.id] = node
            self.observe(node, [t])
            self.produce(t, node.id)
        self.stack = [""]
        try:
            with torch.no_grad(), _Recorder(self):
                out = call()
        finally:
            for h in handles:
                h.remove()
            self.stack = []
        outputs = _tensors(out)
        end = GraphNode(".out", "output", "output", "output", "")
        self.nodes[end.id] = end
        self.observe(end, outputs)
        self.consume(outputs, end.id)
        return out

    def graph(self) -> ModuleGraph:
        for key, s in self.stats.items():
            self.nodes[key].stats = s.result()
        # ops whose result reaches no other node (a check whose answer Python branched on, a constant
        # nobody read) are not part of the data flow: they are dropped, and then the ops that fed only them
        nodes = dict(self.nodes)
        edges = list(self.edges)
        while True:
            feeding = {a for a, _ in edges}
            dead = {k for k, v in nodes.items() if v.kind == "op" and k not in feeding}
            if not dead:
                break
            nodes = {k: v for k, v in nodes.items() if k not in dead}
            edges = [e for e in edges if e[0] in nodes and e[1] in nodes]
        return ModuleGraph(nodes, edges, "hooks", None, type(self.model).__name__)


def _call_of(model: torch.nn.Module, inputs: Any, method: str | None) -> tuple[Callable[[], Any], dict[str, torch.Tensor]]:
    fn = getattr(model, method) if method else model
    if isinstance(inputs, dict):
        return (lambda: fn(**inputs)), {k: v for k, v in inputs.items() if isinstance(v, torch.Tensor)}
    if isinstance(inputs, (tuple, list)):
        return (lambda: fn(*inputs)), {f"arg{i}": v for i, v in enumerate(inputs) if isinstance(v, torch.Tensor)}
    return (lambda: fn(inputs)), {"x": inputs} if isinstance(inputs, torch.Tensor) else {}


def trace(model: torch.nn.Module, inputs: Any, tracer: str = "hooks", *, method: str | None = None) -> ModuleGraph:
    """The module graph of ``model`` on one batch ``inputs`` (a tensor, a tuple of positional arguments,
    or a dict of keyword arguments). ``method`` calls ``model.<method>(inputs)`` instead of ``model(inputs)``
    (``"loss"`` for a model trained here, whose interface is ``loss(batch)``)."""
    if tracer not in TRACERS:
        raise LatentAtlasError(f"--tracer '{tracer}' is not one of {', '.join(TRACERS)}")
    if method is not None and not callable(getattr(model, method, None)):
        raise LatentAtlasError(f"{type(model).__name__} has no method '{method}' to trace")
    call, named = _call_of(model, inputs, method)
    was_training = model.training
    model.eval()
    try:
        rec = _HookTracer(model)
        try:
            rec.run(call, named)
        except LatentAtlasError:
            raise
        except (RuntimeError, ValueError, TypeError, IndexError, KeyError) as exc:
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
            raise LatentAtlasError(f"{type(model).__name__} did not run on the example batch ({type(exc).__name__}: {first})") from exc
        graph = rec.graph()
        if tracer == "export":
            graph = _with_export(model, inputs, method, graph)
    finally:
        model.train(was_training)
    return graph


# -- torch.export ----------------------------------------------------------------------------------------

def _with_export(model: torch.nn.Module, inputs: Any, method: str | None, hooks: ModuleGraph) -> ModuleGraph:
    """The hooks graph with its ops and edges replaced by torch.export's ATen graph, where the model exports;
    otherwise the hooks graph, with a note saying why."""
    if method is not None:
        hooks.note = f"--tracer export traces a model's forward, not its '{method}'; traced with hooks instead"
        return hooks
    args, kwargs = ((), inputs) if isinstance(inputs, dict) else (tuple(inputs), {}) if isinstance(inputs, (tuple, list)) else ((inputs,), {})
    try:
        with torch.no_grad():
            ep = torch.export.export(model, args, kwargs, strict=False)
    except Exception as exc:  # export fails in many ways (guards, data-dependent control flow, unsupported ops)
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        hooks.note = f"torch.export could not trace {type(model).__name__} ({type(exc).__name__}: {first}); traced with hooks instead"
        return hooks
    return _from_export(ep, hooks)


def _from_export(ep, hooks: ModuleGraph) -> ModuleGraph:
    from torch.export.graph_signature import InputKind

    modules = {k: v for k, v in hooks.nodes.items() if v.kind == "module"}
    leaf = {k: not any(n.parent == k for n in modules.values()) for k in modules}
    user_inputs = {s.arg.name: s.arg.name for s in ep.graph_signature.input_specs
                   if s.kind == InputKind.USER_INPUT and hasattr(s.arg, "name")}
    nodes: dict[str, GraphNode] = dict(modules)
    owner: dict[str, str] = {}  # fx node name → graph node id that stands for what it computes
    edges: dict[tuple[str, str], None] = {}
    n_ops = 0
    for fx in ep.graph_module.graph.nodes:
        if fx.op == "placeholder":
            if fx.name in user_inputs:
                node = GraphNode(f".in.{fx.name}", "input", fx.name, "input", "")
                val = fx.meta.get("val")
                if isinstance(val, torch.Tensor):
                    node.shapes, node.dtypes = [_shape(val)], [str(val.dtype).removeprefix("torch.")]
                nodes[node.id] = node
                owner[fx.name] = node.id
            continue
        if fx.op == "output":
            end = GraphNode(".out", "output", "output", "output", "")
            nodes[end.id] = end
            for a in fx.all_input_nodes:
                if a.name in owner:
                    edges[(owner[a.name], end.id)] = None
            continue
        if fx.op != "call_function":
            continue
        stack = fx.meta.get("nn_module_stack") or {}
        path = ""
        for _key, (fqn, _type) in stack.items():
            fqn = _clean_fqn(str(fqn))
            if fqn in modules:
                path = fqn  # the stack is outermost first: the last known entry is the innermost module
        val = fx.meta.get("val")
        vals = [v for v in (val if isinstance(val, (tuple, list)) else [val]) if isinstance(v, torch.Tensor)]
        if not vals:
            continue  # an assertion or a shape computation: not data
        target = getattr(fx.target, "__name__", str(fx.target))
        name = target.split(".")[0]
        if path and leaf.get(path):
            me = path  # an op inside a leaf module: the module stands for it
        else:
            me = f".op{n_ops}"
            n_ops += 1
            node = GraphNode(me, "op", name, name, path)
            node.shapes = [_shape(v) for v in vals][:MAX_SHAPES]
            node.dtypes = [str(v.dtype).removeprefix("torch.") for v in vals][:MAX_SHAPES]
            nodes[me] = node
        for a in fx.all_input_nodes:
            src = owner.get(a.name)
            if src is not None and src != me:
                edges[(src, me)] = None
        owner[fx.name] = me
    return ModuleGraph(nodes, list(edges), "export", None, hooks.model)


def _clean_fqn(fqn: str) -> str:
    """``L['self'].h[0].attn`` (strict export's spelling) or ``h.0.attn`` → ``h.0.attn``."""
    import re

    fqn = re.sub(r"^L\['self'\]\.?", "", fqn)
    fqn = re.sub(r"\[(\d+)\]", r".\1", fqn)
    fqn = re.sub(r"\['([^']*)'\]", r".\1", fqn)
    return fqn.strip(".")


# -- what the page shows ---------------------------------------------------------------------------------

@dataclass
class VisibleGraph:
    nodes: list[GraphNode]  # what is drawn as a box
    edges: list[tuple[str, str, int]]  # between drawn nodes, with how many traced edges each stands for
    groups: list[str]  # expanded modules (drawn as frames around their visible descendants)
    expandable: set[str]  # drawn modules that have children


def collapse(graph: ModuleGraph, expanded: Iterable[str]) -> VisibleGraph:
    """The graph as drawn when only the modules in ``expanded`` (and the model itself) are open: each node
    is shown as its outermost closed ancestor module, edges go between the shown nodes (counted), and an
    edge that would start and end on the same shown node is dropped."""
    expanded = set(expanded) | {""}
    children = graph.children()
    shown: dict[str, str | None] = {}

    def rep(node_id: str) -> str | None:
        if node_id in shown:
            return shown[node_id]
        chain = []
        n = graph.nodes[node_id]
        while n.parent is not None and n.parent in graph.nodes:
            chain.append(n.parent)
            n = graph.nodes[n.parent]
        chain.reverse()  # outermost first
        got: str | None = node_id
        for anc in chain:
            if anc not in expanded:
                got = anc
                break
        else:
            node = graph.nodes[node_id]
            if node.kind == "module" and (node_id in expanded and children[node_id]):
                got = None  # an open module is a frame, not a box
        shown[node_id] = got
        return got

    visible = [n for n in graph.nodes.values() if rep(n.id) == n.id and n.id != ""]
    counts: dict[tuple[str, str], int] = {}
    for a, b in graph.edges:
        ra, rb = rep(a), rep(b)
        if ra is None or rb is None or ra == rb:
            continue
        counts[(ra, rb)] = counts.get((ra, rb), 0) + 1
    groups = [m for m in graph.modules if m != "" and m in expanded and children[m] and rep(m) is None]
    return VisibleGraph(visible, [(a, b, c) for (a, b), c in counts.items()], groups,
                        {n.id for n in visible if n.kind == "module" and children[n.id]})


def _box(node: GraphNode) -> tuple[float, float]:
    if node.kind == "module":
        return max(90.0, 7.0 * max(len(node.label), len(node.type)) + 30.0), 40.0
    return max(44.0, 7.0 * len(node.label) + 16.0), 24.0


def layout(visible: VisibleGraph, gap: float = 40.0, types: dict[str, str] | None = None) -> dict[str, Any]:
    """Positions (box centres, sizes) and edge routes from grandalf's Sugiyama layered layout, top to bottom;
    the connected components side by side, the frames of open modules around their descendants."""
    from grandalf.graphs import Edge, Graph, Vertex
    from grandalf.layouts import SugiyamaLayout
    from grandalf.routing import EdgeViewer, route_with_lines

    class _View:
        def __init__(self, w: float, h: float):
            self.w, self.h, self.xy = w, h, (0.0, 0.0)

    verts = {}
    for n in visible.nodes:
        v = Vertex(n.id)
        w, h = _box(n)
        v.view = _View(w + (16.0 if n.id in visible.expandable else 0.0), h)  # room for the +/− marker
        verts[n.id] = v
    edges = []
    for a, b, _ in visible.edges:
        e = Edge(verts[a], verts[b])
        e.view = EdgeViewer()
        edges.append(e)
    g = Graph(list(verts.values()), edges)
    x0 = 0.0
    pos: dict[str, tuple[float, float, float, float]] = {}
    for comp in g.C:
        sug = SugiyamaLayout(comp)
        sug.xspace, sug.yspace = 24, 36
        sug.route_edge = route_with_lines
        sug.init_all()
        sug.draw(3)
        vs = list(comp.sV)
        left = min(v.view.xy[0] - v.view.w / 2 for v in vs)
        top = min(v.view.xy[1] - v.view.h / 2 for v in vs)
        right = max(v.view.xy[0] + v.view.w / 2 for v in vs)
        dx, dy = x0 - left, -top
        for v in vs:
            pos[v.data] = (v.view.xy[0] + dx, v.view.xy[1] + dy, v.view.w, v.view.h)
        for e in comp.sE:
            e.view._points = [(x + dx, y + dy) for x, y in getattr(e.view, "_pts", [])]
        x0 += right - left + gap
    by_id = {n.id: n for n in visible.nodes}
    by_type = types or {}
    nodes = []
    for n in visible.nodes:
        x, y, w, h = pos[n.id]
        nodes.append({"id": n.id, "x": x, "y": y, "w": w, "h": h, "kind": n.kind, "label": n.label, "type": n.type,
                      "parent": n.parent, "params": n.params, "params_total": n.params_total, "shapes": n.shapes,
                      "dtypes": n.dtypes, "in_shapes": n.in_shapes, "stats": n.stats, "calls": n.calls,
                      "expandable": n.id in visible.expandable})
    out_edges = []
    for (a, b, c), e in zip(visible.edges, edges):
        pts = getattr(e.view, "_points", None) or [pos[a][:2], pos[b][:2]]
        out_edges.append({"from": a, "to": b, "count": c, "points": [[round(x, 1), round(y, 1)] for x, y in pts]})
    frames = []
    for m in sorted(visible.groups, key=lambda g: g.count(".")):  # outer frames first, inner drawn over them
        inside = [pos[i] for i in pos if _descends(by_id[i], m)]
        if not inside:
            continue
        depth = max((g.count(".") - m.count(".") for g in visible.groups if g.startswith(m + ".")), default=0)
        pad = 8.0 + 10.0 * depth  # a frame holding open modules stands clear of their frames
        frames.append({"id": m, "label": m, "type": by_type.get(m, ""),
                       "x0": min(x - w / 2 for x, y, w, h in inside) - pad, "y0": min(y - h / 2 for x, y, w, h in inside) - pad - 14,
                       "x1": max(x + w / 2 for x, y, w, h in inside) + pad, "y1": max(y + h / 2 for x, y, w, h in inside) + pad})
    return {"nodes": nodes, "edges": out_edges, "frames": frames}


def _descends(node: GraphNode, module: str) -> bool:
    p = node.parent
    return p is not None and (p == module or p.startswith(module + "."))
