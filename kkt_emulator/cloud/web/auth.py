"""The cabinet token for the web pages (D99): the same secret that guards ``/api/cabinet/v1``.

A browser cannot send a bearer header from a link, so the pages accept the token three ways:
``Authorization: Bearer <token>`` (as the API does), ``?token=<token>`` once (the page then sets a
cookie and redirects to the same URL without it, so the token leaves the address bar and the
history), and that cookie. The cookie holds a digest of the token, not the token, and is
``HttpOnly`` and ``SameSite=Strict``: another site can neither read it nor make the browser send
it with a form, which is what keeps the cabinet's POST forms safe without a CSRF field.
"""

from __future__ import annotations

import hmac
from typing import Final
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from kkt_emulator.cloud.security import CABINET_COOKIE, cabinet_cookie_value, parse_bearer

__all__ = ["COOKIE", "TokenVerdict", "judge", "remember"]

COOKIE: Final = CABINET_COOKIE
_digest = cabinet_cookie_value


class TokenVerdict:
    """What a request's credentials are worth: allowed, and whether to set the cookie first."""

    __slots__ = ("allowed", "from_query")

    def __init__(self, *, allowed: bool, from_query: bool = False) -> None:
        self.allowed = allowed
        self.from_query = from_query


def judge(request: Request, expected: str | None) -> TokenVerdict:
    """Judge a page request against the cloud's cabinet token (``None``: no token, all allowed)."""
    if expected is None:
        return TokenVerdict(allowed=True)
    bearer = parse_bearer(request.headers.get("authorization"))
    if bearer is not None:
        return TokenVerdict(allowed=hmac.compare_digest(bearer.encode(), expected.encode()))
    query = request.query_params.get("token")
    if query is not None:
        return TokenVerdict(
            allowed=hmac.compare_digest(query.encode(), expected.encode()), from_query=True
        )
    cookie = request.cookies.get(COOKIE)
    if cookie is not None:
        return TokenVerdict(
            allowed=hmac.compare_digest(cookie.encode(), _digest(expected).encode())
        )
    return TokenVerdict(allowed=False)


def remember(request: Request, token: str) -> Response:
    """Set the cookie and redirect to the request's URL without ``token`` (303)."""
    rest = [(k, v) for k, v in request.query_params.multi_items() if k != "token"]
    target = request.url.path + (f"?{urlencode(rest)}" if rest else "")
    response = RedirectResponse(target, status_code=303)
    response.set_cookie(COOKIE, _digest(token), httponly=True, samesite="strict", path="/cabinet")
    return response
