"""The client address of a request: the TCP peer, or what a TRUSTED reverse proxy says.

Only when the peer is inside one of the ``--trusted-proxy`` networks is the forwarding header
read (``X-Forwarded-For`` by default, or RFC 7239 ``Forwarded``). Its entries are walked right
to left (the rightmost was added by the proxy nearest to us); entries that are themselves
trusted proxies are skipped, and the first other entry is the client. Every entry must parse as
an IP address: anything else (``unknown``, ``_hidden``, ``<script>``) ends the walk and the
last trusted hop is used instead, so a non-address never reaches the audit log or a limiter
key. docs/sharing.md "Behind a reverse proxy" has the nginx and Caddy configuration.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from backend.errors import ConfigError

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
LOOPBACK = ("127.0.0.0/8", "::1/128")
HEADERS = ("x-forwarded-for", "forwarded")
MAX_ENTRIES = 32  # a longer chain is not walked past this many hops


def parse_networks(values: Iterable[str]) -> tuple[Network, ...]:
    nets = []
    for value in values:
        try:
            nets.append(ipaddress.ip_network(value.strip(), strict=False))
        except ValueError:
            raise ConfigError(f"--trusted-proxy {value!r} is not an IP address or CIDR network",
                              hint="e.g. --trusted-proxy 127.0.0.1 10.0.0.0/8") from None
    return tuple(nets)


def normal_ip(text: str) -> str | None:
    """``text`` as a canonical IP address string, or None when it is not one."""
    text = text.strip()
    if not text or len(text) > 64 or not text.isascii():
        return None
    try:
        ip = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return str(ip.ipv4_mapped)
    return str(ip)


def _forwarded_for(value: str) -> list[str]:
    """The ``for=`` node of each element of a ``Forwarded`` header (RFC 7239), raw."""
    nodes = []
    for element in value.split(","):
        node = ""
        for pair in element.split(";"):
            name, _, val = pair.strip().partition("=")
            if name.strip().lower() == "for":
                node = val.strip()
        nodes.append(node)
    return nodes


def _node_ip(node: str) -> str | None:
    node = node.strip().strip('"')
    if node.startswith("["):  # "[2001:db8::1]:4711"
        node = node[1:].partition("]")[0]
    elif node.count(":") == 1:  # "192.0.2.43:4711"
        node = node.partition(":")[0]
    return normal_ip(node)


@dataclass(frozen=True)
class ProxyConfig:
    networks: tuple[Network, ...] = ()
    header: str = "x-forwarded-for"
    _cache: dict[str, bool] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def build(cls, trusted: Iterable[str] = (), header: str = "x-forwarded-for") -> ProxyConfig:
        header = header.lower()
        if header not in HEADERS:
            raise ConfigError(f"--proxy-header must be one of {', '.join(HEADERS)}")
        return cls(parse_networks(trusted), header)

    def trusted(self, address: str | None) -> bool:
        if not self.networks or address is None:
            return False
        hit = self._cache.get(address)
        if hit is None:
            try:
                ip = ipaddress.ip_address(address)
            except ValueError:
                hit = False
            else:
                if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
                    ip = ip.ipv4_mapped
                hit = any(ip in net for net in self.networks)
            if len(self._cache) < 4096:
                self._cache[address] = hit
        return hit

    def client(self, peer: str | None, headers: Mapping[str, str] | None) -> str:
        """The address limits and the audit log use for a request from ``peer``."""
        base = normal_ip(peer or "") or "unknown"
        if headers is None or not self.trusted(peer):
            return base
        getall = getattr(headers, "getall", None)
        values = getall(self.header, []) if getall else [headers.get(self.header, "")]
        if not values:
            return base
        joined = ",".join(v for v in values if v)
        raw = _forwarded_for(joined) if self.header == "forwarded" else joined.split(",")
        current = base
        for node in list(reversed(raw))[:MAX_ENTRIES]:
            ip = _node_ip(node) if self.header == "forwarded" else normal_ip(node)
            if ip is None:
                return current  # not an address: stop at the last hop we trust
            current = ip
            if not self.trusted(ip):
                return ip
        return current
