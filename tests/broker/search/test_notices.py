"""Change notices on real loopback servers: the bureau's connector tells the broker when an
asset, a policy or a contract definition changes (DCP-authenticated, through its outbox), and
the broker re-crawls it at once, with no scheduled crawl; a notice sent while the broker is
down arrives when it is back. A notice with a bad signature, for another participant, or from
a suspended participant is refused, typed. Without notices, the scheduled crawl finds the
changes."""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx

from broker.app import create_app as create_broker
from connector.app import create_app as create_connector
from connector.participant import standalone
from dataspace.servers import bind, serve_in_thread
from identity.credentials import CredentialType
from identity.presentations import EVERY_SCOPE
from tests.broker.search.test_federation import BROKER_ORG, KEY, publish
from tests.e2e.space import call, onboard
from tests.participants import BANK_ORG, BUREAU_ORG, authority_settings, connector_settings, did_for

NOTICE = "kexin:CatalogueChangeNotice"


def eventually(check: Callable[[], bool], within_s: float = 15.0) -> None:
    deadline = time.monotonic() + within_s
    while not check():
        assert time.monotonic() < deadline, "not within the time"
        time.sleep(0.1)


def datasets(broker_url: str) -> set[str]:
    answer = httpx.get(f"{broker_url}/catalogue/v1/datasets?limit=100", headers=KEY)
    assert answer.status_code == 200, answer.text
    return {hit["datasetId"] for hit in answer.json()["items"]}


def offer_only(base_url: str, asset: str) -> None:
    """The members' contract definition narrowed to one asset: the others leave the catalogue."""
    narrowed = httpx.put(
        f"{base_url}/management/v1/contractdefinitions/cd-members", headers=KEY,
        json={
            "id": "cd-members", "accessPolicyId": "members", "contractPolicyId": "members",
            "assetSelector": {"assetIds": [asset]},
        },
    )  # fmt: skip
    assert narrowed.status_code == 200, narrowed.text


async def forged(caller: Any, audience: str, url: str, body: object) -> httpx.Response:
    """A notice whose token's signature was altered."""
    async with standalone(caller) as (participant, client):
        token = participant.sts.bearer_for(audience, EVERY_SCOPE)
        head, payload, signature = token.split(".")
        raw = bytearray(base64.urlsafe_b64decode(signature + "=" * (-len(signature) % 4)))
        raw[0] ^= 1
        bad = base64.urlsafe_b64encode(bytes(raw)).rstrip(b"=").decode()
        return await client.post(
            url, json=body, headers={"Authorization": f"Bearer {head}.{payload}.{bad}"}
        )


def test_a_change_at_the_connector_is_crawled_at_once(tmp_path: Path) -> None:
    broker_sock, bureau_sock, bank_sock = bind(), bind(), bind()
    authority = did_for(broker_sock, "authority")
    port = broker_sock.getsockname()[1]
    broker_url = f"http://127.0.0.1:{port}"
    bureau = connector_settings(
        bureau_sock, tmp_path, "bureau", authority, ttl_s=0.3, page_size=2
    ).model_copy(update={"broker_url": broker_url, "broker_id": authority})
    bank = connector_settings(bank_sock, tmp_path, "bank", authority, ttl_s=0.3)
    allow = {
        bureau.participant_id: {"types": ["MembershipCredential", "PublicDataHolderCredential"], "organisation": BUREAU_ORG},
        bank.participant_id: {"types": ["MembershipCredential", "FinancialInstitutionCredential"], "organisation": BANK_ORG},
    }  # fmt: skip
    broker = authority_settings(
        broker_sock, tmp_path, allow, organisation=BROKER_ORG, crawl_interval_s=0.0,
        crawl_notice_settle_s=0.2,
    )  # fmt: skip
    notices = f"{broker_url}/catalogue/v1/notices"
    with ExitStack() as stack:
        broker_stack = stack.enter_context(ExitStack())
        broker_stack.enter_context(serve_in_thread(create_broker(broker), broker_sock))
        stack.enter_context(serve_in_thread(create_connector(bureau), bureau_sock))
        stack.enter_context(serve_in_thread(create_connector(bank), bank_sock))
        for settings, role in (
            (bureau, CredentialType.PUBLIC_DATA_HOLDER),
            (bank, CredentialType.FINANCIAL_INSTITUTION),
        ):
            status = asyncio.run(onboard(settings, authority, [CredentialType.MEMBERSHIP, role]))
            assert status["status"] == "ISSUED", status

        # publishing is a burst of changes: the broker crawls the bureau without being asked
        publish(bureau.base_url)
        firm, air, stats = (f"urn:kexin:asset:{n}" for n in ("firm-list", "air", "stats"))
        eventually(lambda: datasets(broker_url) == {firm, air, stats})

        def notices_sent() -> list[dict[str, Any]]:
            outbox = httpx.get(f"{bureau.base_url}/management/v1/outbox", headers=KEY).json()
            return [m for m in outbox["items"] if m["kind"] == "broker.catalogue_changed"]

        # eight changes, each its own transaction: at most as many notices, all delivered
        eventually(lambda: all(m["status"] == "sent" for m in notices_sent()))
        assert 1 <= len(notices_sent()) <= 8, notices_sent()

        # an asset changed: its new title is searchable at once
        updated = httpx.put(
            f"{bureau.base_url}/management/v1/assets/{air}", headers=KEY,
            json={
                "id": air, "titleZh": "大气污染物排放", "titleEn": "Air pollutant emissions",
                "dataGrade": "general", "region": "440106", "domain": "ecological-environment",
                "dataAddress": {"type": "file", "path": "/srv/air.csv"},
            },
        )  # fmt: skip
        assert updated.status_code == 200, updated.text

        def renamed() -> bool:
            found = httpx.get(f"{broker_url}/catalogue/v1/datasets?q=emissions", headers=KEY)
            assert found.status_code == 200, found.text
            return [hit["datasetId"] for hit in found.json()["items"]] == [air]

        eventually(renamed)

        # the broker is down while a contract definition changes: the notice waits, retried,
        # and arrives once the broker is back (the same database: a restart)
        broker_stack.close()
        offer_only(bureau.base_url, firm)

        def retried() -> bool:
            items = httpx.get(
                f"{bureau.base_url}/management/v1/outbox?status=pending", headers=KEY
            ).json()["items"]
            return any(
                m["kind"] == "broker.catalogue_changed" and m["attempts"] >= 1 for m in items
            )

        eventually(retried)
        again = bind(port=port)
        stack.enter_context(serve_in_thread(create_broker(broker), again))
        eventually(lambda: datasets(broker_url) == {firm}, within_s=30)

        # refused: no token, a bad signature, a notice for another participant, bad JSON
        body = {"@type": NOTICE, "provider": bank.participant_id}
        anonymous = httpx.post(notices, json=body)
        assert anonymous.status_code == 401, anonymous.text
        assert anonymous.json()["reason"]
        bad = asyncio.run(forged(bank, authority, notices, body))
        assert bad.status_code == 401, bad.text
        assert "reason" in bad.json()
        other = {"@type": NOTICE, "provider": bureau.participant_id}
        theirs = asyncio.run(call(bank, authority, notices, method="POST", body=other))
        assert (theirs.status_code, theirs.json()["reason"]) == (403, "not_your_catalogue")
        junk = asyncio.run(call(bank, authority, notices, method="POST", body={"a": 1}))
        assert (junk.status_code, junk.json()["reason"]) == (400, "malformed_notice")
        mine = asyncio.run(call(bank, authority, notices, method="POST", body=body))
        assert mine.status_code == 202, mine.text

        # a suspended participant's notice is refused
        suspend = {"participant": bank.participant_id, "reason": "inquiry"}
        assert httpx.post(
            f"{broker_url}/admin/participants/suspend", json=suspend, headers=KEY
        ).is_success
        refused = asyncio.run(call(bank, authority, notices, method="POST", body=body))
        assert refused.status_code == 403, refused.text
        assert refused.json()["reason"] in {
            "access_denied",
            "revoked_credential",
            "missing_credential",
        }, refused.text


def test_without_notices_the_scheduled_crawl_finds_changes(tmp_path: Path) -> None:
    """A connector that sends no notices (no broker configured) is still found: the broker's
    own round every ``crawl_interval_s`` (0.5 s here) crawls it, picks up what it published
    and drops what it withdrew."""
    broker_sock, bureau_sock = bind(), bind()
    authority = did_for(broker_sock, "authority")
    broker_url = f"http://127.0.0.1:{broker_sock.getsockname()[1]}"
    bureau = connector_settings(bureau_sock, tmp_path, "bureau", authority, ttl_s=0.3)
    assert bureau.broker_url is None  # no notices
    allow = {bureau.participant_id: {"types": ["MembershipCredential", "PublicDataHolderCredential"], "organisation": BUREAU_ORG}}  # fmt: skip
    broker = authority_settings(
        broker_sock, tmp_path, allow, organisation=BROKER_ORG, crawl_interval_s=0.5
    )
    with ExitStack() as stack:
        stack.enter_context(serve_in_thread(create_broker(broker), broker_sock))
        stack.enter_context(serve_in_thread(create_connector(bureau), bureau_sock))
        types = [CredentialType.MEMBERSHIP, CredentialType.PUBLIC_DATA_HOLDER]
        assert asyncio.run(onboard(bureau, authority, types))["status"] == "ISSUED"
        publish(bureau.base_url)
        firm, air, stats = (f"urn:kexin:asset:{n}" for n in ("firm-list", "air", "stats"))
        eventually(lambda: datasets(broker_url) == {firm, air, stats})
        offer_only(bureau.base_url, firm)
        eventually(lambda: datasets(broker_url) == {firm})
        outbox = httpx.get(f"{bureau.base_url}/management/v1/outbox", headers=KEY).json()
        assert not [m for m in outbox["items"] if m["kind"] == "broker.catalogue_changed"]
