"""``dataspace``: the one command-line interface of Kexin.

It builds settings once (from the environment and the options given), calls the app factories
and runs them; the operator's and the data holder's commands (``authority``, ``assets``,
``policies``, ``offers``, ``catalog``, ``negotiations``, ``agreements``, ``transfers``) live in
their own modules and call the services' APIs. Exit codes (:mod:`dataspace.output`): 0 success,
1 a failed run or a refusal by the other side, 2 a usage error (unknown command or option, bad
input), 3 refused by a policy, 78 an invalid setting or key (one line, no traceback).
"""

from __future__ import annotations

import asyncio
import os
import re
import tempfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from enum import StrEnum
from importlib.metadata import version
from operator import itemgetter
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
import uvicorn
from pydantic import ValidationError
from pydantic_settings import BaseSettings
from pydantic_settings.exceptions import SettingsError
from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import SQLAlchemyError

from broker.app import create_app as create_broker_app
from broker.database import migrations as broker_migrations
from broker.settings import BrokerSettings
from connector.app import create_app as create_connector_app
from connector.contracts.client import ContractsClient, ContractsError
from connector.database import migrations as connector_migrations
from connector.dcp.client import OnboardingError, request_credentials
from connector.owner import ForeignDatabaseError, claim, owner_of
from connector.participant import migrate as migrate_connector
from connector.participant import standalone
from connector.settings import ConnectorSettings
from dataspace import holder_commands, ledger_commands, match_commands
from dataspace.authority_commands import authority_cli
from dataspace.onboarding import WAITING, StatusError, wait_for_decision
from dataspace.output import table
from identity.claims import OrganisationClaims
from identity.credential_service import Holding
from identity.credentials import CredentialType
from identity.database import migrations as identity_migrations
from identity.errors import IdentityError
from identity.keyring import KeyRing, check_passphrase
from identity.keys import KeyMaterialError
from identity.store import CredentialStore
from ledger.database import migrations as ledger_migrations
from ledger.settings import LedgerSettings
from matching.errors import MatchingError
from matching.identifiers import read_column
from matching.synthetic import Dataset, generate, write_csv
from policy.operands import Grade
from service.runtime import tune_for_server
from storage.engine import DatabaseInUseError, create_engine, held_sqlite_file, is_memory_sqlite
from storage.migrate import Migrations, current, head, history, revision, upgrade

EXIT_CONFIG = 78
"""sysexits.h EX_CONFIG: a setting is invalid."""

S = TypeVar("S", bound=BaseSettings)

app = typer.Typer(
    name="dataspace",
    help="Kexin (可信): trusted data space. Run a service, or the end-to-end demo.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
connector_cli = typer.Typer(help="A participant's connector.", no_args_is_help=True)
broker_cli = typer.Typer(
    help="The participant registry and federated catalog.", no_args_is_help=True
)
ledger_cli = typer.Typer(help="The audit ledger and its regulator API.", no_args_is_help=True)
db_cli = typer.Typer(help="Database schema migrations.", no_args_is_help=True)
credentials_cli = typer.Typer(
    help="The credentials this connector holds (its CONNECTOR_* settings and database).",
    no_args_is_help=True,
)
connector_cli.add_typer(credentials_cli, name="credentials")
app.add_typer(connector_cli, name="connector")
app.add_typer(broker_cli, name="broker")
app.add_typer(ledger_cli, name="ledger")
app.add_typer(db_cli, name="db")
data_cli = typer.Typer(help="Data for tests, benchmarks and the demo.", no_args_is_help=True)
app.add_typer(data_cli, name="data")
app.add_typer(authority_cli, name="authority")
holder_commands.register(app)

HostOption = Annotated[
    str | None, typer.Option(help="Address to listen on (default from settings).")
]
PortOption = Annotated[int | None, typer.Option(help="Port to listen on (default from settings).")]


def load_settings(cls: type[S], **overrides: Any) -> S:
    """Build ``cls`` from the environment and the non-None ``overrides``; exit 78 if invalid."""
    try:
        return cls(**{key: value for key, value in overrides.items() if value is not None})
    except SettingsError as error:  # a value the environment source cannot parse (JSON)
        prefix = str(cls.model_config.get("env_prefix", ""))
        field = re.search(r'field "([^"]+)"', str(error))
        name = prefix + field.group(1).upper() if field else f"{prefix}*"
        typer.echo(f"error: invalid setting {name}: not valid JSON", err=True)
        raise typer.Exit(EXIT_CONFIG) from None
    except ValidationError as error:
        prefix = str(cls.model_config.get("env_prefix", ""))
        for problem in error.errors():
            message = str(problem["msg"]).removeprefix("Value error, ")
            if problem["loc"]:
                name = str(problem["loc"][0]).upper()  # KEXIN_PROFILE has no service prefix
                name = name if name.startswith("KEXIN_") else prefix + name
                typer.echo(f"error: invalid setting {name}: {message}", err=True)
            else:  # a rule across several settings; the message names them
                typer.echo(f"error: invalid settings ({prefix}*): {message}", err=True)
        raise typer.Exit(EXIT_CONFIG) from None


def _version(value: bool) -> None:
    if value:
        typer.echo(f"dataspace (kexin) {version('kexin')}")
        raise typer.Exit()


@app.callback()
def root(
    _version_flag: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    """Kexin (可信): trusted data space."""


def check_keys(database_url: str, passphrase: str, variable: str) -> None:
    """Before a server starts: the keys already stored open with this passphrase, or one
    line naming the setting and exit 78 (inside the server's start-up it would be a traceback).
    Nothing to check without stored keys; a database that cannot be read is left to the
    server's own start-up to report."""
    engine = create_engine(database_url)
    try:
        check_passphrase(engine, passphrase)
    except KeyMaterialError as error:
        typer.echo(f"error: {variable}: {error}", err=True)
        raise typer.Exit(EXIT_CONFIG) from None
    except SQLAlchemyError:
        return
    finally:
        engine.dispose()


def check_database(service: Service, migrate_on_start: bool) -> None:
    """Before a server starts: its database opens (else one line naming the setting, and 78),
    and, with migrations on start turned off, its schemas are at the newest revision (else the
    command to run first, then why, and 78). In the server's start-up each is a traceback."""
    url, schemas = _service_database(service)
    variable = f"{service.value.upper()}_DATABASE_URL"
    with _database(service, url) as engine:
        with engine.connect():
            pass
        behind = [schema.name for schema in schemas if current(engine, schema) != head(schema)]
    if behind and not migrate_on_start:
        typer.echo(
            f"error: run `dataspace db upgrade {service.value}` first: the schema of "
            f"{variable} is not at the newest revision ({', '.join(behind)}) and "
            f"{service.value.upper()}_MIGRATE_ON_START is false",
            err=True,
        )
        raise typer.Exit(EXIT_CONFIG)


def check_owner(settings: ConnectorSettings) -> None:
    """Before a connector starts: its database is not another participant's (one line naming
    the setting, and 78). A database that cannot be read is left to the server's start-up."""
    engine = create_engine(settings.database_url)
    try:
        owner = owner_of(engine)
    except SQLAlchemyError:
        return
    finally:
        engine.dispose()
    if owner is not None and owner != settings.participant_id:
        error = ForeignDatabaseError(owner, settings.participant_id)
        typer.echo(f"error: CONNECTOR_DATABASE_URL: {error}", err=True)
        raise typer.Exit(EXIT_CONFIG)


@contextmanager
def held_database(database_url: str, variable: str) -> Iterator[None]:
    """The SQLite file of a server, held by it alone while it runs (else one line, and 78)."""
    try:
        with held_sqlite_file(database_url):
            yield
    except DatabaseInUseError as error:
        typer.echo(f"error: {variable}: {error}", err=True)
        raise typer.Exit(EXIT_CONFIG) from None


@connector_cli.command("serve")
def connector_serve(host: HostOption = None, port: PortOption = None) -> None:
    """Run the connector (settings: CONNECTOR_* variables)."""
    settings = load_settings(ConnectorSettings, host=host, port=port)
    check_database(Service.CONNECTOR, settings.migrate_on_start)
    with held_database(settings.database_url, "CONNECTOR_DATABASE_URL"):
        check_owner(settings)
        check_keys(
            settings.database_url,
            settings.key_passphrase.get_secret_value(),
            "CONNECTOR_KEY_PASSPHRASE",
        )
        tune_for_server()
        uvicorn.run(create_connector_app(settings), host=settings.host, port=settings.port)


@connector_cli.command("tck-config")
def connector_tck_config(
    kit_callback: Annotated[
        str,
        typer.Option(help="Where the Eclipse DSP TCK listens (its dataspacetck.callback.address)."),
    ],
) -> None:
    """Print the Eclipse DSP TCK's configuration file for this connector in conformance mode
    (CONNECTOR_CONFORMANCE_* set): its ids, URLs and the kit's Authorization header."""
    settings = load_settings(ConnectorSettings)
    if not settings.conformance_mode or settings.conformance_token is None:
        typer.echo(
            "error: set CONNECTOR_CONFORMANCE_TOKEN and CONNECTOR_CONFORMANCE_PARTICIPANT_ID "
            "(conformance-testing mode) first",
            err=True,
        )
        raise typer.Exit(EXIT_CONFIG)
    from connector.conformance.kit import properties, render  # conformance mode only

    authorization = f"Bearer {settings.conformance_token.get_secret_value()}"
    config = properties(settings.base_url, kit_callback, authorization, settings.participant_id)
    typer.echo(render(config), nl=False)


@connector_cli.command("onboard")
def connector_onboard(
    authority: Annotated[str, typer.Option(help="The data-space authority's DID.")],
    credential: Annotated[
        list[CredentialType],
        typer.Option("--type", help="A credential to request (repeatable)."),
    ],
    name: Annotated[
        str | None, typer.Option(help="Your organisation's name (for the operator).")
    ] = None,
    credit_code: Annotated[
        str | None, typer.Option(help="Its unified social credit code (GB 32100).")
    ] = None,
    region: Annotated[
        str | None, typer.Option(help="Its administrative division (GB/T 2260).")
    ] = None,
    data_grade: Annotated[Grade | None, typer.Option(help="Its data grade.")] = None,
    wait: Annotated[
        bool, typer.Option("--wait/--no-wait", help="Wait for the authority's decision.")
    ] = True,
    timeout: Annotated[
        float, typer.Option(min=0, help="How long to wait for the decision, in seconds.")
    ] = 600.0,
) -> None:
    """Ask the data-space authority for credentials, and wait until its operator decides
    (--no-wait: return at once). The authority delivers them to this connector's Credential
    Service: keep `dataspace connector serve` running."""
    settings = load_settings(ConnectorSettings)
    stated = {"name": name, "creditCode": credit_code, "region": region,
              "dataGrade": data_grade.value if data_grade else None}  # fmt: skip
    organisation = None
    if any(stated.values()):
        try:
            organisation = OrganisationClaims.model_validate(stated)
        except ValidationError as error:
            problem = error.errors()[0]
            where = ".".join(str(part) for part in problem["loc"])
            message = str(problem["msg"]).removeprefix("Value error, ")
            typer.echo(f"error: organisation {where}: {message}", err=True)
            raise typer.Exit(2) from None
    try:
        request_id, status = asyncio.run(
            _onboard(settings, authority, credential, organisation, timeout if wait else None)
        )
    except (OnboardingError, StatusError, IdentityError) as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(1) from None
    except KeyMaterialError as error:
        typer.echo(f"error: CONNECTOR_KEY_PASSPHRASE: {error}", err=True)
        raise typer.Exit(EXIT_CONFIG) from None
    match status:
        case "ISSUED":
            typer.echo(
                f"request {request_id}: ISSUED; the credentials went to your connector's "
                "Credential Service (see `dataspace connector credentials list`)"
            )
        case "REJECTED":
            typer.echo(f"request {request_id}: REJECTED by the authority's operator", err=True)
            raise typer.Exit(1)
        case _:
            typer.echo(f"request {request_id}: {status}")
            typer.echo(
                f"next: the authority's operator runs `dataspace authority approve {request_id}`"
                " (or reject); keep `dataspace connector serve` running to receive the "
                "credentials, then see them with `dataspace connector credentials list`",
                err=True,
            )
            if wait:  # waited, and no decision came in time
                typer.echo(f"error: no decision after {timeout:g} s", err=True)
                raise typer.Exit(1)


async def _onboard(
    settings: ConnectorSettings,
    authority: str,
    types: list[CredentialType],
    organisation: OrganisationClaims | None,
    timeout_s: float | None,
) -> tuple[str, str]:
    async with standalone(settings) as (participant, client):
        status = await request_credentials(participant, client, authority, types, organisation)
        request_id, state = str(status.get("issuerPid")), str(status.get("status"))
        if timeout_s is not None and state == WAITING:
            typer.echo(
                f"request {request_id}: waiting for the authority's operator to decide "
                f"(at most {timeout_s:g} s)",
                err=True,
            )
            state = await wait_for_decision(
                participant, client, authority, request_id, timeout_s=timeout_s
            )
        return request_id, state


@credentials_cli.command("list")
def credentials_list(
    credential_type: Annotated[
        CredentialType | None, typer.Option("--type", help="Only credentials of this type.")
    ] = None,
) -> None:
    """List held credentials, newest first, with what this connector believes of each now
    (valid, expired, not_yet_valid, revoked; unknown while its status list cannot be read).
    Only valid and unknown ones are presented to verifiers."""
    settings = load_settings(ConnectorSettings)
    types = None if credential_type is None else frozenset({credential_type})
    try:
        held = asyncio.run(_holdings(settings, types))
    except KeyMaterialError as error:
        typer.echo(f"error: CONNECTOR_KEY_PASSPHRASE: {error}", err=True)
        raise typer.Exit(EXIT_CONFIG) from None
    if not held:
        typer.echo("no credentials held")
        return
    rows = [("ID", "TYPE", "ISSUER", "ISSUED", "EXPIRES", "STATUS")]
    for h in held:
        status = h.belief.value if h.why is None else f"{h.belief.value} ({h.why})"
        issued, expires = (t.isoformat(timespec="seconds") for t in (h.issued_at, h.expires_at))
        rows.append((h.id, h.type.value, h.issuer, issued, expires, status))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    for row in rows:
        typer.echo("  ".join([*(c.ljust(w) for c, w in zip(row, widths, strict=False)), row[-1]]))


async def _holdings(
    settings: ConnectorSettings, types: frozenset[CredentialType] | None
) -> Sequence[Holding]:
    async with standalone(settings) as (participant, _):
        return await participant.credential_service.holdings(types)


@credentials_cli.command("remove")
def credentials_remove(
    credential_id: Annotated[str, typer.Argument(help="The credential's id (see list).")],
) -> None:
    """Stop holding a credential: it is never presented again (a new one is asked for with
    `dataspace connector onboard`)."""
    settings = load_settings(ConnectorSettings)
    engine = create_engine(settings.database_url)
    try:
        migrate_connector(engine)
        claim(engine, settings.participant_id, datetime.now(UTC))  # not another's credentials
        removed = CredentialStore(engine).remove(credential_id)
    finally:
        engine.dispose()
    if not removed:
        typer.echo(f"error: no held credential {credential_id}", err=True)
        raise typer.Exit(1)
    typer.echo(f"removed {credential_id}")


@connector_cli.command("rotate-key")
def connector_rotate_key() -> None:
    """Make a new signing key current; the old one stays published for what it signed."""
    settings = load_settings(ConnectorSettings)
    engine = create_engine(settings.database_url)
    try:
        migrate_connector(engine)
        claim(engine, settings.participant_id, datetime.now(UTC))  # not another's key ring
        ring = KeyRing.rotate(
            engine,
            settings.participant_id,
            settings.key_passphrase.get_secret_value(),
            datetime.now(UTC),
            settings.key_type,
            settings.key_cost,
        )
    except KeyMaterialError as error:
        typer.echo(f"error: CONNECTOR_KEY_PASSPHRASE: {error}", err=True)
        raise typer.Exit(EXIT_CONFIG) from None
    finally:
        engine.dispose()
    typer.echo(f"current key: {ring.current.key_id}")


@broker_cli.command("serve")
def broker_serve(host: HostOption = None, port: PortOption = None) -> None:
    """Run the broker (settings: BROKER_* variables)."""
    settings = load_settings(BrokerSettings, host=host, port=port)
    check_database(Service.BROKER, settings.migrate_on_start)
    check_keys(
        settings.database_url, settings.key_passphrase.get_secret_value(), "BROKER_KEY_PASSPHRASE"
    )
    tune_for_server()
    uvicorn.run(create_broker_app(settings), host=settings.host, port=settings.port)


@ledger_cli.command("serve")
def ledger_serve(host: HostOption = None, port: PortOption = None) -> None:
    """Run the ledger service (settings: LEDGER_* variables)."""
    settings = load_settings(LedgerSettings, host=host, port=port)
    check_database(Service.LEDGER, settings.migrate_on_start)
    tune_for_server()
    from ledger.app import create_app as create_ledger_app  # web3: see ledger_commands.py

    uvicorn.run(create_ledger_app(settings), host=settings.host, port=settings.port)


ledger_commands.register(ledger_cli, load_settings)


class Service(StrEnum):
    CONNECTOR = "connector"
    BROKER = "broker"
    LEDGER = "ledger"


class Schema(StrEnum):
    CONNECTOR = "connector"
    BROKER = "broker"
    LEDGER = "ledger"
    IDENTITY = "identity"


SCHEMAS: dict[Schema, Callable[[], Migrations]] = {
    Schema.CONNECTOR: connector_migrations,
    Schema.BROKER: broker_migrations,
    Schema.LEDGER: ledger_migrations,
    Schema.IDENTITY: identity_migrations,
}


def _service_database(service: Service) -> tuple[str, tuple[Migrations, ...]]:
    """A service's database URL (from its settings) and the schemas kept in it."""
    match service:
        case Service.CONNECTOR:
            url = load_settings(ConnectorSettings).database_url
            return url, (connector_migrations(), identity_migrations())
        case Service.BROKER:
            url = load_settings(BrokerSettings).database_url
            return url, (broker_migrations(), identity_migrations())
        case Service.LEDGER:
            url = load_settings(LedgerSettings).database_url
            return url, (ledger_migrations(), identity_migrations())


@contextmanager
def _database(service: Service, url: str) -> Iterator[Engine]:
    """The service's database engine (``url`` from its settings); a database that cannot be
    used is one line and 78."""
    engine = create_engine(url)
    try:
        yield engine
    except SQLAlchemyError as error:
        first = (str(getattr(error, "orig", None) or error).splitlines() or [""])[0]
        variable = f"{service.value.upper()}_DATABASE_URL"
        typer.echo(f"error: {variable}: the database cannot be used: {first}", err=True)
        raise typer.Exit(EXIT_CONFIG) from None
    finally:
        engine.dispose()


@db_cli.command("upgrade")
def db_upgrade(service: Service) -> None:
    """Bring a service's database to the newest schema (its *_DATABASE_URL)."""
    url, schemas = _service_database(service)
    with _database(service, url) as engine:
        for schema in schemas:
            upgrade(engine, schema)
    typer.echo(f"{service.value}: database at the newest revision")


def _missing_file(url: str) -> Path | None:
    """The file of a SQLite database URL when it does not exist yet (opening it would create
    it, which a command that only reads must not do); None otherwise."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or is_memory_sqlite(parsed):
        return None
    path = Path(str(parsed.database))
    return None if path.exists() else path


def _at(engine: Engine | None, schema: Migrations) -> str | None:
    """The revision ``schema`` is at; None with no database yet."""
    return None if engine is None else current(engine, schema)


@contextmanager
def _existing_database(service: Service, url: str) -> Iterator[Engine | None]:
    """As :func:`_database`, but None for a SQLite file that does not exist (which is left
    uncreated, and said on standard error)."""
    missing = _missing_file(url)
    if missing is not None:
        typer.echo(f"{service.value}: no database at {missing} yet", err=True)
        yield None
        return
    with _database(service, url) as engine:
        yield engine


CURRENT_COLUMNS = ("SCHEMA", "AT", "NEWEST", "STATE")


@db_cli.command("current")
def db_current(service: Service) -> None:
    """Each schema of a service's database: the revision it is at and the newest one.
    Exit 1 when one is behind (``dataspace db upgrade SERVICE`` brings it up)."""
    url, schemas = _service_database(service)
    behind = False
    with _existing_database(service, url) as engine:
        rows = []
        for schema in schemas:
            at, newest = _at(engine, schema), head(schema)
            state = "current" if at == newest else ("not migrated" if at is None else "behind")
            behind |= at != newest
            rows.append((schema.name, at or "-", newest or "-", state))
    table(rows, [(header, itemgetter(i)) for i, header in enumerate(CURRENT_COLUMNS)])
    if behind:
        typer.echo(f"run: dataspace db upgrade {service.value}", err=True)
        raise typer.Exit(1)


HISTORY_COLUMNS = ("SCHEMA", "REVISION", "MESSAGE", "APPLIED")


@db_cli.command("history")
def db_history(service: Service) -> None:
    """Every migration of a service's schemas, oldest first, and whether its database has it."""
    url, schemas = _service_database(service)
    with _existing_database(service, url) as engine:
        rows = []
        for schema in schemas:
            at = _at(engine, schema)
            applied = at is not None
            for revision_id, message in history(schema):
                rows.append((schema.name, revision_id, message, "yes" if applied else "no"))
                if revision_id == at:
                    applied = False
    table(rows, [(header, itemgetter(i)) for i, header in enumerate(HISTORY_COLUMNS)])


@db_cli.command("revision")
def db_revision(
    schema_name: Schema, message: Annotated[str, typer.Option("--message", "-m")]
) -> None:
    """For developers: write a new migration from the difference between models and schema."""
    schema = SCHEMAS[schema_name]()
    with tempfile.TemporaryDirectory() as scratch:
        engine = create_engine(f"sqlite:///{Path(scratch) / 'scratch.db'}")
        upgrade(engine, schema)
        revision(schema, engine, message)
        engine.dispose()


class _Bar:
    """Download progress on standard error with ``rich``: bytes so far, percent, speed and time
    left (a terminal sees it move; a log gets the final line)."""

    def __init__(self) -> None:
        self.progress = Progress(
            TextColumn("  "), BarColumn(), DownloadColumn(), TaskProgressColumn(),
            TransferSpeedColumn(), TimeRemainingColumn(),
            console=Console(stderr=True), transient=False,
        )  # fmt: skip
        self.task = self.progress.add_task("download", total=None)

    def __enter__(self) -> _Bar:
        self.progress.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.progress.stop()

    def __call__(self, done: int, total: int | None) -> None:
        self.progress.update(self.task, completed=done, total=total)


def _check_output(path: Path) -> None:
    """A file the download can write: not a folder, in a folder that exists and is writable
    (and, if it exists already, writable itself); else one line and exit 2."""
    folder = path.parent
    if path.is_dir():
        why = "is a folder; name the file to write"
    elif not folder.is_dir():
        why = f"its folder {folder} does not exist"
    elif not os.access(folder, os.W_OK | os.X_OK):
        why = f"its folder {folder} is not writable"
    elif path.exists() and not os.access(path, os.W_OK):
        why = "exists and is not writable"
    else:
        return
    typer.echo(f"error: --output {path}: {why}", err=True)
    raise typer.Exit(2)


@app.command("fetch")
def fetch(
    provider: Annotated[str, typer.Option(help="The provider's DID.")],
    provider_address: Annotated[str, typer.Option(help="The provider's DSP address.")],
    dataset: Annotated[str, typer.Option(help="The dataset (asset) id.")],
    purpose: Annotated[str, typer.Option(help="Why the data is needed (policy purpose).")],
    output: Annotated[Path, typer.Option(help="Where to write the data.")],
    connector: Annotated[
        str, typer.Option(envvar="KEXIN_CONNECTOR_URL", help="Your own connector's base URL.")
    ] = "http://127.0.0.1:8181",
    api_key: Annotated[
        str,
        typer.Option(envvar="KEXIN_API_KEY", help="Your connector's management API key."),
    ] = "",
    resume: Annotated[bool, typer.Option(help="Continue an interrupted download.")] = True,
    accept: Annotated[
        str | None, typer.Option(help="Row format of SQL data: text/csv or application/jsonl.")
    ] = None,
    offer: Annotated[
        str | None,
        typer.Option(help="The offer (@id in the catalogue) to agree to; default: the first."),
    ] = None,
) -> None:
    """Get a dataset through your connector's data contracts API: agree (or reuse an agreement),
    start the transfer, and download to a file with progress, resume and a SHA-256. The offer
    is the one named, or the first the provider's catalogue shows you (it shows only the offers
    whose access policies admit you)."""
    if not api_key:
        typer.echo("error: set KEXIN_API_KEY (or --api-key)", err=True)
        raise typer.Exit(2)
    _check_output(output)  # before a use of the agreement is spent
    try:
        with ContractsClient(connector, api_key) as client:
            grant = client.request_data(provider, provider_address, dataset, purpose, offer=offer)
            typer.echo(
                f"agreement {grant.agreement_id}"
                f"{' (reused)' if grant.reused_agreement else ''}, transfer {grant.transfer_id}",
                err=True,
            )
            with _Bar() as bar:
                got = client.download(grant, output, progress=bar, resume=resume, accept=accept)
    except ContractsError as error:
        typer.echo(f"refused: {error.code}: {error.message}", err=True)
        for reason in error.reasons:
            typer.echo(f"  - {reason}", err=True)
        raise typer.Exit(3 if error.status == 403 else 1) from None
    except OSError as error:
        typer.echo(f"error: {output}: {error.strerror}", err=True)
        raise typer.Exit(1) from None
    resumed = f" (resumed at byte {got.resumed_from})" if got.resumed_from else ""
    typer.echo(f"{got.sha256}  {got.path}  {got.bytes} bytes{resumed}")


app.command("match")(match_commands.match)


@data_cli.command("generate")
def data_generate(
    dataset: Annotated[Dataset, typer.Argument(help="What to generate.")],
    count: Annotated[int, typer.Option(min=0, help="Number of rows.")],
    seed: Annotated[int, typer.Option(help="The same seed gives the same file.")],
    output: Annotated[Path, typer.Option(help="The CSV file to write.")],
    overlap_with: Annotated[
        Path | None, typer.Option(help="Another list of the same kind to share rows with.")
    ] = None,
    overlap: Annotated[
        float, typer.Option(min=0.0, max=1.0, help="Share of rows taken from --overlap-with.")
    ] = 0.0,
    malformed: Annotated[
        float, typer.Option(min=0.0, max=1.0, help="Share of rows with an invalid identifier.")
    ] = 0.0,
) -> None:
    """Write a synthetic enterprise (uscc) or resident (id_number) list: valid check
    characters, real Guangdong region codes, plausible names; a chosen overlap with another
    list and a share of malformed identifiers."""
    others: list[str] = []
    if overlap_with is not None:
        try:
            others = read_column(overlap_with, dataset.kind.value, dataset.kind).items
        except MatchingError as error:
            typer.echo(f"error: --overlap-with: {error.message}", err=True)
            raise typer.Exit(1) from None
    try:
        rows = generate(
            dataset, count, seed, overlap_with=others, overlap=overlap, malformed=malformed
        )
        written = write_csv(output, dataset, rows)
    except ValueError as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(2) from None
    except OSError as error:
        typer.echo(f"error: {output}: {error.strerror}", err=True)
        raise typer.Exit(1) from None
    typer.echo(f"{written} {dataset.value} written to {output}")


@app.command("demo")
def demo_command() -> None:
    """Run the end-to-end demo on embedded defaults (SQLite files in a temporary folder)."""
    from dataspace import demo  # web3 behind it: see ledger_commands.py

    raise typer.Exit(demo.run(typer.echo))


def main() -> None:
    try:
        app()
    except ForeignDatabaseError as error:  # any connector command on another's database
        typer.echo(f"error: CONNECTOR_DATABASE_URL: {error}", err=True)
        raise SystemExit(EXIT_CONFIG) from None
