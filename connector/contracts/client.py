"""A small typed Python client for the data contracts API, and the download that goes with it:
one call for a grant, then the data straight from the provider's data plane, streamed to a
file, resumed after an interruption, token refreshed before it expires, with the SHA-256 of
what arrived, reported to our connector for the regulator's ledger. Used by applications, the
tests and ``dataspace fetch``."""

from __future__ import annotations

import hashlib
import logging
import os
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final
from urllib.parse import quote

import httpx

log = logging.getLogger("kexin.contracts.client")

CHUNK: Final = 1024 * 1024
REPORT_ATTEMPTS: Final = 3
ROWS_HEADER: Final = "kexin-rows"
"""The provider's data plane counts the rows of this body (the data plane's ``ROWS_HEADER``):
the download counts them too."""
Progress = Callable[[int, int | None], None]
"""bytes so far, total bytes (None when the provider does not say)"""


class ContractsError(Exception):
    """A typed refusal or failure: ``code`` as the API said it, with the policy's reasons."""

    def __init__(
        self, status: int, code: str, message: str, reasons: list[str] | None = None
    ) -> None:
        super().__init__(f"{code}: {message}")
        self.status, self.code, self.message = status, code, message
        self.reasons = reasons or []


class DownloadInterruptedError(ContractsError):
    """The stream broke; what arrived is kept in the ``.part`` file for a resume."""


@dataclass(frozen=True)
class DataGrant:
    agreement_id: str
    transfer_id: str
    endpoint: str
    token: str
    expires_at: datetime | None
    refresh_token: str | None
    refresh_endpoint: str | None
    reused_agreement: bool = False

    @classmethod
    def from_json(cls, body: dict[str, Any]) -> DataGrant:
        expires = body.get("expiresAt")
        return cls(
            agreement_id=body["agreementId"], transfer_id=body["transferId"],
            endpoint=body["endpoint"], token=body["authorization"],
            expires_at=datetime.fromisoformat(expires) if expires else None,
            refresh_token=body.get("refreshToken"), refresh_endpoint=body.get("refreshEndpoint"),
            reused_agreement=bool(body.get("reusedAgreement")),
        )  # fmt: skip


@dataclass(frozen=True)
class Download:
    path: Path
    bytes: int
    sha256: str
    resumed_from: int
    grant: DataGrant
    """The grant as it stands after the download (its token may have been refreshed)."""
    receipt_id: str = field(default_factory=lambda: f"urn:uuid:{uuid.uuid4()}")
    """This download's report to our connector carries it: reported again, recorded once."""
    rows: int | None = None
    """Rows that arrived, when the provider streamed rows it counts (a query's result)."""


class RowCount:
    """Counts the rows of a body as it arrives: JSON Lines, one per line; CSV, one per line
    ended outside a quoted field (a field may hold a line break), less its header line."""

    def __init__(self, media_type: str) -> None:
        self.csv = media_type.split(";")[0].strip().lower() == "text/csv"
        self.lines = 0
        self._quoted = False

    def add(self, chunk: bytes) -> None:
        if not self.csv:
            self.lines += chunk.count(b"\n")
            return
        for index, piece in enumerate(chunk.split(b'"')):
            if index:
                self._quoted = not self._quoted  # "" inside a field turns it twice
            if not self._quoted:
                self.lines += piece.count(b"\n")

    @property
    def rows(self) -> int:
        return max(self.lines - 1, 0) if self.csv else self.lines


def _error(response: httpx.Response) -> ContractsError:
    try:
        body = response.json()
    except ValueError:
        body = {}
    if not isinstance(body, dict):
        body = {}
    return ContractsError(
        response.status_code,
        str(body.get("reason", f"http_{response.status_code}")),
        str(body.get("message", response.text[:500])),
        [str(r) for r in body.get("reasons", [])],
    )


class ContractsClient:
    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        timeout_s: float = 60.0,
        transport: httpx.BaseTransport | None = None,
        refresh_margin: timedelta = timedelta(seconds=30),
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._http = httpx.Client(timeout=timeout_s, transport=transport)
        self._headers = {"X-Api-Key": api_key}
        self.refresh_margin = refresh_margin

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> ContractsClient:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def request_data(
        self,
        provider: str,
        provider_address: str,
        dataset: str,
        purpose: str,
        *,
        offer: str | None = None,
    ) -> DataGrant:
        """This dataset from this provider, for this purpose (under ``offer``, its ``@id``,
        when named; else the first offer shown to us); raises :class:`ContractsError` with the
        reasons when refused."""
        body = {"provider": provider, "providerAddress": provider_address,
                "dataset": dataset, "purpose": purpose}  # fmt: skip
        if offer is not None:
            body["offer"] = offer
        try:
            response = self._http.post(
                f"{self.base_url}/contracts/v1/data", headers=self._headers, json=body
            )
        except httpx.HTTPError as error:
            raise ContractsError(0, "connector_unreachable", repr(error)) from None
        if response.status_code != httpx.codes.OK:
            raise _error(response)
        return DataGrant.from_json(response.json())

    def match(
        self,
        provider: str,
        provider_address: str,
        dataset: str,
        purpose: str,
        *,
        kind: str,
        items: list[str],
        mode: str = "intersection",
    ) -> dict[str, Any]:
        """Which of ``items`` are in the provider's matching set (or only how many, in the
        cardinality mode): the connector normalises them, negotiates or reuses an agreement
        and runs the PSI; raises :class:`ContractsError` with the reasons when refused."""
        try:
            response = self._http.post(
                f"{self.base_url}/contracts/v1/match",
                headers=self._headers,
                json={"provider": provider, "providerAddress": provider_address,
                      "dataset": dataset, "purpose": purpose, "kind": kind, "mode": mode,
                      "items": items},
            )  # fmt: skip
        except httpx.HTTPError as error:
            raise ContractsError(0, "connector_unreachable", repr(error)) from None
        if response.status_code != httpx.codes.OK:
            raise _error(response)
        result: dict[str, Any] = response.json()
        return result

    def refresh(self, grant: DataGrant) -> DataGrant:
        if grant.refresh_endpoint is None or grant.refresh_token is None:
            raise ContractsError(0, "not_refreshable", "this grant has no refresh token")
        try:
            response = self._http.post(
                grant.refresh_endpoint,
                headers={"Authorization": f"Bearer {grant.token}"},
                json={"refreshToken": grant.refresh_token},
            )
        except httpx.HTTPError as error:
            raise ContractsError(0, "provider_unreachable", repr(error)) from None
        if response.status_code != httpx.codes.OK:
            raise _error(response)
        body = response.json()
        return replace(
            grant,
            token=body["authorization"],
            refresh_token=body["refreshToken"],
            expires_at=datetime.fromisoformat(body["expiresAt"]),
        )

    def _fresh(self, grant: DataGrant) -> DataGrant:
        if grant.expires_at is None:
            return grant
        if grant.expires_at - datetime.now(UTC) <= self.refresh_margin:
            return self.refresh(grant)
        return grant

    def download(
        self,
        grant: DataGrant,
        path: Path,
        *,
        progress: Progress | None = None,
        resume: bool = True,
        accept: str | None = None,
    ) -> Download:
        """Stream the data to ``path`` (through ``path.part``, renamed when whole). With
        ``resume``, a ``.part`` left by an interrupted download is continued with a Range
        request; a provider that answers the whole data instead restarts it."""
        part = path.with_name(path.name + ".part")
        have = part.stat().st_size if resume and part.exists() else 0
        grant = self._fresh(grant)
        for attempt in range(2):
            headers = {"Authorization": f"Bearer {grant.token}"}
            if have:
                headers["Range"] = f"bytes={have}-"
            if accept:
                headers["Accept"] = accept
            try:
                with self._http.stream("GET", grant.endpoint, headers=headers) as response:
                    if response.status_code == 401 and attempt == 0:
                        response.read()
                        if _error(response).code == "expired_token":
                            grant = self.refresh(grant)
                            continue
                    if response.status_code not in (200, 206):
                        response.read()
                        raise _error(response)
                    return self._write(response, part, path, have, grant, progress)
            except httpx.HTTPError as error:
                raise DownloadInterruptedError(
                    0, "interrupted", f"the download broke ({error!r}); resume it"
                ) from None
        raise ContractsError(401, "expired_token", "the token expired again after a refresh")

    def _write(
        self,
        response: httpx.Response,
        part: Path,
        path: Path,
        have: int,
        grant: DataGrant,
        progress: Progress | None,
    ) -> Download:
        digest = hashlib.sha256()
        resumed_from = have if response.status_code == 206 else 0
        if resumed_from:
            with part.open("rb") as existing:
                while chunk := existing.read(CHUNK):
                    digest.update(chunk)
        length = response.headers.get("content-length")
        total = resumed_from + int(length) if length and length.isdigit() else None
        done = resumed_from
        counting = (
            RowCount(response.headers.get("content-type", ""))
            if response.headers.get(ROWS_HEADER) == "counted" and not resumed_from
            else None
        )
        with part.open("ab" if resumed_from else "wb") as out:
            for chunk in response.iter_bytes(CHUNK):
                out.write(chunk)
                digest.update(chunk)
                if counting is not None:
                    counting.add(chunk)
                done += len(chunk)
                if progress is not None:
                    progress(done, total)
            out.flush()
            os.fsync(out.fileno())
        part.replace(path)
        finished = Download(
            path, done, digest.hexdigest(), resumed_from, grant,
            rows=None if counting is None else counting.rows,
        )  # fmt: skip
        self.report(finished)
        return finished

    def report(self, download: Download) -> None:
        """Tell our connector what arrived (``POST /contracts/v1/received``), for the
        regulator's reconciliation; a broken connection or a 5xx is tried again (the
        download's ``receipt_id`` makes a repeat count once). The data is here whatever the
        answer: a report that fails is logged, not raised (the reconciliation then shows the
        flow one-sided)."""
        body = {"transferId": download.grant.transfer_id, "bytes": download.bytes,
                "sha256": download.sha256, "receiptId": download.receipt_id,
                **({} if download.rows is None else {"rows": download.rows})}  # fmt: skip
        for attempt in range(1, REPORT_ATTEMPTS + 1):
            try:
                response = self._http.post(
                    f"{self.base_url}/contracts/v1/received", headers=self._headers, json=body
                )
            except httpx.HTTPError as error:
                failure = repr(error)
            else:
                if response.status_code == httpx.codes.CREATED:
                    return
                failure = str(_error(response))
                if response.status_code < httpx.codes.INTERNAL_SERVER_ERROR:
                    break
            if attempt < REPORT_ATTEMPTS:
                time.sleep(0.2 * 2**attempt)
        log.warning("the connector did not record the download of %s: %s",
                    download.grant.transfer_id, failure)  # fmt: skip

    def duties(self, agreement_id: str | None = None) -> list[dict[str, Any]]:
        params = {"role": "consumer", **({"agreementId": agreement_id} if agreement_id else {})}
        response = self._http.get(
            f"{self.base_url}/management/v1/duties", headers=self._headers, params=params
        )
        if response.status_code != httpx.codes.OK:
            raise _error(response)
        items: list[dict[str, Any]] = response.json()["items"]
        return items

    def performed(self, duty_id: str, performed_at: datetime | None = None) -> dict[str, Any]:
        """The application did the duty (e.g. deleted the data): the connector signs a
        receipt and sends it to the provider."""
        body = {"performedAt": performed_at.isoformat()} if performed_at else {}
        response = self._http.post(
            f"{self.base_url}/management/v1/duties/{quote(duty_id, safe=':')}/performed",
            headers=self._headers,
            json=body,
        )
        if response.status_code != httpx.codes.OK:
            raise _error(response)
        view: dict[str, Any] = response.json()
        return view
