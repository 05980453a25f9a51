"""The 65 active scenarios of the Eclipse DSP TCK (commit ``e8b7af9c``; TP:02-04 and
TP_C:02-04 are disabled there and absent here), each playing the same stages, in the same
order, as the kit's test method: ``Metadata01Test``, ``Catalog01Test``,
``ContractNegotiation{Provider,Consumer}0{1,2,3}Test``, ``TransferProcess{Provider,Consumer}0
{1,2,3}Test``. Every id comes from the kit's configuration (``CN_01_01_DATASETID``, …), as the
kit reads its ``.properties`` file; the offer ids of the consumer scenarios are derived from the
dataset id as the kit derives them (``offer`` + id), and CN:01-02's counter-offer names the
literal offer the kit hard-codes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

from tests.conformance import messages
from tests.conformance.checks import ScenarioError, required, show
from tests.conformance.machines import NegotiationState, TransferState
from tests.conformance.negotiation import ConsumerNegotiationPipeline, ProviderNegotiationPipeline
from tests.conformance.pipelines import Kit, Pipeline
from tests.conformance.transfer import (
    ConsumerTransferProcessPipeline,
    ProviderTransferProcessPipeline,
)

N = NegotiationState
T = TransferState

Scenario = Callable[[Kit, str], None]
SCENARIOS: Final[dict[str, Scenario]] = {}


def scenario(*ids: str) -> Callable[[Scenario], Scenario]:
    def register(run: Scenario) -> Scenario:
        for scenario_id in ids:
            SCENARIOS[scenario_id] = run
        return run

    return register


def _config_key(scenario_id: str) -> str:
    """``CN_C:01-02`` -> ``CN_C_01_02``, the prefix of the kit's configuration keys."""
    return scenario_id.replace(":", "_").replace("-", "_")


def dataset_id(kit: Kit, scenario_id: str) -> str:
    return kit.setting(f"{_config_key(scenario_id)}_DATASETID")


def offer_id(kit: Kit, scenario_id: str) -> str:
    return kit.setting(f"{_config_key(scenario_id)}_OFFERID")


def agreement(kit: Kit, scenario_id: str) -> tuple[str, str]:
    key = _config_key(scenario_id)
    return kit.setting(f"{key}_AGREEMENTID"), kit.setting(f"{key}_FORMAT")


# --------------------------------------------------------------------------------------------
# MET, CAT


@scenario("MET:01-01")
def met_01_01(kit: Kit, sid: str) -> None:
    def run() -> None:
        response = kit.client.get(f"{kit.root}/.well-known/dspace-version")
        metadata = kit.client.plain(response)
        versions = metadata.get("protocolVersions") if isinstance(metadata, dict) else None
        if not isinstance(versions, list):
            raise ScenarioError(f"no protocolVersions list: {show(metadata)}")
        if not any(_is_2025_1(entry) for entry in versions):
            raise ScenarioError(f"no 2025-1 entry with path and binding: {show(metadata)}")

    Pipeline(kit, sid).then("getMetadata", run).execute()


def _is_2025_1(entry: object) -> bool:
    return (
        isinstance(entry, dict)
        and entry.get("version") == "2025-1"
        and entry.get("path") is not None
        and entry.get("binding") is not None
    )


def _as_list(value: object) -> list[Any]:
    return value if isinstance(value, list) else [value]


@scenario("CAT:01-01")
def cat_01_01(kit: Kit, sid: str) -> None:
    wanted = dataset_id(kit, sid)

    def run() -> None:
        response = kit.client.post(f"{kit.dsp}/catalog/request", messages.catalog_request())
        catalog = kit.client.required_message(response)
        datasets = _as_list(required(catalog, "dataset"))
        if not any(isinstance(d, dict) and d.get("@id") == wanted for d in datasets):
            raise ScenarioError(f"no dataset {wanted} in the catalog: {show(catalog)}")

    Pipeline(kit, sid).then("getCatalog", run).execute()


@scenario("CAT:01-02")
def cat_01_02(kit: Kit, sid: str) -> None:
    wanted = dataset_id(kit, sid)

    def run() -> None:
        response = kit.client.get(f"{kit.dsp}/catalog/datasets/{wanted}")
        dataset = kit.client.required_message(response)
        if dataset.get("@id") != wanted:
            raise ScenarioError(f"expected dataset {wanted}: {show(dataset)}")

    Pipeline(kit, sid).then("getDataset", run).execute()


@scenario("CAT:01-03")
def cat_01_03(kit: Kit, sid: str) -> None:
    absent = dataset_id(kit, sid)

    def run() -> None:
        response = kit.client.get(f"{kit.dsp}/catalog/datasets/{absent}", expect_error=True)
        error = kit.client.required_message(response)
        if error.get("@type") != "CatalogError":
            raise ScenarioError(f"expected a CatalogError: {show(error)}")

    Pipeline(kit, sid).then("getDataset (expecting an error)", run).execute()


# --------------------------------------------------------------------------------------------
# CN: the connector under test is the provider


def _cn(kit: Kit, sid: str) -> tuple[ProviderNegotiationPipeline, str, str]:
    return ProviderNegotiationPipeline(kit, sid), dataset_id(kit, sid), offer_id(kit, sid)


@scenario("CN:01-01", "CN:02-04")
def cn_offer_then_consumer_terminates(kit: Kit, sid: str) -> None:
    p, dataset, offer = _cn(kit, sid)
    (
        p.expect_offer_message()
        .send_request_message(dataset, offer)
        .then_wait_for_state(N.OFFERED)
        .send_termination()
        .then_verify_provider_state(N.TERMINATED)
        .execute()
    )


@scenario("CN:01-02")
def cn_01_02(kit: Kit, sid: str) -> None:
    p, dataset, offer = _cn(kit, sid)
    (
        p.expect_offer_message()
        .send_request_message(dataset, offer)
        .then_wait_for_state(N.OFFERED)
        .expect_termination_message()
        .send_counter_offer_message("CD123:ACN0102:456", "ACN0102")
        .then_wait_for_state(N.TERMINATED)
        .execute()
    )


@scenario("CN:01-03")
def cn_01_03(kit: Kit, sid: str) -> None:
    p, dataset, offer = _cn(kit, sid)
    (
        p.expect_offer_message()
        .send_request_message(dataset, offer)
        .then_wait_for_state(N.OFFERED)
        .expect_agreement_message()
        .accept_last_offer()
        .then_wait_for_state(N.AGREED)
        .expect_finalized_event()
        .send_verified_event()
        .then_wait_for_state(N.FINALIZED)
        .execute()
    )


@scenario("CN:01-04")
def cn_01_04(kit: Kit, sid: str) -> None:
    p, dataset, offer = _cn(kit, sid)
    (
        p.expect_agreement_message()
        .send_request_message(dataset, offer)
        .then_wait_for_state(N.AGREED)
        .expect_finalized_event()
        .send_verified_event()
        .then_wait_for_state(N.FINALIZED)
        .execute()
    )


@scenario("CN:02-01")
def cn_02_01(kit: Kit, sid: str) -> None:
    p, dataset, offer = _cn(kit, sid)
    (
        p.send_request_message(dataset, offer)
        .expect_termination()
        .then_wait_for_state(N.TERMINATED)
        .execute()
    )


@scenario("CN:02-02")
def cn_02_02(kit: Kit, sid: str) -> None:
    p, dataset, offer = _cn(kit, sid)
    (
        p.send_request_message(dataset, offer)
        .send_termination()
        .then_verify_provider_state(N.TERMINATED)
        .execute()
    )


@scenario("CN:02-03")
def cn_02_03(kit: Kit, sid: str) -> None:
    p, dataset, offer = _cn(kit, sid)
    (
        p.expect_agreement_message()
        .send_request_message(dataset, offer)
        .then_wait_for_state(N.AGREED)
        .send_termination()
        .then_verify_provider_state(N.TERMINATED)
        .execute()
    )


@scenario("CN:02-05")
def cn_02_05(kit: Kit, sid: str) -> None:
    p, dataset, offer = _cn(kit, sid)
    (
        p.expect_offer_message()
        .send_request_message(dataset, offer)
        .then_wait_for_state(N.OFFERED)
        .expect_termination()
        .then_wait_for_state(N.TERMINATED)
        .execute()
    )


@scenario("CN:02-06")
def cn_02_06(kit: Kit, sid: str) -> None:
    p, dataset, offer = _cn(kit, sid)
    (
        p.expect_offer_message()
        .send_request_message(dataset, offer)
        .then_wait_for_state(N.OFFERED)
        .accept_last_offer()
        .expect_termination()
        .then_wait_for_state(N.TERMINATED)
        .execute()
    )


@scenario("CN:02-07")
def cn_02_07(kit: Kit, sid: str) -> None:
    p, dataset, offer = _cn(kit, sid)
    (
        p.expect_agreement_message()
        .send_request_message(dataset, offer)
        .then_wait_for_state(N.AGREED)
        .expect_termination()
        .send_verified_event()
        .then_wait_for_state(N.TERMINATED)
        .execute()
    )


@scenario("CN:03-01")
def cn_03_01(kit: Kit, sid: str) -> None:
    p, dataset, offer = _cn(kit, sid)
    (
        p.expect_agreement_message()
        .send_request_message(dataset, offer)
        .then_wait_for_state(N.AGREED)
        .expect_finalized_event()
        .send_verified_event()
        .then_wait_for_state(N.FINALIZED)
        .send_termination(expect_error=True)
        .execute()
    )


@scenario("CN:03-02")
def cn_03_02(kit: Kit, sid: str) -> None:
    p, dataset, offer = _cn(kit, sid)
    (
        p.expect_offer_message()
        .send_request_message(dataset, offer)
        .then_wait_for_state(N.OFFERED)
        .send_verified_event(expect_error=True)
        .execute()
    )


@scenario("CN:03-03")
def cn_03_03(kit: Kit, sid: str) -> None:
    p, dataset, offer = _cn(kit, sid)
    (
        p.expect_offer_message()
        .send_request_message(dataset, offer)
        .then_wait_for_state(N.OFFERED)
        .accept_last_offer()
        .send_verified_event(expect_error=True)
        .execute()
    )


@scenario("CN:03-04")
def cn_03_04(kit: Kit, sid: str) -> None:
    p, dataset, offer = _cn(kit, sid)
    (
        p.expect_offer_message()
        .send_request_message(dataset, offer)
        .then_wait_for_state(N.OFFERED)
        .send_counter_offer_message(offer, dataset)
        .send_counter_offer_message(offer, dataset, expect_error=True)
        .execute()
    )


# --------------------------------------------------------------------------------------------
# CN_C: the connector under test is the consumer


def _cn_c(kit: Kit, sid: str) -> ConsumerNegotiationPipeline:
    """The kit's common opening: the initial request, answered, and the kit in REQUESTED."""
    dataset = dataset_id(kit, sid)
    return (
        ConsumerNegotiationPipeline(kit, sid)
        .expect_initial_request()
        .initiate_request(dataset, messages.offer_id_of(dataset))
        .then_wait_for_state(N.REQUESTED)
    )


@scenario("CN_C:01-01")
def cn_c_01_01(kit: Kit, sid: str) -> None:
    (
        _cn_c(kit, sid)
        .expect_accepted_event()
        .send_offer_message()
        .then_wait_for_state(N.ACCEPTED)
        .expect_verified_message()
        .send_agreement_message()
        .then_wait_for_state(N.VERIFIED)
        .send_finalized_event()
        .then_verify_consumer_state(N.FINALIZED)
        .execute()
    )


@scenario("CN_C:01-02")
def cn_c_01_02(kit: Kit, sid: str) -> None:
    (
        _cn_c(kit, sid)
        .expect_request()
        .send_offer_message()
        .then_wait_for_state(N.REQUESTED)
        .send_termination()
        .then_wait_for_state(N.TERMINATED)
        .execute()
    )


@scenario("CN_C:01-03")
def cn_c_01_03(kit: Kit, sid: str) -> None:
    (
        _cn_c(kit, sid)
        .expect_termination_message()
        .send_offer_message()
        .then_wait_for_state(N.TERMINATED)
        .then_verify_consumer_state(N.TERMINATED)
        .execute()
    )


@scenario("CN_C:01-04")
def cn_c_01_04(kit: Kit, sid: str) -> None:
    (
        _cn_c(kit, sid)
        .expect_verified_message()
        .send_agreement_message()
        .then_wait_for_state(N.VERIFIED)
        .send_finalized_event()
        .then_verify_consumer_state(N.FINALIZED)
        .execute()
    )


@scenario("CN_C:02-01")
def cn_c_02_01(kit: Kit, sid: str) -> None:
    (
        _cn_c(kit, sid)
        .send_termination()
        .then_wait_for_state(N.TERMINATED)
        .then_verify_consumer_state(N.TERMINATED)
        .execute()
    )


@scenario("CN_C:02-02")
def cn_c_02_02(kit: Kit, sid: str) -> None:
    (
        _cn_c(kit, sid)
        .expect_termination_message()
        .then_wait_for_state(N.TERMINATED)
        .then_verify_consumer_state(N.TERMINATED)
        .execute()
    )


@scenario("CN_C:02-03")
def cn_c_02_03(kit: Kit, sid: str) -> None:
    (
        _cn_c(kit, sid)
        .expect_termination_message()
        .send_agreement_message()
        .then_wait_for_state(N.TERMINATED)
        .then_verify_consumer_state(N.TERMINATED)
        .execute()
    )


@scenario("CN_C:02-04")
def cn_c_02_04(kit: Kit, sid: str) -> None:
    (
        _cn_c(kit, sid)
        .send_offer_message()
        .then_wait_for_state(N.OFFERED)
        .then_verify_consumer_state(N.OFFERED)
        .send_termination()
        .then_wait_for_state(N.TERMINATED)
        .then_verify_consumer_state(N.TERMINATED)
        .execute()
    )


@scenario("CN_C:02-05")
def cn_c_02_05(kit: Kit, sid: str) -> None:
    (
        _cn_c(kit, sid)
        .expect_accepted_event()
        .send_offer_message()
        .then_wait_for_state(N.ACCEPTED)
        .send_termination()
        .then_wait_for_state(N.TERMINATED)
        .then_verify_consumer_state(N.TERMINATED)
        .execute()
    )


@scenario("CN_C:02-06")
def cn_c_02_06(kit: Kit, sid: str) -> None:
    (
        _cn_c(kit, sid)
        .expect_verified_message()
        .send_agreement_message()
        .then_wait_for_state(N.VERIFIED)
        .send_termination()
        .then_verify_consumer_state(N.TERMINATED)
        .execute()
    )


@scenario("CN_C:03-01")
def cn_c_03_01(kit: Kit, sid: str) -> None:
    (
        _cn_c(kit, sid)
        .send_finalized_event(expect_error=True)
        .then_verify_consumer_state(N.REQUESTED)
        .execute()
    )


@scenario("CN_C:03-02")
def cn_c_03_02(kit: Kit, sid: str) -> None:
    (
        _cn_c(kit, sid)
        .send_offer_message()
        .then_wait_for_state(N.OFFERED)
        .then_verify_consumer_state(N.OFFERED)
        .send_agreement_message(expect_error=True)
        .then_verify_consumer_state(N.OFFERED)
        .execute()
    )


@scenario("CN_C:03-03")
def cn_c_03_03(kit: Kit, sid: str) -> None:
    (
        _cn_c(kit, sid)
        .send_offer_message()
        .then_wait_for_state(N.OFFERED)
        .send_finalized_event(expect_error=True)
        .then_verify_consumer_state(N.OFFERED)
        .execute()
    )


def _cn_c_accepted(kit: Kit, sid: str) -> ConsumerNegotiationPipeline:
    return (
        _cn_c(kit, sid).expect_accepted_event().send_offer_message().then_wait_for_state(N.ACCEPTED)
    )


@scenario("CN_C:03-04")
def cn_c_03_04(kit: Kit, sid: str) -> None:
    (
        _cn_c_accepted(kit, sid)
        .send_finalized_event(expect_error=True)
        .then_verify_consumer_state(N.ACCEPTED)
        .execute()
    )


@scenario("CN_C:03-05")
def cn_c_03_05(kit: Kit, sid: str) -> None:
    (
        _cn_c_accepted(kit, sid)
        .send_offer_message(expect_error=True)
        .then_verify_consumer_state(N.ACCEPTED)
        .execute()
    )


@scenario("CN_C:03-06")
def cn_c_03_06(kit: Kit, sid: str) -> None:
    (
        _cn_c_accepted(kit, sid)
        .send_agreement_message()
        .then_wait_for_state(N.AGREED)
        .send_finalized_event(expect_error=True)
        .then_verify_consumer_state(N.AGREED)
        .execute()
    )


# --------------------------------------------------------------------------------------------
# TP: the connector under test is the provider


def _tp(kit: Kit, sid: str) -> tuple[ProviderTransferProcessPipeline, str, str]:
    agreement_id, format_ = agreement(kit, sid)
    return ProviderTransferProcessPipeline(kit, sid), agreement_id, format_


def _tp_started(kit: Kit, sid: str) -> ProviderTransferProcessPipeline:
    """The provider starts at once; the kit checks it sees STARTED."""
    p, agreement_id, format_ = _tp(kit, sid)
    return (
        p.expect_start_message()
        .send_transfer_request(agreement_id, format_)
        .then_wait_for_state(T.STARTED)
        .then_verify_provider_state(T.STARTED)
    )


@scenario("TP:01-01")
def tp_01_01(kit: Kit, sid: str) -> None:
    p, agreement_id, format_ = _tp(kit, sid)
    (
        p.expect_start_message()
        .send_transfer_request(agreement_id, format_)
        .then_wait_for_state(T.STARTED)
        .expect_termination_message()
        .then_wait_for_state(T.TERMINATED)
        .then_verify_provider_state(T.TERMINATED)
        .execute()
    )


@scenario("TP:01-02")
def tp_01_02(kit: Kit, sid: str) -> None:
    p, agreement_id, format_ = _tp(kit, sid)
    (
        p.expect_start_message()
        .send_transfer_request(agreement_id, format_)
        .then_wait_for_state(T.STARTED)
        .expect_completion_message()
        .then_wait_for_state(T.COMPLETED)
        .then_verify_provider_state(T.COMPLETED)
        .execute()
    )


@scenario("TP:01-03")
def tp_01_03(kit: Kit, sid: str) -> None:
    p, agreement_id, format_ = _tp(kit, sid)
    (
        p.expect_start_message()
        .send_transfer_request(agreement_id, format_)
        .then_wait_for_state(T.STARTED)
        .expect_suspension_message()
        .then_wait_for_state(T.SUSPENDED)
        .expect_termination_message()
        .then_wait_for_state(T.TERMINATED)
        .then_verify_provider_state(T.TERMINATED)
        .execute()
    )


@scenario("TP:01-04")
def tp_01_04(kit: Kit, sid: str) -> None:
    p, agreement_id, format_ = _tp(kit, sid)
    (
        p.expect_start_message()
        .send_transfer_request(agreement_id, format_)
        .then_wait_for_state(T.STARTED)
        .expect_suspension_message()
        .then_wait_for_state(T.SUSPENDED)
        .expect_start_message()
        .then_wait_for_state(T.STARTED)
        .expect_completion_message()
        .then_wait_for_state(T.COMPLETED)
        .then_verify_provider_state(T.COMPLETED)
        .execute()
    )


@scenario("TP:01-05")
def tp_01_05(kit: Kit, sid: str) -> None:
    p, agreement_id, format_ = _tp(kit, sid)
    (
        p.expect_termination_message()
        .send_transfer_request(agreement_id, format_)
        .then_wait_for_state(T.TERMINATED)
        .then_verify_provider_state(T.TERMINATED)
        .execute()
    )


@scenario("TP:02-01")
def tp_02_01(kit: Kit, sid: str) -> None:
    (
        _tp_started(kit, sid)
        .send_termination()
        .then_wait_for_state(T.TERMINATED)
        .then_verify_provider_state(T.TERMINATED)
        .execute()
    )


@scenario("TP:02-02")
def tp_02_02(kit: Kit, sid: str) -> None:
    (
        _tp_started(kit, sid)
        .send_completion()
        .then_wait_for_state(T.COMPLETED)
        .then_verify_provider_state(T.COMPLETED)
        .execute()
    )


@scenario("TP:02-03")
def tp_02_03(kit: Kit, sid: str) -> None:
    (
        _tp_started(kit, sid)
        .send_suspension()
        .then_wait_for_state(T.SUSPENDED)
        .then_verify_provider_state(T.SUSPENDED)
        .send_termination()
        .then_wait_for_state(T.TERMINATED)
        .then_verify_provider_state(T.TERMINATED)
        .execute()
    )


def _tp_requested(kit: Kit, sid: str) -> ProviderTransferProcessPipeline:
    """The provider stays passive; the kit checks it sees REQUESTED."""
    p, agreement_id, format_ = _tp(kit, sid)
    return (
        p.send_transfer_request(agreement_id, format_)
        .then_wait_for_state(T.REQUESTED)
        .then_verify_provider_state(T.REQUESTED)
    )


@scenario("TP:02-05")
def tp_02_05(kit: Kit, sid: str) -> None:
    (
        _tp_requested(kit, sid)
        .send_termination()
        .then_wait_for_state(T.TERMINATED)
        .then_verify_provider_state(T.TERMINATED)
        .execute()
    )


@scenario("TP:03-01")
def tp_03_01(kit: Kit, sid: str) -> None:
    (
        _tp_requested(kit, sid)
        .send_completion(expect_error=True)
        .then_wait_for_state(T.REQUESTED)
        .then_verify_provider_state(T.REQUESTED)
        .execute()
    )


@scenario("TP:03-02")
def tp_03_02(kit: Kit, sid: str) -> None:
    (
        _tp_requested(kit, sid)
        .send_suspension(expect_error=True)
        .then_wait_for_state(T.REQUESTED)
        .then_verify_provider_state(T.REQUESTED)
        .execute()
    )


@scenario("TP:03-03")
def tp_03_03(kit: Kit, sid: str) -> None:
    (
        _tp_started(kit, sid)
        .send_suspension()
        .then_wait_for_state(T.SUSPENDED)
        .then_verify_provider_state(T.SUSPENDED)
        .send_completion(expect_error=True)
        .then_wait_for_state(T.SUSPENDED)
        .then_verify_provider_state(T.SUSPENDED)
        .execute()
    )


def _tp_terminated(kit: Kit, sid: str) -> ProviderTransferProcessPipeline:
    return (
        _tp_started(kit, sid)
        .send_termination()
        .then_wait_for_state(T.TERMINATED)
        .then_verify_provider_state(T.TERMINATED)
    )


@scenario("TP:03-04")
def tp_03_04(kit: Kit, sid: str) -> None:
    (
        _tp_terminated(kit, sid)
        .send_started(expect_error=True)
        .then_wait_for_state(T.TERMINATED)
        .then_verify_provider_state(T.TERMINATED)
        .execute()
    )


@scenario("TP:03-05")
def tp_03_05(kit: Kit, sid: str) -> None:
    (
        _tp_terminated(kit, sid)
        .send_suspension(expect_error=True)
        .then_wait_for_state(T.TERMINATED)
        .then_verify_provider_state(T.TERMINATED)
        .execute()
    )


@scenario("TP:03-06")
def tp_03_06(kit: Kit, sid: str) -> None:
    (
        _tp_terminated(kit, sid)
        .send_completion(expect_error=True)
        .then_wait_for_state(T.TERMINATED)
        .then_verify_provider_state(T.TERMINATED)
        .execute()
    )


# --------------------------------------------------------------------------------------------
# TP_C: the connector under test is the consumer


def _tp_c(kit: Kit, sid: str) -> ConsumerTransferProcessPipeline:
    """The kit's common opening: the transfer request, answered, and the kit in REQUESTED."""
    agreement_id, format_ = agreement(kit, sid)
    return (
        ConsumerTransferProcessPipeline(kit, sid)
        .expect_transfer_request()
        .initiate_transfer_request(agreement_id, format_)
        .then_wait_for_state(T.REQUESTED)
    )


def _tp_c_started(kit: Kit, sid: str) -> ConsumerTransferProcessPipeline:
    return (
        _tp_c(kit, sid)
        .send_started(messages.data_address())
        .then_wait_for_state(T.STARTED)
        .then_verify_consumer_state(T.STARTED)
    )


@scenario("TP_C:01-01")
def tp_c_01_01(kit: Kit, sid: str) -> None:
    (
        _tp_c_started(kit, sid)
        .send_termination()
        .then_wait_for_state(T.TERMINATED)
        .then_verify_consumer_state(T.TERMINATED)
        .execute()
    )


@scenario("TP_C:01-02")
def tp_c_01_02(kit: Kit, sid: str) -> None:
    (
        _tp_c_started(kit, sid)
        .send_completion()
        .then_wait_for_state(T.COMPLETED)
        .then_verify_consumer_state(T.COMPLETED)
        .execute()
    )


@scenario("TP_C:01-03")
def tp_c_01_03(kit: Kit, sid: str) -> None:
    (
        _tp_c_started(kit, sid)
        .send_suspension()
        .then_wait_for_state(T.SUSPENDED)
        .then_verify_consumer_state(T.SUSPENDED)
        .send_termination()
        .then_wait_for_state(T.TERMINATED)
        .then_verify_consumer_state(T.TERMINATED)
        .execute()
    )


@scenario("TP_C:01-04")
def tp_c_01_04(kit: Kit, sid: str) -> None:
    (
        _tp_c_started(kit, sid)
        .send_suspension()
        .then_wait_for_state(T.SUSPENDED)
        .then_verify_consumer_state(T.SUSPENDED)
        .send_started(messages.data_address())
        .then_wait_for_state(T.STARTED)
        .then_verify_consumer_state(T.STARTED)
        .send_completion()
        .then_wait_for_state(T.COMPLETED)
        .then_verify_consumer_state(T.COMPLETED)
        .execute()
    )


@scenario("TP_C:01-05")
def tp_c_01_05(kit: Kit, sid: str) -> None:
    (
        _tp_c(kit, sid)
        .send_termination()
        .then_wait_for_state(T.TERMINATED)
        .then_verify_consumer_state(T.TERMINATED)
        .execute()
    )


@scenario("TP_C:02-01")
def tp_c_02_01(kit: Kit, sid: str) -> None:
    (
        _tp_c(kit, sid)
        .expect_termination_message()
        .send_started(messages.data_address())
        .then_wait_for_state(T.TERMINATED)
        .then_verify_consumer_state(T.TERMINATED)
        .execute()
    )


@scenario("TP_C:02-02")
def tp_c_02_02(kit: Kit, sid: str) -> None:
    (
        _tp_c(kit, sid)
        .expect_completion_message()
        .send_started(messages.data_address())
        .then_wait_for_state(T.COMPLETED)
        .then_verify_consumer_state(T.COMPLETED)
        .execute()
    )


@scenario("TP_C:02-03")
def tp_c_02_03(kit: Kit, sid: str) -> None:
    (
        _tp_c(kit, sid)
        .expect_suspension_message()
        .send_started(messages.data_address())
        .then_wait_for_state(T.SUSPENDED)
        .expect_termination_message()
        .then_wait_for_state(T.TERMINATED)
        .then_verify_consumer_state(T.TERMINATED)
        .execute()
    )


@scenario("TP_C:02-05")
def tp_c_02_05(kit: Kit, sid: str) -> None:
    (
        _tp_c(kit, sid)
        .expect_termination_message()
        .then_wait_for_state(T.TERMINATED)
        .then_verify_consumer_state(T.TERMINATED)
        .execute()
    )


def _tp_c_requested(kit: Kit, sid: str) -> ConsumerTransferProcessPipeline:
    return _tp_c(kit, sid).then_verify_consumer_state(T.REQUESTED)


@scenario("TP_C:03-01")
def tp_c_03_01(kit: Kit, sid: str) -> None:
    (
        _tp_c_requested(kit, sid)
        .send_completion(expect_error=True)
        .then_wait_for_state(T.REQUESTED)
        .then_verify_consumer_state(T.REQUESTED)
        .execute()
    )


@scenario("TP_C:03-02")
def tp_c_03_02(kit: Kit, sid: str) -> None:
    (
        _tp_c_requested(kit, sid)
        .send_suspension(expect_error=True)
        .then_wait_for_state(T.REQUESTED)
        .then_verify_consumer_state(T.REQUESTED)
        .execute()
    )


@scenario("TP_C:03-03")
def tp_c_03_03(kit: Kit, sid: str) -> None:
    (
        _tp_c_requested(kit, sid)
        .send_started(messages.data_address())
        .then_wait_for_state(T.STARTED)
        .then_verify_consumer_state(T.STARTED)
        .send_suspension()
        .then_wait_for_state(T.SUSPENDED)
        .then_verify_consumer_state(T.SUSPENDED)
        .send_completion(expect_error=True)
        .then_wait_for_state(T.SUSPENDED)
        .then_verify_consumer_state(T.SUSPENDED)
        .execute()
    )


def _tp_c_terminated(kit: Kit, sid: str) -> ConsumerTransferProcessPipeline:
    return (
        _tp_c_requested(kit, sid)
        .send_started(messages.data_address())
        .then_wait_for_state(T.STARTED)
        .then_verify_consumer_state(T.STARTED)
        .send_termination()
        .then_wait_for_state(T.TERMINATED)
        .then_verify_consumer_state(T.TERMINATED)
    )


@scenario("TP_C:03-04")
def tp_c_03_04(kit: Kit, sid: str) -> None:
    (
        _tp_c_terminated(kit, sid)
        .send_started(expect_error=True)
        .then_wait_for_state(T.TERMINATED)
        .then_verify_consumer_state(T.TERMINATED)
        .execute()
    )


@scenario("TP_C:03-05")
def tp_c_03_05(kit: Kit, sid: str) -> None:
    (
        _tp_c_terminated(kit, sid)
        .send_suspension(expect_error=True)
        .then_wait_for_state(T.TERMINATED)
        .then_verify_consumer_state(T.TERMINATED)
        .execute()
    )


@scenario("TP_C:03-06")
def tp_c_03_06(kit: Kit, sid: str) -> None:
    (
        _tp_c_terminated(kit, sid)
        .send_completion(expect_error=True)
        .then_wait_for_state(T.TERMINATED)
        .then_verify_consumer_state(T.TERMINATED)
        .execute()
    )


GROUPS: Final = ("MET", "CAT", "CN", "CN_C", "TP", "TP_C")


def in_kit_order() -> list[str]:
    """The scenario ids grouped as the kit's test classes are, numbered within each group."""

    def rank(scenario_id: str) -> tuple[int, str]:
        group, number = scenario_id.split(":")
        return GROUPS.index(group), number

    return sorted(SCENARIOS, key=rank)
