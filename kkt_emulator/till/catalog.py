"""The till's copy of its retail point's catalogue, pulled from the cloud when it changed (B16).

The cloud raises the point's catalogue revision with every change (``catalog-changes``, a
``POST``/``PUT …/catalog``, МойСклад switched on) and names it in every heartbeat answer
(``catalogRevision``). The till keeps the revision it holds beside the entries in its store
(``till_meta`` key ``catalog``) and pulls ``GET /api/device/v1/catalog?since=REV`` only when a
heartbeat names another revision, or when a sale names a code the till does not know: no timer of
its own, no request while nothing changed (``orders-and-backoffice.md`` B16).

A counter sale by ``inventCode`` (:meth:`TillCatalog.positions`) takes the entry's name, price,
``vatTag`` and ``measure`` as the receipt's position (``sell --item CODE``).
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any, Final

from kkt_emulator.errors import CloudError, ConfigError, TransportError

if TYPE_CHECKING:
    from collections.abc import Sequence

    from kkt_emulator.till.cloud_link import CloudLink
    from kkt_emulator.till.context import TillContext

__all__ = ["CATALOG_KEY", "TillCatalog", "parse_item"]

CATALOG_KEY: Final = "catalog"
"""The till store's key of the catalogue: ``{"revision": N, "entries": {TYPE: {code: entity}}}``."""
DEFAULT_VAT: Final = 1105
"""A catalogue entry without ``vatTag`` is sold without VAT (the retail point's default, O8)."""
_MEASURES: Final = {"pcs", "ltr", "kg", "m", "m2", "m3", "h", "other"}


def parse_item(text: str) -> tuple[str, Decimal]:
    """``CODE`` or ``CODE*QTY`` (``001*2``, ``777*0.350``) → (code, quantity).

    Raises:
        ConfigError: an empty code or a quantity that is not a positive number.
    """
    code, sep, amount = text.strip().rpartition("*")
    if not sep:
        code, amount = text.strip(), "1"
    try:
        quantity = Decimal(amount.replace(",", "."))
    except InvalidOperation as exc:
        raise ConfigError(f"--item {text!r}: the quantity is not a number") from exc
    if not code or not quantity.is_finite() or quantity <= 0:
        raise ConfigError(f"--item {text!r}: use CODE or CODE*QUANTITY with a positive quantity")
    return code, quantity


class TillCatalog:
    """The catalogue the till sells from.

    Args:
        ctx: the till's shared state (its store holds the catalogue).
        link: the cloud link (``GET /catalog``).
    """

    def __init__(self, ctx: TillContext, link: CloudLink) -> None:
        self.ctx = ctx
        self.link = link
        self.pulls = 0
        """How many pulls this till made (tests and measurements read it)."""

    def _stored(self) -> dict[str, Any]:
        data = self.ctx.state.get(CATALOG_KEY)
        if not isinstance(data, dict):
            return {"revision": 0, "entries": {}}
        return data

    @property
    def revision(self) -> int:
        """The revision of the catalogue the till holds (0: none yet)."""
        return int(self._stored().get("revision") or 0)

    def entries(self, catalog_type: str = "INVENTORY") -> dict[str, dict[str, Any]]:
        """The entries of one type the till holds, by code."""
        found = self._stored().get("entries", {}).get(catalog_type, {})
        return dict(found) if isinstance(found, dict) else {}

    async def pull(self) -> int:
        """Ask the cloud for what changed since the held revision and keep it; changes applied.

        Raises:
            CloudError, TransportError: the cloud refused or is unreachable (nothing changes).
        """
        stored = self._stored()
        answer = await self.link.catalog(int(stored.get("revision") or 0))
        self.pulls += 1
        entries: dict[str, dict[str, Any]] = (
            {} if answer.get("full") else {k: dict(v) for k, v in stored.get("entries", {}).items()}
        )
        changes = answer.get("entries") or []
        for change in changes:
            kind, code = str(change.get("catalogType")), str(change.get("code"))
            if change.get("deleted"):
                entries.get(kind, {}).pop(code, None)
            elif isinstance(change.get("entity"), dict):
                entries.setdefault(kind, {})[code] = change["entity"]
        revision = int(answer["revision"])
        self.ctx.state.put(**{CATALOG_KEY: {"revision": revision, "entries": entries}})
        self.ctx.log.info("catalog_pulled", revision=revision, changes=len(changes))
        self.ctx.emit("catalog.updated", {"revision": revision, "changes": len(changes)})
        return len(changes)

    async def follow(self, remote: object) -> bool:
        """After a heartbeat: pull if its ``catalogRevision`` differs from the held one.

        Never raises for the cloud: a failed pull is logged and tried at the next heartbeat that
        names a revision (the poll loop must go on). Returns whether a pull was made.
        """
        if not isinstance(remote, int) or remote == self.revision:
            return False
        try:
            await self.pull()
        except (CloudError, TransportError) as exc:
            self.ctx.log.warning("catalog_pull_failed", error=str(exc), revision=remote)
            return False
        return True

    async def positions(self, items: Sequence[tuple[str, Decimal]]) -> list[dict[str, Any]]:
        """Receipt positions for ``(inventCode, quantity)`` pairs from the ``INVENTORY`` catalogue.

        A code the till does not hold makes it pull once (the change may not have reached it
        yet); still unknown, it is refused.

        Raises:
            ConfigError: a code the catalogue does not have (naming it).
            CloudError, TransportError: the pull for an unknown code failed.
        """
        known = self.entries()
        if any(code not in known for code, _ in items):
            await self.pull()
            known = self.entries()
        missing = [code for code, _ in items if code not in known]
        if missing:
            raise ConfigError(f"not in the catalogue: {', '.join(missing)}")
        positions = []
        for code, quantity in items:
            entity = known[code]
            position: dict[str, Any] = {
                "inventCode": code,
                "name": str(entity.get("name") or code),
                "price": float(Decimal(str(entity.get("price") or 0))),
                "quantity": float(quantity),
                "vatTag": int(entity.get("vatTag") or DEFAULT_VAT),
            }
            if entity.get("barcode"):
                position["barcode"] = entity["barcode"]
            if entity.get("measure") in _MEASURES:
                position["measure"] = entity["measure"]
            positions.append(position)
        return positions
