"""The typed Python client of a connector's management API (``/management/v1``, header
``X-Api-Key``): the SDK of data holders and operators, and what ``dataspace assets|policies|
offers|catalog|negotiations|agreements|transfers|credentials`` call.

Answers are the views the routes answer (:mod:`connector.management.views`); request bodies are
the routes' own input models or plain mappings of their wire names. Every refusal raises
:class:`service.client.ApiError` with the connector's typed body (``reason``, ``message``, and
``reasons`` where a policy refused). The data contracts API has its own client
(:class:`connector.contracts.client.ContractsClient`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from connector.management.routes import (
    AssetIn,
    ContractDefinitionIn,
    NegotiationIn,
    OfferIn,
    TransferIn,
)
from connector.management.views import (
    AgreementDetail,
    AgreementView,
    AssetView,
    BrokerSearchView,
    CatalogView,
    ContractDefinitionView,
    DatasetView,
    DomainList,
    EdrEntryView,
    EdrView,
    HeldCredentialView,
    NegotiationView,
    Page,
    PolicyDefinitionView,
    TransferView,
)
from service.client import ApiClient, body_of, segment

Body = Mapping[str, Any]
TransferMove = Literal["start", "suspend", "resume", "complete", "terminate"]
NegotiationMove = Literal["approve", "verify", "finalize"]

PREFIX = "/management/v1"


class ManagementClient(ApiClient):
    """``ManagementClient(connector_base_url, api_key)``; use it as a context manager or
    :meth:`close` it."""

    # --- assets ---------------------------------------------------------------------------

    def create_asset(self, asset: AssetIn | Body) -> AssetView:
        return self._read(AssetView, "POST", f"{PREFIX}/assets", json=body_of(asset))

    def assets(self, **query: Any) -> Page[AssetView]:
        """``query``: the list's parameters (offset, limit, sort, and its filters)."""
        return self._read(Page[AssetView], "GET", f"{PREFIX}/assets", params=query)

    def asset(self, asset_id: str) -> AssetView:
        return self._read(AssetView, "GET", f"{PREFIX}/assets/{segment(asset_id)}")

    def update_asset(self, asset_id: str, asset: AssetIn | Body) -> AssetView:
        """Replace the asset's description and data address (the id stays)."""
        path = f"{PREFIX}/assets/{segment(asset_id)}"
        return self._read(AssetView, "PUT", path, json=body_of(asset))

    def delete_asset(self, asset_id: str) -> None:
        self._none("DELETE", f"{PREFIX}/assets/{segment(asset_id)}")

    def domains(self) -> DomainList:
        return self._read(DomainList, "GET", f"{PREFIX}/domains")

    # --- policy definitions -----------------------------------------------------------------

    def create_policy(self, policy_id: str, policy: Body) -> PolicyDefinitionView:
        """Linted by the connector: refused (``policy_rejected``) with the errors; the
        warnings come back in the view."""
        body = {"id": policy_id, "policy": dict(policy)}
        return self._read(PolicyDefinitionView, "POST", f"{PREFIX}/policydefinitions", json=body)

    def policies(self, **query: Any) -> Page[PolicyDefinitionView]:
        return self._read(
            Page[PolicyDefinitionView], "GET", f"{PREFIX}/policydefinitions", params=query
        )

    def policy(self, policy_id: str) -> PolicyDefinitionView:
        path = f"{PREFIX}/policydefinitions/{segment(policy_id)}"
        return self._read(PolicyDefinitionView, "GET", path)

    def update_policy(self, policy_id: str, policy: Body) -> PolicyDefinitionView:
        path = f"{PREFIX}/policydefinitions/{segment(policy_id)}"
        body = {"id": policy_id, "policy": dict(policy)}
        return self._read(PolicyDefinitionView, "PUT", path, json=body)

    def delete_policy(self, policy_id: str) -> None:
        self._none("DELETE", f"{PREFIX}/policydefinitions/{segment(policy_id)}")

    # --- contract definitions (offers) ----------------------------------------------------

    def create_contract_definition(
        self, definition: ContractDefinitionIn | Body
    ) -> ContractDefinitionView:
        path = f"{PREFIX}/contractdefinitions"
        return self._read(ContractDefinitionView, "POST", path, json=body_of(definition))

    def contract_definitions(self, **query: Any) -> Page[ContractDefinitionView]:
        path = f"{PREFIX}/contractdefinitions"
        return self._read(Page[ContractDefinitionView], "GET", path, params=query)

    def contract_definition(self, definition_id: str) -> ContractDefinitionView:
        path = f"{PREFIX}/contractdefinitions/{segment(definition_id)}"
        return self._read(ContractDefinitionView, "GET", path)

    def update_contract_definition(
        self, definition_id: str, definition: ContractDefinitionIn | Body
    ) -> ContractDefinitionView:
        path = f"{PREFIX}/contractdefinitions/{segment(definition_id)}"
        return self._read(ContractDefinitionView, "PUT", path, json=body_of(definition))

    def delete_contract_definition(self, definition_id: str) -> None:
        self._none("DELETE", f"{PREFIX}/contractdefinitions/{segment(definition_id)}")

    # --- a peer's catalogue -----------------------------------------------------------------

    def catalog(
        self,
        counter_party_id: str,
        counter_party_address: str,
        continuation_token: str | None = None,
    ) -> CatalogView:
        """Ask a peer (its DID and DSP address, ``<public URL>/dsp``) for its catalogue."""
        body = {"counterPartyId": counter_party_id, "counterPartyAddress": counter_party_address}
        if continuation_token is not None:
            body["continuationToken"] = continuation_token
        return self._read(CatalogView, "POST", f"{PREFIX}/catalog/request", json=body)

    def dataset(
        self, counter_party_id: str, counter_party_address: str, dataset_id: str
    ) -> DatasetView:
        """Ask a peer for one dataset of its catalogue, with its offers."""
        body = {
            "counterPartyId": counter_party_id,
            "counterPartyAddress": counter_party_address,
            "datasetId": dataset_id,
        }
        return self._read(DatasetView, "POST", f"{PREFIX}/catalog/dataset/request", json=body)

    # --- the broker's federated catalogue ------------------------------------------------

    def broker_datasets(
        self,
        q: str | None = None,
        *,
        domain: str | None = None,
        grade: str | None = None,
        region: str | None = None,
        provider: str | None = None,
        personal_information: bool | None = None,
        sort: str | None = None,
        offset: int = 0,
        limit: int = 20,
    ) -> BrokerSearchView:
        """Search the data space through the broker (``CONNECTOR_BROKER_URL``): each hit's
        ``provider``, ``dsp_address`` and ``dataset_id`` go as they are to the data contracts
        API (:meth:`connector.contracts.client.ContractsClient.request_data`)."""
        query = {
            "q": q, "domain": domain, "grade": grade, "region": region, "provider": provider,
            "personalInformation": None if personal_information is None
            else str(personal_information).lower(),
            "sort": sort, "offset": offset, "limit": limit,
        }  # fmt: skip
        return self._read(BrokerSearchView, "GET", f"{PREFIX}/broker/datasets", params=query)

    # --- negotiations -----------------------------------------------------------------------

    def request_negotiation(self, request: NegotiationIn | Body) -> NegotiationView:
        """Consumer: ask a provider for one of its offers."""
        return self._read(NegotiationView, "POST", f"{PREFIX}/negotiations", json=body_of(request))

    def offer_to(self, offer: OfferIn | Body) -> NegotiationView:
        """Provider: start a negotiation by offering to a participant."""
        path = f"{PREFIX}/negotiations/offers"
        return self._read(NegotiationView, "POST", path, json=body_of(offer))

    def negotiations(self, **query: Any) -> Page[NegotiationView]:
        return self._read(Page[NegotiationView], "GET", f"{PREFIX}/negotiations", params=query)

    def negotiation(self, negotiation_id: str) -> NegotiationView:
        return self._read(
            NegotiationView, "GET", f"{PREFIX}/negotiations/{segment(negotiation_id)}"
        )

    def move_negotiation(self, negotiation_id: str, move: NegotiationMove) -> NegotiationView:
        """Provider ``approve`` (manual mode) or ``finalize``; consumer ``verify``."""
        path = f"{PREFIX}/negotiations/{segment(negotiation_id)}/{move}"
        return self._read(NegotiationView, "POST", path)

    def accept(self, negotiation_id: str, purpose: str | None = None) -> NegotiationView:
        """Consumer: accept the provider's offer, declaring a purpose if it needs one."""
        path = f"{PREFIX}/negotiations/{segment(negotiation_id)}/accept"
        body = {} if purpose is None else {"purpose": purpose}
        return self._read(NegotiationView, "POST", path, json=body)

    def counter(self, negotiation_id: str, offer: Body) -> NegotiationView:
        path = f"{PREFIX}/negotiations/{segment(negotiation_id)}/counter"
        return self._read(NegotiationView, "POST", path, json={"offer": dict(offer)})

    def terminate_negotiation(
        self, negotiation_id: str, reason: str, code: str = "terminated"
    ) -> NegotiationView:
        path = f"{PREFIX}/negotiations/{segment(negotiation_id)}/terminate"
        return self._read(NegotiationView, "POST", path, json={"code": code, "reason": reason})

    # --- agreements -------------------------------------------------------------------------

    def agreements(self, **query: Any) -> Page[AgreementView]:
        return self._read(Page[AgreementView], "GET", f"{PREFIX}/agreements", params=query)

    def agreement(self, agreement_id: str) -> AgreementDetail:
        """One agreement with the negotiation that made it."""
        path = f"{PREFIX}/agreements/{segment(agreement_id)}"
        return self._read(AgreementDetail, "GET", path)

    # --- transfers --------------------------------------------------------------------------

    def request_transfer(self, request: TransferIn | Body) -> TransferView:
        """Consumer: ask the provider to start a transfer under an agreement."""
        return self._read(TransferView, "POST", f"{PREFIX}/transfers", json=body_of(request))

    def transfers(self, **query: Any) -> Page[TransferView]:
        return self._read(Page[TransferView], "GET", f"{PREFIX}/transfers", params=query)

    def transfer(self, transfer_id: str) -> TransferView:
        return self._read(TransferView, "GET", f"{PREFIX}/transfers/{segment(transfer_id)}")

    def move_transfer(
        self,
        transfer_id: str,
        move: TransferMove,
        *,
        code: str | None = None,
        reason: str | None = None,
    ) -> TransferView:
        """``start`` (a held one, provider), ``suspend``, ``resume``, ``complete``,
        ``terminate``, with an optional code and reason."""
        body = {k: v for k, v in (("code", code), ("reason", reason)) if v is not None}
        path = f"{PREFIX}/transfers/{segment(transfer_id)}/{move}"
        return self._read(TransferView, "POST", path, json=body)

    # --- EDRs (endpoint data references) -------------------------------------------------

    def edrs(self, **query: Any) -> Page[EdrEntryView]:
        """The started pull transfers of this connector as the consumer, without tokens."""
        return self._read(Page[EdrEntryView], "GET", f"{PREFIX}/edrs", params=query)

    def edr(self, transfer_id: str) -> EdrView:
        """A started pull transfer's endpoint and token (refreshed by the connector first when
        it has expired or is about to)."""
        return self._read(EdrView, "GET", f"{PREFIX}/edrs/{segment(transfer_id)}")

    # --- held credentials -------------------------------------------------------------------

    def credentials(self, **query: Any) -> Page[HeldCredentialView]:
        path = f"{PREFIX}/credentials"
        return self._read(Page[HeldCredentialView], "GET", path, params=query)

    def remove_credential(self, credential_id: str) -> None:
        self._none("DELETE", f"{PREFIX}/credentials/{segment(credential_id)}")
