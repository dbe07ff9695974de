"""The explorer served from a thread of the current process, for a notebook: one server per atlas, on a
free loopback port, whose pages a notebook on this machine may show in a frame (``frame-ancestors`` for
loopback origins only; everything else the security middleware does stays as it is)."""

from __future__ import annotations

import os
import socket
import threading
import time
import urllib.request
from pathlib import Path

NOTEBOOK_ANCESTORS = ("http://localhost:*", "http://127.0.0.1:*", "https://localhost:*", "https://127.0.0.1:*", "vscode-webview:")

_servers: dict[Path, tuple[str, object, threading.Thread]] = {}
_lock = threading.Lock()


def _free_port(host: str) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def run_in_thread(app, host: str = "127.0.0.1", port: int | None = None, timeout: float = 20.0) -> tuple[str, object, threading.Thread]:
    """Serve ``app`` with uvicorn from a daemon thread and wait until it answers; returns (base address, the
    uvicorn server (set ``should_exit`` to stop it), the thread)."""
    import uvicorn

    port = int(port or _free_port(host))
    srv = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning"))
    thread = threading.Thread(target=srv.run, name=f"latentatlas-explorer-{port}", daemon=True)
    thread.start()
    base = f"http://{host}:{port}"
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(base + "/api/runs", timeout=2) as resp:
                if resp.status == 200:
                    return base, srv, thread
        except OSError:
            pass
        if not thread.is_alive() or time.monotonic() > deadline:
            from ..errors import LatentAtlasError

            raise LatentAtlasError(f"the explorer did not start on {base} within {timeout:.0f} s")
        time.sleep(0.05)


def serve_in_thread(atlas_root: str | os.PathLike, host: str = "127.0.0.1", port: int | None = None, timeout: float = 20.0) -> str:
    """Start (once per atlas) the explorer in a daemon thread; returns its base address ``http://host:port``."""
    from .app import create_app

    root = Path(atlas_root).expanduser().resolve()
    with _lock:
        known = _servers.get(root)
        if known and known[2].is_alive():
            return known[0]
        base, srv, thread = run_in_thread(create_app(root, host=host, frame_ancestors=NOTEBOOK_ANCESTORS), host, port, timeout)
        _servers[root] = (base, srv, thread)
        return base


def stop(atlas_root: str | os.PathLike) -> None:
    """Stop the thread serving ``atlas_root`` (if any)."""
    root = Path(atlas_root).expanduser().resolve()
    with _lock:
        known = _servers.pop(root, None)
    if known:
        known[1].should_exit = True
        known[2].join(timeout=5)
