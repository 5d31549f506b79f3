"""The support cases (``support-cases.md``), one definition each, for recipes and tests alike.

Every case is written once, against an
:class:`~kkt_emulator.app.scenarios.installation.Installation`: the shop's store API, support's
cabinet API and the till's control commands. ``kkt-emulator scenario run NAME`` runs it against a
running ``kkt-emulator up`` (:class:`LiveInstallation`: HTTP and MQTT); the end-to-end test
``tests/scenarios/test_NAME.py`` runs the same definition in-process
(:class:`InProcessInstallation`) and adds what only a test can look at. A check therefore exists in
both or in neither.

Layout:

* ``installation.py`` — the interface a case drives, and its two implementations;
* ``run.py`` — :class:`ScenarioRun`: the steps a case takes and the checks it records;
* ``registry.py`` — :data:`SCENARIOS` by name, :func:`run_on` and :func:`run_scenario`;
* ``cases_documents.py`` — §2–§4: statuses, missing receipts, stuck queues, the OFD backlog;
* ``cases_errors.py`` — §5: the till's error texts, one case per row;
* ``cases_shop.py`` — §1 and §6: shift numbering, double integration, receipt addresses;
* ``cases_backoffice.py`` — §7: «нет части продаж в МойСклад», a jammed upload queue;
* ``shop_site.py`` — a shop's ``responseURL`` site for the cases that watch callbacks.

A case puts back what it changed (faults, till settings, retail-point settings), so cases can run
one after another on one installation.
"""

from __future__ import annotations

from kkt_emulator.app.scenarios import (
    cases_backoffice,
    cases_documents,
    cases_errors,
    cases_shop,
)
from kkt_emulator.app.scenarios.installation import (
    InProcessInstallation,
    Installation,
    LiveInstallation,
)
from kkt_emulator.app.scenarios.registry import SCENARIOS, Scenario, run_on, run_scenario
from kkt_emulator.app.scenarios.run import ScenarioCheckError, ScenarioRun, Step

__all__ = [
    "SCENARIOS",
    "InProcessInstallation",
    "Installation",
    "LiveInstallation",
    "Scenario",
    "ScenarioCheckError",
    "ScenarioRun",
    "Step",
    "cases_backoffice",
    "cases_documents",
    "cases_errors",
    "cases_shop",
    "run_on",
    "run_scenario",
]
