from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from identity.statements import sign_statement, verify_statement
from policy.duties import (
    DutyError,
    DutyState,
    Obligation,
    SignedStatement,
    check_deadline,
    deadline_of,
    fulfil,
    obligations_for,
    violated,
)
from policy.jsonld import read_policy
from tests.policy.policies import BANK, FIRM_LIST, NOW, atom, offer

BANK_KEY = Ed25519PrivateKey.generate()
OTHER_KEY = Ed25519PrivateKey.generate()
KEYS = {f"{BANK}#key-1": BANK_KEY.public_key(), "did:web:other#key-1": OTHER_KEY.public_key()}


def verify(evidence: str) -> SignedStatement:
    return verify_statement(evidence, KEYS.__getitem__)


def deletion() -> Obligation:
    duties = read_policy(FIRM_LIST).permissions[0].duties
    (obligation,) = obligations_for(duties, "urn:agreement:1", BANK, agreed_at=NOW)
    return obligation


def receipt(of: Obligation, **changes: object) -> str:
    claims: dict[str, object] = {
        "obligation": of.id,
        "action": of.action,
        "performedAt": (NOW + timedelta(days=2)).isoformat(),
        **changes,
    }
    return sign_statement(claims, BANK, BANK_KEY, f"{BANK}#key-1")


def test_a_duty_becomes_a_pending_obligation_with_a_deadline() -> None:
    obligation = deletion()
    assert obligation.id == "urn:agreement:1#permission[0].duty[0]"
    assert obligation.party == BANK
    assert obligation.deadline == NOW + timedelta(days=31)
    assert obligation.state is DutyState.PENDING


def test_the_earliest_deadline_wins() -> None:
    document = offer(
        {
            "action": "use",
            "duty": [
                {
                    "action": "delete",
                    "constraint": [
                        atom("elapsedTime", "lteq", "P30D"),
                        atom("dateTime", "lt", "2026-12-01T00:00:00Z"),
                    ],
                }
            ],
        }
    )
    (duty,) = read_policy(document).permissions[0].duties
    assert deadline_of(duty, NOW).isoformat() == "2026-12-01T00:00:00+00:00"  # type: ignore[union-attr]


def test_signed_evidence_from_the_obliged_party_fulfils() -> None:
    obligation = deletion()
    done = fulfil(obligation, receipt(obligation), verify, now=NOW + timedelta(days=2))
    assert done.state is DutyState.FULFILLED
    assert done.evidence is not None
    assert done.settled_at == NOW + timedelta(days=2)


def test_past_the_deadline_the_obligation_is_violated_and_evidence_comes_too_late() -> None:
    obligation = deletion()
    late = NOW + timedelta(days=31, seconds=1)
    assert check_deadline(obligation, late).state is DutyState.VIOLATED
    assert check_deadline(obligation, NOW + timedelta(days=31)).state is DutyState.PENDING
    assert violated((obligation,), late) == (obligation.id,)
    with pytest.raises(DutyError, match="already violated"):
        fulfil(obligation, receipt(obligation), verify, now=late)


def test_evidence_signed_by_another_party_is_refused() -> None:
    obligation = deletion()
    forged = sign_statement(
        {"obligation": obligation.id, "action": "delete", "performedAt": NOW.isoformat()},
        "did:web:other",
        OTHER_KEY,
        "did:web:other#key-1",
    )
    with pytest.raises(DutyError, match="signed by did:web:other"):
        fulfil(obligation, forged, verify, now=NOW + timedelta(days=1))


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        pytest.param({"obligation": "urn:agreement:2#permission[0].duty[0]"}, "another obligation", id="other-obligation"),
        pytest.param({"action": "anonymize"}, "not about delete", id="other-action"),
        pytest.param({"performedAt": (NOW + timedelta(days=9)).isoformat()}, "not in the future", id="future"),
        pytest.param({"performedAt": "yesterday"}, "performedAt", id="not-a-date"),
    ],
)  # fmt: skip
def test_evidence_about_something_else_is_refused(changes: dict[str, object], message: str) -> None:
    obligation = deletion()
    with pytest.raises(DutyError, match=message):
        fulfil(obligation, receipt(obligation, **changes), verify, now=NOW + timedelta(days=2))


def test_tampered_evidence_is_refused() -> None:
    obligation = deletion()
    header, payload, signature = receipt(obligation).split(".")
    tampered = f"{header}.{payload[:-2]}{'AA' if payload[-2:] != 'AA' else 'BB'}.{signature}"
    with pytest.raises(DutyError, match="evidence not accepted"):
        fulfil(obligation, tampered, verify, now=NOW + timedelta(days=2))


def test_a_fulfilled_obligation_is_final() -> None:
    obligation = deletion()
    done = fulfil(obligation, receipt(obligation), verify, now=NOW + timedelta(days=2))
    with pytest.raises(DutyError, match="already fulfilled"):
        fulfil(done, receipt(obligation), verify, now=NOW + timedelta(days=3))
    assert check_deadline(done, NOW + timedelta(days=90)).state is DutyState.FULFILLED


def test_recurring_duties_are_met_on_each_use_not_once() -> None:
    (duty,) = read_policy(offer({"action": "use", "duty": [{"action": "kexin:log"}]})).permissions[0].duties  # fmt: skip
    (obligation,) = obligations_for((duty,), "urn:agreement:1", BANK, NOW)
    assert obligation.recurring
    assert check_deadline(obligation, NOW + timedelta(days=999)).state is DutyState.PENDING
    with pytest.raises(DutyError, match="every use"):
        fulfil(obligation, receipt(obligation), verify, now=NOW)


def test_an_assignee_on_the_duty_names_who_must_act() -> None:
    duty = replace(read_policy(FIRM_LIST).permissions[0].duties[0], assignee="did:web:processor")
    (obligation,) = obligations_for((duty,), "urn:agreement:1", BANK, NOW)
    assert obligation.party == "did:web:processor"
