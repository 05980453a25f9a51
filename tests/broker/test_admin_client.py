"""The operator's typed admin client against a real authority and connector on loopback: a
request waits, is approved (the credentials reach the connector) or rejected, a credential is
revoked, and refusals come back typed."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from broker.authority.client import AdminClient
from broker.authority.store import Decision, RequestStatus
from connector.management.client import ManagementClient
from identity.claims import OrganisationClaims
from identity.credentials import CredentialType
from service.client import ApiError
from tests.e2e.space import Space, onboard, start_space
from tests.participants import ADMIN_KEY, BANK_ORG


@pytest.fixture
def closed(tmp_path: Path) -> Iterator[Space]:
    with start_space(tmp_path, allow_list=False) as started:
        yield started


def test_the_operator_approves_rejects_and_revokes(closed: Space) -> None:
    bank = closed.bank.participant_id
    asked = asyncio.run(onboard(closed.bank, closed.authority, [CredentialType.MEMBERSHIP]))
    with AdminClient(closed.authority_url, ADMIN_KEY) as admin:
        waiting = admin.requests(RequestStatus.RECEIVED)
        assert [(r.issuer_pid, r.holder, r.credential_types) for r in waiting] == [
            (asked["issuerPid"], bank, ["MembershipCredential"])
        ]
        approved = admin.approve(waiting[0].issuer_pid, OrganisationClaims.model_validate(BANK_ORG))
        assert approved.status == "ISSUED"
        [issued] = admin.credentials(holder=bank)
        assert (issued.type, issued.revoked) == ("MembershipCredential", False)
        with ManagementClient(closed.bank_url, ADMIN_KEY) as management:
            assert [c.id for c in management.credentials().items] == [issued.id]

        again = asyncio.run(onboard(closed.bank, closed.authority, [CredentialType.MEMBERSHIP]))
        rejected = admin.reject(str(again["issuerPid"]), "one membership is enough")
        assert (rejected.status, rejected.reason) == ("REJECTED", "one membership is enough")
        with pytest.raises(ApiError) as twice:
            admin.reject(str(again["issuerPid"]), "again")
        assert twice.value.status == 409
        assert twice.value.body.type == "AuthorityError"

        assert admin.revoke(issued.id).revoked is True
        decisions = [e.decision for e in admin.audit(subject=bank).items]
        assert Decision.CREDENTIAL_REVOKED.value in decisions
        assert admin.audit(decision=Decision.REQUEST_REJECTED).items[0].subject == bank


def test_a_wrong_operator_key_and_an_unknown_request_are_typed_refusals(closed: Space) -> None:
    with (
        AdminClient(closed.authority_url, "not-the-operator-key") as stranger,
        pytest.raises(ApiError) as refused,
    ):
        stranger.requests()
    assert (refused.value.status, refused.value.reason) == (401, "not_operator")
    with AdminClient(closed.authority_url, ADMIN_KEY) as admin, pytest.raises(ApiError) as unknown:
        admin.reject("urn:uuid:nothing", "no")
    assert unknown.value.status == 404
