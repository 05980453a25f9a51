"""What the services log: a failure in one line, and never a secret: a key or token sent by
mistake in a query string (an API key as ``?x-api-key=…``, a token as ``?access_token=…``) is
written to the access log as ``[redacted]``."""

from __future__ import annotations

import hashlib
import logging
import re
from typing import Final

SECRET_PARAMETER: Final = re.compile(
    r"(?i)([?&][^=&]*(?:key|token|secret|passw|auth|signature)[^=&]*=)[^&#\s]*"
)


def key_id(api_key: str) -> str:
    """Names an operator's API key in audit events and logs without revealing it."""
    return "key:" + hashlib.sha256(api_key.encode()).hexdigest()[:16]


def one_line(error: BaseException, limit: int = 300) -> str:
    """A failure in one line, for logs and readiness: its type and the first line of its
    message (a message that is empty, as httpx's ``ReadTimeout('')``, leaves the type)."""
    first = next(iter(str(error).splitlines()), "")
    return f"{type(error).__name__}: {first[:limit]}" if first else type(error).__name__


def redact(text: str) -> str:
    return SECRET_PARAMETER.sub(r"\1[redacted]", text)


class RedactSecrets(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(redact(a) if isinstance(a, str) else a for a in record.args)
        if isinstance(record.msg, str):
            record.msg = redact(record.msg)
        return True


def redact_access_log() -> None:
    """Install the filter on uvicorn's access log (idempotent)."""
    access = logging.getLogger("uvicorn.access")
    if not any(isinstance(f, RedactSecrets) for f in access.filters):
        access.addFilter(RedactSecrets())
