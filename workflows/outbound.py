"""Outbound HTTP for webhooks and run callbacks, refusing internal addresses.

A URL is checked when a workflow or a run is created (`url_problem`: http(s), a host, a valid
port, no credentials) and again before every request. Its host is resolved and each address
checked: private, loopback, link-local (cloud metadata), shared, reserved, multicast and
site-local addresses are refused, and so is every IPv6 form that carries an IPv4 address
(mapped, compatible, SIIT, NAT64, 6to4, Teredo) whose IPv4 address would be refused, unless
an `OUTBOUND_ALLOWED_HOSTS` entry admits the host (or the address, or its network) and the
port. The connection then goes to a checked address (the Host header and TLS name stay the
URL's), so a DNS answer that changes between the check and the request cannot send it inside;
to the next one when an address refuses the connection.

Redirects are not followed: a 3xx is a failed delivery, as most webhook senders treat it (a
redirect would carry the body and its signature wherever it points). One attempt has one
deadline, `OUTBOUND_TIMEOUT_S`, for connecting, sending and the whole answer, and at most
MAX_ANSWER_BYTES of the answer are read: a receiver can neither hold a worker with an answer
that drips in nor fill its memory with one that never ends. The host's lookup before it has
OUTBOUND_TIMEOUT_S too.
"""

import contextlib
import ipaddress
import random
import re
import socket
import threading
import time
from concurrent.futures import Future
from typing import NamedTuple
from urllib.parse import urlsplit

import httpx
from django.conf import settings

from config.allowlist import parse_allowed_host
from workflows.steps.runtime import StepError

MAX_ANSWER_BYTES = 64 * 1024
RETRY_STATUSES = {429, 500, 502, 503, 504}

# IPv6 prefixes whose last 32 bits are an IPv4 address the packet ends up at: IPv4-compatible
# (::/96, deprecated but still routed by some stacks), IPv4-mapped, SIIT (RFC 2765) and NAT64
# (RFC 6052). 6to4 and Teredo are decoded by `ipaddress` itself.
_CARRY_IPV4 = [
    ipaddress.ip_network(net)
    for net in ("::/96", "::ffff:0:0/96", "::ffff:0:0:0/96", "64:ff9b::/96")
]
# Never public: local-use NAT64 (RFC 8215, any embedding) and site-local (deprecated, but
# still routed inside some networks).
_REFUSED_IPV6 = [ipaddress.ip_network(net) for net in ("64:ff9b:1::/48", "fec0::/10")]


class Answer(NamedTuple):
    """What a receiver answered: its status and the start of its body."""

    status_code: int
    body: bytes


def display_url(url: str) -> str:
    """The URL as logs and messages show it: without any `user:password@`."""
    return re.sub(r"^([A-Za-z][A-Za-z0-9+.-]*://)[^/?#@]*@", r"\1", url)


def url_problem(url: str) -> str | None:
    """Why `url` cannot be a webhook or callback URL, or None. Checked at create time and
    before each request (a stored workflow may predate a check)."""
    try:
        parts = urlsplit(url)
    except ValueError as exc:  # brackets around what is no IPv6 address: `http://[::1/`
        return f"This is not a URL: {exc}."
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return "Must be an http:// or https:// URL with a host."
    if "@" in parts.netloc:
        # Credentials in the URL would be logged and shown wherever the URL is; a receiver
        # that needs a credential can verify the signature instead.
        return "Must not contain credentials (user:password@); sign with `secret` instead."
    try:
        port = parts.port
    except ValueError:
        return "The port must be a number from 1 to 65535."
    if port == 0:
        return "The port must be a number from 1 to 65535."
    try:
        host, _ = _ascii_netloc(url)
    except httpx.InvalidURL as exc:  # a host no IDNA spelling fits (a label too long, ...)
        return f"The host cannot be sent to: {exc}."
    if not (_HOST_NAME.fullmatch(host) or _is_address(host)):
        # A space, a quote, braces: no DNS name has them, and the send could only fail.
        return f"The host {parts.hostname!r} is neither a domain name nor an IP address."
    return None


# A host name as DNS carries it (ASCII, after IDNA): labels of letters, digits, `-` and `_`.
_HOST_NAME = re.compile(r"[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*\.?")


def _is_address(host: str) -> bool:
    try:
        ipaddress.ip_address(host.replace("%25", "%"))  # an IPv6 zone (`fe80::1%25eth0`)
    except ValueError:
        return False
    return True


def _ascii_netloc(url: str) -> tuple[str, str]:
    """The URL's host and its host[:port] as sent on the wire: an internationalised name in
    its IDNA (punycode) spelling, `bücher.example` as `xn--bcher-kva.example` (a header, the
    TLS server name and DNS carry ASCII only)."""
    parsed = httpx.URL(url)
    return parsed.raw_host.decode("ascii"), parsed.netloc.decode("ascii")


def _embedded_ipv4(address: ipaddress.IPv6Address) -> list[ipaddress.IPv4Address]:
    found = [v4 for v4 in (address.ipv4_mapped, address.sixtofour) if v4 is not None]
    if address.teredo:
        found += address.teredo  # the relay and the client
    if any(address in net for net in _CARRY_IPV4):
        found.append(ipaddress.IPv4Address(int(address) & 0xFFFFFFFF))
    return found


def is_public(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if address.version == 6:
        if address.is_site_local or any(address in net for net in _REFUSED_IPV6):
            return False
        if not all(is_public(v4) for v4 in _embedded_ipv4(address)):
            return False
    return address.is_global and not address.is_multicast


def _allowed(hostname: str, address, port: int) -> bool:
    return any(
        parse_allowed_host(entry).admits(hostname, address, port)
        for entry in settings.OUTBOUND_ALLOWED_HOSTS
    )


def _look_up(hostname: str, port: int) -> Future:
    """The host's addresses, looked up in a thread of its own so that the caller's wait ends
    at OUTBOUND_TIMEOUT_S: the system resolver tries each DNS server and search domain in
    turn (minutes when a server is down), and a lookup cannot be interrupted. One past its
    time finishes in its (daemon) thread, which holds up no worker's exit."""
    found: Future = Future()

    def look_up() -> None:
        try:
            found.set_result(socket.getaddrinfo(hostname, port, type=socket.SOCK_STREAM))
        except Exception as exc:  # handed to the caller, which names it
            found.set_exception(exc)

    threading.Thread(target=look_up, name="outbound-dns", daemon=True).start()
    return found


class Target(NamedTuple):
    hostname: str
    addresses: tuple[str, ...]  # the checked addresses a connection may go to, in order
    port: int


def resolve_checked(url: str) -> Target:
    """The URL's host, the addresses it may be reached at and its port, or StepError saying
    why not."""
    shown = display_url(url)
    problem = url_problem(url)
    if problem:
        raise StepError(f"Refused {shown!r}: {problem}")
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    hostname, _ = _ascii_netloc(url)
    try:
        infos = _look_up(hostname, port).result(timeout=settings.OUTBOUND_TIMEOUT_S)
    except (socket.gaierror, UnicodeError) as exc:
        raise StepError(f"Refused {shown!r}: cannot resolve {parts.hostname!r} ({exc}).") from exc
    except TimeoutError as exc:
        raise StepError(
            f"Refused {shown!r}: cannot resolve {parts.hostname!r} within "
            f"{settings.OUTBOUND_TIMEOUT_S:g} s."
        ) from exc
    addresses = [ipaddress.ip_address(info[4][0].split("%")[0]) for info in infos]
    for address in addresses:
        if not is_public(address) and not _allowed(parts.hostname, address, port):
            raise StepError(
                f"Refused {shown!r}: {parts.hostname} resolves to the non-public address "
                f"{address} (allow it, or it with port {port}, in OUTBOUND_ALLOWED_HOSTS)."
            )
    return Target(hostname, tuple(dict.fromkeys(str(address) for address in addresses)), port)


class _AttemptDeadline:
    """One deadline for a whole attempt. httpx's timeouts bound each network operation, so
    an answer arriving a byte at a time never trips them; at the deadline this shuts the
    connection's socket, which ends the read or write waiting on it at once."""

    def __init__(self, seconds: float):
        self.expired = False
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._timer = threading.Timer(seconds, self._expire)
        self._timer.daemon = True

    def trace(self, event: str, info: dict) -> None:
        """httpcore's `trace` extension: learns the socket once it is connected."""
        if event != "connection.connect_tcp.complete":
            return
        sock = info["return_value"].get_extra_info("socket")
        with self._lock:
            self._sockets.append(sock)
            if self.expired:
                _shut(sock)

    def _expire(self) -> None:
        with self._lock:
            self.expired = True
            for sock in self._sockets:
                _shut(sock)

    def __enter__(self):
        self._timer.start()
        return self

    def __exit__(self, *exc_info):
        self._timer.cancel()


def _shut(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):  # already closed
        sock.shutdown(socket.SHUT_RDWR)


def _attempt(client: httpx.Client, url: str, body: bytes, headers: dict) -> Answer:
    """One attempt, to the first of the checked addresses that takes the connection: one
    that refuses it (a dual-stack host's IPv6 this machine cannot reach, a server of a pool
    that is down) has been sent nothing, and the next is tried, within the one deadline."""
    target = resolve_checked(url)
    problem: httpx.HTTPError | None = None
    with _AttemptDeadline(settings.OUTBOUND_TIMEOUT_S) as deadline:
        for address in target.addresses:
            try:
                return _send(client, url, target, address, body, headers, deadline)
            except httpx.ConnectError as exc:
                problem = exc
                if deadline.expired:
                    break
            except httpx.HTTPError as exc:
                problem = exc
                break
        if deadline.expired:
            raise httpx.TimeoutException(
                f"no complete answer within {settings.OUTBOUND_TIMEOUT_S:g} s"
            ) from problem
        raise problem


def _send(client, url, target: Target, address: str, body, headers, deadline) -> Answer:
    parts = urlsplit(url)
    host = f"[{address}]" if ":" in address else address
    pinned = parts._replace(netloc=host + (f":{parts.port}" if parts.port else "")).geturl()
    extensions = {"trace": deadline.trace}
    if parts.scheme == "https":
        extensions["sni_hostname"] = target.hostname
    request = client.build_request(
        "POST",
        pinned,
        content=body,
        headers={**headers, "Host": _ascii_netloc(url)[1]},
        extensions=extensions,
    )
    response = client.send(request, stream=True, follow_redirects=False)
    try:
        answer = bytearray()
        for chunk in response.iter_raw():
            answer += chunk[: MAX_ANSWER_BYTES - len(answer)]
            if len(answer) >= MAX_ANSWER_BYTES:
                break  # enough to know it answered; the rest is not read
    finally:
        response.close()
    return Answer(response.status_code, bytes(answer))


def post_json(url: str, body: bytes, headers: dict | None = None) -> Answer:
    """POST `body` as JSON; retries 429/5xx, timeouts and connection errors with backoff.
    Raises StepError for a refused URL, a 3xx or another 4xx, and when the attempts are
    spent. Messages never show the URL's credentials."""
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "workflows-api/1",
        "Accept-Encoding": "identity",  # the answer's size is bounded as it is sent
        **(headers or {}),
    }
    shown = display_url(url)
    attempts = settings.OUTBOUND_MAX_ATTEMPTS
    last_problem = ""
    # Each phase may take the whole budget; the attempt's deadline bounds them together.
    with httpx.Client(timeout=settings.OUTBOUND_TIMEOUT_S, trust_env=False) as client:
        for attempt in range(1, attempts + 1):
            try:
                answer = _attempt(client, url, body, headers)
            except httpx.HTTPError as exc:
                last_problem = f"{exc.__class__.__name__}: {exc}"
            else:
                status = answer.status_code
                if 300 <= status < 400:
                    raise StepError(f"POST {shown} answered {status}: redirects are not followed.")
                if status not in RETRY_STATUSES:
                    if status >= 400:
                        raise StepError(f"POST {shown} answered {status}.")
                    return answer
                last_problem = f"answered {status}"
            if attempt < attempts:
                time.sleep(
                    settings.OUTBOUND_BACKOFF_S * 2 ** (attempt - 1) * random.uniform(1, 1.5)
                )
    raise StepError(f"POST {shown} failed after {attempts} attempts: {last_problem}.")
