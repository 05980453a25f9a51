"""Catalogue pages: keyset continuation tokens and validators. A page asked for again with its
``ETag`` is ``304`` with no body while nothing it shows changed; an asset written again on one
page changes that page's validator only; the caller's credentials or the access policy
changing change every page's validator (never a 304 for a body the caller would not get
again); a client that ignores ETags reads every page as before."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import httpx2
import pytest
from fastapi.testclient import TestClient

from connector.app import create_app
from connector.catalog.pages import BadTokenError, after_token, matches, token_for
from identity.credentials import CredentialType
from tests.connector.test_conformance import AUTH, KEY, REQUEST, conformance_settings

MEMBERS = {
    "@type": "Set",
    "permission": [
        {
            "action": "use",
            "constraint": [
                {"leftOperand": "kexin:membership", "operator": "eq", "rightOperand": "active"}
            ],
        }
    ],
}
BANKS = {
    "@type": "Set",
    "permission": [
        {
            "action": "use",
            "constraint": [
                {
                    "leftOperand": "kexin:role",
                    "operator": "hasPart",
                    "rightOperand": "FinancialInstitution",
                }
            ],
        }
    ],
}
ASSETS = [f"urn:kexin:asset:p{n:02d}" for n in range(7)]


def asset(identifier: str, title: str) -> dict[str, Any]:
    return {
        "id": identifier,
        "titleEn": title,
        "dataGrade": "general",
        "dataAddress": {"type": "file", "path": "/srv/x.csv"},
    }


def publish(client: TestClient) -> None:
    for identifier in ASSETS:
        answer = client.post("/management/v1/assets", headers=KEY, json=asset(identifier, "t"))
        assert answer.status_code == 201, answer.text
    answer = client.post(
        "/management/v1/policydefinitions", headers=KEY, json={"id": "members", "policy": MEMBERS}
    )
    assert answer.status_code == 201, answer.text
    answer = client.post(
        "/management/v1/contractdefinitions", headers=KEY,
        json={"id": "pages", "accessPolicyId": "members", "contractPolicyId": "members",
              "assetSelector": {"assetIds": ASSETS}},
    )  # fmt: skip
    assert answer.status_code == 201, answer.text


def app(tmp_path: Path, credentials: list[CredentialType] | None = None) -> TestClient:
    extra: dict[str, Any] = {"catalog_page_size": 3}
    if credentials is not None:
        extra["conformance_credentials"] = credentials
    return TestClient(create_app(conformance_settings(tmp_path, **extra)))


@pytest.fixture
def client(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> Iterator[TestClient]:
    caplog.set_level(logging.WARNING, logger="kexin.connector")
    with app(tmp_path) as client:
        publish(client)
        yield client


def pages(client: TestClient, tags: dict[str, str] | None = None) -> list[httpx2.Response]:
    """Every page, following ``next`` (with ``If-None-Match`` from ``tags`` by URL)."""
    url: str | None = "/dsp/catalog/request"
    answers = []
    while url is not None:
        headers = dict(AUTH)
        if tags and url in tags:
            headers["If-None-Match"] = tags[url]
        answer = client.post(url, json=REQUEST, headers=headers)
        assert answer.status_code in (200, 304), answer.text
        answers.append(answer)
        following = answer.links.get("next")
        url = None if following is None else str(httpx.URL(following["url"]).copy_with(
            scheme=None, host=None, port=None
        ))  # fmt: skip
    return answers


def by_url(answers: list[httpx2.Response]) -> dict[str, str]:
    return {
        str(answer.request.url.copy_with(scheme=None, host=None, port=None)): answer.headers["ETag"]
        for answer in answers
    }


def ours(answers: list[httpx2.Response]) -> list[str]:
    return [
        d["@id"]
        for answer in answers
        if answer.status_code == 200
        for d in answer.json().get("dataset", [])
        if d["@id"] in ASSETS
    ]


def test_a_client_without_etags_reads_every_page_in_id_order(client: TestClient) -> None:
    answers = pages(client)
    assert len(answers) >= 3
    assert ours(answers) == ASSETS
    assert all(a.status_code == 200 and a.headers["ETag"].startswith('"') for a in answers)
    assert "previous" not in answers[0].links
    assert answers[1].links["previous"]["url"].endswith("/dsp/catalog/request")


def test_unchanged_pages_are_304_with_no_body_and_their_links(client: TestClient) -> None:
    first = pages(client)
    again = pages(client, by_url(first))
    assert [a.status_code for a in again] == [304] * len(first)
    assert all(a.content == b"" for a in again)
    assert [a.headers["ETag"] for a in again] == [a.headers["ETag"] for a in first]
    assert [a.links.get("next") for a in again] == [a.links.get("next") for a in first]


def test_an_asset_written_again_changes_its_page_only(client: TestClient) -> None:
    first = pages(client)
    tags = by_url(first)
    page_of = next(i for i, a in enumerate(first) if ASSETS[4] in ours([a]))
    answer = client.put(
        f"/management/v1/assets/{ASSETS[4]}", headers=KEY, json=asset(ASSETS[4], "new title")
    )
    assert answer.status_code == 200, answer.text
    again = pages(client, tags)
    assert [a.status_code for a in again] == [
        200 if i == page_of else 304 for i in range(len(first))
    ]
    titles = {d["@id"]: d["title"] for d in again[page_of].json()["dataset"]}
    assert titles[ASSETS[4]] == "new title"


def test_a_removed_asset_does_not_move_the_pages_before_it(client: TestClient) -> None:
    first = pages(client)
    tags = by_url(first)
    last_page = next(i for i, a in enumerate(first) if ASSETS[-1] in ours([a]))
    client.put(
        "/management/v1/contractdefinitions/pages", headers=KEY,
        json={"id": "pages", "accessPolicyId": "members", "contractPolicyId": "members",
              "assetSelector": {"assetIds": ASSETS[:-1]}},
    )  # fmt: skip
    answer = client.delete(f"/management/v1/assets/{ASSETS[-1]}", headers=KEY)
    assert answer.status_code == 204, answer.text
    again = pages(client, tags)
    # the contract definition changed: every page is read again, but the tokens are the same
    assert all(a.status_code == 200 for a in again)
    assert list(by_url(again))[:last_page] == list(tags)[:last_page]
    assert ours(again) == ASSETS[:-1]


def test_an_access_policy_that_no_longer_admits_the_caller_is_never_a_304(
    client: TestClient,
) -> None:
    tags = by_url(pages(client))
    answer = client.put(
        "/management/v1/policydefinitions/members", headers=KEY,
        json={"id": "members", "policy": BANKS},
    )  # fmt: skip
    assert answer.status_code == 200, answer.text
    again = pages(client, tags)
    assert all(a.status_code == 200 for a in again)
    assert ours(again) == []


def test_other_credentials_of_the_caller_are_never_a_304(tmp_path: Path) -> None:
    with app(tmp_path) as member:
        publish(member)
        tags = by_url(pages(member))
    held = [CredentialType.MEMBERSHIP, CredentialType.FINANCIAL_INSTITUTION]
    with app(tmp_path, held) as bank:
        again = pages(bank, tags)
        assert all(a.status_code == 200 for a in again)
        assert ours(again) == ASSETS  # the same datasets, but not vouched for by a 304
    with app(tmp_path, []) as stranger:  # no membership: sees none of them
        again = pages(stranger, tags)
        assert all(a.status_code == 200 for a in again)
        assert ours(again) == []


def test_a_bad_continuation_token_is_a_typed_400(client: TestClient) -> None:
    for token in ("3", "!!", "a" * 2000, token_for("x") + "=="):
        answer = client.post(
            f"/dsp/catalog/request?continuationToken={token}", json=REQUEST, headers=AUTH
        )
        assert answer.status_code == 400, token
        assert answer.json()["code"] == "bad_continuation_token"


def test_tokens_round_trip_and_are_one_spelling_per_id() -> None:
    for identifier in ("urn:kexin:asset:a", "中文-id/1?x=2", "a" * 300):
        assert after_token(token_for(identifier)) == identifier
    assert after_token(None) is None
    with pytest.raises(BadTokenError):
        after_token("")


def test_if_none_match_lists_and_weak_tags_match_but_not_a_star() -> None:
    assert matches('"a", W/"b"', '"b"')
    assert not matches('"a"', '"b"')
    assert not matches("*", '"b"')
    assert not matches(None, '"b"')
