"""The outbound destination policy, on its own: the addresses an attacker named in the attack run
(did:web IP literals, a Credential Service with a query string or on another host, a push to
anyone's URL, any HTTP backend) are refused before anything is sent."""

from __future__ import annotations

import ipaddress

import pytest

from service.destinations import (
    DestinationError,
    Destinations,
    Purpose,
    did_web_host,
    embedded_ipv4,
)

STRICT = Destinations()
LOOPBACK = Destinations.of(allow_http=True, allowed_networks=[ipaddress.ip_network("127.0.0.0/8")])
BANK = "did:web:bank.example.cn"


@pytest.mark.parametrize(
    "url",
    [
        pytest.param("https://0.0.0.0/did.json", id="unspecified"),
        pytest.param("https://169.254.169.254/latest/meta-data", id="cloud metadata"),
        pytest.param("https://10.1.2.3/did.json", id="10/8"),
        pytest.param("https://192.168.1.1/did.json", id="192.168/16"),
        pytest.param("https://127.0.0.1:8282/admin", id="loopback"),
        pytest.param("https://[::1]/did.json", id="IPv6 loopback"),
        pytest.param("https://[::ffff:127.0.0.1]/did.json", id="IPv4-mapped loopback"),
        pytest.param("https://[fe80::1]/did.json", id="IPv6 link-local"),
        pytest.param("https://8.8.8.8/did.json", id="a public IP literal, not allowed either"),
        pytest.param("https://2130706433/did.json", id="127.0.0.1 as one number"),
        pytest.param("https://0x7f.1/did.json", id="hexadecimal"),
        pytest.param("https://127.1/did.json", id="short dotted form"),
        pytest.param("https://localhost:8282/admin", id="localhost"),
        pytest.param("https://api.localhost/", id="a localhost subdomain"),
    ],
)
def test_ip_literals_and_local_names_are_refused_unless_allowed(url: str) -> None:
    with pytest.raises(DestinationError):
        STRICT.check(url, Purpose.DID_DOCUMENT)


@pytest.mark.parametrize(
    "url",
    ["http://127.0.0.1:8101/bank/did.json", "http://[::ffff:127.0.0.1]:1/x", "http://localhost/x"],
)
def test_an_allowed_network_admits_its_addresses(url: str) -> None:
    assert LOOPBACK.check(url, Purpose.DID_DOCUMENT).port in (8101, 1, None)


@pytest.mark.parametrize(
    ("url", "rule"),
    [
        ("http://bank.example.cn/did.json", "scheme"),
        ("ftp://bank.example.cn/did.json", "scheme"),
        ("https://user:secret@bank.example.cn/", "user name"),
        ("https://bank.example.cn/#x", "fragment"),
        ("https://bank.example.cn\\@evil.example/", "control characters or"),
        ("https://bank.example.cn/a b", "spaces"),
        ("https://CV\u008eD/", "control"),
        ("https://bank_example.cn/", "host name"),
        ("https://bank.example.cn:70000/", "port"),
    ],
)
def test_every_destination_is_https_without_userinfo(url: str, rule: str) -> None:
    with pytest.raises(DestinationError, match=rule):
        STRICT.check(url, Purpose.HTTP_SOURCE)


def test_plain_http_only_where_allowed() -> None:
    assert Destinations(allow_http=True).check("http://bank.example.cn/x", Purpose.DID_DOCUMENT)
    assert STRICT.check("https://bank.example.cn/x", Purpose.DID_DOCUMENT).host == "bank.example.cn"


@pytest.mark.parametrize(
    "address",
    [
        "0.0.0.0", "127.0.0.1", "10.0.0.1",  # noqa: S104 - an address to refuse "172.16.0.1", "192.168.0.1", "169.254.169.254",
        "100.64.0.1", "224.0.0.1", "255.255.255.255", "::", "::1", "fe80::1", "fc00::1",
        "ff02::1", "::ffff:10.0.0.1", "::ffff:127.0.0.1", "2002:7f00:1::", "64:ff9b::a00:1",
    ],
)  # fmt: skip
def test_non_global_addresses_are_refused_at_connect_time(address: str) -> None:
    assert not STRICT.address_allowed(ipaddress.ip_address(address))


def test_global_addresses_and_allowed_networks_are_admitted() -> None:
    assert STRICT.address_allowed(ipaddress.ip_address("8.8.8.8"))
    assert STRICT.address_allowed(ipaddress.ip_address("2606:4700::1111"))
    assert LOOPBACK.address_allowed(ipaddress.ip_address("127.0.0.1"))
    assert LOOPBACK.address_allowed(ipaddress.ip_address("::ffff:127.0.0.1"))
    assert not LOOPBACK.address_allowed(ipaddress.ip_address("::1"))


def test_the_ipv4_inside_an_ipv6_address_is_where_it_goes() -> None:
    for wrapped in ("::ffff:10.0.0.1", "2002:a00:1::", "64:ff9b::a00:1"):
        assert embedded_ipv4(ipaddress.ip_address(wrapped)) == ipaddress.ip_address("10.0.0.1")


def test_a_credential_service_is_on_its_dids_host_without_a_query() -> None:
    ok = STRICT.credential_service("https://bank.example.cn:8443/cs", BANK)
    assert str(ok) == "https://bank.example.cn:8443/cs"
    with pytest.raises(DestinationError, match="query"):
        STRICT.credential_service("https://bank.example.cn/cs?x=/admin/credentials", BANK)
    with pytest.raises(DestinationError, match="host of the holder"):
        STRICT.credential_service("https://sink.example.org/cs", BANK)
    with pytest.raises(DestinationError, match="host of the holder"):
        STRICT.credential_service("https://bank.example.cn/cs", "did:key:z6MkhaXgBZD")
    hosted = Destinations.of(allow_http=False, credential_service_hosts=["Wallet.Example.org"])
    assert hosted.credential_service("https://wallet.example.org/bank/cs", BANK)


def test_a_push_goes_only_to_the_consumers_own_host() -> None:
    assert STRICT.push_endpoint("https://bank.example.cn:9000/inbox?batch=1", BANK)
    with pytest.raises(DestinationError, match="consumer's did:web"):
        STRICT.push_endpoint("https://broker.example.cn/admin/credentials", BANK)
    with pytest.raises(DestinationError, match="consumer's did:web"):
        STRICT.push_endpoint("https://bank.example.cn/inbox", "did:key:z6MkhaXgBZD")
    with pytest.raises(DestinationError):  # its own host, but loopback: not allowed here
        STRICT.push_endpoint("https://127.0.0.1/inbox", "did:web:127.0.0.1%3A8101:bank")


def test_an_http_source_is_on_a_configured_host() -> None:
    hosts = ("warehouse.example.cn", "files.example.cn:8443")
    assert STRICT.http_source("https://warehouse.example.cn:9/a", hosts)
    assert STRICT.http_source("https://files.example.cn:8443/a", hosts)
    for url in ("https://files.example.cn/a", "https://other.example.cn/a"):
        with pytest.raises(DestinationError, match="configured source host"):
            STRICT.http_source(url, hosts)
    with pytest.raises(DestinationError):  # configured, but loopback is not an allowed network
        STRICT.http_source("https://127.0.0.1:8282/admin/credentials", ("127.0.0.1",))


@pytest.mark.parametrize(
    ("did", "host"),
    [
        ("did:web:bank.example.cn", "bank.example.cn"),
        ("did:web:127.0.0.1%3A8101:bank", "127.0.0.1"),
        ("did:web:Bank.Example.cn:users:alice", "bank.example.cn"),
        ("did:key:z6MkhaXgBZD", None),
    ],
)
def test_the_host_of_a_did_web(did: str, host: str | None) -> None:
    assert did_web_host(did) == host
