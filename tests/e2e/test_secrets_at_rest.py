"""Tokens are never kept raw once sent: after a negotiation, a pull transfer, a download, a
token refresh and the transfer's completion, the provider's database files (and what the
services logged) hold none of the data-plane tokens it issued: only their SHA-256 is kept,
and the messages that carried them are redacted once sent. Every answer that carries a token
says ``Cache-Control: no-store``."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from tests.e2e.dataplane_helpers import KEY, PURPOSE, data_file, offer_data, terms
from tests.e2e.space import start_space
from tests.e2e.test_transfer import bank_transfer, bureau_transfers, in_state, move


class _Everything(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


@contextmanager
def _logged() -> Iterator[list[str]]:
    """Every log line of the services (ours and uvicorn's), at every level."""
    handler = _Everything()
    loggers = [logging.getLogger(), *(logging.getLogger(n) for n in ("uvicorn", "uvicorn.access"))]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.addHandler(handler)
    logging.getLogger().setLevel(logging.DEBUG)
    try:
        yield handler.lines
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.removeHandler(handler)
            logger.setLevel(level)


def _files_holding(folder: Path, name: str, secrets: dict[str, str]) -> list[tuple[str, str]]:
    """Which of the database's files (the database, its WAL and journal) hold which secret."""
    found = []
    for path in sorted(folder.glob(f"{name}.db*")):
        content = path.read_bytes()
        found += [(path.name, what) for what, value in secrets.items() if value.encode() in content]
    return found


def test_no_raw_token_is_kept_once_sent_and_token_answers_are_not_cached(tmp_path: Path) -> None:
    with _logged() as lines, start_space(tmp_path, allow_list=True) as space:
        source, _ = data_file(tmp_path, 1000)
        asset = offer_data(space, {"type": "file", "path": str(source)}, terms())
        answer = httpx.post(
            f"{space.bank.base_url}/contracts/v1/data",
            headers=KEY,
            json={
                "provider": space.bureau.participant_id,
                "providerAddress": f"{space.bureau.base_url}/dsp",
                "dataset": asset,
                "purpose": PURPOSE,
            },
            timeout=30,
        )
        assert answer.status_code == 200, answer.text
        assert answer.headers["cache-control"] == "no-store"
        grant = answer.json()
        data = httpx.get(
            grant["endpoint"], headers={"Authorization": f"Bearer {grant['authorization']}"}
        )
        assert (data.status_code, data.headers["cache-control"]) == (200, "no-store")
        refreshed = httpx.post(
            grant["refreshEndpoint"],
            headers={"Authorization": f"Bearer {grant['authorization']}"},
            json={"refreshToken": grant["refreshToken"]},
        )
        assert refreshed.status_code == 200, refreshed.text
        assert refreshed.headers["cache-control"] == "no-store"
        fresh = refreshed.json()
        shown = httpx.get(
            f"{space.bank.base_url}/management/v1/transfers/{grant['transferId']}", headers=KEY
        )
        assert shown.headers["cache-control"] == "no-store"  # its data address has the token
        assert move(space.bank.base_url, grant["transferId"], "complete").status_code == 200
        in_state(space, grant["transferId"], "COMPLETED")
        assert bank_transfer(space, grant["transferId"])["state"] == "COMPLETED"
        assert [t["state"] for t in bureau_transfers(space)] == ["COMPLETED"]
    secrets = {
        "access token": grant["authorization"],
        "refresh token": grant["refreshToken"],
        "refreshed access token": fresh["authorization"],
        "refreshed refresh token": fresh["refreshToken"],
    }
    assert _files_holding(tmp_path, "bureau", secrets) == []
    # the consumer keeps the address it was given (its application's to use), not refreshes
    assert (
        _files_holding(
            tmp_path, "bank", {k: v for k, v in secrets.items() if k.startswith("refreshed")}
        )
        == []
    )
    assert [(what, line) for line in lines for what, v in secrets.items() if v in line] == []
