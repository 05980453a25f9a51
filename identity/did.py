"""DID syntax (W3C DID Core 1.0, section 3.1): the value type used wherever a participant is named.

Only the syntax is checked here; resolving a DID to its document is not this module's job.
"""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator

# did = "did:" method-name ":" method-specific-id
# method-name = 1*method-char ; method-char = %x61-7A / DIGIT
# method-specific-id = *( *idchar ":" ) 1*idchar
# idchar = ALPHA / DIGIT / "." / "-" / "_" / pct-encoded
_DID = re.compile(
    r"did:[a-z0-9]+:(?:(?:[A-Za-z0-9._-]|%[0-9A-Fa-f]{2})*:)*(?:[A-Za-z0-9._-]|%[0-9A-Fa-f]{2})+"
)
MAX_DID_LENGTH = 2048


class DIDSyntaxError(ValueError):
    """A string that is not a DID."""


def check_did(value: str) -> str:
    if len(value) > MAX_DID_LENGTH:
        raise DIDSyntaxError(f"a DID is at most {MAX_DID_LENGTH} characters")
    if not _DID.fullmatch(value):
        raise DIDSyntaxError(f"not a DID (did:<method>:<method-specific-id>): {value!r}")
    return value


DID = Annotated[str, AfterValidator(check_did)]
