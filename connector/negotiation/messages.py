"""Contract negotiation messages of DSP 2025-1 (Contract Negotiation Protocol, "Message Types",
and the shapes of ``shared/dsp/2025-1/schemas/negotiation``). Offers and agreements are carried
as JSON and read by ``policy.jsonld``; this module checks only the envelope."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import Field, model_validator

from connector.negotiation.machine import Event, State
from connector.protocol import DspMessage, Pid, optional_pid_field, pid_field


class ContractRequestMessage(DspMessage):
    TYPE: ClassVar[str] = "ContractRequestMessage"
    event: ClassVar[Event] = Event.REQUEST

    consumer_pid: Pid = pid_field("consumerPid")
    provider_pid: Pid | None = optional_pid_field("providerPid")
    offer: dict[str, Any]
    callback_address: str | None = Field(default=None, alias="callbackAddress")

    @model_validator(mode="after")
    def _exactly_one(self) -> ContractRequestMessage:
        # "the initial request has callbackAddress and no providerPid; a counter-request has
        # providerPid and no callbackAddress" (the schema's oneOf, shared/dsp/SOURCE.md quirk 4)
        if (self.provider_pid is None) == (self.callback_address is None):
            raise ValueError("exactly one of providerPid and callbackAddress")
        if not isinstance(self.offer.get("@id"), str):
            raise ValueError("offer.@id is required")
        return self


class ContractOfferMessage(DspMessage):
    TYPE: ClassVar[str] = "ContractOfferMessage"
    event: ClassVar[Event] = Event.OFFER

    provider_pid: Pid = pid_field("providerPid")
    consumer_pid: Pid | None = optional_pid_field("consumerPid")
    offer: dict[str, Any]
    callback_address: str | None = Field(default=None, alias="callbackAddress")

    @model_validator(mode="after")
    def _exactly_one(self) -> ContractOfferMessage:
        if (self.consumer_pid is None) == (self.callback_address is None):
            raise ValueError("exactly one of consumerPid and callbackAddress")
        return self


class ContractAgreementMessage(DspMessage):
    TYPE: ClassVar[str] = "ContractAgreementMessage"
    event: ClassVar[Event] = Event.AGREE

    provider_pid: Pid = pid_field("providerPid")
    consumer_pid: Pid = pid_field("consumerPid")
    agreement: dict[str, Any]
    callback_address: str | None = Field(default=None, alias="callbackAddress")


class ContractAgreementVerificationMessage(DspMessage):
    TYPE: ClassVar[str] = "ContractAgreementVerificationMessage"
    event: ClassVar[Event] = Event.VERIFY

    provider_pid: Pid = pid_field("providerPid")
    consumer_pid: Pid = pid_field("consumerPid")


class ContractNegotiationEventMessage(DspMessage):
    TYPE: ClassVar[str] = "ContractNegotiationEventMessage"

    provider_pid: Pid = pid_field("providerPid")
    consumer_pid: Pid = pid_field("consumerPid")
    event_type: Literal["ACCEPTED", "FINALIZED"] = Field(alias="eventType")

    @property
    def event(self) -> Event:
        return Event.ACCEPT if self.event_type == "ACCEPTED" else Event.FINALIZE


class ContractNegotiationTerminationMessage(DspMessage):
    TYPE: ClassVar[str] = "ContractNegotiationTerminationMessage"
    event: ClassVar[Event] = Event.TERMINATE

    provider_pid: Pid = pid_field("providerPid")
    consumer_pid: Pid = pid_field("consumerPid")
    code: str | None = Field(default=None, max_length=200)
    reason: list[Any] | None = Field(default=None, max_length=20)


class ContractNegotiation(DspMessage):
    """The ACK: the negotiation as one side sees it."""

    TYPE: ClassVar[str] = "ContractNegotiation"

    provider_pid: Pid = pid_field("providerPid")
    consumer_pid: Pid = pid_field("consumerPid")
    state: State


class ContractNegotiationError(DspMessage):
    TYPE: ClassVar[str] = "ContractNegotiationError"

    provider_pid: Pid | None = optional_pid_field("providerPid")
    consumer_pid: Pid | None = optional_pid_field("consumerPid")
    code: str | None = None
    reason: list[Any] | None = None
