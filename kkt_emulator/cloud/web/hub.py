"""The web cabinet's change hub: what the cloud announces, handed to the browsers watching (D100).

The cloud calls :meth:`ChangeHub.publish` from its ``on_change`` (the announcement that wakes the
timer task and the tills' long polls, D66) with the key it names: a retail point's id, an orders
key (``orders:<point>``) or ``None`` for "anything may have changed". With no browser connected
that is one check of an empty set. Each subscriber collects the keys in a set and is woken once;
the server-sent-events loop takes the whole set when it next writes, so a burst of a thousand
writes costs a browser one event, not a thousand.
"""

from __future__ import annotations

import asyncio
from contextlib import contextmanager
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Iterator

__all__ = ["ANY", "ChangeHub", "Subscription"]

ANY = "*"
"""The key of an announcement that names no retail point (anything may have changed)."""


class Subscription:
    """One browser's pending changes: the keys announced since it last took them."""

    def __init__(self) -> None:
        self._keys: set[str] = set()
        self._event = asyncio.Event()

    def add(self, key: str) -> None:
        """Note an announced key and wake the waiting loop."""
        self._keys.add(key)
        self._event.set()

    async def wait(self) -> None:
        """Return once a key is pending (at once if one is)."""
        await self._event.wait()

    def take(self) -> set[str]:
        """The keys pending now, emptied."""
        keys, self._keys = self._keys, set()
        self._event.clear()
        return keys


class ChangeHub:
    """Fans the cloud's change announcements out to the browsers subscribed (D100).

    Only the event loop's thread calls it: the cloud hands announcements of other threads (the
    PostgreSQL listener, D76) over to its loop before they reach here.
    """

    def __init__(self) -> None:
        self._subscribers: set[Subscription] = set()
        self.closed = False

    def close(self) -> None:
        """End every event stream (the server is stopping); later streams end at once."""
        self.closed = True
        for subscription in self._subscribers:
            subscription.add(ANY)

    @property
    def subscribers(self) -> int:
        """How many browsers watch now."""
        return len(self._subscribers)

    def publish(self, key: str | None) -> None:
        """Announce a change of ``key`` (``None``: anything) to every subscriber."""
        if not self._subscribers:
            return
        name = ANY if key is None else key
        for subscription in self._subscribers:
            subscription.add(name)

    @contextmanager
    def subscribe(self) -> Iterator[Subscription]:
        """A subscription for the block's duration."""
        subscription = Subscription()
        self._subscribers.add(subscription)
        try:
            yield subscription
        finally:
            self._subscribers.discard(subscription)
