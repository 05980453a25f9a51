"""Worker processes shared by the matching tests (starting a pool costs about a second)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from matching.parallel import Workers


@pytest.fixture(scope="session")
def workers() -> Iterator[Workers]:
    with Workers(2) as pool:
        yield pool
