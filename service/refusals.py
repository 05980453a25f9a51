"""The typed refusals of the services, for their OpenAPI: the body every refusal has
(:func:`service.http.error_body`) and ``responses`` entries for a router or a route, so that
every status a route can answer is documented (the fuzz guard in the tests checks it).

Pydantic only: protocol modules can name their refusals without loading the web framework.
"""

from __future__ import annotations

from types import UnionType
from typing import Any, Final

from pydantic import BaseModel, ConfigDict


class ErrorBody(BaseModel):
    """The body of every refusal (:func:`service.http.error_body`); some kinds add fields
    (e.g. ``reasons``, the ids of the processes concerned)."""

    model_config = ConfigDict(extra="allow")

    type: str
    """What refused: ``BadRequest``, ``ManagementError``, ``IdentityError``, ..."""
    reason: str
    """A code, e.g. ``not_found``, ``too_deep``, ``database_unavailable``."""
    message: str


REFUSAL_DESCRIPTIONS: Final = {
    400: "Malformed: the body, a parameter or a message is not what it must be",
    401: "Not authenticated: the API key or token is missing or not valid",
    403: "Authenticated, but not allowed",
    404: "No such resource (of this caller)",
    409: "Not possible in the resource's current state",
    410: "Gone",
    413: "The body is larger than the service's limit",
    416: "The byte range is beyond the data",
    422: "A parameter or the body does not validate",
    501: "Not supported here",
    502: "A peer or data source could not be reached or answered badly",
    503: "The database cannot be used at the moment (nothing was changed): try again later",
    504: "A peer has not answered in time",
    507: "The service has no room left for this",
}


Model = type[BaseModel] | UnionType
"""A body model, or a union of them when a route refuses in more than one shape."""


def refusal(description: str, model: Model = ErrorBody) -> dict[str, Any]:
    """One OpenAPI ``responses`` entry: a refusal with its typed body."""
    return {"model": model, "description": description}


def refusals(*statuses: int, model: Model = ErrorBody) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` for these refusals, each with its typed body."""
    return {status: refusal(REFUSAL_DESCRIPTIONS[status], model) for status in statuses}


NOT_READY: Final[dict[int | str, dict[str, Any]]] = {
    503: {"description": "Not ready: the same report, saying what fails"}
}
"""The readiness probe's ``responses``: its 503 carries the health report, not a refusal."""
