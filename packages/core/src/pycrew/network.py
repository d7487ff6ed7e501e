"""Choosing the address workers dial."""

from __future__ import annotations

import ipaddress
import socket

import psutil


def routable_address() -> str:
    """An IPv4 address of this machine that other hosts can route to.

    Picks the first non-loopback, non-link-local IPv4 address of an interface that is up
    (read from the interfaces, without sending anything); falls back to the address the
    host name resolves to, then to 127.0.0.1. Override with the controller's ``host``.
    """
    stats = psutil.net_if_stats()
    for name, addrs in psutil.net_if_addrs().items():
        if name in stats and not stats[name].isup:
            continue
        for addr in addrs:
            if addr.family != socket.AF_INET:
                continue
            ip = ipaddress.ip_address(addr.address)
            if not ip.is_loopback and not ip.is_link_local:
                return str(addr.address)
    try:
        ip_text = socket.gethostbyname(socket.gethostname())
        if not ipaddress.ip_address(ip_text).is_loopback:
            return ip_text
    except OSError:  # no resolvable host name: loopback is the honest answer
        pass
    return "127.0.0.1"


def format_url(host: str, port: int, tls: bool) -> str:
    """The NNG URL for ``host:port`` (IPv6 literals bracketed)."""
    scheme = "tls+tcp" if tls else "tcp"
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return f"{scheme}://{host}:{port}"
