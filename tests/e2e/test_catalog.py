"""The DSP catalogue over real servers: the city bureau offers datasets; the bank, authenticated
by DCP, sees exactly the offers whose access policy admits its verified credentials."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx

from identity.credentials import CredentialType
from tests.dsp_schemas import errors
from tests.e2e.space import TTL_S, Space, call, onboard
from tests.participants import ADMIN_KEY
from tests.policy.policies import FIRM_LIST, atom

KEY = {"X-Api-Key": ADMIN_KEY}
DSP = "https://w3id.org/dspace/2025/1/context.jsonld"
REQUEST = {"@context": [DSP], "@type": "CatalogRequestMessage"}


def access(left: str, operator: str, right: str) -> dict[str, Any]:
    return {
        "@type": "Set",
        "permission": [{"action": "use", "constraint": [atom(left, operator, right)]}],
    }


def publish(space: Space) -> None:
    base = space.bureau.base_url + "/management/v1"
    for name, region in (
        ("firm-list", "440100"),
        ("health-claims", "440100"),
        ("open-stats", "440000"),
    ):
        created = httpx.post(
            f"{base}/assets",
            headers=KEY,
            json={
                "id": f"urn:kexin:asset:{name}",
                "titleEn": name,
                "dataGrade": "general",
                "region": region,
                "dataAddress": {"type": "file", "path": f"/srv/{name}.csv"},
                **({"domain": "economic-development"} if name == "firm-list" else {}),
            },
        )
        assert created.status_code == 201, created.text
    for identifier, policy in (
        ("banks", access("kexin:role", "hasPart", "FinancialInstitution")),
        ("regulators", access("kexin:role", "hasPart", "Regulator")),
        ("members", access("kexin:membership", "eq", "active")),
        ("firm-terms", FIRM_LIST),
    ):
        assert (
            httpx.post(
                f"{base}/policydefinitions", headers=KEY, json={"id": identifier, "policy": policy}
            ).status_code
            == 201
        )
    for identifier, access_id, asset in (
        ("cd-banks", "banks", "firm-list"),
        ("cd-regulators", "regulators", "health-claims"),
        ("cd-members", "members", "open-stats"),
    ):
        created = httpx.post(
            f"{base}/contractdefinitions",
            headers=KEY,
            json={
                "id": identifier,
                "accessPolicyId": access_id,
                "contractPolicyId": "firm-terms",
                "assetSelector": {"assetIds": [f"urn:kexin:asset:{asset}"]},
            },
        )
        assert created.status_code == 201, created.text


def bank_asks(
    space: Space, path: str, *, method: str = "POST", body: object = REQUEST
) -> httpx.Response:
    return asyncio.run(
        call(
            space.bank,
            space.bureau.participant_id,
            f"{space.bureau.base_url}{path}",
            method=method,
            body=body,
        )
    )


def onboard_both(space: Space) -> None:
    asyncio.run(
        onboard(
            space.bank,
            space.authority,
            [CredentialType.MEMBERSHIP, CredentialType.FINANCIAL_INSTITUTION],
        )
    )
    asyncio.run(
        onboard(
            space.bureau,
            space.authority,
            [CredentialType.MEMBERSHIP, CredentialType.PUBLIC_DATA_HOLDER],
        )
    )


def test_the_bank_sees_only_what_its_credentials_admit(space: Space) -> None:
    onboard_both(space)
    publish(space)
    first = bank_asks(space, "/dsp/catalog/request")
    assert first.status_code == 200, first.text
    catalog = first.json()
    assert errors("catalog/catalog-schema.json", catalog) == []
    assert catalog["participantId"] == space.bureau.participant_id
    assert [d["@id"] for d in catalog["dataset"]] == [
        "urn:kexin:asset:firm-list"
    ]  # health-claims hidden
    (offer,) = catalog["dataset"][0]["hasPolicy"]
    assert "target" not in offer
    assert offer["assigner"] == space.bureau.participant_id
    assert 'rel="next"' in first.headers["Link"]

    # the next page as the Link header names it (a keyset token: the last asset id before it)
    (next_link,) = [
        part.split(";")[0].strip(" <>")
        for part in first.headers["Link"].split(",")
        if 'rel="next"' in part
    ]
    assert next_link.startswith(f"{space.bureau.base_url}/dsp/catalog/request?continuationToken=")
    second = bank_asks(space, next_link.removeprefix(space.bureau.base_url))
    assert second.status_code == 200, second.text
    assert [d["@id"] for d in second.json()["dataset"]] == ["urn:kexin:asset:open-stats"]
    assert 'rel="previous"' in second.headers["Link"]
    assert 'rel="next"' not in second.headers["Link"]

    dataset = bank_asks(
        space, "/dsp/catalog/datasets/urn:kexin:asset:firm-list", method="GET", body=None
    )
    assert dataset.status_code == 200
    assert errors("catalog/dataset-schema.json", dataset.json()) == []
    assert dataset.json()["kexin:domain"] == "economic-development"
    assert dataset.json()["kexin:domainName"] == [
        {"@value": "经济发展", "@language": "zh"},
        {"@value": "Economic development", "@language": "en"},
    ]
    assert catalog["dataset"][0]["kexin:domainName"] == dataset.json()["kexin:domainName"]
    hidden = bank_asks(
        space, "/dsp/catalog/datasets/urn:kexin:asset:health-claims", method="GET", body=None
    )
    assert hidden.status_code == 404
    assert hidden.json()["@type"] == "CatalogError"
    assert errors("catalog/catalog-error-schema.json", hidden.json()) == []


def test_catalog_refusals_are_typed(space: Space) -> None:
    onboard_both(space)
    unauthenticated = httpx.post(f"{space.bureau.base_url}/dsp/catalog/request", json=REQUEST)
    assert unauthenticated.status_code == 401
    assert unauthenticated.json()["@type"] == "CatalogError"
    assert unauthenticated.json()["code"] == "malformed_token"
    filtered = bank_asks(
        space, "/dsp/catalog/request", body={**REQUEST, "filter": [{"keyword": "firms"}]}
    )
    assert filtered.status_code == 400
    assert filtered.json()["code"] == "unsupported_filter"
    wrong = bank_asks(
        space, "/dsp/catalog/request", body={**REQUEST, "@type": "DatasetRequestMessage"}
    )
    assert wrong.status_code == 400
    assert wrong.json()["code"] == "malformed_message"
    assert bank_asks(space, "/dsp/catalog/request?continuationToken=-1").status_code == 400


def test_an_empty_catalog_has_no_dataset_key(space: Space) -> None:
    onboard_both(space)
    catalog = bank_asks(space, "/dsp/catalog/request").json()
    assert "dataset" not in catalog
    assert errors("catalog/catalog-schema.json", catalog) == []


def test_the_management_api_asks_a_peer_for_its_catalogue(space: Space) -> None:
    onboard_both(space)
    publish(space)
    answer = httpx.post(
        f"{space.bank.base_url}/management/v1/catalog/request",
        headers=KEY,
        json={
            "counterPartyId": space.bureau.participant_id,
            "counterPartyAddress": f"{space.bureau.base_url}/dsp",
        },
    )
    assert answer.status_code == 200, answer.text
    assert [d["@id"] for d in answer.json()["catalog"]["dataset"]] == ["urn:kexin:asset:firm-list"]
    next_page = answer.json()["next"]
    assert next_page.startswith(f"{space.bureau.base_url}/dsp/catalog/request?continuationToken=")
    assert next_page != f"{space.bureau.base_url}/dsp/catalog/request?continuationToken="
    unreachable = httpx.post(
        f"{space.bank.base_url}/management/v1/catalog/request",
        headers=KEY,
        json={
            "counterPartyId": space.bureau.participant_id,
            "counterPartyAddress": "http://127.0.0.1:1/dsp",
        },
    )
    assert unreachable.status_code == 502
    assert unreachable.json()["reason"] == "peer_unreachable"


def bank_sees(space: Space) -> list[str]:
    """The datasets of the bureau's catalogue for the bank, every page, asked by the bank's own
    running connector (its management API), as its operator would."""
    seen, token = [], None
    while True:
        answer = httpx.post(
            f"{space.bank.base_url}/management/v1/catalog/request",
            headers=KEY,
            json={
                "counterPartyId": space.bureau.participant_id,
                "counterPartyAddress": f"{space.bureau.base_url}/dsp",
                **({"continuationToken": token} if token else {}),
            },
        )
        assert answer.status_code == 200, answer.text
        seen += [d["@id"] for d in answer.json()["catalog"].get("dataset", [])]
        if answer.json()["next"] is None:
            return seen
        token = httpx.URL(answer.json()["next"]).params["continuationToken"]


def held_by_bank(space: Space) -> list[tuple[str, str]]:
    items = httpx.get(f"{space.bank.base_url}/management/v1/credentials", headers=KEY).json()
    return sorted((item["type"], item["status"]) for item in items["items"])


def test_a_revoked_licence_hides_only_what_needs_it_and_a_new_one_counts_at_once(
    space: Space,
) -> None:
    """Issue 13: after the bank's FinancialInstitutionCredential was revoked it was refused even
    a membership-only catalogue, and still after a new one was issued."""
    onboard_both(space)
    publish(space)
    firm_list, open_stats = "urn:kexin:asset:firm-list", "urn:kexin:asset:open-stats"
    assert bank_sees(space) == [firm_list, open_stats]

    admin = {"X-Api-Key": ADMIN_KEY}
    issued = httpx.get(
        f"{space.authority_url}/admin/credentials",
        params={"holder": space.bank.participant_id},
        headers=admin,
    ).json()
    licence = next(c for c in issued if c["type"] == "FinancialInstitutionCredential")
    assert httpx.post(
        f"{space.authority_url}/admin/credentials/{licence['id']}/revoke", headers=admin
    ).json()["revoked"]
    time.sleep(TTL_S * 2)  # the caches refresh

    assert held_by_bank(space) == [
        ("FinancialInstitutionCredential", "revoked"),
        ("MembershipCredential", "valid"),
    ]
    assert bank_sees(space) == [open_stats]  # the members' offer stays
    hidden = bank_asks(space, f"/dsp/catalog/datasets/{firm_list}", method="GET", body=None)
    assert hidden.status_code == 404  # what needs the licence does not

    renewed = asyncio.run(
        onboard(space.bank, space.authority, [CredentialType.FINANCIAL_INSTITUTION])
    )
    assert renewed["status"] == "ISSUED"
    assert bank_sees(space) == [firm_list, open_stats]  # at once, no cache to wait for
    assert held_by_bank(space) == [
        ("FinancialInstitutionCredential", "revoked"),
        ("FinancialInstitutionCredential", "valid"),
        ("MembershipCredential", "valid"),
    ]
    removed = httpx.delete(
        f"{space.bank.base_url}/management/v1/credentials/{licence['id']}", headers=KEY
    )
    assert removed.status_code == 204
    assert bank_sees(space) == [firm_list, open_stats]
