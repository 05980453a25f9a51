"""``dataspace match``: the usage errors and failures that need no provider (the matching
itself is in tests/e2e/test_matching.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from dataspace.cli import app
from dataspace.servers import bind

runner = CliRunner()


def arguments(source: Path, *extra: str) -> list[str]:
    return [
        "match", "--provider", "did:web:bureau.example.cn",
        "--provider-address", "https://bureau.example.cn/dsp", "--dataset", "urn:kexin:asset:x",
        "--purpose", "credit-assessment", "--input", str(source), *extra,
    ]  # fmt: skip


@pytest.fixture
def borrowers(tmp_path: Path) -> Path:
    path = tmp_path / "borrowers.csv"
    path.write_text("uscc,name\n91440101MA59XXXXXX,a firm\n", encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("extra", "says"),
    [
        pytest.param((), "KEXIN_API_KEY", id="no-key"),
        pytest.param(("--api-key", "k" * 16, "--column", "name"), "--kind is needed", id="kind"),
        pytest.param(("--api-key", "k" * 16), "--output is needed", id="no-output"),
    ],
)
def test_usage_errors_exit_2(borrowers: Path, extra: tuple[str, ...], says: str) -> None:
    result = runner.invoke(app, arguments(borrowers, *extra))
    assert result.exit_code == 2
    assert says in result.output


def test_a_missing_column_and_an_unreachable_connector_exit_1(
    borrowers: Path, tmp_path: Path
) -> None:
    key = ("--api-key", "k" * 16, "--output", str(tmp_path / "out.csv"))
    missing = runner.invoke(app, arguments(borrowers, *key, "--column", "id_number"))
    assert missing.exit_code == 1
    assert "no column 'id_number'" in missing.output
    closed = bind()  # a port nobody answers on once closed
    port = closed.getsockname()[1]
    closed.close()
    unreachable = runner.invoke(
        app, arguments(borrowers, *key, "--connector", f"http://127.0.0.1:{port}")
    )
    assert unreachable.exit_code == 1
    assert "connector_unreachable" in unreachable.output
    assert not (tmp_path / "out.csv").exists()
