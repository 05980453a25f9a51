"""What the typed clients of the services' own APIs share (the connector's management client,
the authority's admin client): one synchronous httpx client with the API key, answers read
into pydantic models, and every refusal raised as :class:`ApiError` carrying the service's
typed body (:class:`service.refusals.ErrorBody`).

It does not retry: a refusal or an unreachable service is the caller's to decide on."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar
from urllib.parse import quote

import httpx
from pydantic import BaseModel, TypeAdapter, ValidationError

from service.refusals import ErrorBody

M = TypeVar("M")

UNREACHABLE = "unreachable"
"""``ApiError.reason`` when the service did not answer (status 0)."""
BAD_ANSWER = "bad_answer"
"""``ApiError.reason`` when the service answered something that is not the documented shape."""


class ApiError(Exception):
    """A refusal by the service (``status`` and its typed ``body``), or no usable answer
    (``status`` 0, reason ``unreachable`` or ``bad_answer``)."""

    def __init__(self, status: int, body: ErrorBody) -> None:
        super().__init__(f"{body.reason}: {body.message}")
        self.status, self.body = status, body

    @property
    def reason(self) -> str:
        return self.body.reason

    @property
    def message(self) -> str:
        return self.body.message

    @property
    def reasons(self) -> list[str]:
        """A policy's reasons, when the refusal carries them."""
        extra = self.body.model_extra or {}
        reasons = extra.get("reasons")
        return [str(r) for r in reasons] if isinstance(reasons, list) else []


def segment(identifier: str) -> str:
    """An identifier as one path segment (``:`` kept readable, ``/`` and the rest quoted)."""
    return quote(identifier, safe=":")


def refusal_of(response: httpx.Response) -> ApiError:
    try:
        body = ErrorBody.model_validate(response.json())
    except (ValueError, ValidationError):
        body = ErrorBody(
            type="HttpError",
            reason=f"http_{response.status_code}",
            message=response.text[:500] or response.reason_phrase,
        )
    return ApiError(response.status_code, body)


class ApiClient:
    """The HTTP edge of a typed client: ``base_url`` is the service's base, ``api_key`` goes
    in ``X-Api-Key``; ``transport`` replaces the network in tests."""

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        timeout_s: float = 30.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._http = httpx.Client(
            base_url=self.base_url,
            timeout=timeout_s,
            transport=transport,
            headers={"X-Api-Key": api_key},
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self: M) -> M:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def _call(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: Mapping[str, Any] | None = None,
    ) -> httpx.Response:
        query = {k: v for k, v in (params or {}).items() if v is not None}
        try:
            response = self._http.request(method, path, json=json, params=query or None)
        except httpx.HTTPError as error:
            raise ApiError(
                0,
                ErrorBody(
                    type="ClientError",
                    reason=UNREACHABLE,
                    message=f"{self.base_url}: {type(error).__name__}: {error}".rstrip(": "),
                ),
            ) from None
        if not response.is_success:
            raise refusal_of(response)
        return response

    def _read(
        self,
        shape: type[M] | Any,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: Mapping[str, Any] | None = None,
    ) -> M:
        """Call, and read the answer as ``shape`` (a model, or a type such as ``list[X]``)."""
        response = self._call(method, path, json=json, params=params)
        try:
            value: M = TypeAdapter(shape).validate_json(response.content)
        except ValidationError as error:
            raise ApiError(
                0,
                ErrorBody(
                    type="ClientError",
                    reason=BAD_ANSWER,
                    message=f"{method} {path}: the answer is not what the API documents: "
                    f"{error.errors()[0]['msg']}",
                ),
            ) from None
        return value

    def _none(self, method: str, path: str, *, json: Any = None) -> None:
        self._call(method, path, json=json)


def body_of(model: BaseModel | Mapping[str, Any]) -> Any:
    """A request body: a model by its wire names, or a mapping as given."""
    if isinstance(model, BaseModel):
        return model.model_dump(by_alias=True, exclude_none=True, mode="json")
    return dict(model)
