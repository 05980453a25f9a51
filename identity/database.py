"""The identity tables, kept in the database of whichever service hosts a participant's identity
(connector or broker), with their own migrations and version table."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from sqlalchemy import Column, DateTime, LargeBinary, Text
from sqlalchemy.orm import registry
from sqlmodel import Field, SQLModel

from storage.migrate import Migrations


class IdentityBase(SQLModel, registry=registry()):
    """Base of the identity tables."""


class KeyRecord(IdentityBase, table=True):
    """A participant's key; the private half only wrapped (see :mod:`identity.keys`)."""

    __tablename__ = "identity_key"

    id: int | None = Field(default=None, primary_key=True)
    key_id: str = Field(max_length=100, unique=True)
    """The fragment of the verification method id (``key-1``)."""
    key_type: str = Field(max_length=20)
    kdf: str = Field(max_length=20)
    """How the key is wrapped: ``scrypt`` (then AES-256-GCM), or ``pkcs8`` (written before
    scrypt; re-wrapped when the ring is next loaded)."""
    kdf_params: str = Field(sa_column=Column(Text, nullable=False))
    """JSON: the KDF's parameters and salt (``{"n", "r", "p", "salt", "length"}``)."""
    wrapped_key: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    """The nonce and AES-256-GCM ciphertext of the PKCS#8 key (``pkcs8``: its encrypted PEM)."""
    created_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    retired_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True)))


class SeenToken(IdentityBase, table=True):
    """A self-issued token's jti, kept until the token expires: the replay cache."""

    __tablename__ = "identity_seen_token"

    issuer: str = Field(primary_key=True, max_length=2048)
    jti: str = Field(primary_key=True, max_length=200)
    expires_at: datetime = Field(
        sa_column=Column(DateTime(timezone=True), nullable=False, index=True)
    )


class HeldCredential(IdentityBase, table=True):
    """A credential issued to this participant, as received from its issuer."""

    __tablename__ = "identity_held_credential"

    id: str = Field(primary_key=True, max_length=500)
    credential_type: str = Field(max_length=100, index=True)
    issuer: str = Field(max_length=2048)
    payload: str = Field(sa_column=Column(Text, nullable=False))
    received_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    expires_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))


def migrations() -> Migrations:
    return Migrations(
        name="identity",
        versions_dir=Path(__file__).parent / "migrations",
        metadata=IdentityBase.metadata,
        version_table="identity_alembic_version",
    )
