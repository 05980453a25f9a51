"""Catalogue pages: the continuation token and the page's validator (its ``ETag``).

Pages are cut by keyset: a page holds the assets whose ids follow the last id of the page
before it, and the continuation token is that id (base64url, opaque to the client). A page's
contents are therefore those of its own assets, whatever is added or removed on other pages.

The validator is a digest of everything the page's body is made of: which caller asks (its DID,
the ids and facts of its verified credentials), which contract definitions admit it now (their
ids, asset selectors and contract policies, as they stand), the assets on the page (ids and
revisions), whether a page follows, where the page starts and the connector's own settings that
show in it. A caller whose credentials changed, a policy that admits it no longer, an asset
written again: each is another validator, so a ``304 Not Modified`` is only ever the answer
for a body the caller would get again, byte for byte (fail closed). The ``previous`` link is a
header beside the body and is not covered.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Sequence
from typing import Final

from connector.catalog.offers import Admitted
from connector.catalog.store import Asset
from identity.verifier import Peer

MAX_TOKEN: Final = 1600
"""Characters of a continuation token: the base64url of an asset id of at most 300
characters of up to 4 bytes each."""


class BadTokenError(ValueError):
    """Not a continuation token this connector issued."""


def token_for(asset_id: str) -> str:
    return base64.urlsafe_b64encode(asset_id.encode()).rstrip(b"=").decode()


def after_token(token: str | None) -> str | None:
    """The asset id a page starts after (None: the first page)."""
    if token is None:
        return None
    if not token or len(token) > MAX_TOKEN or not token.isascii():
        raise BadTokenError(token)
    try:
        decoded = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise BadTokenError(token) from None
    if not decoded or token_for(decoded) != token:  # one spelling per id
        raise BadTokenError(token)
    return decoded


def page_tag(
    *,
    peer: Peer,
    admitted: Sequence[Admitted],
    assets: Sequence[Asset],
    more: bool,
    after: str | None,
    shown: str,
) -> str:
    """The strong validator of a page (quoted, as ``ETag`` wants it). ``shown``: the
    connector's settings that appear in its pages (participant, address, page size, domains)."""
    facts = peer.facts()
    parts = [
        "kexin-catalog-page-1",
        peer.did,
        sorted(
            (c.id, c.type.value, c.issuer, c.expires_at.isoformat())
            for c in peer.presentation.credentials
        ),
        [facts.membership, sorted(facts.roles), str(facts.data_grade), facts.region],
        [
            (a.definition.id, a.definition.asset_selector, a.contract.id, a.contract.policy)
            for a in admitted
        ],
        [(asset.id, asset.revision) for asset in assets],
        more,
        after,
        shown,
    ]
    packed = json.dumps(parts, ensure_ascii=False, separators=(",", ":")).encode()
    return '"' + hashlib.sha256(packed).hexdigest() + '"'


def matches(if_none_match: str | None, tag: str) -> bool:
    """Whether an ``If-None-Match`` header names ``tag`` (RFC 9110 13.1.2: weak comparison, a
    list of tags). ``*`` is not honoured: it would answer 304 without looking at the page."""
    if if_none_match is None:
        return False
    wanted = tag.removeprefix("W/")
    return any(item.strip().removeprefix("W/") == wanted for item in if_none_match.split(","))
