"""The kit's transfer pipelines (the Eclipse DSP TCK's ``AbstractTransferProcessPipeline``,
``ProviderTransferProcessPipelineImpl`` and ``ConsumerTransferProcessPipelineImpl``): the kit
as consumer testing a provider (TP), and as provider testing a consumer (TP_C). The kit moves
its own record after each message it sends (a termination even when it was refused), and
checks the other side's state by polling its GET until it matches.
"""

from __future__ import annotations

from typing import Any, Final, Self

from tests.conformance import messages
from tests.conformance.checks import ScenarioError, required
from tests.conformance.machines import KitConnector, KitTransfer, Role, TransferState
from tests.conformance.messages import TCK_PARTICIPANT, Message
from tests.conformance.pipelines import HTTP_POLL_S, Kit, Pipeline

T = TransferState

TRANSFER_START_PATH: Final = "/transfers/[^/]+/start"
TRANSFER_TERMINATION_PATH: Final = "/transfers/[^/]+/termination"
TRANSFER_COMPLETION_PATH: Final = "/transfers/[^/]+/completion"
TRANSFER_SUSPENSION_PATH: Final = "/transfers/[^/]+/suspension"
TRANSFER_REQUEST_PATH: Final = "/transfers/request"


class _TransferPipeline(Pipeline):
    def __init__(self, kit: Kit, scenario: str, role: Role) -> None:
        super().__init__(kit, scenario)
        self.connector = KitConnector(role)
        self.transfer: KitTransfer | None = None

    @property
    def current(self) -> KitTransfer:
        if self.transfer is None:
            raise ScenarioError("no transfer process yet")
        return self.transfer

    def then_wait_for_state(self, state: TransferState) -> Self:
        return self.then_wait(
            f"state to transition to {state}",
            lambda: self.transfer is not None and self.transfer.state is state,
        )

    def _post(self, path: str, message: Message, expect_error: bool) -> None:
        transfer = self.current
        url = f"{transfer.callback_address}/transfers/{transfer.correlation_id}/{path}"
        self.kit.client.post(url, message, expect_error=expect_error)

    def send_termination(self, *, expect_error: bool = False) -> Self:
        def run() -> None:
            transfer = self.current
            message = messages.transfer_termination(
                str(transfer.provider_pid), str(transfer.consumer_pid), "1"
            )
            self._post("termination", message, expect_error)
            transfer.transition(T.TERMINATED)

        return self.then("sendTermination", run)

    def send_completion(self, *, expect_error: bool = False) -> Self:
        def run() -> None:
            transfer = self.current
            message = messages.transfer_completion(
                str(transfer.provider_pid), str(transfer.consumer_pid)
            )
            self._post("completion", message, expect_error)
            if not expect_error:
                transfer.transition(T.COMPLETED)

        return self.then("sendCompletion", run)

    def send_suspension(self, *, expect_error: bool = False) -> Self:
        def run() -> None:
            transfer = self.current
            message = messages.transfer_suspension(
                str(transfer.provider_pid), str(transfer.consumer_pid), "1"
            )
            self._post("suspension", message, expect_error)
            if not expect_error:
                transfer.transition(T.SUSPENDED)

        return self.then("sendSuspension", run)

    def send_started(
        self, data_address: dict[str, Any] | None = None, *, expect_error: bool = False
    ) -> Self:
        def run() -> None:
            transfer = self.current
            message = messages.transfer_start(
                str(transfer.provider_pid), str(transfer.consumer_pid), data_address
            )
            self._post("start", message, expect_error)
            if not expect_error:
                transfer.transition(T.STARTED)

        return self.then("sendStarted", run)

    def expect_start_message(self) -> Self:
        return self.expect(
            TRANSFER_START_PATH, "TransferStartMessage", self.connector.handle_start, fallible=True
        )

    def expect_termination_message(self) -> Self:
        return self.expect(
            TRANSFER_TERMINATION_PATH,
            "TransferTerminationMessage",
            self.connector.handle_transfer_termination,
        )

    def expect_completion_message(self) -> Self:
        return self.expect(
            TRANSFER_COMPLETION_PATH,
            "TransferCompletionMessage",
            self.connector.handle_completion,
            fallible=True,
        )

    def expect_suspension_message(self) -> Self:
        return self.expect(
            TRANSFER_SUSPENSION_PATH,
            "TransferSuspensionMessage",
            self.connector.handle_suspension,
            fallible=True,
        )

    def _then_verify_state(self, state: TransferState, who: str) -> Self:
        def reached() -> bool:
            transfer = self.current
            url = f"{transfer.callback_address}/transfers/{transfer.correlation_id}"
            return self._state_of(url) == state.value

        return self.then_wait(
            f"{who} transfer process state to be {state}", reached, poll_s=HTTP_POLL_S
        )


class ProviderTransferProcessPipeline(_TransferPipeline):
    """The kit as consumer, testing a provider (``ProviderTransferProcessPipelineImpl``)."""

    def __init__(self, kit: Kit, scenario: str) -> None:
        super().__init__(kit, scenario, Role.CONSUMER)

    def send_transfer_request(self, agreement_id: str, format_: str) -> Self:
        def run() -> None:
            transfer = self.connector.create_transfer(agreement_id, format_, self.kit.dsp)
            self.transfer = transfer
            request = messages.transfer_request(
                transfer.id, agreement_id, format_, self.kit.callback
            )
            response = self.kit.client.post(f"{self.kit.dsp}/transfers/request", request)
            answer = self.kit.client.required_message(response)
            self.connector.transfer_requested(transfer.id, str(required(answer, "providerPid")))

        return self.then("sendTransferRequest", run)

    def then_verify_provider_state(self, state: TransferState) -> Self:
        return self._then_verify_state(state, "provider")


class ConsumerTransferProcessPipeline(_TransferPipeline):
    """The kit as provider, testing a consumer (``ConsumerTransferProcessPipelineImpl``)."""

    def __init__(self, kit: Kit, scenario: str) -> None:
        super().__init__(kit, scenario, Role.PROVIDER)

    def _requested(self, transfer: KitTransfer) -> None:
        self.transfer = transfer
        self.connector.on_transfer_requested = None

    def initiate_transfer_request(self, agreement_id: str, format_: str) -> Self:
        def run() -> None:
            self.connector.on_transfer_requested = self._requested
            request = {
                "providerId": TCK_PARTICIPANT,
                "agreementId": agreement_id,
                "format": format_,
                "connectorAddress": self.kit.callback,
            }
            url = self.kit.setting("dataspacetck.dsp.connector.transfer.initiate.url")
            self.kit.client.post(url, request, plain=True)

        return self.then("initiateTransferRequest", run)

    def expect_transfer_request(self) -> Self:
        return self.expect(
            TRANSFER_REQUEST_PATH,
            "TransferRequestMessage",
            self.connector.handle_transfer_request,
            status=201,
        )

    def then_verify_consumer_state(self, state: TransferState) -> Self:
        return self._then_verify_state(state, "consumer")
