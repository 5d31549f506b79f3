"""Listening sockets for the servers a process runs (cloud, shop stand-ins in tests and benchmarks)."""

from __future__ import annotations

import functools
import socket
import ssl

from kkt_emulator.errors import ConfigError

__all__ = ["client_tls", "host_port", "listen_socket"]


def host_port(host: str, port: int) -> str:
    """``host:port`` as URLs and till settings write it: an IPv6 literal goes in brackets."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def listen_socket(host: str, port: int, backlog: int = 2048) -> socket.socket:
    """Bind and listen on ``host:port`` (0 picks a free port; read it from ``getsockname()``).

    The socket is handed to uvicorn (``server.serve(sockets=[sock])``), which avoids the race of
    choosing a free port and binding it later. It is made with ``IPPROTO_TCP`` as its protocol:
    asyncio turns Nagle's algorithm off (``TCP_NODELAY``) only on sockets whose ``proto`` says TCP,
    and the connections a socket accepts inherit its ``proto``. Made with protocol 0, every answer
    written in two pieces waited for the peer's delayed ACK, about 40 ms a request.

    Raises:
        ConfigError: the address cannot be bound (in use, not local, no permission).
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from exc
    sock.listen(backlog)
    sock.set_inheritable(True)
    return sock


@functools.cache
def client_tls() -> ssl.SSLContext:
    """The one TLS context every HTTP client of this process verifies servers with.

    httpx builds a context (reading the CA bundle) for every client made without one: about
    40 ms each, more than a whole sale, paid by every installation's start-up.
    """
    import httpx  # noqa: PLC0415 - only HTTP clients need it, and they import it anyway

    return httpx.create_ssl_context()
