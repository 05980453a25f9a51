"""The SDK's row count of a downloaded body, against the rows the provider's SQL source wrote
(the regulator's reconciliation compares the two)."""

from __future__ import annotations

import csv
import io
import json

import pytest

from connector.contracts.client import ROWS_HEADER, RowCount
from connector.dataplane import sources

ROWS = [
    ["91440100000000000X", "企业一", "1.5"],
    ["91440100000000001X", 'a "quoted" name', "2"],
    ["91440100000000002X", "a name\non two lines, with a comma", ""],
    ["91440100000000003X", "\r\n", '"'],
]


def _csv(rows: list[list[str]]) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer)  # as the data plane's SQL source writes it
    writer.writerow(["code", "name", "capital"])
    writer.writerows(rows)
    return buffer.getvalue().encode()


@pytest.mark.parametrize("size", [1, 2, 3, 7, 4096])
def test_csv_rows_are_counted_whatever_the_chunks_and_line_breaks_in_fields(size: int) -> None:
    body = _csv(ROWS)
    count = RowCount("text/csv; charset=utf-8")
    for start in range(0, len(body), size):
        count.add(body[start : start + size])
    assert count.rows == len(ROWS) == len(list(csv.reader(io.StringIO(body.decode())))) - 1


def test_a_result_of_no_rows_is_its_header_alone() -> None:
    count = RowCount("text/csv")
    count.add(_csv([]))
    assert count.rows == 0


def test_json_lines_are_counted_by_line() -> None:
    body = "".join(json.dumps({"name": v[1]}, ensure_ascii=False) + "\n" for v in ROWS).encode()
    count = RowCount("application/jsonl")
    for start in range(0, len(body), 5):
        count.add(body[start : start + 5])
    assert count.rows == len(ROWS)


def test_the_sdk_reads_the_header_the_data_plane_sends() -> None:
    assert sources.ROWS_HEADER.lower() == ROWS_HEADER
