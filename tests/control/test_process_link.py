"""One broker connection per process (D70): its tills share it, its last will stands for them all.

Against a real mosquitto: tills of two "processes" (control planes) on one broker, a clean stop of
one, and a SIGKILLed process whose tills every client then sees offline.
"""

from __future__ import annotations

import asyncio
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from control_helpers import PACE, FakeTill, retained, wait_for

from kkt_emulator.control import topics
from kkt_emulator.control.broker import MosquittoBroker
from kkt_emulator.control.client import ControlClient
from kkt_emulator.control.plane import ControlPlane


@pytest.fixture
async def broker() -> AsyncIterator[MosquittoBroker]:
    async with MosquittoBroker() as running:
        yield running


async def test_tills_of_a_process_share_one_connection(broker: MosquittoBroker) -> None:
    plane = ControlPlane(broker.url, PACE)
    tills = [FakeTill(f"shared-{n}") for n in range(5)]
    await plane.start(tills)
    try:
        assert plane.link is not None
        assert len(plane.agents) == 5
        assert all(agent.link is plane.link for agent in plane.agents)
        async with ControlClient(broker.url, timeout=5) as control:
            seen = await control.tills()
            assert [t.device_id for t in seen] == sorted(t.device_id for t in tills)
            assert all(t.online and t.process == plane.process_id for t in seen)
            # Every till answers its own commands on the shared connection.
            outcomes = await control.each([t.device_id for t in seen], "status")
            assert [o.result["deviceId"] for o in outcomes] == [t.device_id for t in seen]
    finally:
        await plane.close()


async def test_two_processes_on_one_broker_and_a_clean_stop(broker: MosquittoBroker) -> None:
    first, second = ControlPlane(broker.url, PACE), ControlPlane(broker.url, PACE)
    assert first.process_id != second.process_id
    await first.start([FakeTill("a-1"), FakeTill("a-2")])
    await second.start([FakeTill("b-1")])
    try:
        async with ControlClient(broker.url, timeout=5) as control:
            seen = {t.device_id: t for t in await control.tills()}
            assert {d: t.process for d, t in seen.items()} == {
                "a-1": first.process_id,
                "a-2": first.process_id,
                "b-1": second.process_id,
            }
            assert control.select(list(seen.values()), None) == ["a-1", "a-2", "b-1"]
            answer = await control.command("b-1", "fault.inject", {"name": "fn.slow"})
            assert answer["name"] == "fn.slow"
            await first.close()
            seen = {t.device_id: t for t in await control.tills()}
            assert {d: t.online for d, t in seen.items()} == {
                "a-1": False,
                "a-2": False,
                "b-1": True,
            }
            assert control.select(list(seen.values()), None) == ["b-1"]
    finally:
        await first.close()
        await second.close()
    status = await retained(broker.url, topics.process_status_topic(first.process_id))
    assert status is not None
    assert status.text == "offline"


async def test_a_killed_process_takes_all_its_tills_offline(broker: MosquittoBroker) -> None:
    helper = Path(__file__).with_name("control_helpers.py")
    devices = ["dies-1", "dies-2", "dies-3"]
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        str(helper),
        broker.url,
        "--shared",
        *devices,
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        assert process.stdout is not None
        async with asyncio.timeout(20):
            word, process_id = (await process.stdout.readline()).decode().split()
        assert word == "ready"
        async with ControlClient(broker.url, timeout=5) as control:
            before = await control.tills()
            assert [(t.device_id, t.online, t.process) for t in before] == [
                (d, True, process_id) for d in devices
            ]
            process.send_signal(
                signal.SIGKILL
            )  # no DISCONNECT: the broker sends the process's will
            await process.wait()

            async def all_offline() -> bool:
                return not any(t.online for t in await control.tills())

            await wait_for(all_offline, what="the tills of the killed process to be offline")
            with pytest.raises(Exception, match="no till is online"):
                control.select(await control.tills(), None)
    finally:
        if process.returncode is None:
            process.kill()
        await process.wait()
    # Each till's own retained status still names the process; the process's will decides.
    status = await retained(broker.url, topics.status_topic("dies-1"))
    assert status is not None
    assert status.text == f"online {process_id}"
    will = await retained(broker.url, topics.process_status_topic(process_id))
    assert will is not None
    assert will.text == "offline"


async def test_a_process_reconnects_its_tills_after_a_broker_restart(
    broker: MosquittoBroker,
) -> None:
    plane = ControlPlane(broker.url, PACE)
    await plane.start([FakeTill("again-1"), FakeTill("again-2")])
    try:
        assert plane.link is not None
        link = plane.link
        await broker.restart()  # persistence off: nothing retained survives
        await wait_for(lambda: link.connections == 2, what="the process link to reconnect")
        async with ControlClient(broker.url, timeout=5) as control:

            async def both_online() -> bool:
                return [t.online for t in await control.tills()] == [True, True]

            await wait_for(both_online, what="both tills online on the restarted broker")
            assert (await control.command("again-2", "status"))["deviceId"] == "again-2"
    finally:
        await plane.close()
