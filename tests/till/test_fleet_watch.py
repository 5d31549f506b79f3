"""The fleet watch against scripted clouds (D69): what it sends, what it makes of the answers."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import orjson
import pytest

from kkt_emulator.till.fleet_watch import REGATHER, FleetWatch, regather_seconds

Answer = tuple[int, dict[str, Any] | None]


@asynccontextmanager
async def _cloud(
    answer: Callable[[dict[str, Any]], Answer | Awaitable[Answer]],
) -> AsyncIterator[tuple[str, list[dict[str, Any]]]]:
    """A plain HTTP server answering every request with ``answer(request)``; what it was sent."""
    seen: list[dict[str, Any]] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                line, *fields = head.decode("latin-1").split("\r\n")
                length = 0
                for field in fields:
                    name, _, value = field.partition(":")
                    if name.lower() == "content-length":
                        length = int(value)
                body = orjson.loads(await reader.readexactly(length)) if length else None
                request = {"line": line, "body": body}
                seen.append(request)
                result = answer(request)
                status, payload = await result if inspect.isawaitable(result) else result
                data = b"" if payload is None else orjson.dumps(payload)
                writer.write(
                    f"HTTP/1.1 {status} X\r\nContent-Length: {len(data)}\r\n\r\n".encode() + data
                )
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass  # the watch hung up
        finally:
            # Also when the test's loop cancels this handler at its end, still waiting for a
            # request: a writer left open then was collected in a later test ("loop is closed").
            writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}", seen
    finally:
        server.close()
        await server.wait_closed()


async def _until(check: Callable[[], bool]) -> None:
    for _ in range(500):
        if check():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("never happened")


async def test_a_cloud_without_a_watch_leaves_every_till_to_its_own_long_poll() -> None:
    async with _cloud(lambda _request: (404, {"message": "Not Found"})) as (server, seen):
        watch = FleetWatch.shared(server)
        assert watch is not None
        member = watch.join(lambda: "token-1", lambda: True, 25.0)
        assert member is not None
        await _until(lambda: watch.supported is False)
        assert member.ready.is_set()  # told to look for itself
        assert watch.join(lambda: "token-2", lambda: True, 25.0) is None
        assert seen[0]["line"].startswith("POST /api/device/v1/watch?wait=25&after= ")
        assert seen[0]["body"] == {"tokens": ["token-1"]}
        member.close()
        assert watch.closed


async def test_the_watch_tells_the_named_tills_and_keeps_its_cursor() -> None:
    answers = iter([{"ready": [1], "refused": [], "after": "e:7"}])

    def answer(_request: dict[str, Any]) -> tuple[int, dict[str, Any] | None]:
        try:
            return 200, next(answers)
        except StopIteration:
            return 200, {"ready": [], "refused": [], "after": "e:7"}

    async with _cloud(answer) as (server, seen):
        watch = FleetWatch.shared(server)
        assert watch is not None
        assert FleetWatch.shared(server + "/") is watch  # one per cloud and process
        active = {"b": True}
        first = watch.join(lambda: "a", lambda: True, 0.1)
        second = watch.join(lambda: "b", lambda: active["b"], 0.1)
        assert first is not None
        assert second is not None
        await _until(second.ready.is_set)
        assert not first.ready.is_set()
        await _until(lambda: len(seen) >= 2)
        assert "after=e%3A7" in seen[-1]["line"]
        active["b"] = False  # power saving: no longer named, so not kept alive by the watch
        await _until(lambda: seen[-1]["body"] == {"tokens": ["a"]})
        first.close()
        second.close()
        assert watch.closed
        assert FleetWatch.shared(server) is not watch
        await watch.aclose()


async def test_an_https_cloud_has_no_watch() -> None:
    assert FleetWatch.shared("https://cloud.example") is None


def test_a_big_watch_restarts_less_often_while_tills_join() -> None:
    """D140: the gather before a restart grows with the tills named, up to half a second."""
    assert regather_seconds(0) == REGATHER
    assert regather_seconds(1000) == pytest.approx(0.3)
    assert regather_seconds(4000) == regather_seconds(10_000) == 0.5
    # Restarts a second times tokens looked up: bounded, whatever the fleet's size.
    for named in (1000, 2000, 5000):
        assert named / regather_seconds(named) <= 10_000


async def test_a_till_joining_while_an_answer_comes_is_asked_for_from_before_it_joined() -> None:
    """D141: the answer that arrives before the watch names a new till does not move its cursor.

    Till ``b`` joins (and would sync or lease at once) while the watch naming only ``a`` is in
    flight; that watch then answers with a later cursor, which may cover a change made after
    ``b``'s own sync. The watch naming ``b`` asks from the cursor known when ``b`` joined.
    """
    b_joined = asyncio.Event()

    async def answer(request: dict[str, Any]) -> Answer:
        tokens = request["body"]["tokens"]
        if "after=e%3A5" in request["line"] and tokens == ["a"]:
            await b_joined.wait()
            return 200, {"ready": [], "orders": [], "refused": [], "after": "e:7"}
        if "after=&" in request["line"] or request["line"].split("after=")[1].startswith(" "):
            return 200, {"ready": [], "orders": [], "refused": [], "after": "e:5"}
        await asyncio.sleep(0.05)
        return 200, {"ready": [], "orders": [], "refused": [], "after": "e:9"}

    async with _cloud(answer) as (server, seen):
        watch = FleetWatch.shared(server)
        assert watch is not None
        first = watch.join(lambda: "a", lambda: True, 0.5)
        assert first is not None
        await _until(lambda: len(seen) >= 2)
        assert "after=e%3A5" in seen[1]["line"]
        second = watch.join(lambda: "b", lambda: True, 0.5)
        assert second is not None
        b_joined.set()  # the watch naming only `a` answers before it is cut short
        await _until(lambda: any(r["body"]["tokens"] == ["a", "b"] for r in seen))
        named = next(r for r in seen if r["body"]["tokens"] == ["a", "b"])
        assert "after=e%3A5" in named["line"], named  # not e:7, which `b` may have missed
        await _until(lambda: len(seen) >= seen.index(named) + 2)
        assert "after=e%3A9" in seen[-1]["line"]  # once `b` is covered, the cursor moves on
        first.close()
        second.close()
        await watch.aclose()
