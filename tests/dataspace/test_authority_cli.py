"""``dataspace authority`` and ``dataspace connector onboard`` against a real authority and
connectors on loopback: the operator sees a request wait, approves or rejects it, sees the
participants and revokes; ``onboard`` waits for the decision and says what comes next."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from broker.authority.client import AdminClient
from broker.authority.store import RequestStatus
from connector.settings import ConnectorSettings
from dataspace.cli import app
from dataspace.output import EXIT_CONFIG
from tests.e2e.space import Space, start_space
from tests.participants import ADMIN_KEY, BANK_ORG, PASSPHRASE

runner = CliRunner()


def connector_env(settings: ConnectorSettings) -> dict[str, str]:
    """The variables a participant's shell would have for its connector."""
    return {
        "CONNECTOR_PARTICIPANT_ID": settings.participant_id,
        "CONNECTOR_KEY_PASSPHRASE": PASSPHRASE,
        "CONNECTOR_DATABASE_URL": settings.database_url,
        "CONNECTOR_PUBLIC_URL": settings.base_url,
        "CONNECTOR_DID_WEB_ALLOW_HTTP": "true",
        "CONNECTOR_OUTBOUND_ALLOWED_NETWORKS": '["127.0.0.0/8"]',
        "CONNECTOR_MANAGEMENT_API_KEY": ADMIN_KEY,
    }


@pytest.fixture
def closed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Space]:
    with start_space(tmp_path, allow_list=False) as started:
        for name, value in connector_env(started.bank).items():
            monkeypatch.setenv(name, value)
        monkeypatch.setenv("BROKER_PUBLIC_URL", started.authority_url)
        monkeypatch.setenv("BROKER_ADMIN_API_KEY", ADMIN_KEY)
        yield started


def onboard(space: Space, *extra: str) -> list[str]:
    return ["connector", "onboard", "--authority", space.authority,
            "--type", "MembershipCredential", *extra]  # fmt: skip


def test_the_operator_approves_a_waiting_request(closed: Space) -> None:
    asked = runner.invoke(app, onboard(closed, "--no-wait"))
    assert asked.exit_code == 0, asked.output
    request_id = asked.stdout.split()[1].rstrip(":")
    assert asked.stdout == f"request {request_id}: RECEIVED\n"
    assert f"dataspace authority approve {request_id}" in asked.stderr

    listed = runner.invoke(app, ["authority", "requests", "--status", "RECEIVED"])
    assert listed.exit_code == 0, listed.output
    header, row = listed.stdout.splitlines()
    assert header.split()[:4] == ["REQUEST", "STATUS", "HOLDER", "TYPES"]
    assert row.split()[:4] == [request_id, "RECEIVED", closed.bank.participant_id,
                               "MembershipCredential"]  # fmt: skip

    unstated = runner.invoke(app, ["authority", "approve", request_id])
    assert unstated.exit_code == 2
    assert unstated.stderr == (
        "error: the request states no organisation: give --name, --credit-code, --region, "
        "--data-grade\n"
    )
    wrong = runner.invoke(app, ["authority", "approve", request_id, "--name", "x",
                                "--credit-code", "91440101MA59XKQ72X", "--region", "440106",
                                "--data-grade", "general"])  # fmt: skip
    assert wrong.exit_code == 2
    assert wrong.stderr.startswith("error: organisation creditCode: ")

    approved = runner.invoke(app, ["authority", "approve", request_id, "--name", BANK_ORG["name"],
                                   "--credit-code", BANK_ORG["creditCode"],
                                   "--region", BANK_ORG["region"], "--data-grade", "general"])  # fmt: skip
    assert approved.exit_code == 0, approved.output
    assert approved.stdout == (
        f"{request_id}: ISSUED to {closed.bank.participant_id} (MembershipCredential)\n"
    )
    again = runner.invoke(app, ["authority", "reject", request_id, "--reason", "late"])
    assert again.exit_code == 1
    assert again.stderr.startswith("refused: ")

    members = runner.invoke(app, ["authority", "participants", "--output", "json"])
    assert members.exit_code == 0, members.output
    [issued] = json.loads(members.stdout)
    assert (issued["holder"], issued["type"], issued["revoked"]) == (
        closed.bank.participant_id,
        "MembershipCredential",
        False,
    )
    held = runner.invoke(app, ["connector", "credentials", "list"])
    assert issued["id"] in held.stdout

    revoked = runner.invoke(app, ["authority", "revoke", issued["id"]])
    assert revoked.exit_code == 0, revoked.output
    assert revoked.stdout == (
        f"revoked {issued['id']} (MembershipCredential of {closed.bank.participant_id})\n"
    )
    table = runner.invoke(app, ["authority", "participants"]).stdout.splitlines()
    assert table[1].split()[-1] == "yes"


def test_the_operator_approves_with_what_the_applicant_stated(closed: Space) -> None:
    asked = runner.invoke(app, onboard(closed, "--no-wait", "--name", BANK_ORG["name"],
                                       "--credit-code", BANK_ORG["creditCode"],
                                       "--region", BANK_ORG["region"], "--data-grade", "general"))  # fmt: skip
    assert asked.exit_code == 0, asked.output
    request_id = asked.stdout.split()[1].rstrip(":")
    approved = runner.invoke(app, ["authority", "approve", request_id, "-o", "json"])
    assert approved.exit_code == 0, approved.output
    assert json.loads(approved.stdout)["status"] == "ISSUED"


def _onboard_process(space: Space, *extra: str) -> subprocess.Popen[str]:
    env = {**os.environ, **connector_env(space.bank)}
    return subprocess.Popen(
        [sys.executable, "-m", "dataspace", *onboard(space, *extra)],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def _waiting(space: Space) -> str:
    with AdminClient(space.authority_url, ADMIN_KEY) as admin:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            found = admin.requests(RequestStatus.RECEIVED)
            if found:
                return found[0].issuer_pid
            time.sleep(0.1)
    raise AssertionError("no request arrived")


@pytest.mark.parametrize("decision", ["approve", "reject"])
def test_onboard_waits_for_the_operators_decision(closed: Space, decision: str) -> None:
    with _onboard_process(closed, "--timeout", "60") as process:
        request_id = _waiting(closed)
        with AdminClient(closed.authority_url, ADMIN_KEY) as admin:
            if decision == "approve":
                admin.approve(request_id, BANK_ORG)
            else:
                admin.reject(request_id, "not a member")
        out, err = process.communicate(timeout=60)
    assert "waiting for the authority's operator" in err
    assert "Traceback" not in err
    if decision == "approve":
        assert process.returncode == 0, err
        assert out.startswith(f"request {request_id}: ISSUED; the credentials went to")
    else:
        assert process.returncode == 1
        assert err.splitlines()[-1] == f"request {request_id}: REJECTED by the authority's operator"


def test_onboard_gives_up_waiting_and_says_what_is_next(closed: Space) -> None:
    waited = runner.invoke(app, onboard(closed, "--timeout", "0.5"))
    assert waited.exit_code == 1
    assert waited.stderr.splitlines()[-1] == "error: no decision after 0.5 s"
    assert "dataspace authority approve" in waited.stderr


def test_a_wrong_operator_key_is_a_configuration_error(closed: Space) -> None:
    refused = runner.invoke(app, ["authority", "requests", "--api-key", "not-the-key-at-all"])
    assert refused.exit_code == EXIT_CONFIG
    assert refused.stderr == (
        "error: the authority refused the API key (not_operator): check BROKER_ADMIN_API_KEY "
        "or --api-key\n"
    )


def test_without_a_key_or_a_listening_authority(
    closed: Space, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("BROKER_ADMIN_API_KEY")
    missing = runner.invoke(app, ["authority", "requests"])
    assert (missing.exit_code, missing.stderr) == (
        EXIT_CONFIG,
        "error: set BROKER_ADMIN_API_KEY (or give --api-key)\n",
    )
    nowhere = runner.invoke(
        app, ["authority", "requests", "--url", "http://127.0.0.1:9", "--api-key", ADMIN_KEY]
    )
    assert nowhere.exit_code == 1
    assert len(nowhere.stderr.splitlines()) == 1
    assert nowhere.stderr.startswith("error: the authority unreachable: http://127.0.0.1:9")


def test_onboard_on_the_allow_list_is_issued_at_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with start_space(tmp_path, allow_list=True) as space:
        for name, value in connector_env(space.bank).items():
            monkeypatch.setenv(name, value)
        issued = runner.invoke(app, onboard(space))
        assert issued.exit_code == 0, issued.output
        request_id = issued.stdout.split()[1].rstrip(":")
        assert issued.stdout == (
            f"request {request_id}: ISSUED; the credentials went to your connector's Credential "
            "Service (see `dataspace connector credentials list`)\n"
        )
        assert issued.stderr == ""
        held = runner.invoke(app, ["connector", "credentials", "list"])
        assert "MembershipCredential" in held.stdout


def test_the_operator_is_warned_of_a_credit_code_another_participant_holds(
    closed: Space,
) -> None:
    """The bureau's request states the bank's credit code: the operator sees a warning beside
    the request and again when approving it (a second connector of one organisation may be
    right, an impostor is not: the operator decides)."""
    stated = ["--name", BANK_ORG["name"], "--credit-code", BANK_ORG["creditCode"],
              "--region", BANK_ORG["region"], "--data-grade", "general"]  # fmt: skip
    bank = runner.invoke(app, onboard(closed, "--no-wait", *stated))
    assert bank.exit_code == 0, bank.output
    first = bank.stdout.split()[1].rstrip(":")
    listed = runner.invoke(app, ["authority", "requests", "--status", "RECEIVED"])
    assert listed.stderr == ""  # nobody holds it yet
    assert runner.invoke(app, ["authority", "approve", first]).exit_code == 0

    bureau = runner.invoke(app, onboard(closed, "--no-wait", *stated),
                           env=connector_env(closed.bureau))  # fmt: skip
    assert bureau.exit_code == 0, bureau.output
    second = bureau.stdout.split()[1].rstrip(":")
    warning = (
        f"warning: {second}: credit code {BANK_ORG['creditCode']} is already held by "
        f"{closed.bank.participant_id} (active)\n"
    )
    listed = runner.invoke(app, ["authority", "requests", "--status", "RECEIVED"])
    assert listed.exit_code == 0, listed.output
    assert listed.stderr == warning
    as_json = runner.invoke(app, ["authority", "requests", "--status", "RECEIVED", "-o", "json"])
    assert json.loads(as_json.stdout)[0]["warnings"] == [warning.split(": ", 2)[2].strip()]
    approved = runner.invoke(app, ["authority", "approve", second])
    assert approved.exit_code == 0, approved.output
    assert approved.stderr == warning
