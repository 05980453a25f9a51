"""``dataspace authority``: the data-space operator's commands, through the authority's admin
API (:class:`broker.authority.client.AdminClient`): credential requests waiting for a decision,
approve (with the organisation the credentials state), reject, the participants (credentials
issued) and revocation."""

from __future__ import annotations

from typing import Annotated

import typer
from pydantic import ValidationError

from broker.authority.store import RequestStatus
from broker.authority.views import IssuedCredentialView, RequestView
from dataspace import connections
from dataspace.connections import ApiKeyOption, UrlOption
from dataspace.output import Output, OutputOption, refusals, show_list, show_one, usage
from identity.claims import OrganisationClaims
from policy.operands import Grade

authority_cli = typer.Typer(
    help="The data-space operator: onboarding requests, participants, revocation "
    "(BROKER_PUBLIC_URL or BROKER_HOST/BROKER_PORT, BROKER_ADMIN_API_KEY).",
    no_args_is_help=True,
)

KEY = "BROKER_ADMIN_API_KEY"
REQUEST_COLUMNS = [
    ("REQUEST", lambda r: r.issuer_pid),
    ("STATUS", lambda r: r.status),
    ("HOLDER", lambda r: r.holder),
    ("TYPES", lambda r: r.credential_types),
    ("ORGANISATION", lambda r: (r.stated_organisation or {}).get("name")),
    ("CREATED", lambda r: r.created_at),
]
CREDENTIAL_COLUMNS = [
    ("HOLDER", lambda c: c.holder),
    ("TYPE", lambda c: c.type),
    ("CREDENTIAL", lambda c: c.id),
    ("EXPIRES", lambda c: c.expires_at),
    ("REVOKED", lambda c: c.revoked),
]


@authority_cli.command("requests")
def requests(
    status: Annotated[
        RequestStatus | None, typer.Option(help="Only requests in this status.")
    ] = None,
    url: UrlOption = None,
    api_key: ApiKeyOption = None,
    output: OutputOption = Output.TABLE,
) -> None:
    """Credential requests, oldest first; RECEIVED ones wait for approve or reject."""
    with connections.authority(url, api_key) as admin, refusals("the authority", KEY):
        found = admin.requests(status)
    show_list(found, REQUEST_COLUMNS, output, empty="no requests")
    if output is Output.TABLE:
        _warn(found)


def _warn(requests: list[RequestView]) -> None:
    """Each request's warnings, one a line on standard error (the table stays a table)."""
    for request in requests:
        for warning in request.warnings:
            typer.echo(f"warning: {request.issuer_pid}: {warning}", err=True)


def _organisation(
    request: RequestView | None,
    name: str | None,
    credit_code: str | None,
    region: str | None,
    grade: Grade | None,
) -> OrganisationClaims:
    """The claims to issue: what the applicant stated, each option given replacing its part."""
    stated = dict((request.stated_organisation if request else None) or {})
    for key, value in (
        ("name", name),
        ("creditCode", credit_code),
        ("region", region),
        ("dataGrade", grade.value if grade else None),
    ):
        if value is not None:
            stated[key] = value
    missing = [k for k in ("name", "creditCode", "region", "dataGrade") if k not in stated]
    if missing:
        options = {"name": "--name", "creditCode": "--credit-code", "region": "--region",
                   "dataGrade": "--data-grade"}  # fmt: skip
        usage("the request states no organisation: give " + ", ".join(options[m] for m in missing))
    try:
        return OrganisationClaims.model_validate(stated)
    except ValidationError as error:
        problem = error.errors()[0]
        where = ".".join(str(part) for part in problem["loc"])
        usage(f"organisation {where}: {str(problem['msg']).removeprefix('Value error, ')}")


@authority_cli.command("approve")
def approve(
    request_id: Annotated[str, typer.Argument(help="The request (see `authority requests`).")],
    name: Annotated[str | None, typer.Option(help="The organisation's name.")] = None,
    credit_code: Annotated[
        str | None, typer.Option(help="Its unified social credit code (GB 32100).")
    ] = None,
    region: Annotated[
        str | None, typer.Option(help="Its administrative division (GB/T 2260).")
    ] = None,
    data_grade: Annotated[Grade | None, typer.Option(help="Its data grade.")] = None,
    url: UrlOption = None,
    api_key: ApiKeyOption = None,
    output: OutputOption = Output.TABLE,
) -> None:
    """Issue the requested credentials and deliver them to the applicant's connector. The
    credentials state the organisation the applicant gave, unless options replace parts of it
    (all four are needed when it gave none)."""
    with connections.authority(url, api_key) as admin, refusals("the authority", KEY):
        request = next((r for r in admin.requests() if r.issuer_pid == request_id), None)
        organisation = _organisation(request, name, credit_code, region, data_grade)
        approved = admin.approve(request_id, organisation)
    if output is Output.JSON:
        show_one(approved, output)
    else:
        typer.echo(f"{approved.issuer_pid}: {approved.status} to {approved.holder} "
                   f"({', '.join(approved.credential_types)})")  # fmt: skip
        _warn([approved])


@authority_cli.command("reject")
def reject(
    request_id: Annotated[str, typer.Argument(help="The request (see `authority requests`).")],
    reason: Annotated[str, typer.Option(help="Why (kept in the authority's audit).")],
    url: UrlOption = None,
    api_key: ApiKeyOption = None,
    output: OutputOption = Output.TABLE,
) -> None:
    """Refuse a credential request."""
    with connections.authority(url, api_key) as admin, refusals("the authority", KEY):
        rejected = admin.reject(request_id, reason)
    if output is Output.JSON:
        show_one(rejected, output)
    else:
        typer.echo(f"{rejected.issuer_pid}: {rejected.status} ({rejected.reason})")


@authority_cli.command("participants")
def participants(
    holder: Annotated[str | None, typer.Option(help="Only this participant's DID.")] = None,
    url: UrlOption = None,
    api_key: ApiKeyOption = None,
    output: OutputOption = Output.TABLE,
) -> None:
    """The data space's participants: every credential issued, by holder."""
    with connections.authority(url, api_key) as admin, refusals("the authority", KEY):
        issued = admin.credentials(holder)
    ordered: list[IssuedCredentialView] = sorted(issued, key=lambda c: (c.holder, c.issued_at))
    show_list(ordered, CREDENTIAL_COLUMNS, output, empty="no credentials issued")


@authority_cli.command("revoke")
def revoke(
    credential_id: Annotated[
        str, typer.Argument(help="The credential (see `authority participants`).")
    ],
    url: UrlOption = None,
    api_key: ApiKeyOption = None,
    output: OutputOption = Output.TABLE,
) -> None:
    """Revoke a credential: its status list flips now; verifiers see it once their cache
    refreshes (CONNECTOR_STATUS_LIST_TTL_S)."""
    with connections.authority(url, api_key) as admin, refusals("the authority", KEY):
        revoked = admin.revoke(credential_id)
    if output is Output.JSON:
        show_one(revoked, output)
    else:
        typer.echo(f"revoked {revoked.id} ({revoked.type} of {revoked.holder})")
