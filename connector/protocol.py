"""What every DSP 2025-1 message shares: its context, its envelope, and how we read one.

Messages are read leniently where the specification allows (extra properties, extra contexts,
a single-string ``@context``), strictly where it matters (the DSP 2025-1 context must be there,
``@type`` must be the expected one, pids are non-empty strings of bounded length). We always
write the compact 2025-1 form with an array ``@context``. No context is ever fetched.
"""

from __future__ import annotations

from typing import Any, ClassVar, Final, Self

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from service.refusals import refusals

DSP_CONTEXT: Final = "https://w3id.org/dspace/2025/1/context.jsonld"
DSP_VERSION: Final = "2025-1"
MAX_PID_CHARS: Final = 500

Pid = str


class MessageError(ValueError):
    """A message that cannot be read: the path and the reason, for a typed 400."""


class DspMessage(BaseModel):
    """The envelope: ``@context`` and ``@type``. Subclasses name their ``TYPE``."""

    model_config = ConfigDict(extra="allow", populate_by_name=True, frozen=True)
    TYPE: ClassVar[str] = ""

    context: list[str] = Field(alias="@context")
    type: str = Field(alias="@type")

    @field_validator("context", mode="before")
    @classmethod
    def _context(cls, value: Any) -> list[str]:
        contexts = [value] if isinstance(value, str) else value
        if not isinstance(contexts, list) or DSP_CONTEXT not in contexts:
            raise ValueError(f"@context must include {DSP_CONTEXT}")
        return [c for c in contexts if isinstance(c, str)]

    @field_validator("type")
    @classmethod
    def _type(cls, value: str) -> str:
        if value != cls.TYPE:
            raise ValueError(f"expected @type {cls.TYPE}, got {value!r}")
        return value

    @classmethod
    def read(cls, body: Any) -> Self:
        if not isinstance(body, dict):
            raise MessageError(f"{cls.TYPE} must be a JSON object")
        try:
            return cls.model_validate(body)
        except ValidationError as error:
            first = error.errors()[0]
            path = ".".join(str(part) for part in first["loc"]) or "(message)"
            raise MessageError(f"{path}: {first['msg']}") from None

    @classmethod
    def build(cls, **fields: Any) -> Self:
        return cls.model_validate({"@context": [DSP_CONTEXT], "@type": cls.TYPE, **fields})

    def dump(self) -> dict[str, Any]:
        """The wire form: by alias, without unset optional properties."""
        return self.model_dump(by_alias=True, exclude_none=True)


def pid_field(alias: str) -> Any:
    return Field(alias=alias, min_length=1, max_length=MAX_PID_CHARS)


def optional_pid_field(alias: str) -> Any:
    return Field(default=None, alias=alias, min_length=1, max_length=MAX_PID_CHARS)


PROCESS_ERRORS: Final = frozenset({"ContractNegotiationError", "TransferError"})


class DspError(Exception):
    """A refusal to answer with a typed DSP error body (CatalogError, ContractNegotiationError,
    TransferError) and a 4xx status."""

    def __init__(
        self,
        status: int,
        error_type: str,
        code: str,
        reason: str,
        *,
        provider_pid: str | None = None,
        consumer_pid: str | None = None,
    ) -> None:
        super().__init__(reason)
        self.status = status
        self.error_type = error_type
        self.code = code
        self.reason = reason
        self.provider_pid = provider_pid
        self.consumer_pid = consumer_pid
        self.audited = False
        """Set once the refusal is in the audit log (with its counterparty)."""

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {"@context": [DSP_CONTEXT], "@type": self.error_type}
        if self.error_type in PROCESS_ERRORS:
            # The schemas require both pids; one we do not know (an unknown process) is sent
            # empty rather than made up.
            body["providerPid"] = self.provider_pid or ""
            body["consumerPid"] = self.consumer_pid or ""
        body["code"] = self.code
        body["reason"] = [self.reason]
        return body


class DspErrorBody(BaseModel):
    """What :meth:`DspError.body` sends, for the routes' OpenAPI ``responses``."""

    model_config = ConfigDict(populate_by_name=True)

    context: list[str] = Field(alias="@context")
    type: str = Field(alias="@type", description="CatalogError, ContractNegotiationError, ...")
    provider_pid: str | None = Field(default=None, alias="providerPid")
    consumer_pid: str | None = Field(default=None, alias="consumerPid")
    code: str
    reason: list[str]


DSP_REFUSALS: Final = {
    **refusals(400, 401, 403, 404, 413, model=DspErrorBody),
    **refusals(422, 503),  # validation and the database: the services' plain refusals
}
"""The refusals of every DSP route, in OpenAPI ``responses``."""
