"""The command groups of ``kkt-emulator``.

Each group module exposes a ``typer.Typer`` named ``app`` (or registers plain commands through a
``register(app)`` function).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from kkt_emulator.cli import (
    bench_cmd,
    doc_cmd,
    fn_cmd,
    ofd_cmd,
    profiles_cmd,
    stack_cmd,
    till_cmd,
    tlv_cmd,
    wait_cmd,
)

if TYPE_CHECKING:
    import typer


def _register_control(app: typer.Typer) -> None:
    """The control-plane commands (MQTT, ``till-protocol.md`` §3), in their ``--help`` order."""
    from kkt_emulator.cli import (  # noqa: PLC0415 - kept apart from the list above
        clock_cmd,
        fault_cmd,
        fn_replace_cmd,
        order_cmd,
        sale_cmd,
        settings_cmd,
        shift_cmd,
        snapshot_cmd,
        status_cmd,
    )

    status_cmd.register(app)
    settings_cmd.register(app)
    app.add_typer(fault_cmd.app, name="fault")
    app.add_typer(clock_cmd.app, name="clock")
    app.add_typer(shift_cmd.app, name="shift")
    sale_cmd.register(app)
    app.add_typer(order_cmd.app, name="order")
    snapshot_cmd.register(app)
    fn_replace_cmd.register(fn_cmd.app)


def register(app: typer.Typer) -> None:
    """Add every command group to ``app``."""
    app.add_typer(fn_cmd.app, name="fn")
    app.add_typer(tlv_cmd.app, name="tlv")
    app.add_typer(profiles_cmd.app, name="profiles")
    app.add_typer(bench_cmd.app, name="bench")
    app.add_typer(ofd_cmd.app, name="ofd")
    app.add_typer(doc_cmd.app, name="doc")
    app.add_typer(till_cmd.app, name="till")
    stack_cmd.register(app)
    wait_cmd.register(app)
    from kkt_emulator.cli import cabinet_cmd, cloud_cmd  # noqa: PLC0415 - kept apart from the list above

    app.add_typer(cloud_cmd.app, name="cloud")
    app.add_typer(cabinet_cmd.app, name="cabinet")
    from kkt_emulator.cli import receipt_cmd  # noqa: PLC0415 - kept apart from the list above

    app.add_typer(receipt_cmd.app, name="receipt")
    _register_control(app)
    from kkt_emulator.cli import scenario_cmd  # noqa: PLC0415 - kept apart from the list above

    app.add_typer(scenario_cmd.app, name="scenario")
