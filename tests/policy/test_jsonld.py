from __future__ import annotations

import json
from typing import Any

import pytest

from policy.errors import PolicyError
from policy.jsonld import (
    MAX_CONSTRAINTS,
    MAX_DEPTH,
    MAX_NESTING,
    read_policy,
    read_policy_text,
    write_policy,
)
from policy.lint import lint
from policy.model import Atomic, ConflictStrategy, Logical, PolicyType, RuleKind
from tests.dsp_schemas import errors, example
from tests.policy.policies import FIRM_LIST, NOW, atom, offer

PREFIXED: dict[str, Any] = {
    "@id": "urn:uuid:offer-1",
    "@type": "odrl:Offer",
    "odrl:permission": {
        "odrl:action": {"@id": "odrl:use"},
        "odrl:constraint": [
            {
                "odrl:leftOperand": {"@id": "kexin:role"},
                "odrl:operator": {"@id": "odrl:hasPart"},
                "odrl:rightOperand": "FinancialInstitution",
            },
            {
                "odrl:leftOperand": {"@id": "odrl:purpose"},
                "odrl:operator": {"@id": "http://www.w3.org/ns/odrl/2/isA"},
                "odrl:rightOperand": {"@value": "credit-assessment"},
            },
            {
                "odrl:leftOperand": "odrl:elapsedTime",
                "odrl:operator": "odrl:lteq",
                "odrl:rightOperand": {"@value": "P30D", "@type": "xsd:duration"},
            },
            {
                "odrl:leftOperand": "odrl:count",
                "odrl:operator": "odrl:lteq",
                "odrl:rightOperand": {"@value": 3, "@type": "xsd:integer"},
            },
        ],
        "odrl:duty": {
            "odrl:action": "odrl:delete",
            "odrl:constraint": {
                "odrl:leftOperand": "odrl:elapsedTime",
                "odrl:operator": "odrl:lteq",
                "odrl:rightOperand": "P31D",
            },
        },
    },
}


def test_compact_form_is_read_into_typed_rules() -> None:
    policy = read_policy(FIRM_LIST)
    assert policy.type is PolicyType.OFFER
    (permission,) = policy.permissions
    assert permission.kind is RuleKind.PERMISSION
    assert [c.text for c in permission.constraints] == [
        "kexin:role hasPart FinancialInstitution",
        "purpose isA credit-assessment",
        "elapsedTime lteq P30D",
        "count lteq 3",
    ]
    (duty,) = permission.duties
    assert duty.action == "delete"
    assert duty.path == "permission[0].duty[0]"


def test_prefixed_form_reads_to_the_same_policy() -> None:
    assert read_policy(PREFIXED) == read_policy(FIRM_LIST)


def test_written_form_reads_back_to_the_same_policy() -> None:
    policy = read_policy(FIRM_LIST)
    assert read_policy(write_policy(policy)) == policy


def test_written_offer_validates_against_the_dsp_schema() -> None:
    written = write_policy(read_policy(FIRM_LIST))
    assert written["permission"][0]["constraint"][3]["rightOperand"] == "3"
    assert errors("negotiation/contract-schema.json#/definitions/Offer", written) == []


def test_written_agreement_validates_against_the_dsp_schema() -> None:
    agreement = {
        **FIRM_LIST,
        "@type": "Agreement",
        "target": "urn:uuid:dataset",
        "assigner": "did:web:bureau",
        "assignee": "did:web:bank",
        "timestamp": "2026-11-24T09:00:00Z",
    }
    written = write_policy(read_policy(agreement))
    assert errors("negotiation/contract-schema.json#/definitions/Agreement", written) == []


def test_logical_constraints_of_the_spec_example_are_read() -> None:
    agreement = example("negotiation/contract-agreement-message-full.json")["agreement"]
    # The example's operands ("partner") are not ones we know: refused with the path.
    with pytest.raises(PolicyError) as raised:
        read_policy(agreement)
    assert any(
        i.path == "permission[1].constraint[0].and[0].leftOperand" for i in raised.value.issues
    )
    # The same shapes with operands we know are read.
    text = json.dumps(agreement).replace('"partner"', '"recipient"')
    text = text.replace('"constraint1"', '"recipient"').replace('"constraint2"', '"recipient"')
    policy = read_policy(json.loads(text))
    logical = policy.permissions[6].constraints[0]
    assert isinstance(logical, Logical)
    assert logical.operator == "or"
    assert isinstance(logical.constraints[0], Logical)
    assert {p.constraints[0].operator for p in policy.permissions[1:3]} == {"and", "or"}


def test_conflict_strategy_is_read_and_written() -> None:
    policy = read_policy(offer({"action": "use"}, conflict="perm"))
    assert policy.conflict is ConflictStrategy.PERM
    assert write_policy(policy)["conflict"] == "perm"


def test_list_operators_take_lists() -> None:
    policy = read_policy(
        offer({"action": "use", "constraint": [atom("spatial", "isAnyOf", ["440100", "310000"])]})
    )
    constraint = policy.permissions[0].constraints[0]
    assert isinstance(constraint, Atomic)
    assert constraint.right == ("440100", "310000")


def issues_of(document: object) -> list[str]:
    with pytest.raises(PolicyError) as raised:
        read_policy(document)
    return [str(issue) for issue in raised.value.issues]


@pytest.mark.parametrize(
    ("document", "expected"),
    [
        pytest.param([], "a policy must be a JSON object", id="not-an-object"),
        pytest.param({"@type": "Offer"}, "a policy needs at least one", id="empty-rule-set"),
        pytest.param({"@type": "Offer", "permission": []}, "a policy needs at least one", id="empty-list"),
        pytest.param({"@type": "Contract", "permission": [{"action": "use"}]}, "@type: expected Set, Offer", id="bad-type"),
        pytest.param(offer({"constraint": []}), "permission[0]: missing action", id="no-action"),
        pytest.param(offer({"action": "fly"}), "permission[0].action: unknown action 'fly'", id="unknown-action"),
        pytest.param(offer({"action": 5}), "permission[0].action: expected a name", id="action-not-a-name"),
        pytest.param(offer({"action": "use", "constraint": [atom("weather", "eq", "sunny")]}), "permission[0].constraint[0].leftOperand: unknown left operand 'weather'", id="unknown-operand"),
        pytest.param(offer({"action": "use", "constraint": [atom("count", "about", "3")]}), "permission[0].constraint[0].operator: unknown operator 'about'", id="unknown-operator"),
        pytest.param(offer({"action": "use", "constraint": [atom("dateTime", "lt", 5)]}), "permission[0].constraint[0].rightOperand: expected an ISO 8601 date-time", id="date-compared-to-number"),
        pytest.param(offer({"action": "use", "constraint": [atom("count", "lteq", "three")]}), "permission[0].constraint[0].rightOperand: expected a whole number", id="count-not-a-number"),
        pytest.param(offer({"action": "use", "constraint": [atom("purpose", "lt", "research")]}), "permission[0].constraint[0].operator: purpose is a term of the purpose taxonomy: use", id="operator-wrong-for-type"),
        pytest.param(offer({"action": "use", "constraint": [{"leftOperand": "count", "operator": "lt"}]}), "permission[0].constraint[0]: missing rightOperand", id="missing-right-operand"),
        pytest.param(offer({"action": "use", "constraint": [{"and": []}]}), "permission[0].constraint[0].and: and needs at least one constraint", id="empty-and"),
        pytest.param(offer({"action": "use", "constraint": [{"xone": {"@list": []}}]}), "permission[0].constraint[0].xone: xone needs at least one constraint", id="empty-xone"),
        pytest.param(offer({"action": "use", "constraint": [{"and": [], "or": []}]}), "permission[0].constraint[0]: a logical constraint has exactly one operator", id="two-logical-operators"),
        pytest.param(offer({"action": "use", "constraint": ["count lt 3"]}), "permission[0].constraint[0]: a constraint must be an object", id="constraint-not-object"),
        pytest.param(offer({"action": "use", "constraint": [atom("count", "lt", {"x": 1})]}), "permission[0].constraint[0].rightOperand: an object right operand must be", id="object-right-operand"),
        pytest.param(offer({"action": "use", "constraint": [atom("count", "eq", ["1", "2"])]}), "permission[0].constraint[0].rightOperand: eq compares with one value", id="list-for-eq"),
        pytest.param(offer({"action": "use", "refinement": []}), "permission[0].refinement: refinement is not supported", id="unsupported-feature"),
        pytest.param(offer({"action": {"rdf:value": "use", "refinement": []}}), "permission[0].action.refinement: action refinements", id="action-refinement"),
        pytest.param({"@type": "Offer", "prohibition": [{"action": "use", "duty": [{"action": "delete"}]}]}, "prohibition[0].duty: only a permission carries duties", id="duty-on-prohibition"),
        pytest.param(offer({"action": "use"}, conflict="maybe"), "conflict: expected perm, prohibit or invalid", id="bad-conflict"),
    ],
)  # fmt: skip
def test_bad_input_is_a_typed_error_naming_the_path(document: object, expected: str) -> None:
    found = issues_of(document)
    assert any(issue.startswith(expected) for issue in found), found


def test_every_issue_is_reported_not_only_the_first() -> None:
    found = issues_of(
        offer(
            {"action": "use", "constraint": [atom("weather", "eq", "x")]},
            {"action": "fly"},
        )
    )
    assert len(found) == 2


def nested(depth: int) -> dict[str, Any]:
    constraint: dict[str, Any] = atom("count", "lt", "3")
    for _ in range(depth):
        constraint = {"and": [constraint, atom("count", "gt", "0")]}
    return constraint


def test_nesting_is_bounded() -> None:
    read_policy(offer({"action": "use", "constraint": [nested(MAX_DEPTH)]}))
    found = issues_of(offer({"action": "use", "constraint": [nested(MAX_DEPTH + 1)]}))
    assert any(f"nest at most {MAX_DEPTH} deep" in issue for issue in found)


def wrapped(depth: int, leaf: object) -> object:
    """``leaf`` inside ``depth`` lists."""
    value = leaf
    for _ in range(depth):
        value = [value]
    return value


DEEP = 900
"""Deeper than Python's recursion limit allows a recursive reader to go."""


@pytest.mark.parametrize(
    "document",
    [
        pytest.param(offer({"action": "use", "constraint": [atom("count", "lteq", wrapped(DEEP, "3"))]}), id="right-operand"),
        pytest.param(offer({"action": "use", "constraint": [atom("spatial", "isAnyOf", wrapped(DEEP, "440100"))]}), id="list-operator"),
        pytest.param(offer({"action": "use", "constraint": [{"leftOperand": wrapped(DEEP, "count"), "operator": "lteq", "rightOperand": "3"}]}), id="left-operand"),
        pytest.param(offer({"action": wrapped(DEEP, "use")}), id="action"),
        pytest.param(offer({"action": "use", "target": wrapped(DEEP, "urn:x")}), id="target"),
        pytest.param(offer({"action": "use"}, **{"dct:description": wrapped(DEEP, "x")}), id="unknown-key"),
        pytest.param(wrapped(DEEP, {}), id="whole-document"),
    ],
)  # fmt: skip
def test_documents_nested_too_deep_are_refused_not_a_recursion_error(document: object) -> None:
    found = issues_of(document)
    assert any(f"nested more than {MAX_NESTING} deep" in issue for issue in found), found
    (finding,) = lint(document, NOW)
    assert finding.code == "invalid"


def test_nesting_up_to_the_limit_is_read() -> None:
    # The policy object is level 1, so MAX_NESTING - 1 lists inside it reach the limit.
    read_policy(offer({"action": "use"}, **{"dct:description": wrapped(MAX_NESTING - 1, "x")}))
    found = issues_of(offer({"action": "use"}, **{"dct:description": wrapped(MAX_NESTING, "x")}))
    assert found == [
        f"dct:description{'[0]' * (MAX_NESTING - 1)}: a policy document is nested "
        f"more than {MAX_NESTING} deep"
    ]


def test_keys_that_are_not_strings_are_refused() -> None:
    document: dict[object, object] = {7: "x"}
    document.update(offer({"action": "use"}))
    found = issues_of(document)
    assert found == ["7: keys of a policy document are strings (it is JSON)"]


def test_the_number_of_constraints_is_bounded() -> None:
    many = [atom("count", "lt", "3")] * (MAX_CONSTRAINTS + 5)
    found = issues_of(offer({"action": "use", "constraint": many}))
    assert found == [
        f"permission[0].constraint[{MAX_CONSTRAINTS}]: more than {MAX_CONSTRAINTS} constraints "
        "in one policy"
    ]


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("{", id="truncated"),
        pytest.param("[" * 100_000 + "]" * 100_000, id="deep-json"),
        pytest.param(b"\xff\xfe", id="not-utf8"),
        pytest.param(" " * (2 << 20), id="too-large"),
    ],
)
def test_malformed_text_is_a_typed_error(text: str | bytes) -> None:
    with pytest.raises(PolicyError):
        read_policy_text(text)


BANKS = "urn:group:licensed-banks"


@pytest.mark.parametrize(
    ("where", "party", "expected"),
    [
        pytest.param("assignee", {"@id": BANKS, "@type": "PartyCollection"}, "assignee.@type: PartyCollection is not supported", id="party-collection"),
        pytest.param("assignee", {"@id": BANKS, "@type": "odrl:PartyCollection"}, "assignee.@type: PartyCollection is not supported", id="prefixed-party-collection"),
        pytest.param("assignee", {"@id": BANKS, "@type": ["vcard:Group", "http://www.w3.org/ns/odrl/2/PartyCollection"]}, "assignee.@type: PartyCollection is not supported", id="one-of-its-types"),
        pytest.param("assignee", {"@id": BANKS, "source": "urn:registry:banks"}, "assignee.source: source is not supported", id="party-source"),
        pytest.param("assignee", {"@id": BANKS, "odrl:refinement": [atom("spatial", "eq", "440100")]}, "assignee.refinement: refinement is not supported", id="party-refinement"),
        pytest.param("target", {"@id": "urn:set:firm-lists", "@type": "AssetCollection"}, "target.@type: AssetCollection is not supported", id="asset-collection"),
        pytest.param("target", {"@id": "urn:set:firm-lists", "source": "urn:catalog:1"}, "target.source: source is not supported", id="asset-source"),
        pytest.param("target", {"@id": "urn:set:firm-lists", "refinement": []}, "target.refinement: refinement is not supported", id="asset-refinement"),
        pytest.param("informedParty", {"@id": BANKS, "@type": "PartyCollection"}, "informedParty.@type: PartyCollection is not supported", id="informed-collection"),
    ],
)  # fmt: skip
def test_collections_of_parties_and_assets_are_refused_not_reduced_to_their_id(
    where: str, party: dict[str, Any], expected: str
) -> None:
    rule = {"action": "use", where: party}
    prohibited = {"@type": "Offer", "permission": [{"action": "use"}], "prohibition": [rule]}
    documents = [(prohibited, "prohibition[0].")]
    if where != "informedParty":  # read in rules only
        documents.append((offer({"action": "use"}, **{where: party}), ""))
    for document, path in documents:
        found = issues_of(document)
        assert any(issue.startswith(path + expected) for issue in found), found
        assert any(f.code == "invalid" and f"{path}{where}" in f.path for f in lint(document, NOW))


def test_a_party_described_by_other_vocabularies_is_one_party() -> None:
    party = {"@id": BANKS, "@type": ["Party", "vcard:Organization"], "vcard:fn": "A bank"}
    policy = read_policy(offer({"action": "use", "assignee": party}))
    assert policy.permissions[0].assignee == BANKS


@pytest.mark.parametrize("name", ["write", "odrl:write", "http://www.w3.org/ns/odrl/2/write"])
def test_write_is_read_as_modify(name: str) -> None:
    # ODRL 2.2: odrl:write "owl:deprecated true; owl:equivalentProperty :modify".
    policy = read_policy(offer({"action": {"@id": name}}))
    assert policy == read_policy(offer({"action": "modify"}))
    assert write_policy(policy)["permission"][0]["action"] == "modify"


@pytest.mark.parametrize("operator", ["and", "or", "xone", "andSequence"])
def test_a_logical_constraint_of_one_member_is_read(operator: str) -> None:
    # Catena-X's samples wrap their one constraint in "and" (as an object, not a list).
    document = offer({"action": "use", "constraint": {operator: [atom("count", "lteq", "3")]}})
    (logical,) = read_policy(document).permissions[0].constraints
    assert isinstance(logical, Logical)
    assert logical.operator == operator
    assert [c.text for c in logical.constraints] == ["count lteq 3"]
    assert write_policy(read_policy(document))["permission"][0]["constraint"] == [
        {operator: [{"leftOperand": "count", "operator": "lteq", "rightOperand": "3"}]}
    ]


def test_a_document_that_contains_itself_is_refused() -> None:
    document = offer({"action": "use"})
    document["permission"][0]["dct:source"] = document
    found = issues_of(document)
    assert len(found) == 1
    assert f"nested more than {MAX_NESTING} deep" in found[0]


@pytest.mark.parametrize(
    "right",
    [
        pytest.param(None, id="null"),
        pytest.param([None], id="null-in-a-list"),
        pytest.param({"@value": None}, id="null-value-object"),
        pytest.param({"@id": None}, id="null-id"),
        pytest.param({"@list": [None]}, id="null-in-a-list-object"),
    ],
)
def test_a_null_right_operand_is_refused_not_its_rule_dropped(right: object) -> None:
    # Dropped without an issue, the prohibition would vanish and the permission grant.
    document = {
        "@type": "Offer",
        "permission": [{"action": "use"}],
        "prohibition": [{"action": "use", "constraint": [atom("count", "lteq", right)]}],
    }
    found = issues_of(document)
    assert any(i.startswith("prohibition[0].constraint[0].rightOperand") for i in found), found
