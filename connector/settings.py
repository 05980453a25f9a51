"""Connector settings, read from ``CONNECTOR_*`` environment variables or passed as keywords."""

from __future__ import annotations

import hashlib
import ipaddress
import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, SecretStr, model_validator
from pydantic_settings import SettingsConfigDict
from standardwebhooks.webhooks import EmptyWebhookSecretError
from standardwebhooks.webhooks import Webhook as StandardWebhook

from connector.catalog.domains import Domains, configured
from connector.faults import FaultSpec
from connector.webhooks import secret_key
from identity.credentials import CredentialType
from identity.did import DID, check_did
from policy.operands import Vocabulary
from service.destinations import check_host_name
from service.settings import LOCAL_AUTHORITY, ParticipantServiceSettings
from storage.engine import DatabaseURL

_PARTICIPANT_TOKEN = re.compile(r"[A-Za-z0-9._:%\-]{1,200}")


def _conformance_participant(value: str) -> str:
    """A DID, or an identifier without spaces or slashes (such as ``TCK_PARTICIPANT``)."""
    if value.startswith("did:"):
        return check_did(value)
    if not _PARTICIPANT_TOKEN.fullmatch(value):
        raise ValueError("the conformance participant is a DID or a plain identifier")
    return value


ConformanceParticipant = Annotated[str, AfterValidator(_conformance_participant)]


def _source_host(value: str) -> str:
    """``host``, ``host:port``, an IPv4 literal or a bracketed IPv6 literal, with a port or
    not: where HTTP data sources may be."""
    host, port = value, ""
    if value.startswith("["):
        host, _, rest = value[1:].partition("]")
        if rest and not rest.startswith(":"):
            raise ValueError(f"{value!r} is not host or host:port")
        port = rest[1:]
        ipaddress.IPv6Address(host)
    else:
        if ":" in value:
            host, port = value.rsplit(":", 1)
        try:
            ipaddress.IPv4Address(host)
        except ValueError:
            check_host_name(host)
    if port and not (port.isdigit() and 0 < int(port) < 65536):
        raise ValueError(f"{value!r}: the port must be 1 to 65535")
    return value.lower()


SourceHost = Annotated[str, AfterValidator(_source_host)]


def _chain_key(value: SecretStr) -> SecretStr:
    if not re.fullmatch(r"(0x)?[0-9a-fA-F]{64}", value.get_secret_value()):
        raise ValueError("a chain key is a secp256k1 private key: 64 hex digits")
    return value


ChainKey = Annotated[SecretStr, AfterValidator(_chain_key)]


def _absolute(value: Path) -> Path:
    if not value.is_absolute():
        raise ValueError(f"{value}: a data root is an absolute path")
    return value


DataRoot = Annotated[Path, AfterValidator(_absolute)]
PurposeName = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9-]{0,99}$")]
"""A purpose's name, as the shipped ones are written (``credit-assessment``)."""


DOMAIN_ID = r"^[a-z0-9]+(-[a-z0-9]+)*$"


class DomainEntry(BaseModel):
    """A deployment's own scenario domain."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)
    id: str = Field(min_length=1, max_length=100, pattern=DOMAIN_ID)
    name_zh: str = Field(alias="nameZh", min_length=1, max_length=100)
    name_en: str = Field(alias="nameEn", min_length=1, max_length=200)


def _off_or_at_least_a_second(value: float) -> float:
    if 0 < value < 1:
        raise ValueError("0 (off) or at least 1 second")
    return value


LEGACY_DATABASE = "connector.db"
"""The default database file of every connector before each had its own."""


def default_database_url(participant_id: str) -> str:
    """Each participant's own SQLite file in the working directory, named after its DID
    (``did:web:bank.example.cn``: ``connector-web_bank.example.cn.db``), so that two
    connectors started from one folder never share a database by default."""
    name = re.sub(r"[^A-Za-z0-9.-]+", "_", participant_id.removeprefix("did:")).strip("._")
    if len(name) > 80:
        name = f"{name[:60]}-{hashlib.sha256(participant_id.encode()).hexdigest()[:16]}"
    return f"sqlite:///connector-{name or 'participant'}.db"


class ConnectorSettings(ParticipantServiceSettings):
    @model_validator(mode="before")
    @classmethod
    def _own_database(cls, data: Any) -> Any:
        """No ``database_url``: the participant's own file (:func:`default_database_url`), or
        ``connector.db``, the default before it, when that is here and the own file is not (a
        connector upgraded in place keeps its keys and records; the database's owner check
        still refuses it to any other participant)."""
        if (
            isinstance(data, dict)
            and data.get("database_url") is None
            and isinstance(data.get("participant_id"), str)
        ):
            own = default_database_url(data["participant_id"])
            if Path(LEGACY_DATABASE).exists() and not Path(own.removeprefix("sqlite:///")).exists():
                own = f"sqlite:///{LEGACY_DATABASE}"
            return {**data, "database_url": own}
        return data

    @model_validator(mode="after")
    def _complete(self) -> ConnectorSettings:
        """Settings that only make sense together."""
        if self.scenario_domains is not None:
            self.domains  # noqa: B018 - a shipped id that does not exist is refused here
        if self.webhook_url is not None and self.webhook_secret is None:
            raise ValueError("webhook_url needs webhook_secret, which signs its events")
        if self.webhook_url is not None and not self.webhook_url.startswith(
            ("http://", "https://")
        ):
            raise ValueError("webhook_url must be an http(s) URL")
        if (self.broker_url is None) != (self.broker_id is None):
            raise ValueError("set broker_url and broker_id together")
        if self.broker_url is not None and not self.broker_url.startswith(("http://", "https://")):
            raise ValueError("broker_url must be an http(s) URL")
        if self.webhook_secret is not None:
            secret = self.webhook_secret.get_secret_value()
            try:
                StandardWebhook(secret_key(secret))
            except (ValueError, EmptyWebhookSecretError):
                raise ValueError("webhook_secret: a whsec_ secret must be base64") from None
        self.vocabulary  # noqa: B018 - an unknown broader purpose or a cycle is refused here
        if (self.conformance_token is None) != (self.conformance_participant_id is None):
            raise ValueError("set conformance_token and conformance_participant_id together")
        if self.matching_chunk_items * 40 + 8192 > self.max_body_bytes:
            raise ValueError(
                "a PSI message of matching_chunk_items items (40 bytes each and 8 KiB) must fit "
                "in max_body_bytes"
            )
        return self

    model_config = SettingsConfigDict(env_prefix="CONNECTOR_", frozen=True, extra="forbid")

    @classmethod
    def local_defaults(cls, given: dict[str, Any]) -> dict[str, Any]:
        """As every service, and trust the local authority (:data:`LOCAL_AUTHORITY`) for every
        credential type."""
        return {
            **super().local_defaults(given),
            "trusted_issuers": {kind.value: [LOCAL_AUTHORITY] for kind in CredentialType},
        }

    @property
    def conformance_mode(self) -> bool:
        return self.conformance_token is not None and self.conformance_participant_id is not None

    participant_id: DID
    """This participant's DID, e.g. ``did:web:bank.example.cn``; its DID document is served here."""
    port: int = Field(default=8181, ge=1, le=65535)
    database_url: DatabaseURL = "sqlite:///connector.db"
    """Unset: ``sqlite:///connector-<the DID, as a file name>.db`` (see
    :func:`default_database_url`); the value here is only for settings without a DID."""
    trusted_issuers: dict[CredentialType, list[DID]] = Field(default_factory=dict)
    """JSON: which issuers are trusted for which credential type. Empty: nobody is trusted."""
    required_credentials: list[CredentialType] = Field(
        default_factory=lambda: [CredentialType.MEMBERSHIP]
    )
    """What a calling participant must present before anything else is considered."""
    status_list_ttl_s: float = Field(default=60.0, gt=0)
    """How long revocation lists and verified presentations are cached."""
    management_api_key: SecretStr | None = Field(default=None, min_length=16)
    """Key for the management API (header X-Api-Key); unset, the management API refuses all."""
    catalog_page_size: int = Field(default=100, ge=1, le=1000)
    scenario_domains: list[str | DomainEntry] | None = None
    """JSON: the scenario domains an asset's ``domain`` must be one of. Unset: the city plan's
    14, shipped with Kexin (``connector/catalog/scenario-domains.json``). Set: a list of shipped
    ids and of the deployment's own domains as ``{"id": ..., "nameZh": ..., "nameEn": ...}``."""

    @property
    def domains(self) -> Domains:
        return configured(
            None
            if self.scenario_domains is None
            else [
                e if isinstance(e, str) else e.model_dump(by_alias=True)
                for e in self.scenario_domains
            ]
        )

    purposes: dict[PurposeName, PurposeName | None] = Field(default_factory=dict, max_length=500)
    """JSON: the deployment's own purposes of use besides Kexin's (``policy/purposes.json``),
    each with the broader purpose it is a form of or null, e.g. ``{"tax-audit":
    "regulatory-supervision"}``: what ``purpose isA`` judges by, and what the policy linter
    knows (it warns on any other purpose)."""

    @property
    def vocabulary(self) -> Vocabulary:
        return Vocabulary.extended(self.purposes)

    sql_sources: dict[str, DatabaseURL] = Field(default_factory=dict)
    """JSON: the databases a SQL data address may name (name -> URL); none by default."""
    data_roots: list[DataRoot] = Field(default_factory=list)
    """JSON: the directories a file data address may be in (after following symlinks); none
    by default, and then file data addresses are refused."""
    http_source_hosts: list[SourceHost] = Field(default_factory=list)
    """JSON: the hosts (``host`` for any port, ``host:port``) an HTTP data address may name;
    none by default, and then HTTP data addresses are refused."""
    webhook_url: str | None = None
    """Where the data holder's application hears of every state change (POST, JSON)."""
    webhook_secret: SecretStr | None = Field(default=None, min_length=16)
    """Signs each webhook the Standard Webhooks way (webhook-id, webhook-timestamp,
    webhook-signature): a ``whsec_<base64>`` secret, or any string whose bytes are the key;
    required with webhook_url, and for the callback addresses a negotiation or transfer started
    through the management API may name (set alone: those only)."""
    broker_url: str | None = Field(default=None, max_length=2000)
    """The broker's address (e.g. ``https://broker.example.cn``): it hears at once when an asset,
    a policy or a contract definition changes here, and the management API searches its
    catalogue. Unset: no notices, no search through a broker."""
    broker_id: DID | None = None
    """The broker's DID, the audience of this connector's tokens for it; set with broker_url."""
    conformance_token: SecretStr | None = Field(default=None, min_length=16)
    """Conformance-testing mode (off unless this and conformance_participant_id are set): this
    static bearer token stands for conformance_participant_id instead of DCP, so that an
    external test kit can play the other party. Never in production; logged loudly."""
    conformance_participant_id: ConformanceParticipant | None = None
    """Who the static token stands for: the test kit's own identifier (the Eclipse DSP TCK
    signs as ``TCK_PARTICIPANT``) or a DID."""
    conformance_credentials: list[CredentialType] = Field(
        default_factory=lambda: [CredentialType.MEMBERSHIP]
    )
    """JSON: the credential types the test kit's participant holds in conformance mode (as if
    verified), so that policies and the data plane's monitor judge it like a member."""
    transfer_approval: Literal["auto", "manual"] = "auto"
    """Provider side: start a transfer the agreement's policy admits at once, or hold it for a
    person to start."""
    negotiation_approval: Literal["auto", "manual"] = "auto"
    """Provider side: agree at once when the contract policy admits the consumer and finalize
    once the consumer verifies, or hold both steps for a person (approve, finalize)."""
    agreement_verification: Literal["auto", "manual"] = "auto"
    """Consumer side: verify an agreement that equals the offer at once, or wait for a person."""
    token_ttl_s: float = Field(default=300.0, ge=5, le=86_400)
    """How long a data-plane access token lives; the consumer refreshes it before then."""
    edr_refresh_margin_s: float = Field(default=30.0, ge=0, le=3600)
    """Consumer side: reading an EDR refreshes its token when it expires within this margin."""
    monitor_interval_s: float = Field(default=5.0, gt=0, le=3600)
    """How often the policy monitor re-decides running transfers and the duty clock runs."""
    delivery_deadline_s: float = Field(default=86_400.0, ge=1, le=30 * 86_400)
    """How long an outbound message is retried (peer down, 5xx) before it is given up and its
    process terminated (the termination is retried as long in its turn)."""
    delivery_backoff_s: float = Field(default=0.5, gt=0, le=60)
    """The first retry's wait after a failed delivery (peer down, 5xx); it doubles with each
    further failure, jittered, up to a minute."""
    resync_after_s: float = Field(default=3600.0, ge=1, le=30 * 86_400)
    """A process that heard nothing for this long, with nothing left to send, asks the other
    side how it stands and follows an end it missed."""
    contracts_timeout_s: float = Field(default=30.0, gt=0, le=600)
    """Data contracts API: how long one call waits for a negotiation and a transfer start."""
    contracts_match_max_body_bytes: int = Field(default=64 << 20, ge=1024, le=1 << 30)
    """The largest body of ``POST /contracts/v1/match`` (the application's identifiers as
    JSON, about 21 bytes each for credit codes: 64 MiB holds some three million); every other
    body is bounded by ``max_body_bytes``."""
    matching_dir: Path | None = None
    """Where the server setups of matching sets are kept, with the key of each data version
    (files ``0600``), so that a restart reuses them. Unset: in memory, computed again after a
    restart."""
    matching_fpr: float = Field(default=1e-6, gt=0, lt=1e-3)
    """Provider: the probability that a run finds any false positive, which each setup is
    sized for; consumer: the highest rate it accepts from a provider's setup. The GCS's hash
    range, max(server, client items) x client items / rate, must stay under 2^63: for 2^20
    items on both sides the rate is above 1.2e-7."""
    matching_max_client_items: int = Field(default=1 << 20, ge=1, le=1 << 24)
    """Provider: the largest consumer set a setup is sized for (a policy's ceiling may be
    lower; a larger run is refused)."""
    matching_chunk_items: int = Field(default=8192, ge=256, le=16_384)
    """Items in one PSI request or response message (a message is then about 36 bytes an item:
    8,192 items stay under 300 KiB, inside the body limit)."""
    matching_frames_per_answer: int = Field(default=16, ge=1, le=256)
    """Provider: PSI response frames in one HTTP answer (16 of 8,192 items: about 5 MiB); the
    consumer asks again for the rest."""
    matching_workers: int = Field(default=0, ge=0, le=64)
    """Worker processes for PSI (both roles; 0: one per core), started at the first run."""
    matching_max_runs: int = Field(default=4, ge=1, le=100)
    """Provider: matching runs open at once; more are refused (503 ``busy``) until one ends."""
    matching_run_idle_s: float = Field(default=120.0, gt=0, le=3600)
    """Provider: a run that hears nothing from its consumer for this long is ended."""
    matching_watch_s: Annotated[float, AfterValidator(_off_or_at_least_a_second)] = Field(
        default=60.0, ge=0, le=86_400
    )
    """Provider: how often the data of every matching set is looked at, so that the setup of a
    changed version is computed then and not by the next run (a file costs a ``stat``, a query
    runs again); 0: never (runs compute it)."""
    fault: FaultSpec | None = None
    """Test-only fault injection (connector.faults): ``delivered:<message kind>`` or
    ``committed:<action>`` kills this connector (SIGKILL) the first time it gets there, for the
    crash tests. Never in production; logged loudly when set."""
    ledger_batch_max_events: int = Field(default=1000, ge=1, le=100_000)
    """The ledger (connector/ledger.py): a batch of this participant's events is closed when it
    holds this many ..."""
    ledger_batch_max_age_s: float = Field(default=60.0, gt=0, le=86_400)
    """... or when its first event is this old."""
    ledger_interval_s: float = Field(default=1.0, gt=0, le=3600)
    """How often the ledger worker sequences new audit events, closes due batches, anchors
    and pushes them."""
    ledger_chain_url: str | None = Field(default=None, max_length=2000)
    """The EVM JSON-RPC node where batch roots are anchored. Unset: batches are signed and
    kept, not anchored (nor pushed)."""
    ledger_registry_address: str | None = Field(default=None, pattern=r"^0x[0-9a-fA-F]{40}$")
    """The data space's ``AnchorRegistry`` contract."""
    ledger_chain_key: ChainKey | None = None
    """This participant's chain account (secp256k1 private key, hex), registered in the
    contract by the operator. The key ring holds DID keys only: this key comes from the
    environment (a secret store)."""
    ledger_chain_timeout_s: float = Field(default=10.0, gt=0, le=300)
    ledger_confirmations: int = Field(default=0, ge=0, le=10_000)
    """Blocks mined after a batch's anchor before the batch is pushed to the ledger service:
    a reorganisation shallower than this never reaches the regulator (its anchors are sent
    again here first). 0 on chains whose blocks are final at once (QBFT, PBFT, anvil)."""
    ledger_url: str | None = Field(default=None, max_length=2000)
    """The regulator's ledger service: anchored batches are pushed to its
    ``/ledger/v1/batches`` with a DCP token. Unset: nothing is pushed."""
    ledger_id: DID | None = None
    """The ledger service's DID (the audience of the DCP token)."""

    @model_validator(mode="after")
    def _ledger_settings_together(self) -> ConnectorSettings:
        chain = (self.ledger_chain_url, self.ledger_registry_address, self.ledger_chain_key)
        if any(v is not None for v in chain) and self.ledger_registry_address is None:
            raise ValueError("ledger_chain_url and ledger_chain_key need ledger_registry_address")
        if self.ledger_registry_address is not None and self.ledger_chain_key is None:
            raise ValueError("ledger_registry_address needs ledger_chain_key")
        if (self.ledger_url is None) != (self.ledger_id is None):
            raise ValueError("ledger_url and ledger_id go together")
        if self.ledger_url is not None and self.ledger_registry_address is None:
            raise ValueError("pushing to ledger_url needs anchoring (ledger_registry_address)")
        return self
