"""Transfer process messages of DSP 2025-1 (Transfer Process Protocol, "Message Types", and the
shapes of ``shared/dsp/2025-1/schemas/transfer``)."""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field

from connector.protocol import DspMessage, Pid, optional_pid_field, pid_field
from connector.transfer.machine import Event, State


class EndpointProperty(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True, frozen=True)

    type: str = Field(default="EndpointProperty", alias="@type")
    name: str = Field(min_length=1, max_length=200)
    value: str = Field(max_length=8192)


class DataAddress(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True, frozen=True)

    type: str = Field(default="DataAddress", alias="@type")
    endpoint_type: str = Field(alias="endpointType", min_length=1)
    endpoint: str | None = None
    endpoint_properties: list[EndpointProperty] = Field(
        default_factory=list, alias="endpointProperties", max_length=50
    )

    def property(self, name: str) -> str | None:
        return next((p.value for p in self.endpoint_properties if p.name == name), None)


class TransferRequestMessage(DspMessage):
    TYPE: ClassVar[str] = "TransferRequestMessage"
    event: ClassVar[Event] = Event.REQUEST

    consumer_pid: Pid = pid_field("consumerPid")
    agreement_id: str = Field(alias="agreementId", min_length=1, max_length=500)
    format: str = Field(min_length=1, max_length=200)
    callback_address: str = Field(alias="callbackAddress", min_length=1, max_length=2048)
    data_address: DataAddress | None = Field(default=None, alias="dataAddress")


class TransferStartMessage(DspMessage):
    TYPE: ClassVar[str] = "TransferStartMessage"
    event: ClassVar[Event] = Event.START

    provider_pid: Pid = pid_field("providerPid")
    consumer_pid: Pid = pid_field("consumerPid")
    data_address: DataAddress | None = Field(default=None, alias="dataAddress")


class TransferSuspensionMessage(DspMessage):
    TYPE: ClassVar[str] = "TransferSuspensionMessage"
    event: ClassVar[Event] = Event.SUSPEND

    provider_pid: Pid = pid_field("providerPid")
    consumer_pid: Pid = pid_field("consumerPid")
    code: str | None = Field(default=None, max_length=200)
    reason: list[Any] | None = Field(default=None, max_length=20)


class TransferCompletionMessage(DspMessage):
    TYPE: ClassVar[str] = "TransferCompletionMessage"
    event: ClassVar[Event] = Event.COMPLETE

    provider_pid: Pid = pid_field("providerPid")
    consumer_pid: Pid = pid_field("consumerPid")


class TransferTerminationMessage(DspMessage):
    TYPE: ClassVar[str] = "TransferTerminationMessage"
    event: ClassVar[Event] = Event.TERMINATE

    provider_pid: Pid = pid_field("providerPid")
    consumer_pid: Pid = pid_field("consumerPid")
    code: str | None = Field(default=None, max_length=200)
    reason: list[Any] | None = Field(default=None, max_length=20)


class TransferProcess(DspMessage):
    """The ACK: the transfer as one side sees it."""

    TYPE: ClassVar[str] = "TransferProcess"

    provider_pid: Pid = pid_field("providerPid")
    consumer_pid: Pid = pid_field("consumerPid")
    state: State


class TransferError(DspMessage):
    TYPE: ClassVar[str] = "TransferError"

    provider_pid: Pid | None = optional_pid_field("providerPid")
    consumer_pid: Pid | None = optional_pid_field("consumerPid")
    code: str | None = None
    reason: list[Any] | None = None
