"""Which IP addresses loadbay may reach: public ones, and those LOADBAY_FETCH_ALLOW permits;
how a host name is resolved to them (with or without a deadline)."""

from __future__ import annotations

import ipaddress
import re
import socket
import threading
from dataclasses import dataclass
from typing import Any

from loadbay.errors import FetchError
from loadbay.fetcher.deadline import Deadline

__all__ = ["AllowList", "IPAddress", "is_public_address", "literal_address", "resolve"]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
HOSTNAME = re.compile(r"^[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?(\.[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?)*$")


@dataclass(frozen=True)
class AllowList:
    """Hosts and IP networks that may be fetched even though they are not public."""

    hosts: frozenset[str] = frozenset()
    networks: tuple[IPNetwork, ...] = ()

    @classmethod
    def parse(cls, text: str) -> AllowList:
        """Read LOADBAY_FETCH_ALLOW: host names, IPs and CIDRs separated by commas or spaces."""
        hosts: set[str] = set()
        networks: list[IPNetwork] = []
        for entry in re.split(r"[,\s]+", text.strip()):
            if entry:
                _add_entry(entry, hosts, networks)
        return cls(frozenset(hosts), tuple(networks))

    def permits(self, host: str, address: IPAddress) -> bool:
        """True if `host` is listed by name or `address` lies in a listed IP/CIDR."""
        if _normalize_host(host) in self.hosts:
            return True
        return any(a in net for a in _with_embedded(address) for net in self.networks)


def _add_entry(entry: str, hosts: set[str], networks: list[IPNetwork]) -> None:
    try:
        networks.append(ipaddress.ip_network(entry.strip("[]"), strict=False))
        return
    except ValueError:
        pass
    host = _normalize_host(entry)
    if not HOSTNAME.match(host):
        raise ValueError(f"LOADBAY_FETCH_ALLOW entry {entry!r} is neither a host name nor an IP address/CIDR")
    hosts.add(host)


def _normalize_host(host: str) -> str:
    return host.strip().lower().rstrip(".")


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def _with_embedded(address: IPAddress) -> list[IPAddress]:
    embedded = _embedded_ipv4(address) if isinstance(address, ipaddress.IPv6Address) else None
    return [address] if embedded is None else [address, embedded]


def _is_plainly_global(address: IPAddress) -> bool:
    return address.is_global and not (
        address.is_multicast
        or address.is_reserved
        or address.is_link_local
        or address.is_loopback
        or address.is_private
        or address.is_unspecified
        or (isinstance(address, ipaddress.IPv6Address) and address.is_site_local)  # (fec0::/10)
    )


def is_public_address(address: IPAddress) -> bool:
    """True if `address` is globally routable, and so is any IPv4 address embedded in it."""
    embedded = _embedded_ipv4(address) if isinstance(address, ipaddress.IPv6Address) else None
    if embedded is not None:
        return _is_plainly_global(embedded)
    return _is_plainly_global(address)


def literal_address(host: str) -> IPAddress | None:
    """The IP address `host` is itself, in any form the resolver reads as one: IPv6 (in
    brackets), IPv4 dotted, or as `inet_aton` reads it (`127.1`, `2130706433`, `0x7f000001`);
    None for a name."""
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        pass
    try:
        return ipaddress.IPv4Address(socket.inet_aton(host))
    except OSError:
        return None


_AddrInfo = list[tuple[Any, Any, Any, Any, Any]]


def resolve(host: str, port: int, deadline: Deadline | None = None) -> list[IPAddress]:
    """Every address `host` resolves to, in resolver order, without duplicates; FetchError
    if it resolves to none, or once `deadline` has passed."""
    try:
        infos = _getaddrinfo(host, port) if deadline is None else _getaddrinfo_by(host, port, deadline)
    except (OSError, UnicodeError) as exc:
        raise FetchError(f"cannot resolve host {host!r}: {exc}") from exc
    families = (socket.AF_INET, socket.AF_INET6)
    found = [ipaddress.ip_address(str(info[4][0])) for info in infos if info[0] in families]
    if not found:
        raise FetchError(f"host {host!r} resolves to no IP address")
    return list(dict.fromkeys(found))


def _getaddrinfo(host: str, port: int) -> _AddrInfo:
    return socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)


def _getaddrinfo_by(host: str, port: int, deadline: Deadline) -> _AddrInfo:
    """`getaddrinfo`, which takes no timeout, in a daemon thread that is no longer waited for
    once `deadline` has passed (it ends when the resolver gives up)."""
    done = threading.Event()
    outcome: list[_AddrInfo] = []
    failure: list[BaseException] = []

    def look_up() -> None:
        try:
            outcome.append(_getaddrinfo(host, port))
        except BaseException as exc:  # (handed to the caller)
            failure.append(exc)
        finally:
            done.set()

    threading.Thread(target=look_up, name=f"resolve {host}", daemon=True).start()
    if not done.wait(max(deadline.left(), 0.0)):
        raise FetchError(f"timed out resolving host {host!r}")
    if failure:
        raise failure[0]
    return outcome[0]
