"""Catalog protocol messages of DSP 2025-1, and the Catalog and Dataset we answer with
(``shared/dsp/2025-1/schemas/catalog``). Datasets never show a data address: only metadata,
offers and how to reach the connector."""

from __future__ import annotations

import json
from typing import Any, ClassVar

from pydantic import Field

from connector.catalog.domains import ScenarioDomain
from connector.catalog.store import Asset
from connector.protocol import DSP_CONTEXT, DspMessage


class CatalogRequestMessage(DspMessage):
    TYPE: ClassVar[str] = "CatalogRequestMessage"

    filter: list[Any] | None = None


class DatasetRequestMessage(DspMessage):
    TYPE: ClassVar[str] = "DatasetRequestMessage"

    dataset: str = Field(min_length=1, max_length=300)


def data_service(participant: str, endpoint_url: str) -> dict[str, str]:
    return {"@id": f"{participant}#dsp", "@type": "DataService", "endpointURL": endpoint_url}


def dataset(
    asset: Asset,
    offers: list[dict[str, Any]],
    service_id: str,
    domain: ScenarioDomain | None = None,
) -> dict[str, Any]:
    """A DCAT dataset: metadata of the asset, its offers, one HTTP pull distribution; its
    scenario domain by id and by its Chinese and English names."""
    address = json.loads(asset.data_address)
    titles = [t for t in (asset.title_zh, asset.title_en) if t]
    descriptions = [d for d in (asset.description_zh, asset.description_en) if d]
    document: dict[str, Any] = {"@id": asset.id, "@type": "Dataset"}
    if titles:
        document["title"] = titles[0] if len(titles) == 1 else titles
    if descriptions:
        document["description"] = descriptions
    keywords = json.loads(asset.keywords)
    if keywords:
        document["keyword"] = keywords
    document.update(
        {
            "kexin:dataGrade": asset.data_grade,
            "kexin:personalInformation": asset.personal_information,
            "hasPolicy": offers,
            "distribution": [
                {
                    "@type": "Distribution",
                    # a matching set is matched through the data plane, never downloaded
                    "format": "PSI-PULL" if "matching" in address else "HttpData-PULL",
                    "accessService": service_id,
                }
            ],
        }
    )
    for key, value in (
        ("kexin:domain", asset.domain),
        ("kexin:region", asset.region),
        ("version", asset.version),
        ("kexin:registrationCode", asset.registration_code),
    ):
        if value is not None:
            document[key] = value
    if domain is not None:
        document["kexin:domainName"] = [
            {"@value": domain.name_zh, "@language": "zh"},
            {"@value": domain.name_en, "@language": "en"},
        ]
    return document


def catalog(participant: str, endpoint_url: str, datasets: list[dict[str, Any]]) -> dict[str, Any]:
    document: dict[str, Any] = {
        "@context": [DSP_CONTEXT],
        "@id": f"{participant}#catalog",
        "@type": "Catalog",
        "participantId": participant,
        "service": [data_service(participant, endpoint_url)],
    }
    if datasets:  # the schema wants at least one dataset, or no "dataset" at all
        document["dataset"] = datasets
    return document
