import ipaddress
import socket
import threading

import pytest
from django.core.exceptions import ImproperlyConfigured

from config.allowlist import parse_allowed_host
from tests.servers import start_receiver
from workflows.outbound import MAX_ANSWER_BYTES, display_url, is_public, post_json, resolve_checked
from workflows.steps.runtime import StepError


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/",
        "http://localhost:8000/",
        "http://[::1]/",
        "http://[::ffff:127.0.0.1]/",
        "http://2130706433/",  # 127.0.0.1 as a decimal number
        "http://0177.0.0.1/",  # octal
        "http://0x7f.1/",
        "http://169.254.169.254/latest/meta-data/",  # cloud metadata
        "http://[fe80::1]/",
        "http://10.1.2.3/",
        "http://192.168.0.1/",
        "http://172.16.0.1/",
        "http://100.64.0.1/",  # shared address space
        "http://0.0.0.0/",
        "ftp://example.com/",
        "http:///nohost",
    ],
)
def test_internal_and_odd_urls_are_refused(url, settings):
    settings.OUTBOUND_ALLOWED_HOSTS = []
    with pytest.raises(StepError, match="Refused"):
        resolve_checked(url)


@pytest.mark.parametrize(
    "address",
    [
        "64:ff9b::a9fe:a9fe",  # NAT64 of 169.254.169.254
        "64:ff9b::7f00:1",  # NAT64 of 127.0.0.1
        "64:ff9b:1::a9fe:a9fe",  # local-use NAT64
        "64:ff9b:1:a9fe:a9:fe00::",  # local-use NAT64, /56 embedding
        "2002:a9fe:a9fe::",  # 6to4 of 169.254.169.254
        "2002:0a00:0001::1",  # 6to4 of 10.0.0.1
        "::a9fe:a9fe",  # IPv4-compatible
        "::7f00:1",
        "::ffff:0:7f00:1",  # SIIT (IPv4-translated)
        "::ffff:a9fe:a9fe",  # IPv4-mapped
        "2001:0:4136:e378:8000:63bf:f5ff:fffe",  # Teredo of a client at 10.0.0.1
        "fec0::1",  # site-local
        "fec0:1234::a9fe:a9fe",
        "ff02::1",  # multicast
    ],
)
def test_ipv6_forms_of_refused_addresses_are_refused(address, settings):
    settings.OUTBOUND_ALLOWED_HOSTS = []
    assert not is_public(ipaddress.ip_address(address))
    with pytest.raises(StepError, match="non-public address"):
        resolve_checked(f"http://[{address}]/hook")


@pytest.mark.parametrize(
    "address",
    ["2606:4700:4700::1111", "64:ff9b::808:808", "2002:808:808::1", "8.8.8.8", "1.1.1.1"],
)
def test_public_addresses_and_their_ipv6_forms_pass(address):
    assert is_public(ipaddress.ip_address(address))  # NAT64 and 6to4 of 8.8.8.8 included


def test_allowed_hosts_open_an_exception(settings):
    settings.OUTBOUND_ALLOWED_HOSTS = ["127.0.0.1"]
    assert resolve_checked("http://127.0.0.1:9/")[:2] == ("127.0.0.1", ("127.0.0.1",))
    settings.OUTBOUND_ALLOWED_HOSTS = ["10.0.0.0/8"]
    assert resolve_checked("http://10.1.2.3/").addresses == ("10.1.2.3",)


@pytest.mark.parametrize(
    ("entry", "allowed", "refused"),
    [
        ("localhost:9000", "http://localhost:9000/x", "http://localhost:8000/x"),
        ("127.0.0.1:9000", "http://127.0.0.1:9000/x", "http://127.0.0.1:9001/x"),
        ("127.0.0.0/8:443", "https://127.0.0.5/x", "http://127.0.0.5/x"),  # 80 is not 443
        ("[::1]:9000", "http://[::1]:9000/x", "http://[::1]:9001/x"),
    ],
)
def test_an_allow_entry_with_a_port_opens_that_port_only(entry, allowed, refused, settings):
    settings.OUTBOUND_ALLOWED_HOSTS = [entry]
    assert resolve_checked(allowed)
    with pytest.raises(StepError, match="non-public address"):
        resolve_checked(refused)


@pytest.mark.parametrize(
    "entry", ["localhost:99999", "localhost:", "host:port", "[::1]9000", "bad host", "a..b"]
)
def test_a_malformed_allow_entry_fails_at_start_naming_the_variable(entry, monkeypatch):
    with pytest.raises(ValueError):
        parse_allowed_host(entry)
    monkeypatch.setenv("OUTBOUND_ALLOWED_HOSTS", f"127.0.0.1,{entry}")
    import importlib

    import config.settings.workflows as module

    with pytest.raises(ImproperlyConfigured, match="OUTBOUND_ALLOWED_HOSTS"):
        importlib.reload(module)
    monkeypatch.delenv("OUTBOUND_ALLOWED_HOSTS")
    importlib.reload(module)


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_a_redirect_is_a_failed_delivery_and_is_not_followed(status, receiver, settings):
    """Even to an allowed port of an allowed host: a 307 would carry the body and its
    signature there."""
    other, other_server = start_receiver()
    try:
        settings.OUTBOUND_ALLOWED_HOSTS = [receiver.url.removeprefix("http://"), "127.0.0.1"]
        receiver.redirect_status, receiver.redirect_to = status, other.url + "/internal"
        with pytest.raises(StepError, match=f"answered {status}: redirects are not followed"):
            post_json(receiver.url, b'{"signed": true}', {"webhook-signature": "v1,x"})
        assert len(receiver.requests) == 1  # a redirect is not retried either
        assert other.requests == []
    finally:
        other_server.shutdown()


def test_a_redirect_to_the_metadata_address_is_not_followed(receiver, allow_loopback):
    receiver.redirect_to = "http://169.254.169.254/latest/meta-data/"
    with pytest.raises(StepError, match="answered 302"):
        post_json(receiver.url, b"{}")
    assert len(receiver.requests) == 1


def test_a_good_answer_is_read_and_returned(receiver, allow_loopback):
    answer = post_json(receiver.url, b"{}")
    assert (answer.status_code, answer.body) == (200, b"{}")


@pytest.mark.parametrize("size", [MAX_ANSWER_BYTES * 4, 200 * 1024 * 1024])
def test_a_huge_answer_is_read_only_as_far_as_the_bound(size, receiver, allow_loopback):
    receiver.answer_bytes = size
    answer = post_json(receiver.url, b"{}")
    assert answer.status_code == 200
    assert len(answer.body) == MAX_ANSWER_BYTES
    if size > 64 * 1024 * 1024:
        # The receiver could write only what the socket buffers held once the client left.
        assert receiver.sent < 32 * 1024 * 1024, receiver.sent


@pytest.mark.parametrize("where", ["headers", "body"])
def test_an_answer_that_drips_in_is_cut_at_one_deadline_per_attempt(
    where, receiver, allow_loopback, settings
):
    """A byte every 0.2 s never trips a per-read timeout of 1 s; the attempt's deadline
    does, long before the 60 bytes are out."""
    settings.OUTBOUND_TIMEOUT_S = 1
    settings.OUTBOUND_MAX_ATTEMPTS = 2
    receiver.drip = (where, 60, 0.2)
    with pytest.raises(StepError, match=r"after 2 attempts: .*no complete answer within 1 s"):
        post_json(receiver.url, b"{}")
    assert len(receiver.requests) == 2
    assert receiver.sent < 60


@pytest.mark.parametrize(
    "url",
    [
        "http://alice:pa55@127.0.0.1/x",
        "http://alice@127.0.0.1/x",
        "https://:pa55@example.com/x",
        "http://alice:pa55@127.0.0.1:99999/x",
    ],
)
def test_credentials_in_a_url_are_refused_and_never_shown(url, receiver, allow_loopback):
    with pytest.raises(StepError) as refused:
        post_json(url, b"{}")
    assert "pa55" not in refused.value.message and "alice" not in refused.value.message
    assert "credentials" in refused.value.message
    assert receiver.requests == []


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("http://user:pa55@host/x", "http://host/x"),
        ("https://u@host:8443/x?q=a@b", "https://host:8443/x?q=a@b"),
        ("http://host/x@y", "http://host/x@y"),
    ],
)
def test_display_url_drops_only_the_userinfo(url, shown):
    assert display_url(url) == shown


@pytest.mark.parametrize("url", ["http://127.0.0.1:99999/x", "http://127.0.0.1:0/x"])
def test_an_invalid_port_is_a_refusal_not_a_crash(url, allow_loopback):
    with pytest.raises(StepError, match="port must be a number from 1 to 65535"):
        post_json(url, b"{}")


def test_an_internationalised_host_is_sent_to_by_its_idna_name(receiver, settings, monkeypatch):
    """`bücher.example` goes on the wire as `xn--bcher-kva.example` (DNS, the Host header,
    TLS's server name carry ASCII only): the webhook is delivered, not crashed on."""
    settings.OUTBOUND_ALLOWED_HOSTS = ["127.0.0.1"]
    asked = []
    real = socket.getaddrinfo

    def loopback(host, *args, **kwargs):
        asked.append(host)
        return real("127.0.0.1", *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", loopback)
    port = receiver.url.rsplit(":", 1)[1].rstrip("/")
    answer = post_json(f"http://bücher.example:{port}/hook", b"{}")
    assert answer.status_code == 200
    [received] = receiver.requests
    assert received.headers["Host"] == f"xn--bcher-kva.example:{port}"
    assert asked[0] == "xn--bcher-kva.example"  # then httpx connects to the checked address


def test_a_host_whose_first_address_refuses_is_reached_at_its_next(receiver, settings, monkeypatch):
    """A name with several addresses (a dual-stack host whose IPv6 this worker cannot reach,
    a pool with one server down): every attempt connected to the first address alone, so the
    webhook failed though the receiver was up at the next one. The attempt now goes on to
    the next checked address when one refuses the connection."""
    settings.OUTBOUND_ALLOWED_HOSTS = ["127.0.0.0/8"]
    real = socket.getaddrinfo

    def two_addresses(host, *args, **kwargs):
        if host != "hooks.example":
            return real(host, *args, **kwargs)
        # 127.0.0.2 is loopback too, where the receiver (bound to 127.0.0.1) is not listening.
        return real("127.0.0.2", *args, **kwargs) + real("127.0.0.1", *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", two_addresses)
    port = receiver.url.rsplit(":", 1)[1].rstrip("/")
    answer = post_json(f"http://hooks.example:{port}/hook", b"{}")
    assert answer.status_code == 200
    [received] = receiver.requests  # delivered once, at the second address
    assert received.headers["Host"] == f"hooks.example:{port}"


def test_a_lookup_that_hangs_ends_at_the_attempt_s_deadline(receiver, settings, monkeypatch):
    """The system resolver tries each DNS server and search domain in turn, minutes when a
    server is down; the lookup ran before the attempt's deadline started, and held the send
    (and the worker's chunk) for as long. It now ends at OUTBOUND_TIMEOUT_S, naming the host."""
    settings.OUTBOUND_ALLOWED_HOSTS = ["127.0.0.1"]
    settings.OUTBOUND_TIMEOUT_S = 1
    released = threading.Event()
    real = socket.getaddrinfo

    def hanging(host, *args, **kwargs):
        if host != "slow-dns.example":
            return real(host, *args, **kwargs)
        released.wait(timeout=60)  # the resolver's answer, long after the deadline
        return real("127.0.0.1", *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", hanging)
    port = receiver.url.rsplit(":", 1)[1].rstrip("/")
    try:
        with pytest.raises(StepError, match=r"cannot resolve 'slow-dns\.example' within 1 s"):
            post_json(f"http://slow-dns.example:{port}/hook", b"{}")
    finally:
        released.set()
    assert not receiver.requests


def test_a_host_no_idna_name_fits_is_refused_when_the_url_is_given(api, product_type):
    url = "http://" + "a" * 70 + "ü.example/hook"
    step = {"id": "hook", "type": "notify", "config": {"channel": "webhook", "url": url}}
    body = {"name": "w", "entityTypeId": product_type.pk, "steps": [step]}
    response = api.post("/api/v1/workflows", body)
    assert response.status_code == 400, response.json()
    [detail] = response.json()["error"]["details"]
    assert detail["field"] == "steps[0].config.url" and "cannot be sent to" in detail["message"]
