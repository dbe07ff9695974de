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


def kinds() -> list[str]:
    return sorted(_KINDS)


def lookup(kind: str) -> tuple[type, type]:
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
    try:
        return config_cls(**values)
    except (TypeError, ValueError) as exc:
        raise LatentAtlasError(f"model config for kind '{kind}' is invalid: {exc}") from exc


def build(config) -> Any:
    model_cls, _ = lookup(config.kind)
    return model_cls(config)
