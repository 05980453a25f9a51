"""Scenario domains: the city plan's 14 (广东省省域治理“一网统管”提升行动方案, 附件《城市数字化治理
典型场景领域》), shipped with Kexin as data (``scenario-domains.json``, a copy of
``shared/reference/scenario-domains.json``, which a test compares) and the default list an
asset's ``domain`` must come from. The plan says "not limited to": a deployment may give its own
list in settings (``CONNECTOR_SCENARIO_DOMAINS``), naming shipped ids and adding its own."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any


@dataclass(frozen=True)
class ScenarioDomain:
    id: str
    name_zh: str
    name_en: str

    def names(self) -> dict[str, str]:
        return {"zh": self.name_zh, "en": self.name_en}


@cache
def shipped() -> tuple[ScenarioDomain, ...]:
    """The plan's 14 domains, in the plan's order."""
    text = resources.files("connector.catalog").joinpath("scenario-domains.json").read_text("utf-8")
    return tuple(
        ScenarioDomain(d["id"], d["nameZh"], d["nameEn"]) for d in json.loads(text)["domains"]
    )


class Domains:
    """The domains of a deployment, by id."""

    def __init__(self, domains: Iterable[ScenarioDomain]) -> None:
        self._by_id = {domain.id: domain for domain in domains}

    def __iter__(self) -> Iterator[ScenarioDomain]:
        return iter(self._by_id.values())

    def __contains__(self, domain_id: object) -> bool:
        return domain_id in self._by_id

    def get(self, domain_id: str | None) -> ScenarioDomain | None:
        return None if domain_id is None else self._by_id.get(domain_id)

    def ids(self) -> list[str]:
        return list(self._by_id)

    def view(self) -> list[dict[str, Any]]:
        return [{"id": d.id, "nameZh": d.name_zh, "nameEn": d.name_en} for d in self]


def configured(entries: list[str | dict[str, str]] | None) -> Domains:
    """``None``: the 14 shipped. Otherwise each entry is a shipped id or ``{"id", "nameZh",
    "nameEn"}`` of the deployment's own; an unknown id is refused (ValueError)."""
    if entries is None:
        return Domains(shipped())
    known = {domain.id: domain for domain in shipped()}
    chosen: list[ScenarioDomain] = []
    for entry in entries:
        if isinstance(entry, str):
            if entry not in known:
                raise ValueError(
                    f"{entry!r} is not one of the shipped scenario domains ({', '.join(known)}); "
                    'give a domain of your own as {"id": ..., "nameZh": ..., "nameEn": ...}'
                )
            chosen.append(known[entry])
        else:
            chosen.append(ScenarioDomain(entry["id"], entry["nameZh"], entry["nameEn"]))
    return Domains(chosen)
