"""``/docs`` and ``/redoc`` work offline: every asset they load is served by the cloud (D104)."""

from __future__ import annotations

import re
from urllib.parse import urljoin, urlsplit

import httpx
import pytest

ASSET = re.compile(r"""(?:src|href|spec-url)\s*=\s*["']([^"']+)["']|url:\s*["']([^"']+)["']""")


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
async def test_the_api_pages_load_only_local_assets(http: httpx.AsyncClient, page: str) -> None:
    response = await http.get(page)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    html = response.text
    assets = [a or b for a, b in ASSET.findall(html)]
    scripts = [a for a in assets if a.endswith(".js")]
    assert scripts, html  # the page does load its UI from somewhere
    for asset in assets:
        url = urljoin(f"http://cloud{page}", asset)
        assert urlsplit(url).netloc == "cloud", f"{page} loads {asset} from elsewhere"
        loaded = await http.get(urlsplit(url).path)
        assert loaded.status_code == 200, asset
        assert loaded.content
    assert "cdn" not in html.lower()


async def test_the_openapi_schema_the_page_reads_is_served(http: httpx.AsyncClient) -> None:
    schema = (await http.get("/openapi.json")).json()
    assert "/cabinet/receipt/{doc_id}.svg" in schema["paths"]
    assert "/metrics" in schema["paths"]
