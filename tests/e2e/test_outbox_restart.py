"""A pending outbound message survives a crash: the bank asks for a contract while the bureau is
down, the bank stops before the message is delivered, both come back, and the negotiation ends
FINALIZED without anyone sending anything again."""

from __future__ import annotations

import asyncio
import socket
from contextlib import ExitStack
from pathlib import Path

import httpx

from broker.app import create_app as create_broker
from connector.app import create_app as create_connector
from dataspace.servers import bind, serve_in_thread
from identity.credentials import CredentialType
from tests.e2e.space import TTL_S, Space, onboard
from tests.e2e.test_catalog import bank_asks, publish
from tests.e2e.test_negotiation import KEY, negotiate, state_of, wait_for
from tests.participants import BANK_ORG, BUREAU_ORG, authority_settings, connector_settings, did_for


def port_of(sock: socket.socket) -> int:
    port: int = sock.getsockname()[1]
    return port


def test_a_pending_request_is_sent_after_a_restart(tmp_path: Path) -> None:
    authority_sock, bureau_sock, bank_sock = bind(), bind(), bind()
    authority = did_for(authority_sock, "authority")
    bureau_port, bank_port = port_of(bureau_sock), port_of(bank_sock)
    bureau = connector_settings(bureau_sock, tmp_path, "bureau", authority, ttl_s=TTL_S)
    bank = connector_settings(bank_sock, tmp_path, "bank", authority, ttl_s=TTL_S)
    allow = {
        bureau.participant_id: {
            "types": ["MembershipCredential", "PublicDataHolderCredential"],
            "organisation": BUREAU_ORG,
        },
        bank.participant_id: {
            "types": ["MembershipCredential", "FinancialInstitutionCredential"],
            "organisation": BANK_ORG,
        },
    }
    with ExitStack() as always:
        authority_url = always.enter_context(
            serve_in_thread(
                create_broker(authority_settings(authority_sock, tmp_path, allow)), authority_sock
            )
        )
        space = Space(authority, authority_url, bureau, bank, bank.base_url)
        with (
            serve_in_thread(create_connector(bureau), bureau_sock),
            serve_in_thread(create_connector(bank), bank_sock),
        ):
            asyncio.run(
                onboard(
                    bank,
                    authority,
                    [CredentialType.MEMBERSHIP, CredentialType.FINANCIAL_INSTITUTION],
                )
            )
            asyncio.run(
                onboard(
                    bureau,
                    authority,
                    [CredentialType.MEMBERSHIP, CredentialType.PUBLIC_DATA_HOLDER],
                )
            )
            publish(space)
            offer = bank_asks(space, "/dsp/catalog/request").json()["dataset"][0]["hasPolicy"][0]
        # The bureau is down now. The bank asks; its message cannot be delivered.
        bank_sock = bind(port=bank_port)
        with serve_in_thread(create_connector(bank), bank_sock):
            negotiation = negotiate(space, offer)
            wait_for(
                lambda: (
                    httpx.get(
                        f"{bank.base_url}/management/v1/negotiations/{negotiation['id']}",
                        headers=KEY,
                    ).json()["state"]
                    == "REQUESTED"
                )
            )
        # The bank is gone too (a crash with the message pending). Both come back.
        bureau_sock, bank_sock = bind(port=bureau_port), bind(port=bank_port)
        with (
            serve_in_thread(create_connector(bureau), bureau_sock),
            serve_in_thread(create_connector(bank), bank_sock),
        ):
            wait_for(
                lambda: state_of(bank.base_url, negotiation["id"])["state"] == "FINALIZED",
                timeout_s=30,
            )
            provider = httpx.get(
                f"{bureau.base_url}/management/v1/negotiations", headers=KEY
            ).json()["items"]
            assert [p["state"] for p in provider] == ["FINALIZED"]
