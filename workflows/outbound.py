"""Outbound HTTP for webhooks and run callbacks, refusing internal addresses.

Every hop (redirects included) is resolved and each resolved address checked: private,
loopback, link-local (cloud metadata), shared, reserved and multicast addresses are refused
unless `OUTBOUND_ALLOWED_HOSTS` lists the host, the address or its network. The connection
then goes to the checked address (the Host header and TLS name stay the URL's), so a DNS
answer that changes between the check and the request cannot redirect it inside.
"""

import ipaddress
import random
import socket
import time
from urllib.parse import urljoin, urlsplit

import httpx
from django.conf import settings

from workflows.steps.runtime import StepError

MAX_REDIRECTS = 5
RETRY_STATUSES = {429, 500, 502, 503, 504}


def _allowed(hostname: str, address) -> bool:
    for entry in settings.OUTBOUND_ALLOWED_HOSTS:
        if entry.lower() == hostname.lower():
            return True
        try:
            if address in ipaddress.ip_network(entry, strict=False):
                return True
        except ValueError:
            continue
    return False


def _is_public(address) -> bool:
    if getattr(address, "ipv4_mapped", None):
        address = address.ipv4_mapped
    return address.is_global and not address.is_multicast


def resolve_checked(url: str) -> tuple[str, str]:
    """The URL's host and an address it may be reached at, or StepError saying why not."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise StepError(f"Refused {url!r}: only http(s) URLs with a host are allowed.")
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        infos = socket.getaddrinfo(parts.hostname, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise StepError(f"Refused {url!r}: cannot resolve {parts.hostname!r} ({exc}).") from exc
    addresses = [ipaddress.ip_address(info[4][0].split("%")[0]) for info in infos]
    for address in addresses:
        if not _is_public(address) and not _allowed(parts.hostname, address):
            raise StepError(
                f"Refused {url!r}: {parts.hostname} resolves to the non-public address "
                f"{address} (allow it with OUTBOUND_ALLOWED_HOSTS)."
            )
    return parts.hostname, str(addresses[0])


def _pinned_request(client: httpx.Client, url: str, body: bytes, headers: dict):
    hostname, address = resolve_checked(url)
    parts = urlsplit(url)
    host_for_url = f"[{address}]" if ":" in address else address
    netloc = host_for_url + (f":{parts.port}" if parts.port else "")
    pinned = parts._replace(netloc=netloc).geturl()
    host_header = parts.hostname + (f":{parts.port}" if parts.port else "")
    request = client.build_request(
        "POST",
        pinned,
        content=body,
        headers={**headers, "Host": host_header},
        extensions={"sni_hostname": hostname} if parts.scheme == "https" else {},
    )
    return client.send(request, follow_redirects=False)


def post_json(url: str, body: bytes, headers: dict | None = None) -> httpx.Response:
    """POST `body` as JSON; retries 429/5xx and connection errors with backoff, follows
    redirects (checking each hop). Raises StepError when the attempts are spent."""
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "workflows-api/1",
        **(headers or {}),
    }
    attempts = settings.OUTBOUND_MAX_ATTEMPTS
    last_problem = ""
    with httpx.Client(timeout=settings.OUTBOUND_TIMEOUT_S) as client:
        for attempt in range(1, attempts + 1):
            target = url
            try:
                for _ in range(MAX_REDIRECTS + 1):
                    response = _pinned_request(client, target, body, headers)
                    if response.is_redirect and "location" in response.headers:
                        target = urljoin(target, response.headers["location"])
                        continue
                    break
                else:
                    raise StepError(f"POST {url}: more than {MAX_REDIRECTS} redirects.")
            except httpx.HTTPError as exc:
                last_problem = f"{exc.__class__.__name__}: {exc}"
            else:
                if response.status_code not in RETRY_STATUSES:
                    if response.status_code >= 400:
                        raise StepError(f"POST {url} answered {response.status_code}.")
                    return response
                last_problem = f"answered {response.status_code}"
            if attempt < attempts:
                time.sleep(
                    settings.OUTBOUND_BACKOFF_S * 2 ** (attempt - 1) * random.uniform(1, 1.5)
                )
    raise StepError(f"POST {url} failed after {attempts} attempts: {last_problem}.")
