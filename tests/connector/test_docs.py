"""The documentation pages render offline: ``/docs`` (Swagger UI) and ``/redoc`` reference no
address outside the connector, and every script, style and icon they load is served by it from
the installed package. (A check over HTTP of what a browser would load; ``test_docs_browser`` renders them in Chromium.)"""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient

from connector.app import create_app
from tests.connector.test_app import make_settings

REFERENCE = re.compile(
    r"""(?:src|href|spec-url)\s*=\s*["']([^"']+)["']|\burl\s*:\s*["']([^"']+)["']"""
)


@pytest.mark.parametrize(
    ("page", "kinds"), [("/docs", {"js", "css", "json"}), ("/redoc", {"js", "json"})]
)
def test_a_docs_page_loads_only_local_assets(database_url: str, page: str, kinds: set[str]) -> None:
    with TestClient(create_app(make_settings(database_url))) as client:
        html = client.get(page)
        assert html.status_code == 200
        assert html.headers["content-type"].startswith("text/html")
        assert "cdn." not in html.text
        assert "fonts.googleapis" not in html.text
        found = {a or b for a, b in REFERENCE.findall(html.text)}
        assert found, html.text
        assert not [u for u in found if "://" in u or u.startswith("//")], found
        loaded: set[str] = set()
        for url in found:
            answer = client.get(url)
            assert answer.status_code == 200, url
            assert len(answer.content) > 100, url
            loaded.add(url.rsplit(".", 1)[-1])
        assert kinds <= loaded  # the scripts, the styles and the OpenAPI itself


def test_the_bundled_swagger_ui_reads_openapi_3_1(database_url: str) -> None:
    """FastAPI writes OpenAPI 3.1, which Swagger UI 4 cannot render: the bundle is 5 or newer."""
    with TestClient(create_app(make_settings(database_url))) as client:
        assert client.get("/openapi.json").json()["openapi"].startswith("3.1")
        bundle = client.get("/docs/assets/swagger-ui-bundle.js").text
    assert "isOAS31" in bundle  # Swagger UI 5 reads 3.1 (4.x has no such check)
