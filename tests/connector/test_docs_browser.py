"""``/docs`` and ``/redoc`` rendered by a real browser (Debian's headless Chromium), from a
connector on loopback with nothing else to reach: Swagger UI draws the operations and its
Authorize button, ReDoc its operation list. ``make test`` installs Chromium; missing, the test
skips on a developer's machine and fails when ``KEXIN_REQUIRE_CHROMIUM=1`` (``make test``)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from connector.app import create_app
from dataspace.servers import serve_in_thread
from tests.connector.test_app import make_settings


def chromium() -> str:
    found = shutil.which("chromium")
    if found is None:
        if os.environ.get("KEXIN_REQUIRE_CHROMIUM") == "1":
            pytest.fail("chromium not found (`make test` installs Debian's chromium)")
        pytest.skip("chromium not found")
    return found


def rendered(url: str, profile: Path) -> str:
    """The page's DOM after its scripts ran (Chromium's virtual time: no fixed sleep)."""
    done = subprocess.run(
        [
            chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
            "--disable-extensions", "--disable-background-networking",
            f"--user-data-dir={profile}", "--virtual-time-budget=15000", "--dump-dom", url,
        ],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def test_the_docs_pages_render_in_a_browser(tmp_path: Path) -> None:
    app = create_app(make_settings(f"sqlite:///{tmp_path / 'c.db'}"))
    with serve_in_thread(app) as url:
        swagger = rendered(f"{url}/docs", tmp_path / "profile-docs")
        redoc = rendered(f"{url}/redoc", tmp_path / "profile-redoc")
    # Swagger UI built its page from /openapi.json: operations, and the declared key scheme
    assert 'class="swagger-ui"' in swagger
    assert swagger.count("opblock-summary-path") > 20, swagger[:2000]
    assert "/management/v1/assets" in swagger
    assert "btn authorize" in swagger
    # ReDoc likewise: its operations, each with its HTTP method, in the side menu
    assert "redoc-wrap" in redoc, redoc[:2000]
    assert redoc.count("operation-type") > 20
