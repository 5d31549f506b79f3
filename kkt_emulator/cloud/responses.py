"""The cloud's JSON answers: ``application/json; charset=utf-8``, UTF-8 text, rendered by orjson.

Every store-, till- and cabinet-API answer goes through :class:`JsonResponse` (D7, D60): orjson
writes compact JSON with Cyrillic as UTF-8, exactly what ``json.dumps(ensure_ascii=False,
separators=(",", ":"))`` writes for the values the views produce. What orjson refuses (a lone
surrogate echoed from a refused request, an integer beyond 64 bits, a non-string key) is written
by the standard library instead, and text that is not valid Unicode falls back to ASCII escapes,
so an answer is always valid UTF-8 JSON. A non-finite float is written as ``null`` (the standard
library wrote ``Infinity``, which is not JSON).
"""

from __future__ import annotations

import json
from typing import Any

import orjson
from fastapi.responses import JSONResponse

__all__ = ["JsonResponse", "message", "render_json"]


def render_json(content: Any) -> bytes:
    """``content`` as compact UTF-8 JSON (see the module doc for the fall-backs)."""
    try:
        return orjson.dumps(content)
    except orjson.JSONEncodeError:
        text = json.dumps(content, ensure_ascii=False, separators=(",", ":"))
        try:
            return text.encode("utf-8")
        except UnicodeEncodeError:
            return json.dumps(content, separators=(",", ":")).encode("ascii")


class JsonResponse(JSONResponse):
    """JSON with ``Content-Type: application/json; charset=utf-8`` and UTF-8 text (D7)."""

    media_type = "application/json; charset=utf-8"

    def render(self, content: Any) -> bytes:
        """Serialise ``content`` compactly, keeping Cyrillic as UTF-8 (:func:`render_json`)."""
        return render_json(content)


def message(status: int, text: str, headers: dict[str, str] | None = None) -> JsonResponse:
    """``{"message": text}`` with ``status`` (D7)."""
    return JsonResponse({"message": text}, status_code=status, headers=headers)
