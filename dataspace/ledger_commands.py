"""``dataspace ledger prove | check-proof | verify | purge | db-upgrade``: the regulator's
ledger from the command line.

``prove``, ``verify`` and ``purge`` use the ledger service's database (its ``LEDGER_*`` settings);
``check-proof`` needs nothing of the service: a bundle file and a node of the chain. Exit codes:
0 valid (or found, or done), 1 invalid, not found, not checkable (the chain node down) or refused
(a purge within the retention period), 2 an unreadable file, 78 an invalid setting.

The chain adapter (web3, behind ``ledger.chain``, ``ledger.proofs`` and ``ledger.inspection``)
takes 0.75 s and about 60 MiB to import, and every ``dataspace`` command, ``connector serve``
among them, loads this module: the commands that need it import it when they run.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, Final

import typer
from pydantic import ValidationError
from sqlmodel import Session

from identity.database import migrations as identity_migrations
from ledger import archive
from ledger.database import migrations
from ledger.messages import ProofBundle
from ledger.settings import LedgerSettings
from storage.engine import create_engine
from storage.migrate import upgrade

MAX_BUNDLE_BYTES: Final = 1 << 20
LoadSettings = Callable[..., Any]


def register(group: typer.Typer, load_settings: LoadSettings) -> None:
    """Add the commands to ``group`` (the ``dataspace ledger`` group); ``load_settings`` builds
    settings from the environment and exits 78 when they are invalid."""

    def settings() -> LedgerSettings:
        loaded: LedgerSettings = load_settings(LedgerSettings)
        return loaded

    @group.command("prove")
    def prove(event_id: Annotated[str, typer.Argument(help="The event's id.")]) -> None:
        """Print an event's proof bundle (event, inclusion proof, on-chain anchor) as JSON."""
        from ledger.proofs import build_bundle  # web3 behind it: see the module's docstring

        engine = create_engine(settings().database_url)
        try:
            upgrade(engine, migrations())
            with Session(engine) as session:
                bundle = build_bundle(session, event_id)
        finally:
            engine.dispose()
        if bundle is None:
            typer.echo(f"error: the ledger holds no anchored event {event_id}", err=True)
            raise typer.Exit(1)
        typer.echo(json.dumps(bundle.model_dump(mode="json", by_alias=True), indent=2))

    @group.command("check-proof")
    def check_proof(
        file: Annotated[Path, typer.Argument(help="A proof bundle (from `ledger prove`).")],
        chain: Annotated[str, typer.Option("--chain", help="A JSON-RPC node of the chain.")],
        timeout_s: Annotated[float, typer.Option(min=0.1, max=300)] = 10.0,
    ) -> None:
        """Check a proof bundle without the ledger service: the event's canonical form and
        link give the leaf, the inclusion proof leads to the batch root, and the registry on the
        chain holds that root, anchored by the account registered for the event's participant."""
        from ledger.chain import Chain, ChainError, ChainFault  # see the module's docstring
        from ledger.proofs import CHAIN_DOWN, InvalidProofError, check_bundle

        try:
            with file.open("rb") as handle:
                text = handle.read(MAX_BUNDLE_BYTES + 1)
        except OSError as error:
            typer.echo(f"error: {file}: {error.strerror}", err=True)
            raise typer.Exit(2) from None
        if len(text) > MAX_BUNDLE_BYTES:
            typer.echo(f"invalid: the bundle is larger than {MAX_BUNDLE_BYTES} bytes", err=True)
            raise typer.Exit(1)
        try:
            bundle = ProofBundle.model_validate_json(text)
        except ValidationError as error:
            first = error.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "bundle"
            typer.echo(f"invalid: not a proof bundle: {where}: {first['msg']}", err=True)
            raise typer.Exit(1) from None
        try:
            node = Chain.connect(chain, timeout_s=timeout_s)
            check_bundle(bundle, node.registry(bundle.anchor.registry))
        except InvalidProofError as error:
            typer.echo(f"invalid: {error}", err=True)
            raise typer.Exit(1) from None
        except ChainError as error:
            if error.fault in CHAIN_DOWN:
                typer.echo(f"error: cannot check against {chain}: {error}", err=True)
            elif error.fault is ChainFault.NOT_DEPLOYED:
                typer.echo(f"invalid: no registry at {bundle.anchor.registry}: {error}", err=True)
            else:
                typer.echo(f"invalid: {error}", err=True)
            raise typer.Exit(1) from None
        event_id = bundle.event.get("eventId")
        typer.echo(
            f"valid: event {event_id} is leaf {bundle.inclusion.leaf_index} of batch "
            f"{bundle.batch_sequence}, whose root {bundle.anchor.root} is on chain "
            f"{bundle.anchor.chain_id} in block {bundle.anchor.block_number}"
        )

    @group.command("verify")
    def verify() -> None:
        """Re-check every stored event against its hashes, the hash chain, its batch's
        signature and the root on chain (LEDGER_CHAIN_URL); name each that fails, and why. An
        anchor a reorganisation mined again in another block is followed (stored, printed)."""
        from ledger.chain import Chain, ChainError  # see the module's docstring
        from ledger.inspection import verify_archive
        from ledger.proofs import MovedAnchor

        loaded = settings()
        engine = create_engine(loaded.database_url)
        node = Chain.connect(loaded.chain_url, timeout_s=loaded.chain_timeout_s)
        moved: list[MovedAnchor] = []
        try:
            upgrade(engine, migrations())
            with Session(engine) as session:
                findings = verify_archive(session, node, moved)
                session.commit()
        except ChainError as error:
            typer.echo(f"error: cannot check against {loaded.chain_url}: {error}", err=True)
            raise typer.Exit(1) from None
        finally:
            engine.dispose()
        for anchor in moved:
            typer.echo(f"moved {anchor.describe()}")
        for finding in findings:
            typer.echo(f"FAIL {finding.describe()}")
        if findings:
            typer.echo(f"{len(findings)} failures", err=True)
            raise typer.Exit(1)
        typer.echo("every stored event and batch verifies")

    @group.command("purge")
    def purge(
        participant: Annotated[str, typer.Argument(help="The participant's DID.")],
        through_batch: Annotated[
            int, typer.Option(min=0, max=2**63 - 1, help="The last batch whose events go.")
        ],
    ) -> None:
        """Delete a participant's oldest events, whole batches up to --through-batch, once their
        retention (LEDGER_RETENTION_DAYS) has ended; refused before. Their batch headers stay
        and still verify against the chain."""
        loaded = settings()
        engine = create_engine(loaded.database_url)
        try:
            upgrade(engine, migrations())
            with Session(engine) as session:
                deleted = archive.purge(
                    session, participant, through_batch,
                    timedelta(days=loaded.retention_days), datetime.now(UTC),
                )  # fmt: skip
                session.commit()
        except archive.RetentionError as error:
            typer.echo(f"refused: {error}", err=True)
            raise typer.Exit(1) from None
        finally:
            engine.dispose()
        typer.echo(f"{deleted} events of {participant} deleted (batches 0..{through_batch})")

    @group.command("db-upgrade")
    def db_upgrade() -> None:
        """Bring the ledger service's database (LEDGER_DATABASE_URL) to the newest schema."""
        engine = create_engine(settings().database_url)
        try:
            for schema in (migrations(), identity_migrations()):
                upgrade(engine, schema)
        finally:
            engine.dispose()
        typer.echo("ledger: database at the newest revision")
