"""Models by ``kind``: each kind maps to a module class and its config dataclass."""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

from ..errors import LatentAtlasError

_KINDS: dict[str, tuple[type, type]] = {}


def register(*kinds: str, config: type) -> Callable[[type], type]:
    def deco(cls: type) -> type:
        for kind in kinds:
            _KINDS[kind] = (cls, config)
        return cls

    return deco


# kinds whose module imports a heavy library (diffusers): registered on first lookup, not at import
_LAZY_KINDS = {"sd_vae": "latentatlas.models.sd_vae", "flow_dit": "latentatlas.models.dit",
               "factor_classifier": "latentatlas.models.factor_classifier"}


def kinds() -> list[str]:
    return sorted({*_KINDS, *_LAZY_KINDS})


def lookup(kind: str) -> tuple[type, type]:
    if kind not in _KINDS and kind in _LAZY_KINDS:
        import importlib

        importlib.import_module(_LAZY_KINDS[kind])
    if kind not in _KINDS:
        raise LatentAtlasError(f"unknown model kind '{kind}'; expected one of: {', '.join(kinds())}")
    return _KINDS[kind]


def config_from_dict(kind: str, values: dict[str, Any]):
    _, config_cls = lookup(kind)
    fields = {f.name for f in dataclasses.fields(config_cls)}
    unknown = sorted(set(values) - fields)
    if unknown:
        raise LatentAtlasError(
            f"model config for kind '{kind}' has unknown field(s) {', '.join(unknown)}; "
            f"expected only: {', '.join(sorted(fields))}"
        )
    values = dict(values)
    values["kind"] = kind
    # JSON turns tuples into lists; configs use tuples for shapes.
    for f in dataclasses.fields(config_cls):
        if f.name in values and isinstance(values[f.name], list):
            values[f.name] = tuple(values[f.name])
    check_types(config_cls, values, f"model config for kind '{kind}'")
    try:
        return config_cls(**values)
    except (TypeError, ValueError, OverflowError) as exc:
        raise LatentAtlasError(f"model config for kind '{kind}' is invalid: {exc}") from exc


def check_types(cls: type, values: dict[str, Any], what: str) -> None:
    """Each value has the type its dataclass field declares (``int`` is not ``bool``; floats are finite),
    so that a config read from a file fails here with a sentence, not deep inside torch."""
    import math
    import types
    import typing

    hints = typing.get_type_hints(cls)

    def ok(value: Any, ann: Any) -> bool:
        origin, args = typing.get_origin(ann), typing.get_args(ann)
        if ann is Any:
            return True
        if origin in (typing.Union, types.UnionType):
            return any(ok(value, a) for a in args)
        if ann is type(None):
            return value is None
        if origin is tuple:
            if not isinstance(value, tuple):
                return False
            inner = args[0] if len(args) == 2 and args[1] is Ellipsis else None
            return all(ok(v, inner if inner is not None else a) for v, a in zip(value, args if inner is None else value))
        if ann is bool:
            return isinstance(value, bool)
        if ann is int:
            return isinstance(value, int) and not isinstance(value, bool)
        if ann is float:
            return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
        if ann is str:
            return isinstance(value, str) and len(value) <= 1000
        return isinstance(value, ann) if isinstance(ann, type) else True

    for name, value in values.items():
        if name in hints and not ok(value, hints[name]):
            shown = repr(value)
            raise LatentAtlasError(f"{what} has {name}={shown[:60]}{'…' if len(shown) > 60 else ''}; expected {_type_name(hints[name])}")


def _type_name(ann: Any) -> str:
    return getattr(ann, "__name__", None) or str(ann).replace("typing.", "")


def build(config) -> Any:
    model_cls, _ = lookup(config.kind)
    return model_cls(config)
