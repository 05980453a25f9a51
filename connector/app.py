"""The connector's app factory: settings in, FastAPI app out. Nothing is built at import time."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Final, Protocol
from urllib.parse import urlsplit

import httpx
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from sqlalchemy.engine import Engine

from connector.audit import AuditRecord, Outcome, SqlAuditSink
from connector.catalog.notices import ChangeNotices
from connector.catalog.routes import router as catalog_router
from connector.contracts.match import Matching
from connector.contracts.routes import router as contracts_router
from connector.contracts.service import DataContracts
from connector.dataplane.duties import Duties
from connector.dataplane.grants import Grants
from connector.dataplane.matchruns import MatchingRuns
from connector.dataplane.matchsets import MatchingSets, SharedWorkers
from connector.dataplane.matchwatch import MatchingWatch
from connector.dataplane.plane import DataPlane
from connector.dataplane.routes import management as duties_router
from connector.dataplane.routes import public as dataplane_router
from connector.dataplane.worker import DataPlaneWorker, Wakeup
from connector.dcp.routes import did_document
from connector.dcp.routes import router as dcp_router
from connector.deps import ManagementError, source_rules
from connector.faults import faults_for
from connector.ledger import Anchoring, LedgerWorker, Pushing
from connector.management.broker import router as broker_router
from connector.management.credentials import router as credentials_router
from connector.management.edr_routes import router as edr_router
from connector.management.edrs import Edrs
from connector.management.outbox import router as outbox_router
from connector.management.routes import router as management_router
from connector.management.trail import ManagementTrail
from connector.negotiation.process import Negotiations
from connector.negotiation.routes import consumer as negotiation_consumer
from connector.negotiation.routes import provider as negotiation_provider
from connector.negotiation.steps import ERROR_TYPE as NEGOTIATION_ERROR
from connector.outbox import Handlers, Outbox
from connector.participant import migrate, participant_for, schemas
from connector.protocol import DSP_VERSION, DspError
from connector.resync import Resync
from connector.settings import ConnectorSettings
from connector.transfer.process import Transfers
from connector.transfer.routes import consumer as transfer_consumer
from connector.transfer.routes import provider as transfer_provider
from connector.transfer.steps import ERROR_TYPE as TRANSFER_ERROR
from connector.webhooks import KIND as WEBHOOK
from connector.webhooks import Webhook
from identity.participant import Participant
from identity.resolver import did_web_url
from ledger.recorder import Recorder
from service.docs import NO_CDN_DOCS, serve_docs
from service.http import error_body, install_error_handlers
from service.limits import BodyLimit, plain_refusal
from service.refusals import NOT_READY
from service.transport import guarded_transport
from storage.engine import create_engine
from storage.health import check_health
from storage.migrate import require_current

if TYPE_CHECKING:
    from ledger.chain import Chain

log = logging.getLogger("kexin.connector")


def utc_now() -> datetime:
    return datetime.now(UTC)


DSP_ERROR_TYPES: Final = (
    ("/dsp/negotiations", NEGOTIATION_ERROR),
    ("/dsp/callback/negotiations", NEGOTIATION_ERROR),
    ("/dsp/transfers", TRANSFER_ERROR),
    ("/dsp/callback/transfers", TRANSFER_ERROR),
    ("/dsp/catalog", "CatalogError"),
)


class Supervised(Protocol):
    @property
    def failing(self) -> str | None:
        """Why the worker's last round failed, while it keeps failing; None when it does not."""


def _worker_state(task: asyncio.Task[None], source: Supervised | None) -> str:
    if task.done():
        return "stopped"
    failing = None if source is None else source.failing
    return "running" if failing is None else f"retrying: {failing}"


def matching_message_bytes(settings: ConnectorSettings) -> int:
    """The largest PSI frame: room for a chunk of ``matching_chunk_items`` items (36 bytes
    each, and the frame's header), within the body limit."""
    return settings.matching_chunk_items * 40 + 8192


def ledger_worker_for(
    settings: ConnectorSettings,
    engine: Engine,
    participant: Participant,
    client: httpx.AsyncClient,
    outbox: Outbox,
    chain: Chain | None,
    clock: Callable[[], datetime],
) -> LedgerWorker:
    """The ledger worker: always sequencing and batching; anchoring and pushing when their
    settings are given."""
    key = participant.keyring.current
    recorder = Recorder(
        engine, participant.did, key.key_id, key.private_key,
        max_events=settings.ledger_batch_max_events, max_age_s=settings.ledger_batch_max_age_s,
        clock=time.monotonic, wall_clock=clock,
    )  # fmt: skip
    anchoring = None
    if settings.ledger_registry_address is not None and settings.ledger_chain_key is not None:
        from ledger.chain import Chain  # only here: see connector/ledger.py

        connected = chain or Chain.connect(
            str(settings.ledger_chain_url), timeout_s=settings.ledger_chain_timeout_s
        )
        anchoring = Anchoring(
            connected.registry(settings.ledger_registry_address, check_code=False),
            bytes.fromhex(settings.ledger_chain_key.get_secret_value().removeprefix("0x")),
            settings.ledger_confirmations,
        )
    pushing = None
    if settings.ledger_url is not None and settings.ledger_id is not None:
        audience = settings.ledger_id
        pushing = Pushing(settings.ledger_url, lambda: outbox.authorization_for(audience))
    return LedgerWorker(
        engine=engine, recorder=recorder, client=client, interval_s=settings.ledger_interval_s,
        anchoring=anchoring, pushing=pushing, clock=clock,
    )  # fmt: skip


def create_app(
    settings: ConnectorSettings,
    *,
    transport: httpx.AsyncBaseTransport | None = None,
    clock: Callable[[], datetime] = utc_now,
    chain: Chain | None = None,
) -> FastAPI:
    """``chain``: where the ledger anchors its batches (tests pass web3's in-process chain);
    by default a JSON-RPC connection to ``settings.ledger_chain_url``."""
    if settings.ledger_registry_address is not None and (
        chain is None and settings.ledger_chain_url is None
    ):
        raise ValueError("anchoring (ledger_registry_address) needs ledger_chain_url")
    engine = create_engine(settings.database_url)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        settings.warn_profile(log)
        if settings.migrate_on_start:
            migrate(engine)
        else:
            require_current(engine, schemas(), "dataspace db upgrade connector")
        timeout = settings.http_timeout_s
        destinations = settings.destinations  # every connection checked when it is made
        async with (
            httpx.AsyncClient(
                transport=transport or guarded_transport(destinations, max_connections=100),
                timeout=timeout,
            ) as client,
            httpx.AsyncClient(
                transport=transport or guarded_transport(destinations, max_connections=50),
                timeout=timeout,
            ) as verification,
        ):
            # Two pools: verifying callers (DID documents, presentations, status lists) never
            # waits behind this connector's own outbound traffic (DSP messages, data sources).
            participant = participant_for(settings, engine, verification, clock)
            static_tokens = {}
            if settings.conformance_token and settings.conformance_participant_id:
                log.warning(
                    "CONFORMANCE-TESTING MODE IS ON: a static bearer token stands for %s instead "
                    "of DCP. Never run a production connector like this.",
                    settings.conformance_participant_id,
                )
                static_tokens[settings.conformance_participant_id] = (
                    settings.conformance_token.get_secret_value()
                )
            faults = faults_for(settings.fault)
            if settings.fault is not None:
                log.warning(
                    "FAULT INJECTION IS ON (%s): this connector kills itself there. Test only.",
                    settings.fault,
                )
            outbox = Outbox(
                engine, participant, client, clock, static_tokens,
                deadline_s=settings.delivery_deadline_s, backoff_s=settings.delivery_backoff_s,
                faults=faults,
            )  # fmt: skip
            steering = None if conformance is None else conformance.driver
            webhook = None
            if settings.webhook_secret is not None:  # the URL, or only processes' callbacks
                webhook = Webhook(
                    settings.webhook_url, settings.webhook_secret.get_secret_value(), clock=clock
                )
                outbox.register(WEBHOOK, Handlers(headers=webhook.headers))
            notices = None
            if settings.broker_url is not None and settings.broker_id is not None:
                notices = ChangeNotices(
                    engine=engine, me=participant.did, broker_id=settings.broker_id,
                    broker_url=settings.broker_url, clock=clock, wake=outbox.wake,
                )  # fmt: skip
                notices.install()
            app.state.participant = participant
            app.state.client = client
            app.state.outbox = outbox
            app.state.negotiations = Negotiations(
                engine=engine,
                me=participant.did,
                base_url=settings.base_url,
                outbox=outbox,
                audit=app.state.audit,
                clock=clock,
                manual_approval=settings.negotiation_approval == "manual",
                manual_verification=settings.agreement_verification == "manual",
                webhook=webhook,
                steering=steering,
                faults=faults,
                vocabulary=settings.vocabulary,
            )
            sql_engines = {name: create_engine(url) for name, url in settings.sql_sources.items()}
            dataplane = DataPlane(
                engine=engine,
                participant=participant,
                audit=app.state.audit,
                clock=clock,
                client=client,
                sql_sources=sql_engines,
                required=settings.required_credentials,
                token_ttl_s=settings.token_ttl_s,
                rules=app.state.source_rules,
                vocabulary=settings.vocabulary,
            )
            app.state.dataplane = dataplane
            psi_workers = SharedWorkers(settings.matching_workers)
            app.state.psi_workers = psi_workers
            app.state.matching_sets = MatchingSets(
                rules=app.state.source_rules, sql_sources=sql_engines,
                root=settings.matching_dir, fpr=settings.matching_fpr,
                max_client_items=settings.matching_max_client_items, audit=app.state.audit,
                me=participant.did, clock=clock,
            )  # fmt: skip
            app.state.matching_runs = MatchingRuns(
                plane=dataplane, sets=app.state.matching_sets, workers=psi_workers,
                max_runs=settings.matching_max_runs, idle_s=settings.matching_run_idle_s,
                chunk_items=settings.matching_chunk_items,
                max_message_bytes=matching_message_bytes(settings),
                frames_per_answer=settings.matching_frames_per_answer,
            )  # fmt: skip
            wake_dataplane = Wakeup()
            grants = Grants(
                participant=participant, base_url=settings.base_url, clock=clock,
                token_ttl_s=settings.token_ttl_s, wake=wake_dataplane,
                destinations=settings.destinations,
            )  # fmt: skip
            app.state.duties = Duties(
                engine=engine, participant=participant, outbox=outbox,
                audit=app.state.audit, clock=clock,
            )  # fmt: skip
            transfers = Transfers(
                engine=engine,
                me=participant.did,
                base_url=settings.base_url,
                outbox=outbox,
                audit=app.state.audit,
                clock=clock,
                manual_start=settings.transfer_approval == "manual",
                webhook=webhook,
                dataplane=grants,
                steering=steering,
                faults=faults,
                vocabulary=settings.vocabulary,
            )
            app.state.transfers = transfers
            app.state.edrs = Edrs(
                engine=engine, client=client, clock=clock,
                margin=timedelta(seconds=settings.edr_refresh_margin_s),
            )  # fmt: skip
            dataplane_worker = DataPlaneWorker(
                plane=dataplane, transfers=transfers, wake=wake_dataplane,
                monitor_interval_s=settings.monitor_interval_s,
            )  # fmt: skip
            app.state.contracts = DataContracts(
                engine=engine, participant=participant, client=client,
                negotiations=app.state.negotiations, transfers=app.state.transfers,
                timeout_s=settings.contracts_timeout_s, audit=app.state.audit,
            )  # fmt: skip
            app.state.matching = Matching(
                contracts=app.state.contracts, client=client, workers=psi_workers,
                audit=app.state.audit, me=participant.did, clock=clock,
                max_fpr=settings.matching_fpr,
            )  # fmt: skip
            workers: dict[str, tuple[asyncio.Task[None], Supervised | None]] = {
                "outbox": (asyncio.create_task(outbox.run()), outbox),
                "dataplane": (asyncio.create_task(dataplane_worker.run()), dataplane_worker),
            }
            resync = Resync(
                processes=[app.state.negotiations, app.state.transfers], client=client,
                authorization=outbox.authorization_for, clock=clock,
                after_s=settings.resync_after_s, interval_s=min(60.0, settings.resync_after_s / 10),
            )  # fmt: skip
            workers["resync"] = (asyncio.create_task(resync.run()), resync)
            app.state.ledger = ledger_worker_for(settings, engine, participant, client, outbox,
                                                 chain, clock)  # fmt: skip
            workers["ledger"] = (asyncio.create_task(app.state.ledger.run()), app.state.ledger)
            if settings.matching_watch_s > 0:
                watch = MatchingWatch(
                    engine=engine, sets=app.state.matching_sets,
                    interval_s=settings.matching_watch_s,
                )  # fmt: skip
                workers["matching sets"] = (asyncio.create_task(watch.run()), watch)
            if conformance is not None:
                driving = conformance.start(
                    engine=engine, me=participant.did, negotiations=app.state.negotiations,
                    transfers=app.state.transfers, now=clock(),
                )  # fmt: skip
                workers["conformance driver"] = (asyncio.create_task(driving), None)
            app.state.workers = workers
            try:
                yield
            finally:
                if notices is not None:
                    notices.remove()
                for worker, _ in workers.values():
                    worker.cancel()
                for worker, _ in workers.values():
                    with contextlib.suppress(asyncio.CancelledError):
                        await worker
                app.state.matching_runs.close()
                await asyncio.to_thread(psi_workers.close)
                for sql_engine in sql_engines.values():
                    sql_engine.dispose()
        engine.dispose()

    app = FastAPI(
        title="Kexin connector",
        summary=f"Dataspace connector of {settings.participant_id}",
        lifespan=lifespan,
        **NO_CDN_DOCS,
    )
    serve_docs(app)
    app.state.settings = settings
    app.state.engine = engine
    app.state.source_rules = source_rules(settings)
    conformance = None
    if settings.conformance_mode:
        # Only in conformance-testing mode: the test kit's extension (webhooks, driver).
        from connector.conformance.extension import Conformance

        conformance = Conformance(settings)
    app.state.conformance = conformance
    app.state.audit = SqlAuditSink(engine)

    def body_refusal(path: str, status: int, reason: str, message: str) -> dict[str, Any]:
        """DSP paths get their protocol's typed error, every other path the plain one."""
        kind = next((t for prefix, t in DSP_ERROR_TYPES if path.startswith(prefix)), None)
        if kind is None:
            return plain_refusal(path, status, reason, message)
        return DspError(status, kind, reason, message).body()

    install_error_handlers(app, refusal=body_refusal)

    def body_refused(method: str, path: str, why: str) -> None:
        app.state.audit.record(
            AuditRecord(
                actor=settings.participant_id, action=f"{method} {path}"[:200],
                outcome=Outcome.REFUSED, occurred_at=clock(), reason=why,
            )
        )  # fmt: skip

    app.add_middleware(
        BodyLimit, max_bytes=settings.max_body_bytes, refusal=body_refusal, refused=body_refused,
        max_bytes_for={"/contracts/v1/match": settings.contracts_match_max_body_bytes},
    )  # fmt: skip

    app.add_middleware(ManagementTrail, audit=app.state.audit, actor=settings.participant_id,
                       clock=clock)  # fmt: skip

    async def dsp_error(request: Request, error: Exception) -> JSONResponse:
        assert isinstance(error, DspError)  # noqa: S101 - registered for this type only
        if not error.audited:  # refused before a process could say who asked
            app.state.audit.record(
                AuditRecord(
                    actor=settings.participant_id,
                    action=f"{request.method} {request.url.path}",
                    outcome=Outcome.REFUSED,
                    occurred_at=clock(),
                    reason=f"{error.code}: {error.reason}",
                )
            )
        return JSONResponse(error.body(), status_code=error.status)

    @app.get("/.well-known/dspace-version", tags=["dsp"])
    def dspace_version() -> dict[str, Any]:
        """Unauthenticated: the protocol versions spoken here, and where (DSP 2025-1)."""
        return {
            "protocolVersions": [
                {
                    "version": DSP_VERSION,
                    "path": "/dsp",
                    "binding": "HTTPS",
                    "identifierType": "did:web",
                    "auth": {"protocol": "DCP", "version": "1.0", "profile": ["vc11-sl2021/jwt"]},
                }
            ]
        }

    async def management_error(_request: Request, error: Exception) -> JSONResponse:
        assert isinstance(error, ManagementError)  # noqa: S101 - registered for this type only
        return JSONResponse(
            {**error.extra, **error_body("ManagementError", error.reason, error.message)},
            error.status,
        )

    app.add_exception_handler(DspError, dsp_error)
    app.add_exception_handler(ManagementError, management_error)
    app.include_router(dcp_router)
    app.include_router(catalog_router)
    app.include_router(negotiation_provider)
    app.include_router(negotiation_consumer)
    app.include_router(transfer_provider)
    app.include_router(transfer_consumer)
    app.include_router(management_router)
    app.include_router(outbox_router)
    app.include_router(broker_router)
    app.include_router(credentials_router)
    app.include_router(edr_router)
    app.include_router(dataplane_router)
    app.include_router(contracts_router)
    app.include_router(duties_router)
    if conformance is not None:
        conformance.install(app)
    if settings.participant_id.startswith("did:web:"):
        path = urlsplit(did_web_url(settings.participant_id)).path
        app.add_api_route(path, did_document, methods=["GET"], tags=["dcp"])

    @app.get("/health", tags=["health"], responses=NOT_READY)
    def health() -> JSONResponse:
        """Readiness: the database reachable and writable, its schemas current, and every
        background worker running (a worker that keeps failing says why)."""
        report = check_health("connector", engine, schemas())
        workers: dict[str, tuple[asyncio.Task[None], Supervised | None]] = getattr(
            app.state, "workers", {}
        )
        states = {name: _worker_state(task, source) for name, (task, source) in workers.items()}
        ok = report.ok and bool(workers) and all(v != "stopped" for v in states.values())
        body = {**report.body(), "workers": states, "status": "ok" if ok else "unavailable"}
        return JSONResponse(body, status_code=200 if ok else 503)

    return app
