"""Whatever JSON arrives, reading and linting a policy raise nothing but PolicyError, and a
policy that reads can be evaluated in every scope without an exception."""

from __future__ import annotations

import copy
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from policy.errors import PolicyError
from policy.evaluate import evaluate
from policy.jsonld import read_policy
from policy.lint import lint
from policy.operands import Scope
from tests.mutation import mutate
from tests.policy.policies import FIRM_LIST, NOW, bank_context

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
