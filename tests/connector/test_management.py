"""The data holder's management API: keyed, validated, typed refusals, nothing half-stored."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr, ValidationError

from connector.app import create_app
from connector.catalog import domains
from connector.settings import ConnectorSettings, DomainEntry
from tests.participants import ADMIN_KEY, PASSPHRASE
from tests.policy.policies import FIRM_LIST, atom

KEY = {"X-Api-Key": ADMIN_KEY}


def asset(identifier: str = "urn:kexin:asset:firm-list", **changes: Any) -> dict[str, Any]:
    return {
        "id": identifier,
        "titleZh": "企业名录",
        "titleEn": "Firm list",
        "keywords": ["企业", "firms"],
        "domain": "economic-development",
        "dataGrade": "important",
        "personalInformation": False,
        "region": "440100",
        "version": "2026-11",
        "dataAddress": {"type": "file", "path": "/srv/data/firms.csv"},
        **changes,
    }


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    with client_on(f"sqlite:///{tmp_path / 'c.db'}") as test_client:
        yield test_client


@pytest.fixture
def each_client(database_url: str) -> Iterator[TestClient]:
    """The management API on a fresh database of each back end (SQLite, PostgreSQL)."""
    with client_on(database_url) as test_client:
        yield test_client


@contextmanager
def client_on(database_url: str, **more: Any) -> Iterator[TestClient]:
    settings = ConnectorSettings(
        participant_id="did:web:127.0.0.1%3A8181:bureau",
        database_url=database_url,
        key_passphrase=PASSPHRASE,  # type: ignore[arg-type]
        management_api_key=ADMIN_KEY,  # type: ignore[arg-type]
        data_roots=[Path("/srv/data")],
        **more,
    )
    with TestClient(create_app(settings)) as test_client:
        yield test_client


def test_the_api_needs_its_key(client: TestClient) -> None:
    refused = client.get("/management/v1/assets")
    assert refused.status_code == 401
    assert refused.json()["type"] == "ManagementError"
    assert (
        client.get(
            "/management/v1/assets", headers={"X-Api-Key": "wrong-key-0123456789"}
        ).status_code
        == 401
    )


def test_without_a_configured_key_the_api_is_closed(tmp_path: Path) -> None:
    settings = ConnectorSettings(
        participant_id="did:web:x",
        database_url=f"sqlite:///{tmp_path / 'c.db'}",
        key_passphrase=SecretStr(PASSPHRASE),
    )
    with TestClient(create_app(settings)) as client:
        assert client.get("/management/v1/assets", headers=KEY).json()["reason"] == "disabled"


def test_assets_are_created_listed_filtered_and_deleted(client: TestClient) -> None:
    created = client.post("/management/v1/assets", json=asset(), headers=KEY)
    assert created.status_code == 201
    assert created.json()["dataAddress"] == {"type": "file", "path": "/srv/data/firms.csv"}
    assert client.post("/management/v1/assets", json=asset(), headers=KEY).status_code == 409
    for index in range(3):
        client.post(
            "/management/v1/assets",
            json=asset(f"urn:kexin:asset:{index}", region="310000"),
            headers=KEY,
        )
    page = client.get("/management/v1/assets", params={"limit": 2}, headers=KEY).json()
    assert [a["id"] for a in page["items"]] == ["urn:kexin:asset:0", "urn:kexin:asset:1"]
    assert page["next"] == 2
    shanghai = client.get("/management/v1/assets", params={"region": "310000"}, headers=KEY).json()
    assert len(shanghai["items"]) == 3
    assert shanghai["next"] is None
    assert (
        client.get("/management/v1/assets/urn:kexin:asset:firm-list", headers=KEY).json()["titleZh"]
        == "企业名录"
    )
    assert (
        client.delete("/management/v1/assets/urn:kexin:asset:firm-list", headers=KEY).status_code
        == 204
    )
    assert (
        client.get("/management/v1/assets/urn:kexin:asset:firm-list", headers=KEY).status_code
        == 404
    )


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        pytest.param({"region": "999999"}, "administrative division", id="bad-region"),
        pytest.param({"titleZh": None, "titleEn": None}, "needs a title", id="no-title"),
        pytest.param({"dataGrade": "secret"}, "dataGrade", id="bad-grade"),
        pytest.param(
            {"dataAddress": {"type": "file", "path": "relative.csv"}},
            "absolute",
            id="relative-path",
        ),
        pytest.param(
            {"dataAddress": {"type": "sql", "query": "select 1"}},
            "needs database",
            id="sql-without-database",
        ),
        pytest.param({"dataAddress": {"type": "ftp"}}, "dataAddress", id="unknown-address-type"),
        pytest.param({"unexpected": 1}, "unexpected", id="unknown-field"),
        pytest.param(
            {"personalInformation": True}, "legal basis", id="personal-without-legal-basis"
        ),
        pytest.param(
            {"legalBasis": "consent"}, "personal information only", id="basis-without-personal"
        ),
        pytest.param(
            {"personalInformation": True, "legalBasis": "because"},
            "legalBasis",
            id="unknown-legal-basis",
        ),
        pytest.param(
            {"personalInformation": True, "legalBasis": "consent", "personCount": -1},
            "personCount",
            id="negative-person-count",
        ),
        pytest.param({"registrationCode": ""}, "registrationCode", id="empty-registration-code"),
        pytest.param(
            {"registrationCode": "GZ SJ 2026"}, "registrationCode", id="registration-code-spaces"
        ),
        pytest.param({"registrationCode": "X" * 101}, "registrationCode", id="long-registration"),
    ],
)
def test_bad_assets_are_refused_with_a_typed_body_and_not_stored(
    client: TestClient, changes: dict[str, Any], message: str
) -> None:
    refused = client.post("/management/v1/assets", json=asset(**changes), headers=KEY)
    assert refused.status_code == 422
    assert refused.json()["type"] == "BadRequest"
    assert message in refused.json()["message"]
    assert client.get("/management/v1/assets", headers=KEY).json()["items"] == []


def test_policies_are_linted_before_they_are_stored(client: TestClient) -> None:
    stored = client.post(
        "/management/v1/policydefinitions",
        json={"id": "firm-list", "policy": FIRM_LIST},
        headers=KEY,
    )
    assert stored.status_code == 201
    assert stored.json()["warnings"] == []
    unknown = {
        **FIRM_LIST,
        "permission": [{"action": "use", "constraint": [atom("weather", "eq", "sunny")]}],
    }
    refused = client.post(
        "/management/v1/policydefinitions", json={"id": "bad", "policy": unknown}, headers=KEY
    )
    assert refused.status_code == 400
    assert refused.json()["reason"] == "policy_rejected"
    assert "permission[0].constraint[0].leftOperand" in refused.json()["message"]
    impossible = {
        **FIRM_LIST,
        "permission": [
            {"action": "use", "constraint": [atom("count", "lt", "5"), atom("count", "gt", "10")]}
        ],
    }
    assert (
        client.post(
            "/management/v1/policydefinitions",
            json={"id": "bad", "policy": impossible},
            headers=KEY,
        ).json()["reason"]
        == "policy_rejected"
    )
    listed = client.get("/management/v1/policydefinitions", headers=KEY).json()["items"]
    assert [p["id"] for p in listed] == ["firm-list"]


def test_contract_definitions_need_existing_policies(client: TestClient) -> None:
    client.post(
        "/management/v1/policydefinitions",
        json={"id": "firm-list", "policy": FIRM_LIST},
        headers=KEY,
    )
    missing = client.post(
        "/management/v1/contractdefinitions",
        json={"id": "cd", "accessPolicyId": "nope", "contractPolicyId": "firm-list"},
        headers=KEY,
    )
    assert missing.status_code == 404
    created = client.post(
        "/management/v1/contractdefinitions",
        json={
            "id": "cd",
            "accessPolicyId": "firm-list",
            "contractPolicyId": "firm-list",
            "assetSelector": {"region": "440100"},
        },
        headers=KEY,
    )
    assert created.status_code == 201
    assert client.get("/management/v1/contractdefinitions", headers=KEY).json()["items"][0][
        "assetSelector"
    ] == {"region": "440100"}


def test_a_sql_data_address_must_name_a_configured_database(client: TestClient) -> None:
    sql = {"type": "sql", "query": "select * from firms", "database": "registry"}
    refused = client.post("/management/v1/assets", json=asset(dataAddress=sql), headers=KEY)
    assert refused.status_code == 400
    assert refused.json()["reason"] == "unknown_database"
    assert client.get("/management/v1/assets", headers=KEY).json()["items"] == []


def test_a_configured_sql_source_is_accepted(tmp_path: Path) -> None:
    settings = ConnectorSettings(
        participant_id="did:web:x",
        database_url=f"sqlite:///{tmp_path / 'c.db'}",
        key_passphrase=SecretStr(PASSPHRASE),
        management_api_key=SecretStr(ADMIN_KEY),
        sql_sources={"registry": f"sqlite:///{tmp_path / 'registry.db'}"},
    )
    with TestClient(create_app(settings)) as client:
        sql = {"type": "sql", "query": "select * from firms", "database": "registry"}
        assert (
            client.post(
                "/management/v1/assets", json=asset(dataAddress=sql), headers=KEY
            ).status_code
            == 201
        )


def test_an_asset_names_one_of_the_plans_scenario_domains_and_shows_its_names(
    client: TestClient,
) -> None:
    made = client.post("/management/v1/assets", json=asset(), headers=KEY)
    assert made.status_code == 201, made.text
    assert made.json()["domainName"] == {"zh": "经济发展", "en": "Economic development"}
    refused = client.post(
        "/management/v1/assets", json=asset("urn:kexin:asset:2", domain="tourism"), headers=KEY
    )
    assert refused.status_code == 400
    assert refused.json()["reason"] == "unknown_domain"
    assert "economic-development" in refused.json()["message"]
    without = client.post(
        "/management/v1/assets", json=asset("urn:kexin:asset:3", domain=None), headers=KEY
    )
    assert without.status_code == 201  # a domain is optional; one that is given must be known
    assert without.json()["domainName"] is None
    listed = client.get("/management/v1/domains", headers=KEY).json()["items"]
    assert len(listed) == 14
    assert listed[0] == {"id": "economic-development", "nameZh": "经济发展",
                         "nameEn": "Economic development"}  # fmt: skip


def test_a_deployment_gives_its_own_domain_list(tmp_path: Path) -> None:
    settings = ConnectorSettings(
        participant_id="did:web:x",
        database_url=f"sqlite:///{tmp_path / 'c.db'}",
        key_passphrase=SecretStr(PASSPHRASE),
        management_api_key=SecretStr(ADMIN_KEY),
        scenario_domains=[
            "economic-development",
            DomainEntry(id="financial-services", name_zh="金融服务", name_en="Financial services"),
        ],
        data_roots=[Path("/srv/data")],
    )
    with TestClient(create_app(settings)) as client:
        assert client.post("/management/v1/assets", json=asset(), headers=KEY).status_code == 201
        own = client.post(
            "/management/v1/assets",
            json=asset("urn:kexin:asset:2", domain="financial-services"),
            headers=KEY,
        )
        assert own.json()["domainName"] == {"zh": "金融服务", "en": "Financial services"}
        refused = client.post(  # shipped, but not in this deployment's list
            "/management/v1/assets", json=asset("urn:kexin:asset:3", domain="energy"), headers=KEY
        )
        assert refused.status_code == 400
        assert refused.json()["reason"] == "unknown_domain"


def test_a_shipped_id_that_does_not_exist_is_refused_in_settings(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="not one of the shipped scenario domains"):
        ConnectorSettings(
            participant_id="did:web:x",
            key_passphrase=SecretStr(PASSPHRASE),
            scenario_domains=["city-governance"],
        )


def test_the_shipped_domains_are_the_plans_list_in_shared() -> None:
    """The package's copy (read at run time) is the reference list, word for word."""
    shipped = json.loads(
        (Path(__file__).parents[2] / "connector" / "catalog" / "scenario-domains.json").read_text()
    )
    reference = json.loads(
        (Path(__file__).parents[3] / "shared" / "reference" / "scenario-domains.json").read_text()
    )
    assert shipped == reference
    assert [(d.id, d.name_zh, d.name_en) for d in domains.shipped()] == [
        (d["id"], d["nameZh"], d["nameEn"]) for d in reference["domains"]
    ]


def test_an_asset_is_updated_in_place_and_checked_as_on_create(client: TestClient) -> None:
    created = client.post("/management/v1/assets", json=asset(), headers=KEY).json()
    path = "/management/v1/assets/urn:kexin:asset:firm-list"
    changed = client.put(path, json=asset(titleEn="Firms of Guangzhou", region="440106"),
                         headers=KEY)  # fmt: skip
    assert changed.status_code == 200, changed.text
    assert (changed.json()["titleEn"], changed.json()["region"]) == ("Firms of Guangzhou", "440106")
    assert changed.json()["createdAt"] == created["createdAt"]
    assert client.get(path, headers=KEY).json()["titleEn"] == "Firms of Guangzhou"
    outside = asset(dataAddress={"type": "file", "path": "/etc/passwd"})
    assert client.put(path, json=outside, headers=KEY).json()["reason"] == "data_address_refused"
    other = client.put(path, json=asset("urn:kexin:asset:other"), headers=KEY)
    assert (other.status_code, other.json()["reason"]) == (400, "id_mismatch")
    missing = client.put("/management/v1/assets/urn:x", json=asset("urn:x"), headers=KEY)
    assert missing.status_code == 404
    assert client.get(path, headers=KEY).json()["region"] == "440106"


OPEN = {"@type": "Set", "permission": [{"action": "use"}]}


def test_policy_definitions_have_full_crud(client: TestClient) -> None:
    base = "/management/v1/policydefinitions"
    assert client.post(base, json={"id": "p", "policy": OPEN}, headers=KEY).status_code == 201
    shown = client.get(f"{base}/p", headers=KEY).json()
    assert (shown["id"], shown["policy"]["permission"]) == ("p", [{"action": "use"}])
    replaced = client.put(f"{base}/p", json={"id": "p", "policy": FIRM_LIST}, headers=KEY)
    assert replaced.status_code == 200, replaced.text
    assert len(replaced.json()["policy"]["permission"][0]["constraint"]) == 4
    unknown = {"@type": "Set", "permission": [{"action": "use",
                                               "constraint": [atom("weather", "eq", "sun")]}]}  # fmt: skip
    refused = client.put(f"{base}/p", json={"id": "p", "policy": unknown}, headers=KEY)
    assert refused.json()["reason"] == "policy_rejected"
    assert len(client.get(f"{base}/p", headers=KEY).json()["policy"]["permission"][0]
               ["constraint"]) == 4  # fmt: skip
    assert client.delete(f"{base}/p", headers=KEY).status_code == 204
    assert client.get(f"{base}/p", headers=KEY).status_code == 404
    assert client.delete(f"{base}/p", headers=KEY).status_code == 404


def test_what_an_offer_uses_cannot_be_deleted(each_client: TestClient) -> None:
    client = each_client
    client.post("/management/v1/assets", json=asset(), headers=KEY)
    for name in ("access", "terms"):
        client.post("/management/v1/policydefinitions", json={"id": name, "policy": OPEN},
                    headers=KEY)  # fmt: skip
    definition = {"id": "cd", "accessPolicyId": "access", "contractPolicyId": "terms",
                  "assetSelector": {"assetIds": ["urn:kexin:asset:firm-list"]}}  # fmt: skip
    assert client.post("/management/v1/contractdefinitions", json=definition,
                       headers=KEY).status_code == 201  # fmt: skip
    policy = client.delete("/management/v1/policydefinitions/terms", headers=KEY)
    assert policy.status_code == 409
    assert policy.json()["type"] == "ManagementError"
    assert policy.json()["reason"] == "in_use"
    assert policy.json()["usedBy"] == {"contractDefinitions": ["cd"]}
    assert "contractDefinitions: cd" in policy.json()["message"]
    used = client.delete("/management/v1/assets/urn:kexin:asset:firm-list", headers=KEY)
    assert used.status_code == 409
    assert used.json()["usedBy"] == {"contractDefinitions": ["cd"], "agreements": [],
                                     "negotiations": []}  # fmt: skip
    assert client.get("/management/v1/policydefinitions/terms", headers=KEY).status_code == 200

    moved = client.put("/management/v1/contractdefinitions/cd",
                       json={**definition, "assetSelector": {"region": "440100"}}, headers=KEY)  # fmt: skip
    assert moved.status_code == 200, moved.text
    assert client.get("/management/v1/contractdefinitions/cd", headers=KEY).json()[
        "assetSelector"] == {"region": "440100"}  # fmt: skip
    missing = client.put("/management/v1/contractdefinitions/cd",
                         json={**definition, "accessPolicyId": "nope"}, headers=KEY)  # fmt: skip
    assert missing.status_code == 404
    # The selector no longer names the asset: nothing holds it now.
    assert client.delete("/management/v1/assets/urn:kexin:asset:firm-list",
                         headers=KEY).status_code == 204  # fmt: skip
    assert client.delete("/management/v1/contractdefinitions/cd", headers=KEY).status_code == 204
    assert client.delete("/management/v1/policydefinitions/terms", headers=KEY).status_code == 204


def test_every_list_takes_offset_limit_sort_and_its_filters(each_client: TestClient) -> None:
    client = each_client
    for index, grade in enumerate(["general", "important", "general"]):
        client.post("/management/v1/assets", json=asset(f"urn:kexin:asset:{index}",
                                                        dataGrade=grade), headers=KEY)  # fmt: skip
    assets = "/management/v1/assets"
    ids = [a["id"] for a in client.get(assets, params={"sort": "-id"}, headers=KEY).json()["items"]]
    assert ids == ["urn:kexin:asset:2", "urn:kexin:asset:1", "urn:kexin:asset:0"]
    by_grade = client.get(assets, params={"sort": "dataGrade", "limit": 2}, headers=KEY).json()
    assert [a["id"] for a in by_grade["items"]] == ["urn:kexin:asset:0", "urn:kexin:asset:2"]
    assert by_grade["next"] == 2
    refused = client.get(assets, params={"sort": "colour"}, headers=KEY)
    assert (refused.status_code, refused.json()["reason"]) == (400, "unknown_sort")
    assert "createdAt" in refused.json()["message"]
    for path in ("policydefinitions", "contractdefinitions", "negotiations", "agreements",
                 "transfers"):  # fmt: skip
        answered = client.get(f"/management/v1/{path}", params={"sort": "-createdAt",
                                                                 "offset": 0, "limit": 5},
                              headers=KEY)  # fmt: skip
        assert answered.status_code == 200, (path, answered.text)
        assert answered.json() == {"items": [], "offset": 0, "next": None}
    assert client.get("/management/v1/negotiations", params={"sort": "id; drop"},
                      headers=KEY).status_code == 422  # fmt: skip
    assert client.get("/management/v1/agreements/urn:none", headers=KEY).status_code == 404


def test_asset_changes_are_audited_in_their_own_transaction_for_the_ledger(
    each_client: TestClient,
) -> None:
    """Offered, changed, withdrawn: one audit row each (the ledger's asset events), with the
    hash of the description as offered; a refused change leaves none."""
    import hashlib

    from sqlmodel import Session, col, select

    from connector.audit import AuditEvent
    from ledger.canonical import canonicalise

    client = each_client
    personal = asset(personalInformation=True, legalBasis="consent", personCount=1200)
    made = client.post("/management/v1/assets", json=personal, headers=KEY)
    assert made.status_code == 201, made.text
    assert (made.json()["legalBasis"], made.json()["personCount"]) == ("consent", 1200)
    assert client.post("/management/v1/assets", json=personal, headers=KEY).status_code == 409
    changed = client.put(
        "/management/v1/assets/urn:kexin:asset:firm-list", json={**personal, "version": "2026-12"},
        headers=KEY,
    )  # fmt: skip
    assert changed.status_code == 200
    assert client.delete("/management/v1/assets/urn:kexin:asset:firm-list",
                         headers=KEY).status_code == 204  # fmt: skip
    engine = client.app.state.engine  # type: ignore[attr-defined]
    with Session(engine) as session:
        rows = session.exec(
            select(AuditEvent)
            .where(col(AuditEvent.action).startswith("asset "))
            .order_by(col(AuditEvent.id))
        ).all()
    assert [r.action for r in rows] == ["asset offered", "asset changed", "asset withdrawn"]
    assert {r.subject for r in rows} == {"urn:kexin:asset:firm-list"}
    shown = {k: v for k, v in personal.items() if k != "dataAddress"}
    first = hashlib.sha256(canonicalise({**shown, "descriptionZh": None,
                                         "descriptionEn": None})).hexdigest()  # fmt: skip
    assert rows[0].evidence_hash == first
    assert rows[1].evidence_hash == rows[2].evidence_hash != first


def test_a_registered_asset_offers_its_registration_code_in_the_catalogue(
    client: TestClient,
) -> None:
    """TC609's registration code (登记编码): kept with the asset, shown by the management API,
    offered in the DCAT dataset as ``kexin:registrationCode`` (the broker keeps it from there),
    part of the description whose hash goes on the ledger, and cleared by an update without it."""
    from sqlmodel import Session

    from connector.catalog.messages import dataset
    from connector.catalog.store import Asset
    from connector.management.routes import description_hash

    registered = asset(registrationCode="GZ-SJ-2026-0001")
    made = client.post("/management/v1/assets", json=registered, headers=KEY)
    assert made.status_code == 201, made.text
    assert made.json()["registrationCode"] == "GZ-SJ-2026-0001"
    path = "/management/v1/assets/urn:kexin:asset:firm-list"
    assert client.get(path, headers=KEY).json()["registrationCode"] == "GZ-SJ-2026-0001"
    engine = client.app.state.engine  # type: ignore[attr-defined]
    with Session(engine) as session:
        stored = session.get(Asset, "urn:kexin:asset:firm-list")
        assert stored is not None
        offered = dataset(stored, [], "urn:service", None)
        with_code = description_hash(stored)
        stored.registration_code = None
        assert description_hash(stored) != with_code
    assert offered["kexin:registrationCode"] == "GZ-SJ-2026-0001"
    assert client.put(path, json=asset(), headers=KEY).status_code == 200
    assert client.get(path, headers=KEY).json()["registrationCode"] is None


def test_a_purpose_is_judged_by_the_deployments_vocabulary(tmp_path: Path) -> None:
    """Kexin's purposes and the deployment's own (CONNECTOR_PURPOSES): a policy naming one
    neither knows is stored with the linter's warning; one the deployment added, without."""
    policy = {
        **FIRM_LIST,
        "permission": [{"action": "use", "constraint": [atom("purpose", "isA", "tax-audit")]}],
    }
    body = {"id": "audits", "policy": policy}
    with client_on(f"sqlite:///{tmp_path / 'a.db'}") as plain:
        stored = plain.post("/management/v1/policydefinitions", json=body, headers=KEY)
    assert stored.status_code == 201, stored.text
    [warning] = stored.json()["warnings"]
    assert warning.startswith("warning unknown-purpose at permission[0].constraint[0]: ")
    purposes = {"tax-audit": "regulatory-supervision"}
    with client_on(f"sqlite:///{tmp_path / 'b.db'}", purposes=purposes) as extended:
        known = extended.post("/management/v1/policydefinitions", json=body, headers=KEY)
    assert (known.status_code, known.json()["warnings"]) == (201, [])


@pytest.mark.parametrize(
    ("purposes", "message"),
    [
        ({"tax-audit": "taxation"}, "is a form of 'taxation', not a purpose"),
        ({"a-one": "a-two", "a-two": "a-one"}, "a form of itself"),
        ({"Tax Audit": None}, "purposes"),
    ],
)
def test_a_deployments_purposes_are_checked_in_settings(
    purposes: dict[str, str | None], message: str
) -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match=message):
        ConnectorSettings(
            participant_id="did:web:127.0.0.1%3A8181:bureau",
            key_passphrase=PASSPHRASE,  # type: ignore[arg-type]
            purposes=purposes,
        )
