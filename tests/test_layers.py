"""The house rules of docs/architecture.md, checked on the source: data moves one way (no module imports a
layer above its own), a lab never imports another lab, and only the CLI, the server and the labs' cli.py
and routes.py know about terminals and HTTP. Every import statement of every module is parsed (lazy ones
inside functions too)."""

from __future__ import annotations

import ast
import importlib
import pkgutil
from pathlib import Path

import pytest

import latentatlas

SRC = Path(latentatlas.__file__).parent

# The layers, lowest first. A module may import its own layer and those below it, never one above.
RANK = {
    "errors": 0, "_io": 0, "_progress": 0, "limits": 0,
    "data": 1, "analysis": 1,
    "models": 2, "figures": 2,
    "atlas": 3, "activations": 3, "schemas": 3,
    "trainer": 4, "capture": 4, "tracing": 4,
    "labs": 5,
    "server": 6, "_cli": 6,
    "cli": 7,
}
# The doors between the labs and the layers above them (see docs/architecture.md): a lab's routes.py
# uses the server's leaf modules (error answer, encoders, cache, PNGs), a lab's cli.py the shared
# terminal helpers, and a lab's notebook.py the explorer served from a thread. server/app.py and cli.py, which import the labs, are never imported by a lab.
DOORS = {
    "routes": {"latentatlas.server.http", "latentatlas.server.cache", "latentatlas.server.images"},
    "cli": {"latentatlas._cli"},
    # a lab's notebook.py (la.<lab>) shows its views in a frame onto a server in a thread of the notebook
    "notebook": {"latentatlas.server.background"},
}
# third-party packages that mean "HTTP" or "terminal", and where they may appear
FRONT = {"fastapi": ("server", "routes"), "starlette": ("server", "routes"), "uvicorn": ("server",),
         "typer": ("cli", "_cli", "labs-cli")}


def modules() -> list[tuple[str, Path]]:
    out = []
    for path in sorted(SRC.rglob("*.py")):
        rel = path.relative_to(SRC).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out.append((".".join(["latentatlas", *parts]), path))
    return out


def imports_of(name: str, path: Path) -> list[tuple[str, int]]:
    """Every module ``name`` imports (absolute names; relative imports resolved), with its line."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(a.name, node.lineno) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            found.append((mod, node.lineno))
            # `from . import figures` imports a module, not a name
            for a in node.names:
                if _is_module(f"{mod}.{a.name}"):
                    found.append((f"{mod}.{a.name}", node.lineno))
    return found


def _is_module(dotted: str) -> bool:
    if not dotted.startswith("latentatlas."):
        return False
    rel = Path(*dotted.split(".")[1:])
    return (SRC / rel).with_suffix(".py").is_file() or (SRC / rel / "__init__.py").is_file()


def _part(dotted: str) -> str:
    """A lab module's part: ``routes`` for ``routes.py`` and for a second router file such as ``graph_routes.py``."""
    last = dotted.rsplit(".", 1)[-1]
    return "routes" if last.endswith("_routes") else last


def layer(dotted: str) -> str | None:
    parts = dotted.split(".")
    if parts[0] != "latentatlas":
        return None
    return parts[1] if len(parts) > 1 else "root"


def lab_of(dotted: str) -> str | None:
    parts = dotted.split(".")
    return parts[2] if len(parts) > 2 and parts[1] == "labs" else None


ALL = modules()


def test_every_module_is_in_a_layer():
    missing = sorted({layer(n) for n, _ in ALL} - set(RANK) - {"root"})
    assert not missing, f"add these top-level modules to RANK in tests/test_layers.py and docs/architecture.md: {missing}"


def upward_imports(name: str, path: Path) -> list[str]:
    """The imports of module ``name`` that break the layering, one sentence each."""
    mine = layer(name)
    bad = []
    for target, line in imports_of(name, path):
        theirs = layer(target)
        if theirs is None or theirs == "root" or mine == "root":
            continue
        if lab_of(name) and lab_of(target) and lab_of(name) != lab_of(target):
            bad.append(f"line {line}: lab '{lab_of(name)}' imports lab '{lab_of(target)}' ({target})")
            continue
        if RANK[theirs] > RANK[mine]:
            door = DOORS.get(_part(name), set()) if lab_of(name) else set()
            if target not in door:
                bad.append(f"line {line}: {name} (layer {mine}) imports {target} (layer {theirs}, above it)")
    return bad


@pytest.mark.parametrize("name,path", ALL, ids=[n for n, _ in ALL])
def test_no_upward_import_and_no_lab_imports_another(name, path):
    bad = upward_imports(name, path)
    assert not bad, "\n".join(bad)


@pytest.mark.parametrize("name,path", ALL, ids=[n for n, _ in ALL])
def test_only_the_front_layers_speak_http_or_terminal(name, path):
    mine = layer(name)
    kind = {"server": "server", "cli": "cli", "_cli": "_cli"}.get(mine)
    if lab_of(name):
        last = _part(name)
        kind = "routes" if last == "routes" else "labs-cli" if last == "cli" else None
    bad = [f"line {line}: {name} imports {target}" for target, line in imports_of(name, path)
           if target.split(".")[0] in FRONT and kind not in FRONT[target.split(".")[0]]]
    assert not bad, "\n".join(bad)


def test_the_checker_sees_upward_and_cross_lab_imports(tmp_path):
    # the rules must be able to fail: a lab importing another lab and the server's app, an analysis
    # module importing the atlas (lazily, inside a function), a shared layer importing a lab
    probe = tmp_path / "probe.py"
    probe.write_text("from ..sae import jobs\nfrom ...server.app import create_app\nfrom ...server.http import ApiError\n")
    lines = lambda bad: {b.split(":")[0] for b in bad}  # noqa: E731
    bad = upward_imports("latentatlas.labs.vae.explore", probe)
    assert lines(bad) == {"line 1", "line 2", "line 3"} and "lab 'vae' imports lab 'sae'" in bad[0], bad
    assert lines(upward_imports("latentatlas.labs.vae.routes", probe)) == {"line 1", "line 2"}  # routes.py may use server.http
    probe.write_text("def f():\n    from ..atlas import Atlas\n")
    assert upward_imports("latentatlas.analysis.probe", probe)
    probe.write_text("import latentatlas.labs.sae.jobs\n")
    assert upward_imports("latentatlas.capture", probe)
    assert not upward_imports("latentatlas.server.probe", probe)


def test_public_names_are_not_module_names():
    """`la.train`, `la.evaluate` … must stay functions whatever has been imported: a submodule of the same
    name would replace the attribute the moment it is imported."""
    submodules = {m.name for m in pkgutil.iter_modules(latentatlas.__path__)}
    functions = {k for k, (_, attr) in latentatlas._LAZY.items() if attr is not None}
    assert not functions & submodules, functions & submodules
    for m in pkgutil.walk_packages(latentatlas.__path__, "latentatlas."):
        importlib.import_module(m.name)
    for name in functions:
        assert not isinstance(getattr(latentatlas, name), type(latentatlas)), name
    assert callable(latentatlas.evaluate) and callable(latentatlas.train)


def test_labs_registry_matches_the_labs_on_disk():
    from latentatlas.labs import LABS, lab_of_kind
    from latentatlas.models import VAE_KINDS

    on_disk = sorted(p.parent.name for p in (SRC / "labs").glob("*/__init__.py"))
    assert sorted(LABS) == on_disk
    for lab in LABS:
        for part in ("jobs", "explore", "routes", "cli"):
            assert (SRC / "labs" / lab / f"{part}.py").is_file(), (lab, part)
    assert tuple(VAE_KINDS) == importlib.import_module("latentatlas.labs.vae").MODEL_KINDS
    assert lab_of_kind("beta_tcvae") == "vae" and lab_of_kind("sae_sweep") == "sae" and lab_of_kind("nope") is None
