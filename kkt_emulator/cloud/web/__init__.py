"""The web cabinet (ЛК) served by the cloud at ``/cabinet/``: pages, forms and live updates.

:func:`~kkt_emulator.cloud.web.pages.cabinet_web_router` builds the routes over the cloud's
service; :class:`~kkt_emulator.cloud.web.hub.ChangeHub` carries the cloud's change announcements
to the browsers watching (server-sent events, D100). Templates (Jinja2) and the hand-written CSS
and script are package data; nothing is built and nothing comes from elsewhere.
"""

from __future__ import annotations

from kkt_emulator.cloud.web.hub import ChangeHub
from kkt_emulator.cloud.web.pages import cabinet_web_router

__all__ = ["ChangeHub", "cabinet_web_router"]
