"""The typed management client against a real connector on loopback: typed answers, typed
refusals carrying the connector's body, an unreachable connector as a typed error."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from connector.app import create_app
from connector.management.client import ManagementClient
from connector.management.routes import AssetIn
from connector.management.views import AssetView
from connector.settings import ConnectorSettings
from dataspace.servers import bind, serve_in_thread
from service.client import UNREACHABLE, ApiError
from tests.participants import ADMIN_KEY, PASSPHRASE
from tests.policy.policies import FIRM_LIST, atom

FIRMS = "urn:kexin:asset:firm-list"


def asset_body(identifier: str = FIRMS, **changes: Any) -> dict[str, Any]:
    return {
        "id": identifier,
        "titleZh": "企业名录",
        "dataGrade": "important",
        "region": "440100",
        "dataAddress": {"type": "file", "path": "/srv/data/firms.csv"},
        **changes,
    }


@pytest.fixture(scope="module")
def connector_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    folder = tmp_path_factory.mktemp("connector")
    settings = ConnectorSettings(
        participant_id="did:web:127.0.0.1%3A8181:bureau",
        database_url=f"sqlite:///{folder / 'c.db'}",
        key_passphrase=PASSPHRASE,  # type: ignore[arg-type]
        management_api_key=ADMIN_KEY,  # type: ignore[arg-type]
        data_roots=[Path("/srv/data")],
    )
    with serve_in_thread(create_app(settings), bind()) as url:
        yield url


@pytest.fixture
def client(connector_url: str) -> Iterator[ManagementClient]:
    with ManagementClient(connector_url, ADMIN_KEY) as management:
        yield management


def test_assets_come_back_as_typed_views(client: ManagementClient) -> None:
    made = client.create_asset(AssetIn.model_validate(asset_body()))
    assert isinstance(made, AssetView)
    assert (made.id, made.title_zh, made.data_grade) == (FIRMS, "企业名录", "important")
    assert made.data_address == {"type": "file", "path": "/srv/data/firms.csv"}
    client.create_asset(asset_body("urn:kexin:asset:open-stats", region="440000"))
    assert client.asset(FIRMS) == made
    page = client.assets(limit=1)
    assert [a.id for a in page.items] == [FIRMS]
    assert page.next == 1
    assert [a.id for a in client.assets(region="440000").items] == ["urn:kexin:asset:open-stats"]
    client.delete_asset("urn:kexin:asset:open-stats")
    with pytest.raises(ApiError) as gone:
        client.asset("urn:kexin:asset:open-stats")
    assert (gone.value.status, gone.value.reason) == (404, "not_found")


def test_a_refusal_carries_the_connectors_typed_body(client: ManagementClient) -> None:
    client.create_asset(asset_body("urn:kexin:asset:twice"))
    with pytest.raises(ApiError) as twice:
        client.create_asset(asset_body("urn:kexin:asset:twice"))
    assert twice.value.status == 409
    assert twice.value.body.type == "ManagementError"
    assert twice.value.reason == "exists"
    with pytest.raises(ApiError) as invalid:
        client.create_asset(asset_body("urn:kexin:asset:bad", region="999999"))
    assert (invalid.value.status, invalid.value.body.type) == (422, "BadRequest")
    assert "administrative division" in invalid.value.message


def test_policies_are_linted_by_the_connector(client: ManagementClient) -> None:
    stored = client.create_policy("firm-terms", FIRM_LIST)
    assert stored.warnings == []
    assert stored.policy["permission"][0]["action"] == "use"
    unknown = {**FIRM_LIST, "permission": [{"action": "use", "constraint": [atom("x", "eq", "y")]}]}
    with pytest.raises(ApiError) as refused:
        client.create_policy("bad", unknown)
    assert (refused.value.status, refused.value.reason) == (400, "policy_rejected")
    assert "firm-terms" in [p.id for p in client.policies().items]


def test_contract_definitions_join_policies_and_assets(client: ManagementClient) -> None:
    client.create_policy("open", {"@type": "Set", "permission": [{"action": "use"}]})
    made = client.create_contract_definition(
        {
            "id": "cd-open",
            "accessPolicyId": "open",
            "contractPolicyId": "open",
            "assetSelector": {"region": "440100"},
        }
    )
    assert (made.access_policy_id, made.asset_selector) == ("open", {"region": "440100"})
    assert "cd-open" in [d.id for d in client.contract_definitions().items]
    with pytest.raises(ApiError) as missing:
        client.create_contract_definition(
            {"id": "cd-x", "accessPolicyId": "nope", "contractPolicyId": "open"}
        )
    assert missing.value.status == 404


def test_lists_of_processes_are_typed_and_empty_at_first(client: ManagementClient) -> None:
    assert client.negotiations().items == []
    assert client.agreements().items == []
    assert client.transfers(role="consumer").items == []
    assert client.credentials().items == []
    assert len(client.domains().items) == 14


def test_a_wrong_key_is_refused_typed(connector_url: str) -> None:
    with (
        ManagementClient(connector_url, "wrong-key-0123456789") as wrong,
        pytest.raises(ApiError) as refused,
    ):
        wrong.assets()
    assert (refused.value.status, refused.value.reason) == (401, "not_authorized")


def test_an_unreachable_connector_is_a_typed_error() -> None:
    sock = bind()  # bound, never listening: connections are refused
    port = sock.getsockname()[1]
    try:
        with (
            ManagementClient(f"http://127.0.0.1:{port}", ADMIN_KEY) as nowhere,
            pytest.raises(ApiError) as unreachable,
        ):
            nowhere.assets()
    finally:
        sock.close()
    assert (unreachable.value.status, unreachable.value.reason) == (0, UNREACHABLE)
    assert f"127.0.0.1:{port}" in unreachable.value.message
