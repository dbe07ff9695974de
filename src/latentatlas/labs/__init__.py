"""The labs: one package per family of models, each a vertical slice over the shared layers.

Every lab has ``jobs.py`` (train / capture / evaluate over the atlas), ``explore.py`` (what the explorer
shows, as plain dicts and arrays), ``routes.py`` (a FastAPI ``APIRouter`` that checks requests and calls
``explore``), ``cli.py`` (a Typer sub-app) and, where it has them, ``figures.py``. Its ``__init__``
names the run kinds it owns (``KINDS``) and imports nothing heavy.

A new lab is a new folder here plus its name in ``LABS`` below; the CLI, the server and the front end
find it from there. A lab never imports another lab: what two labs share moves down into a shared layer.
"""

from __future__ import annotations

import importlib
from types import ModuleType

LABS = ("vae", "sae", "attention", "flow")


def lab(name: str) -> ModuleType:
    """The lab package ``latentatlas.labs.<name>``."""
    if name not in LABS:
        raise KeyError(name)
    return importlib.import_module(f"{__name__}.{name}")


def part(name: str, module: str) -> ModuleType:
    """One of a lab's modules, e.g. ``part("sae", "routes")``."""
    return importlib.import_module(f"{__name__}.{name}.{module}")


def lab_of_kind(kind: str) -> str | None:
    """The lab that owns run kind ``kind`` (``"beta_tcvae"`` → ``"vae"``), or None."""
    for name in LABS:
        if kind in lab(name).KINDS:
            return name
    return None
