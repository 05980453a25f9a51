"""A small federated catalogue in Chinese and English: three providers, five datasets, stored
as the crawler stores them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.engine import Engine
from sqlmodel import Session

from broker.search.messages import CrawledDataset, parse_dataset
from broker.search.store import replace_provider

BUREAU = "did:web:bureau.test"
HOSPITAL = "did:web:hospital.test"
TRAFFIC = "did:web:traffic.test"
T0 = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)


def dataset(
    provider: str,
    dataset_id: str,
    titles: list[str],
    *,
    description: list[str] | None = None,
    keywords: list[str] | None = None,
    domain: str,
    grade: str,
    region: str,
    personal: bool = False,
    version: str | None = None,
    registration_code: str | None = None,
) -> CrawledDataset:
    node: dict[str, Any] = {
        "@id": dataset_id,
        "@type": "Dataset",
        "title": titles,
        "description": description or [],
        "keyword": keywords or [],
        "kexin:domain": domain,
        "kexin:dataGrade": grade,
        "kexin:region": region,
        "kexin:personalInformation": personal,
        "hasPolicy": [
            {
                "@id": f"urn:offer:{dataset_id}",
                "@type": "Offer",
                "assigner": provider,
                "permission": [{"action": "use"}],
            }
        ],
        "distribution": [
            {"@type": "Distribution", "format": "HttpData-PULL", "accessService": f"{provider}#dsp"}
        ],
    }
    if version is not None:
        node["version"] = version
    if registration_code is not None:
        node["kexin:registrationCode"] = registration_code
    return parse_dataset(node, provider)


FIRM_LIST = dataset(
    BUREAU, "urn:kexin:asset:firm-list", ["广州市企业名单", "Guangzhou enterprise list"],
    description=["市场主体登记信息 含统一社会信用代码。Registered market entities."],
    keywords=["企业", "工商"], domain="economic-development", grade="important",
    region="440106", version="2026.1", registration_code="GZ-SJ-2026-0001",
)  # fmt: skip
AIR = dataset(
    BUREAU, "urn:kexin:asset:air", ["空气质量监测数据", "Air quality monitoring"],
    description=["各监测站点每小时的空气质量 附近道路交通情况不在其中"],
    domain="ecological-environment", grade="general", region="440100",
)  # fmt: skip
VISITS = dataset(
    HOSPITAL, "urn:kexin:asset:visits", ["门诊就诊记录", "Outpatient visits"],
    description=["含患者个人信息"], domain="healthcare", grade="core", region="440300",
    personal=True,
)  # fmt: skip
FLOW = dataset(
    TRAFFIC, "urn:kexin:asset:flow", ["道路交通流量", "Road traffic flow"],
    keywords=["交通"], domain="traffic-management", grade="general", region="440104",
)  # fmt: skip
PERMITS = dataset(
    TRAFFIC, "urn:kexin:asset:permits", ["货车通行证", "Truck permits"],
    description=["企业货车的通行证"], domain="traffic-management", grade="general",
    region="440000",
)  # fmt: skip


def store(engine: Engine) -> None:
    """Each provider crawled at its own time: the bureau first, the traffic police last."""
    with Session(engine) as session:
        replace_provider(session, BUREAU, "https://bureau.test/dsp", [FIRM_LIST, AIR], T0)
        replace_provider(
            session, HOSPITAL, "https://hospital.test/dsp", [VISITS], T0 + timedelta(hours=1)
        )
        replace_provider(
            session, TRAFFIC, "https://traffic.test/dsp", [FLOW, PERMITS], T0 + timedelta(hours=2)
        )
        session.commit()
