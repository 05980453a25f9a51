"""The data holder's commands against real connectors and an authority on loopback: the city
bureau publishes a CSV with a policy and an offer; the bank browses the bureau's catalogue,
negotiates, reads its agreement and runs a transfer; what an agreement uses cannot be removed;
bad input, a wrong key and an unreachable connector each give one line and the documented
exit code."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from dataspace.cli import app
from dataspace.output import EXIT_CONFIG, EXIT_POLICY
from identity.credentials import CredentialType
from tests.e2e.space import Space, onboard, start_space
from tests.participants import ADMIN_KEY
from tests.policy.policies import FIRM_LIST, atom

runner = CliRunner()
FIRMS = "urn:kexin:asset:firm-list"
MEMBERS = {"@type": "Set",
           "permission": [{"action": "use", "constraint": [atom("kexin:membership", "eq", "active")]}]}  # fmt: skip
NOTHING = {"@type": "Set", "prohibition": [{"action": "distribute"}]}
UNKNOWN = {"@type": "Set",
           "permission": [{"action": "use", "constraint": [atom("weather", "eq", "sunny")]}]}  # fmt: skip


@pytest.fixture
def space(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Space]:
    """Both onboarded; the shell is the bureau's (its connector's URL and key)."""
    with start_space(tmp_path, allow_list=True) as started:
        asyncio.run(onboard(started.bank, started.authority,
                            [CredentialType.MEMBERSHIP, CredentialType.FINANCIAL_INSTITUTION]))  # fmt: skip
        asyncio.run(onboard(started.bureau, started.authority, [CredentialType.MEMBERSHIP]))
        monkeypatch.setenv("CONNECTOR_PUBLIC_URL", started.bureau.base_url)
        monkeypatch.setenv("CONNECTOR_MANAGEMENT_API_KEY", ADMIN_KEY)
        yield started


def run(*args: str) -> Result:
    return runner.invoke(app, list(args))


def ok(*args: str) -> Result:
    result = run(*args)
    assert result.exit_code == 0, (args, result.output)
    assert "Traceback" not in result.output
    return result


def as_json(*args: str) -> Any:
    return json.loads(ok(*args, "--output", "json").stdout)


def eventually(check: Callable[[], Any], timeout_s: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.2)
    raise AssertionError("not in time")


def write(folder: Path, name: str, content: object) -> str:
    path = folder / name
    path.write_text(content if isinstance(content, str) else json.dumps(content), "utf-8")
    return str(path)


def publish(space: Space, folder: Path) -> None:
    csv = write(folder, "firms.csv", "uscc,name\n91440101MA59XKQ72B,示例\n")
    added = ok("assets", "add", FIRMS, "--title-zh", "企业名录", "--data-grade", "general",
               "--region", "440100", "--keyword", "企业", "--file", csv)  # fmt: skip
    assert added.stdout == f"added {FIRMS}\n"
    ok("policies", "add", "members", write(folder, "members.json", MEMBERS))
    ok("policies", "add", "firm-terms", write(folder, "terms.json", FIRM_LIST))
    ok("offers", "add", "cd-firms", "--access-policy", "members",
       "--contract-policy", "firm-terms", "--asset", FIRMS)  # fmt: skip


def test_the_bureau_publishes_and_the_bank_negotiates_and_transfers(
    space: Space, tmp_path: Path
) -> None:
    publish(space, tmp_path)
    listed = ok("assets", "list").stdout.splitlines()
    assert listed[0].split() == ["ID", "TITLE", "GRADE", "REGION", "DOMAIN", "ADDRESS"]
    assert listed[1].split() == [FIRMS, "企业名录", "general", "440100", "-", "file"]
    assert as_json("assets", "show", FIRMS)["dataAddress"]["path"] == str(tmp_path / "firms.csv")
    page = as_json("assets", "list", "--limit", "1")  # the API's own page
    assert (len(page["items"]), page["offset"], page["next"]) == (1, 0, None)
    assert [p["id"] for p in as_json("policies", "list", "--sort", "-id")["items"]] == [
        "members", "firm-terms"]  # fmt: skip
    assert as_json("offers", "list")["items"][0]["assetSelector"] == {"assetIds": [FIRMS]}

    bank = ("--url", space.bank_url)
    dsp = space.bureau.base_url + "/dsp"
    bureau = space.bureau.participant_id
    catalog = ok("catalog", bureau, "--address", dsp, *bank).stdout.splitlines()
    assert catalog[0].split() == ["DATASET", "TITLE", "OFFER"]
    assert catalog[1].split()[0] == FIRMS
    # one dataset, asked for alone (DSP's GET /catalog/datasets/{id}), with its offers
    [alone] = as_json("catalog", bureau, "--address", dsp, "--dataset", FIRMS, *bank)
    assert (alone["@id"], alone["hasPolicy"][0]["@type"]) == (FIRMS, "Offer")
    absent = run("catalog", bureau, "--address", dsp, "--dataset", "urn:kexin:asset:none", *bank)
    assert absent.exit_code == 1
    assert absent.stderr.startswith(
        f"refused: peer_refused: {dsp}/catalog/datasets/urn:kexin:asset:none answered 404"
    )

    requested = ok("negotiations", "request", "--provider", bureau, "--address", dsp,
                   "--dataset", FIRMS, "--purpose", "credit-assessment", *bank)  # fmt: skip
    negotiation_id = requested.stdout.rsplit(": ", 1)[0]
    [agreement] = eventually(lambda: as_json("agreements", "list", *bank)["items"])
    assert (agreement["assetId"], agreement["negotiationId"]) == (FIRMS, negotiation_id)
    shown = as_json("agreements", "show", agreement["agreementId"], *bank)
    assert shown["negotiation"]["state"] == "FINALIZED"
    assert shown["agreement"]["target"] == FIRMS
    nothing = run("agreements", "show", "urn:uuid:none", *bank)
    assert (nothing.exit_code, nothing.stderr) == (
        1,
        "refused: not_found: no agreement urn:uuid:none\n",
    )

    used = run("assets", "remove", FIRMS)  # the bureau's agreement is for it
    assert used.exit_code == 1
    [line] = used.stderr.splitlines()
    assert line.startswith(f"refused: in_use: asset {FIRMS} is in use (contractDefinitions: "
                           "cd-firms; agreements: ")  # fmt: skip
    offer_used = run("offers", "remove", "cd-firms")
    assert offer_used.exit_code == 1
    assert "agreements: " in offer_used.stderr
    policy_used = run("policies", "remove", "firm-terms")
    assert policy_used.stderr == (
        "refused: in_use: policy definition firm-terms is in use (contractDefinitions: cd-firms)\n"
    )

    started = ok("transfers", "request", "--provider", bureau, "--address", dsp,
                 "--agreement", agreement["agreementId"], *bank)  # fmt: skip
    transfer_id = started.stdout.rsplit(": ", 1)[0]
    eventually(lambda: as_json("transfers", "show", transfer_id, *bank)["state"] == "STARTED")
    table = ok("transfers", "list", "--role", "consumer", *bank).stdout.splitlines()
    assert table[1].split()[:3] == [transfer_id, "consumer", "STARTED"]
    completed = ok("transfers", "complete", transfer_id, *bank)
    assert completed.stdout == f"{transfer_id}: COMPLETED\n"
    again = run("transfers", "complete", transfer_id, *bank)
    assert again.exit_code == 1
    assert again.stderr.startswith("refused: illegal_transition: ")

    updated = ok("assets", "update", FIRMS, "--title-en", "Firm list")
    assert updated.stdout == f"updated {FIRMS}\n"
    after = as_json("assets", "show", FIRMS)
    assert (after["titleEn"], after["titleZh"], after["keywords"]) == (
        "Firm list", "企业名录", ["企业"])  # fmt: skip
    unstated = run("assets", "update", FIRMS, "--personal-information")
    assert unstated.exit_code == 1
    assert "legal basis" in unstated.stderr
    ok("assets", "update", FIRMS, "--personal-information", "--legal-basis", "consent",
       "--person-count", "1200")  # fmt: skip
    personal = as_json("assets", "show", FIRMS)
    assert (personal["personalInformation"], personal["legalBasis"], personal["personCount"]) == (
        True, "consent", 1200)  # fmt: skip
    ok("assets", "update", FIRMS, "--no-personal-information")
    cleared = as_json("assets", "show", FIRMS)
    assert (cleared["personalInformation"], cleared["legalBasis"], cleared["personCount"]) == (
        False, None, None)  # fmt: skip
    ok("assets", "update", FIRMS, "--registration-code", "GZ-SJ-2026-0001")
    registered = as_json("assets", "show", FIRMS)
    assert (registered["registrationCode"], registered["titleEn"]) == (
        "GZ-SJ-2026-0001",
        "Firm list",
    )


def test_a_policy_with_errors_is_linted_and_not_saved(space: Space, tmp_path: Path) -> None:
    bad = write(tmp_path, "bad.json", UNKNOWN)
    linted = run("policies", "lint", bad)
    assert linted.exit_code == EXIT_POLICY
    assert linted.stderr.startswith("error ")
    assert "permission[0].constraint[0].leftOperand" in linted.stderr
    refused = run("policies", "add", "weather", bad)
    assert refused.exit_code == EXIT_POLICY
    assert refused.stderr.splitlines()[-1] == "not saved: weather has errors"
    assert ok("policies", "list").stdout == "no policy definitions\n"
    good = ok("policies", "lint", write(tmp_path, "good.json", FIRM_LIST))
    assert good.stdout == "no findings\n"
    no_rules = ok("policies", "lint", write(tmp_path, "none.json", NOTHING))
    assert no_rules.stderr.startswith("warning grants-nothing")
    assert no_rules.stdout == "1 warning(s), no errors\n"


def test_lint_knows_the_deployments_purposes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    audits = write(tmp_path, "audits.json", {"@type": "Set", "permission": [
        {"action": "use", "constraint": [atom("purpose", "isA", "tax-audit")]}]})  # fmt: skip
    unknown = ok("policies", "lint", audits)
    assert unknown.stderr.startswith("warning unknown-purpose at permission[0].constraint[0]: ")
    monkeypatch.setenv("CONNECTOR_PURPOSES", '{"tax-audit": "regulatory-supervision"}')
    assert ok("policies", "lint", audits).stdout == "no findings\n"
    monkeypatch.setenv("CONNECTOR_PURPOSES", '{"tax-audit": "taxation"}')  # as serve refuses it
    unknown_broader = run("policies", "lint", audits)
    assert unknown_broader.exit_code == EXIT_CONFIG
    assert "is a form of 'taxation', not a purpose" in unknown_broader.stderr
    monkeypatch.setenv("CONNECTOR_PURPOSES", '{"Tax Audit": null}')
    spoiled = run("policies", "lint", audits)
    assert spoiled.exit_code == EXIT_CONFIG
    [line] = spoiled.stderr.splitlines()
    assert line.startswith("error: invalid setting CONNECTOR_PURPOSES: ")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        pytest.param(
            ["assets", "add", "urn:x", "--data-grade", "general", "--title-en", "x"],
            "error: give the data address: --file, --http or --sql-database with --sql-query",
            id="no-address",
        ),
        pytest.param(
            [
                "assets",
                "add",
                "urn:x",
                "--data-grade",
                "general",
                "--file",
                "/srv/x",
                "--http",
                "https://x.example",
            ],
            "error: give one data address: --file, --http or --sql-database",
            id="two-addresses",
        ),
        pytest.param(
            ["assets", "update", "urn:x"],
            "error: nothing to change: give at least one option",
            id="no-change",
        ),
        pytest.param(
            ["policies", "add", "p", "/nonexistent/p.json"],
            "error: policy: /nonexistent/p.json: No such file or directory",
            id="no-file",
        ),
    ],
)
def test_bad_input_is_one_line_and_exit_2(space: Space, args: list[str], message: str) -> None:
    result = run(*args)
    assert result.exit_code == 2
    assert result.stderr == message + "\n"


def test_not_json_and_unknown_choices_are_usage_errors(space: Space, tmp_path: Path) -> None:
    garbled = run("policies", "lint", write(tmp_path, "garbled.json", "{nope"))
    assert garbled.exit_code == 2
    assert garbled.stderr.startswith(f"error: policy: {tmp_path / 'garbled.json'}: not JSON (")
    assert run("assets", "list", "--output", "yaml").exit_code == 2
    assert run("negotiations", "list", "--state", "HAPPY").exit_code == 2
    sorted_badly = run("assets", "list", "--sort", "colour")
    assert sorted_badly.exit_code == 1
    assert sorted_badly.stderr.startswith("refused: unknown_sort: sort by one of ")


def test_a_refusal_by_the_connector_names_its_reason(space: Space, tmp_path: Path) -> None:
    publish(space, tmp_path)
    twice = run("assets", "add", FIRMS, "--title-en", "x", "--data-grade", "general",
                "--file", str(tmp_path / "firms.csv"))  # fmt: skip
    assert (twice.exit_code, twice.stderr) == (
        1,
        f"refused: exists: asset {FIRMS} exists already\n",
    )
    outside = run("assets", "add", "urn:y", "--title-en", "y", "--data-grade", "general",
                  "--file", "/etc/passwd")  # fmt: skip
    assert outside.exit_code == 1
    assert outside.stderr.startswith("refused: data_address_refused: ")
    assert len(outside.stderr.splitlines()) == 1


def test_a_wrong_or_missing_key_and_an_unreachable_connector(
    space: Space, monkeypatch: pytest.MonkeyPatch
) -> None:
    wrong = run("assets", "list", "--api-key", "not-the-key-0123456789")
    assert (wrong.exit_code, wrong.stderr) == (
        EXIT_CONFIG,
        "error: your connector refused the API key (not_authorized): check "
        "CONNECTOR_MANAGEMENT_API_KEY or --api-key\n",
    )
    nowhere = run("assets", "list", "--url", "http://127.0.0.1:9")
    assert nowhere.exit_code == 1
    assert nowhere.stderr.startswith("error: your connector unreachable: http://127.0.0.1:9")
    assert len(nowhere.stderr.splitlines()) == 1
    monkeypatch.delenv("CONNECTOR_MANAGEMENT_API_KEY")
    missing = run("offers", "list")
    assert (missing.exit_code, missing.stderr) == (
        EXIT_CONFIG, "error: set CONNECTOR_MANAGEMENT_API_KEY (or give --api-key)\n")  # fmt: skip
    monkeypatch.setenv("CONNECTOR_PORT", "eighty")
    spoiled = run("offers", "list", "--api-key", ADMIN_KEY)
    assert spoiled.exit_code == EXIT_CONFIG
    assert spoiled.stderr.startswith("error: invalid setting CONNECTOR_PORT: ")


def test_a_peers_refusal_is_shown_as_text(tmp_path: Path) -> None:
    with start_space(tmp_path, allow_list=True) as fresh:  # the bank holds no credential yet
        refused = run("catalog", fresh.bureau.participant_id,
                      "--address", fresh.bureau.base_url + "/dsp",
                      "--url", fresh.bank_url, "--api-key", ADMIN_KEY)  # fmt: skip
    assert refused.exit_code == 1
    first, *reasons = refused.stderr.splitlines()
    assert first.startswith(f"refused: peer_refused: {fresh.bureau.base_url}/dsp/catalog/request "
                            "answered 40")  # fmt: skip
    assert reasons
    assert all(r.startswith("  - ") and "{" not in r for r in reasons)


@pytest.mark.parametrize("url", ["ftp://connector.example", "not a url", "http://[::1"])
def test_a_url_that_is_no_http_url_is_a_usage_error(url: str) -> None:
    result = run("assets", "list", "--url", url, "--api-key", ADMIN_KEY)
    assert result.exit_code == 2
    assert result.stderr.startswith(f"error: --url {url!r}: ")
    assert len(result.stderr.splitlines()) == 1


def test_a_connector_url_in_settings_that_is_no_url_is_a_configuration_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CONNECTOR_PUBLIC_URL", "connector.example")
    result = run("assets", "list", "--api-key", ADMIN_KEY)
    assert result.exit_code == EXIT_CONFIG
    assert result.stderr == (
        "error: invalid setting CONNECTOR_PUBLIC_URL (or HOST): 'connector.example': "
        "no http(s) URL\n"
    )


def test_the_bureau_lists_and_removes_its_held_credentials(space: Space) -> None:
    held = as_json("credentials", "list")["items"]
    [membership] = [c for c in held if c["type"] == "MembershipCredential"]
    assert membership["issuer"] == space.authority
    assert (membership["status"], membership["presented"]) == ("valid", True)
    table = ok("credentials", "list", "--type", "MembershipCredential").stdout
    assert membership["id"] in table
    assert "valid" in table
    assert as_json("credentials", "list", "--type", "RegulatorCredential")["items"] == []
    assert ok("credentials", "remove", membership["id"]).stdout == f"removed {membership['id']}\n"
    assert membership["id"] not in {c["id"] for c in as_json("credentials", "list")["items"]}
    again = run("credentials", "remove", membership["id"])
    assert again.exit_code == 1
    assert again.stderr == f"refused: not_found: no held credential {membership['id']}\n"
    wrong = run("credentials", "list", "--type", "Passport")
    assert wrong.exit_code == 2
