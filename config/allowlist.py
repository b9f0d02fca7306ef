"""Entries of `OUTBOUND_ALLOWED_HOSTS`: a host name, an address or a network, each optionally
with a port (`localhost:9000`, `10.0.0.5:443`, `[::1]:8080`). Without a port an entry opens
every port of what it names."""

import ipaddress
from typing import NamedTuple


class AllowedHost(NamedTuple):
    host: str | None  # a host name, lower case
    network: ipaddress.IPv4Network | ipaddress.IPv6Network | None
    port: int | None

    def admits(self, hostname: str, address, port: int) -> bool:
        if self.port is not None and self.port != port:
            return False
        if self.host is not None:
            return self.host == hostname.lower()
        return address.version == self.network.version and address in self.network


def _port(text: str) -> int:
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise ValueError(f"{text!r} is not a port (1-65535)")
    return int(text)


def parse_allowed_host(entry: str) -> AllowedHost:
    """Raises ValueError for what is neither a host, an address nor a network."""
    target, port = entry.strip(), None
    if target.startswith("["):  # [IPv6] or [IPv6]:port
        inside, _, rest = target[1:].partition("]")
        if rest:
            if not rest.startswith(":"):
                raise ValueError(f"{entry!r}: expected [address]:port")
            port = _port(rest[1:])
        target = inside
    elif target.count(":") == 1:  # host:port, address:port or network:port
        target, port_text = target.split(":")
        port = _port(port_text)
    try:
        return AllowedHost(None, ipaddress.ip_network(target, strict=False), port)
    except ValueError:
        pass
    label = target.lower().rstrip(".")
    if not label or not all(
        part and len(part) <= 63 and part.replace("-", "").isalnum() and part.isascii()
        for part in label.split(".")
    ):
        raise ValueError(f"{entry!r} is neither a host name, an address nor a network")
    return AllowedHost(label, None, port)
