"""What a data holder offers: assets, policy definitions, contract definitions (SQLModel tables
and their queries). A contract definition joins an access policy (who sees the offer in the
catalogue), a contract policy (what is agreed) and an asset selector."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Column, DateTime, Text
from sqlalchemy.engine import Engine
from sqlmodel import Field, Session, col, select

from connector.database import ConnectorBase


class Asset(ConnectorBase, table=True):
    __tablename__ = "asset"

    id: str = Field(primary_key=True, max_length=300)
    title_zh: str | None = Field(default=None, max_length=300)
    title_en: str | None = Field(default=None, max_length=300)
    description_zh: str | None = Field(default=None, sa_column=Column(Text))
    description_en: str | None = Field(default=None, sa_column=Column(Text))
    keywords: str = Field(default="[]", sa_column=Column(Text, nullable=False))
    """JSON list of strings."""
    domain: str | None = Field(default=None, max_length=100, index=True)
    data_grade: str = Field(max_length=20, index=True)
    personal_information: bool = False
    region: str | None = Field(default=None, max_length=6, index=True)
    version: str | None = Field(default=None, max_length=50)
    data_address: str = Field(sa_column=Column(Text, nullable=False))
    """JSON: where the data is (never shown in the catalogue)."""
    created_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))


class PolicyDefinition(ConnectorBase, table=True):
    __tablename__ = "policy_definition"

    id: str = Field(primary_key=True, max_length=300)
    policy: str = Field(sa_column=Column(Text, nullable=False))
    """JSON: an ODRL policy in the 2025-1 compact form, linted when stored."""
    created_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))


class ContractDefinition(ConnectorBase, table=True):
    __tablename__ = "contract_definition"

    id: str = Field(primary_key=True, max_length=300)
    access_policy_id: str = Field(foreign_key="policy_definition.id", max_length=300)
    contract_policy_id: str = Field(foreign_key="policy_definition.id", max_length=300)
    asset_selector: str = Field(sa_column=Column(Text, nullable=False))
    """JSON: {"assetIds": [...]} or criteria {"domain": ..., "region": ..., "dataGrade": ...};
    an empty object selects every asset."""
    created_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))

    def selects(self, asset: Asset) -> bool:
        selector: dict[str, Any] = json.loads(self.asset_selector)
        ids = selector.get("assetIds")
        if ids is not None and asset.id not in ids:
            return False
        return all(
            getattr(asset, attribute) == selector[key]
            for key, attribute in (
                ("domain", "domain"),
                ("region", "region"),
                ("dataGrade", "data_grade"),
            )
            if key in selector
        )


def assets_page(engine: Engine, offset: int, limit: int) -> Sequence[Asset]:
    with Session(engine) as session:
        return session.exec(select(Asset).order_by(col(Asset.id)).offset(offset).limit(limit)).all()


def contract_definitions(
    engine: Engine,
) -> Sequence[tuple[ContractDefinition, PolicyDefinition, PolicyDefinition]]:
    """Every contract definition with its access and contract policies."""
    with Session(engine) as session:
        definitions = session.exec(
            select(ContractDefinition).order_by(col(ContractDefinition.id))
        ).all()
        policies = {p.id: p for p in session.exec(select(PolicyDefinition)).all()}
        return [
            (d, policies[d.access_policy_id], policies[d.contract_policy_id]) for d in definitions
        ]
