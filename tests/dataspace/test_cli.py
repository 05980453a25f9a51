from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from broker.app import create_app as create_broker
from broker.settings import BrokerSettings
from connector.participant import migrate
from dataspace.cli import EXIT_CONFIG, app
from identity.credentials import CredentialType, VerifiedCredential, issue_credential
from identity.store import CredentialStore
from storage.engine import create_engine
from tests.identity.world import AUTHORITY, ORG, World
from tests.loopback import free_port
from tests.participants import ADMIN_KEY, PASSPHRASE

runner = CliRunner()

VALID_ENV = {
    "CONNECTOR_PARTICIPANT_ID": "did:web:127.0.0.1:bank",
    "CONNECTOR_KEY_PASSPHRASE": PASSPHRASE,
    "BROKER_AUTHORITY_ID": "did:web:127.0.0.1:authority",
    "BROKER_KEY_PASSPHRASE": PASSPHRASE,
    "BROKER_ADMIN_API_KEY": ADMIN_KEY,
    "LEDGER_LEDGER_ID": "did:web:127.0.0.1:ledger",
    "LEDGER_KEY_PASSPHRASE": PASSPHRASE,
}


@pytest.fixture(autouse=True)
def valid_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every required setting present and valid; each test spoils the one it is about."""
    for name, value in VALID_ENV.items():
        monkeypatch.setenv(name, value)


def test_help_lists_every_service() -> None:
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for command in ("connector", "broker", "ledger", "demo", "db"):
        assert command in result.output


def test_version() -> None:
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.output.strip() == "dataspace (kexin) 0.1.0"


@pytest.mark.parametrize(
    "args",
    [
        pytest.param(["no-such-command"], id="unknown-command"),
        pytest.param(["connector", "no-such-command"], id="unknown-subcommand"),
        pytest.param(["connector", "serve", "--no-such-option"], id="unknown-option"),
        pytest.param(["connector", "serve", "--port", "eighty"], id="bad-option-value"),
        pytest.param(["db", "upgrade", "no-such-service"], id="bad-argument"),
    ],
)
def test_usage_errors_exit_2_with_a_usage_message(args: list[str]) -> None:
    result = runner.invoke(app, args)
    assert result.exit_code == 2
    assert "Usage:" in result.output


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        pytest.param({"CONNECTOR_PORT": "abc"}, "CONNECTOR_PORT", id="not-an-int"),
        pytest.param({"CONNECTOR_PORT": "70000"}, "CONNECTOR_PORT", id="port-out-of-range"),
        pytest.param({"CONNECTOR_PARTICIPANT_ID": "bank"}, "CONNECTOR_PARTICIPANT_ID", id="no-did"),
        pytest.param(
            {"CONNECTOR_DATABASE_URL": "mysql://x@y/z"}, "CONNECTOR_DATABASE_URL", id="database"
        ),
    ],
)
def test_an_invalid_setting_is_one_line_naming_the_variable(
    env: dict[str, str], variable: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    result = runner.invoke(app, ["connector", "serve"])
    assert result.exit_code == EXIT_CONFIG
    lines = result.output.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith(f"error: invalid setting {variable}: ")
    assert "Traceback" not in result.output


def test_a_missing_required_setting_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CONNECTOR_PARTICIPANT_ID", raising=False)
    result = runner.invoke(app, ["connector", "serve"])
    assert result.exit_code == EXIT_CONFIG
    assert result.output.strip() == (
        "error: invalid setting CONNECTOR_PARTICIPANT_ID: Field required"
    )


@pytest.mark.parametrize(
    "service",
    [pytest.param(["broker"], id="broker"), pytest.param(["ledger"], id="ledger")],
)
def test_invalid_settings_of_other_services(
    service: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    prefix = service[0].upper()
    monkeypatch.setenv(f"{prefix}_PORT", "-1")
    result = runner.invoke(app, [*service, "serve"])
    assert result.exit_code == EXIT_CONFIG
    assert result.output.startswith(f"error: invalid setting {prefix}_PORT: ")


def test_db_upgrade_migrates_the_configured_database(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CONNECTOR_DATABASE_URL", f"sqlite:///{tmp_path / 'c.db'}")
    result = runner.invoke(app, ["db", "upgrade", "connector"])
    assert result.exit_code == 0, result.output
    assert "newest revision" in result.output


@pytest.mark.parametrize("service", ["connector", "broker", "ledger"])
def test_serve_runs_a_real_server_that_answers_health(service: str, tmp_path: Path) -> None:
    port = free_port()
    prefix = service.upper()
    env = {
        **os.environ,
        **VALID_ENV,
        f"{prefix}_DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite'}",
    }
    with subprocess.Popen(
        [sys.executable, "-m", "dataspace", service, "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    ) as process:
        try:
            response = _wait_for_health(f"http://127.0.0.1:{port}/health", process)
        finally:
            process.terminate()
            output, _ = process.communicate(timeout=30)
    assert response is not None, f"{service} serve did not come up: {output}"
    assert response.status_code == 200
    assert response.json()["service"] == service
    # uvicorn shuts down gracefully on SIGTERM (lifespan end runs), then re-raises the signal.
    assert "Application shutdown complete" in output
    assert process.returncode in (0, -signal.SIGTERM)


def _wait_for_health(url: str, process: subprocess.Popen[str]) -> httpx.Response | None:
    deadline = time.monotonic() + 30
    while process.poll() is None and time.monotonic() < deadline:
        try:
            return httpx.get(url, timeout=2)
        except httpx.TransportError:
            time.sleep(0.1)
    return None


def test_settings_that_belong_together_are_named_together(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONNECTOR_WEBHOOK_URL", "https://app.example.cn/hooks")
    result = runner.invoke(app, ["connector", "serve"])
    assert result.exit_code == EXIT_CONFIG
    assert result.output.strip() == (
        "error: invalid settings (CONNECTOR_*): webhook_url needs webhook_secret, which signs "
        "its events"
    )


def test_tck_config_needs_conformance_mode() -> None:
    result = runner.invoke(app, ["connector", "tck-config", "--kit-callback", "http://kit"])
    assert result.exit_code == EXIT_CONFIG
    assert "CONNECTOR_CONFORMANCE_TOKEN" in result.output


def test_tck_config_prints_the_kits_configuration(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONNECTOR_CONFORMANCE_TOKEN", "kit-token-0123456789")
    monkeypatch.setenv("CONNECTOR_CONFORMANCE_PARTICIPANT_ID", "TCK_PARTICIPANT")
    monkeypatch.setenv("CONNECTOR_PUBLIC_URL", "https://cut.example")
    result = runner.invoke(app, ["connector", "tck-config", "--kit-callback", "http://kit:8687"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert "dataspacetck.dsp.connector.http.url=https://cut.example/dsp" in lines
    assert "dataspacetck.dsp.connector.agent.id=did:web:127.0.0.1:bank" in lines
    assert (
        "dataspacetck.dsp.connector.http.headers.authorization=Bearer kit-token-0123456789" in lines
    )
    assert "dataspacetck.callback.address=http://kit:8687" in lines
    assert "TP_C_03_06_AGREEMENTID=ATPC0306" in lines


def hold(database_url: str, holder: str) -> None:
    """The connector's database holds a membership (valid, no status list) and a licence that
    expired yesterday."""
    world = World()
    world.add(AUTHORITY)
    key, now = world.rings[AUTHORITY].current, datetime.now(UTC).replace(microsecond=0)
    engine = create_engine(database_url)
    migrate(engine)
    store = CredentialStore(engine)
    for credential_id, kind, expires_at in (
        ("urn:uuid:member", CredentialType.MEMBERSHIP, now + timedelta(days=30)),
        ("urn:uuid:licence", CredentialType.FINANCIAL_INSTITUTION, now - timedelta(days=1)),
    ):
        token = issue_credential(
            issuer=AUTHORITY, key=key.private_key, key_id=key.key_id, credential_id=credential_id,
            credential_type=kind, subject=holder, organisation=ORG,
            issued_at=now - timedelta(days=60), expires_at=expires_at, status=None,
        )  # fmt: skip
        store.save(
            VerifiedCredential(
                credential_id, kind, AUTHORITY, holder, ORG, expires_at, None, token
            ),
            now - timedelta(days=59),
        )
    engine.dispose()


def test_connector_credentials_list_and_remove(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    database_url = f"sqlite:///{tmp_path / 'c.db'}"
    monkeypatch.setenv("CONNECTOR_DATABASE_URL", database_url)
    empty = runner.invoke(app, ["connector", "credentials", "list"])
    assert (empty.exit_code, empty.output) == (0, "no credentials held\n")
    hold(database_url, VALID_ENV["CONNECTOR_PARTICIPANT_ID"])

    listed = runner.invoke(app, ["connector", "credentials", "list"])
    assert listed.exit_code == 0, listed.output
    header, *rows = listed.output.splitlines()
    assert header.split() == ["ID", "TYPE", "ISSUER", "ISSUED", "EXPIRES", "STATUS"]
    by_id = {row.split()[0]: row.split() for row in rows}
    assert by_id["urn:uuid:member"][1:3] == ["MembershipCredential", "did:web:authority.test"]
    assert by_id["urn:uuid:member"][5:] == ["valid"]
    assert by_id["urn:uuid:licence"][1] == "FinancialInstitutionCredential"
    assert by_id["urn:uuid:licence"][5:7] == ["expired", "(expired"]
    only = runner.invoke(
        app, ["connector", "credentials", "list", "--type", "MembershipCredential"]
    )
    assert [row.split()[0] for row in only.output.splitlines()[1:]] == ["urn:uuid:member"]

    removed = runner.invoke(app, ["connector", "credentials", "remove", "urn:uuid:licence"])
    assert (removed.exit_code, removed.output) == (0, "removed urn:uuid:licence\n")
    after = runner.invoke(app, ["connector", "credentials", "list"])
    assert [row.split()[0] for row in after.output.splitlines()[1:]] == ["urn:uuid:member"]
    unknown = runner.invoke(app, ["connector", "credentials", "remove", "urn:uuid:licence"])
    assert unknown.exit_code == 1
    assert unknown.output == "error: no held credential urn:uuid:licence\n"
    wrong_type = runner.invoke(app, ["connector", "credentials", "list", "--type", "Passport"])
    assert wrong_type.exit_code == 2


@pytest.mark.parametrize("service", ["connector", "broker"])
def test_a_wrong_key_passphrase_at_serve_is_one_line_and_exit_78(
    service: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    prefix = service.upper()
    monkeypatch.setenv(f"{prefix}_DATABASE_URL", f"sqlite:///{tmp_path / 'db.sqlite'}")
    if service == "connector":
        first = runner.invoke(app, ["connector", "rotate-key"])  # stores a key
    else:
        with TestClient(create_broker(BrokerSettings())):  # its start stores the key
            pass
        first = runner.invoke(app, ["--version"])
    assert first.exit_code == 0, first.output
    monkeypatch.setenv(f"{prefix}_KEY_PASSPHRASE", "another long passphrase")
    result = runner.invoke(app, [service, "serve", "--port", str(free_port())])
    assert result.exit_code == EXIT_CONFIG
    assert result.output == (
        f"error: {prefix}_KEY_PASSPHRASE: cannot decrypt the stored key: wrong passphrase or "
        "damaged key\n"
    )


@pytest.mark.parametrize(
    "command",
    [
        pytest.param(["connector", "credentials", "list"], id="credentials-list"),
        pytest.param(["connector", "rotate-key"], id="rotate-key"),
        pytest.param(
            [
                "connector",
                "onboard",
                "--authority",
                "did:web:127.0.0.1:authority",
                "--type",
                "MembershipCredential",
                "--no-wait",
            ],
            id="onboard",
        ),
    ],
)
def test_a_wrong_key_passphrase_is_a_configuration_error_for_every_key_command(
    command: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CONNECTOR_DATABASE_URL", f"sqlite:///{tmp_path / 'c.db'}")
    assert runner.invoke(app, ["connector", "rotate-key"]).exit_code == 0
    monkeypatch.setenv("CONNECTOR_KEY_PASSPHRASE", "another long passphrase")
    result = runner.invoke(app, command)
    assert result.exit_code == EXIT_CONFIG
    assert result.output == (
        "error: CONNECTOR_KEY_PASSPHRASE: cannot decrypt the stored key: wrong passphrase or "
        "damaged key\n"
    )


@pytest.mark.parametrize(("service", "schemas"), [("ledger", ["ledger", "identity"]),
                                                   ("connector", ["connector", "identity"])])  # fmt: skip
def test_db_current_says_what_is_behind_and_upgrade_brings_it_up(
    service: str, schemas: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    database = tmp_path / "db.sqlite"
    monkeypatch.setenv(f"{service.upper()}_DATABASE_URL", f"sqlite:///{database}")
    before = runner.invoke(app, ["db", "current", service])
    assert before.exit_code == 1, before.output
    lines = before.stdout.splitlines()
    assert lines[0].split() == ["SCHEMA", "AT", "NEWEST", "STATE"]
    assert [line.split()[0] for line in lines[1:]] == schemas
    assert all(line.endswith("not migrated") for line in lines[1:])
    assert before.stderr == (
        f"{service}: no database at {database} yet\nrun: dataspace db upgrade {service}\n"
    )
    listed = runner.invoke(app, ["db", "history", service])
    assert listed.exit_code == 0, listed.output
    assert all(line.endswith(" no") for line in listed.stdout.splitlines()[1:])
    assert not database.exists()  # asking created nothing
    upgraded = runner.invoke(app, ["db", "upgrade", service])
    assert upgraded.exit_code == 0, upgraded.output
    after = runner.invoke(app, ["db", "current", service])
    assert after.exit_code == 0, after.output
    for line in after.stdout.splitlines()[1:]:
        _, at, newest, state = line.split()
        assert (at, state) == (newest, "current")


def test_db_history_lists_every_migration_oldest_first_and_what_the_database_has(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from connector.database import migrations
    from storage.engine import create_engine
    from storage.migrate import history, upgrade

    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    monkeypatch.setenv("CONNECTOR_DATABASE_URL", url)
    revisions = [revision_id for revision_id, _ in history(migrations())]
    assert len(revisions) >= 2
    engine = create_engine(url)
    upgrade(engine, migrations(), revisions[1])  # the connector's schema two steps in
    engine.dispose()
    listed = runner.invoke(app, ["db", "history", "connector"])
    assert listed.exit_code == 0, listed.output
    header, *lines = listed.stdout.splitlines()
    assert header.split() == ["SCHEMA", "REVISION", "MESSAGE", "APPLIED"]
    rows = [(line.split()[0], line.split()[1], line.split()[-1]) for line in lines]
    connector = [
        (revision_id, applied) for schema, revision_id, applied in rows if schema == "connector"
    ]
    assert [revision_id for revision_id, _ in connector] == revisions
    assert [applied for _, applied in connector] == ["yes", "yes"] + ["no"] * (len(revisions) - 2)
    identity = [applied for schema, _, applied in rows if schema == "identity"]
    assert identity
    assert set(identity) == {"no"}


@pytest.mark.parametrize("command", ["upgrade", "current"])
def test_a_database_that_cannot_be_used_is_one_line_and_78(
    command: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LEDGER_DATABASE_URL", "postgresql+psycopg://kexin:x@127.0.0.1:1/none")
    result = runner.invoke(app, ["db", command, "ledger"])
    assert result.exit_code == EXIT_CONFIG
    assert result.stderr.startswith("error: LEDGER_DATABASE_URL: the database cannot be used: ")
    assert len(result.stderr.splitlines()) == 1
    assert result.stdout == ""


@pytest.mark.parametrize("service", ["connector", "broker", "ledger"])
@pytest.mark.parametrize(
    ("url", "said"),
    [
        ("postgresql+psycopg://kexin:x@127.0.0.1:1/none", "the database cannot be used: "),
        ("sqlite:////proc/no-such-folder/db.sqlite", "the database cannot be used: "),
    ],
)
def test_a_server_whose_database_cannot_be_used_says_so_in_one_line(
    service: str, url: str, said: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(f"{service.upper()}_DATABASE_URL", url)
    result = runner.invoke(app, [service, "serve"])
    assert result.exit_code == EXIT_CONFIG
    assert result.stderr.startswith(f"error: {service.upper()}_DATABASE_URL: {said}")
    assert len(result.stderr.splitlines()) == 1


@pytest.mark.parametrize("service", ["connector", "broker", "ledger"])
def test_an_old_schema_with_migrations_off_names_the_command_first(
    service: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(f"{service.upper()}_DATABASE_URL", f"sqlite:///{tmp_path / 'old.db'}")
    monkeypatch.setenv(f"{service.upper()}_MIGRATE_ON_START", "false")
    result = runner.invoke(app, [service, "serve"])
    assert result.exit_code == EXIT_CONFIG
    assert result.stderr.startswith(f"error: run `dataspace db upgrade {service}` first: ")
    assert len(result.stderr.splitlines()) == 1


def test_a_setting_that_is_not_json_is_named_in_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONNECTOR_SQL_SOURCES", "{not json")
    result = runner.invoke(app, ["connector", "serve"])
    assert result.exit_code == EXIT_CONFIG
    assert result.stderr == "error: invalid setting CONNECTOR_SQL_SOURCES: not valid JSON\n"


@pytest.mark.parametrize("where", ["folder", "missing"])
def test_fetch_refuses_an_output_it_cannot_write_before_asking_the_connector(
    where: str, tmp_path: Path
) -> None:
    output = {"folder": tmp_path, "missing": tmp_path / "no" / "data.csv"}[where]
    unused = free_port()  # nothing listens: asking the connector would be exit 1, unreachable
    result = runner.invoke(app, [
        "fetch", "--provider", "did:web:127.0.0.1:bureau", "--provider-address",
        "http://127.0.0.1:1/dsp", "--dataset", "urn:x", "--purpose", "credit-assessment",
        "--output", str(output), "--connector", f"http://127.0.0.1:{unused}", "--api-key", "k",
    ])  # fmt: skip
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith(f"error: --output {output}: ")
    assert len(result.stderr.splitlines()) == 1


@pytest.mark.parametrize("module", ["dataspace.cli", "connector.app"])
def test_a_connector_process_does_not_load_the_chain_adapter(module: str) -> None:
    # web3 (py-evm, eth-tester) costs 0.75 s and about 60 MiB: only the commands and the
    # connectors that use the chain load it
    probe = f"import sys, {module}; print(sorted({{'web3', 'eth_tester'}} & set(sys.modules)))"
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True,
        cwd=Path(__file__).resolve().parents[2],
    )  # fmt: skip
    assert done.stdout.strip() == "[]"


def test_each_connector_has_its_own_database_file_by_default(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from connector.settings import ConnectorSettings

    monkeypatch.delenv("CONNECTOR_DATABASE_URL", raising=False)
    bank = ConnectorSettings()
    bureau = ConnectorSettings(participant_id="did:web:bureau.example.cn%3A8443:dsp")
    assert bank.database_url == "sqlite:///connector-web_127.0.0.1_bank.db"
    assert bureau.database_url == "sqlite:///connector-web_bureau.example.cn_3A8443_dsp.db"
    long = ConnectorSettings(participant_id="did:web:" + "a" * 200)
    assert len(long.database_url) < 120
    assert long.database_url.startswith("sqlite:///connector-web_aaaa")


def test_a_connector_upgraded_in_place_keeps_its_connector_db(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Before, every connector's default was ``connector.db``: one found here (and no file of
    its own yet) is kept, not left for an empty database with new keys."""
    from connector.settings import ConnectorSettings

    monkeypatch.delenv("CONNECTOR_DATABASE_URL", raising=False)
    monkeypatch.chdir(tmp_path)
    assert ConnectorSettings().database_url == "sqlite:///connector-web_127.0.0.1_bank.db"
    (tmp_path / "connector.db").touch()
    assert ConnectorSettings().database_url == "sqlite:///connector.db"
    (tmp_path / "connector-web_127.0.0.1_bank.db").touch()
    assert ConnectorSettings().database_url == "sqlite:///connector-web_127.0.0.1_bank.db"


def test_a_connector_on_another_connectors_database_is_refused_in_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The bureau's database, given to the bank: with the same passphrase the bank would
    have opened the bureau's keys and served its catalogue. Refused before anything is read,
    by the server and by every other connector command."""
    from connector.owner import claim

    url = f"sqlite:///{tmp_path / 'bureau.db'}"
    engine = create_engine(url)
    migrate(engine)
    claim(engine, "did:web:127.0.0.1:bureau", datetime.now(UTC))
    engine.dispose()
    monkeypatch.setenv("CONNECTOR_DATABASE_URL", url)
    said = (
        "error: CONNECTOR_DATABASE_URL: the database belongs to the connector of "
        "did:web:127.0.0.1:bureau, not did:web:127.0.0.1:bank: give each connector its own "
        "database"
    )
    served = runner.invoke(app, ["connector", "serve"])
    assert (served.exit_code, served.stderr.splitlines()) == (EXIT_CONFIG, [said])
    listed = subprocess.run(
        [sys.executable, "-m", "dataspace", "connector", "credentials", "list"],
        env={**os.environ}, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert (listed.returncode, listed.stderr.splitlines()) == (EXIT_CONFIG, [said])
    for command in (["rotate-key"], ["credentials", "remove", "urn:uuid:any"]):
        refused = subprocess.run(
            [sys.executable, "-m", "dataspace", "connector", *command],
            env={**os.environ}, capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        assert (refused.returncode, refused.stderr.splitlines()) == (EXIT_CONFIG, [said])
    monkeypatch.setenv("CONNECTOR_PARTICIPANT_ID", "did:web:127.0.0.1:bureau")
    assert runner.invoke(app, ["connector", "credentials", "list"]).exit_code == 0


def test_two_connectors_started_at_once_on_one_new_database_one_is_refused_in_one_line(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The bureau and the bank started at the same moment on one new database: both migrated
    it at once, and on PostgreSQL the loser died with a traceback from the catalogue (exit 1)
    instead of being told, like any later start, that the database is the other's."""
    monkeypatch.setenv("CONNECTOR_DATABASE_URL", database_url)
    started = [
        subprocess.Popen(
            [sys.executable, "-m", "dataspace", "connector", "credentials", "list"],
            env={**os.environ, "CONNECTOR_PARTICIPANT_ID": f"did:web:127.0.0.1:{name}"},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for name in ("bureau", "bank")
    ]
    ended = []
    for process in started:
        _output, errors = process.communicate(timeout=120)
        ended.append((process.returncode, errors.splitlines()))
    assert sorted(code for code, _ in ended) == [0, EXIT_CONFIG], ended
    [[line]] = [lines for code, lines in ended if code == EXIT_CONFIG]
    assert "the database belongs to the connector of did:web:127.0.0.1:" in line


def test_a_second_server_on_one_sqlite_file_is_refused_in_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from storage.engine import held_sqlite_file

    url = f"sqlite:///{tmp_path / 'bank.db'}"
    monkeypatch.setenv("CONNECTOR_DATABASE_URL", url)
    with held_sqlite_file(url):  # the first server, running
        result = runner.invoke(app, ["connector", "serve"])
    assert result.exit_code == EXIT_CONFIG
    [line] = result.stderr.splitlines()
    assert line == (
        f"error: CONNECTOR_DATABASE_URL: another server runs on {tmp_path / 'bank.db'} "
        f"(it holds {os.path.realpath(tmp_path / 'bank.db')}-lock)"
    )
    (tmp_path / "bank.db-lock").unlink()
    (tmp_path / "bank.db-lock").mkdir()  # a lock file that cannot be opened
    cannot = runner.invoke(app, ["connector", "serve"])
    assert cannot.exit_code == EXIT_CONFIG
    [line] = cannot.stderr.splitlines()
    assert line.startswith("error: CONNECTOR_DATABASE_URL: cannot make the lock file ")
