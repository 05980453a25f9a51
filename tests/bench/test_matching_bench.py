"""The matching benchmark's inputs are what it says, and it runs end to end at small sizes,
over HTTP between two connector processes (no timing here: bench/ measures, tests check)."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.matching_bench import OVERLAP, Sizes, client_list, column, measure
from matching.identifiers import Kind, normalise
from matching.synthetic import Dataset


def test_the_client_lists_share_the_stated_part_of_the_server_list() -> None:
    server = normalise(column(Dataset.ENTERPRISES, 2000, 4), Kind.USCC).items
    client = normalise(client_list(server, 1000, 5), Kind.USCC).items
    assert len(client) == 1000
    assert len(set(client) & set(server)) == round(OVERLAP * 1000)


def test_the_benchmark_runs_at_small_sizes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    code = measure(
        Sizes(normalise=300, server=512, small_client=64, large_client=256, baseline=True),
        tmp_path,
    )
    assert code in (0, 1)  # the targets depend on the machine's load
    out = capsys.readouterr().out
    for line in ("uscc:", "id_number:", "mobile:", "intersection: online", "cardinality: online"):
        assert line in out
    assert "balanced, 256 x 512: " in out
    assert f"{round(OVERLAP * 256)} found, as over HTTP" in out  # the baseline agrees
    assert "bureau: peak RSS" in out
    assert "bank: peak RSS" in out
