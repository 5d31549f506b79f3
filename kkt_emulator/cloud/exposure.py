"""Where the cabinet may be served without a token: loopback only.

The cabinet API creates retail points, issues credentials and re-drives or closes any shop's
documents. On loopback it stays open for convenience (a developer's machine, a CI job); on any
other address the cloud refuses to start without a cabinet token.
"""

from __future__ import annotations

import ipaddress
import socket

from kkt_emulator.errors import ConfigError

__all__ = ["check_cabinet_exposure", "is_loopback"]


def is_loopback(host: str) -> bool:
    """Whether every address ``host`` stands for is a loopback address (127.0.0.0/8, ::1).

    A wildcard (``0.0.0.0``, ``::``) is not loopback; a name is resolved, and is loopback only
    when all its addresses are.
    """
    literal = host.strip("[]")
    try:
        return ipaddress.ip_address(literal).is_loopback
    except ValueError:
        pass  # not an address literal: a host name, resolved below
    try:
        infos = socket.getaddrinfo(literal, None, proto=socket.IPPROTO_TCP)
    except (OSError, UnicodeError):
        return False
    addresses = {info[4][0] for info in infos}
    return bool(addresses) and all(
        ipaddress.ip_address(str(a).split("%", 1)[0]).is_loopback for a in addresses
    )


def check_cabinet_exposure(host: str, cabinet_token: str | None) -> None:
    """Refuse to serve the cabinet beyond loopback without a token.

    Raises:
        ConfigError: ``host`` is not loopback and no (non-empty) cabinet token is set.
    """
    if cabinet_token or is_loopback(host):
        return
    raise ConfigError(
        f"refusing to serve the cabinet on {host} without a cabinet token: anyone who reaches it"
        " could issue credentials and close documents; set --cabinet-token or KKT_CABINET_TOKEN,"
        " or listen on 127.0.0.1"
    )
