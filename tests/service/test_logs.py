"""A key or token sent by mistake in a query string never reaches the access log."""

from __future__ import annotations

import logging

import pytest

from service.logs import RedactSecrets, one_line, redact


@pytest.mark.parametrize(
    ("line", "shown"),
    [
        ("GET /management/v1/assets?x-api-key=s3cret HTTP/1.1",
         "GET /management/v1/assets?x-api-key=[redacted] HTTP/1.1"),
        ("/dataplane/v1/data?limit=5&access_token=eyJabc.def&x=1",
         "/dataplane/v1/data?limit=5&access_token=[redacted]&x=1"),
        ("/a?apiKey=1&Password=2&offset=3", "/a?apiKey=[redacted]&Password=[redacted]&offset=3"),
        ("/management/v1/assets?offset=10", "/management/v1/assets?offset=10"),
    ],
)  # fmt: skip
def test_secret_parameters_are_redacted(line: str, shown: str) -> None:
    assert redact(line) == shown


def test_the_filter_redacts_uvicorns_access_log_arguments() -> None:
    record = logging.LogRecord(
        "uvicorn.access", logging.INFO, __file__, 1, '%s - "%s %s HTTP/%s" %d',
        ("127.0.0.1:5", "GET", "/m?x-api-key=s3cret", "1.1", 401), None,
    )  # fmt: skip
    assert RedactSecrets().filter(record)
    assert "s3cret" not in record.getMessage()
    assert "[redacted]" in record.getMessage()


@pytest.mark.parametrize(
    ("error", "line"),
    [
        (TimeoutError(""), "TimeoutError"),  # an empty message: no IndexError in a handler
        (ValueError("first\nsecond"), "ValueError: first"),
        (OSError("x" * 400), "OSError: " + "x" * 300),
    ],
)
def test_a_failure_in_one_line(error: BaseException, line: str) -> None:
    assert one_line(error) == line
