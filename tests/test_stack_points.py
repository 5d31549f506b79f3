"""``up`` makes its retail points through the cloud it embeds (D135), usable over HTTP after."""

from __future__ import annotations

import base64
import json
from typing import TYPE_CHECKING

import pytest

from kkt_emulator.app.stack import ensure_points
from kkt_emulator.clock import ManualClock
from kkt_emulator.cloud.app import Cloud
from kkt_emulator.cloud.settings import CloudSettings
from kkt_emulator.errors import CloudError
from kkt_emulator.profiles import DEFAULT_PROFILE, load_profile

if TYPE_CHECKING:
    from pathlib import Path


async def test_points_are_made_in_process_and_saved(tmp_path: Path) -> None:
    clock = ManualClock()
    profile = load_profile(DEFAULT_PROFILE)
    saved = tmp_path / "points.json"
    async with Cloud(":memory:", clock, CloudSettings()) as cloud:
        # No server listens at this address: every point is made without a request.
        points = await ensure_points("http://127.0.0.1:9", saved, 3, profile, None, cloud=cloud)
        assert len(points) == 3
        assert json.loads(saved.read_text(encoding="utf-8")) == points
        again = await ensure_points("http://127.0.0.1:9", saved, 3, profile, None, cloud=cloud)
        assert again == points  # a restart reuses them
        service = cloud.service
        for point in points:
            record = service.get_point(point["retail_point_id"])
            assert record.internet_docs_enabled
            # The shop's association and the till's service credentials both log in.
            assoc = f"{point['login']}:{point['password']}"
            found, _ = await service.login_association(_basic(assoc))
            assert found.retail_point_id == point["retail_point_id"]
            creds = f"{point['service_login']}:{point['service_password']}"
            assert service.associate(_basic(creds), point["retail_point_id"], "probe")["password"]
        with pytest.raises(CloudError):
            await service.login_association(_basic(f"{points[0]['login']}:nope"))
        names = sorted(service.get_point(p["retail_point_id"]).name for p in points)
        assert names == [f"Интернет-магазин {n}" for n in (1, 2, 3)]


def _basic(pair: str) -> str:
    return "Basic " + base64.b64encode(pair.encode()).decode()
