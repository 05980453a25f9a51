"""The data holder's commands, through its connector's management API
(:class:`connector.management.client.ManagementClient`): ``dataspace assets``, ``policies``,
``offers`` (contract definitions), ``catalog`` (a peer's), ``negotiations``, ``agreements`` and
``transfers`` with every manual move the API offers.

The connector is found by ``CONNECTOR_PUBLIC_URL`` (or ``CONNECTOR_HOST``/``CONNECTOR_PORT``)
and its key by ``CONNECTOR_MANAGEMENT_API_KEY``; ``--url`` and ``--api-key`` override them."""

from __future__ import annotations

import json
import os
import shlex
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import parse_qs, urlsplit

import typer
from pydantic import TypeAdapter, ValidationError

from connector.management.client import ManagementClient, NegotiationMove, TransferMove
from connector.management.views import AssetView, NegotiationView, Page, TransferView
from connector.negotiation.machine import Role, State
from connector.settings import PurposeName
from connector.transfer.machine import State as TransferState
from dataspace import connections
from dataspace.connections import ApiKeyOption, UrlOption
from dataspace.output import (
    EXIT_CONFIG,
    EXIT_POLICY,
    Column,
    Output,
    OutputOption,
    fail,
    refusals,
    show_list,
    show_one,
    table,
    usage,
)
from identity.credentials import CredentialType
from ledger.events import LegalBasis
from policy.lint import Finding, Severity, lint
from policy.operands import Grade, Vocabulary

KEY = "CONNECTOR_MANAGEMENT_API_KEY"
CONNECTOR = "your connector"

assets_cli = typer.Typer(help="Your connector's assets (what you offer).", no_args_is_help=True)
policies_cli = typer.Typer(
    help="Your connector's policy definitions (ODRL, linted before they are saved).",
    no_args_is_help=True,
)
offers_cli = typer.Typer(
    help="Your offers: contract definitions joining an access policy, a contract policy and "
    "the assets they cover.",
    no_args_is_help=True,
)
negotiations_cli = typer.Typer(help="Contract negotiations, in both roles.", no_args_is_help=True)
agreements_cli = typer.Typer(help="Contract agreements, in both roles.", no_args_is_help=True)
transfers_cli = typer.Typer(help="Transfer processes, in both roles.", no_args_is_help=True)

OffsetOption = Annotated[int, typer.Option(min=0, help="Skip this many.")]
LimitOption = Annotated[int, typer.Option(min=1, max=500, help="At most this many.")]
SortOption = Annotated[
    str | None, typer.Option(help="Sort by this field (its API name); '-' before it: descending.")
]


def _value(choice: Role | State | TransferState | None) -> str | None:
    return None if choice is None else choice.value


ENDED = frozenset({"FINALIZED", "TERMINATED", "COMPLETED"})


def _state(view: NegotiationView | TransferView) -> str:
    """The state, and whether a person must decide (only while the process goes on)."""
    held = view.on_hold and view.state not in ENDED
    return view.state + (" (on hold)" if held else "")


def _client(url: str | None, api_key: str | None) -> ManagementClient:
    return connections.connector(url, api_key)


def _done(view: Any, output: Output, verb: str) -> None:
    """What a change answered: the view (JSON), or one line naming it."""
    if output is Output.JSON:
        show_one(view, output)
    else:
        typer.echo(f"{verb} {view.id}")


def _page(page: Page[Any], columns: list[Column], output: Output, empty: str) -> None:
    """A page: as the API answered it (items, offset, next) in JSON, else a table."""
    if output is Output.JSON:
        show_one(page, output)
    else:
        show_list(page.items, columns, output, empty=empty, next_offset=page.next)


def _read_json(source: str, what: str) -> dict[str, Any]:
    """A JSON object from a file, or from standard input for ``-``; exit 2 otherwise."""
    try:
        text = sys.stdin.read() if source == "-" else Path(source).read_text("utf-8")
    except OSError as error:
        usage(f"{what}: {source}: {error.strerror}")
    except UnicodeDecodeError:
        usage(f"{what}: {source}: not UTF-8 text")
    try:
        value = json.loads(text)
    except ValueError as error:
        usage(f"{what}: {source}: not JSON ({error})")
    if not isinstance(value, dict):
        usage(f"{what}: {source}: a JSON object is needed")
    return value


# --- assets ------------------------------------------------------------------------------------

ASSET_COLUMNS: list[Column] = [
    ("ID", lambda a: a.id),
    ("TITLE", lambda a: a.title_zh or a.title_en),
    ("GRADE", lambda a: a.data_grade),
    ("REGION", lambda a: a.region),
    ("DOMAIN", lambda a: a.domain),
    ("ADDRESS", lambda a: a.data_address.get("type")),
]

TitleZh = Annotated[str | None, typer.Option(help="Title in Chinese.")]
TitleEn = Annotated[str | None, typer.Option(help="Title in English.")]
DescriptionZh = Annotated[str | None, typer.Option(help="Description in Chinese.")]
DescriptionEn = Annotated[str | None, typer.Option(help="Description in English.")]
Keywords = Annotated[
    list[str] | None, typer.Option("--keyword", help="A keyword (repeatable; replaces them all).")
]
Domain = Annotated[str | None, typer.Option(help="Scenario domain id (see the API's /domains).")]
DataGrade = Annotated[Grade | None, typer.Option(help="The data's grade.")]
Personal = Annotated[
    bool | None,
    typer.Option("--personal-information/--no-personal-information", help="Holds personal data."),
]
BasisOption = Annotated[
    LegalBasis | None,
    typer.Option("--legal-basis", help="PIPL article 13's basis for the personal data."),
]
PersonCount = Annotated[
    int | None,
    typer.Option(min=0, help="How many natural persons' data it holds (with personal data)."),
]
Region = Annotated[str | None, typer.Option(help="Administrative division code (GB/T 2260).")]
Version = Annotated[str | None, typer.Option(help="The data's version.")]
RegistrationCode = Annotated[
    str | None,
    typer.Option(help="TC609's registration code (登记编码), when the data is registered."),
]
FileAddress = Annotated[str | None, typer.Option("--file", help="Data address: a local file.")]
HttpAddress = Annotated[str | None, typer.Option("--http", help="Data address: an HTTP backend.")]
SqlDatabase = Annotated[
    str | None, typer.Option(help="Data address: a configured SQL source (CONNECTOR_SQL_SOURCES).")
]
SqlQuery = Annotated[str | None, typer.Option(help="The SQL query (with --sql-database).")]


def _address(
    file: str | None, http: str | None, sql_database: str | None, sql_query: str | None
) -> dict[str, str] | None:
    given = [name for name, v in (("file", file), ("http", http), ("sql", sql_database)) if v]
    if len(given) > 1:
        usage("give one data address: --file, --http or --sql-database")
    if (sql_database is None) != (sql_query is None):
        usage("--sql-database and --sql-query go together")
    if file:
        return {"type": "file", "path": str(Path(file).absolute())}
    if http:
        return {"type": "http", "url": http}
    if sql_database and sql_query:
        return {"type": "sql", "database": sql_database, "query": sql_query}
    return None


def _asset_body(view: AssetView) -> dict[str, Any]:
    """An asset as the API takes it, from how it shows it."""
    return {
        "id": view.id,
        "titleZh": view.title_zh,
        "titleEn": view.title_en,
        "descriptionZh": view.description_zh,
        "descriptionEn": view.description_en,
        "keywords": view.keywords,
        "domain": view.domain,
        "dataGrade": view.data_grade,
        "personalInformation": view.personal_information,
        "legalBasis": view.legal_basis,
        "personCount": view.person_count,
        "region": view.region,
        "version": view.version,
        "registrationCode": view.registration_code,
        "dataAddress": view.data_address,
    }


@assets_cli.command("add")
def assets_add(
    asset_id: Annotated[str, typer.Argument(help="The asset's id, e.g. urn:kexin:asset:firms.")],
    data_grade: Annotated[Grade, typer.Option(help="The data's grade.")],
    title_zh: TitleZh = None,
    title_en: TitleEn = None,
    description_zh: DescriptionZh = None,
    description_en: DescriptionEn = None,
    keyword: Keywords = None,
    domain: Domain = None,
    personal_information: Personal = None,
    legal_basis: BasisOption = None,
    person_count: PersonCount = None,
    region: Region = None,
    version: Version = None,
    registration_code: RegistrationCode = None,
    file: FileAddress = None,
    http: HttpAddress = None,
    sql_database: SqlDatabase = None,
    sql_query: SqlQuery = None,
    url: UrlOption = None,
    api_key: ApiKeyOption = None,
    output: OutputOption = Output.TABLE,
) -> None:
    """Publish an asset: its description and where its data is (--file, --http or
    --sql-database with --sql-query). It is offered once an offer (contract definition)
    covers it."""
    address = _address(file, http, sql_database, sql_query)
    if address is None:
        usage("give the data address: --file, --http or --sql-database with --sql-query")
    if not (title_zh or title_en):
        usage("give a title: --title-zh or --title-en")
    body = {
        "id": asset_id, "titleZh": title_zh, "titleEn": title_en,
        "descriptionZh": description_zh, "descriptionEn": description_en,
        "keywords": keyword or [], "domain": domain, "dataGrade": data_grade.value,
        "personalInformation": bool(personal_information),
        "legalBasis": legal_basis.value if legal_basis else None, "personCount": person_count,
        "region": region, "version": version, "registrationCode": registration_code,
        "dataAddress": address,
    }  # fmt: skip
    with _client(url, api_key) as client, refusals(CONNECTOR, KEY):
        made = client.create_asset(body)
    _done(made, output, "added")


@assets_cli.command("list")
def assets_list(
    domain: Domain = None,
    region: Region = None,
    data_grade: DataGrade = None,
    sort: SortOption = None,
    offset: OffsetOption = 0,
    limit: LimitOption = 50,
    url: UrlOption = None,
    api_key: ApiKeyOption = None,
    output: OutputOption = Output.TABLE,
) -> None:
    """Your assets, a page at a time, by id unless --sort says otherwise."""
    query = {"domain": domain, "region": region, "offset": offset, "limit": limit, "sort": sort,
             "dataGrade": data_grade.value if data_grade else None}  # fmt: skip
    with _client(url, api_key) as client, refusals(CONNECTOR, KEY):
        page = client.assets(**query)
    _page(page, ASSET_COLUMNS, output, "no assets")


@assets_cli.command("show")
def assets_show(
    asset_id: Annotated[str, typer.Argument(help="The asset's id.")],
    url: UrlOption = None,
    api_key: ApiKeyOption = None,
    output: OutputOption = Output.TABLE,
) -> None:
    """One asset, with its data address (never shown in the catalogue)."""
    with _client(url, api_key) as client, refusals(CONNECTOR, KEY):
        found = client.asset(asset_id)
    show_one(found, output)


@assets_cli.command("update")
def assets_update(
    asset_id: Annotated[str, typer.Argument(help="The asset's id.")],
    title_zh: TitleZh = None,
    title_en: TitleEn = None,
    description_zh: DescriptionZh = None,
    description_en: DescriptionEn = None,
    keyword: Keywords = None,
    domain: Domain = None,
    data_grade: DataGrade = None,
    personal_information: Personal = None,
    legal_basis: BasisOption = None,
    person_count: PersonCount = None,
    region: Region = None,
    version: Version = None,
    registration_code: RegistrationCode = None,
    file: FileAddress = None,
    http: HttpAddress = None,
    sql_database: SqlDatabase = None,
    sql_query: SqlQuery = None,
    url: UrlOption = None,
    api_key: ApiKeyOption = None,
    output: OutputOption = Output.TABLE,
) -> None:
    """Change what the options say; the rest of the asset stays as it is."""
    address = _address(file, http, sql_database, sql_query)
    changes = {
        "titleZh": title_zh, "titleEn": title_en, "descriptionZh": description_zh,
        "descriptionEn": description_en, "keywords": keyword, "domain": domain,
        "dataGrade": data_grade.value if data_grade else None,
        "personalInformation": personal_information,
        "legalBasis": legal_basis.value if legal_basis else None, "personCount": person_count,
        "region": region, "version": version, "registrationCode": registration_code,
        "dataAddress": address,
    }  # fmt: skip
    given: dict[str, Any] = {k: v for k, v in changes.items() if v is not None}
    if personal_information is False:  # no personal data: nothing to state of it
        given |= {"legalBasis": None, "personCount": None}
    if not given:
        usage("nothing to change: give at least one option")
    with _client(url, api_key) as client, refusals(CONNECTOR, KEY):
        body = {**_asset_body(client.asset(asset_id)), **given}
        updated = client.update_asset(asset_id, body)
    _done(updated, output, "updated")


@assets_cli.command("remove")
def assets_remove(
    asset_id: Annotated[str, typer.Argument(help="The asset's id.")],
    url: UrlOption = None,
    api_key: ApiKeyOption = None,
) -> None:
    """Withdraw an asset (refused while an agreement is for it)."""
    with _client(url, api_key) as client, refusals(CONNECTOR, KEY):
        client.delete_asset(asset_id)
    typer.echo(f"removed {asset_id}")


# --- policies ----------------------------------------------------------------------------------

POLICY_COLUMNS: list[Column] = [
    ("ID", lambda p: p.id),
    ("TYPE", lambda p: p.policy.get("@type")),
    ("RULES", lambda p: len(p.policy.get("permission", [])) + len(p.policy.get("prohibition", []))),
    ("CREATED", lambda p: p.created_at),
]
PolicyFile = Annotated[str, typer.Argument(help="The ODRL policy: a JSON file, or - for stdin.")]


def _print_findings(findings: list[Finding]) -> bool:
    """The linter's findings on standard error; True when one is an error."""
    for finding in findings:
        typer.echo(str(finding), err=True)
    return any(f.severity is Severity.ERROR for f in findings)


def _vocabulary() -> Vocabulary:
    """The purposes a policy is linted with: Kexin's, and the deployment's own when
    ``CONNECTOR_PURPOSES`` gives them (as the connector reads it)."""
    given = os.environ.get("CONNECTOR_PURPOSES")
    if not given:
        return Vocabulary()
    try:
        purposes = TypeAdapter(dict[PurposeName, PurposeName | None]).validate_json(given)
        return Vocabulary.extended(purposes)
    except ValidationError as error:
        fail(f"error: invalid setting CONNECTOR_PURPOSES: {error.errors()[0]['msg']}", EXIT_CONFIG)
    except ValueError as error:  # as the connector refuses it at start
        fail(f"error: invalid setting CONNECTOR_PURPOSES: {error}", EXIT_CONFIG)


@policies_cli.command("lint")
def policies_lint(source: PolicyFile) -> None:
    """Lint a policy without saving it: exit 3 when it has errors (warnings are printed; the
    deployment's purposes from CONNECTOR_PURPOSES)."""
    policy = _read_json(source, "policy")
    findings = lint(policy, datetime.now(UTC), _vocabulary())
    if _print_findings(findings):
        raise typer.Exit(EXIT_POLICY)
    typer.echo("no findings" if not findings else f"{len(findings)} warning(s), no errors")


@policies_cli.command("add")
def policies_add(
    policy_id: Annotated[str, typer.Argument(help="The policy definition's id.")],
    source: PolicyFile,
    url: UrlOption = None,
    api_key: ApiKeyOption = None,
    output: OutputOption = Output.TABLE,
) -> None:
    """Lint the policy (findings printed first), then save it; one with errors is not saved
    (exit 3)."""
    policy = _read_json(source, "policy")
    if _print_findings(lint(policy, datetime.now(UTC), _vocabulary())):
        fail(f"not saved: {policy_id} has errors", EXIT_POLICY)
    with _client(url, api_key) as client, refusals(CONNECTOR, KEY):
        saved = client.create_policy(policy_id, policy)
    _done(saved, output, "added")


@policies_cli.command("list")
def policies_list(
    sort: SortOption = None,
    offset: OffsetOption = 0,
    limit: LimitOption = 50,
    url: UrlOption = None,
    api_key: ApiKeyOption = None,
    output: OutputOption = Output.TABLE,
) -> None:
    """Your policy definitions."""
    with _client(url, api_key) as client, refusals(CONNECTOR, KEY):
        page = client.policies(offset=offset, limit=limit, sort=sort)
    _page(page, POLICY_COLUMNS, output, "no policy definitions")


@policies_cli.command("show")
def policies_show(
    policy_id: Annotated[str, typer.Argument(help="The policy definition's id.")],
    url: UrlOption = None,
    api_key: ApiKeyOption = None,
    output: OutputOption = Output.JSON,
) -> None:
    """One policy definition (JSON unless --output table)."""
    with _client(url, api_key) as client, refusals(CONNECTOR, KEY):
        found = client.policy(policy_id)
    show_one(found, output)


@policies_cli.command("remove")
def policies_remove(
    policy_id: Annotated[str, typer.Argument(help="The policy definition's id.")],
    url: UrlOption = None,
    api_key: ApiKeyOption = None,
) -> None:
    """Delete a policy definition (refused while an offer uses it)."""
    with _client(url, api_key) as client, refusals(CONNECTOR, KEY):
        client.delete_policy(policy_id)
    typer.echo(f"removed {policy_id}")


# --- offers (contract definitions) -------------------------------------------------------------

OFFER_COLUMNS: list[Column] = [
    ("ID", lambda d: d.id),
    ("ACCESS POLICY", lambda d: d.access_policy_id),
    ("CONTRACT POLICY", lambda d: d.contract_policy_id),
    ("ASSETS", lambda d: d.asset_selector or "all"),
]


@offers_cli.command("add")
def offers_add(
    definition_id: Annotated[str, typer.Argument(help="The contract definition's id.")],
    access_policy: Annotated[str, typer.Option(help="Who sees the offer (a policy id).")],
    contract_policy: Annotated[str, typer.Option(help="What is agreed (a policy id).")],
    asset: Annotated[
        list[str] | None, typer.Option(help="An asset it covers (repeatable).")
    ] = None,
    domain: Domain = None,
    region: Region = None,
    data_grade: DataGrade = None,
    url: UrlOption = None,
    api_key: ApiKeyOption = None,
    output: OutputOption = Output.TABLE,
) -> None:
    """Offer assets (named, or every one matching --domain/--region/--data-grade; all when
    none is given) under a contract policy, to whoever the access policy admits."""
    selector = {"assetIds": asset or None, "domain": domain, "region": region,
                "dataGrade": data_grade.value if data_grade else None}  # fmt: skip
    body = {
        "id": definition_id,
        "accessPolicyId": access_policy,
        "contractPolicyId": contract_policy,
        "assetSelector": {k: v for k, v in selector.items() if v is not None},
    }
    with _client(url, api_key) as client, refusals(CONNECTOR, KEY):
        made = client.create_contract_definition(body)
    _done(made, output, "added")


@offers_cli.command("list")
def offers_list(
    sort: SortOption = None,
    offset: OffsetOption = 0,
    limit: LimitOption = 50,
    url: UrlOption = None,
    api_key: ApiKeyOption = None,
    output: OutputOption = Output.TABLE,
) -> None:
    """Your contract definitions."""
    with _client(url, api_key) as client, refusals(CONNECTOR, KEY):
        page = client.contract_definitions(offset=offset, limit=limit, sort=sort)
    _page(page, OFFER_COLUMNS, output, "no offers")


@offers_cli.command("remove")
def offers_remove(
    definition_id: Annotated[str, typer.Argument(help="The contract definition's id.")],
    url: UrlOption = None,
    api_key: ApiKeyOption = None,
) -> None:
    """Withdraw an offer (refused while an agreement was made under it)."""
    with _client(url, api_key) as client, refusals(CONNECTOR, KEY):
        client.delete_contract_definition(definition_id)
    typer.echo(f"removed {definition_id}")


# --- a peer's catalogue ------------------------------------------------------------------------

PeerAddress = Annotated[
    str, typer.Option("--address", help="The peer's DSP address: its public URL + /dsp.")
]


def _datasets(catalog: dict[str, Any]) -> list[dict[str, Any]]:
    found = catalog.get("dataset", [])
    found = found if isinstance(found, list) else [found]
    return [d for d in found if isinstance(d, dict)]


def _offers(dataset: dict[str, Any]) -> list[dict[str, Any]]:
    found = dataset.get("hasPolicy", [])
    found = found if isinstance(found, list) else [found]
    return [o for o in found if isinstance(o, dict)]


def _token(next_url: str | None) -> str | None:
    if next_url is None:
        return None
    tokens = parse_qs(urlsplit(next_url).query).get("continuationToken")
    return tokens[0] if tokens else None


def _whole_catalog(
    client: ManagementClient, peer: str, address: str, max_pages: int = 100
) -> list[dict[str, Any]]:
    datasets: list[dict[str, Any]] = []
    token: str | None = None
    for _ in range(max_pages):
        answer = client.catalog(peer, address, token)
        datasets += _datasets(answer.catalog)
        token = _token(answer.next)
        if token is None:
            break
    return datasets


def catalog_command(
    peer: Annotated[str, typer.Argument(help="The peer's DID.")],
    address: PeerAddress,
    dataset: Annotated[
        str | None, typer.Option(help="Only this dataset (its id there), asked for alone.")
    ] = None,
    url: UrlOption = None,
    api_key: ApiKeyOption = None,
    output: OutputOption = Output.TABLE,
) -> None:
    """What a peer offers you: its datasets and their offers, as its access policies admit
    your credentials (asked through your connector, DCP-authenticated; every page, or the one
    --dataset; JSON: the datasets as the peer sent them)."""
    with _client(url, api_key) as client, refusals(CONNECTOR, KEY):
        if dataset is None:
            datasets = _whole_catalog(client, peer, address)
        else:
            datasets = [client.dataset(peer, address, dataset).dataset]
    if output is Output.JSON:
        typer.echo(json.dumps(datasets, ensure_ascii=False, indent=2))
        return
    if not datasets:
        typer.echo("no datasets offered to you")
        return
    rows = [(d, o) for d in datasets for o in _offers(d) or [{}]]
    table(rows, [
        ("DATASET", lambda r: r[0].get("@id")),
        ("TITLE", lambda r: r[0].get("title") or r[0].get("dct:title")),
        ("OFFER", lambda r: r[1].get("@id")),
    ])  # fmt: skip


# --- search through the broker -----------------------------------------------------------------


def search_command(
    words: Annotated[str | None, typer.Argument(help="Words to find, Chinese or English.")] = None,
    domain: Annotated[str | None, typer.Option(help="Only this scenario domain (its id).")] = None,
    grade: Annotated[Grade | None, typer.Option(help="Only this data grade.")] = None,
    region: Annotated[
        str | None, typer.Option(help="Only this division (440100 holds 440106).")
    ] = None,
    provider: Annotated[str | None, typer.Option(help="Only this provider's DID.")] = None,
    offset: OffsetOption = 0,
    limit: Annotated[int, typer.Option(min=1, max=100, help="At most this many.")] = 20,
    url: UrlOption = None,
    api_key: ApiKeyOption = None,
    output: OutputOption = Output.TABLE,
) -> None:
    """Find datasets in the data space through the broker your connector names
    (CONNECTOR_BROKER_URL), DCP-authenticated as your connector. Each hit prints the
    ``dataspace fetch`` options that ask its provider for it (--provider, --provider-address,
    --dataset); JSON: the broker's answer (hits, facets with counts)."""
    with _client(url, api_key) as client, refusals(CONNECTOR, KEY):
        found = client.broker_datasets(
            words, domain=domain, grade=None if grade is None else grade.value, region=region,
            provider=provider, offset=offset, limit=limit,
        )  # fmt: skip
    if output is Output.JSON:
        typer.echo(json.dumps(found.model_dump(by_alias=True), ensure_ascii=False, indent=2))
        return
    if not found.items:
        typer.echo("no datasets found")
        return
    typer.echo(
        f"{found.total} found" + ("" if found.next is None else f", next: --offset {found.next}")
    )
    for hit in found.items:
        title = " / ".join(hit.title) or hit.dataset_id
        facts = ", ".join(str(f) for f in (hit.domain, hit.data_grade, hit.region) if f)
        typer.echo(f"\n{title}  ({facts})")
        typer.echo(
            f"  dataspace fetch --provider {shlex.quote(hit.provider)} "
            f"--provider-address {shlex.quote(hit.dsp_address)} "
            f"--dataset {shlex.quote(hit.dataset_id)}"
        )


# --- negotiations ------------------------------------------------------------------------------

NEGOTIATION_COLUMNS: list[Column] = [
    ("ID", lambda n: n.id),
    ("ROLE", lambda n: n.role),
    ("STATE", lambda n: _state(n)),
    ("COUNTERPARTY", lambda n: n.counter_party_id),
    ("ASSET", lambda n: n.asset_id),
    ("AGREEMENT", lambda n: n.agreement_id),
]
ProcessId = Annotated[str, typer.Argument(help="The process id (see list).")]
RoleOption = Annotated[Role | None, typer.Option(help="Only processes in this role.")]
StateOption = Annotated[State | None, typer.Option(help="Only negotiations in this state.")]
TransferStateOption = Annotated[
    TransferState | None, typer.Option(help="Only transfers in this state.")
]


@negotiations_cli.command("list")
def negotiations_list(
    role: RoleOption = None,
    state: StateOption = None,
    sort: SortOption = None,
    offset: OffsetOption = 0,
    limit: LimitOption = 50,
    url: UrlOption = None,
    api_key: ApiKeyOption = None,
    output: OutputOption = Output.TABLE,
) -> None:
    """Contract negotiations, newest last."""
    with _client(url, api_key) as client, refusals(CONNECTOR, KEY):
        page = client.negotiations(
            role=_value(role), state=_value(state), offset=offset, limit=limit, sort=sort
        )
    _page(page, NEGOTIATION_COLUMNS, output, "no negotiations")


@negotiations_cli.command("show")
def negotiations_show(
    negotiation_id: ProcessId,
    url: UrlOption = None,
    api_key: ApiKeyOption = None,
    output: OutputOption = Output.TABLE,
) -> None:
    """One negotiation, with its agreement once there is one."""
    with _client(url, api_key) as client, refusals(CONNECTOR, KEY):
        found = client.negotiation(negotiation_id)
    show_one(found, output)


@negotiations_cli.command("request")
def negotiations_request(
    provider: Annotated[str, typer.Option(help="The provider's DID.")],
    address: PeerAddress,
    dataset: Annotated[str, typer.Option(help="The dataset (asset) id.")],
    offer: Annotated[
        str | None, typer.Option(help="The offer's id (default: the dataset's first offer).")
    ] = None,
    purpose: Annotated[str | None, typer.Option(help="Why (the policy may require it).")] = None,
    url: UrlOption = None,
    api_key: ApiKeyOption = None,
    output: OutputOption = Output.TABLE,
) -> None:
    """Consumer: ask a provider for one of the offers its catalogue shows you."""
    with _client(url, api_key) as client, refusals(CONNECTOR, KEY):
        datasets = [d for d in _whole_catalog(client, provider, address) if d.get("@id") == dataset]
        offers = [o for d in datasets for o in _offers(d)]
        chosen = next((o for o in offers if offer is None or o.get("@id") == offer), None)
        if chosen is None:
            known = ", ".join(str(o.get("@id")) for o in offers) or "none"
            fail(
                f"refused: no_offer: {provider} offers you no {offer or 'offer'} for {dataset} "
                f"(offers shown to you: {known})",
                1,
            )
        made = client.request_negotiation({
            "counterPartyId": provider, "counterPartyAddress": address, "offer": chosen,
            "target": dataset, "purpose": purpose,
        })  # fmt: skip
    _moved(made, output)


@negotiations_cli.command("offer")
def negotiations_offer(
    consumer: Annotated[str, typer.Option(help="The consumer's DID.")],
    address: Annotated[str, typer.Option(help="The consumer's DSP callback address.")],
    offer: Annotated[str, typer.Option(help="One of your offers' ids (as the catalogue has it).")],
    url: UrlOption = None,
    api_key: ApiKeyOption = None,
    output: OutputOption = Output.TABLE,
) -> None:
    """Provider: start a negotiation by offering to a participant."""
    with _client(url, api_key) as client, refusals(CONNECTOR, KEY):
        made = client.offer_to(
            {"counterPartyId": consumer, "counterPartyAddress": address, "offerId": offer}
        )
    _moved(made, output)


def _moved(view: Any, output: Output) -> None:
    if output is Output.JSON:
        show_one(view, output)
    else:
        typer.echo(f"{view.id}: {_state(view)}")


def _negotiation_move(move: NegotiationMove, help_text: str) -> None:
    def command(
        negotiation_id: ProcessId,
        url: UrlOption = None,
        api_key: ApiKeyOption = None,
        output: OutputOption = Output.TABLE,
    ) -> None:
        with _client(url, api_key) as client, refusals(CONNECTOR, KEY):
            moved = client.move_negotiation(negotiation_id, move)
        _moved(moved, output)

    command.__doc__ = help_text
    negotiations_cli.command(move)(command)


_negotiation_move("approve", "Provider, manual mode: agree to a request held for a person.")
_negotiation_move("verify", "Consumer, manual mode: verify the provider's agreement.")
_negotiation_move("finalize", "Provider, manual mode: finalize a verified agreement.")


@negotiations_cli.command("accept")
def negotiations_accept(
    negotiation_id: ProcessId,
    purpose: Annotated[str | None, typer.Option(help="Why (the policy may require it).")] = None,
    url: UrlOption = None,
    api_key: ApiKeyOption = None,
    output: OutputOption = Output.TABLE,
) -> None:
    """Consumer: accept the provider's offer."""
    with _client(url, api_key) as client, refusals(CONNECTOR, KEY):
        moved = client.accept(negotiation_id, purpose)
    _moved(moved, output)


@negotiations_cli.command("counter")
def negotiations_counter(
    negotiation_id: ProcessId,
    offer: Annotated[str, typer.Option(help="The new terms: a JSON file, or - for stdin.")],
    url: UrlOption = None,
    api_key: ApiKeyOption = None,
    output: OutputOption = Output.TABLE,
) -> None:
    """Answer with other terms (the target stays the negotiation's)."""
    terms = _read_json(offer, "offer")
    with _client(url, api_key) as client, refusals(CONNECTOR, KEY):
        moved = client.counter(negotiation_id, terms)
    _moved(moved, output)


@negotiations_cli.command("terminate")
def negotiations_terminate(
    negotiation_id: ProcessId,
    reason: Annotated[str, typer.Option(help="Why (sent to the other side).")],
    code: Annotated[str, typer.Option(help="A code for the reason.")] = "terminated",
    url: UrlOption = None,
    api_key: ApiKeyOption = None,
    output: OutputOption = Output.TABLE,
) -> None:
    """End a negotiation, in either role."""
    with _client(url, api_key) as client, refusals(CONNECTOR, KEY):
        moved = client.terminate_negotiation(negotiation_id, reason, code)
    _moved(moved, output)


# --- agreements --------------------------------------------------------------------------------

AGREEMENT_COLUMNS: list[Column] = [
    ("AGREEMENT", lambda a: a.agreement_id or (a.agreement or {}).get("@id")),
    ("ROLE", lambda a: a.role),
    ("COUNTERPARTY", lambda a: a.counter_party_id),
    ("ASSET", lambda a: a.asset_id or (a.agreement or {}).get("target")),
    ("NEGOTIATION", lambda a: a.negotiation_id),
]


@agreements_cli.command("list")
def agreements_list(
    role: RoleOption = None,
    sort: SortOption = None,
    offset: OffsetOption = 0,
    limit: LimitOption = 50,
    url: UrlOption = None,
    api_key: ApiKeyOption = None,
    output: OutputOption = Output.TABLE,
) -> None:
    """Agreements made, in both roles."""
    with _client(url, api_key) as client, refusals(CONNECTOR, KEY):
        page = client.agreements(role=_value(role), offset=offset, limit=limit, sort=sort)
    _page(page, AGREEMENT_COLUMNS, output, "no agreements")


@agreements_cli.command("show")
def agreements_show(
    agreement_id: Annotated[str, typer.Argument(help="The agreement's id.")],
    url: UrlOption = None,
    api_key: ApiKeyOption = None,
    output: OutputOption = Output.JSON,
) -> None:
    """One agreement with the negotiation that made it (JSON unless --output table)."""
    with _client(url, api_key) as client, refusals(CONNECTOR, KEY):
        found = client.agreement(agreement_id)
    show_one(found, output)


# --- transfers ---------------------------------------------------------------------------------

TRANSFER_COLUMNS: list[Column] = [
    ("ID", lambda t: t.id),
    ("ROLE", lambda t: t.role),
    ("STATE", lambda t: _state(t)),
    ("COUNTERPARTY", lambda t: t.counter_party_id),
    ("AGREEMENT", lambda t: t.agreement_id),
    ("FORMAT", lambda t: t.format),
]


@transfers_cli.command("list")
def transfers_list(
    role: RoleOption = None,
    state: TransferStateOption = None,
    sort: SortOption = None,
    offset: OffsetOption = 0,
    limit: LimitOption = 50,
    url: UrlOption = None,
    api_key: ApiKeyOption = None,
    output: OutputOption = Output.TABLE,
) -> None:
    """Transfer processes."""
    with _client(url, api_key) as client, refusals(CONNECTOR, KEY):
        page = client.transfers(
            role=_value(role), state=_value(state), offset=offset, limit=limit, sort=sort
        )
    _page(page, TRANSFER_COLUMNS, output, "no transfers")


@transfers_cli.command("show")
def transfers_show(
    transfer_id: ProcessId,
    url: UrlOption = None,
    api_key: ApiKeyOption = None,
    output: OutputOption = Output.TABLE,
) -> None:
    """One transfer, with its data address once started (consumer)."""
    with _client(url, api_key) as client, refusals(CONNECTOR, KEY):
        found = client.transfer(transfer_id)
    show_one(found, output)


@transfers_cli.command("request")
def transfers_request(
    provider: Annotated[str, typer.Option(help="The provider's DID.")],
    address: PeerAddress,
    agreement: Annotated[str, typer.Option(help="The agreement's id.")],
    push: Annotated[
        bool, typer.Option("--push/--pull", help="Push to your endpoint, or pull (default).")
    ] = False,
    url: UrlOption = None,
    api_key: ApiKeyOption = None,
    output: OutputOption = Output.TABLE,
) -> None:
    """Consumer: ask the provider to start a transfer under an agreement."""
    body = {"counterPartyId": provider, "counterPartyAddress": address, "agreementId": agreement,
            "format": "HttpData-PUSH" if push else "HttpData-PULL"}  # fmt: skip
    with _client(url, api_key) as client, refusals(CONNECTOR, KEY):
        made = client.request_transfer(body)
    _moved(made, output)


@transfers_cli.command("edr")
def transfers_edr(
    transfer_id: ProcessId,
    url: UrlOption = None,
    api_key: ApiKeyOption = None,
    output: OutputOption = Output.TABLE,
) -> None:
    """Consumer: a started pull transfer's endpoint and bearer token (refreshed first by your
    connector when it has expired or is about to)."""
    with _client(url, api_key) as client, refusals(CONNECTOR, KEY):
        found = client.edr(transfer_id)
    show_one(found, output)


EDR_COLUMNS: list[Column] = [
    ("TRANSFER", lambda e: e.transfer_id),
    ("COUNTERPARTY", lambda e: e.counter_party_id),
    ("AGREEMENT", lambda e: e.agreement_id),
    ("ENDPOINT", lambda e: e.endpoint or ""),
    ("EXPIRES", lambda e: e.expires_at or ""),
]


@transfers_cli.command("edrs")
def transfers_edrs(
    sort: SortOption = None,
    offset: OffsetOption = 0,
    limit: LimitOption = 50,
    url: UrlOption = None,
    api_key: ApiKeyOption = None,
    output: OutputOption = Output.TABLE,
) -> None:
    """Consumer: your started pull transfers and their endpoints (tokens: ``transfers edr``)."""
    with _client(url, api_key) as client, refusals(CONNECTOR, KEY):
        page = client.edrs(offset=offset, limit=limit, sort=sort)
    _page(page, EDR_COLUMNS, output, "no started pull transfers")


# --- held credentials --------------------------------------------------------------------------

credentials_cli = typer.Typer(
    help="The credentials your participant holds (what it presents to verifiers).",
    no_args_is_help=True,
)

CREDENTIAL_COLUMNS: list[Column] = [
    ("ID", lambda c: c.id),
    ("TYPE", lambda c: c.type),
    ("ISSUER", lambda c: c.issuer),
    ("STATUS", lambda c: c.status + (f" ({c.status_reason})" if c.status_reason else "")),
    ("EXPIRES", lambda c: c.expires_at),
    ("PRESENTED", lambda c: "yes" if c.presented else "no"),
]


@credentials_cli.command("list")
def credentials_list(
    credential_type: Annotated[
        CredentialType | None, typer.Option("--type", help="Only this type.")
    ] = None,
    offset: OffsetOption = 0,
    limit: LimitOption = 50,
    url: UrlOption = None,
    api_key: ApiKeyOption = None,
    output: OutputOption = Output.TABLE,
) -> None:
    """Held credentials: type, issuer, validity, and what your connector believes of each now
    (valid, expired, not yet valid, revoked, or unknown while its status list cannot be read)."""
    kind = None if credential_type is None else credential_type.value
    with _client(url, api_key) as client, refusals(CONNECTOR, KEY):
        page = client.credentials(type=kind, offset=offset, limit=limit)
    _page(page, CREDENTIAL_COLUMNS, output, "no credentials held")


@credentials_cli.command("remove")
def credentials_remove(
    credential_id: Annotated[str, typer.Argument(help="The credential's id (see list).")],
    url: UrlOption = None,
    api_key: ApiKeyOption = None,
) -> None:
    """Stop holding a credential: it is never presented again."""
    with _client(url, api_key) as client, refusals(CONNECTOR, KEY):
        client.remove_credential(credential_id)
    typer.echo(f"removed {credential_id}")


def _transfer_move(move: TransferMove, help_text: str) -> None:
    def command(
        transfer_id: ProcessId,
        reason: Annotated[str | None, typer.Option(help="Why (sent to the other side).")] = None,
        code: Annotated[str | None, typer.Option(help="A code for the reason.")] = None,
        url: UrlOption = None,
        api_key: ApiKeyOption = None,
        output: OutputOption = Output.TABLE,
    ) -> None:
        with _client(url, api_key) as client, refusals(CONNECTOR, KEY):
            moved = client.move_transfer(transfer_id, move, code=code, reason=reason)
        _moved(moved, output)

    command.__doc__ = help_text
    transfers_cli.command(move)(command)


_transfer_move("start", "Provider, manual mode: start a transfer held for a person.")
_transfer_move("suspend", "Suspend a started transfer.")
_transfer_move("resume", "Resume a suspended transfer.")
_transfer_move("complete", "Complete a transfer.")
_transfer_move("terminate", "End a transfer.")


def register(app: typer.Typer) -> None:
    """Add the data holder's commands to ``dataspace``."""
    app.add_typer(assets_cli, name="assets")
    app.add_typer(policies_cli, name="policies")
    app.add_typer(offers_cli, name="offers")
    app.command("catalog")(catalog_command)
    app.command("search")(search_command)
    app.add_typer(negotiations_cli, name="negotiations")
    app.add_typer(agreements_cli, name="agreements")
    app.add_typer(transfers_cli, name="transfers")
    app.add_typer(credentials_cli, name="credentials")
