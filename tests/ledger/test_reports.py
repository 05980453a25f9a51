"""The regulator's report on one participant: data provided to others, persons against the
100,000 and 1,000,000 thresholds, cross-border flows, refusals by reason; JSON and CSV."""

from __future__ import annotations

import csv
import io
from datetime import timedelta

from ledger.events import EventType, LedgerEvent, RefusalScope, Refused
from ledger.reports import CSV_COLUMNS, build_report
from tests.ledger.factories import CONSUMER, PROVIDER, T0, access_event


def refusal(n: int, *reasons: str) -> LedgerEvent:
    return LedgerEvent(
        participant=PROVIDER,
        occurred_at=T0 + timedelta(seconds=n),
        counterparty=CONSUMER,
        detail=Refused(type=EventType.REFUSED, scope=RefusalScope.TRANSFER, reasons=reasons),
    )


def events() -> list[LedgerEvent]:
    accesses = [access_event(n, person_count=40_000) for n in range(3)]
    abroad = access_event(3, counterparty="did:web:bank.example.hk", cross_border=True)
    return [
        *accesses,
        abroad,
        refusal(4, "count limit reached", "purpose not allowed"),
        refusal(5, "count limit reached"),
        access_event(6, participant=CONSUMER),  # another participant's: not in this report
    ]


def test_the_report_sums_what_was_provided_and_counts_the_rest() -> None:
    body = build_report(PROVIDER, events()).to_json()
    assert body["events"] == 6
    assert body["provided"] == [
        {"counterparty": CONSUMER, "asset": "firm-list", "purpose": "credit-assessment",
         "accesses": 3, "bytes": 4096 * 6, "rows": 303, "persons": 120_000},
        {"counterparty": "did:web:bank.example.hk", "asset": "firm-list",
         "purpose": "credit-assessment", "accesses": 1, "bytes": 4096 * 4, "rows": 103,
         "persons": 1003},
    ]  # fmt: skip
    assert body["personalInformation"] == {
        "persons": 121_003, "atLeast100000": True, "atLeast1000000": False,
        "withoutLegalBasis": 0,
    }  # fmt: skip
    assert body["crossBorder"] == [{"counterparty": "did:web:bank.example.hk", "events": 1}]
    assert body["refusals"] == [
        {"reason": "count limit reached", "count": 2},
        {"reason": "purpose not allowed", "count": 1},
    ]


def test_the_report_as_csv() -> None:
    rows = list(csv.reader(io.StringIO(build_report(PROVIDER, events()).to_csv())))
    assert tuple(rows[0]) == CSV_COLUMNS
    sections = [row[0] for row in rows[1:]]
    assert sections == [
        "provided", "provided", "personal_information", "cross_border", "refusal", "refusal",
    ]  # fmt: skip
    assert rows[3][-1] == "121003"


def test_a_reason_that_looks_like_a_formula_is_not_one_in_the_csv() -> None:
    report = build_report(PROVIDER, [refusal(0, '=HYPERLINK("http://x")')])
    [row] = [r for r in csv.reader(io.StringIO(report.to_csv())) if r[0] == "refusal"]
    assert row[4] == '\'=HYPERLINK("http://x")'


def test_personal_information_without_a_legal_basis_is_counted_not_hidden() -> None:
    unstated = access_event(7, person_count=10, legal_basis=None)
    report = build_report(PROVIDER, [*events(), unstated])
    body = report.to_json()
    assert body["personalInformation"]["withoutLegalBasis"] == 1
    assert body["personalInformation"]["persons"] == 121_013
    [row] = [r for r in csv.reader(io.StringIO(report.to_csv())) if r[4] == "no legal basis stated"]
    assert (row[0], row[5]) == ("personal_information", "1")
