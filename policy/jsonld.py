"""Read ODRL policies from JSON-LD and write them back in the DSP 2025-1 compact form.

Two input forms are read: the compact 2025-1 form (unprefixed terms, as in
``shared/dsp/2025-1/context/odrl.jsonld``) and the prefixed form (``odrl:permission``,
``{"@id": "odrl:use"}``, full ``http://www.w3.org/ns/odrl/2/`` IRIs, value objects). No context
is fetched: the term names are fixed here. Every problem is collected with its path and raised
together as one :class:`PolicyError`; a document nested deeper than :data:`MAX_NESTING` is
refused before it is read, so that reading never exhausts the stack. ODRL features we do not
enforce (refinements, consequences, remedies, rightOperandReference, …) are refused, never
silently ignored.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Any, Final

from policy.actions import KNOWN_ACTIONS, action_name
from policy.errors import Issue, PolicyError
from policy.model import (
    LIST_OPERATORS,
    LOGICAL_OPERATORS,
    Atomic,
    ConflictStrategy,
    Constraint,
    Logical,
    Policy,
    PolicyType,
    Rule,
    RuleKind,
)
from policy.operands import LEFT_OPERANDS, Value, ValueType, coerce, render

DSP_CONTEXT: Final = "https://w3id.org/dspace/2025/1/context.jsonld"
ODRL_IRI: Final = "http://www.w3.org/ns/odrl/2/"
PREFIXES: Final = (ODRL_IRI, "odrl:")

MAX_DEPTH: Final = 8
"""Deepest nesting of logical constraints."""
MAX_NESTING: Final = 32
"""Deepest nesting of JSON objects and arrays in a policy document (the policy is level 1)."""
MAX_CONSTRAINTS: Final = 2000
MAX_RULES: Final = 1000
MAX_LIST_ITEMS: Final = 1000
MAX_TEXT_BYTES: Final = 1 << 20

OPERATORS: Final = frozenset(
    {"eq", "neq", "lt", "lteq", "gt", "gteq", "isA", "hasPart", "isPartOf"} | LIST_OPERATORS
)
UNSUPPORTED: Final = frozenset(
    {
        "refinement", "consequence", "remedy", "failure", "rightOperandReference", "relation",
        "function", "inheritFrom", "inheritAllowed", "status", "dataType", "implies",
    }
)  # fmt: skip

_XSD_DATE_TIME: Final = re.compile(
    r"-?([1-9][0-9]{3,}|0[0-9]{3})-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])"
    r"T(([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\.[0-9]+)?|(24:00:00(\.0+)?))"
    r"(Z|(\+|-)((0[0-9]|1[0-3]):[0-5][0-9]|14:00))?"
)

COLLECTIONS: Final = frozenset({"PartyCollection", "AssetCollection"})
COLLECTION_PROPERTIES: Final = frozenset({"source", "refinement"})


def _term(value: str) -> str:
    for prefix in PREFIXES:
        if value.startswith(prefix):
            return value[len(prefix) :]
    return value


def _normalize_keys(node: Mapping[str, Any]) -> dict[str, Any]:
    return {_term(key) if not key.startswith("@") else key: value for key, value in node.items()}


class _Reader:
    def __init__(self) -> None:
        self.issues: list[Issue] = []
        self.constraints = 0
        self.rules = 0

    def fail(self, path: str, message: str) -> None:
        self.issues.append(Issue(path, message))

    # --- scalar helpers ------------------------------------------------------------------------

    def identifier(self, raw: object, path: str) -> str | None:
        """A name such as an action or operator: a string or {"@id": string}."""
        if isinstance(raw, Mapping) and set(raw) <= {"@id", "@type"} and "@id" in raw:
            raw = raw["@id"]
        if isinstance(raw, list) and len(raw) == 1:
            raw = raw[0]
        if not isinstance(raw, str) or not raw:
            self.fail(path, f"expected a name, got {json.dumps(raw, ensure_ascii=False)[:80]}")
            return None
        return _term(raw)

    def party(self, raw: object, path: str) -> str | None:
        """A single party or asset: an identifier, or an object with its ``@id``."""
        if raw is None:
            return None
        if isinstance(raw, Mapping):
            node = _normalize_keys(raw)
            if not self.single(node, path):
                return None
            raw = node.get("@id")
        if not isinstance(raw, str) or not raw or len(raw) > 2048:
            self.fail(path, 'expected an identifier (a string or {"@id": …})')
            return None
        return raw

    def timestamp(self, raw: object) -> str | None:
        """An agreement's timestamp, kept as written (it is not part of the terms)."""
        if raw is None:
            return None
        # DSP 2025-1, negotiation/contract-schema.json: the Agreement's timestamp is a string
        # of the xsd:dateTime pattern.
        if not isinstance(raw, str) or len(raw) > 64 or not _XSD_DATE_TIME.fullmatch(raw):
            self.fail("timestamp", "expected a date-time such as 2026-11-24T09:00:00Z")
            return None
        return raw

    def single(self, node: Mapping[str, Any], path: str) -> bool:
        """Whether a party or asset object is one party or asset, the only kind we compare.

        ODRL 2.2: a PartyCollection is "a Party that is a group of individual entities", an
        AssetCollection "an Asset that is collection of individual resources"; a rule about one
        is about its members, given by its ``source`` and narrowed by its ``refinement``. We
        cannot enumerate members, and reducing a collection to its ``@id`` would let a request
        through that a prohibition of the collection blocks, so each of these is refused.
        """
        types = node.get("@type", [])
        names = [
            _term(t) for t in (types if isinstance(types, list) else [types]) if isinstance(t, str)
        ]
        refused = [(f"{path}.@type", name) for name in names if name in COLLECTIONS]
        refused += [(f"{path}.{key}", key) for key in sorted(COLLECTION_PROPERTIES & node.keys())]
        for where, construct in refused:
            self.fail(
                where,
                f"{construct} is not supported (a rule names single parties and assets only); "
                "the policy is refused",
            )
        return not refused

    def as_list(self, raw: object, path: str) -> list[Any]:
        if isinstance(raw, list):
            return raw
        if isinstance(raw, Mapping):
            return [raw]
        self.fail(path, "expected an object or a list of objects")
        return []

    # --- constraints ---------------------------------------------------------------------------

    def constraint(self, raw: object, path: str, depth: int, *, in_duty: bool) -> Constraint | None:
        self.constraints += 1
        if self.constraints > MAX_CONSTRAINTS:
            if self.constraints == MAX_CONSTRAINTS + 1:
                self.fail(path, f"more than {MAX_CONSTRAINTS} constraints in one policy")
            return None
        if not isinstance(raw, Mapping):
            self.fail(path, "a constraint must be an object")
            return None
        node = _normalize_keys(raw)
        for key in sorted(UNSUPPORTED & node.keys()):
            self.fail(f"{path}.{key}", f"{key} is not supported; the policy is refused")
        logical = [op for op in LOGICAL_OPERATORS if op in node]
        if logical:
            return self.logical(node, logical, path, depth, in_duty=in_duty)
        return self.atomic(node, path, in_duty=in_duty)

    def logical(
        self,
        node: dict[str, Any],
        operators: Sequence[str],
        path: str,
        depth: int,
        *,
        in_duty: bool,
    ) -> Logical | None:
        if len(operators) > 1:
            self.fail(path, f"a logical constraint has exactly one operator, got {operators}")
            return None
        (operator,) = operators
        if depth >= MAX_DEPTH:
            self.fail(path, f"logical constraints nest at most {MAX_DEPTH} deep")
            return None
        members = node[operator]
        if isinstance(members, Mapping) and "@list" in members:
            members = members["@list"]
        items = self.as_list(members, f"{path}.{operator}")
        # One member means that member (Catena-X's samples wrap their one constraint in "and");
        # none would leave nothing to decide, which we refuse rather than guess at.
        if not items:
            self.fail(f"{path}.{operator}", f"{operator} needs at least one constraint")
        children = [
            self.constraint(item, f"{path}.{operator}[{index}]", depth + 1, in_duty=in_duty)
            for index, item in enumerate(items)
        ]
        if any(child is None for child in children):
            return None
        return Logical(path, operator, tuple(c for c in children if c is not None))

    def atomic(self, node: dict[str, Any], path: str, *, in_duty: bool) -> Atomic | None:
        missing = [key for key in ("leftOperand", "operator", "rightOperand") if key not in node]
        if missing:
            self.fail(path, f"missing {', '.join(missing)}")
            return None
        name = self.identifier(node["leftOperand"], f"{path}.leftOperand")
        operator = self.identifier(node["operator"], f"{path}.operator")
        if name is None or operator is None:
            return None
        left = LEFT_OPERANDS.get(name)
        if left is None:
            self.fail(
                f"{path}.leftOperand",
                f"unknown left operand {name!r}; known: {', '.join(sorted(LEFT_OPERANDS))}",
            )
            return None
        if not in_duty and not left.scopes:
            self.fail(f"{path}.leftOperand", f"{name} belongs only in a duty")
            return None
        if operator not in OPERATORS:
            self.fail(f"{path}.operator", f"unknown operator {operator!r}")
            return None
        if operator not in left.operators:
            self.fail(
                f"{path}.operator",
                f"{name} is {left.value_type.value}: use "
                f"{', '.join(sorted(left.operators))}, not {operator}",
            )
            return None
        right = self.right_operand(node["rightOperand"], left.value_type, operator, path)
        if right is None:
            return None
        unit = node.get("unit")
        return Atomic(path, left, operator, right, unit if isinstance(unit, str) else None)

    def right_operand(
        self, raw: object, value_type: ValueType, operator: str, path: str
    ) -> Value | tuple[Value, ...] | None:
        where = f"{path}.rightOperand"
        values = self.unwrap(raw, where)
        if values is None:
            return None
        if operator in LIST_OPERATORS:
            if isinstance(values, str) and value_type is not ValueType.TEXT and "," in values:
                values = [part.strip() for part in values.split(",")]
            items = values if isinstance(values, list) else [values]
            if not items or len(items) > MAX_LIST_ITEMS:
                self.fail(where, f"{operator} needs 1 to {MAX_LIST_ITEMS} values")
                return None
            typed = [self.typed(item, value_type, f"{where}[{i}]") for i, item in enumerate(items)]
            if any(item is None for item in typed):
                return None
            return tuple(item for item in typed if item is not None)
        if isinstance(values, list):
            if len(values) != 1:
                self.fail(where, f"{operator} compares with one value, got a list")
                return None
            values = values[0]
        return self.typed(values, value_type, where)

    def unwrap(self, raw: object, path: str) -> object | None:
        """JSON-LD value objects and lists to plain values; None, with an issue, if it cannot."""
        if isinstance(raw, Mapping):
            if "@value" in raw or "@id" in raw:
                value: object = raw["@value"] if "@value" in raw else raw["@id"]
                return self.not_null(value, path)
            if "@list" in raw:
                return self.unwrap(raw["@list"], path)
            self.fail(path, 'an object right operand must be {"@value": …} or {"@id": …}')
            return None
        if isinstance(raw, list):
            if len(raw) > MAX_LIST_ITEMS:
                self.fail(path, f"at most {MAX_LIST_ITEMS} values")
                return None
            items = [self.unwrap(item, f"{path}[{i}]") for i, item in enumerate(raw)]
            return None if any(item is None for item in items) else items
        return self.not_null(raw, path)

    def not_null(self, raw: object, path: str) -> object | None:
        if raw is None:
            self.fail(path, "expected a value, got null")
        return raw

    def typed(self, raw: object, value_type: ValueType, path: str) -> Value | None:
        try:
            return coerce(value_type, raw)
        except ValueError as error:
            self.fail(path, str(error))
            return None

    # --- rules ---------------------------------------------------------------------------------

    def rule(self, raw: object, kind: RuleKind, path: str) -> Rule | None:
        self.rules += 1
        if self.rules > MAX_RULES:
            if self.rules == MAX_RULES + 1:
                self.fail(path, f"more than {MAX_RULES} rules in one policy")
            return None
        if not isinstance(raw, Mapping):
            self.fail(path, "a rule must be an object")
            return None
        node = _normalize_keys(raw)
        for key in sorted(UNSUPPORTED & node.keys()):
            self.fail(f"{path}.{key}", f"{key} is not supported; the policy is refused")
        if "action" not in node:
            self.fail(path, "missing action")
            return None
        action_raw = node["action"]
        if isinstance(action_raw, Mapping) and "refinement" in _normalize_keys(action_raw):
            self.fail(f"{path}.action.refinement", "action refinements are not supported")
            return None
        if isinstance(action_raw, Mapping) and "rdf:value" in action_raw:
            action_raw = action_raw["rdf:value"]
        action = self.identifier(action_raw, f"{path}.action")
        if action is not None:
            action = action_name(action)
        if action is not None and action not in KNOWN_ACTIONS:
            self.fail(f"{path}.action", f"unknown action {action!r}")
            action = None
        in_duty = kind in (RuleKind.DUTY, RuleKind.OBLIGATION)
        constraints = [
            self.constraint(item, f"{path}.constraint[{i}]", 0, in_duty=in_duty)
            for i, item in enumerate(self.as_list(node.get("constraint", []), f"{path}.constraint"))
        ]
        duties: list[Rule | None] = []
        if "duty" in node:
            if kind is not RuleKind.PERMISSION:
                self.fail(f"{path}.duty", "only a permission carries duties")
            else:
                duties = [
                    self.rule(item, RuleKind.DUTY, f"{path}.duty[{i}]")
                    for i, item in enumerate(self.as_list(node["duty"], f"{path}.duty"))
                ]
        if action is None or any(c is None for c in constraints) or any(d is None for d in duties):
            return None
        return Rule(
            kind=kind,
            path=path,
            action=action,
            constraints=tuple(c for c in constraints if c is not None),
            duties=tuple(d for d in duties if d is not None),
            target=self.party(node.get("target"), f"{path}.target"),
            assignee=self.party(node.get("assignee"), f"{path}.assignee"),
            assigner=self.party(node.get("assigner"), f"{path}.assigner"),
            informed_party=self.party(node.get("informedParty"), f"{path}.informedParty"),
            compensated_party=self.party(node.get("compensatedParty"), f"{path}.compensatedParty"),
        )

    def policy(self, raw: object) -> Policy | None:
        if not isinstance(raw, Mapping):
            self.fail("", "a policy must be a JSON object")
            return None
        node = _normalize_keys(raw)
        type_name = self.identifier(node.get("@type", "Set"), "@type")
        try:
            policy_type = PolicyType(type_name) if type_name else None
        except ValueError:
            self.fail("@type", f"expected Set, Offer or Agreement, got {type_name!r}")
            policy_type = None
        for key in sorted(UNSUPPORTED & node.keys()):
            self.fail(key, f"{key} is not supported; the policy is refused")
        rules: dict[RuleKind, list[Rule | None]] = {}
        for kind in (RuleKind.PERMISSION, RuleKind.PROHIBITION, RuleKind.OBLIGATION):
            items = self.as_list(node.get(kind.value, []), kind.value)
            rules[kind] = [
                self.rule(item, kind, f"{kind.value}[{i}]") for i, item in enumerate(items)
            ]
        if not any(rules.values()):
            self.fail("", "a policy needs at least one permission, prohibition or obligation")
        conflict = ConflictStrategy.INVALID
        if "conflict" in node:
            name = self.identifier(node["conflict"], "conflict")
            try:
                conflict = ConflictStrategy(name or "")
            except ValueError:
                self.fail("conflict", f"expected perm, prohibit or invalid, got {name!r}")
        profile_raw = node.get("profile", [])
        profile = profile_raw if isinstance(profile_raw, list) else [profile_raw]
        if not all(isinstance(p, str) for p in profile):
            self.fail("profile", "profile must be a string or a list of strings")
            profile = []
        uid = node.get("@id", node.get("uid"))
        timestamp = self.timestamp(node.get("timestamp"))
        # Fail closed: a rule that could not be read is never left out of the policy.
        if self.issues or policy_type is None or any(None in r for r in rules.values()):
            return None
        return Policy(
            type=policy_type,
            uid=uid if isinstance(uid, str) else None,
            permissions=tuple(r for r in rules[RuleKind.PERMISSION] if r is not None),
            prohibitions=tuple(r for r in rules[RuleKind.PROHIBITION] if r is not None),
            obligations=tuple(r for r in rules[RuleKind.OBLIGATION] if r is not None),
            target=self.party(node.get("target"), "target"),
            assigner=self.party(node.get("assigner"), "assigner"),
            assignee=self.party(node.get("assignee"), "assignee"),
            profile=tuple(profile),
            conflict=conflict,
            timestamp=timestamp,
        )


def _shape_issue(document: object) -> Issue | None:
    """The first node nested deeper than :data:`MAX_NESTING`, or a key that is not a string.

    Checked once, before reading, without recursion: the reader below recurses, and may, because
    no document it is given is deeper than this.
    """
    stack: list[tuple[object, int, str]] = [(document, 1, "")]
    while stack:
        node, depth, path = stack.pop()
        if depth > MAX_NESTING:
            return Issue(path, f"a policy document is nested more than {MAX_NESTING} deep")
        if isinstance(node, Mapping):
            for key, value in node.items():
                if not isinstance(key, str):
                    return Issue(f"{path}.{key}" if path else str(key), _NOT_A_JSON_KEY)
                if isinstance(value, Mapping | list):
                    stack.append((value, depth + 1, f"{path}.{key}" if path else key))
        elif isinstance(node, list):
            stack.extend(
                (value, depth + 1, f"{path}[{index}]")
                for index, value in enumerate(node)
                if isinstance(value, Mapping | list)
            )
    return None


_NOT_A_JSON_KEY: Final = "keys of a policy document are strings (it is JSON)"


def read_policy(document: object) -> Policy:
    """Read a policy from parsed JSON; raise :class:`PolicyError` listing every issue."""
    shape = _shape_issue(document)
    if shape is not None:
        raise PolicyError([shape])
    reader = _Reader()
    policy = reader.policy(document)
    if policy is None or reader.issues:
        raise PolicyError(reader.issues or [Issue("", "unreadable policy")])
    return policy


def read_policy_text(text: str | bytes) -> Policy:
    """Read a policy from JSON text, bounded in size and nesting."""
    if len(text) > MAX_TEXT_BYTES:
        raise PolicyError([Issue("", f"a policy is at most {MAX_TEXT_BYTES} bytes")])
    try:
        document = json.loads(text)
    except (ValueError, RecursionError) as error:
        raise PolicyError([Issue("", f"malformed JSON: {error}")]) from None
    return read_policy(document)


# --- writing -----------------------------------------------------------------------------------


def _write_constraint(constraint: Constraint) -> dict[str, Any]:
    if isinstance(constraint, Logical):
        return {constraint.operator: [_write_constraint(c) for c in constraint.constraints]}
    right: Any = (
        [render(v) for v in constraint.right]
        if isinstance(constraint.right, tuple)
        else render(constraint.right)
    )
    written: dict[str, Any] = {
        "leftOperand": constraint.left.name,
        "operator": constraint.operator,
        "rightOperand": right,
    }
    if constraint.unit is not None:
        written["unit"] = constraint.unit
    return written


def _write_rule(rule: Rule) -> dict[str, Any]:
    written: dict[str, Any] = {"action": rule.action}
    for key, value in (
        ("target", rule.target),
        ("assignee", rule.assignee),
        ("assigner", rule.assigner),
        ("informedParty", rule.informed_party),
        ("compensatedParty", rule.compensated_party),
    ):
        if value is not None:
            written[key] = value
    if rule.constraints:
        written["constraint"] = [_write_constraint(c) for c in rule.constraints]
    if rule.duties:
        written["duty"] = [_write_rule(d) for d in rule.duties]
    return written


def write_policy(policy: Policy, *, context: bool = False) -> dict[str, Any]:
    """The policy in the DSP 2025-1 compact form (right operands written as strings)."""
    written: dict[str, Any] = {}
    if context:
        written["@context"] = [DSP_CONTEXT]
    if policy.uid is not None:
        written["@id"] = policy.uid
    written["@type"] = policy.type.value
    for key, value in (
        ("target", policy.target),
        ("assigner", policy.assigner),
        ("assignee", policy.assignee),
        ("timestamp", policy.timestamp),
    ):
        if value is not None:
            written[key] = value
    if policy.profile:
        written["profile"] = list(policy.profile)
    for key, rules in (
        ("permission", policy.permissions),
        ("prohibition", policy.prohibitions),
        ("obligation", policy.obligations),
    ):
        if rules:
            written[key] = [_write_rule(rule) for rule in rules]
    if policy.conflict is not ConflictStrategy.INVALID:
        written["conflict"] = policy.conflict.value
    return written
