"""The one outbound destination policy: every address that someone else can make a Kexin service
call — a did:web host, a caller's Credential Service, a consumer's push endpoint — and every
HTTP data source is checked here before anything is sent.

The rules, for every destination:

- HTTPS; plain HTTP only where the service allows it (``did_web_allow_http``: local trials);
- no userinfo (``https://user:pass@host``) and no fragment; a host name of RFC 1123 labels or a
  canonical IP literal, never a numeric form that a resolver reads as IPv4 (``2130706433``,
  ``0x7f.1``, ``127.1``);
- IP literals only inside the allowed networks (``outbound_allowed_networks``); a host name
  whose addresses (checked at connect time, see :mod:`service.transport`) are private,
  loopback, link-local, unspecified, multicast or otherwise not global is refused unless they
  are in the allowed networks too. IPv4-mapped, 6to4 and NAT64 IPv6 addresses are judged by
  the IPv4 address inside them.

And for each kind:

- a Credential Service URL (taken from a caller's DID document) has no query string and lies
  on the DID's own host (any port), or on a host of ``credential_service_hosts``;
- a push endpoint lies on the host of the consumer's own did:web (any port): the host the
  consumer proved it controls by publishing its DID document there. A consumer without a
  did:web (``did:key``) has no such host and cannot be pushed to;
- an HTTP data source lies on one of the data holder's configured ``http_source_hosts``.

Pure: no I/O, no resolver; URLs are parsed with ``httpx.URL`` so that what is checked is
exactly what the HTTP client will send. The reasons given name the rule, never anything learnt
from the network.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import Final
from urllib.parse import unquote

import httpx

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

_LABEL: Final = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")
_NAT64: Final = ipaddress.IPv6Network("64:ff9b::/96")
_LOCALHOST: Final = (ipaddress.IPv4Address("127.0.0.1"), ipaddress.IPv6Address("::1"))
_CONTROL: Final = re.compile(r"[\x00-\x20\x7f-\x9f]")


class Purpose(StrEnum):
    DID_DOCUMENT = "did:web document"
    CREDENTIAL_SERVICE = "Credential Service"
    PUSH_ENDPOINT = "push endpoint"
    HTTP_SOURCE = "HTTP data source"
    CATALOGUE = "DSP catalogue"
    CALLBACK = "callback address"


class DestinationError(ValueError):
    """The destination is refused by the policy (before anything is sent)."""

    def __init__(self, purpose: Purpose, rule: str) -> None:
        super().__init__(f"{purpose.value} refused: {rule}")
        self.purpose = purpose
        self.rule = rule


def embedded_ipv4(address: IPAddress) -> IPAddress:
    """The IPv4 address inside an IPv4-mapped (``::ffff:a.b.c.d``), 6to4 (``2002::/16``) or
    NAT64 (``64:ff9b::/96``) IPv6 address, which is where such a packet goes; else itself."""
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return address.ipv4_mapped
        if address.sixtofour is not None:
            return address.sixtofour
        if address in _NAT64:
            return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return address


def check_host_name(value: str) -> str:
    """A host name of RFC 1123 labels (a setting naming a host), in lower case."""
    host = value.lower()
    if len(host) > 253 or not all(_LABEL.fullmatch(label) for label in host.split(".")):
        raise ValueError(f"{value!r} is not a host name")
    return host


def _host(url: httpx.URL) -> str:
    """The host as sent (IDNA-encoded, lower case; an IPv6 literal without brackets)."""
    return url.raw_host.decode("ascii", "replace").lower()


def did_web_host(did: str) -> str | None:
    """The host name of a did:web (lower case, without its port); None for other methods."""
    if not did.startswith("did:web:"):
        return None
    authority = unquote(did.removeprefix("did:web:").split(":", 1)[0])
    return authority.rsplit(":", 1)[0].lower() if ":" in authority else authority.lower()


@dataclass(frozen=True)
class Destinations:
    allow_http: bool = False
    """Plain HTTP as well as HTTPS (local trials on loopback or a private network only)."""
    allowed_networks: tuple[IPNetwork, ...] = ()
    """Where IP literals, and host names resolving to non-global addresses, may point."""
    credential_service_hosts: frozenset[str] = frozenset()
    """Hosts, besides the DID's own, where a caller's Credential Service may be."""

    @classmethod
    def of(
        cls,
        *,
        allow_http: bool,
        allowed_networks: Iterable[IPNetwork] = (),
        credential_service_hosts: Iterable[str] = (),
    ) -> Destinations:
        return cls(
            allow_http=allow_http,
            allowed_networks=tuple(allowed_networks),
            credential_service_hosts=frozenset(h.lower() for h in credential_service_hosts),
        )

    def _in_allowed_networks(self, address: IPAddress) -> bool:
        return any(
            a.version == n.version and a in n
            for a in (address, embedded_ipv4(address))
            for n in self.allowed_networks
        )

    def address_allowed(self, address: IPAddress) -> bool:
        """A global unicast address, or one inside the allowed networks."""
        if self._in_allowed_networks(address):
            return True
        target = embedded_ipv4(address)
        return target.is_global and not target.is_multicast

    def check(self, url: str, purpose: Purpose) -> httpx.URL:
        """The URL, parsed, when the rules for every destination admit it."""
        if _CONTROL.search(url) or "\\" in url:
            raise DestinationError(purpose, "a URL has no spaces, control characters or '\\'")
        try:
            parsed = httpx.URL(url)
            port = parsed.port
        except (httpx.InvalidURL, ValueError, TypeError):
            raise DestinationError(purpose, "not a URL") from None
        schemes = ("https", "http") if self.allow_http else ("https",)
        if parsed.scheme not in schemes:
            raise DestinationError(purpose, f"the scheme must be {' or '.join(schemes)}")
        if parsed.userinfo:
            raise DestinationError(purpose, "no user name or password in the URL")
        if parsed.fragment:
            raise DestinationError(purpose, "no fragment in the URL")
        if port is not None and not 0 < port < 65536:
            raise DestinationError(purpose, "the port must be 1 to 65535")
        self._check_host(_host(parsed), purpose)
        return parsed

    def _check_host(self, host: str, purpose: Purpose) -> None:
        if not host:
            raise DestinationError(purpose, "the URL has no host")
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            address = None
        if address is not None:
            if not self._in_allowed_networks(address):
                raise DestinationError(purpose, "an IP address outside the allowed networks")
            return
        labels = host.removesuffix(".").split(".")
        if len(host) > 253 or not all(_LABEL.fullmatch(label) for label in labels):
            raise DestinationError(purpose, "not a valid host name")
        if labels[-1].isdigit() or labels[-1].startswith("0x"):
            raise DestinationError(purpose, "a numeric host that is not a plain IP address")
        if labels[-1] == "localhost" and not any(self.address_allowed(a) for a in _LOCALHOST):
            raise DestinationError(purpose, "localhost is outside the allowed networks")

    def credential_service(self, endpoint: str, holder: str) -> httpx.URL:
        """A caller's Credential Service URL (from its DID document): no query string, on the
        DID's own host unless that host is allowed in ``credential_service_hosts``."""
        url = self.check(endpoint, Purpose.CREDENTIAL_SERVICE)
        if url.query:
            raise DestinationError(Purpose.CREDENTIAL_SERVICE, "no query string in its URL")
        host = _host(url)
        if host != did_web_host(holder) and host not in self.credential_service_hosts:
            raise DestinationError(
                Purpose.CREDENTIAL_SERVICE, "it is not on the host of the holder's DID"
            )
        return url

    def push_endpoint(self, endpoint: str, consumer: str) -> httpx.URL:
        """A consumer's push endpoint: on the host of its own did:web."""
        url = self.check(endpoint, Purpose.PUSH_ENDPOINT)
        own = did_web_host(consumer)
        if own is None or _host(url) != own:
            raise DestinationError(
                Purpose.PUSH_ENDPOINT, "it is not on the host of the consumer's did:web"
            )
        return url

    def http_source(self, url: str, hosts: Collection[str]) -> httpx.URL:
        """A data holder's HTTP backend: on one of the configured hosts (``host`` for any
        port, ``host:port`` for that port only)."""
        parsed = self.check(url, Purpose.HTTP_SOURCE)
        host = _host(parsed)
        port = parsed.port or (443 if parsed.scheme == "https" else 80)
        bracketed = f"[{host}]" if ":" in host else host
        configured = {h.lower() for h in hosts}
        if not configured & {host, bracketed, f"{bracketed}:{port}"}:
            raise DestinationError(Purpose.HTTP_SOURCE, "its host is not a configured source host")
        return parsed
