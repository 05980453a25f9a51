"""What a data holder offers: assets, policy definitions, contract definitions (SQLModel tables
and their queries). A contract definition joins an access policy (who sees the offer in the
catalogue), a contract policy (what is agreed) and an asset selector."""

from __future__ import annotations

import json
import secrets
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Column, DateTime, String, Text
from sqlalchemy.engine import Engine
from sqlmodel import Field, Session, col, select

from connector.database import ConnectorBase


def new_revision() -> str:
    """A fresh random tag: an asset's revision changes at every write of its row."""
    return secrets.token_hex(16)


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
    legal_basis: str | None = Field(default=None, max_length=40)
    """PIPL article 13's basis for handling the personal information (a ``LegalBasis``)."""
    person_count: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True))
    """How many natural persons' information the data holds, as its holder states it."""
    region: str | None = Field(default=None, max_length=6, index=True)
    version: str | None = Field(default=None, max_length=50)
    registration_code: str | None = Field(default=None, max_length=100)
    """TC609's registration code (登记编码) of the data resource, when it is registered."""
    data_address: str = Field(sa_column=Column(Text, nullable=False))
    """JSON: where the data is (never shown in the catalogue)."""
    created_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    revision: str = Field(
        default_factory=new_revision,
        sa_column=Column(
            String(32),
            nullable=False,
            server_default="0",
            default=new_revision,
            onupdate=new_revision,
        ),
    )
    """Random, new whenever the row is written (inserted or updated, through the ORM or a Core
    statement): what a catalogue page's validator is built from. Random rather than a counter,
    so that an asset deleted and created again under its id never repeats a revision."""


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


def assets_page(engine: Engine, after: str | None, limit: int) -> Sequence[Asset]:
    """Up to ``limit`` assets in id order, those after the id ``after`` (keyset pagination: a
    page starts where the one before ended, whatever was added or removed before it)."""
    query = select(Asset).order_by(col(Asset.id)).limit(limit)
    if after is not None:
        query = query.where(col(Asset.id) > after)
    with Session(engine) as session:
        return session.exec(query).all()


def start_of_previous(engine: Engine, after: str, size: int) -> str | None:
    """Where the page before the one after ``after`` starts (the id it follows; None: it is
    the first page): the ``size`` assets up to ``after`` are that page."""
    query = (
        select(Asset.id)
        .where(col(Asset.id) <= after)
        .order_by(col(Asset.id).desc())
        .offset(size)
        .limit(1)
    )
    with Session(engine) as session:
        return session.exec(query).first()


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
