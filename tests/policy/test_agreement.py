from __future__ import annotations

import copy
from typing import Any

from policy.agreement import (
    agreement_differences,
    canonical,
    canonical_terms,
    policy_hash,
    terms_hash,
)
from policy.jsonld import read_policy
from tests.policy.policies import BANK, FIRM_LIST, atom, offer
from tests.policy.test_jsonld import PREFIXED


def agreement_of(document: dict[str, Any], **changes: Any) -> dict[str, Any]:
    return {
        **document,
        "@id": "urn:uuid:agreement-9",
        "@type": "Agreement",
        "target": "urn:uuid:firm-list",
        "assigner": "did:web:bureau",
        "assignee": BANK,
        "timestamp": "2026-11-24T09:00:00Z",
        **changes,
    }


def test_the_same_policy_written_two_ways_has_one_canonical_form() -> None:
    assert canonical(read_policy(FIRM_LIST)) == canonical(read_policy(PREFIXED))
    assert policy_hash(read_policy(FIRM_LIST)).startswith("sha256:")
    assert len(policy_hash(read_policy(FIRM_LIST))) == len("sha256:") + 64


def test_order_of_rules_and_constraints_does_not_matter() -> None:
    reordered = copy.deepcopy(FIRM_LIST)
    reordered["permission"][0]["constraint"].reverse()
    assert terms_hash(read_policy(reordered)) == terms_hash(read_policy(FIRM_LIST))
    two = offer({"action": "read"}, {"action": "display"})
    assert canonical(read_policy(two)) == canonical(
        read_policy(offer({"action": "display"}, {"action": "read"}))
    )


def test_and_sequence_keeps_its_order() -> None:
    first, second = atom("count", "lteq", "3"), atom("purpose", "eq", "research")
    one = offer({"action": "use", "constraint": [{"andSequence": [first, second]}]})
    other = offer({"action": "use", "constraint": [{"andSequence": [second, first]}]})
    assert terms_hash(read_policy(one)) != terms_hash(read_policy(other))


def test_equal_instants_in_other_zones_are_equal() -> None:
    utc = offer({"action": "use", "constraint": [atom("dateTime", "lt", "2026-12-31T16:00:00Z")]})
    beijing = offer({"action": "use", "constraint": [atom("dateTime", "lt", "2027-01-01T00:00:00+08:00")]})  # fmt: skip
    assert canonical_terms(read_policy(utc)) == canonical_terms(read_policy(beijing))


def test_an_agreement_with_the_offers_terms_matches() -> None:
    assert agreement_differences(read_policy(FIRM_LIST), read_policy(agreement_of(FIRM_LIST))) == []


def test_a_changed_constraint_is_a_difference() -> None:
    changed = copy.deepcopy(FIRM_LIST)
    changed["permission"][0]["constraint"][3]["rightOperand"] = "30"
    assert agreement_differences(read_policy(FIRM_LIST), read_policy(agreement_of(changed))) == [
        "permission differs from the offer"
    ]


def test_a_dropped_duty_or_added_prohibition_is_a_difference() -> None:
    dropped = copy.deepcopy(FIRM_LIST)
    del dropped["permission"][0]["duty"]
    assert agreement_differences(read_policy(FIRM_LIST), read_policy(agreement_of(dropped)))
    added = agreement_of(FIRM_LIST, prohibition=[{"action": "distribute"}])
    assert agreement_differences(read_policy(FIRM_LIST), read_policy(added)) == [
        "prohibition differs from the offer"
    ]


def test_the_assigner_may_be_added_but_not_changed() -> None:
    with_assigner = {**FIRM_LIST, "assigner": "did:web:bureau"}
    assert agreement_differences(read_policy(with_assigner), read_policy(agreement_of(FIRM_LIST))) == []  # fmt: skip
    other = agreement_of(FIRM_LIST, assigner="did:web:impostor")
    assert agreement_differences(read_policy(with_assigner), read_policy(other)) == [
        "assigner did:web:impostor is not the offer's did:web:bureau"
    ]


def test_a_changed_conflict_strategy_is_a_difference() -> None:
    changed = agreement_of(FIRM_LIST, conflict="perm")
    assert agreement_differences(read_policy(FIRM_LIST), read_policy(changed)) == [
        "conflict differs from the offer"
    ]


def test_an_agreement_may_say_modify_for_an_offer_of_write() -> None:
    offered = read_policy(offer({"action": "write"}))
    agreed = read_policy(agreement_of(offer({"action": "modify"})))
    assert terms_hash(offered) == terms_hash(agreed)
    assert agreement_differences(offered, agreed) == []
