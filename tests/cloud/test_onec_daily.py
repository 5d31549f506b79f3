"""The daily 1С report at a set time instead of per shift (``orders-and-backoffice.md`` B6, B23).

Over the real cloud app, on SQLite and PostgreSQL: a scripted till uploads whole shifts through
``POST /api/device/v1/cashdocs``, the cloud's own timer task makes the daily records when the
manual clock passes the time, and their webhooks land in the fake shop.
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import pytest
from cloud_helpers import T0, FakeTill, make_point
from test_feeds import feeds, shift_docs, switch, upload

from kkt_emulator.cloud.app import Cloud
from kkt_emulator.cloud.settings import CloudSettings

if TYPE_CHECKING:
    import httpx
    from cloud_helpers import FakeShop, Point

    from kkt_emulator.clock import ManualClock

CABINET = "/api/cabinet/v1"
ONEC_URL = "http://onec.test/in"


@pytest.fixture
def db_path(any_db: str) -> str:
    return any_db


@pytest.fixture
async def owned(http: httpx.AsyncClient) -> Point:
    response = await http.post(
        f"{CABINET}/accounts",
        json={"id": "acc-1c", "name": "1С", "login": "onec@example.com", "password": "secret-3"},
    )
    assert response.status_code == 200, response.text
    return await make_point(http, accountId="acc-1c")


async def _records(http: httpx.AsyncClient, point: Point, integration: str) -> list[dict[str, Any]]:
    data: list[dict[str, Any]] = (await feeds(http, point, integration=integration))["data"]
    return data


async def _until(clock: ManualClock, cloud: Cloud, hours: float) -> None:
    """Move the clock to T0 + ``hours`` and let the timer task do what fell due."""
    await clock.advance(T0 + timedelta(hours=hours) - clock.now())
    await cloud.wait_idle()


async def test_the_daily_report_replaces_the_shift_records_and_comes_once_a_day(
    http: httpx.AsyncClient, cloud: Cloud, owned: Point, shop: FakeShop, clock: ManualClock
) -> None:
    point = owned
    till = await FakeTill(http, point).bind()
    await switch(http, point, "moedelo", enabled=True)
    row = await switch(http, point, "onec", enabled=True, webhookUrl=ONEC_URL, dailyAt="21:00")
    assert row["dailyAt"] == "21:00"
    assert row["nextDailyAt"] == "2024-05-01T18:00:00+00:00"  # 21:00 at UTC+3
    listed = (await http.get(f"{CABINET}/retail-points/{point.id}/integrations")).json()
    assert {i["name"]: i["dailyAt"] for i in listed} == {
        "moysklad": None,
        "onec": "21:00",
        "moedelo": None,
        "elba": None,
    }

    # Two shifts close during the day: Моё Дело gets its records, 1С none yet.
    first, docs1 = shift_docs(start=0, num=7)
    second, docs2 = shift_docs(start=60, num=8)
    await _until(clock, cloud, 0.75)
    await upload(http, till, docs1)
    await _until(clock, cloud, 1.75)
    await upload(http, till, docs2)
    await _until(clock, cloud, 9 - 1 / 3600)  # 20:59:59 at UTC+3
    assert await _records(http, point, "onec") == []
    assert len(await _records(http, point, "moedelo")) == 2
    assert shop.requests == []

    await _until(clock, cloud, 9)  # 21:00: the day's report
    (daily,) = await _records(http, point, "onec")
    assert (daily["kind"], daily["shiftId"], daily["shiftNum"]) == ("daily", None, None)
    payload = daily["payload"]
    assert payload["period"] == {
        "from": "2024-05-01T09:00:00+00:00",  # when the time was set
        "to": "2024-05-01T18:00:00+00:00",
    }
    assert payload["shifts"] == [
        {"id": first["id"], "shiftNum": 7},
        {"id": second["id"], "shiftNum": 8},
    ]
    sales = {p["name"]: p for p in payload["sales"]}
    assert sorted(sales) == ["Молоко", "Сыр", "Хлеб", "Чай"]
    # Each shift: 2 × Хлеб at 50 (VAT 20/120 of 100 = 16.67); two shifts: 4, 200, 33.34.
    assert sales["Хлеб"] == {
        "inventCode": "001",
        "name": "Хлеб",
        "price": 50.0,
        "vatTag": 1102,
        "quantity": 4.0,
        "sum": 200.0,
        "vatSum": 33.34,
    }
    assert (sales["Молоко"]["quantity"], sales["Молоко"]["sum"], sales["Молоко"]["vatSum"]) == (
        2.0,
        160.0,
        14.54,  # 7.27 per position (80 × 10/110), summed
    )
    assert (sales["Сыр"]["sum"], sales["Сыр"]["vatSum"], sales["Чай"]["sum"]) == (
        600.0,
        100.0,
        1000.0,
    )
    # One return of a Хлеб a shift: VAT 8.33 each (50 × 20/120 = 8.333…), so 16.66, not 16.67.
    assert payload["returns"] == [
        {
            "inventCode": "001",
            "name": "Хлеб",
            "price": 50.0,
            "vatTag": 1102,
            "quantity": 2.0,
            "sum": 100.0,
            "vatSum": 16.66,
        }
    ]
    # Cash per shift 180 + 300 (net of change); card 300 + 200 − 50.
    assert (payload["cash"], payload["card"]) == (960.0, 900.0)
    assert [str(r.url) for r in shop.requests] == [ONEC_URL]
    sent = json.loads(shop.requests[0].content)
    assert (sent["id"], sent["kind"], sent["payload"]) == (daily["id"], "daily", payload)
    assert daily["delivery"]["state"] == "delivered"

    # Later the same day: nothing more.
    await _until(clock, cloud, 14)
    assert len(await _records(http, point, "onec")) == 1
    assert len(shop.requests) == 1

    # The next day: one shift, one more report covering only it, from the last report on.
    third, docs3 = shift_docs(start=24 * 60, num=9)
    await _until(clock, cloud, 24.75)
    await upload(http, till, docs3)
    await _until(clock, cloud, 33)
    first_day, second_day = await _records(http, point, "onec")
    assert first_day["id"] == daily["id"]
    assert second_day["kind"] == "daily"
    assert second_day["payload"]["period"] == {
        "from": "2024-05-01T18:00:00+00:00",
        "to": "2024-05-02T18:00:00+00:00",
    }
    assert second_day["payload"]["shifts"] == [{"id": third["id"], "shiftNum": 9}]
    assert (second_day["payload"]["cash"], second_day["payload"]["card"]) == (480.0, 450.0)
    assert len(shop.requests) == 2

    # A day without shifts makes no record.
    await _until(clock, cloud, 57.5)
    assert len(await _records(http, point, "onec")) == 2

    # Unset: per shift again, at once.
    row = await switch(http, point, "onec", dailyAt=None)
    assert (row["dailyAt"], row["nextDailyAt"], row["enabled"]) == (None, None, True)
    fourth, docs4 = shift_docs(start=58 * 60, num=10)
    await _until(clock, cloud, 58.75)
    await upload(http, till, docs4)
    await cloud.wait_idle()
    records = await _records(http, point, "onec")
    assert [r["kind"] for r in records] == ["daily", "daily", "shift"]
    assert records[-1]["shiftId"] == fourth["id"]
    await _until(clock, cloud, 81)  # 21:00 again: no schedule, no daily record
    assert len(await _records(http, point, "onec")) == 3


async def test_unsetting_the_time_hands_the_waiting_shifts_their_own_records(
    http: httpx.AsyncClient, cloud: Cloud, owned: Point, clock: ManualClock
) -> None:
    point = owned
    till = await FakeTill(http, point).bind()
    await switch(http, point, "onec", enabled=True, dailyAt="08:30")
    shift, docs = shift_docs()
    await _until(clock, cloud, 0.75)
    await upload(http, till, docs)
    assert await _records(http, point, "onec") == []
    await switch(http, point, "onec", dailyAt=None)
    (record,) = await _records(http, point, "onec")
    assert (record["kind"], record["shiftId"]) == ("shift", shift["id"])
    await _until(clock, cloud, 30)  # past 08:30 of the next day: nothing is left for a report
    assert len(await _records(http, point, "onec")) == 1


async def test_changing_the_time_keeps_the_period_and_fires_at_the_new_time(
    http: httpx.AsyncClient, cloud: Cloud, owned: Point, clock: ManualClock
) -> None:
    point = owned
    till = await FakeTill(http, point).bind()
    await switch(http, point, "onec", enabled=True, dailyAt="21:00")
    _, docs = shift_docs()
    await _until(clock, cloud, 0.75)
    await upload(http, till, docs)
    await _until(clock, cloud, 2)  # 14:00 at UTC+3; 13:00 has passed today
    row = await switch(http, point, "onec", dailyAt="13:00")
    assert row["nextDailyAt"] == "2024-05-02T10:00:00+00:00"  # tomorrow, not at once
    await _until(clock, cloud, 24)
    assert await _records(http, point, "onec") == []
    await _until(clock, cloud, 25)
    (daily,) = await _records(http, point, "onec")
    assert daily["payload"]["period"] == {
        "from": "2024-05-01T09:00:00+00:00",
        "to": "2024-05-02T10:00:00+00:00",
    }


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("onec", "25:00", "HH:MM"),
        ("onec", "9:00", "HH:MM"),
        ("onec", "21:60", "HH:MM"),
        ("onec", "21:00:00", "HH:MM"),
        ("onec", "", "HH:MM"),
        ("moedelo", "21:00", "only «Обмен с 1С»"),
    ],
)
async def test_a_bad_daily_time_is_refused_naming_it(
    http: httpx.AsyncClient, owned: Point, name: str, value: str, message: str
) -> None:
    response = await http.put(
        f"{CABINET}/retail-points/{owned.id}/integrations/{name}", json={"dailyAt": value}
    )
    assert response.status_code == 400, response.text
    assert "dailyAt" in response.text
    assert message in response.text
    listed = (await http.get(f"{CABINET}/retail-points/{owned.id}/integrations")).json()
    assert all(i["dailyAt"] is None for i in listed)


async def test_two_clouds_on_one_database_make_the_day_s_report_once(
    http: httpx.AsyncClient, cloud: Cloud, owned: Point, clock: ManualClock, shop: FakeShop
) -> None:
    """Both timer tasks reach 21:00; the schedule's claim lets one of them make the record (B23)."""
    if not cloud.storage.shared:
        pytest.skip("one SQLite file is one process's (D75 is PostgreSQL's)")
    point = owned
    till = await FakeTill(http, point).bind()
    await switch(http, point, "onec", enabled=True, webhookUrl=ONEC_URL, dailyAt="21:00")
    async with Cloud(
        cloud.storage.path,
        clock,
        CloudSettings(password_iterations=1000),
        callback_transport=shop.transport,
    ) as other:
        _, docs = shift_docs()
        await _until(clock, cloud, 0.75)
        await upload(http, till, docs)
        await clock.advance(T0 + timedelta(hours=9) - clock.now())
        await cloud.wait_idle()
        await other.wait_idle()
        await _until(clock, cloud, 10)
        await other.wait_idle()
    (daily,) = await _records(http, point, "onec")
    assert daily["kind"] == "daily"
    assert [str(r.url) for r in shop.requests] == [ONEC_URL]
