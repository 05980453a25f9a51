"""The API documentation pages of the service apps, served with local assets: Swagger UI at
``/docs`` and ReDoc at ``/redoc`` load their scripts and styles from the files of the
``fastapi-offline`` package (installed with Kexin), under ``/docs/assets``, never from a CDN,
so that they render offline. The only module that knows of ``fastapi_offline``.

Build the app with :data:`NO_CDN_DOCS` (FastAPI's own pages off), then :func:`serve_docs`."""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path
from typing import Any, Final

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.staticfiles import StaticFiles
from starlette.responses import HTMLResponse

ASSETS_URL: Final = "/docs/assets"
NO_CDN_DOCS: Final[dict[str, Any]] = {"docs_url": None, "redoc_url": None}
"""FastAPI's arguments that turn off its CDN-loading documentation pages."""


def assets_folder() -> Path:
    return Path(str(files("fastapi_offline") / "static"))


def serve_docs(app: FastAPI) -> None:
    """``/docs`` (Swagger UI, with the OpenAPI's security schemes behind Authorize) and
    ``/redoc``, their assets from the installed package."""
    app.mount(ASSETS_URL, StaticFiles(directory=assets_folder()), name="docs-assets")
    openapi_url = app.openapi_url or "/openapi.json"

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return get_swagger_ui_html(
            openapi_url=f"{root}{openapi_url}",
            title=f"{app.title} - Swagger UI",
            swagger_js_url=f"{root}{ASSETS_URL}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{ASSETS_URL}/swagger-ui.css",
            swagger_favicon_url=f"{root}{ASSETS_URL}/favicon.png",
            swagger_ui_parameters=app.swagger_ui_parameters,
        )

    @app.get("/redoc", include_in_schema=False)
    async def redoc(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return get_redoc_html(
            openapi_url=f"{root}{openapi_url}",
            title=f"{app.title} - ReDoc",
            redoc_js_url=f"{root}{ASSETS_URL}/redoc.standalone.js",
            redoc_favicon_url=f"{root}{ASSETS_URL}/favicon.png",
            with_google_fonts=False,
        )
