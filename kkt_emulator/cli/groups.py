"""The command groups of ``kkt-emulator``.

Each group module exposes a ``typer.Typer`` named ``app`` (or registers plain commands through a
``register(app)`` function). :data:`GROUPS` lists them in their ``--help`` order, each with the
top-level names it adds, so that a run of one command imports only that command's module: ``up``
does not pay for importing the benchmarks, the chaos harness and the scenarios (:func:`register`).
"""

# Every import below is deliberately inside its function: importing a group is what is deferred.
# ruff: noqa: PLC0415

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import typer


def _fn(app: typer.Typer) -> None:
    from kkt_emulator.cli import fn_cmd, fn_replace_cmd

    fn_replace_cmd.register(fn_cmd.app)  # `fn replace` needs the control plane (till-protocol §3)
    app.add_typer(fn_cmd.app, name="fn")


def _tlv(app: typer.Typer) -> None:
    from kkt_emulator.cli import tlv_cmd

    app.add_typer(tlv_cmd.app, name="tlv")


def _profiles(app: typer.Typer) -> None:
    from kkt_emulator.cli import profiles_cmd

    app.add_typer(profiles_cmd.app, name="profiles")


def _bench(app: typer.Typer) -> None:
    from kkt_emulator.cli import bench_cmd

    app.add_typer(bench_cmd.app, name="bench")


def _ofd(app: typer.Typer) -> None:
    from kkt_emulator.cli import ofd_cmd

    app.add_typer(ofd_cmd.app, name="ofd")


def _doc(app: typer.Typer) -> None:
    from kkt_emulator.cli import doc_cmd

    app.add_typer(doc_cmd.app, name="doc")


def _till(app: typer.Typer) -> None:
    from kkt_emulator.cli import till_cmd

    app.add_typer(till_cmd.app, name="till")


def _up(app: typer.Typer) -> None:
    from kkt_emulator.cli import stack_cmd

    stack_cmd.register(app)


def _wait(app: typer.Typer) -> None:
    from kkt_emulator.cli import wait_cmd

    wait_cmd.register(app)


def _cloud(app: typer.Typer) -> None:
    from kkt_emulator.cli import cloud_cmd

    app.add_typer(cloud_cmd.app, name="cloud")


def _cabinet(app: typer.Typer) -> None:
    from kkt_emulator.cli import cabinet_cmd

    app.add_typer(cabinet_cmd.app, name="cabinet")


def _receipt(app: typer.Typer) -> None:
    from kkt_emulator.cli import receipt_cmd

    app.add_typer(receipt_cmd.app, name="receipt")


def _status(app: typer.Typer) -> None:
    from kkt_emulator.cli import status_cmd

    status_cmd.register(app)


def _set(app: typer.Typer) -> None:
    from kkt_emulator.cli import settings_cmd

    settings_cmd.register(app)


def _fault(app: typer.Typer) -> None:
    from kkt_emulator.cli import fault_cmd

    app.add_typer(fault_cmd.app, name="fault")


def _clock(app: typer.Typer) -> None:
    from kkt_emulator.cli import clock_cmd

    app.add_typer(clock_cmd.app, name="clock")


def _shift(app: typer.Typer) -> None:
    from kkt_emulator.cli import shift_cmd

    app.add_typer(shift_cmd.app, name="shift")


def _sell(app: typer.Typer) -> None:
    from kkt_emulator.cli import sale_cmd

    sale_cmd.register(app)


def _order(app: typer.Typer) -> None:
    from kkt_emulator.cli import order_cmd

    app.add_typer(order_cmd.app, name="order")


def _snapshot(app: typer.Typer) -> None:
    from kkt_emulator.cli import snapshot_cmd

    snapshot_cmd.register(app)


def _scenario(app: typer.Typer) -> None:
    from kkt_emulator.cli import scenario_cmd

    app.add_typer(scenario_cmd.app, name="scenario")


@dataclass(frozen=True, slots=True)
class Group:
    """One registration step: the top-level names it adds and the function that adds them."""

    names: tuple[str, ...]
    add: Callable[[typer.Typer], None]


#: Every group in ``--help`` order; the control-plane commands (``till-protocol.md`` §3) follow
#: ``receipt``. tests/cli/test_lazy_groups.py checks the names against what each step adds.
GROUPS: tuple[Group, ...] = (
    Group(("fn",), _fn),
    Group(("tlv",), _tlv),
    Group(("profiles",), _profiles),
    Group(("bench",), _bench),
    Group(("ofd",), _ofd),
    Group(("doc",), _doc),
    Group(("till",), _till),
    Group(("up",), _up),
    Group(("wait",), _wait),
    Group(("cloud",), _cloud),
    Group(("cabinet",), _cabinet),
    Group(("receipt",), _receipt),
    Group(("status",), _status),
    Group(("set",), _set),
    Group(("fault",), _fault),
    Group(("clock",), _clock),
    Group(("shift",), _shift),
    Group(("sell", "correction"), _sell),
    Group(("order",), _order),
    Group(("snapshot", "restore"), _snapshot),
    Group(("scenario",), _scenario),
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
