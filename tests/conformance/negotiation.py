"""The kit's negotiation pipelines (the Eclipse DSP TCK's ``AbstractNegotiationPipeline``,
``ProviderNegotiationPipelineImpl`` and ``ConsumerNegotiationPipelineImpl``): the kit as
consumer testing a provider (CN), and as provider testing a consumer (CN_C). Every send builds
the kit's message and moves the kit's own record where the kit moves it — before the message
for its counter-request, acceptance and verification, after it for its offer, agreement,
finalization and termination.
"""

from __future__ import annotations

from typing import Final, Self

from tests.conformance import messages
from tests.conformance.checks import ScenarioError, required
from tests.conformance.machines import KitConnector, KitNegotiation, NegotiationState, Role
from tests.conformance.messages import TCK_PARTICIPANT, Message
from tests.conformance.pipelines import Kit, Pipeline, pause

N = NegotiationState

OFFERS_PATH: Final = "/negotiations/[^/]+/offers/"
AGREEMENT_PATH: Final = "/negotiations/[^/]+/agreement"
NEGOTIATION_TERMINATION_PATH: Final = "/negotiations/[^/]+/termination/"
NEGOTIATION_EVENT_PATH: Final = "/negotiations/[^/]+/events"
INITIAL_REQUEST_PATH: Final = "/negotiations/request"
REQUEST_PATH: Final = "/negotiations/[^/]+/request"
VERIFICATION_PATH: Final = "/negotiations/[^/]+/agreement/verification"


class _NegotiationPipeline(Pipeline):
    def __init__(self, kit: Kit, scenario: str, role: Role) -> None:
        super().__init__(kit, scenario)
        self.connector = KitConnector(role)
        self.negotiation: KitNegotiation | None = None

    @property
    def current(self) -> KitNegotiation:
        if self.negotiation is None:
            raise ScenarioError("no negotiation yet")
        return self.negotiation

    def then_wait_for_state(self, state: NegotiationState) -> Self:
        return self.then_wait(
            f"state to transition to {state}",
            lambda: self.negotiation is not None and self.negotiation.state is state,
        )

    def expect_termination_message(self) -> Self:
        return self.expect(
            NEGOTIATION_TERMINATION_PATH,
            "ContractNegotiationTerminationMessage",
            self.connector.handle_negotiation_termination,
        )

    def send_termination(self, *, expect_error: bool = False) -> Self:
        def run() -> None:
            pause()
            negotiation = self.current
            termination = messages.negotiation_termination(
                str(negotiation.provider_pid), str(negotiation.consumer_pid), "1"
            )
            pid = negotiation.correlation_id
            url = f"{negotiation.callback_address}/negotiations/{pid}/termination"
            self.kit.client.post(url, termination, expect_error=expect_error)
            if not expect_error:
                negotiation.transition(N.TERMINATED)

        return self.then("sendTermination", run)


class ProviderNegotiationPipeline(_NegotiationPipeline):
    """The kit as consumer, testing a provider (``ProviderNegotiationPipelineImpl``)."""

    def __init__(self, kit: Kit, scenario: str) -> None:
        super().__init__(kit, scenario, Role.CONSUMER)

    def send_request_message(self, dataset_id: str, offer_id: str) -> Self:
        def run() -> None:
            negotiation = self.connector.create_negotiation(dataset_id, offer_id, self.kit.dsp)
            self.negotiation = negotiation
            request = messages.contract_request(
                negotiation.id, offer_id, dataset_id, self.kit.callback
            )
            response = self.kit.client.post(f"{self.kit.dsp}/negotiations/request", request)
            answer = self.kit.client.required_message(response)
            negotiation.correlate(str(required(answer, "providerPid")), N.REQUESTED)

        return self.then("sendRequestMessage", run)

    def send_counter_offer_message(
        self, offer_id: str, target: str, *, expect_error: bool = False
    ) -> Self:
        def run() -> None:
            negotiation = self.current
            request = messages.counter_offer(
                str(negotiation.correlation_id),
                negotiation.id,
                offer_id,
                negotiation.counterparty_id,
                TCK_PARTICIPANT,
                target,
            )
            if not expect_error:
                negotiation.transition(N.REQUESTED)
            url = f"{self.kit.dsp}/negotiations/{negotiation.correlation_id}/request"
            self.kit.client.post(url, request, expect_error=expect_error)

        return self.then("sendCounterOfferMessage", run)

    def accept_last_offer(self) -> Self:
        def run() -> None:
            negotiation = self.current
            negotiation.transition(N.ACCEPTED)
            event = messages.negotiation_event(
                str(negotiation.correlation_id), negotiation.id, "ACCEPTED"
            )
            url = f"{self.kit.dsp}/negotiations/{negotiation.correlation_id}/events"
            self.kit.client.post(url, event)

        return self.then("acceptLastOffer", run)

    def send_verified_event(self, *, expect_error: bool = False) -> Self:
        def run() -> None:
            pause()
            negotiation = self.current
            if not expect_error:
                negotiation.transition(N.VERIFIED)
            message = messages.verification(str(negotiation.correlation_id), negotiation.id)
            url = f"{self.kit.dsp}/negotiations/{negotiation.correlation_id}/agreement/verification"
            self.kit.client.post(url, message, expect_error=expect_error)

        return self.then("sendVerifiedEvent", run)

    def expect_offer_message(self) -> Self:
        return self.expect(OFFERS_PATH, "ContractOfferMessage", self.connector.handle_offer)

    def expect_agreement_message(self) -> Self:
        return self.expect(
            AGREEMENT_PATH, "ContractAgreementMessage", self.connector.handle_agreement
        )

    def expect_finalized_event(self) -> Self:
        return self.expect(
            NEGOTIATION_EVENT_PATH,
            "ContractNegotiationEventMessage",
            self.connector.handle_finalized,
        )

    def expect_termination(self) -> Self:
        """The kit's ``expectTermination``: any termination ends its negotiation."""

        def terminated(_: Message) -> None:
            self.current.transition(N.TERMINATED)

        return self.expect(
            NEGOTIATION_TERMINATION_PATH, "ContractNegotiationTerminationMessage", terminated
        )

    def then_verify_provider_state(self, state: NegotiationState) -> Self:
        def run() -> None:
            pause()
            self._verify_state(
                f"{self.kit.dsp}/negotiations/{self.current.correlation_id}", state.value
            )

        return self.then(f"thenVerifyProviderState {state}", run)


class ConsumerNegotiationPipeline(_NegotiationPipeline):
    """The kit as provider, testing a consumer (``ConsumerNegotiationPipelineImpl``)."""

    def __init__(self, kit: Kit, scenario: str) -> None:
        super().__init__(kit, scenario, Role.PROVIDER)

    def _requested(self, negotiation: KitNegotiation) -> None:
        self.negotiation = negotiation
        self.connector.on_negotiation_requested = None

    def initiate_request(self, dataset_id: str, offer_id: str) -> Self:
        def run() -> None:
            self.connector.on_negotiation_requested = self._requested
            request = {
                "providerId": TCK_PARTICIPANT,
                "offerId": offer_id,
                "datasetId": dataset_id,
                "connectorAddress": self.kit.callback,
            }
            url = self.kit.setting("dataspacetck.dsp.connector.negotiation.initiate.url")
            self.kit.client.post(url, request, plain=True)

        return self.then("initiateRequest", run)

    def expect_initial_request(self) -> Self:
        return self.expect(
            INITIAL_REQUEST_PATH,
            "initial ContractRequestMessage",
            self._contract_request,
            status=201,
        )

    def expect_request(self) -> Self:
        return self.expect(REQUEST_PATH, "counter ContractRequestMessage", self._contract_request)

    def _contract_request(self, request: Message) -> Message:
        return self.connector.handle_contract_request(request, self.kit.agent_id)

    def expect_accepted_event(self) -> Self:
        return self.expect(
            NEGOTIATION_EVENT_PATH,
            "ContractNegotiationEventMessage",
            self.connector.handle_accepted,
        )

    def expect_verified_message(self) -> Self:
        return self.expect(
            VERIFICATION_PATH,
            "ContractAgreementVerificationMessage",
            self.connector.handle_verified,
        )

    def _post_to_consumer(self, path: str, message: Message, expect_error: bool) -> None:
        negotiation = self.current
        url = f"{negotiation.callback_address}/negotiations/{negotiation.correlation_id}/{path}"
        self.kit.client.post(url, message, expect_error=expect_error)

    def send_offer_message(self, *, expect_error: bool = False) -> Self:
        def run() -> None:
            negotiation = self.current
            offer = messages.contract_offer(
                negotiation.id,
                str(negotiation.correlation_id),
                negotiation.offer_id,
                TCK_PARTICIPANT,
                str(negotiation.counterparty_id),
                negotiation.dataset_id,
            )
            self._post_to_consumer("offers", offer, expect_error)
            if not expect_error:
                negotiation.transition(N.OFFERED)

        return self.then("sendOfferMessage", run)

    def send_agreement_message(self, *, expect_error: bool = False) -> Self:
        def run() -> None:
            negotiation = self.current
            agreement = messages.contract_agreement(
                negotiation.id,
                str(negotiation.correlation_id),
                messages.new_id(),
                TCK_PARTICIPANT,
                self.kit.agent_id,
                negotiation.dataset_id,
                self.kit.callback,
            )
            self._post_to_consumer("agreement", agreement, expect_error)
            if not expect_error:
                negotiation.transition(N.AGREED)

        return self.then("sendAgreementMessage", run)

    def send_finalized_event(self, *, expect_error: bool = False) -> Self:
        def run() -> None:
            negotiation = self.current
            event = messages.negotiation_event(
                negotiation.id, str(negotiation.correlation_id), "FINALIZED"
            )
            self._post_to_consumer("events", event, expect_error)
            if not expect_error:
                negotiation.transition(N.FINALIZED)

        return self.then("sendFinalizedEvent", run)

    def then_verify_consumer_state(self, state: NegotiationState) -> Self:
        def run() -> None:
            pause()
            negotiation = self.current
            url = f"{negotiation.callback_address}/negotiations/{negotiation.correlation_id}"
            self._verify_state(url, state.value)

        return self.then(f"thenVerifyConsumerState {state}", run)
