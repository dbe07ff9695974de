"""The browser explorer's server: ``create_app(atlas_root)`` builds the FastAPI app, ``serve`` runs it."""

from __future__ import annotations

import os

from .app import create_app

__all__ = ["create_app", "serve"]


def serve(atlas_root: str | os.PathLike | None = None, host: str = "127.0.0.1", port: int = 8765,
          allow_hosts: tuple[str, ...] = ()) -> None:
    """Run the API with uvicorn until interrupted; binds 127.0.0.1 unless told otherwise, and answers only
    requests addressed to the name it is bound as (plus ``allow_hosts``)."""
    import uvicorn

    uvicorn.run(create_app(atlas_root, host=host, allow_hosts=tuple(allow_hosts)), host=host, port=int(port), log_level="info")
