"""Settings every service that hosts a participant's identity reads (connector, broker).

Each service subclasses this with its own ``env_prefix`` and its own defaults for ``port`` and
``database_url``.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, Field, IPvAnyNetwork, SecretStr
from pydantic_settings import BaseSettings

from identity.keys import MIN_PASSPHRASE_CHARS, OWASP_SCRYPT, KeyType, ScryptCost
from service.destinations import Destinations, check_host_name
from storage.engine import DatabaseURL

HostName = Annotated[str, AfterValidator(check_host_name)]
MIN_SCRYPT_LOG2_N = 15
"""The least cost accepted from settings (N=2^15: about 0.1 s here)."""


class ParticipantServiceSettings(BaseSettings):
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
