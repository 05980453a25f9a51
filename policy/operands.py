"""Left operands: their value types, the operators each accepts, where their value comes from
(the resolver) and in which scopes they can be decided.

A constraint on an operand that a scope cannot know (``count`` while browsing the catalogue) is
*deferred* there and decided in a later scope; in a scope that should know it, a value that
cannot be resolved denies. Credential-derived operands live in our own ``kexin:`` namespace.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from enum import Enum, StrEnum
from functools import cache
from importlib import resources
from types import MappingProxyType
from typing import Final


class Scope(StrEnum):
    """Where a decision is taken (EDC's policy scopes, plus the data plane's per request)."""

    CATALOG = "catalog"
    NEGOTIATION = "negotiation"
    TRANSFER = "transfer"
    ACCESS = "access"
    MONITOR = "monitor"


ALL_SCOPES: Final = frozenset(Scope)


class ValueType(Enum):
    TEXT = "an identifier"
    TERM = "a term of the purpose taxonomy"
    DATETIME = "an ISO 8601 date-time with a time zone"
    DURATION = "an ISO 8601 duration in days, hours, minutes or seconds (e.g. P30D)"
    INTEGER = "a whole number"
    REGION = "a six-digit administrative division code (GB/T 2260)"
    GRADE = "a data grade: general, important or core"
    STATUS = "a credential status: active"
    ROLES = "a credential role"
    OUTPUT = "a matching output: intersection or cardinality"


class Grade(Enum):
    """Data grades of GB/T 43697-2024, in increasing order of protection."""

    GENERAL = "general"
    IMPORTANT = "important"
    CORE = "core"

    @property
    def rank(self) -> int:
        return list(Grade).index(self)


ORDERED: Final = frozenset(
    {ValueType.DATETIME, ValueType.DURATION, ValueType.INTEGER, ValueType.GRADE}
)
COMPARISON: Final = frozenset({"eq", "neq", "lt", "lteq", "gt", "gteq"})
EQUALITY: Final = frozenset({"eq", "neq"})
SET_OPERATORS: Final = frozenset({"isAnyOf", "isNoneOf"})

OPERATORS_FOR: Final[Mapping[ValueType, frozenset[str]]] = MappingProxyType(
    {
        ValueType.TEXT: EQUALITY | SET_OPERATORS,
        ValueType.TERM: EQUALITY | SET_OPERATORS | {"isA"},
        ValueType.DATETIME: COMPARISON,
        ValueType.DURATION: COMPARISON,
        ValueType.INTEGER: COMPARISON,
        ValueType.REGION: EQUALITY | SET_OPERATORS | {"isPartOf", "hasPart"},
        ValueType.GRADE: COMPARISON | SET_OPERATORS,
        ValueType.STATUS: EQUALITY,
        ValueType.ROLES: frozenset({"hasPart", "isAnyOf", "isAllOf", "isNoneOf"}),
        ValueType.OUTPUT: EQUALITY | SET_OPERATORS,
    }
)

# --- value parsing ------------------------------------------------------------------------------

_DURATION = re.compile(
    r"P(?:(?P<weeks>\d+)W)?(?:(?P<days>\d+)D)?"
    r"(?:T(?:(?P<hours>\d+)H)?(?:(?P<minutes>\d+)M)?(?:(?P<seconds>\d+(?:\.\d+)?)S)?)?"
)
_REGION = re.compile(r"[1-9]\d{5}")
MATCH_OUTPUTS: Final = frozenset({"intersection", "cardinality"})
"""What a matching run may give the consumer: the matching items, or only how many match."""
MAX_TEXT_CHARS: Final = 2048
MAX_INTEGER: Final = 10**18 - 1
"""Largest whole number a policy may hold, of either sign (18 digits)."""
MAX_DURATION: Final = timedelta(days=3_650_000)
"""Longest duration a policy may hold (P3650000D, about 10,000 years: the calendar's length)."""

Value = str | int | datetime | timedelta | Grade | frozenset[str]

_SECONDS_IN: Final = {"weeks": 604_800, "days": 86_400, "hours": 3_600, "minutes": 60}
_MAX_SECONDS: Final = Decimal(MAX_DURATION.days * 86_400)


def parse_duration(text: str) -> timedelta:
    match = _DURATION.fullmatch(text)
    if match is None or text in ("P", "PT") or text.endswith("T"):
        if re.fullmatch(r"P.*\d+[YM].*", text.split("T")[0]):
            raise ValueError(
                f"{text!r}: years and months have no fixed length; write days, e.g. P30D"
            )
        raise ValueError(f"{text!r} is not an ISO 8601 duration such as P30D or PT12H")
    # Exact decimal arithmetic: a component of any length is measured before it becomes a
    # timedelta (which would overflow) and without a float (which would become infinite).
    seconds = Decimal(0)
    for name, digits in match.groupdict().items():
        if digits:
            seconds += Decimal(digits) * _SECONDS_IN.get(name, 1)
    if seconds > _MAX_SECONDS:
        raise ValueError(f"{_shown(text)} is longer than {format_duration(MAX_DURATION)}")
    return timedelta(microseconds=round(seconds * 1_000_000))


def format_duration(value: timedelta) -> str:
    """ISO 8601, exact to the microsecond; a negative duration (a clock behind) has a sign."""
    sign = "-" if value < timedelta(0) else ""
    magnitude = -value if sign else value
    days, seconds, microseconds = magnitude.days, magnitude.seconds, magnitude.microseconds
    if not seconds and not microseconds:
        return f"{sign}P{days}D"
    hours, rest = divmod(seconds, 3600)
    minutes, whole = divmod(rest, 60)
    text = f"{sign}P{days}D" if days else f"{sign}P"
    text += "T"
    if hours:
        text += f"{hours}H"
    if minutes:
        text += f"{minutes}M"
    if microseconds:
        text += f"{whole}.{microseconds:06d}".rstrip("0") + "S"
    elif whole:
        text += f"{whole}S"
    return text


def parse_datetime(text: str) -> datetime:
    """An ISO 8601 date-time with a zone, in UTC (so that every later step stays in range)."""
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{text!r} is not an ISO 8601 date-time") from None
    if value.tzinfo is None:
        raise ValueError(f"{text!r} has no time zone; add Z or an offset such as +08:00")
    try:
        return value.astimezone(UTC)
    except OverflowError:
        raise ValueError(f"{text!r} is outside the years 1 to 9999 in UTC") from None


@cache
def regions() -> Mapping[str, str]:
    """GB/T 2260's province, prefecture and county codes with their names, shipped as data
    (``policy/regions.json``: the National Bureau of Statistics' 2023 list, see its source)."""
    text = resources.files("policy").joinpath("regions.json").read_text("utf-8")
    return MappingProxyType(json.loads(text)["regions"])


@cache
def _provinces() -> frozenset[str]:
    """The two-digit prefixes of the province-level divisions (today's list: they have not
    changed since 1997)."""
    return frozenset(code[:2] for code in regions() if code[2:] == "0000")


def check_region_code(text: str) -> str:
    """A code of GB/T 2260's form, current or abolished since: six digits under a province.
    For what was written before today's list (an identity number keeps its district for life,
    a credential or an agreement keeps the code it was made with, another connector's catalogue
    may be older than ours)."""
    if not _REGION.fullmatch(text) or text[:2] not in _provinces():
        raise ValueError(f"{text!r} is not a six-digit administrative division code")
    return text


def check_region(text: str) -> str:
    """A division code on today's list (440106 天河区; 449999 is none): for what is written
    now (an asset's region)."""
    if check_region_code(text) not in regions():
        raise ValueError(
            f"{text!r} is not an administrative division code of today's list (GB/T 2260)"
        )
    return text


def region_ancestors(code: str) -> tuple[str, ...]:
    """``440106`` -> (``440106``, ``440100``, ``440000``): the code and what it is part of."""
    chain = [code]
    if code[4:] != "00":
        chain.append(code[:4] + "00")
    if code[2:4] != "00":
        chain.append(code[:2] + "0000")
    return tuple(chain)


def _integer(raw: object) -> int:
    if isinstance(raw, float) and raw.is_integer():
        raw = int(raw)
    if isinstance(raw, str) and re.fullmatch(r"-?\d{1,18}", raw.strip()):
        raw = int(raw)
    if not isinstance(raw, int):
        raise ValueError(f"expected {ValueType.INTEGER.value}, got {_shown(raw)}")
    if abs(raw) > MAX_INTEGER:
        raise ValueError(f"a whole number is at most {MAX_INTEGER:,} (either sign)")
    return raw


def _shown(raw: object) -> str:
    """A value as an error message shows it: its beginning only."""
    try:
        text = repr(raw)
    except ValueError:  # an integer too long for Python to print
        return f"a {type(raw).__name__} too long to show"
    return text if len(text) <= 80 else text[:77] + "..."


def coerce(value_type: ValueType, raw: object) -> Value:
    """Turn one right-operand value (already unwrapped from JSON-LD) into its typed value."""
    if isinstance(raw, bool) or raw is None or isinstance(raw, dict | list):
        raise ValueError(f"expected {value_type.value}, got {_shown(raw)}")
    if value_type is ValueType.INTEGER:
        return _integer(raw)
    if not isinstance(raw, str):
        raise ValueError(f"expected {value_type.value}, got {_shown(raw)}")
    if len(raw) > MAX_TEXT_CHARS:
        raise ValueError(f"a value is at most {MAX_TEXT_CHARS} characters")
    match value_type:
        case ValueType.DATETIME:
            return parse_datetime(raw)
        case ValueType.DURATION:
            return parse_duration(raw)
        case ValueType.REGION:  # an agreement keeps its code: the linter warns on old ones
            return check_region_code(raw)
        case ValueType.GRADE:
            try:
                return Grade(raw)
            except ValueError:
                raise ValueError(f"expected {value_type.value}, got {_shown(raw)}") from None
        case ValueType.OUTPUT:
            if raw not in MATCH_OUTPUTS:
                raise ValueError(f"expected {value_type.value}, got {_shown(raw)}")
            return raw
        case ValueType.STATUS:
            if raw != "active":
                raise ValueError(f"expected {value_type.value}, got {_shown(raw)}")
            return raw
        case ValueType.TEXT | ValueType.TERM | ValueType.ROLES:
            if not raw:
                raise ValueError(f"expected {value_type.value}, got an empty string")
            return raw
    raise AssertionError(value_type)  # pragma: no cover - the match is exhaustive


def render(value: Value) -> str:
    """A value as written in a policy (right operands are strings in DSP 2025-1)."""
    if isinstance(value, datetime):
        try:
            value = value.astimezone(UTC)
        except OverflowError:  # a caller's clock past 9999 in UTC: shown with its own offset
            return value.isoformat()
        return value.isoformat().replace("+00:00", "Z")
    if isinstance(value, timedelta):
        return format_duration(value)
    if isinstance(value, Grade):
        return value.value
    if isinstance(value, frozenset):
        return ",".join(sorted(value))
    return str(value)


# --- the vocabulary a decision uses -------------------------------------------------------------


@cache
def default_purposes() -> Mapping[str, str | None]:
    """Kexin's default purposes, each with the broader one it is a form of (shipped as data,
    ``policy/purposes.json``; a deployment adds its own in settings)."""
    text = resources.files("policy").joinpath("purposes.json").read_text("utf-8")
    return MappingProxyType(
        {name: entry["broader"] for name, entry in json.loads(text)["purposes"].items()}
    )


@dataclass(frozen=True)
class Vocabulary:
    """The taxonomies behind ``isA``: which purpose is a narrower form of which."""

    purposes: Mapping[str, str | None] = field(default_factory=default_purposes)

    @classmethod
    def extended(cls, purposes: Mapping[str, str | None]) -> Vocabulary:
        """The default purposes and a deployment's own (which may also re-parent a default);
        ValueError for a broader purpose neither names, or a purpose that is a form of itself."""
        vocabulary = cls(MappingProxyType({**default_purposes(), **purposes}))
        for purpose, broader in purposes.items():
            if broader is not None and not vocabulary.knows(broader):
                raise ValueError(f"purposes: {purpose!r} is a form of {broader!r}, not a purpose")
            if broader is not None and vocabulary.purpose_is_a(broader, purpose):
                raise ValueError(f"purposes: {purpose!r} is, through {broader!r}, a form of itself")
        return vocabulary

    def knows(self, purpose: str) -> bool:
        return purpose in self.purposes

    def purpose_is_a(self, purpose: str, broader: str) -> bool:
        current: str | None = purpose
        seen = 0
        while current is not None and seen <= len(self.purposes):
            if current == broader:
                return True
            current = self.purposes.get(current)
            seen += 1
        return False


# --- what a decision knows ----------------------------------------------------------------------


@dataclass(frozen=True)
class CredentialFacts:
    """What the recipient's verified, unexpired, unrevoked credentials say (from identity/)."""

    membership: bool = False
    roles: frozenset[str] = frozenset()
    data_grade: Grade | None = None
    region: str | None = None


@dataclass(frozen=True)
class MatchFacts:
    """What the data plane knows when a matching run starts (from matching/): the size of the
    consumer's set (which the provider learns anyway), the agreement's earlier runs, and the
    output the consumer asks for."""

    set_size: int
    runs_so_far: int
    output: str


@dataclass(frozen=True)
class Context:
    """Everything a decision may look at. None means unknown: a constraint needing it denies.

    ``now`` is passed in: the library reads no clock.
    """

    now: datetime
    recipient: str | None = None
    purpose: str | None = None
    spatial: str | None = None
    target: str | None = None
    agreement_start: datetime | None = None
    uses_so_far: int | None = None
    credentials: CredentialFacts | None = None
    matching: MatchFacts | None = None
    violated_duties: tuple[str, ...] = ()
    vocabulary: Vocabulary = field(default_factory=Vocabulary)


Resolver = Callable[[Context], Value | None]


@dataclass(frozen=True)
class LeftOperand:
    name: str
    value_type: ValueType
    source: str
    """Where the value comes from, said for people (explanations, docs, lint)."""
    scopes: frozenset[Scope]
    resolve: Resolver

    @property
    def operators(self) -> frozenset[str]:
        return OPERATORS_FOR[self.value_type]


def _credential(read: Callable[[CredentialFacts], Value | None]) -> Resolver:
    def resolve(context: Context) -> Value | None:
        return None if context.credentials is None else read(context.credentials)

    return resolve


def _matching(read: Callable[[MatchFacts], Value]) -> Resolver:
    def resolve(context: Context) -> Value | None:
        return None if context.matching is None else read(context.matching)

    return resolve


def _elapsed(context: Context) -> Value | None:
    if context.agreement_start is None:
        return None
    return context.now - context.agreement_start


def _count(context: Context) -> Value | None:
    # The use being decided is counted: "count lteq 3" admits the first, second and third use.
    return None if context.uses_so_far is None else context.uses_so_far + 1


_AFTER_AGREEMENT: Final = frozenset({Scope.TRANSFER, Scope.ACCESS, Scope.MONITOR})
_WITH_REQUEST: Final = frozenset({Scope.NEGOTIATION, Scope.TRANSFER, Scope.ACCESS})
_WITH_RUN: Final = frozenset({Scope.ACCESS})
"""A matching run's facts are known when the data plane starts it (each run is an access)."""
MATCH_OPERANDS: Final = frozenset({"kexin:matchRuns", "kexin:matchSetSize", "kexin:matchOutput"})

LEFT_OPERANDS: Final[Mapping[str, LeftOperand]] = MappingProxyType(
    {
        operand.name: operand
        for operand in (
            LeftOperand(
                "dateTime", ValueType.DATETIME, "the clock at the decision", ALL_SCOPES,
                lambda context: context.now,
            ),
            LeftOperand(
                "elapsedTime", ValueType.DURATION, "time since the agreement was concluded",
                _AFTER_AGREEMENT, _elapsed,
            ),
            LeftOperand(
                "count", ValueType.INTEGER,
                "number of this use under the agreement (earlier uses + 1)",
                _AFTER_AGREEMENT, _count,
            ),
            LeftOperand(
                "purpose", ValueType.TERM, "the purpose the consumer declared in its request",
                _WITH_REQUEST, lambda context: context.purpose,
            ),
            LeftOperand(
                "spatial", ValueType.REGION, "the region where the consumer declared the use",
                _WITH_REQUEST, lambda context: context.spatial,
            ),
            LeftOperand(
                "recipient", ValueType.TEXT, "the DID of the authenticated counterparty",
                ALL_SCOPES, lambda context: context.recipient,
            ),
            LeftOperand(
                "kexin:membership", ValueType.STATUS,
                "the counterparty's MembershipCredential (active while valid and unrevoked)",
                ALL_SCOPES,
                _credential(lambda facts: "active" if facts.membership else "none"),
            ),
            LeftOperand(
                "kexin:role", ValueType.ROLES,
                "role credentials the counterparty holds (e.g. FinancialInstitution)",
                ALL_SCOPES, _credential(lambda facts: facts.roles),
            ),
            LeftOperand(
                "kexin:dataGrade", ValueType.GRADE,
                "the highest data grade the counterparty's credential clears it for",
                ALL_SCOPES, _credential(lambda facts: facts.data_grade),
            ),
            LeftOperand(
                "kexin:region", ValueType.REGION,
                "the region code in the counterparty's organisation credential",
                ALL_SCOPES, _credential(lambda facts: facts.region),
            ),
            LeftOperand(
                "kexin:matchRuns", ValueType.INTEGER,
                "number of this matching run under the agreement (earlier runs + 1)",
                _WITH_RUN, _matching(lambda facts: facts.runs_so_far + 1),
            ),
            LeftOperand(
                "kexin:matchSetSize", ValueType.INTEGER,
                "how many identifiers the consumer's set of this matching run holds",
                _WITH_RUN, _matching(lambda facts: facts.set_size),
            ),
            LeftOperand(
                "kexin:matchOutput", ValueType.OUTPUT,
                "what the consumer asks the run for: intersection, or only its cardinality",
                _WITH_RUN, _matching(lambda facts: facts.output),
            ),
        )
    }
)  # fmt: skip
