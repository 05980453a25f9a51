"""The Eclipse DSP TCK's configuration for a Kexin connector in conformance mode: the kit's
property names and our ids (datasets, offers, agreements) for every scenario. ``properties``
gives them; ``render`` writes them as the kit's ``.properties`` file (docs/conformance.md shows
one, and a test checks that it is current)."""

from __future__ import annotations

from typing import Final

from connector.conformance.fixtures import dataset_offer_id
from connector.conformance.scenarios import (
    ABSENT_DATASET,
    CATALOG_DATASETS,
    NEGOTIATIONS,
    TRANSFERS,
)

PULL: Final = "HttpData-PULL"


def _key(prefix: str, scenario_id: str) -> str:
    """``CN`` and ``ACN0102`` -> ``CN_01_02``."""
    return f"{prefix}_{scenario_id[-4:-2]}_{scenario_id[-2:]}"


def properties(
    cut_root: str, kit_callback: str, authorization: str, agent_id: str
) -> dict[str, str]:
    """The kit's configuration: ``cut_root`` is the connector's public URL, ``kit_callback``
    where the kit listens, ``authorization`` the header value it sends (``Bearer <token>``),
    ``agent_id`` the connector's participant id."""
    root = cut_root.rstrip("/")
    config = {
        "dataspacetck.dsp.local.connector": "false",
        "dataspacetck.callback.address": kit_callback.rstrip("/"),
        "dataspacetck.dsp.connector.agent.id": agent_id,
        "dataspacetck.dsp.connector.http.url": f"{root}/dsp",
        "dataspacetck.dsp.connector.http.base.url": root,
        "dataspacetck.dsp.connector.http.headers.authorization": authorization,
        "dataspacetck.dsp.connector.negotiation.initiate.url": (
            f"{root}/conformance/negotiations/initiate"
        ),
        "dataspacetck.dsp.connector.transfer.initiate.url": (
            f"{root}/conformance/transfers/initiate"
        ),
    }
    for dataset in (*CATALOG_DATASETS, ABSENT_DATASET):
        config[f"{_key('CAT', dataset)}_DATASETID"] = dataset
    for dataset in NEGOTIATIONS:
        if dataset.startswith("ACNC"):
            config[f"{_key('CN_C', dataset)}_DATASETID"] = dataset
        else:
            config[f"{_key('CN', dataset)}_DATASETID"] = dataset
            config[f"{_key('CN', dataset)}_OFFERID"] = dataset_offer_id(dataset)
    for agreement in TRANSFERS:
        prefix = "TP_C" if agreement.startswith("ATPC") else "TP"
        config[f"{_key(prefix, agreement)}_AGREEMENTID"] = agreement
        config[f"{_key(prefix, agreement)}_FORMAT"] = PULL
    return config


def render(config: dict[str, str]) -> str:
    return "".join(f"{name}={value}\n" for name, value in config.items())
