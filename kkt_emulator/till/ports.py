"""The ports a till is given from outside, as :class:`~typing.Protocol` classes.

The till never imports the OFD stand-in; ``app/stack.py`` hands the one of its process to each
till (``TillConfig.ofd``), which satisfies :class:`OfdFaults` structurally.
"""

from __future__ import annotations

from typing import Any, Protocol

__all__ = ["OfdFaults"]


class OfdFaults(Protocol):
    """The OFD stand-in's fault switches: the only calls a till makes on it (``ofd.*`` faults)."""

    async def set_fault(self, name: str, **params: Any) -> None:
        """Put an ``ofd.*`` fault in force on every connection until cleared."""

    async def clear_faults(self) -> None:
        """Clear every OFD fault."""
