"""Settings every service that hosts a participant's identity reads (connector, broker).

Each service subclasses this with its own ``env_prefix`` and its own defaults for ``port`` and
``database_url``.
"""

from __future__ import annotations

import logging
from enum import StrEnum
from typing import Annotated, Any, Final

from pydantic import AfterValidator, Field, IPvAnyNetwork, SecretStr, model_validator
from pydantic_settings import BaseSettings

from identity.keys import MIN_PASSPHRASE_CHARS, OWASP_SCRYPT, KeyType, ScryptCost
from service.destinations import Destinations, check_host_name
from storage.engine import DatabaseURL

HostName = Annotated[str, AfterValidator(check_host_name)]
MIN_SCRYPT_LOG2_N = 15
"""The least cost accepted from settings (N=2^15: about 0.1 s here)."""


class Profile(StrEnum):
    """``KEXIN_PROFILE``: a bundle of defaults. Only ``local`` exists: a trial on one machine."""

    LOCAL = "local"


PROFILE_VARIABLE: Final = "KEXIN_PROFILE"
LOCAL_AUTHORITY: Final = "did:web:127.0.0.1%3A8282:authority"
"""The data-space authority of a local trial: a broker on its default address (127.0.0.1:8282)."""
LOCAL_NETWORKS: Final = ("127.0.0.0/8", "::1/128")
LOCAL_WARNING: Final = (
    "KEXIN_PROFILE=local IS ON: plain HTTP, loopback destinations and the local authority "
    "are trusted. For a trial on one machine only; never run a real deployment like this."
)


class ProfiledSettings(BaseSettings):
    """Settings that read ``KEXIN_PROFILE`` (one variable for every service, without the
    service's prefix). With ``local``, each service fills in the loopback conveniences it
    knows (:meth:`local_defaults`) for every setting the environment or the caller left
    unset; a setting given explicitly always wins. Without it nothing changes."""

    profile: Profile | None = Field(default=None, validation_alias="KEXIN_PROFILE")
    """``local``: the loopback conveniences of a trial on one machine (logged loudly)."""

    @classmethod
    def local_defaults(cls, given: dict[str, Any]) -> dict[str, Any]:
        """What ``local`` sets when not given (``given``: what was)."""
        return {}

    @model_validator(mode="before")
    @classmethod
    def _profile_defaults(cls, data: Any) -> Any:
        if not isinstance(data, dict) or data.get(PROFILE_VARIABLE) != Profile.LOCAL.value:
            return data
        return {**cls.local_defaults(data), **data}

    def warn_profile(self, log: logging.Logger) -> None:
        """At start: say loudly that a trial profile is on."""
        if self.profile is Profile.LOCAL:
            log.warning(LOCAL_WARNING)


class ParticipantServiceSettings(ProfiledSettings):
    host: str = "127.0.0.1"
    port: int = Field(ge=1, le=65535)
    public_url: str | None = None
    """Where others reach this service; default ``http://{host}:{port}``."""
    database_url: DatabaseURL
    migrate_on_start: bool = True
    """Bring the database schemas to the newest revision when the app starts; when false, the
    app refuses to start on an old schema and names the command to run."""
    key_passphrase: SecretStr = Field(min_length=MIN_PASSPHRASE_CHARS)
    """Encrypts the participant's private keys at rest."""
    key_scrypt_log2_n: int = Field(default=OWASP_SCRYPT.log2_n, ge=MIN_SCRYPT_LOG2_N, le=20)
    """scrypt's cost for the key passphrase: N = 2**this (r=8, p=1). The default, 17, is
    OWASP's (about 0.5 s and 128 MiB, once per start); 15 and 16 cost a quarter and a half."""
    key_type: KeyType = KeyType.ED25519
    """Ed25519 or P-256, for keys generated from now on (existing keys stay until rotated)."""
    did_web_allow_http: bool = False
    """Plain HTTP, not only HTTPS, for did:web and every outbound destination (Credential
    Services, push endpoints, HTTP data sources): local trials only."""
    outbound_allowed_networks: list[IPvAnyNetwork] = Field(default_factory=list)
    """JSON: networks that outbound destinations may be in although their addresses are not
    global (loopback, private, link-local ...), and the only ones IP literals may name; e.g.
    ``["127.0.0.0/8"]`` for a trial on loopback. Empty: global addresses only."""
    credential_service_hosts: list[HostName] = Field(default_factory=list)
    """JSON: hosts where a caller's Credential Service may be besides its DID's own host."""
    http_timeout_s: float = Field(default=10.0, gt=0)
    max_body_bytes: int = Field(default=1 << 20, ge=1024)

    @classmethod
    def local_defaults(cls, given: dict[str, Any]) -> dict[str, Any]:
        """Plain HTTP and loopback destinations (every participant of the trial is on it)."""
        return {"did_web_allow_http": True, "outbound_allowed_networks": list(LOCAL_NETWORKS)}

    @property
    def destinations(self) -> Destinations:
        """The outbound destination policy these settings make."""
        return Destinations.of(
            allow_http=self.did_web_allow_http,
            allowed_networks=self.outbound_allowed_networks,
            credential_service_hosts=self.credential_service_hosts,
        )

    @property
    def key_cost(self) -> ScryptCost:
        return ScryptCost(self.key_scrypt_log2_n, OWASP_SCRYPT.r, OWASP_SCRYPT.p)

    @property
    def base_url(self) -> str:
        return (self.public_url or f"http://{self.host}:{self.port}").rstrip("/")
