"""Whatever JSON arrives, reading and linting a policy raise nothing but PolicyError, and a
policy that reads can be evaluated in every scope without an exception.

The guard of issue 13 (below) mutates valid policies (deep nesting, huge numbers, NaN and
infinities, durations and date-times at and past the limits, odd types, unknown keys, long
strings, empty lists, collections, deprecated actions) and sends each through every entry point:
reading, lint, evaluation in every scope and at the calendar's ends, the duty clock, writing,
and the agreement hashes. What reads must also write back to the same policy and hashes. The
guard is derandomized (the same examples on every run) and cannot pass vacuously: a fair share
of the mutated policies must read and a fair share must be refused.
"""

from __future__ import annotations

import copy
import json
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from policy.agreement import agreement_differences, canonical, policy_hash, terms_hash
from policy.duties import obligations_for, violated
from policy.errors import PolicyError
from policy.evaluate import evaluate
from policy.jsonld import read_policy, write_policy
from policy.lint import lint
from policy.operands import Context, Scope
from tests.mutation import mutate
from tests.policy.policies import BANK, BUREAU, FIRM_LIST, NOW, atom, bank_context, offer
from tests.policy.test_jsonld import PREFIXED

KEYS = st.sampled_from(
    [
        "@type", "@id", "permission", "prohibition", "obligation", "action", "constraint",
        "duty", "leftOperand", "operator", "rightOperand", "and", "or", "xone", "andSequence",
        "target", "assignee", "conflict", "@value", "@id", "@list", "odrl:permission",
        "odrl:action", "informedParty", "profile",
    ]
)  # fmt: skip
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=True),
    st.text(max_size=20),
    st.sampled_from(
        ["use", "read", "Offer", "Set", "count", "dateTime", "lteq", "isA", "P30D", "440106",
         "2026-01-01T00:00:00Z", "purpose", "kexin:role", "isAnyOf", "perm", "delete"]
    ),
)  # fmt: skip
JSON = st.recursive(
    SCALARS,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(KEYS, children, max_size=5),
    max_leaves=30,
)


def read_and_lint(document: object) -> None:
    try:
        policy = read_policy(document)
    except PolicyError:
        policy = None
    lint(document, NOW)
    if policy is not None:
        for scope in Scope:
            evaluate(policy, bank_context(), scope, "read")


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(JSON)
def test_arbitrary_json_gives_policy_errors_only(document: Any) -> None:
    read_and_lint(document)


@settings(max_examples=400, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=20), max_size=7), JSON)
def test_mutated_valid_policies_give_policy_errors_only(path: list[int], value: Any) -> None:
    read_and_lint(mutate(copy.deepcopy(FIRM_LIST), path, value))


# --- the lasting guard of issue 13: mutated policies through every entry point --------------

RICH: dict[str, Any] = {
    "@id": "urn:uuid:rich",
    "@type": "Agreement",
    "target": "urn:uuid:firm-list",
    "assigner": BUREAU,
    "assignee": BANK,
    "timestamp": "2026-11-24T09:00:00Z",
    "conflict": "prohibit",
    "permission": [
        *FIRM_LIST["permission"],
        {
            "action": {"@id": "odrl:read"},
            "constraint": {
                "or": [
                    {"and": [atom("dateTime", "lt", "2027-01-01T00:00:00+08:00")]},
                    {"xone": [atom("spatial", "isAnyOf", ["440100", "310000"]),
                              atom("kexin:dataGrade", "gteq", {"@value": "important"})]},
                    {"andSequence": [atom("recipient", "isNoneOf", "did:web:x,did:web:y"),
                                     atom("count", "lt", {"@value": 5, "@type": "xsd:integer"})]},
                ]
            },
            "duty": [{"action": "inform", "informedParty": {"@id": BUREAU}},
                     {"action": "compensate", "compensatedParty": BUREAU,
                      "constraint": [atom("dateTime", "lteq", "2027-06-30T00:00:00Z")]}],
        },
    ],
    "prohibition": [{"action": "distribute", "assignee": {"@id": BANK, "@type": "Party"}}],
    "obligation": [{"action": "kexin:log"}],
}  # fmt: skip
BASES = [FIRM_LIST, RICH, PREFIXED]


def nested(depth: int, leaf: object) -> object:
    for _ in range(depth):
        leaf = [leaf]
    return leaf


ODD = st.one_of(
    st.builds(nested, st.integers(1, 1000), SCALARS),
    st.builds(lambda depth, leaf: nested(depth, {"@list": leaf}), st.integers(1, 40), SCALARS),
    st.integers(min_value=-(10**400), max_value=10**400),
    st.sampled_from([10**18 - 1, 10**18, -(10**18), 2**63, 2**64, 1e18, 1e308, -1e308, 1e-308]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.builds(
        lambda prefix, digits, unit: f"{prefix}{digits}{unit}",
        st.sampled_from(["P", "PT", "P1DT"]),
        st.one_of(st.integers(0, 10**30), st.integers(1, 3).map(lambda n: "9" * 400 * n)),
        st.sampled_from(["D", "W", "H", "M", "S", ".5S", "Y"]),
    ),
    st.sampled_from(
        ["9999-12-31T23:59:59-14:00", "0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59.999999Z",
         "0001-01-01T00:00:00Z", "2026-02-30T00:00:00Z", "2026-11-24T09:00:00", "24:00:00Z",
         "P3650000D", "P3650001D", "PT315360000000S", "-P1D", "P0D"]
    ),
    st.integers(2040, 2060).map(lambda n: "9" * n),
    st.integers(1, 3).map(lambda n: "x" * 1024 * n),
    st.sampled_from([[], {}, [[]], [{}], {"@value": None}, {"@id": []}, {"@list": {}}, "", " "]).map(
        copy.deepcopy  # a fresh object each time: edits must not change the strategy's own
    ),
    st.sampled_from(
        [{"@id": "urn:g", "@type": "PartyCollection"}, {"@id": "urn:a", "@type": "AssetCollection"},
         {"@id": "urn:g", "source": "urn:s"}, {"@id": "urn:g", "refinement": []},
         {"@type": ["Party", "vcard:Organization"], "@id": BANK, "vcard:fn": "bank"}]
    ).map(copy.deepcopy),
    st.sampled_from(["write", "writeTo", "copy", "export", "odrl:write", {"@id": "odrl:modify"}]).map(
        copy.deepcopy
    ),
    st.dictionaries(st.text(max_size=12), SCALARS, max_size=3),
    JSON,
)  # fmt: skip


def edit(document: Any, path: list[int], change: Callable[[Any], Any]) -> Any:
    """Replace the node reached by following ``path`` (indices into keys or items, as in
    tests.mutation.mutate) with ``change(node)``."""
    if not path or not isinstance(document, dict | list) or not document:
        return change(document)
    keys = list(document) if isinstance(document, dict) else list(range(len(document)))
    key = keys[path[0] % len(keys)]
    document[key] = edit(document[key], path[1:], change)
    return document


def with_key(key: str, value: object) -> Callable[[Any], Any]:
    def change(node: Any) -> Any:
        if isinstance(node, dict):
            return {**node, key: value}
        return [*node, value] if isinstance(node, list) else value

    return change


CHANGES = st.one_of(
    ODD.map(lambda value: lambda _node: value),
    st.builds(with_key, st.one_of(KEYS, st.text(max_size=12)), ODD),
    st.integers(1, 1000).map(lambda depth: lambda node: nested(depth, node)),
    st.just(lambda node: node[:0] if isinstance(node, list) else node),
    st.just(lambda node: {} if isinstance(node, dict) else node),
)
PATHS = st.lists(st.integers(min_value=0, max_value=20), max_size=8)

EDGE = datetime.max.replace(tzinfo=UTC)
CONTEXTS = [
    bank_context(),
    Context(now=NOW),
    bank_context(now=EDGE, agreement_start=datetime.min.replace(tzinfo=UTC), uses_so_far=10**18),
    bank_context(now=datetime.min.replace(tzinfo=UTC), agreement_start=EDGE, recipient=None),
]


def everything(document: object) -> bool:
    """Every entry point of the library on one document; only PolicyError may come out.
    Whether the document read as a policy."""
    lint(document, NOW)
    try:
        policy = read_policy(document)
    except PolicyError:
        return False
    assert lint(policy, NOW) == lint(document, NOW)
    lint(policy, EDGE)
    for context in CONTEXTS:
        for scope in Scope:
            for action in ("use", "read", "write", "transfer"):
                evaluate(policy, context, scope, action)
    for agreed_at in (NOW, EDGE):
        for rule in policy.rules:
            duties = obligations_for((*rule.duties, rule), "urn:agreement:1", BANK, agreed_at)
            violated(duties, EDGE)
    written = write_policy(policy, context=True)
    again = read_policy(json.loads(json.dumps(written)))
    assert again == policy
    assert canonical(again) == canonical(policy)
    assert (policy_hash(again), terms_hash(again)) == (policy_hash(policy), terms_hash(policy))
    assert agreement_differences(policy, again) == []
    return True


GUARD = settings(
    max_examples=500,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def assert_fair_shares(read: Counter[bool], *, least_read: float, least_refused: float) -> None:
    """Neither side of the guard is empty: enough documents read (and went through evaluation,
    duties, writing and the hashes) and enough were refused."""
    total = read.total()
    assert total >= 400, read
    assert read[True] >= least_read * total, read
    assert read[False] >= least_refused * total, read


def test_mutated_policies_raise_nothing_but_policy_errors_anywhere() -> None:
    read: Counter[bool] = Counter()

    @GUARD
    @given(st.sampled_from(BASES), st.lists(st.tuples(PATHS, CHANGES), min_size=1, max_size=3))
    def mutated(base: dict[str, Any], edits: list[tuple[list[int], Callable[[Any], Any]]]) -> None:
        document = copy.deepcopy(base)
        for path, change in edits:
            document = edit(document, path, change)
        read[everything(document)] += 1

    mutated()
    assert_fair_shares(read, least_read=0.15, least_refused=0.5)


def in_atom(left: str, operator: str) -> Callable[[object], Any]:
    return lambda value: offer({"action": "use", "constraint": [atom(left, operator, value)]})


SLOTS: list[Callable[[object], Any]] = [
    lambda value: value,
    lambda value: offer({"action": "use", "constraint": value}),
    lambda value: offer({"action": value}),
    lambda value: offer({"action": "use", "assignee": value}, target=value),
    lambda value: {
        "@type": "Offer",
        "permission": [{"action": "use"}],
        "prohibition": [{"action": "use", "assignee": value}],
    },
    lambda value: offer(
        {
            "action": "use",
            "duty": [{"action": "delete", "constraint": [atom("elapsedTime", "lteq", value)]}],
        }
    ),
    in_atom("count", "lteq"),
    in_atom("elapsedTime", "lt"),
    in_atom("dateTime", "gteq"),
    in_atom("spatial", "isAnyOf"),
    in_atom("kexin:role", "isAllOf"),
    lambda value: offer({"action": "use", "constraint": [{"and": [atom("count", "eq", value)]}]}),
    lambda value: offer({"action": "use"}, timestamp=value, conflict=value, profile=value),
]


def test_odd_values_anywhere_raise_nothing_but_policy_errors() -> None:
    read: Counter[bool] = Counter()

    @GUARD
    @given(st.sampled_from(SLOTS), ODD)
    def odd(slot: Callable[[object], Any], value: Any) -> None:
        read[everything(slot(value))] += 1

    odd()
    # most odd values are meant to be refused; those that fit their slot must still read
    assert_fair_shares(read, least_read=0.03, least_refused=0.5)


@pytest.mark.parametrize("base", BASES, ids=["firm-list", "rich", "prefixed"])
def test_the_guard_starts_from_valid_policies(base: dict[str, Any]) -> None:
    assert lint(base, NOW) == []
    read_policy(base)
    everything(copy.deepcopy(base))
