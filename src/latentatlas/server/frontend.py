"""The explorer's static front end: hand-written ES modules, no build step, no CDN.

Plotly.js is served from the installed ``plotly`` Python package, so the app works offline.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import FileResponse, HTMLResponse
from fastapi.staticfiles import StaticFiles

STATIC = Path(__file__).parent / "static"


def plotly_js() -> Path | None:
    try:
        import plotly
    except ImportError:
        return None
    path = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
    return path if path.is_file() else None


def mount_frontend(app: FastAPI) -> None:
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/", include_in_schema=False)
    def index() -> HTMLResponse:
        return HTMLResponse((STATIC / "index.html").read_text(encoding="utf-8"), headers={"Cache-Control": "no-cache"})

    try:
        import swagger_ui_bundle
    except ImportError:
        swagger_ui_bundle = None
    if swagger_ui_bundle is not None:
        app.mount("/vendor/swagger", StaticFiles(directory=swagger_ui_bundle.swagger_ui_path), name="swagger")

        @app.get("/docs/openapi.json", include_in_schema=False)
        def docs_schema() -> dict:
            # The Swagger UI that ships in a Python package (4.x) reads OpenAPI 3.0 only; FastAPI writes
            # 3.1. The documents differ little for this API, so the docs page gets the version it reads.
            return {**app.openapi(), "openapi": "3.0.3"}

        @app.get("/docs", include_in_schema=False)
        def docs() -> HTMLResponse:
            # FastAPI's own docs page starts Swagger UI from an inline script, which the
            # Content-Security-Policy forbids; this one starts it from /static/js/docs.js
            return HTMLResponse((STATIC / "docs.html").read_text(encoding="utf-8"), headers={"Cache-Control": "no-cache"})

    @app.get("/vendor/plotly.min.js", include_in_schema=False)
    def plotly() -> FileResponse:
        path = plotly_js()
        if path is None:
            from .http import ApiError

            raise ApiError(404, "plotly.min.js was not found; install the 'plotly' package")
        return FileResponse(path, media_type="text/javascript", headers={"Cache-Control": "max-age=86400"})
