"""The scenario driver: makes the connector's moves that each DSP TCK scenario expects.

It steers exactly the processes whose dataset id (negotiations) or agreement id (transfers) is
a scenario of ``scenarios``: those make no automatic move (no automatic agreement, verification,
finalization or start), and the driver makes the scenario's moves instead, each once the process
has reached the state its step names, through the same operations a person uses through the
management API. Every other process is left to the automatic rules.

It hears of committed changes from the process code (``changed``, from any thread), queues them
on the event loop, and makes one move at a time in a worker thread.
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass, field
from typing import Final

from anyio.to_thread import run_sync
from sqlmodel import Session

from connector.conformance.scenarios import NEGOTIATIONS, TRANSFERS, Move, Step
from connector.negotiation.process import Negotiations
from connector.negotiation.store import ContractNegotiationRecord
from connector.processes import ProcessRecord
from connector.protocol import DspError
from connector.transfer.machine import Event
from connector.transfer.process import Transfers
from connector.transfer.store import TransferProcessRecord

log = logging.getLogger("kexin.connector.conformance")

STEP_DELAY_S: Final = 0.05
"""A moment before each move, so that the kit has registered the handler for the answer."""
CODE: Final = "conformance_scenario"
TRANSFER_EVENTS: Final = {
    Move.START: Event.START,
    Move.SUSPEND: Event.SUSPEND,
    Move.COMPLETE: Event.COMPLETE,
    Move.TERMINATE: Event.TERMINATE,
}


def script_of(record: ProcessRecord) -> tuple[Step, ...] | None:
    """The scenario a process plays, by its dataset or agreement id; None: no scenario."""
    if isinstance(record, ContractNegotiationRecord):
        return NEGOTIATIONS.get(record.asset_id)
    if isinstance(record, TransferProcessRecord):
        return TRANSFERS.get(record.agreement_id)
    return None


@dataclass(frozen=True)
class Change:
    noun: str
    process_id: str
    state: str
    acknowledged: bool
    script: tuple[Step, ...]


@dataclass
class Driver:
    negotiations: Negotiations | None = None
    transfers: Transfers | None = None
    step_delay_s: float = STEP_DELAY_S
    _cursor: dict[str, int] = field(default_factory=dict)
    _queue: asyncio.Queue[Change] = field(default_factory=asyncio.Queue)
    _loop: asyncio.AbstractEventLoop | None = None

    # --- the process code's port (connector.processes.Steering) -------------------------------

    def steers(self, noun: str, record: ProcessRecord) -> bool:
        return script_of(record) is not None

    def changed(self, noun: str, record: ProcessRecord) -> None:
        script = script_of(record)
        loop = self._loop
        if not script or loop is None or loop.is_closed():
            return
        acknowledged = record.provider_pid is not None and record.consumer_pid is not None
        change = Change(noun, record.id, record.state, acknowledged, script)
        loop.call_soon_threadsafe(self._queue.put_nowait, change)

    # --- the worker ---------------------------------------------------------------------------

    async def run(self) -> None:
        self._loop = asyncio.get_running_loop()
        while True:
            change = await self._queue.get()
            step = self._due(change)
            if step is None:
                continue
            await asyncio.sleep(self.step_delay_s)
            try:
                await run_sync(self.make, change, step.move)
            except DspError as error:  # the kit moved first: the scenario goes on without us
                log.warning(
                    "scenario move %s on %s refused: %s", step.move, change.process_id, error
                )
            except Exception:  # a test-mode worker: log, and stay up for the next scenario
                log.exception("scenario move %s on %s failed", step.move, change.process_id)

    def _due(self, change: Change) -> Step | None:
        """The next step of the process, if this change is what it waits for."""
        done = self._cursor.get(change.process_id, 0)
        if done >= len(change.script) or not change.acknowledged:
            return None
        step = change.script[done]
        if step.when != change.state:
            return None
        self._cursor[change.process_id] = done + 1
        return step

    def make(self, change: Change, move: Move) -> None:
        log.info("scenario move: %s %s (%s)", move, change.process_id, change.state)
        if self.transfers is not None and change.noun == self.transfers.noun:
            reason = f"{move} by the conformance scenario driver"
            self.transfers.act(
                change.process_id, TRANSFER_EVENTS[move], CODE, reason, by="scenario driver"
            )
            return
        negotiations = self.negotiations
        if negotiations is None:
            return
        match move:
            case Move.OFFER | Move.COUNTER:
                negotiations.counter(change.process_id, self._terms(change.process_id))
            case Move.AGREE:
                negotiations.approve(change.process_id)
            case Move.FINALIZE:
                negotiations.finalize(change.process_id)
            case Move.ACCEPT:
                negotiations.accept(change.process_id)
            case Move.VERIFY:
                negotiations.verify(change.process_id)
            case Move.TERMINATE:
                negotiations.terminate(
                    change.process_id, CODE, "terminated by the conformance scenario driver"
                )
            case _:
                raise ValueError(f"{move} is no negotiation move")

    def _terms(self, negotiation_id: str) -> dict[str, object]:
        """The terms under negotiation, as the other side last wrote them, assigned by the
        provider (a counter-offer names its assigner)."""
        assert self.negotiations is not None  # noqa: S101 - only called with negotiations
        with Session(self.negotiations.engine) as session:
            record = session.get(ContractNegotiationRecord, negotiation_id)
        if record is None:
            raise ValueError(f"no negotiation {negotiation_id}")
        terms: dict[str, object] = json.loads(record.offer)
        terms.setdefault("@type", "Offer")
        if "assigner" not in terms and record.role == "provider":
            terms["assigner"] = self.negotiations.me
        return terms
