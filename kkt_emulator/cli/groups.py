"""The command groups of ``kkt-emulator``.

Each group module exposes a ``typer.Typer`` named ``app`` (or registers plain commands through a
``register(app)`` function). :data:`GROUPS` lists them in their ``--help`` order, each with the
top-level names it adds, so that a run of one command imports only that command's module: ``up``
does not pay for importing the benchmarks, the chaos harness and the scenarios (:func:`register`).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import typer


@dataclass(frozen=True, slots=True)
class Group:
    """One registration step: the top-level names it adds, from the module that holds them.

    A module with a ``register(app)`` function adds its plain commands itself; any other module's
    ``typer.Typer`` named ``app`` is added as the group ``names[0]``.
    """

    names: tuple[str, ...]
    module: str

    def add(self, app: typer.Typer) -> None:
        """Import the module (only now) and add what it holds to ``app``."""
        module = importlib.import_module(f"kkt_emulator.cli.{self.module}")
        if self.module == "fn_cmd":  # `fn replace` needs the control plane (till-protocol §3)
            importlib.import_module("kkt_emulator.cli.fn_replace_cmd").register(module.app)
        register = getattr(module, "register", None)
        if register is not None:
            register(app)
        else:
            app.add_typer(module.app, name=self.names[0])


#: Every group in ``--help`` order; the control-plane commands (``till-protocol.md`` §3) follow
#: ``receipt``. tests/cli/test_lazy_groups.py checks the names against what each step adds.
GROUPS: tuple[Group, ...] = (
    Group(("fn",), "fn_cmd"),
    Group(("tlv",), "tlv_cmd"),
    Group(("profiles",), "profiles_cmd"),
    Group(("bench",), "bench_cmd"),
    Group(("ofd",), "ofd_cmd"),
    Group(("doc",), "doc_cmd"),
    Group(("till",), "till_cmd"),
    Group(("up",), "stack_cmd"),
    Group(("wait",), "wait_cmd"),
    Group(("cloud",), "cloud_cmd"),
    Group(("cabinet",), "cabinet_cmd"),
    Group(("receipt",), "receipt_cmd"),
    Group(("status",), "status_cmd"),
    Group(("set",), "settings_cmd"),
    Group(("fault",), "fault_cmd"),
    Group(("clock",), "clock_cmd"),
    Group(("shift",), "shift_cmd"),
    Group(("sell", "correction"), "sale_cmd"),
    Group(("order",), "order_cmd"),
    Group(("snapshot", "restore"), "snapshot_cmd"),
    Group(("scenario",), "scenario_cmd"),
)

_BY_NAME = {name: group for group in GROUPS for name in group.names}


def register(app: typer.Typer, command: str | None = None) -> None:
    """Add the group that holds ``command`` to ``app``, or every group when it is not one of theirs.

    A name no group holds (a typo, ``--help``, nothing) gets the whole tree, so the listing and
    click's "No such command" stay what they are with every group present.
    """
    group = _BY_NAME.get(command) if command is not None else None
    for step in (group,) if group is not None else GROUPS:
        step.add(app)
